"""Why a message scored as it did: the n-grams that moved its score most.

The model reads a message as the set of buckets its n-grams hash to (see
features.py), so the natural question "what did this word do?" has an
exact answer: score the message again without that n-gram's bucket. The
effect of an n-gram is ``score - score_without``: positive pushed the
message towards spam, negative towards ham. It is the score's own change,
not a gradient or an approximation, so it accounts for the hidden layers and
the normalisation; effects do not add up to the score, since the layers are
not linear.

Every removal is computed at once, without re-reading the message: the
first layer's input for "all buckets but j" is the sum of all the kernel
rows minus row j, scaled by 1/sqrt(k-1) instead of 1/sqrt(k). One matrix of
k + 1 rows goes through the Dense layers, so a message of 2,000 distinct
n-grams costs one small matrix product, not 2,000 scorings.

Two n-grams of one message that hash to the same bucket cannot be told
apart by the model: they are one entry, named by both, joined by BOTH.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from spamcli.corpus import RawMessage, ReadFailure
from spamcli.features import feature_ngrams
from spamcli.mail import message_id
from spamcli.scoring import Cutoffs, Scorer

# Between the n-grams of one bucket. No token holds a space or "|", so the
# name reads back unambiguously.
BOTH = " | "
# How many n-grams towards spam and towards ham an explanation lists.
DEFAULT_TOP = 10


@dataclass(frozen=True)
class Effect:
    """How much one n-gram moved the score: score minus the score without it."""

    token: str
    effect: float


@dataclass(frozen=True)
class Explanation:
    """A score and its strongest effects, largest first: those that pushed the
    score up (effect > 0), then those that pushed it down, most negative last."""

    score: float
    effects: list[Effect]


@dataclass(frozen=True)
class ExplainedClassification:
    source: str
    label: str
    score: float
    explanation: Explanation
    index: int | None = None
    message_id: str | None = None


def explain_text(scorer: Scorer, text: str, top: int = DEFAULT_TOP) -> Explanation:
    """The score of a token string (see tokens.message_tokens) and the ``top``
    n-grams that raised it most and the ``top`` that lowered it most."""
    import numpy as np

    if top < 0:
        raise ValueError(f"top must not be negative, not {top}")
    grams_by_bucket = feature_ngrams(text, scorer.features)
    present = np.fromiter(grams_by_bucket, dtype=np.intp, count=len(grams_by_bucket))
    count = present.size
    rows = scorer.first_layer_rows(present)
    total = rows.sum(axis=0)
    # Row 0: the message as it is; row 1 + j: without n-gram j.
    sums = np.vstack([total[np.newaxis, :], total - rows])
    counts = np.concatenate([[count], np.full(count, count - 1)])
    scores = scorer.score_first_layer_sums(sums, counts)
    score = float(scores[0])
    effects = score - scores[1:]
    # Largest effect first; among equal effects, the n-gram that sorts first.
    order = np.lexsort((present, -effects))
    raising = order[effects[order] > 0][:top]
    lowering = order[effects[order] < 0][::-1][:top][::-1]
    chosen = [int(position) for position in np.concatenate([raising, lowering])]
    return Explanation(
        score=score,
        effects=[
            Effect(BOTH.join(grams_by_bucket[int(present[position])]), float(effects[position]))
            for position in chosen
        ],
    )


def explain_messages(
    scorer: Scorer,
    messages: Iterable[RawMessage | ReadFailure],
    cutoffs: Cutoffs | None = None,
    top: int = DEFAULT_TOP,
) -> Iterator[ExplainedClassification | ReadFailure]:
    """Classify and explain messages in order, one at a time in this process;
    read failures pass through in place. ``cutoffs``: the model's own unless given.

    The score is computed with NumPy, as predict scores batches; it agrees
    with the standard-library score of a single message to about 1e-15.
    """
    cutoffs = cutoffs or scorer.cutoffs()
    for message in messages:
        if isinstance(message, ReadFailure):
            yield message
            continue
        explanation = explain_text(scorer, scorer.message_text(message.raw), top)
        yield ExplainedClassification(
            message.source,
            cutoffs.label(explanation.score),
            explanation.score,
            explanation,
            message.index,
            message_id(message.raw),
        )
