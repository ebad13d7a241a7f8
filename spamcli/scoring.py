"""Score messages with a model folder's weights, without TensorFlow.

``import tensorflow`` alone costs 5.6 s and 560 MiB here, longer than a mail
filter may take for a whole message; the folder's weights give the same
scores without it. The first layer never builds the input vector: its
output is the sum of the kernel rows of the buckets present, times
1/sqrt(n), which is what the network computes, in a fraction of the time.

Two ways to compute the same scores: a few messages are scored with the
standard library alone, reading only the kernel rows they use from a memory
map, because importing NumPy would cost more than the whole message; batches
are scored with NumPy. Both compute in double precision, so they agree to
about 1e-15, far inside the margin above the threshold (metrics.py).
"""

from __future__ import annotations

import collections
import math
import operator
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spamcli import artifacts
from spamcli.artifacts import LEAKY_SLOPE
from spamcli.config import EXIT_ERROR, EXIT_HAM, EXIT_SPAM, EXIT_UNSURE, HAM, SPAM, UNSURE
from spamcli.corpus import RawMessage, ReadFailure
from spamcli.errors import ModelError
from spamcli.features import batch_features, feature_array, feature_indices, input_value
from spamcli.mail import message_id
from spamcli.tokens import message_tokens

if TYPE_CHECKING:
    from concurrent.futures import Executor

    import numpy as np

# Up to this many messages at once are scored without NumPy, by a scorer
# made with light=True (see Scorer.score_messages).
LIGHT_BATCH_LIMIT = 8
# Reads of a model folder that `train` or `learn` keeps replacing before giving up.
LOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class Verdict:
    label: str
    score: float


@dataclass(frozen=True)
class Cutoffs:
    """A score at or above ``spam`` is spam, below ``ham`` is ham, and in
    between unsure. Equal cut-offs: no unsure band."""

    spam: float
    ham: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.ham <= self.spam <= 1.0:
            raise ValueError(
                f"the ham cut-off {self.ham} must not be above the spam cut-off {self.spam}"
            )

    def label(self, score: float) -> str:
        if score >= self.spam:
            return SPAM
        return HAM if score < self.ham else UNSURE


def exit_status(labels: Iterable[str], failed: bool = False) -> int:
    """The exit status for ``--exit-status``: an error if anything failed,
    else spam if any message is spam, else unsure if any is, else ham."""
    if failed:
        return EXIT_ERROR
    seen = set(labels)
    if SPAM in seen:
        return EXIT_SPAM
    return EXIT_UNSURE if UNSURE in seen else EXIT_HAM


