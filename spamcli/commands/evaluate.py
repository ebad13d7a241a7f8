"""spamcli evaluate and info: how good a model is, and what it is."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from spamcli.commands.options import (
    MODEL_DEFAULT_HELP,
    MODEL_LOCATION,
    check_model,
    cutoff_options,
    fail,
    format_option,
    labelled_sources,
    limit_blas_threads,
    model_location,
    model_option,
    number,
    record_option,
    shown_name,
    warn,
)
from spamcli.errors import SpamcliError


def evaluation_models_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """-m/--model as the other commands have it, but repeatable: evaluate
    compares models on the same messages."""
    return click.option(
        "-m",
        "--model",
        "model_dirs",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="DIR",
        callback=_resolve_models,
        show_default=MODEL_DEFAULT_HELP,
        help="Model folder. Repeat to compare models on the same messages.",
    )(function)


def _resolve_models(
    context: click.Context, parameter: click.Parameter, values: tuple[Path, ...]
) -> tuple[Path, ...]:
    """No -m: the one model the other commands would use (spamcli.locations)."""
    from spamcli.locations import OPTION, ModelLocation, resolve_model

    if values:
        # Every one came from -m/--model, which model errors then name.
        context.meta[MODEL_LOCATION] = ModelLocation(values[0], OPTION)
        return values
    location = resolve_model(None)
    context.meta[MODEL_LOCATION] = location
    return (location.path,)


@click.command()
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
@click.option(
    "--online",
    is_flag=True,
    help="Replay the mail as it arrived: classify each message, then learn its true "
    "label, and measure the verdicts given before each was learned. The model folder "
    "is never written.",
)
@click.option(
    "--order",
    type=click.Choice(["date", "name"]),
    default="date",
    show_default=True,
    help="With --online: arrival order, by the Date header (undated last) or by the "
    "number in the file name (inmail.N).",
)
@click.option(
    "--train",
    "train_on",
    type=click.Choice(["on-everything", "on-error"]),
    default="on-everything",
    show_default=True,
    help="With --online: learn every message, or only those given the wrong verdict.",
)
@click.option(
    "--from-scratch",
    is_flag=True,
    help="With --online: start from a network that has learned nothing (train's "
    "settings; --seed), not from a model folder.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="With --from-scratch: the seed of the network's initial weights.  [default: 1]",
)
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
    online: bool,
    order: str,
    train_on: str,
    from_scratch: bool,
    seed: int | None,
) -> None:
    """Measure a model on labelled mail (same SOURCES as train), or compare
    models (-m A -m B) on the same messages.

    Unless told --no-record, the date, the sources and the main figures are
    appended to evaluations.jsonl in each model folder (see `spamcli info`).
    With --online, the mail is replayed in arrival order through a copy of
    the model in memory, each message learned after its verdict (nothing is
    recorded), and --plots adds learning_curve.png.
    """
    limit_blas_threads()
    from spamcli import extras

    online_only = [
        name
        for name, given in (
            ("--from-scratch", from_scratch),
            ("--seed", seed is not None),
            ("--order", order != "date"),
            ("--train", train_on != "on-everything"),
        )
        if given
    ]
    if online_only and not online:
        raise click.UsageError(f"{online_only[0]} needs --online")
    if online:
        _evaluate_online(
            sources,
            ham_paths,
            spam_paths,
            model_dirs,
            output_format,
            threshold,
            ham_cutoff,
            sweep,
            plots_dir,
            disagreements,
            order,
            train_on,
            from_scratch,
            seed,
        )
        return

    if not (sources or ham_paths or spam_paths):
        raise click.UsageError("give labelled mail: SOURCES, --ham PATH or --spam PATH")
    if disagreements and len(model_dirs) < 2:
        raise click.UsageError("--disagreements needs two or more models (-m A -m B)")
    if threshold is not None and ham_cutoff is not None and ham_cutoff > threshold:
        raise click.UsageError(
            f"the ham cut-off {ham_cutoff} must not be above the spam cut-off {threshold}"
        )
    try:
        modules = extras.PLOTTING_MODULES if plots_dir is not None else extras.EVALUATION_MODULES
        extras.require("spamcli evaluate", "evaluate", modules)
    except SpamcliError as error:
        fail(error)
    from spamcli.evaluation import evaluate_models

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
    for failure in results[0]["unreadable_inputs"]:
        warn(f"{shown_name(failure['source'])}: {failure['reason']}")
    unreadable = results[0]["unreadable"]
    if unreadable:
        warn(f"{unreadable} input{'s' if unreadable != 1 else ''} could not be read")
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


def _evaluate_online(
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
    order: str,
    train_on: str,
    from_scratch: bool,
    seed: int | None,
) -> None:
    """evaluate --online: one replay (spamcli.replay), rendered as evaluate's report."""
    from spamcli import extras
    from spamcli.config import TrainingConfig

    if not (sources or ham_paths or spam_paths):
        raise click.UsageError("give labelled mail: SOURCES, --ham PATH or --spam PATH")
    if len(model_dirs) > 1 or disagreements:
        raise click.UsageError("--online replays one model; -m once, no --disagreements")
    if threshold is not None or ham_cutoff is not None:
        raise click.UsageError("--online judges by the model's own cut-off")
    try:
        modules = extras.PLOTTING_MODULES if plots_dir is not None else extras.EVALUATION_MODULES
        extras.require("spamcli evaluate", "evaluate", modules)
    except SpamcliError as error:
        fail(error)
    from spamcli.replay import replay

    try:
        report = replay(
            sources,
            ham_paths,
            spam_paths,
            model_dir=None if from_scratch else model_dirs[0],
            scratch=TrainingConfig(seed=1 if seed is None else seed) if from_scratch else None,
            order=order,
            train_on=train_on.removeprefix("on-"),
            sweep=sweep,
            plots_dir=plots_dir,
        )
    except SpamcliError as error:
        fail(error)
    for failure in report.failures:
        warn(f"{shown_name(failure.source)}: {failure.reason}")
    result = {
        "model": report.started_from,
        "name": "from scratch" if from_scratch else Path(model_dirs[0]).name,
        "online": {
            "order": order,
            "train": train_on,
            "learned": sum(message.learned for message in report.messages),
            "seconds": round(report.seconds, 3),
            "learning_seconds": round(report.learn_seconds, 3),
            "learning_curve": report.learning_curve,
        },
        **report.metrics,
        "duplicates": report.duplicates,
        "unreadable": len(report.failures),
        "unreadable_inputs": [
            {"source": failure.source, "reason": failure.reason} for failure in report.failures
        ],
    }
    plots = result.pop("plots", None)
    if output_format == "json":
        if plots is not None:
            result["plots"] = plots
        click.echo(json.dumps(result, indent=2))
        return
    learned = result["online"]["learned"]
    which = "every one" if train_on == "on-everything" else f"the {learned} given the wrong verdict"
    start = " from a network that had learned nothing" if from_scratch else ""
    click.echo(
        f"replayed {len(report.messages)} messages in {order} order{start}, learning "
        f"{which} after its verdict, in {report.seconds:.1f} s"
    )
    comparison: dict[str, Any] = {"models": [result]}
    if plots is not None:
        comparison["plots"] = plots
    for line in _evaluation_lines(comparison, sweep):
        click.echo(line)
    moving = result.get("moving_cut_off")
    if moving is not None:
        click.echo(
            f"the verdicts, the cut-off moving with learning ({moving['first_threshold']:.4f} "
            f"at the start, {moving['last_threshold']:.4f} at the end): "
            f"{moving['false_positives']} ham flagged, {moving['false_negatives']} spam missed"
        )
    click.echo(
        "errors per 100 messages: "
        + " ".join(
            str(window["false_positives"] + window["false_negatives"])
            for window in report.learning_curve
        )
    )


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
            yield _table_row(label, [number(result[key]) for result in results], widths)

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
                    f"{number(row['false_positive_rate']):>19}  {number(row['recall']):>6}"
                )
                if banded_sweep:
                    line += f"  {number(row['unsure_share']):>6}"
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
                    + f"  {shown_name(message['source'])}"
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


