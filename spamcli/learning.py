"""Corrections without a retrain: a model folder learns messages a user labels.

The folder keeps every learned message (``learned.jsonl``: its SHA-256, its
label and the token string the model saw) and, from the first correction
on, the trained Dense weights (``base_weights.npz``, the layout of
``weights.npz``). Every ``learn`` and ``forget`` recomputes the weights from
that base and the whole learned set, never from the previous weights, so the
weights are a function of (base, learned set): learning a message twice
changes nothing, and forgetting every learned message gives back the trained
model exactly.

The fine-tuning runs in Keras on ``model.keras`` rather than in NumPy on the
export: ``model.keras`` stays the source of truth the export is derived from
and checked against (as training does), so the two never disagree. It costs
the TensorFlow import: a learn of five messages into the built-in model took
6.1 s of CPU here, 4.7 s of it importing TensorFlow and Keras; NumPy would
save those but leave ``model.keras`` holding stale weights.

What changes, and why so little: only the rows of the first Dense layer's
kernel that belong to n-grams of the learned messages, the rarer n-grams
far more than the common ones (see LEARNING_RATE), and never the
out-of-vocabulary row. Biases and the later layers are frozen, so a message
that shares no known n-gram with the learned ones scores exactly as before.
The vocabulary is fixed: n-grams the model never saw in training all share
the out-of-vocabulary row and cannot be learned; a message made only of new
words cannot be learned at all until the next ``spamcli train --resume``.
A model whose evidence sits in a few frequent n-grams (a small vocabulary)
may not bring a learned message to its side within MAX_STEPS; the report
says so.

The cut-offs are not moved: no validation messages are kept to choose
them again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spamcli import artifacts, interruption
from spamcli.config import HAM, SPAM, TrainingConfig
from spamcli.corpus import RawMessage, ReadFailure
from spamcli.errors import InputError, ModelError
from spamcli.tokens import message_tokens

if TYPE_CHECKING:
    import numpy as np

    from spamcli.training import TrainingReport

# Fine-tuning: full-batch gradient descent on the first Dense kernel, each
# row's step scaled by (its vocabulary index / the vocabulary size) squared.
# The vectorizer numbers n-grams by falling training frequency, so the index
# is a frequency rank: "the" (1) barely moves, an n-gram seen a few times in
# training (near the end of the vocabulary) takes the full step, and the
# out-of-vocabulary row (0) never moves. With one step size for every row,
# a message's score moves with its cosine similarity to the learned ones,
# and common words make every message similar: learning five spam the
# built-in model called ham (scores 0.06 to 0.66) moved the other 831 test
# ham of the random split by 0.025 to 0.063 on average and flagged 6 to 13
# of them (gradient descent at several step sizes, or Adam, which gives
# every touched weight the same step whatever its gradient). Scaled by rank
# squared: 0.0017 on average, no ham flagged, one more spam caught, and the
# other messages' ROC AUC unchanged (0.99992). Those figures are for the
# model of the time, whose bag was L2-normalised. LEARNING_RATE looks large
# because the gradient of one row is small (1/n of the message's, for n
# n-grams, now that the bag is divided by its count). On the built-in model
# of the `content` policy, learning the 5 test spam it scored lowest (0.09
# to 0.34): 10 took 90 steps, 30 took 30 and 100 took 8, for the same
# outcome (test ham moved 0.0017 on average; the most, 0.49 or 0.54 at
# 100). Weighting each message's loss by n, to give every message the step
# an L2-normalised bag gets, overshot: one step at 10 flagged 60 more test
# ham.
LEARNING_RATE = 30.0
# Steps of about 0.1 s each here; a message with too few known, rare
# n-grams may not reach its side within them (the report says so).
MAX_STEPS = 200
SEED = 1
# Learned messages vectorized at a time: the vectorizer's dense outputs for
# 64 messages take about 60 MB before they are made sparse.
FEATURE_BATCH = 64
# A learned message must end up this far on its side of the cut-off, in
# log-odds: with the built-in model's spam cut-off 0.8439 a learned spam
# stops at 0.899 or above. A margin keeps the float32/float64 difference
# between Keras and the export (below 1e-7) from ever flipping a verdict,
# and the steps few.
LOGIT_MARGIN = 0.5
# The export must give the Keras model's scores on the learned messages to
# this tolerance, as after training (training.EXPORT_TOLERANCE).
EXPORT_TOLERANCE = 1e-5

_DIGEST = re.compile(r"[0-9a-f]{64}")
LEARNED_FORMAT = (
    "one JSON object a line, sorted by sha256: sha256 (of the message's raw bytes), "
    "label (ham or spam), tokens (the token string the model read, see tokens.py)"
)


@dataclass(frozen=True)
class LearnedMessage:
    digest: str
    label: str
    tokens: str


@dataclass(frozen=True)
class Correction:
    """One message given to ``learn``: its scores before and after (None when
    forgotten, or when nothing was written)."""

    source: str
    label: str
    outcome: str  # "added", "relabelled", "unchanged", "forgotten", "not learned"
    score_before: float
    score_after: float | None


@dataclass
class LearnReport:
    model_dir: Path
    corrections: list[Correction]
    failures: list[ReadFailure]
    changed: bool
    learned_ham: int
    learned_spam: int
    steps: int = 0
    all_on_correct_side: bool = True
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------
# The learned set on disk


def read_learned(model_dir: str | Path) -> dict[str, LearnedMessage]:
    """The learned messages of a model folder by digest (empty if none)."""
    path = Path(model_dir) / artifacts.LEARNED_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read {path}: {error}") from None
    learned: dict[str, LearnedMessage] = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ModelError(f"{path}, line {number}: {error}") from None
        if not isinstance(record, dict):
            raise ModelError(f"{path}, line {number}: not a JSON object")
        digest, label, tokens = record.get("sha256"), record.get("label"), record.get("tokens")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ModelError(f"{path}, line {number}: no valid sha256")
        if label not in (HAM, SPAM) or not isinstance(tokens, str):
            raise ModelError(f"{path}, line {number}: no valid label and tokens")
        learned[digest] = LearnedMessage(digest, label, tokens)
    return learned


def learned_count(model_dir: str | Path) -> int:
    """How many messages a folder has learned; 0 for anything unreadable."""
    try:
        return len(read_learned(model_dir))
    except ModelError:
        return 0


def _learned_summary(messages: Sequence[LearnedMessage]) -> dict[str, Any]:
    """The part of metadata.json's ``learned`` entry every writer gives."""
    return {
        "messages": len(messages),
        "ham": sum(message.label == HAM for message in messages),
        "spam": sum(message.label == SPAM for message in messages),
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "file": artifacts.LEARNED_FILE,
        "format": LEARNED_FORMAT,
    }


