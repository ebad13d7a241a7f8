"""What the commands share: the model and source options, cut-offs, reading
messages, and how warnings and errors are written."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from spamcli.errors import SpamcliError

# The built-in default model ships with the project, beside the package.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent.parent / "models" / "default"
# Where `corpus fetch` and `corpus split` put corpora unless told otherwise.
DATA_DIR_VARIABLE = "SPAMCLI_DATA"


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_VARIABLE, "data"))


def model_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-m",
        "--model",
        "model_dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SPAMCLI_MODEL",
        default=DEFAULT_MODEL_DIR,
        show_default="$SPAMCLI_MODEL, else the built-in default model",
        help="Model folder.",
    )(function)


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
    """One BLAS thread for scoring: a filter multiplies one row at a time, and
    a multi-threaded BLAS made such products 10 times slower under load here.
    Only takes effect before NumPy is first imported; training is left alone,
    since TensorFlow sizes its own thread pools."""
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def fail(error: SpamcliError) -> NoReturn:
    raise click.ClickException(str(error)) from None


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
    from spamcli.corpus import iter_messages, read_stream

    read_limit = None if whole else MAX_MESSAGE_BYTES
    for path in paths:
        if str(path) == "-":
            # sys.stdin is None when descriptor 0 was closed at start-up.
            stdin = getattr(sys.stdin, "buffer", None)
            yield read_stream(stdin, "-", read_limit=read_limit)
        else:
            yield from iter_messages(path, read_limit=read_limit)


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
        text = error.format_message() if isinstance(error, click.ClickException) else str(error)
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())


def warn_if_possible(message: str) -> None:
    """A warning on stderr, unless stderr is gone: the mail matters more."""
    import contextlib

    with contextlib.suppress(OSError, ValueError):
        warn(message)
