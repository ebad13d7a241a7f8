"""Classification metrics from labels and scores. No I/O, no TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


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
    }


THRESHOLD_MARGIN = 1e-6


def threshold_for_false_positive_rate(
    ham_scores: Sequence[float] | np.ndarray, target_rate: float, minimum: float
) -> float:
    """The lowest cut-off at which at most ``target_rate`` of these ham are flagged."""
    ordered = np.sort(np.asarray(ham_scores, dtype=np.float64))[::-1]
    allowed = int(np.floor(target_rate * ordered.size))
    if allowed >= ordered.size:
        return minimum
    # Just above the first ham that may not be flagged: by a margin wider
    # than the rounding differences between ways of computing a score (the
    # Keras model, and scoring.py's two paths, differ by 1e-7 at most).
    cut_off = float(ordered[allowed]) + THRESHOLD_MARGIN
    return min(max(cut_off, minimum), 1.0)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
