"""How good a model is on labelled mail: metrics as data, never printed here.

Several models can be measured on the same messages at once: the corpus is
read once and each model scores it, so the figures compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spamcli.config import SPAM
from spamcli.corpus import RawMessage, load_corpus
from spamcli.errors import SpamcliError
from spamcli.metrics import (
    classification_metrics,
    confusion_matrix,
    sweep_cutoffs,
    threshold_sweep,
)
from spamcli.scoring import Classification, Cutoffs, Scorer, classify


def evaluate(
    model_dir: str | Path,
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    threshold: float | None = None,
    ham_cutoff: float | None = None,
    sweep: bool = False,
    plots_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Score every labelled message and return the metrics at the cut-offs
    (the model's own unless given), plus what could not be read; with
    ``sweep``, the figures at a range of spam cut-offs; with ``plots_dir``,
    the paths of the figures written there (key ``plots``)."""
    comparison = evaluate_models(
        [model_dir], sources, ham_paths, spam_paths, threshold, ham_cutoff, sweep, 0, plots_dir
    )
    result: dict[str, Any] = comparison["models"][0]
    if plots_dir is not None:
        result["plots"] = comparison["plots"]
    return result


def evaluate_models(
    model_dirs: Sequence[str | Path],
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    threshold: float | None = None,
    ham_cutoff: float | None = None,
    sweep: bool = False,
    disagreements: int = 0,
    plots_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Measure each model on the same labelled messages.

    Returns ``models`` (one result per model, in order, as ``evaluate``
    gives it), ``disagreement_count`` (messages the models give different
    verdicts), ``disagreements`` (up to that many of them, the widest
    spread of scores first) and, with ``plots_dir``, ``plots``. The cut-off
    options apply to every model; a ham cut-off above a model's spam
    cut-off is a ValueError, raised before any mail is read.
    """
    if not model_dirs:
        raise ValueError("no model to evaluate")
    if disagreements < 0:
        raise ValueError("disagreements must not be negative")
    scorers = [Scorer(model_dir) for model_dir in model_dirs]
    cutoffs = [scorer.cutoffs(spam=threshold, ham=ham_cutoff) for scorer in scorers]
    names = model_names(model_dirs)
    corpus = load_corpus(sources, ham_paths, spam_paths)
    messages = [RawMessage(message.source, message.raw) for message in corpus.messages]
    is_spam = np.array([message.label == SPAM for message in corpus.messages], dtype=bool)

    results = []
    all_scores = []
    all_labels = []
    for name, model_dir, scorer, model_cutoffs in zip(
        names, model_dirs, scorers, cutoffs, strict=True
    ):
        classifications = [
            item
            for item in classify(scorer, messages, model_cutoffs)
            if isinstance(item, Classification)
        ]
        scores = np.array([item.score for item in classifications], dtype=np.float64)
        all_scores.append(scores)
        all_labels.append([item.label for item in classifications])
        result = {
            "model": str(model_dir),
            "name": name,
            **model_metrics(is_spam, scores, model_cutoffs, sweep),
            "duplicates": corpus.duplicates,
            "unreadable": len(corpus.failures),
            # Which, and why: a count alone left the user to guess.
            "unreadable_inputs": [
                {"source": failure.source, "reason": failure.reason} for failure in corpus.failures
            ],
        }
        results.append(result)

    disagreeing = [
        row for row in range(len(messages)) if len({labels[row] for labels in all_labels}) > 1
    ]
    # The messages the models score furthest apart first: those say most
    # about how they differ.
    disagreeing.sort(
        key=lambda row: (-np.ptp([scores[row] for scores in all_scores]), messages[row].source)
    )
    comparison: dict[str, Any] = {
        "models": results,
        "disagreement_count": len(disagreeing),
        "disagreements": [
            {
                "source": messages[row].source,
                "true_label": corpus.messages[row].label,
                "verdicts": [
                    {"name": name, "score": float(scores[row]), "verdict": labels[row]}
                    for name, scores, labels in zip(names, all_scores, all_labels, strict=True)
                ],
            }
            for row in disagreeing[:disagreements]
        ],
    }
    if plots_dir is not None:
        comparison["plots"] = [
            str(path) for path in _plot(plots_dir, names, is_spam, all_scores, cutoffs)
        ]
    return comparison


def model_names(model_dirs: Sequence[str | Path]) -> list[str]:
    """Short names for a table's header: each folder's name, or the paths as
    given when two folders share a name."""
    names = [Path(model_dir).name or str(model_dir) for model_dir in model_dirs]
    if len(set(names)) < len(names):
        return [str(model_dir) for model_dir in model_dirs]
    return names


def model_metrics(
    is_spam: np.ndarray, scores: np.ndarray, cutoffs: Cutoffs, sweep: bool
) -> dict[str, Any]:
    """One model's figures: the two-way metrics at the spam cut-off (a
    message below it counts as not flagged, unsure or not), the ham
    cut-off, the three-way confusion matrix, and the sweep if asked."""
    matrix = confusion_matrix(is_spam, scores, cutoffs.spam, cutoffs.ham)
    result = classification_metrics(is_spam, scores, cutoffs.spam)
    result["ham_cutoff"] = cutoffs.ham
    result["unsure_ham"] = matrix["ham"]["unsure"]
    result["unsure_spam"] = matrix["spam"]["unsure"]
    result["confusion_matrix"] = matrix
    if sweep:
        band = cutoffs.ham if cutoffs.ham < cutoffs.spam else None
        result["sweep"] = threshold_sweep(
            is_spam, scores, sweep_cutoffs(is_spam, scores), band, keep=cutoffs.spam
        )
    return result


def _plot(
    plots_dir: str | Path,
    names: list[str],
    is_spam: np.ndarray,
    all_scores: list[np.ndarray],
    cutoffs: list[Cutoffs],
) -> list[Path]:
    from spamcli.plots import PlotSeries, write_plots

    series = [
        PlotSeries(name, is_spam, scores, model_cutoffs.spam, model_cutoffs.ham)
        for name, scores, model_cutoffs in zip(names, all_scores, cutoffs, strict=True)
    ]
    try:
        return write_plots(plots_dir, series)
    except OSError as error:
        raise SpamcliError(
            f"cannot write the plots to {plots_dir}: {error.strerror or error}"
        ) from None
