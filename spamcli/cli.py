"""The command line: parse, call one core function, render.

Results go to stdout, everything else (progress, warnings, errors) to
stderr, so a script or mail filter reading stdout never sees anything but
data. Exit status: 0 success, 1 an error (any input that failed), 2 a usage
error. TensorFlow is imported only by ``train``, inside the command, so
``--help``, ``predict`` and ``evaluate`` start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from spamcli import __version__
from spamcli.config import HEADER_POLICIES, TrainingConfig
from spamcli.errors import SpamcliError

# The built-in default model ships with the project, beside the package.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spamcli")
def cli() -> None:
    """A spam filter for email: train a model on your own labelled mail, then
    classify new mail from a shell, a script, or a mail filter."""


@cli.command()
@labelled_sources
@model_option
@click.option(
    "--seed", type=int, default=TrainingConfig.seed, show_default=True, help="Random seed."
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=TrainingConfig.epochs,
    show_default=True,
    help="Most epochs to train.",
)
@click.option(
    "--headers",
    "header_policy",
    type=click.Choice(HEADER_POLICIES),
    default="content",
    show_default=True,
    help="Which headers the model reads: 'content' (what the sender and the sender's "
    "mail program wrote; never the receiving mailbox's or relays' headers) or 'all'.",
)
@click.option(
    "--unsure-rate",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    help="Add an unsure band between ham and spam, with its lower cut-off set so that "
    "at most this share of validation ham scores unsure (e.g. 0.01). [default: no band]",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def train(
    sources: tuple[Path, ...],
    ham_paths: tuple[Path, ...],
    spam_paths: tuple[Path, ...],
    model_dir: Path,
    seed: int,
    epochs: int,
    header_policy: str,
    unsure_rate: float | None,
    quiet: bool,
) -> None:
    """Train a model on labelled mail and save it to the model folder.

    SOURCES are folders or archives whose folder names give the label (ham,
    easy_ham, hard_ham, ... ; spam, spam_2, ...) or CSV/TSV files with label
    and text columns. With no sources at all, the SpamAssassin public corpus
    is fetched into data/ (if not there yet) and used.
    """
    from spamcli.training import train as train_model

    if not (sources or ham_paths or spam_paths):
        sources = (_fetched_spamassassin(quiet),)
    config = TrainingConfig(
        header_policy=header_policy, seed=seed, epochs=epochs, unsure_rate=unsure_rate
    )
    with _Counter("reading mail", quiet) as counter, _interrupted_by_sigterm():
        try:
            report = train_model(
                model_dir,
                sources,
                ham_paths,
                spam_paths,
                config,
                reading_progress=counter.update,
                fit_verbosity=0 if quiet else 2,
            )
        except SpamcliError as error:
            fail(error)
    for failure in report.failures:
        warn(f"skipped {failure.source}: {failure.reason}")
    validation = report.validation
    click.echo(
        f"trained on {report.counts['ham']} ham and {report.counts['spam']} spam "
        f"({report.duplicates} duplicates dropped) in {report.seconds:.0f} s; "
        f"best epoch {report.best_epoch} of {report.epochs_run}"
    )
    band = f"ham cut-off {report.ham_cutoff:.4f}, " if report.ham_cutoff < report.threshold else ""
    click.echo(
        f"validation ({report.validation_messages} messages): ROC AUC "
        f"{_number(validation['roc_auc'])}, threshold {report.threshold:.4f}, {band}"
        f"false positives {validation['false_positives']} of {validation['ham']} ham, "
        f"recall {_number(validation['recall'])}"
    )
    click.echo(f"saved {report.model_dir}")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@model_option
@format_option
@cutoff_options
@exit_status_option
def predict(
    paths: tuple[Path, ...],
    model_dir: Path,
    output_format: str,
    threshold: float | None,
    ham_cutoff: float | None,
    exit_status: bool,
) -> None:
    """Classify messages: one line per message on stdout.

    PATHS are message files, folders (each file in them), mbox files,
    Maildirs or .tar/.tar.gz/.tar.bz2 archives; '-' or no PATH reads one
    message from stdin. Text output is 'LABEL SCORE SOURCE', LABEL being
    ham, unsure or spam; JSON output is one object per line with source,
    label and score (the spam probability). A path that cannot be read is
    reported on stderr, the others are still classified, and the exit
    status is 1 (3 with --exit-status).
    """
    limit_blas_threads()
    from spamcli.corpus import ReadFailure
    from spamcli.scoring import Scorer, classify
    from spamcli.scoring import exit_status as verdict_exit_status

    try:
        scorer = Scorer(model_dir)
    except SpamcliError as error:
        if exit_status:
            warn(str(error))
            sys.exit(verdict_exit_status((), failed=True))
        fail(error)
    cutoffs = resolve_cutoffs(scorer, threshold, ham_cutoff)
    failures = 0
    labels: set[str] = set()
    try:
        for item in classify(scorer, _read_messages(paths or (Path("-"),)), cutoffs):
            if isinstance(item, ReadFailure):
                if item.skipped:
                    # A FIFO or device found in a folder: no message, no error.
                    warn(f"skipped {item.source}: {item.reason}")
                    continue
                failures += 1
                warn(f"{item.source}: {item.reason}")
                continue
            labels.add(item.label)
            if output_format == "json":
                record = {"source": item.source, "label": item.label, "score": item.score}
                click.echo(json.dumps(record))
            else:
                click.echo(f"{item.label} {item.score:.6f} {item.source}")
    except SpamcliError as error:
        # A model that loaded but cannot score: weights that are no numbers.
        if exit_status:
            warn(str(error))
            sys.exit(verdict_exit_status((), failed=True))
        fail(error)
    if exit_status:
        sys.exit(verdict_exit_status(labels, failed=bool(failures)))
    if failures:
        sys.exit(1)


@cli.command()
@labelled_sources
@model_option
@format_option
@threshold_option
def evaluate(
    sources: tuple[Path, ...],
    ham_paths: tuple[Path, ...],
    spam_paths: tuple[Path, ...],
    model_dir: Path,
    output_format: str,
    threshold: float | None,
) -> None:
    """Measure a model on labelled mail (same SOURCES as train)."""
    limit_blas_threads()
    from spamcli.evaluation import evaluate as evaluate_model

    if not (sources or ham_paths or spam_paths):
        raise click.UsageError("give labelled mail: SOURCES, --ham PATH or --spam PATH")
    try:
        result = evaluate_model(model_dir, sources, ham_paths, spam_paths, threshold)
    except SpamcliError as error:
        fail(error)
    if result["unreadable"]:
        warn(f"{result['unreadable']} inputs could not be read")
    if output_format == "json":
        click.echo(json.dumps(result, indent=2))
        return
    rows = [
        ("messages", result["messages"]),
        ("ham", result["ham"]),
        ("spam", result["spam"]),
        ("threshold", result["threshold"]),
        ("true positives", result["true_positives"]),
        ("false positives", result["false_positives"]),
        ("true negatives", result["true_negatives"]),
        ("false negatives", result["false_negatives"]),
        ("precision", result["precision"]),
        ("recall", result["recall"]),
        ("false positive rate", result["false_positive_rate"]),
        ("ROC AUC", result["roc_auc"]),
    ]
    for name, value in rows:
        click.echo(f"{name:<20} {_number(value)}")


@cli.group()
def corpus() -> None:
    """Get public corpora and the standard splits used for benchmarks."""


@corpus.command()
@click.argument("name", type=click.Choice(["spamassassin"]))
@click.option(
    "--dest",
    "dest_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the archives.  [default: data/spamassassin, or $SPAMCLI_DATA/spamassassin]",
)
@click.option(
    "--mirror", default=None, help="Take the archives from this local folder or URL instead."
)
def fetch(name: str, dest_dir: Path | None, mirror: str | None) -> None:
    """Download a public corpus and verify every message.

    spamassassin: the five archives of the SpamAssassin public corpus (6,046
    messages), each message checked against the md5 in its file name. Files
    already present and verified are not fetched again.
    """
    from spamcli.fetch import fetch_spamassassin

    destination = dest_dir or data_dir() / name
    try:
        report = fetch_spamassassin(destination, mirror=mirror, progress=warn)
    except SpamcliError as error:
        fail(error)
    for archive, outcome in report.archives.items():
        click.echo(f"{archive}: {outcome}")
    for member in report.mismatched:
        warn(f"md5 does not match the file name: {member}")
    total = sum(report.messages.values())
    click.echo(f"{total} messages in {report.dest_dir}")


@corpus.command()
@click.argument("split_name", metavar="SPLIT", type=click.Choice(["random", "time"]))
@click.option(
    "--source",
    "source_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with the SpamAssassin archives.  "
    "[default: data/spamassassin, or $SPAMCLI_DATA/spamassassin]",
)
@click.option(
    "--dest",
    "dest_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the split.  [default: data/splits/SPLIT, or $SPAMCLI_DATA/splits/SPLIT]",
)
def split(split_name: str, source_dir: Path | None, dest_dir: Path | None) -> None:
    """Write a standard split of the SpamAssassin corpus as message files.

    random: stratified 80/20 train/test (scikit-learn, random_state=42) over
    all 6,046 messages. time: train on easy_ham and spam, test on easy_ham_2,
    hard_ham and spam_2. The result is DEST/train/{ham,spam} and
    DEST/test/{ham,spam}, ready for `spamcli train DEST/train`.
    """
    from spamcli.corpus import write_split

    source = source_dir or data_dir() / "spamassassin"
    destination = dest_dir or data_dir() / "splits" / split_name
    try:
        counts = write_split(source, split_name, destination)
    except SpamcliError as error:
        fail(error)
    for part, by_label in counts.items():
        click.echo(f"{part}: {by_label.get('ham', 0)} ham, {by_label.get('spam', 0)} spam")
    click.echo(f"written to {destination}")


@contextlib.contextmanager
def _interrupted_by_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, as Ctrl-C is, while training.

    Python's default for SIGTERM ends the process on the spot, leaving the
    half-written temporary model folder beside the model; an exception lets
    the model folder's writer remove it. Either way the previous model stays
    in place (see artifacts.write_model_dir).
    """

    def interrupt(signal_number: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fetched_spamassassin(quiet: bool) -> Path:
    """The SpamAssassin corpus under data/, fetched first if need be."""
    from spamcli.fetch import fetch_spamassassin

    destination = data_dir() / "spamassassin"
    try:
        fetch_spamassassin(destination, progress=None if quiet else warn)
    except SpamcliError as error:
        fail(error)
    return destination


def _read_messages(paths: tuple[Path, ...]) -> Iterator[Any]:
    """The messages to classify. Only the part of each message that is
    parsed is kept (config.MAX_MESSAGE_BYTES), so a 50 MB message read from
    a file or stdin costs about 1 MB of memory."""
    from spamcli.config import MAX_MESSAGE_BYTES
    from spamcli.corpus import iter_messages, read_stream

    for path in paths:
        if str(path) == "-":
            # sys.stdin is None when descriptor 0 was closed at start-up.
            stdin = getattr(sys.stdin, "buffer", None)
            yield read_stream(stdin, "-", read_limit=MAX_MESSAGE_BYTES)
        else:
            yield from iter_messages(path, read_limit=MAX_MESSAGE_BYTES)


def _number(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


class _Counter:
    """A message counter on stderr while mail is read (only on a terminal)."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self.count = 0

    def update(self, count: int) -> None:
        self.count = count
        if self.enabled and count % 100 == 0:
            click.echo(f"\r{self.label}: {count} messages", err=True, nl=False)

    def __enter__(self) -> _Counter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            click.echo(f"\r{self.label}: {self.count} messages", err=True)


def main() -> None:
    cli(prog_name="spamcli")