class Scorer:
    """A loaded model: raw messages in, spam probabilities out.

    LIGHT: score a few messages at once with the standard library, which
    spares a process that scores one message and exits NumPy's import (40
    ms). A long-running process (the daemon) passes False: one message then
    takes 0.12 ms with NumPy against 0.83 ms without (the SpamAssassin
    corpora's messages; the two agree to 1e-15).
    """

    def __init__(self, model_dir: str | Path, *, light: bool = True) -> None:
        self.model_dir = Path(model_dir)
        self.light = light
        # `train` and `learn` replace a model folder with one atomic
        # exchange, which may fall between the reads of its files: had the
        # folder changed by the end, the files may be of two models, so they
        # are read again.
        for _attempt in range(LOAD_ATTEMPTS):
            folder = _folder_identity(self.model_dir)
            try:
                self._load()
            except ModelError:
                if _folder_identity(self.model_dir) == folder:
                    raise
                continue
            if _folder_identity(self.model_dir) == folder:
                return
        raise ModelError(f"{self.model_dir} changed each time it was read; try again")

    def _load(self) -> None:
        self.metadata: dict[str, Any] = artifacts.read_metadata(self.model_dir)
        self.header_policy: str = self.metadata["header_policy"]
        self.threshold: float = float(self.metadata["threshold"])
        self.ham_cutoff: float = float(self.metadata.get("ham_cutoff", self.threshold))
        # Checks every shape now, so that a broken model fails here, whole.
        self._weights = artifacts.open_weights(self.model_dir, self.metadata)
        self.network = self._weights.network
        self.features = self.network.features
        # The small layers, as the standard-library path reads them.
        self._light_layers = [
            (
                layer.activation,
                self._weights.values(f"{layer.name}.bias")[0],
                self._weights.values(f"{layer.name}.kernel") if index else None,
            )
            for index, layer in enumerate(self.network.layers)
        ]
        # The same layers as NumPy arrays, made on first use.
        self._dense_layers: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        self._first_kernel: np.ndarray | None = None
        self._kernel_overlay: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def cutoffs(self, spam: float | None = None, ham: float | None = None) -> Cutoffs:
        """The model's cut-offs, either overridden. A spam cut-off given alone
        keeps a model without an unsure band without one, and narrows a
        model's band where it falls below the ham cut-off."""
        spam_cutoff = self.threshold if spam is None else spam
        if ham is not None:
            ham_cutoff = ham
        elif self.ham_cutoff >= self.threshold:
            ham_cutoff = spam_cutoff
        else:
            ham_cutoff = min(self.ham_cutoff, spam_cutoff)
        return Cutoffs(spam=spam_cutoff, ham=ham_cutoff)

    def verdict(self, score: float, cutoffs: Cutoffs | None = None) -> Verdict:
        return Verdict((cutoffs or self.cutoffs()).label(score), score)

    def message_text(self, raw: bytes) -> str:
        """The tokens of a raw message the model reads: its token string's
        first ``max_tokens``, the rest of the message never tokenized."""
        return message_tokens(raw, self.header_policy, self.features.max_tokens)

    def message_indices(self, raw: bytes) -> list[int]:
        """A raw message's buckets: the network's input."""
        return feature_indices(self.message_text(raw), self.features)

    def score_messages(self, raw_messages: Iterable[bytes]) -> list[float]:
        """Spam probabilities of raw messages (see the class's LIGHT)."""
        texts = [self.message_text(raw) for raw in raw_messages]
        if self.light and len(texts) <= LIGHT_BATCH_LIMIT:
            return [self.score_text_light(text) for text in texts]
        return [float(score) for score in self.score_texts(texts)]

    def score_text_light(self, text: str) -> float:
        """One token string's spam probability, with the standard library only."""
        present = feature_indices(text, self.features)
        (first_activation, first_bias, _), *rest = self._light_layers
        first_row = self._weights.first_row
        total = [0.0] * len(first_bias)
        for index in present:
            total = list(map(operator.add, total, first_row(index)))
        scale = input_value(len(present))
        hidden = [
            _activate_one(value * scale + bias, first_activation)
            for value, bias in zip(total, first_bias, strict=True)
        ]
        for activation, bias, rows in rest:
            output = list(bias)
            for value, row in zip(hidden, rows or (), strict=True):
                if value:
                    output = [
                        sum_ + value * weight for sum_, weight in zip(output, row, strict=True)
                    ]
            hidden = [_activate_one(value, activation) for value in output]
        if not 0.0 <= hidden[0] <= 1.0:
            raise self._no_score()
        return hidden[0]

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Spam probabilities for token strings (see tokens.message_tokens), with NumPy."""
        import numpy as np

        messages, buckets = batch_features(texts, self.features)
        counts = np.bincount(messages, minlength=len(texts))
        # One gather for the batch, then each message's rows summed: 0.024
        # ms a message, where np.add.reduceat over the batch took 0.05 ms.
        rows = self._kernel_rows(buckets)
        sums = np.zeros((len(texts), rows.shape[1]), dtype=np.float64)
        start = 0
        for row, end in enumerate(np.cumsum(counts).tolist()):
            if end > start:
                sums[row] = rows[start:end].sum(axis=0, dtype=np.float64)
            start = end
        scores = self.score_first_layer_sums(sums, counts)
        if not np.all((scores >= 0.0) & (scores <= 1.0)):
            raise self._no_score()
        return scores

    def _no_score(self) -> ModelError:
        # Only weights that are not finite numbers (NaN, infinity) give a
        # sigmoid outside [0, 1]. Checking every weight on load would read
        # the whole first kernel, which a one-message filter never does.
        return ModelError(
            f"{self.model_dir}: the model's weights give no score (not a number); "
            f"{artifacts.KERNEL_FILE} or {artifacts.WEIGHTS_FILE} is damaged"
        )

    def present_indices(self, text: str) -> np.ndarray:
        """The buckets of a token string, each once, in increasing order."""

        return feature_array(text, self.features)

    def first_layer_rows(self, indices: np.ndarray) -> np.ndarray:
        """The current first kernel's rows for these buckets, in float64."""
        import numpy as np

        return self.first_kernel()[indices].astype(np.float64)

    def _kernel_rows(self, buckets: np.ndarray) -> np.ndarray:
        """The current first kernel's rows for BUCKETS (np.take, 2.5 times
        as fast as kernel[buckets]): first_kernel's once it is built, else
        kernel.npz's with the changed rows laid over them. The daemon
        scores this way, without building the kernel: that copies every
        changed row into the kernel's pages at each reload, and took the
        median TELL of bench/serve.py (100 messages learned, a Python
        client) from 15 to 26 ms."""
        import numpy as np

        if self._first_kernel is not None:
            return np.take(self._first_kernel, buckets, axis=0)
        if self._kernel_overlay is None:
            weights_file = self._weights.weights_file
            self._kernel_overlay = (
                self._weights.kernel_file.array(artifacts.FIRST_KERNEL),
                weights_file.array(artifacts.CHANGED_ROWS).astype(np.intp),
                weights_file.array(artifacts.CHANGED_KERNEL_ROWS),
            )
        kernel, changed, changed_rows = self._kernel_overlay
        rows = np.take(kernel, buckets, axis=0)
        if changed.size:
            # Sorted rows: each bucket's place among them, and whether it is there.
            positions = np.minimum(np.searchsorted(changed, buckets), changed.size - 1)
            present = changed[positions] == buckets
            rows[present] = changed_rows[positions[present]]
        return rows

    def first_kernel(self) -> np.ndarray:
        """The current first kernel as one array: kernel.npz mapped
        copy-on-write, with the rows learning changed written over it. Only
        the pages of rows read (and of rows changed) take memory."""
        if self._first_kernel is None:
            import numpy as np

            kernel = self._weights.kernel_file.copy_on_write(artifacts.FIRST_KERNEL)
            changed = self._weights.weights_file.array(artifacts.CHANGED_ROWS).astype(np.intp)
            if changed.size:
                kernel[changed] = self._weights.weights_file.array(artifacts.CHANGED_KERNEL_ROWS)
            self._first_kernel = kernel
        return self._first_kernel

    def score_first_layer_sums(self, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Spam probabilities from first-layer sums: row i is the sum of the
        kernel rows of ``counts[i]`` distinct buckets, before scaling. The
        same arithmetic as the standard-library path, with the small layers'
        weights as it reads them."""
        import numpy as np

        if self._dense_layers is None:
            # The lists as arrays once, not at each call: a daemon scores
            # one message a call, and the conversion took 3.6 of this
            # function's 13.8 us (the built-in model).
            self._dense_layers = [
                (
                    activation,
                    np.array(bias, dtype=np.float64),
                    None if rows is None else np.array(rows, dtype=np.float64),
                )
                for activation, bias, rows in self._light_layers
            ]
        (first_activation, first_bias, _), *rest = self._dense_layers
        scales = np.array([input_value(int(count)) for count in counts], dtype=np.float64)
        hidden = _activate(sums * scales[:, np.newaxis] + first_bias, first_activation)
        for activation, bias, rows in rest:
            hidden = _activate(hidden @ rows + bias, activation)
        return hidden[:, 0]


def _folder_identity(model_dir: Path) -> tuple[int, int] | None:
    """The folder's device and inode: a replaced folder has another inode."""
    try:
        status = os.stat(model_dir)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _activate_one(value: float, activation: str) -> float:
    if activation == "relu":
        # Written so that NaN passes through, as it does through np.maximum:
        # damaged weights must fail here too, not score as if they were 0.
        return 0.0 if value <= 0.0 else value
    if activation == "leaky_relu":
        return value if value > 0.0 else LEAKY_SLOPE * value  # NaN passes through
    # sigmoid, through exp(-|x|) so that nothing overflows
    decay = math.exp(-abs(value))
    return 1.0 / (1.0 + decay) if value >= 0 else decay / (1.0 + decay)


def _activate(values: np.ndarray, activation: str) -> np.ndarray:
    import numpy as np

    if activation == "relu":
        return np.maximum(values, 0.0)
    if activation == "leaky_relu":
        return np.maximum(values, LEAKY_SLOPE * values)
    decay = np.exp(-np.abs(values))
    return np.where(values >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))