def _write_learned(directory: Path, learned: dict[str, LearnedMessage]) -> None:
    with open(directory / artifacts.LEARNED_FILE, "w", encoding="utf-8") as learned_file:
        for digest in sorted(learned):
            message = learned[digest]
            record = {"sha256": digest, "label": message.label, "tokens": message.tokens}
            learned_file.write(json.dumps(record, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def model_lock(model_dir: str | Path) -> Iterator[None]:
    """An exclusive lock on a model folder, held on a file beside it (the
    folder itself is replaced by every write, and a lock inside it would go
    with it). The lock file is left in place: removing it would let a
    waiting process lock a file no newcomer opens."""
    target = Path(model_dir).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    try:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ModelError(f"cannot lock {target}: {error.strerror or error}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


# --------------------------------------------------------------------------
# learn and forget


def learn(
    model_dir: str | Path,
    spam: Iterable[RawMessage | ReadFailure] = (),
    ham: Iterable[RawMessage | ReadFailure] = (),
    forget: bool = False,
) -> LearnReport:
    """Learn the messages with their labels (or, with ``forget``, drop them
    from the learned set), then recompute the weights from the base weights
    and the whole learned set and replace the folder atomically.

    A message learned again with the same label changes nothing; with the
    other label, it is relabelled. When the learned set ends up unchanged,
    nothing is written. Unreadable inputs are returned in the report.
    """
    started = time.monotonic()
    given: list[tuple[str, str, str, str]] = []  # source, label, digest, tokens
    failures: list[ReadFailure] = []
    model_path = Path(model_dir)
    with model_lock(model_path):
        metadata = artifacts.read_metadata(model_path)
        header_policy = metadata["header_policy"]
        labels_by_digest: dict[str, str] = {}
        for label, messages in ((SPAM, spam), (HAM, ham)):
            for item in messages:
                if isinstance(item, ReadFailure):
                    failures.append(item)
                    continue
                digest = hashlib.sha256(item.raw).hexdigest()
                if digest in labels_by_digest:
                    if labels_by_digest[digest] != label:
                        raise InputError(f"{item.source} is given both as ham and as spam")
                    continue  # the same bytes twice: learned once
                labels_by_digest[digest] = label
                given.append((item.source, label, digest, message_tokens(item.raw, header_policy)))
        if not given and failures:
            first = failures[0]
            raise InputError(f"no message could be read (first: {first.source}: {first.reason})")

        learned = read_learned(model_path)
        updated = dict(learned)
        outcomes: list[str] = []
        for _source, label, digest, tokens in given:
            known = learned.get(digest)
            if forget:
                outcomes.append("forgotten" if known else "not learned")
                updated.pop(digest, None)
            else:
                outcomes.append(
                    "added"
                    if known is None
                    else "unchanged"
                    if known.label == label
                    else "relabelled"
                )
                updated[digest] = LearnedMessage(digest, label, tokens)

        from spamcli.scoring import Scorer

        texts = [tokens for _source, _label, _digest, tokens in given]
        scores_before = _scores(Scorer(model_path), texts)
        report = LearnReport(
            model_dir=model_path,
            corrections=[],
            failures=failures,
            changed=updated != learned,
            learned_ham=sum(message.label == HAM for message in updated.values()),
            learned_spam=sum(message.label == SPAM for message in updated.values()),
        )
        if report.changed:
            steps, all_correct = _relearn(model_path, metadata, updated)
            report.steps, report.all_on_correct_side = steps, all_correct
            scores_after: list[float | None] = list(_scores(Scorer(model_path), texts))
        else:
            scores_after = [None] * len(given)
    for (source, label, _digest, _tokens), outcome, before, after in zip(
        given, outcomes, scores_before, scores_after, strict=True
    ):
        report.corrections.append(Correction(source, label, outcome, before, after))
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    report.seconds = time.monotonic() - started
    return report


def _scores(scorer: Any, texts: list[str]) -> list[float]:
    return [float(score) for score in scorer.score_texts(texts)] if texts else []


def _relearn(
    model_path: Path, metadata: dict[str, Any], learned: dict[str, LearnedMessage]
) -> tuple[int, bool]:
    """Fine-tune from the base weights on the whole learned set and replace
    the folder. Returns the steps taken and whether every learned message
    ended on its side of the cut-offs by the margin."""
    from spamcli.training import _export

    # The folder is written anew, in the current format version: an older
    # one's export description would not describe the export written below.
    artifacts.upgrade_metadata(metadata)
    base_path = model_path / artifacts.BASE_WEIGHTS_FILE
    # No base yet: the folder's weights are the trained ones.
    base_source = base_path if base_path.is_file() else model_path / artifacts.WEIGHTS_FILE
    base = _read_weights(base_source)
    model = artifacts.load_keras_model(model_path)
    dense_layers = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    if len(dense_layers) != len(base):
        raise ModelError(f"{base_source} does not match the Keras model in {model_path}")
    for layer, (kernel, bias) in zip(dense_layers, base, strict=True):
        if tuple(layer.kernel.shape) != kernel.shape or tuple(layer.bias.shape) != bias.shape:
            raise ModelError(f"{base_source} does not match the Keras model in {model_path}")
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)

    ordered = [learned[digest] for digest in sorted(learned)]
    texts = [message.tokens for message in ordered]
    spam_cutoff = float(metadata["threshold"])
    ham_cutoff = float(metadata.get("ham_cutoff", spam_cutoff))
    steps, all_correct, keras_scores = (
        _fine_tune(
            model, dense_layers, texts, [m.label == SPAM for m in ordered], spam_cutoff, ham_cutoff
        )
        if ordered
        else (0, True, None)
    )

    learned_metadata = metadata.get("learned")
    # The training export's description, kept to be restored when every
    # learned message is forgotten.
    base_export = (
        learned_metadata["base_export"]
        if isinstance(learned_metadata, dict) and "base_export" in learned_metadata
        else metadata["export"]
    )

    def write_contents(directory: Path) -> None:
        # Files this module does not write (a model card, say) are kept.
        for path in model_path.iterdir():
            if path.is_file() and path.name not in _WRITTEN_FILES:
                shutil.copy2(path, directory / path.name)
        model.save(directory / artifacts.KERAS_FILE)
        export_description = artifacts.write_export(directory, _export(model))
        if ordered:
            shutil.copyfile(base_source, directory / artifacts.BASE_WEIGHTS_FILE)
            _write_learned(directory, learned)
            metadata["export"] = export_description
            metadata["learned"] = {
                **_learned_summary(ordered),
                "base_weights": artifacts.BASE_WEIGHTS_FILE,
                "fine_tuning": {
                    "trained": "rows of the first Dense kernel for the learned n-grams, "
                    "each step scaled by (row index / vocabulary size) squared",
                    "learning_rate": LEARNING_RATE,
                    "max_steps": MAX_STEPS,
                    "logit_margin": LOGIT_MARGIN,
                    "seed": SEED,
                    "steps": steps,
                    "all_on_correct_side": all_correct,
                },
                "base_export": base_export,
            }
            artifacts.write_metadata(directory, metadata)
            _check_export(directory, texts, keras_scores)
        else:
            metadata["export"] = base_export
            metadata.pop("learned", None)
        artifacts.write_metadata(directory, metadata)

    artifacts.write_model_dir(model_path, write_contents)
    return steps, all_correct


# Files the learned folder is written with; anything else is copied over.
_WRITTEN_FILES = frozenset(
    {
        *artifacts.REQUIRED_FILES,
        *artifacts.OPTIONAL_FILES,
        artifacts.LEARNED_FILE,
        artifacts.BASE_WEIGHTS_FILE,
    }
)


def _read_weights(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of each Dense layer from a file in the weights.npz layout."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as arrays:
            stored = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read {path}: {error}") from None
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    while f"dense_{len(layers)}.kernel" in stored:
        name = f"dense_{len(layers)}"
        bias = stored.get(f"{name}.bias")
        if bias is None:
            raise ModelError(f"{path} has no {name}.bias")
        layers.append((stored[f"{name}.kernel"], bias))
    if not layers:
        raise ModelError(f"{path} holds no Dense weights")
    return layers


def _fine_tune(
    model: Any,
    dense_layers: list[Any],
    texts: list[str],
    is_spam: list[bool],
    spam_cutoff: float,
    ham_cutoff: float,
) -> tuple[int, bool, np.ndarray]:
    """At most MAX_STEPS gradient steps on the first Dense kernel, each on
    the learned messages not yet past their cut-off by the margin. Returns
    the steps, whether all are past it, and the final scores."""
    import keras
    import numpy as np
    import tensorflow as tf

    from spamcli.model import normalization_layer

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    # The input to the Dense stack: the normalised bag of n-grams, the same
    # for every step. Dropout is left out (inference), so every step is a
    # deterministic function of the weights. It is kept sparse: a message
    # has a few hundred of the 50,000 n-grams. As dense rows, 4,000 learned
    # spam took learn to 4,081 MiB of peak RSS (861 KiB more a message);
    # sparse, 809 MiB (11 KiB a message; bench/learn_memory.py).
    features_layer = normalization_layer(model)[1]
    features_model = keras.Model(model.inputs, features_layer.output)
    features = tf.sparse.concat(
        axis=0,
        sp_inputs=[
            tf.sparse.from_dense(
                features_model(
                    tf.constant(texts[start : start + FEATURE_BATCH], dtype=tf.string),
                    training=False,
                )
            )
            for start in range(0, len(texts), FEATURE_BATCH)
        ],
    )
    targets = np.array(is_spam, dtype=np.float32)
    targets_tensor = tf.constant(targets)
    spam_target = _shift(spam_cutoff, LOGIT_MARGIN)
    ham_target = _shift(ham_cutoff, -LOGIT_MARGIN)
    first_kernel = dense_layers[0].kernel
    rank = np.arange(first_kernel.shape[0], dtype=np.float32)
    row_steps = tf.constant((LEARNING_RATE * (rank / len(rank)) ** 2)[:, None])

    def forward() -> Any:
        first, *others = dense_layers
        hidden = first.activation(
            tf.sparse.sparse_dense_matmul(features, first_kernel.value) + first.bias.value
        )
        for layer in others:
            hidden = layer(hidden)
        return hidden

    # One graph for the step: 25 ms a step eagerly on a small model, most
    # of it Python. A message past its cut-off by the margin weighs nothing
    # in the loss; once none is left the update is exactly zero, and the
    # step that finds that changes nothing. So does a step whose messages
    # have no known n-gram but the out-of-vocabulary one, or only ReLU units
    # that are off: nothing more can be learned, and the loop stops.
    @tf.function
    def step() -> Any:
        with tf.GradientTape() as tape:
            scores = tf.reshape(forward(), [-1])
            wrong = tf.where(targets_tensor > 0, scores < spam_target, scores >= ham_target)
            weights = tf.cast(wrong, tf.float32)
            losses = keras.losses.binary_crossentropy(targets_tensor[:, None], scores[:, None])
            loss = tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        update = tape.gradient(loss, first_kernel.value) * row_steps
        first_kernel.assign_sub(update)
        return tf.logical_and(tf.reduce_any(wrong), tf.reduce_any(update != 0))

    steps = 0
    while steps < MAX_STEPS and bool(step()):
        interruption.check()  # a Ctrl-C TensorFlow swallowed (see spamcli.interruption)
        steps += 1
    final = np.asarray(forward(), dtype=np.float64).reshape(-1)
    wrong = np.where(targets > 0, final < spam_target, final >= ham_target)
    return steps, not wrong.any(), final


def _shift(cutoff: float, logit_margin: float) -> float:
    """The cut-off moved by a margin in log-odds."""
    clipped = min(max(cutoff, 1e-6), 1 - 1e-6)
    logit = math.log(clipped / (1 - clipped)) + logit_margin
    return 1 / (1 + math.exp(-logit))


def _check_export(directory: Path, texts: list[str], keras_scores: np.ndarray | None) -> None:
    import numpy as np

    from spamcli.scoring import Scorer

    if keras_scores is None:
        return
    exported = Scorer(directory).score_texts(texts)
    difference = float(np.max(np.abs(exported - keras_scores), initial=0.0))
    if difference > EXPORT_TOLERANCE:
        raise ModelError(
            f"the exported model differs from the Keras model by {difference:.2g}; not saved"
        )


# --------------------------------------------------------------------------
# train --resume


def train_with_learned(
    model_dir: str | Path,
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    config: TrainingConfig | None = None,
    reading_progress: Callable[[int], None] | None = None,
    fit_verbosity: int = 0,
) -> tuple[TrainingReport, int]:
    """Train a new model into a model folder with its learned messages added
    to the training data (their labels win over a copy in the corpus), and
    keep them in the new folder. The new folder's trained weights are the
    base of the next ``learn``. Returns the report and the number of learned
    messages included."""
    from spamcli.training import train

    config = config or TrainingConfig()
    model_path = Path(model_dir)
    with model_lock(model_path):
        metadata = artifacts.read_metadata(model_path)
        learned = read_learned(model_path)
        if learned and metadata["header_policy"] != config.header_policy:
            raise ModelError(
                f"the learned messages in {model_path} were read with --headers "
                f"{metadata['header_policy']}; train with the same headers to include them"
            )
        ordered = [learned[digest] for digest in sorted(learned)]

        def keep_learned(directory: Path, new_metadata: dict[str, Any]) -> None:
            if not ordered:
                return
            _write_learned(directory, learned)
            new_metadata["learned"] = {**_learned_summary(ordered), "included_in_training": True}

        report = train(
            model_path,
            sources,
            ham_paths,
            spam_paths,
            config,
            reading_progress=reading_progress,
            fit_verbosity=fit_verbosity,
            extra_texts=[(message.tokens, message.label == SPAM) for message in ordered],
            replaced_digests=set(learned),
            add_to_folder=keep_learned,
        )
    return report, len(ordered)
