"""Classification metrics from labels and scores. No I/O, no TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spamcli.config import HAM, MINIMUM_THRESHOLD, SPAM, UNSURE
from spamcli.cutoffs import cut_off_for_false_positive_rate, threshold_for_recall


def classification_metrics(
    is_spam: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, Any]:
    """Counts and rates at ``threshold`` (score >= threshold is spam), and ROC AUC.

    Rates with an empty denominator are None, as is ROC AUC when only one
    class is present: a number there would be made up.
    """
    truth = np.asarray(is_spam, dtype=bool)
    flagged = np.asarray(scores, dtype=np.float64) >= threshold
    true_positives = int(np.sum(truth & flagged))
    false_positives = int(np.sum(~truth & flagged))
    true_negatives = int(np.sum(~truth & ~flagged))
    false_negatives = int(np.sum(truth & ~flagged))
    spam = true_positives + false_negatives
    ham = true_negatives + false_positives
    roc_auc = None
    if spam and ham:
        from sklearn.metrics import roc_auc_score

        roc_auc = float(roc_auc_score(truth, np.asarray(scores, dtype=np.float64)))
    return {
        "messages": int(truth.size),
        "ham": ham,
        "spam": spam,
        "threshold": float(threshold),
        "true_positives": true_positives,
        "false_positives": false_positives,
        "true_negatives": true_negatives,
        "false_negatives": false_negatives,
        "precision": _ratio(true_positives, true_positives + false_positives),
        "recall": _ratio(true_positives, spam),
        "false_positive_rate": _ratio(false_positives, ham),
        "roc_auc": roc_auc,
        "one_minus_auc_percent": one_minus_auc_percent(roc_auc),
    }


def one_minus_auc_percent(roc_auc: float | None) -> float | None:
    """The TREC spam track's summary figure, 100 * (1 - ROC AUC): the share,
    in per cent, of (ham, spam) pairs the scores put in the wrong order. It
    tells good filters apart where the AUC itself shows only 0.999..."""
    return None if roc_auc is None else 100.0 * (1.0 - roc_auc)


def confusion_matrix(
    is_spam: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    spam_cutoff: float,
    ham_cutoff: float,
) -> dict[str, dict[str, int]]:
    """Messages counted by true label (rows) and verdict (columns): a score
    at or above ``spam_cutoff`` is spam, below ``ham_cutoff`` ham, and in
    between unsure (as scoring.Cutoffs.label decides)."""
    truth = np.asarray(is_spam, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    verdicts = {
        SPAM: values >= spam_cutoff,
        HAM: values < min(ham_cutoff, spam_cutoff),
    }
    verdicts[UNSURE] = ~verdicts[SPAM] & ~verdicts[HAM]
    return {
        label: {verdict: int(np.sum(rows & flagged)) for verdict, flagged in verdicts.items()}
        for label, rows in ((HAM, ~truth), (SPAM, truth))
    }


# The spam cut-offs a sweep shows (``sweep_cutoffs``): every 0.05 from 0.05
# to 0.95, then finer towards 1, where a model trained without label
# smoothing puts its cut-off; and, because a fixed grid misses the range a
# model's scores actually use (the built-in model's top out near 0.96, so
# that 0.92 to 0.96 is where its cut-off lives), the cut-offs that
# `train --target-fpr` and `train --target-recall` would choose on this mail,
# at these targets:
SWEEP_GRID = (
    *(round(0.05 * step, 2) for step in range(1, 20)),
    0.96,
    0.97,
    0.98,
    0.99,
    0.995,
    0.999,
)
SWEEP_FALSE_POSITIVE_RATES = (0.0, 0.001, 0.01)
SWEEP_RECALLS = (0.99, 0.95, 0.9)


def sweep_cutoffs(
    is_spam: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> dict[float, list[dict[str, float]]]:
    """The cut-offs to sweep, each with the training rules that would choose
    it on this mail (as metadata's ``threshold_rule`` names them): the grid,
    and the rule-chosen ones."""
    truth = np.asarray(is_spam, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    cutoffs: dict[float, list[dict[str, float]]] = {float(value): [] for value in SWEEP_GRID}
    if (~truth).any():
        for rate in SWEEP_FALSE_POSITIVE_RATES:
            chosen = cut_off_for_false_positive_rate(truth, values, rate, MINIMUM_THRESHOLD)
            cutoffs.setdefault(chosen, []).append({"target_false_positive_rate": rate})
    if truth.any():
        for recall in SWEEP_RECALLS:
            chosen = threshold_for_recall(values[truth], recall)
            cutoffs.setdefault(chosen, []).append({"target_recall": recall})
    return cutoffs


def threshold_sweep(
    is_spam: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    cutoffs: dict[float, list[dict[str, float]]],
    ham_cutoff: float | None = None,
    keep: float | None = None,
) -> list[dict[str, Any]]:
    """False positives, false-positive rate, recall and (with a ham cut-off)
    the unsure share at each spam cut-off of ``cutoffs`` (cut-off -> the
    rules that chose it), lowest first.

    A grid cut-off that gives the same counts as the row before it is left
    out: it tells nothing new. The cut-off ``keep`` (the one in force) and
    rule-chosen ones always stay. A cut-off below the ham cut-off narrows
    the band to nothing there, as ``Scorer.cutoffs`` does. Spam is ``score
    >= threshold`` at every row, so a higher threshold never raises the
    false-positive rate or the recall.
    """
    truth = np.asarray(is_spam, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    ham_count, spam_count = int(np.sum(~truth)), int(np.sum(truth))
    rows: list[dict[str, Any]] = []
    previous: tuple[int, ...] | None = None
    for threshold in sorted({*cutoffs, *([] if keep is None else [keep])}):
        flagged = values >= threshold
        false_positives = int(np.sum(~truth & flagged))
        true_positives = int(np.sum(truth & flagged))
        row: dict[str, Any] = {
            "threshold": float(threshold),
            "false_positives": false_positives,
            "false_positive_rate": _ratio(false_positives, ham_count),
            "true_positives": true_positives,
            "recall": _ratio(true_positives, spam_count),
        }
        counts: tuple[int, ...] = (false_positives, true_positives)
        if ham_cutoff is not None:
            unsure = int(np.sum(~flagged & (values >= min(ham_cutoff, threshold))))
            row["ham_cutoff"] = float(min(ham_cutoff, threshold))
            row["unsure"] = unsure
            row["unsure_share"] = _ratio(unsure, int(truth.size))
            counts = (*counts, unsure)
        row["rules"] = cutoffs.get(threshold, [])
        if counts != previous or row["rules"] or threshold == keep:
            rows.append(row)
        previous = counts
    return rows


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
