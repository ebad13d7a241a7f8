"""Labelled mail → each message's buckets and date, parsed in worker processes.

Training needs two things of a message once it is read: its buckets (the
network's input, features.py) and its Date (for the chronological split).
``read_labelled`` reads the corpus one message at a time
(corpus.CorpusReader) and parses each (mail → tokens → buckets) in worker
processes, a few batches in flight, as scoring.classify does, so memory
holds the buckets of the messages read so far and a few batches of raw
bytes, never the corpus' bytes: 2.4 KB a message of the SpamAssassin corpus
(uint32 buckets) against 6 KB of mail, and a 1 MB message costs its
buckets only.

The result is load_corpus's: the same messages kept, by the same rule (of
identical bytes, the first in (source, label, sha256) order), the same
counts and fingerprint. Identical bytes have identical buckets and date, so
each distinct message is parsed once, whichever copy is kept.

For training on several machines a ``Shard`` names the messages this
process parses: by the SHA-256 of their bytes, so that the shards do not
depend on the order of the sources and a message's copies fall to one
worker. The others are still read (decompressing and hashing are a fifth
of the cost of parsing) for their date, label and digest: every worker
knows the whole corpus' counts, fingerprint and split, and parses its share.

Where the time goes (the 6,046 SpamAssassin messages, one process, 2-core
machine, CPU seconds): reading the .tar.bz2 archives and hashing 1.5;
parsing MIME and HTML 3.5; tokenizing 1.2; hashing n-grams into buckets
(feature_array) 1.3; the date 0.1.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spamcli.config import SPAM
from spamcli.corpus import (
    CorpusReader,
    ReadFailure,
    fingerprint,
    label_counts,
    require_counts,
)
from spamcli.features import FeatureSpec, feature_array
from spamcli.mail import message_date
from spamcli.tokens import message_tokens

# Messages are sent to the workers in batches: one message's raw bytes
# (6 KB) are too little to be worth a round trip of their own.
BATCH_SIZE = 64
# Batches in flight per worker: enough that a worker never waits for the
# next, few enough that the raw bytes in flight stay a few megabytes.
BATCHES_IN_FLIGHT_PER_WORKER = 2
# Workers start once this many messages have been parsed here: a forkserver
# and its workers take about 0.3 s to start, the parsing of 500 messages
# about as long, so a small corpus (the tests') is parsed in this process.
PARALLEL_AFTER = 500


@dataclass(frozen=True)
class Shard:
    """The messages one of ``count`` workers parses: those whose SHA-256,
    as a number, is ``index`` modulo ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist")

    def holds(self, sha256: str) -> bool:
        return shard_of(sha256, self.count) == self.index


def shard_of(sha256: str, count: int) -> int:
    """The shard of a message, by the first 64 bits of its SHA-256."""
    return int(sha256[:16], 16) % count


@dataclass(slots=True)
class ReadMessage:
    key: str
    """Its source: ties in date order are broken by it."""
    is_spam: bool
    sha256: str
    date: float | None
    buckets: np.ndarray | None
    """uint32, sorted: 4 bytes a bucket, where a list of Python ints took 36.
    None when another worker's shard holds the message."""


@dataclass
class ReadCorpus:
    messages: list[ReadMessage]
    """The messages kept, in load_corpus's order (by source)."""
    counts: dict[str, int]
    fingerprint: str
    duplicates: int
    unlabelled: int
    failures: list[ReadFailure]
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of reading and parsing (``read``), and the CPU time the
    parsing took, wherever it ran: ``tokenize`` (MIME, HTML and tokens, as
    tokens.message_tokens does them together), ``hash`` (feature_array) and
    ``date``."""


def read_labelled(
    sources: Sequence[str | Path],
    ham_paths: Sequence[str | Path],
    spam_paths: Sequence[str | Path],
    header_policy: str,
    features: FeatureSpec,
    minimum_per_class: int,
    progress: Callable[[int], None] | None = None,
    replaced_digests: Collection[str] = (),
    shard: Shard | None = None,
    workers: int | None = None,
    parallel_after: int = PARALLEL_AFTER,
) -> ReadCorpus:
    """Read the labelled mail and parse each distinct message once.

    Messages whose SHA-256 is in ``replaced_digests`` are left out after
    deduplication, as training leaves them out of load_corpus' result.
    Raises CorpusError as load_corpus and require_both_classes do (too few
    of a class: fewer than ``minimum_per_class``).

    ``workers``: processes that parse (default: one per core; 1 parses
    here). ``parallel_after``: messages parsed here before they start.
    ``shard``: parse only its messages; the others get no buckets.
    """
    started = time.monotonic()
    reader = CorpusReader(sources, ham_paths, spam_paths, progress)
    parser = _Parser(header_policy, features, workers, parallel_after)
    # sha256 → (date, buckets); a message's copies are parsed once.
    parsed: dict[str, tuple[float | None, np.ndarray | None]] = {}
    with parser:
        for entry in reader:
            if entry.sha256 in parsed or entry.sha256 in parser.pending:
                continue
            if shard is not None and not shard.holds(entry.sha256):
                parsed[entry.sha256] = (message_date(entry.raw), None)
                continue
            parser.add(entry.sha256, entry.raw)
            for digest, result in parser.ready():
                parsed[digest] = result
        for digest, result in parser.finish():
            parsed[digest] = result
    kept = reader.kept()
    duplicates = len(reader.found) - len(kept)
    if replaced_digests:
        kept = [entry for entry in kept if entry[2] not in replaced_digests]
    counts = label_counts(label for _source, label, _digest in kept)
    require_counts(counts, minimum_per_class)
    messages = [
        ReadMessage(source, label == SPAM, digest, *parsed[digest])
        for source, label, digest in kept
    ]
    return ReadCorpus(
        messages,
        counts,
        fingerprint((label, digest) for _source, label, digest in kept),
        duplicates,
        reader.unlabelled,
        reader.failures,
        {"read": time.monotonic() - started, **parser.seconds},
    )


# --------------------------------------------------------------------------
# Parsing


def message_features(
    raw: bytes, header_policy: str, features: FeatureSpec
) -> tuple[float | None, np.ndarray]:
    """A message's date and buckets (uint32), as training reads them."""
    text = message_tokens(raw, header_policy, features.max_tokens)
    return message_date(raw), _compact(feature_array(text, features))


