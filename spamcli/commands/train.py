"""spamcli train and the corpus group."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from spamcli.commands.options import (
    MODEL_LOCATION,
    Counter,
    data_dir,
    fail,
    labelled_sources,
    model_location,
    model_option,
    number,
    warn,
)
from spamcli.config import HEADER_POLICIES, TrainingConfig
from spamcli.errors import SpamcliError


@click.command()
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
    "--bits",
    type=click.IntRange(10, 24),
    default=TrainingConfig.bits,
    show_default=True,
    help="The n-grams are hashed into 2**BITS buckets; the model folder takes about "
    "2**BITS x 68 bytes (20: 68 MiB, 18: 17 MiB). Fewer buckets, more collisions.",
)
@click.option(
    "--headers",
    "header_policy",
    type=click.Choice(HEADER_POLICIES),
    default=TrainingConfig.header_policy,
    show_default=True,
    help="Which headers the model reads: 'content' (what the sender and the sender's "
    "mail program wrote; never the receiving mailbox's or relays' headers), 'origin' "
    "(content and the first relay's Received field, without recipient and date) or 'all'.",
)
@click.option(
    "--unsure-rate",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    help="Add an unsure band between ham and spam, with its lower cut-off set so that "
    "at most this share of validation ham scores unsure (e.g. 0.01). [default: no band]",
)
@click.option(
    "--target-fpr",
    "target_false_positive_rate",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=None,
    help="Set the threshold as the lowest cut-off that flags at most this share of "
    "validation ham. [default: 0.001]",
)
@click.option(
    "--target-recall",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Instead, set the threshold as the highest cut-off that still flags at least "
    "this share of validation spam (e.g. 0.99).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's start-up log and Keras' line per epoch (else: a progress bar).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Add the messages the model folder has learned (spamcli learn) to the training "
    "data, and keep them in the new model.",
)
@click.option(
    "--distribute",
    # spamcli.distributed.DISTRIBUTIONS, not imported here: --help stays instant.
    type=click.Choice(["multi-worker"]),
    default=None,
    help="Train on several machines with TensorFlow's MultiWorkerMirroredStrategy, "
    "configured by the TF_CONFIG environment variable; run the same command on every "
    "machine. The chief writes the model (see docs/distributed-training.md).",
)
def train(
    sources: tuple[Path, ...],
    ham_paths: tuple[Path, ...],
    spam_paths: tuple[Path, ...],
    model_dir: Path,
    seed: int,
    epochs: int,
    bits: int,
    header_policy: str,
    unsure_rate: float | None,
    target_false_positive_rate: float | None,
    target_recall: float | None,
    quiet: bool,
    verbose: bool,
    resume: bool,
    distribute: str | None,
) -> None:
    """Train a model on labelled mail and save it to the model folder.

    SOURCES are folders or archives whose folder names give the label (ham,
    easy_ham, hard_ham, ... ; spam, spam_2, ...) or CSV/TSV files with label
    and text columns. With no sources at all, the SpamAssassin public corpus
    is fetched into data/ (if not there yet) and used.

    Without -m or $SPAMCLI_MODEL the model is saved as the user model
    (~/.local/share/spamcli/model), never into the built-in one.
    """
    from spamcli import extras
    from spamcli import quiet as quieting

    if target_false_positive_rate is not None and target_recall is not None:
        raise click.UsageError("give --target-fpr or --target-recall, not both")
    if quiet and verbose:
        raise click.UsageError("give -q/--quiet or -v/--verbose, not both")
    if resume and distribute:
        raise click.UsageError("give --resume or --distribute, not both")
    try:
        extras.require("spamcli train", "train", extras.TRAINING_MODULES)
    except SpamcliError as error:
        fail(error)
    model_dir = _training_target(model_dir)
    if resume and not model_dir.exists():
        raise click.ClickException(
            f"--resume: there is no model at {model_dir} whose learned messages to add"
        )
    quieting.import_tensorflow(verbose)
    from spamcli.learning import learned_count, train_with_learned
    from spamcli.training import train as train_model

    if not (sources or ham_paths or spam_paths):
        sources = (_fetched_spamassassin(quiet),)
    if target_false_positive_rate is None:
        target_false_positive_rate = TrainingConfig.target_false_positive_rate
    config = TrainingConfig(
        header_policy=header_policy,
        seed=seed,
        epochs=epochs,
        bits=bits,
        unsure_rate=unsure_rate,
        target_false_positive_rate=target_false_positive_rate,
        target_recall=target_recall,
    )
    if not resume and (count := learned_count(model_dir)):
        warn(
            f"{model_dir} has {count} learned messages; they are not included in this "
            "training and the new model will not keep them (use --resume to include them)"
        )
    from spamcli import interruption

    progress = quieting.EpochProgress(epochs, enabled=not (quiet or verbose))
    with (
        Counter("reading mail", quiet) as counter,
        interruption.interruptible(),
        progress,
    ):
        try:
            if resume:
                report, included = train_with_learned(
                    model_dir,
                    sources,
                    ham_paths,
                    spam_paths,
                    config,
                    reading_progress=counter.update,
                    fit_verbosity=quieting.fit_verbosity(verbose),
                    **_epoch_progress(train_with_learned, progress),
                )
                warn(f"included {included} learned messages from {model_dir}")
            else:
                report = train_model(
                    model_dir,
                    sources,
                    ham_paths,
                    spam_paths,
                    config,
                    reading_progress=counter.update,
                    fit_verbosity=quieting.fit_verbosity(verbose),
                    **_epoch_progress(train_model, progress),
                    distribute=distribute,
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
        f"{number(validation['roc_auc'])}, threshold {report.threshold:.4f}, {band}"
        f"false positives {validation['false_positives']} of {validation['ham']} ham, "
        f"recall {number(validation['recall'])}"
    )
    if target_recall is None:
        _warn_if_unresolved(target_false_positive_rate, validation, config.validation_fraction)
    if distribute:
        click.echo(
            f"{report.worker}, one of {report.workers} workers: weights sha256 "
            f"{report.weights_sha256[:16]}"
            + ("" if report.saved else "; the chief saves the model")
        )
    if report.saved:
        click.echo(f"saved {report.model_dir}")


def _training_target(model_dir: Path) -> Path:
    """Where train writes: the folder of -m or $SPAMCLI_MODEL, else the user
    model; never the built-in model (locations.training_target)."""
    from spamcli.locations import USER, ModelLocation, training_target

    location = model_location(model_dir)
    try:
        target = training_target(location)
    except SpamcliError as error:
        fail(error)
    if target != location.path or location.origin == USER:
        # Errors in saving it then name the user model, not the built-in one.
        context = click.get_current_context()
        context.meta[MODEL_LOCATION] = ModelLocation(target, USER)
    return target


def _epoch_progress(function: Any, progress: Any) -> dict[str, Any]:
    """``epoch_progress=PROGRESS`` for a training function that takes it.

    training.train and learning.train_with_learned call it as Keras'
    on_epoch_end(epoch, logs).
    """
    import inspect

    if not progress.enabled:
        return {}
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}
    return {"epoch_progress": progress} if "epoch_progress" in parameters else {}


def _warn_if_unresolved(
    target_rate: float, validation: dict[str, Any], validation_fraction: float
) -> None:
    """Warn when the validation ham are too few for the false-positive rate
    asked for: even a cut-off above every one of them flags up to 1 in n + 1
    new ham (model_card.false_positive_rate_bound)."""
    from spamcli.model_card import false_positive_rate_bound

    ham, bound = validation["ham"], false_positive_rate_bound(validation)
    if bound is None or 1 / (ham + 1) <= target_rate:
        return
    needed = math.ceil(1 / target_rate) - 1 if target_rate > 0 else None
    warn(
        f"{ham} validation ham cannot resolve a false-positive rate of {target_rate:.2%}: "
        f"the cut-off flags up to {bound:.2%} of new ham like them"
        + (
            f"; that takes {needed} validation ham, from about "
            f"{math.ceil(needed / validation_fraction)} ham in all"
            if needed
            else ""
        )
    )


@click.group()
def corpus() -> None:
    """Get public corpora and the standard splits used for benchmarks."""


# The corpora `corpus fetch` knows.
KNOWN_CORPORA = ("spamassassin",)


def _known_corpus(context: click.Context, parameter: click.Parameter, value: str) -> str:
    if value.lower() not in KNOWN_CORPORA:
        raise click.BadParameter(
            f"unknown corpus {value!r}; the corpora spamcli can fetch are: "
            + ", ".join(KNOWN_CORPORA)
        )
    return value.lower()


@corpus.command()
@click.argument("name", metavar="CORPUS", callback=_known_corpus)
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
    """Download a public corpus (CORPUS: spamassassin) and verify every message.

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
    from spamcli import extras
    from spamcli.corpus import write_split

    try:
        extras.require("spamcli corpus split", "evaluate", extras.EVALUATION_MODULES)
    except SpamcliError as error:
        fail(error)
    source = source_dir or data_dir() / "spamassassin"
    destination = dest_dir or data_dir() / "splits" / split_name
    try:
        counts = write_split(source, split_name, destination)
    except SpamcliError as error:
        fail(error)
    for part, by_label in counts.items():
        click.echo(f"{part}: {by_label.get('ham', 0)} ham, {by_label.get('spam', 0)} spam")
    click.echo(f"written to {destination}")


def _fetched_spamassassin(quiet: bool) -> Path:
    """The SpamAssassin corpus under data/, fetched first if need be."""
    from spamcli.fetch import fetch_spamassassin

    destination = data_dir() / "spamassassin"
    try:
        fetch_spamassassin(destination, progress=None if quiet else warn)
    except SpamcliError as error:
        fail(error)
    return destination
