"""The command line: parse, call one core function, render.

Results go to stdout, everything else (progress, warnings, errors) to
stderr, so a script or mail filter reading stdout never sees anything but
data. Exit status: 0 success, 1 an error (any input that failed), 2 a usage
error. TensorFlow is imported only by ``train`` and ``learn``, inside the commands, so
``--help``, ``predict`` and ``evaluate`` start fast.
"""

from __future__ import annotations

import json
import math
import os
import re
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
    "--resume",
    is_flag=True,
    help="Add the messages the model folder has learned (spamcli learn) to the training "
    "data, and keep them in the new model.",
)
def train(
    sources: tuple[Path, ...],
    ham_paths: tuple[Path, ...],
    spam_paths: tuple[Path, ...],
    model_dir: Path,
    seed: int,
    epochs: int,
    header_policy: str,
    unsure_rate: float | None,
    target_false_positive_rate: float | None,
    target_recall: float | None,
    quiet: bool,
    resume: bool,
) -> None:
    """Train a model on labelled mail and save it to the model folder.

    SOURCES are folders or archives whose folder names give the label (ham,
    easy_ham, hard_ham, ... ; spam, spam_2, ...) or CSV/TSV files with label
    and text columns. With no sources at all, the SpamAssassin public corpus
    is fetched into data/ (if not there yet) and used.
    """
    from spamcli.learning import learned_count, train_with_learned
    from spamcli.training import train as train_model

    if target_false_positive_rate is not None and target_recall is not None:
        raise click.UsageError("give --target-fpr or --target-recall, not both")
    if not (sources or ham_paths or spam_paths):
        sources = (_fetched_spamassassin(quiet),)
    if target_false_positive_rate is None:
        target_false_positive_rate = TrainingConfig.target_false_positive_rate
    config = TrainingConfig(
        header_policy=header_policy,
        seed=seed,
        epochs=epochs,
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

    with _Counter("reading mail", quiet) as counter, interruption.interruptible():
        try:
            if resume:
                report, included = train_with_learned(
                    model_dir,
                    sources,
                    ham_paths,
                    spam_paths,
                    config,
                    reading_progress=counter.update,
                    fit_verbosity=0 if quiet else 2,
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
    if target_recall is None:
        _warn_if_unresolved(target_false_positive_rate, validation, config.validation_fraction)
    click.echo(f"saved {report.model_dir}")


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


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@model_option
@format_option
@cutoff_options
@exit_status_option
@explain_options
def predict(
    paths: tuple[Path, ...],
    model_dir: Path,
    output_format: str,
    threshold: float | None,
    ham_cutoff: float | None,
    exit_status: bool,
    explain: bool,
    explain_top: int | None,
) -> None:
    """Classify messages: one line per message on stdout.

    PATHS are message files, folders (each file in them), mbox files,
    Maildirs or .tar/.tar.gz/.tar.bz2 archives; '-' or no PATH reads one
    message from stdin. Text output is 'LABEL SCORE SOURCE', LABEL being
    ham, unsure or spam; a message from an mbox or Maildir adds its 1-based
    INDEX in the mailbox and its MESSAGE-ID ('-' when it has none), two
    fields without spaces: 'LABEL SCORE SOURCE INDEX MESSAGE-ID'. JSON
    output is one object per line with source, label, score (the spam
    probability), index (null for a message file) and message_id (or null).
    A path that cannot be read is reported on stderr, the others are still
    classified, and the exit status is 1 (3 with --exit-status).

    With --explain, each prediction is followed by the n-grams that raised
    and lowered its score most, one a line: four spaces, the effect (score
    minus the score without that n-gram) and the n-gram in double quotes.
    """
    if explain_top is not None and not explain:
        raise click.UsageError("--explain-top needs --explain")
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
    messages = _read_messages(paths or (Path("-"),))
    if explain:
        from spamcli.explaining import DEFAULT_TOP, explain_messages

        top = DEFAULT_TOP if explain_top is None else explain_top
        items: Iterator[Any] = explain_messages(scorer, messages, cutoffs, top)
    else:
        items = classify(scorer, messages, cutoffs)
    try:
        for item in items:
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
                record = {
                    "source": item.source,
                    "label": item.label,
                    "score": item.score,
                    "index": item.index,
                    "message_id": item.message_id,
                }
                if explain:
                    record["explanation"] = _explanation_records(item.explanation)
                click.echo(json.dumps(record))
            elif item.index is None:
                click.echo(f"{item.label} {item.score:.6f} {item.source}")
            else:
                identifier = _message_id_field(item.message_id)
                click.echo(f"{item.label} {item.score:.6f} {item.source} {item.index} {identifier}")
            if explain and output_format != "json":
                for line in _explanation_lines(item.explanation):
                    click.echo(line)
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


def evaluation_models_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """-m/--model as the other commands have it, but repeatable: evaluate
    compares models on the same messages."""
    return click.option(
        "-m",
        "--model",
        "model_dirs",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SPAMCLI_MODEL",
        default=(DEFAULT_MODEL_DIR,),
        show_default="$SPAMCLI_MODEL, else the built-in default model",
        help="Model folder. Repeat to compare models on the same messages.",
    )(function)


@cli.command()
@labelled_sources
@evaluation_models_option
@format_option
@cutoff_options
@click.option(
    "--sweep",
    is_flag=True,
    help="Also show false positives, false-positive rate, recall (and the unsure share, "
    "with a ham cut-off) at a range of spam cut-offs, to choose one.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write roc.png, precision_recall.png and scores.png into this folder.",
)
@click.option(
    "--disagreements",
    type=click.IntRange(0),
    default=0,
    metavar="N",
    help="With two or more models: list up to N messages the models give different verdicts.",
)
@record_option
def evaluate(
    sources: tuple[Path, ...],
    ham_paths: tuple[Path, ...],
    spam_paths: tuple[Path, ...],
    model_dirs: tuple[Path, ...],
    output_format: str,
    threshold: float | None,
    ham_cutoff: float | None,
    sweep: bool,
    plots_dir: Path | None,
    disagreements: int,
    record: bool,
) -> None:
    """Measure a model on labelled mail (same SOURCES as train), or compare
    models (-m A -m B) on the same messages.

    Unless told --no-record, the date, the sources and the main figures are
    appended to evaluations.jsonl in each model folder (see `spamcli info`).
    """
    limit_blas_threads()
    from spamcli.evaluation import evaluate_models

    if not (sources or ham_paths or spam_paths):
        raise click.UsageError("give labelled mail: SOURCES, --ham PATH or --spam PATH")
    if disagreements and len(model_dirs) < 2:
        raise click.UsageError("--disagreements needs two or more models (-m A -m B)")
    if threshold is not None and ham_cutoff is not None and ham_cutoff > threshold:
        raise click.UsageError(
            f"the ham cut-off {ham_cutoff} must not be above the spam cut-off {threshold}"
        )
    try:
        comparison = evaluate_models(
            model_dirs,
            sources,
            ham_paths,
            spam_paths,
            threshold,
            ham_cutoff,
            sweep,
            disagreements,
            plots_dir,
        )
    except SpamcliError as error:
        fail(error)
    except ValueError as error:  # a ham cut-off above a model's spam cut-off
        raise click.UsageError(str(error)) from None
    results = comparison["models"]
    if results[0]["unreadable"]:
        warn(f"{results[0]['unreadable']} inputs could not be read")
    if plots_dir is not None and any(result["roc_auc"] is None for result in results):
        warn("no ROC or precision-recall plot: they need both ham and spam")
    if record:
        for model_dir, result in zip(model_dirs, results, strict=True):
            _record_evaluation(model_dir, result, sources, ham_paths, spam_paths)
    if output_format == "json":
        if len(results) == 1:
            single = dict(results[0])
            if plots_dir is not None:
                single["plots"] = comparison["plots"]
            click.echo(json.dumps(single, indent=2))
        else:
            click.echo(json.dumps(comparison, indent=2))
        return
    for line in _evaluation_lines(comparison, sweep):
        click.echo(line)


def _evaluation_lines(comparison: dict[str, Any], sweep: bool) -> Iterator[str]:
    """The text report of evaluate: the metrics table (one column per model),
    each model's confusion matrix, its sweep if asked, the disagreements
    between models, and the plots written."""
    results = comparison["models"]
    several = len(results) > 1
    banded = any(result["ham_cutoff"] < result["threshold"] for result in results)
    rows = [
        ("messages", "messages", True),
        ("ham", "ham", True),
        ("spam", "spam", True),
        ("threshold", "threshold", True),
        ("ham cut-off", "ham_cutoff", banded),
        ("true positives", "true_positives", True),
        ("false positives", "false_positives", True),
        ("true negatives", "true_negatives", True),
        ("false negatives", "false_negatives", True),
        ("unsure ham", "unsure_ham", banded),
        ("unsure spam", "unsure_spam", banded),
        ("precision", "precision", True),
        ("recall", "recall", True),
        ("false positive rate", "false_positive_rate", True),
        ("ROC AUC", "roc_auc", True),
        ("(1-AUC)%", "one_minus_auc_percent", True),
    ]
    widths = [max(10, len(result["name"])) for result in results]
    if several:
        yield _table_row("", [result["name"] for result in results], widths)
    for label, key, shown in rows:
        if shown:
            yield _table_row(label, [_number(result[key]) for result in results], widths)

    for result in results:
        of_model = f" of {result['name']}" if several else ""
        matrix = result["confusion_matrix"]
        verdicts = (
            ["ham", "unsure", "spam"]
            if result["ham_cutoff"] < result["threshold"]
            else [
                "ham",
                "spam",
            ]
        )
        yield ""
        yield f"confusion matrix{of_model} (rows: true label; columns: verdict)"
        yield f"{'':<6}" + "".join(f"{verdict:>8}" for verdict in verdicts)
        for label in ("ham", "spam"):
            yield f"{label:<6}" + "".join(f"{matrix[label][verdict]:>8}" for verdict in verdicts)

    if sweep:
        for result in results:
            of_model = f" of {result['name']}" if several else ""
            banded_sweep = any("unsure_share" in row for row in result["sweep"])
            yield ""
            yield f"threshold sweep{of_model} (* the cut-off in force)"
            header = f"  {'threshold':>9}  {'false positives':>15}  {'false positive rate':>19}"
            header += f"  {'recall':>6}" + (f"  {'unsure':>6}" if banded_sweep else "")
            yield header + "  train would choose it with"
            for row in result["sweep"]:
                marker = "*" if row["threshold"] == result["threshold"] else " "
                line = (
                    f"{marker} {row['threshold']:>9.6f}  {row['false_positives']:>15}  "
                    f"{_number(row['false_positive_rate']):>19}  {_number(row['recall']):>6}"
                )
                if banded_sweep:
                    line += f"  {_number(row['unsure_share']):>6}"
                rules = ", ".join(
                    f"--{RULE_OPTIONS[name]} {value:g}"
                    for rule in row["rules"]
                    for name, value in rule.items()
                )
                yield f"{line}  {rules}".rstrip()

    if several:
        names = [result["name"] for result in results]
        yield ""
        yield (
            f"the models disagree on {comparison['disagreement_count']} of "
            f"{results[0]['messages']} messages"
        )
        if comparison["disagreements"]:
            columns = [max(len(name), 13) for name in names]
            yield (
                "true  "
                + "  ".join(f"{name:<{width}}" for name, width in zip(names, columns, strict=True))
                + "  source"
            )
            for message in comparison["disagreements"]:
                cells = [
                    f"{verdict['score']:.4f} {verdict['verdict']:<6}"
                    for verdict in message["verdicts"]
                ]
                yield (
                    f"{message['true_label']:<4}  "
                    + "  ".join(
                        f"{cell:<{width}}" for cell, width in zip(cells, columns, strict=True)
                    )
                    + f"  {message['source']}"
                )

    for path in comparison.get("plots", ()):
        yield f"saved {path}"


# The `train` option of each rule that can choose a threshold.
RULE_OPTIONS = {"target_false_positive_rate": "target-fpr", "target_recall": "target-recall"}


def _table_row(label: str, values: list[str], widths: list[int]) -> str:
    if len(values) == 1:
        return f"{label:<20} {values[0]}"
    cells = "  ".join(f"{value:<{width}}" for value, width in zip(values, widths, strict=True))
    return f"{label:<20} {cells}".rstrip()


def _explanation_lines(explanation: Any) -> Iterator[str]:
    """'    +0.012345  "click here"': indented, so a line of its own is a
    prediction; the out-of-vocabulary bucket is unquoted."""
    from spamcli.explaining import OUT_OF_VOCABULARY

    for effect in explanation.effects:
        token = effect.token if effect.token == OUT_OF_VOCABULARY else f'"{effect.token}"'
        yield f"    {effect.effect:+.6f}  {token}"


def _explanation_records(explanation: Any) -> list[dict[str, Any]]:
    return [{"token": effect.token, "effect": effect.effect} for effect in explanation.effects]


def _record_evaluation(
    model_dir: Path,
    result: dict[str, Any],
    sources: tuple[Path, ...],
    ham_paths: tuple[Path, ...],
    spam_paths: tuple[Path, ...],
) -> None:
    """Append the evaluation to the model's log; a folder that cannot be
    written to is worth a warning, not a failed evaluation."""
    from spamcli.model_card import evaluation_record, record_evaluation

    try:
        record_evaluation(model_dir, evaluation_record(result, sources, ham_paths, spam_paths))
    except SpamcliError as error:
        warn(f"{error}; the evaluation is not recorded")


@cli.command()
@model_option
@format_option
def info(model_dir: Path, output_format: str) -> None:
    """Show a model's card: training data, versions, layers, cut-offs, metrics.

    Everything comes from the model folder: metadata.json, the shapes of the
    exported weights, and the evaluations `spamcli evaluate` has recorded in
    evaluations.jsonl (the text shows the latest ten; JSON, every one).
    """
    from spamcli.model_card import model_card

    try:
        card = model_card(model_dir)
    except SpamcliError as error:
        fail(error)
    if output_format == "json":
        click.echo(json.dumps(card, indent=2))
        return
    for line in _card_lines(card):
        click.echo(line)


# Evaluations the text of `spamcli info` shows: the latest ones.
SHOWN_EVALUATIONS = 10


def _card_lines(card: dict[str, Any]) -> Iterator[str]:
    """The model card as text: sections of indented 'name  value' rows."""
    versions = card["versions"]
    yield from _rows(
        [
            ("model", card["model_dir"]),
            ("format version", card["format_version"]),
            ("created", card["created"] or "unknown"),
            ("versions", ", ".join(f"{name} {version}" for name, version in versions.items())),
            ("header policy", card["header_policy"]),
        ],
        indent="",
    )
    data = card["training_data"]
    counts = data.get("counts", {})
    training = card["training"]
    yield "training data"
    yield from _rows(
        [
            ("sources", ", ".join(data.get("sources", [])) or "-"),
            ("ham paths", ", ".join(data.get("ham_paths", [])) or "-"),
            ("spam paths", ", ".join(data.get("spam_paths", [])) or "-"),
            (
                "messages",
                f"{counts.get('ham', '?')} ham, {counts.get('spam', '?')} spam "
                f"({data.get('duplicates', '?')} duplicates dropped)",
            ),
            (
                "split",
                f"{data.get('training_messages', '?')} training, "
                f"{data.get('validation_messages', '?')} validation",
            ),
            ("fingerprint", data.get("fingerprint", "-")),
            (
                "epochs run",
                f"{training.get('epochs_run', '?')} (best {training.get('best_epoch', '?')})",
            ),
        ]
    )
    yield "network"
    normalised = {
        "count": ", divided by their count",
        "l2": ", L2-normalised",
        "none": "",
    }[card["normalization"]]
    difference = card["export_max_difference"]
    yield from _rows(
        [("vocabulary", f"{card['vocabulary_size']} n-grams{normalised}")]
        + [
            (layer["name"], f"{layer['inputs']} -> {layer['units']}, {layer['activation']}")
            for layer in card["layers"]
        ]
        + (
            [("export check", f"differs from Keras by at most {difference:.3g} on validation")]
            if isinstance(difference, float)
            else []
        )
    )
    yield "hyperparameters"
    yield from _rows(list(card["hyperparameters"].items()))
    cutoffs = card["cutoffs"]
    yield "cut-offs"
    yield from _rows(
        [
            ("spam", f"{cutoffs['spam']:.6g} (at or above: spam)"),
            (
                "ham",
                f"{cutoffs['ham']:.6g} (below: ham; between: unsure)"
                if cutoffs["unsure_band"]
                else "no unsure band (below the spam cut-off: ham)",
            ),
            *_bound_row(cutoffs["new_ham_flagged_at_most"], card["validation"]),
        ]
    )
    validation = card["validation"]
    if validation:
        yield f"validation ({validation.get('messages', '?')} messages)"
        yield from _rows(
            [
                ("ROC AUC" if name == "roc_auc" else name.replace("_", " "), value)
                for name, value in validation.items()
            ]
        )
    if card["learned"] is not None:
        learned = card["learned"]
        yield "learned"
        if isinstance(learned, dict):
            yield from _rows(list(learned.items()))
        else:
            yield f"  {_card_value(learned)}"
    evaluations = card["evaluations"]
    yield f"evaluations since training ({len(evaluations)})"
    if len(evaluations) > SHOWN_EVALUATIONS:
        yield f"  ({len(evaluations) - SHOWN_EVALUATIONS} earlier not shown; --format json has all)"
    for record in evaluations[-SHOWN_EVALUATIONS:]:
        paths = [
            *record.get("sources", []),
            *(f"ham:{path}" for path in record.get("ham_paths", [])),
            *(f"spam:{path}" for path in record.get("spam_paths", [])),
        ]
        yield (
            f"  {record.get('date', '?')}  {record.get('messages', '?')} messages "
            f"({record.get('ham', '?')} ham, {record.get('spam', '?')} spam)  "
            f"ROC AUC {_card_value(record.get('roc_auc'))}  "
            f"FP {record.get('false_positives', '?')}  FN {record.get('false_negatives', '?')}  "
            f"threshold {_card_value(record.get('threshold'))}  {' '.join(paths)}"
        )
    if card["unreadable_evaluations"]:
        yield f"  ({card['unreadable_evaluations']} unreadable lines skipped)"


def _bound_row(bound: float | None, validation: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The cut-offs' row for model_card.false_positive_rate_bound, if known."""
    if bound is None or not validation:
        return []
    flagged, ham = validation["false_positives"] + 1, validation["ham"] + 1
    return [
        ("new ham", f"up to {bound:.2%} flagged ({flagged} in {ham}), if like the validation ham")
    ]


def _rows(pairs: list[tuple[str, Any]], indent: str = "  ") -> Iterator[str]:
    width = max((len(name) for name, _ in pairs), default=0)
    for name, value in pairs:
        yield f"{indent}{name:<{width}}  {_card_value(value)}".rstrip()


def _card_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_card_value(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


# sysexits.h EX_TEMPFAIL: delivery agents and MTAs keep the message and try
# again later.
EXIT_TEMPFAIL = 75


def _checked_by(
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


@cli.command(name="filter")
@model_option
@cutoff_options
@click.option(
    "--header-prefix",
    default="X-Spam-",
    show_default=True,
    callback=_checked_by("spamcli.filtering", "check_header_prefix"),
    help="Prefix of the three header fields added (PREFIX Flag, Score and Status).",
)
@click.option(
    "--subject-tag",
    metavar="TEXT",
    default=None,
    callback=_checked_by("spamcli.filtering", "check_subject_tag"),
    help="Put TEXT (e.g. '[SPAM]') before the Subject of spam, unless it is there already.",
)
@click.option(
    "--tempfail",
    is_flag=True,
    help=f"Exit {EXIT_TEMPFAIL} (EX_TEMPFAIL) when the message could not be "
    "classified, so that the delivery agent tries again later.",
)
@exit_status_option
def filter_command(
    model_dir: Path,
    threshold: float | None,
    ham_cutoff: float | None,
    header_prefix: str,
    subject_tag: str | None,
    tempfail: bool,
    exit_status: bool,
) -> None:
    """Pass one message from stdin to stdout, marked with its verdict.

    Adds the header fields X-Spam-Flag (YES for spam, else NO), X-Spam-Score
    and X-Spam-Status at the top of the header block, after removing any
    fields of those names already there, and changes nothing else. When the
    message cannot be classified (no model, a broken model, any error), it
    goes to stdout unchanged, one line on stderr says why, and the exit
    status is 0 (75 with --tempfail, 3 with --exit-status).
    """
    from spamcli.config import EXIT_ERROR

    limit_blas_threads()
    if threshold is not None and ham_cutoff is not None and ham_cutoff > threshold:
        raise click.UsageError(
            f"the ham cut-off {ham_cutoff} must not be above the spam cut-off {threshold}"
        )
    failure_status = EXIT_TEMPFAIL if tempfail else EXIT_ERROR if exit_status else 0
    # Nothing was passed on: a delivery agent must not take empty output for the mail.
    undelivered_status = EXIT_TEMPFAIL if tempfail else EXIT_ERROR if exit_status else 1
    if sys.stdin is None:  # descriptor 0 closed (`<&-`): there is no message to pass on
        _warn_if_possible("filter: cannot read the message: standard input is closed")
        sys.exit(undelivered_status)
    try:
        raw = sys.stdin.buffer.read()
    except (OSError, MemoryError, AttributeError, ValueError) as error:
        _warn_if_possible(f"filter: cannot read the message: {_one_line(error)}")
        sys.exit(undelivered_status)
    try:
        from spamcli.scoring import exit_status as verdict_exit_status

        filtered = _filter_one(raw, model_dir, threshold, ham_cutoff, header_prefix, subject_tag)
        output = filtered.pieces
        status = verdict_exit_status([filtered.label]) if exit_status else 0
    # The message must go through, whatever went wrong in classifying it.
    except Exception as error:
        _warn_if_possible(f"filter: the message passes unmarked: {_one_line(error)}")
        output, status = (raw,), failure_status
    try:
        for piece in output:
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()
    except (OSError, AttributeError, ValueError) as error:
        _discard_stdout()
        _warn_if_possible(f"filter: cannot write the message: {_one_line(error)}")
        sys.exit(undelivered_status)
    sys.exit(status)


def _filter_one(
    raw: bytes,
    model_dir: Path,
    threshold: float | None,
    ham_cutoff: float | None,
    header_prefix: str,
    subject_tag: str | None,
) -> Any:
    from spamcli.filtering import filter_message
    from spamcli.scoring import Scorer

    scorer = Scorer(model_dir)
    cutoffs = resolve_cutoffs(scorer, threshold, ham_cutoff)
    return filter_message(raw, scorer, cutoffs, header_prefix, subject_tag)


def _one_line(error: BaseException) -> str:
    """An error as one line: the message of ours, the type and message of any other."""
    if isinstance(error, SpamcliError | click.ClickException):
        text = error.format_message() if isinstance(error, click.ClickException) else str(error)
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())


def _warn_if_possible(message: str) -> None:
    """A warning on stderr, unless stderr is gone: the mail matters more."""
    import contextlib

    with contextlib.suppress(OSError, ValueError):
        warn(message)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--spam", "as_spam", is_flag=True, help="Learn the messages as spam.")
@click.option("--ham", "as_ham", is_flag=True, help="Learn the messages as ham.")
@model_option
@click.option(
    "--forget",
    is_flag=True,
    help="Forget the messages instead: undo an earlier learn of them.",
)
def learn(
    paths: tuple[Path, ...], as_spam: bool, as_ham: bool, model_dir: Path, forget: bool
) -> None:
    """Correct the model: learn messages as spam or ham, in seconds, without retraining.

    PATHS are message files, folders, mbox files, Maildirs or archives, as
    for predict; '-' or no PATH reads one message from stdin. Exactly one of
    --spam and --ham gives their label. The model folder keeps the learned
    messages (see train --resume) and the trained weights; each learn or
    --forget recomputes the weights from those, so learning a message twice
    changes nothing and forgetting every learned message gives back the
    trained model. One line per message on stdout: 'OUTCOME LABEL
    SCORE_BEFORE SCORE_AFTER SOURCE'.
    """
    from spamcli import interruption
    from spamcli.learning import learn as learn_messages

    if as_spam == as_ham:
        raise click.UsageError("give the label: --spam or --ham (one of them)")
    paths = paths or (Path("-"),)
    if [str(path) for path in paths].count("-") > 1:
        raise click.UsageError("stdin ('-') holds one message; give it once")
    messages = _read_messages(paths, whole=True)
    try:
        with interruption.interruptible():
            report = learn_messages(
                model_dir,
                spam=messages if as_spam else (),
                ham=messages if as_ham else (),
                forget=forget,
            )
    except SpamcliError as error:
        fail(error)
    for failure in report.failures:
        warn(f"{failure.source}: {failure.reason}")
    for correction in report.corrections:
        after = "-" if correction.score_after is None else f"{correction.score_after:.6f}"
        click.echo(
            f"{correction.outcome.replace(' ', '-')} {correction.label} "
            f"{correction.score_before:.6f} {after} {correction.source}"
        )
    summary = ", ".join(f"{count} {outcome}" for outcome, count in report.outcomes.items())
    if report.changed:
        side = "" if report.all_on_correct_side else " (not every message reached its side)"
        warn(
            f"{summary}; {model_dir} has learned {report.learned_spam} spam and "
            f"{report.learned_ham} ham; {report.steps} steps{side}, {report.seconds:.1f} s"
        )
    else:
        warn(f"{summary}; {model_dir} unchanged")
    if report.failures:
        sys.exit(1)


@cli.command(name="sort")
@click.argument("maildir", type=click.Path(file_okay=False, path_type=Path))
@model_option
@click.option(
    "--spam-folder",
    metavar=".NAME",
    default=".Junk",
    show_default=True,
    callback=_checked_by("spamcli.sorting", "check_folder_name"),
    help="Maildir++ subfolder of MAILDIR that spam is moved to; made if missing.",
)
@click.option(
    "--unsure-folder",
    metavar=".NAME",
    default=None,
    callback=_checked_by("spamcli.sorting", "check_folder_name"),
    help="Maildir++ subfolder for unsure mail, e.g. .Unsure.  [default: unsure mail stays]",
)
@click.option("--dry-run", is_flag=True, help="Say what would be moved; move nothing.")
@cutoff_options
def sort_command(
    maildir: Path,
    model_dir: Path,
    spam_folder: str,
    unsure_folder: str | None,
    dry_run: bool,
    threshold: float | None,
    ham_cutoff: float | None,
) -> None:
    """Move the spam in a Maildir into its spam folder.

    Every message in MAILDIR's new/ and cur/ is classified; spam goes to the
    same part (new/ or cur/) of the spam folder under the same file name,
    flags included, and unsure mail likewise to --unsure-folder if given.
    The Maildir's subfolders are never read. Messages are moved by renaming,
    never copied, and never over an existing file. One line per message
    moved: 'VERDICT SCORE FROM -> TO'; a summary on stderr. A message that
    cannot be read or moved (another mail program moved or changed it, or
    its name is taken in the spam folder) is left in place and reported on
    stderr, the others are still sorted, and the exit status is 1.
    """
    limit_blas_threads()
    from spamcli.scoring import Scorer
    from spamcli.sorting import Kept, Moved, Skipped, sort_maildir

    counts = {"moved": 0, "kept": 0, "skipped": 0}
    moved_to: dict[str, int] = {}
    try:
        scorer = Scorer(model_dir)
        cutoffs = resolve_cutoffs(scorer, threshold, ham_cutoff)
        for event in sort_maildir(
            scorer, maildir, cutoffs, spam_folder, unsure_folder, dry_run=dry_run
        ):
            if isinstance(event, Moved):
                counts["moved"] += 1
                folder = event.destination_path.parent.parent.name
                moved_to[folder] = moved_to.get(folder, 0) + 1
                click.echo(
                    f"{event.label} {event.score:.6f} {event.source_path} -> "
                    f"{event.destination_path}"
                )
            elif isinstance(event, Kept):
                counts["kept"] += 1
            elif isinstance(event, Skipped):
                counts["skipped"] += 1
                warn(f"skipped {event.source_path}: {event.reason}")
    except SpamcliError as error:
        fail(error)
    verb = "would move" if dry_run else "moved"
    destinations = ", ".join(f"{count} to {folder}" for folder, count in sorted(moved_to.items()))
    total = sum(counts.values())
    warn(
        f"{total} message{'s' if total != 1 else ''}: {verb} {counts['moved']}"
        f"{f' ({destinations})' if destinations else ''}, left {counts['kept']}, "
        f"skipped {counts['skipped']}"
    )
    if counts["skipped"]:
        sys.exit(1)


@cli.command("index-vocabulary")
@model_option
def index_vocabulary(model_dir: Path) -> None:
    """Add vocabulary.index to a model folder trained without one.

    predict then looks n-grams up in the memory-mapped index instead of
    building a dictionary of the vocabulary, which makes it start faster;
    scores do not change. Training writes the index itself.
    """
    from spamcli.artifacts import write_vocabulary_index

    try:
        index_path = write_vocabulary_index(model_dir)
    except SpamcliError as error:
        fail(error)
    click.echo(f"wrote {index_path}")


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


def _fetched_spamassassin(quiet: bool) -> Path:
    """The SpamAssassin corpus under data/, fetched first if need be."""
    from spamcli.fetch import fetch_spamassassin

    destination = data_dir() / "spamassassin"
    try:
        fetch_spamassassin(destination, progress=None if quiet else warn)
    except SpamcliError as error:
        fail(error)
    return destination


def _read_messages(paths: tuple[Path, ...], whole: bool = False) -> Iterator[Any]:
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


def _message_id_field(message_id: str | None) -> str:
    """A Message-ID as one field of a text line: its <...> part, white space
    removed (a msg-id has none; only comments beside it may), '-' when absent."""
    if not message_id:
        return "-"
    bracketed = re.search(r"<[^<>]*>", message_id)
    return "".join((bracketed.group() if bracketed else message_id).split())


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
