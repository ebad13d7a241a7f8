"""A mailbox replayed as it arrived: each message classified, then learned.

This is the TREC spam track's immediate-feedback protocol, and how a filter
is used: mail comes in order, each message gets a verdict, and the user's
correction (or confirmation) is learned before the next one arrives. The
figures are those of the verdicts given before each message was learned
(progressive validation), so no message is ever scored by a model that has
learned it.

The model the replay starts from is never written: its weights are read
into memory (online.Network) and learned there. Where the folder keeps the
held-out messages that set its cut-off (calibration.py), the cut-off moves
after each message learned, as ``spamcli learn`` moves it, and each verdict
is given at the cut-off in force; those verdicts are counted apart
(metrics["moving_cut_off"]), the other figures staying at the cut-off the
replay started with.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spamcli import artifacts
from spamcli.calibration import Calibration
from spamcli.config import HAM, SPAM, TrainingConfig
from spamcli.corpus import ReadFailure, load_corpus
from spamcli.evaluation import model_metrics
from spamcli.features import feature_array
from spamcli.mail import message_date
from spamcli.online import Network
from spamcli.scoring import Cutoffs
from spamcli.tokens import message_tokens

ORDERS = ("date", "name")
TRAIN_ON = ("everything", "error")
# The learning curve counts errors in windows of this many messages.
CURVE_WINDOW = 100
# With no trained model there is no cut-off chosen on validation mail:
# even odds.
SCRATCH_THRESHOLD = 0.5
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass
class ReplayedMessage:
    source: str
    label: str
    score: float  # before the message was learned
    verdict: str
    learned: bool
    cut_off: float  # the spam cut-off its verdict was given at


@dataclass
class ReplayReport:
    messages: list[ReplayedMessage]
    metrics: dict[str, Any]
    threshold: float  # the spam cut-off at the start
    started_from: str
    order: str
    train_on: str
    learning_curve: list[dict[str, int]]
    failures: list[ReadFailure] = field(default_factory=list)
    duplicates: int = 0
    seconds: float = 0.0
    learn_seconds: float = 0.0


def replay(
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    model_dir: str | Path | None = None,
    scratch: TrainingConfig | None = None,
    order: str = "date",
    train_on: str = "everything",
    sweep: bool = False,
    plots_dir: str | Path | None = None,
) -> ReplayReport:
    """Replay labelled mail through a model (MODEL_DIR), or through a network
    that has learned nothing (SCRATCH: the settings of ``spamcli train``),
    in ORDER; learn each message after its verdict (TRAIN_ON ``everything``)
    or only the misclassified ones (``error``). The metrics are evaluate's
    (evaluation.model_metrics, with ``sweep``), at the cut-off the model
    starts with, and, where it moves, metrics["moving_cut_off"]: the
    verdicts' counts; ``plots_dir``: evaluate's figures and
    learning_curve.png, the errors in each window of CURVE_WINDOW messages."""
    if order not in ORDERS or train_on not in TRAIN_ON:
        raise ValueError(f"order must be one of {ORDERS} and train_on one of {TRAIN_ON}")
    if (model_dir is None) == (scratch is None):
        raise ValueError("give a model folder or the settings of a network from scratch")
    started = time.monotonic()
    calibration: Calibration | None = None
    if model_dir is not None:
        metadata = artifacts.read_metadata(model_dir)
        calibration = Calibration.read(model_dir)
        network = Network.from_folder(model_dir, metadata)
        header_policy = metadata["header_policy"]
        threshold = float(metadata["threshold"])
        started_from = str(model_dir)
    else:
        assert scratch is not None
        from spamcli.training import network_spec

        network = Network.from_scratch(network_spec(scratch), scratch.learning_rule(), scratch.seed)
        header_policy = scratch.header_policy
        threshold = SCRATCH_THRESHOLD
        started_from = "nothing"
    corpus = load_corpus(sources, ham_paths, spam_paths)
    keyed = [
        (arrival_key(message.source, message.raw, order), message) for message in corpus.messages
    ]
    keyed.sort(key=lambda pair: pair[0])
    replayed: list[ReplayedMessage] = []
    learn_seconds = 0.0
    cut_off = threshold
    features = network.spec.features
    for _key, message in keyed:
        indices = feature_array(
            message_tokens(message.raw, header_policy, features.max_tokens), features
        )
        is_spam = message.label == SPAM
        score = network.score(indices)
        verdict = SPAM if score >= cut_off else HAM
        learned = train_on == "everything" or verdict != message.label
        replayed.append(
            ReplayedMessage(message.source, message.label, score, verdict, learned, cut_off)
        )
        if learned:
            learn_started = time.monotonic()
            network.learn(indices, float(is_spam))
            if calibration is not None:
                calibration.refresh(network)
                cut_off = calibration.cut_offs(network, metadata)[0]
            learn_seconds += time.monotonic() - learn_started
    is_spam_array = np.array([message.label == SPAM for message in replayed], dtype=bool)
    scores = np.array([message.score for message in replayed], dtype=np.float64)
    metrics = model_metrics(is_spam_array, scores, Cutoffs(threshold, threshold), sweep)
    if calibration is not None:
        metrics["moving_cut_off"] = verdict_counts(replayed, cut_off)
    if plots_dir is not None:
        metrics["plots"] = [
            str(path) for path in _plot(plots_dir, is_spam_array, scores, threshold, replayed)
        ]
    return ReplayReport(
        messages=replayed,
        metrics=metrics,
        threshold=threshold,
        started_from=started_from,
        order=order,
        train_on=train_on,
        learning_curve=learning_curve(replayed),
        failures=corpus.failures,
        duplicates=corpus.duplicates,
        seconds=time.monotonic() - started,
        learn_seconds=learn_seconds,
    )


def _plot(
    plots_dir: str | Path,
    is_spam: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    replayed: Sequence[ReplayedMessage],
) -> list[Path]:
    from spamcli.plots import PlotSeries, write_learning_curve, write_plots

    series = [PlotSeries("before learning each message", is_spam, scores, threshold, threshold)]
    return [
        *write_plots(plots_dir, series),
        write_learning_curve(plots_dir, learning_curve(replayed)),
    ]


def verdict_counts(replayed: Sequence[ReplayedMessage], last_cut_off: float) -> dict[str, Any]:
    """The two-way figures of the verdicts as given, each at the cut-off in
    force then, and the first and LAST_CUT_OFF, the one the replay ended with."""
    flagged_ham = sum(m.label != SPAM and m.verdict == SPAM for m in replayed)
    caught = sum(m.label == SPAM and m.verdict == SPAM for m in replayed)
    ham = sum(m.label != SPAM for m in replayed)
    spam = len(replayed) - ham
    return {
        "false_positives": flagged_ham,
        "true_positives": caught,
        "false_negatives": spam - caught,
        "true_negatives": ham - flagged_ham,
        "recall": caught / spam if spam else None,
        "false_positive_rate": flagged_ham / ham if ham else None,
        "first_threshold": replayed[0].cut_off if replayed else None,
        "last_threshold": last_cut_off,
    }


def learning_curve(replayed: Sequence[ReplayedMessage]) -> list[dict[str, int]]:
    """Errors (false positives and negatives) in each window of CURVE_WINDOW messages."""
    curve = []
    for start in range(0, len(replayed), CURVE_WINDOW):
        window = replayed[start : start + CURVE_WINDOW]
        curve.append(
            {
                "first": start + 1,
                "messages": len(window),
                "false_positives": sum(m.label == HAM and m.verdict == SPAM for m in window),
                "false_negatives": sum(m.label == SPAM and m.verdict == HAM for m in window),
            }
        )
    return curve


def arrival_key(source: str, raw: bytes, order: str) -> tuple[Any, ...]:
    """Arrival order: by Date (messages without one last, ties by source),
    or by the last number in the file name (TREC's inmail.N)."""
    if order == "name":
        name = source.rsplit("/", 1)[-1]
        match = _NUMBER.search(name)
        return (match is None, int(match.group(1)) if match else 0, source)
    date = message_date(raw)
    return (date is None, date or 0.0, source)