def _record_evaluation(
    model_dir: Path,
    result: dict[str, Any],
    sources: tuple[Path, ...],
    ham_paths: tuple[Path, ...],
    spam_paths: tuple[Path, ...],
) -> None:
    """Append the evaluation to the model's log; a folder that cannot be
    written to is worth a warning, not a failed evaluation."""
    from spamcli.locations import is_builtin_model
    from spamcli.model_card import evaluation_record, record_evaluation

    if is_builtin_model(model_dir):
        warn("the built-in model is read-only; the evaluation is not recorded")
        return
    try:
        record_evaluation(model_dir, evaluation_record(result, sources, ham_paths, spam_paths))
    except SpamcliError as error:
        warn(f"{error}; the evaluation is not recorded")


@click.command()
@model_option
@format_option
def info(model_dir: Path, output_format: str) -> None:
    """Show a model's card: training data, versions, layers, cut-offs, metrics.

    Everything comes from the model folder: metadata.json, the shapes of the
    exported weights, and the evaluations `spamcli evaluate` has recorded in
    evaluations.jsonl (the text shows the latest ten; JSON, every one).
    """
    from spamcli.model_card import model_card

    location = model_location(model_dir)
    try:
        check_model(model_dir)
        card = model_card(model_dir)
    except SpamcliError as error:
        fail(error)
    card["location"] = {
        "origin": location.origin,
        "reason": location.reason(),
        "read_only": location.read_only,
    }
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
            ("in use as", card["location"]["reason"]),
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
    features = card["features"]
    tokens = features.get("max_tokens")
    difference = card["export_max_difference"]
    weights = card["weights"]
    yield from _rows(
        [
            (
                "input",
                f"word unigrams and bigrams of the first {tokens or 'all'} tokens, hashed "
                f"into {2 ** int(features['bits'])} buckets",
            )
        ]
        + [
            (layer["name"], f"{layer['inputs']} -> {layer['units']}, {layer['activation']}")
            for layer in card["layers"]
        ]
        + (
            [
                (
                    "export check",
                    f"NumPy differs from Keras by at most {difference:.3g} on validation",
                )
            ]
            if isinstance(difference, float)
            else []
        )
        + (
            [
                (
                    "learned since",
                    f"{weights.get('messages_learned', 0)} messages, "
                    f"{weights.get('changed_rows', 0)} kernel rows changed since "
                    f"{weights.get('kernel_file', 'kernel.npz')}",
                )
            ]
            if weights
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
            *(
                [("spam at training", f"{cutoffs['spam_at_training']:.6g} (learning moves it)")]
                if cutoffs.get("spam_at_training") is not None
                else []
            ),
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