@dataclass(frozen=True)
class Classification:
    source: str
    label: str
    score: float
    index: int | None = None
    """The message's 1-based position in its mbox or Maildir (see RawMessage.index)."""
    message_id: str | None = None
    """Its Message-ID header, e.g. ``<123@example.org>``; None when it has none."""


# Messages are scored in batches: the Dense layers after the first are one
# matrix product per batch instead of one per message.
BATCH_SIZE = 128
# Parsing and tokenizing are most of a message's cost (0.46 ms of 0.57 ms
# here), so once a run has more than one batch, batches go to one worker
# process per core. One message, or a few, stay in this process: starting
# workers would cost more than it saves. Batches in flight per worker, so
# that a whole mail spool is never held in memory at once:
BATCHES_IN_FLIGHT_PER_WORKER = 2


def classify(
    scorer: Scorer,
    messages: Iterable[RawMessage | ReadFailure],
    cutoffs: Cutoffs | None = None,
    workers: int | None = None,
) -> Iterator[Classification | ReadFailure]:
    """Classify messages in order; read failures pass through in place.
    ``cutoffs``: the model's own unless given.

    ``workers`` is the number of processes for runs of more than one batch
    (default: one per core; 1 keeps everything in this process).
    """
    worker_count = max(1, workers if workers is not None else (os.cpu_count() or 1))
    pool: Executor | None = None
    # Each entry: a read failure, or a batch and its pending scores.
    queue: collections.deque[ReadFailure | tuple[list[RawMessage], Any]] = collections.deque()

    def results(entry: ReadFailure | tuple[list[RawMessage], Any]) -> Iterator[Any]:
        if isinstance(entry, ReadFailure):
            yield entry
            return
        batch, scored = entry
        if not isinstance(scored, list):  # a Future from a worker
            scored = scored.result()
        for message, (score, identifier) in zip(batch, scored, strict=True):
            verdict = scorer.verdict(float(score), cutoffs)
            yield Classification(
                message.source, verdict.label, verdict.score, message.index, identifier
            )

    def submit(batch: list[RawMessage]) -> None:
        raws = [message.raw for message in batch]
        if pool is None:
            queue.append((batch, _score_and_identify(scorer, raws)))
        else:
            # The bytes themselves go to the worker: pickling a batch there
            # and its scores back costs 2 us a message (the SpamAssassin
            # corpora's 43 MB), too little for workers reading paths to gain.
            queue.append((batch, pool.submit(_score_in_worker, raws)))

    batch: list[RawMessage] = []
    tried_workers = False
    try:
        for item in messages:
            if isinstance(item, ReadFailure):
                if batch:
                    submit(batch)
                    batch = []
                queue.append(item)
            else:
                batch.append(item)
                if len(batch) >= BATCH_SIZE:
                    if pool is None and worker_count > 1 and not tried_workers:
                        tried_workers = True
                        pool = _start_workers(scorer, worker_count)
                    submit(batch)
                    batch = []
            while len(queue) > worker_count * BATCHES_IN_FLIGHT_PER_WORKER or (
                queue and pool is None
            ):
                yield from results(queue.popleft())
        if batch:
            submit(batch)
        while queue:
            yield from results(queue.popleft())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