def _compact(indices: np.ndarray) -> np.ndarray:
    return indices.astype(np.uint32)


def _parse_batch(
    raws: list[bytes], header_policy: str, features: FeatureSpec
) -> tuple[list[tuple[float | None, np.ndarray]], dict[str, float]]:
    """message_features of each message, and the CPU time of each step."""
    seconds = {"tokenize": 0.0, "hash": 0.0, "date": 0.0}
    results = []
    for raw in raws:
        before = time.process_time()
        # Only the tokens the model reads: the parts of a message after them
        # are never decoded (the same buckets, 8 % less time here).
        text = message_tokens(raw, header_policy, features.max_tokens)
        tokenized = time.process_time()
        buckets = _compact(feature_array(text, features))
        hashed = time.process_time()
        date = message_date(raw)
        seconds["tokenize"] += tokenized - before
        seconds["hash"] += hashed - tokenized
        seconds["date"] += time.process_time() - hashed
        results.append((date, buckets))
    return results, seconds


# A worker's settings, given once when it starts (see _start_worker).
_worker_settings: tuple[str, FeatureSpec] | None = None


def _start_worker(header_policy: str, bits: int, max_tokens: int | None) -> None:
    global _worker_settings
    _worker_settings = (header_policy, FeatureSpec(bits=bits, max_tokens=max_tokens))
    # Ctrl-C reaches the whole process group: the parent stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _parse_in_worker(
    raws: list[bytes],
) -> tuple[list[tuple[float | None, np.ndarray]], dict[str, float]]:
    assert _worker_settings is not None, "worker started without its settings"
    return _parse_batch(raws, *_worker_settings)


class _Parser:
    """Parses messages in batches, here or in worker processes, and hands
    back results in the order the messages were added."""

    def __init__(
        self,
        header_policy: str,
        features: FeatureSpec,
        workers: int | None,
        parallel_after: int,
    ) -> None:
        self.header_policy = header_policy
        self.features = features
        self.worker_count = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.parallel_after = parallel_after
        self.pool: Executor | None = None
        self.tried_workers = self.worker_count == 1
        self.parsed_here = 0
        self.batch_digests: list[str] = []
        self.batch_raws: list[bytes] = []
        self.pending: set[str] = set()
        self.queue: collections.deque[tuple[list[str], Any]] = collections.deque()
        self.seconds = {"tokenize": 0.0, "hash": 0.0, "date": 0.0}

    def __enter__(self) -> _Parser:
        return self

    def __exit__(self, *exception: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def add(self, digest: str, raw: bytes) -> None:
        self.pending.add(digest)
        self.batch_digests.append(digest)
        self.batch_raws.append(raw)
        if len(self.batch_digests) >= BATCH_SIZE:
            self._submit()

    def ready(self) -> Iterator[tuple[str, tuple[float | None, np.ndarray]]]:
        """Results the caller must take now, so that at most a few batches
        are in flight."""
        limit = self.worker_count * BATCHES_IN_FLIGHT_PER_WORKER if self.pool else 0
        while len(self.queue) > limit:
            yield from self._results(self.queue.popleft())

    def finish(self) -> Iterator[tuple[str, tuple[float | None, np.ndarray]]]:
        if self.batch_digests:
            self._submit()
        while self.queue:
            yield from self._results(self.queue.popleft())

    def _submit(self) -> None:
        digests, raws = self.batch_digests, self.batch_raws
        self.batch_digests, self.batch_raws = [], []
        if self.pool is None and not self.tried_workers and self.parsed_here >= self.parallel_after:
            self.tried_workers = True
            self.pool = _start_workers(self.worker_count, self.header_policy, self.features)
        if self.pool is None:
            self.parsed_here += len(raws)
            self.queue.append((digests, _parse_batch(raws, self.header_policy, self.features)))
        else:
            self.queue.append((digests, self.pool.submit(_parse_in_worker, raws)))

    def _results(
        self, entry: tuple[list[str], Any]
    ) -> Iterator[tuple[str, tuple[float | None, np.ndarray]]]:
        digests, outcome = entry
        if isinstance(outcome, Future):
            outcome = outcome.result()
        results, seconds = outcome
        for name, value in seconds.items():
            self.seconds[name] += value
        for digest, result in zip(digests, results, strict=True):
            self.pending.discard(digest)
            yield digest, result


def _start_workers(worker_count: int, header_policy: str, features: FeatureSpec) -> Executor | None:
    """Worker processes for parsing, or None where none can be started.

    fork where this process has not loaded TensorFlow: a forked worker
    starts in microseconds with everything imported. Forking a process that
    has (``spamcli train`` imports it first) is unsafe, its threads' locks
    copied mid-use, so the workers are then forked from a forkserver, a
    fresh interpreter that imports this module and nothing more.
    """
    import concurrent.futures
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    context: Any
    if "tensorflow" not in sys.modules and "fork" in methods:
        context = multiprocessing.get_context("fork")
    elif "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        return None
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=worker_count,
        mp_context=context,
        initializer=_start_worker,
        initargs=(header_policy, features.bits, features.max_tokens),
    )
