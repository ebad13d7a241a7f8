"""What the commands share: the model and source options, cut-offs, reading
messages, and how warnings and errors are written."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from spamcli.errors import ModelError, SpamcliError

if TYPE_CHECKING:
    from spamcli.locations import ModelLocation
    from spamcli.scoring import Scorer

# Where `corpus fetch` and `corpus split` put corpora unless told otherwise.
DATA_DIR_VARIABLE = "SPAMCLI_DATA"
# The key of the chosen model's location in click's context (see model_option).
MODEL_LOCATION = "spamcli.model_location"
MODEL_DEFAULT_HELP = "$SPAMCLI_MODEL, else the user model if it exists, else the built-in model"


def __getattr__(name: str) -> Any:
    # DEFAULT_MODEL_DIR, the built-in model, is looked up when asked for:
    # importlib.resources would cost every command 5 ms at start-up.
    if name == "DEFAULT_MODEL_DIR":
        from spamcli.locations import builtin_model_dir

        return builtin_model_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_VARIABLE, "data"))


def model_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """-m/--model: the model folder, else $SPAMCLI_MODEL, else the user
    model, else the built-in one (spamcli.locations). The command gets the
    folder's path; model_location() tells where it came from. The path is
    not checked here: a usage error would stop `spamcli filter` before it
    passes the message on, so a bad path is reported when the model is
    loaded, naming the option or variable that gave it."""
    return click.option(
        "-m",
        "--model",
        "model_dir",
        type=click.Path(path_type=Path),
        metavar="DIR",
        default=None,
        callback=_resolve_model,
        show_default=MODEL_DEFAULT_HELP,
        help="Model folder.",
    )(function)


def _resolve_model(context: click.Context, parameter: click.Parameter, value: Path | None) -> Path:
    from spamcli.locations import resolve_model

    location = resolve_model(value)
    context.meta[MODEL_LOCATION] = location
    return location.path


def model_location(model_dir: Path) -> ModelLocation:
    """Where MODEL_DIR came from: the location model_option chose, or, for a
    path from anywhere else, the option."""
    from spamcli.locations import OPTION, ModelLocation

    context = click.get_current_context(silent=True)
    location = context.meta.get(MODEL_LOCATION) if context is not None else None
    if isinstance(location, ModelLocation) and location.path == model_dir:
        return location
    return ModelLocation(Path(model_dir), OPTION)


def check_model(model_dir: Path) -> None:
    """Refuse a model path that is no readable folder, naming the option or
    the variable that gave it (locations.check_model_dir)."""
    from spamcli.locations import check_model_dir

    check_model_dir(model_location(model_dir))


def open_scorer(model_dir: Path) -> Scorer:
    """The model loaded for scoring; a ModelError names the option or the
    variable that gave a bad folder."""
    from spamcli.scoring import Scorer

    location = model_location(model_dir)
    try:
        check_model(model_dir)
        return Scorer(model_dir)
    except ModelError as error:
        raise ModelError(with_culprit(error, location)) from None


def with_culprit(error: BaseException, location: ModelLocation | None = None) -> str:
    """A model error's message, ending with what chose the model folder (the
    option, the variable, the user or the built-in model) unless it says so."""
    message = str(error)
    if not isinstance(error, ModelError):
        return message
    if location is None:
        context = click.get_current_context(silent=True)
        location = context.meta.get(MODEL_LOCATION) if context is not None else None
        if location is None:
            return message
    suffix = f"({location.culprit})"
    return message if message.endswith(suffix) else f"{message} {suffix}"


def labelled_sources(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--spam",
        "spam_paths",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Everything in this file, folder, mbox, Maildir or archive is spam. Repeatable.",
    )(function)
    function = click.option(
        "--ham",
        "ham_paths",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Everything in this file, folder, mbox, Maildir or archive is ham. Repeatable.",
    )(function)
    return click.argument("sources", nargs=-1, type=click.Path(path_type=Path))(function)


def format_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )(function)


def threshold_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--threshold",
        "--spam-cutoff",
        "threshold",
        type=click.FloatRange(0.0, 1.0),
        default=None,
        help="Spam cut-off: a score at or above it is spam. [default: the model's own]",
    )(function)


def cutoff_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--threshold/--spam-cutoff and --ham-cutoff: the cut-offs between verdicts."""
    function = click.option(
        "--ham-cutoff",
        type=click.FloatRange(0.0, 1.0),
        default=None,
        help="A score below it is ham; between it and the spam cut-off, unsure. "
        "[default: the model's own; without an unsure band, the spam cut-off]",
    )(function)
    return threshold_option(function)


def exit_status_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--exit-status",
        is_flag=True,
        help="Exit with the verdict: 0 ham, 1 spam, 2 unsure, 3 an error (for several "
        "messages: 3 if any failed, else 1 if any is spam, else 2 if any is unsure).",
    )(function)


def record_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--record/--no-record",
        default=True,
        show_default=True,
        help="Append the date, sources and main figures to evaluations.jsonl in the model folder.",
    )(function)


def explain_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--explain-top",
        type=click.IntRange(0),
        default=None,
        metavar="N",
        help="With --explain: how many n-grams to list each way.  [default: 10]",
    )(function)
    return click.option(
        "--explain",
        is_flag=True,
        help="After each prediction, list the n-grams that raised and lowered the "
        "score most, with their effect on it.",
    )(function)