# The model a worker scores with: the parent's, inherited through fork.
_worker_scorer: Scorer | None = None


def _start_workers(scorer: Scorer, worker_count: int) -> Executor | None:
    """Worker processes forked from this one, or None where forking is unsafe.

    fork, not spawn or forkserver: a forked worker starts in microseconds with
    the model already loaded, and re-imports no ``__main__``. Forking a
    process that holds threads is unsafe, so a process that has loaded
    TensorFlow (training, or a test run) scores in itself.
    """
    # Imported here: a filter scoring one message never starts workers, and
    # these imports alone cost it 10 ms.
    import concurrent.futures
    import multiprocessing

    if "tensorflow" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return None
    global _worker_scorer
    # Built once here rather than in every worker: they all score batches.
    scorer.first_kernel()
    _worker_scorer = scorer
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=worker_count, mp_context=multiprocessing.get_context("fork")
    )


def _score_and_identify(scorer: Scorer, raws: list[bytes]) -> list[tuple[float, str | None]]:
    """Each message's score and Message-ID. The Message-ID is found where the
    message is scored, in the workers when there are: a regular expression
    over the header block, 11 us a message against 460 us for the tokens
    (the SpamAssassin corpora's 6,046 messages)."""
    scores = scorer.score_messages(raws)
    return [(score, message_id(raw)) for score, raw in zip(scores, raws, strict=True)]


def _score_in_worker(raws: list[bytes]) -> list[tuple[float, str | None]]:
    assert _worker_scorer is not None, "worker started without a model"
    return _score_and_identify(_worker_scorer, raws)
