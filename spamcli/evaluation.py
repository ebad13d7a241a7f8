"""How good a model is on labelled mail: metrics as data, never printed here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spamcli.config import SPAM
from spamcli.corpus import RawMessage, load_corpus
from spamcli.metrics import classification_metrics
from spamcli.scoring import Classification, Scorer, classify


def evaluate(
    model_dir: str | Path,
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    threshold: float | None = None,
) -> dict[str, Any]:
    """Score every labelled message and return the metrics at the threshold
    (the model's own unless given), plus what could not be read."""
    scorer = Scorer(model_dir)
    corpus = load_corpus(sources, ham_paths, spam_paths)
    messages = (RawMessage(message.source, message.raw) for message in corpus.messages)
    scores = [item.score for item in classify(scorer, messages) if isinstance(item, Classification)]
    is_spam = [message.label == SPAM for message in corpus.messages]
    cut_off = scorer.threshold if threshold is None else threshold
    result = classification_metrics(is_spam, scores, cut_off)
    result["duplicates"] = corpus.duplicates
    result["unreadable"] = len(corpus.failures)
    return result
