"""The rules that turn held-out scores into a model's cut-offs, with the
standard library only: ``spamcli train`` applies them to the mail it held
out, and ``spamcli learn`` applies them again as learning moves that mail's
scores (calibration.py), in a process that does not import NumPy."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from spamcli.config import MINIMUM_THRESHOLD

# Just above a ham or below a spam: by a margin wider than the rounding
# differences between ways of computing a score (the Keras model, and
# scoring.py's two paths, differ by 1e-7 at most).
THRESHOLD_MARGIN = 1e-6


def threshold_for_false_positive_rate(
    ham_scores: Iterable[float], target_rate: float, minimum: float
) -> float:
    """The lowest cut-off at which at most ``target_rate`` of these ham are flagged."""
    ordered = sorted(map(float, ham_scores), reverse=True)
    allowed = math.floor(target_rate * len(ordered))
    if allowed >= len(ordered):
        return minimum
    # Just above the first ham that may not be flagged.
    cut_off = ordered[allowed] + THRESHOLD_MARGIN
    return min(max(cut_off, minimum), 1.0)


def threshold_for_recall(
    spam_scores: Iterable[float], target_recall: float, minimum: float = 0.0
) -> float:
    """The highest cut-off at which at least ``target_recall`` of these spam are flagged.

    Just below the score of the spam that must still be flagged, by the same
    margin as above, so that every way of computing its score flags it.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError("target_recall must be above 0 and at most 1")
    ordered = sorted(map(float, spam_scores), reverse=True)
    if not ordered:
        return minimum
    # The 1e-9 absorbs the rounding of target_recall * size (0.95 * 20 is
    # 19.000000000000004), which would otherwise demand one spam too many.
    required = max(1, math.ceil(target_recall * len(ordered) - 1e-9))
    cut_off = ordered[required - 1] - THRESHOLD_MARGIN
    return min(max(cut_off, minimum), 1.0)


def cut_off_for_false_positive_rate(
    is_spam: Iterable[bool], scores: Iterable[float], target_rate: float, minimum: float
) -> float:
    """train's spam cut-off: midway, in log-odds, between the lowest cut-off
    (at least ``minimum``) that flags at most ``target_rate`` of these ham and
    the lowest of these spam it catches.

    Every cut-off in that gap flags the same ham and spam. The lowest sits
    just above a ham, so that a new ham scoring a little higher (as new mail,
    and mail after learning, does) is flagged; the highest sits just below a
    spam, so that a new spam scoring a little lower is missed. Midway gives
    both the same room, as a maximum-margin classifier does.
    """
    pairs = list(zip(map(bool, is_spam), map(float, scores), strict=True))
    lowest = threshold_for_false_positive_rate(
        (score for spam, score in pairs if not spam), target_rate, minimum
    )
    caught = [score for spam, score in pairs if spam and score >= lowest]
    if not caught:
        return lowest
    # Below the lowest spam it catches by the same margin, so that every way
    # of computing that spam's score still flags it.
    highest = min(min(caught) - THRESHOLD_MARGIN, 1.0)
    # At a lowest of 0 (a minimum of 0 and no ham) its log-odds are minus
    # infinity, and so is the midpoint's.
    if highest <= lowest or lowest <= 0.0:
        return lowest
    # Midway in log-odds is where the odds are the geometric mean of the two
    # odds; both ends lie strictly between 0 and 1 here.
    odds_against = math.sqrt((1.0 - lowest) * (1.0 - highest) / (lowest * highest))
    return min(max(1.0 / (1.0 + odds_against), lowest), highest)


def model_cut_offs(
    is_spam: Sequence[bool],
    scores: Sequence[float],
    target_false_positive_rate: float,
    target_recall: float | None = None,
    unsure_rate: float | None = None,
) -> tuple[float, float | None]:
    """(the spam cut-off, the ham cut-off or None) that ``spamcli train``
    sets on held-out mail: with ``target_recall`` the highest cut-off that
    flags that share of the spam (no MINIMUM_THRESHOLD floor: a floor would
    break the recall asked for), else cut_off_for_false_positive_rate; with
    ``unsure_rate`` a ham cut-off by the same rule at that looser rate,
    never above the spam cut-off."""
    if target_recall is not None:
        spam_scores = (score for spam, score in zip(is_spam, scores, strict=True) if spam)
        threshold = threshold_for_recall(spam_scores, target_recall)
    else:
        threshold = cut_off_for_false_positive_rate(
            is_spam, scores, target_false_positive_rate, MINIMUM_THRESHOLD
        )
    if unsure_rate is None:
        return threshold, None
    ham_scores = (score for spam, score in zip(is_spam, scores, strict=True) if not spam)
    ham_cutoff = threshold_for_false_positive_rate(ham_scores, unsure_rate, 0.0)
    return threshold, min(ham_cutoff, threshold)