def resolve_cutoffs(scorer: Any, spam: float | None, ham: float | None) -> Any:
    """The scorer's cut-offs with the options applied; a usage error if they cross."""
    try:
        return scorer.cutoffs(spam=spam, ham=ham)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def limit_blas_threads() -> None:
    """One BLAS thread for scoring and learning: a filter multiplies one row
    at a time, and a multi-threaded BLAS made such products 10 times slower
    under load here.
    Only takes effect before NumPy is first imported; training is left alone,
    since TensorFlow sizes its own thread pools."""
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def fail(error: SpamcliError, status: int | None = None) -> NoReturn:
    """End the command with click's 'Error: ...' line on stderr, and exit
    status 1 or STATUS. A model error names what chose the model folder."""
    message = with_culprit(error)
    if status is not None:
        # As click.ClickException.show prints it; its exit code is always 1.
        click.echo(f"Error: {message}", err=True)
        sys.exit(status)
    raise click.ClickException(message) from None


def warn(message: str) -> None:
    click.echo(f"spamcli: {message}", err=True)


# sysexits.h EX_TEMPFAIL: delivery agents and MTAs keep the message and try
# again later.
EXIT_TEMPFAIL = 75


def checked_by(
    module_name: str, check_name: str
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback passing an option's value through MODULE_NAME's
    CHECK_NAME, which raises ValueError for a bad one: a usage error. The
    module is imported only when a command with the option runs."""

    def callback(
        context: click.Context, parameter: click.Parameter, value: str | None
    ) -> str | None:
        if value is None:
            return None
        import importlib

        check: Callable[[str], str] = getattr(importlib.import_module(module_name), check_name)
        try:
            return check(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None

    return callback


def read_messages(paths: tuple[Path, ...], whole: bool = False) -> Iterator[Any]:
    """The messages to classify. Only the part of each message that is
    parsed is kept (config.MAX_MESSAGE_BYTES), so a 50 MB message read from
    a file or stdin costs about 1 MB of memory; ``whole`` keeps every byte,
    for `learn`, which identifies a message by the digest of all of it."""
    from spamcli.config import MAX_MESSAGE_BYTES
    from spamcli.corpus import ReadFailure, iter_messages, read_stream

    read_limit = None if whole else MAX_MESSAGE_BYTES
    for path in paths:
        if str(path) == "-":
            # sys.stdin is None when descriptor 0 was closed at start-up.
            stdin = getattr(sys.stdin, "buffer", None)
            hint_if_terminal(stdin)
            yield read_stream(stdin, "-", read_limit=read_limit)
        else:
            found = False
            for item in iter_messages(path, read_limit=read_limit):
                found = found or not (isinstance(item, ReadFailure) and item.skipped)
                yield item
            # An empty folder is an input that gave nothing, as a missing one
            # is: a mistyped Maildir path must not pass for "no spam".
            if not found and path.is_dir():
                yield ReadFailure(str(path), "no messages in this folder")


TERMINAL_HINT = (
    "reading one message from the terminal; end it with Ctrl-D (or give a PATH to read files)"
)


def hint_if_terminal(stream: Any) -> None:
    """Say on stderr that stdin is being read, when it is a terminal: a
    command run without a PATH otherwise seems to hang."""
    import contextlib

    with contextlib.suppress(AttributeError, OSError, ValueError):
        if stream is not None and stream.isatty():
            warn(TERMINAL_HINT)


def number(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


class Counter:
    """A message counter on stderr while mail is read (only on a terminal)."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self.count = 0

    def update(self, count: int) -> None:
        self.count = count
        if self.enabled and count % 100 == 0:
            click.echo(f"\r{self.label}: {count} messages", err=True, nl=False)

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            click.echo(f"\r{self.label}: {self.count} messages", err=True)


def one_line(error: BaseException) -> str:
    """An error as one line: the message of ours, the type and message of any other."""
    if isinstance(error, SpamcliError | click.ClickException):
        text = (
            error.format_message()
            if isinstance(error, click.ClickException)
            else with_culprit(error)
        )
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())


def shown_name(name: str) -> str:
    """A file or member name as one field of a line of text output: as it is
    when every character of it is printable, else as Python's repr writes it
    (``'a\\nham 0.010000 forged'``), so that a newline or another control
    character in a name cannot forge a line of output (JSON escapes them
    itself). A name that is not UTF-8 shows its bytes as ``\\udcXX``."""
    return name if name.isprintable() else repr(name)


def warn_if_possible(message: str) -> None:
    """A warning on stderr, unless stderr is gone: the mail matters more."""
    import contextlib

    with contextlib.suppress(OSError, ValueError):
        warn(message)


class SpamcliGroup(click.Group):
    """The command group. Its commands are imported when first asked for
    (``lazy_commands``: name → (module, attribute)), as click's documentation
    shows for large command lines. An optional package a command turns out
    to need and that is not installed ends it with one line naming the
    extra to install, not a traceback."""

    def __init__(
        self, *args: Any, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.lazy_commands:
            import importlib

            module_name, attribute = self.lazy_commands[name]
            command = getattr(importlib.import_module(module_name), attribute)
            self.add_command(command, name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImportError as error:
            from spamcli.extras import from_import_error

            command = " ".join(filter(None, ("spamcli", ctx.invoked_subcommand)))
            missing = from_import_error(command, error)
            if missing is None:
                raise
            raise click.ClickException(str(missing)) from None


def point_stdout_at_devnull() -> None:
    """After stdout's reader went away (EPIPE), so that the flush at exit
    cannot fail again and print a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
