"""Training on several machines: tf.distribute.MultiWorkerMirroredStrategy,
configured by TensorFlow's standard TF_CONFIG environment variable.

Every machine runs the same ``spamcli train --distribute multi-worker`` on
the same sources, with its own TF_CONFIG (the cluster's addresses and its
own place in it). Each worker

- reads every message (decompressing and hashing are a fifth of the cost of
  parsing) but parses only its shard, the messages whose SHA-256 falls to
  it (reading.Shard), so each knows the whole corpus' counts, fingerprint
  and chronological split and holds the buckets of its share;
- checks that every other worker read the same corpus (the first exchange);
- gets from the others the buckets of the held-out messages, the newest
  12 %, which every worker then holds: each computes the same validation
  loss on the same weights, so all stop at the same epoch, and replays the
  same held-out mail through the online learner;
- trains on its shard's part of each batch: the batches are the ones
  single-process training makes (the same seeded shuffle of the same
  messages, batch_size of them), each worker computing the gradient of the
  rows it holds, and the optimizer stepping with their sum (an all-reduce;
  the first kernel's gradient is IndexedSlices, all-gathered). So N
  workers compute single-process training's steps, with the batch split
  N ways, and end with the same weights as each other.

The chief (the ``chief`` task, else ``worker`` 0) writes the model folder;
the others write nothing (no checkpoint is involved: the folder is written
by NumPy, with no collective operation, so a temporary folder, TensorFlow's
convention for non-chief workers, would hold nothing anyone reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from spamcli.errors import SpamcliError
from spamcli.reading import Shard

MULTI_WORKER = "multi-worker"
DISTRIBUTIONS = (MULTI_WORKER,)
TF_CONFIG = "TF_CONFIG"
# Task types a MultiWorkerMirroredStrategy cluster may have: the chief
# trains as a worker does.
TASK_TYPES = ("chief", "worker")


class ClusterError(SpamcliError):
    """TF_CONFIG is missing or wrong, or the workers disagree."""


@dataclass(frozen=True)
class Cluster:
    """This process's place among the workers, from TF_CONFIG."""

    workers: int
    index: int
    """0 for the chief, then the workers in TF_CONFIG's order (TensorFlow's
    own numbering: a ``chief`` task first, then ``worker`` 0, 1, ...)."""
    task: str
    """As TF_CONFIG names it, e.g. ``worker 1``."""

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.index, self.workers)


def cluster_from_environment(environment: Mapping[str, str] | None = None) -> Cluster:
    """The cluster TF_CONFIG describes; ClusterError when it is missing or wrong."""
    environment = os.environ if environment is None else environment
    text = environment.get(TF_CONFIG)
    if not text:
        raise ClusterError(
            f"--distribute {MULTI_WORKER} needs the {TF_CONFIG} environment variable: "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}, with its own index on each machine'
        )
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ClusterError(f"{TF_CONFIG} is not JSON: {error}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ClusterError(f'{TF_CONFIG} needs a "cluster" and a "task" object')
    others = sorted(set(cluster) - set(TASK_TYPES))
    if others:
        raise ClusterError(
            f"{TF_CONFIG} has {', '.join(others)} tasks; MultiWorkerMirroredStrategy "
            "takes chief and worker tasks only"
        )
    addresses: list[tuple[str, int]] = []
    for task_type in TASK_TYPES:
        tasks = cluster.get(task_type, [])
        if not isinstance(tasks, list) or not all(isinstance(host, str) for host in tasks):
            raise ClusterError(f'{TF_CONFIG}: "{task_type}" must be a list of "host:port"')
        if task_type == "chief" and len(tasks) > 1:
            raise ClusterError(f"{TF_CONFIG} names {len(tasks)} chiefs; there can be one")
        addresses.extend((task_type, index) for index in range(len(tasks)))
    this_task = (task.get("type"), task.get("index", 0))
    if this_task not in addresses:
        raise ClusterError(
            f"{TF_CONFIG}: this task ({this_task[0]} {this_task[1]}) is not in the cluster"
        )
    return Cluster(len(addresses), addresses.index(this_task), f"{this_task[0]} {this_task[1]}")


def start_strategy(cluster: Cluster) -> Any:
    """The MultiWorkerMirroredStrategy of TF_CONFIG's cluster.

    Made before any other TensorFlow operation runs, as it must be. One
    replica a worker (CPU training): gradients are summed over the workers.
    """
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver(),
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        ),
    )
    if strategy.num_replicas_in_sync != cluster.workers:
        raise ClusterError(
            f"the strategy has {strategy.num_replicas_in_sync} replicas for "
            f"{cluster.workers} workers; spamcli trains with one replica a worker "
            "(hide any GPU: CUDA_VISIBLE_DEVICES=)"
        )
    return strategy


def all_gather(strategy: Any, cluster: Cluster, array: np.ndarray) -> list[np.ndarray]:
    """Every worker's ARRAY (int64, one dimension, any length), in worker
    order, on every worker: a collective, so every worker must call it."""
    import tensorflow as tf

    def gathered(values: np.ndarray) -> np.ndarray:
        tensor = tf.constant(values, dtype=tf.int64)
        per_replica = strategy.experimental_distribute_values_from_function(lambda _: tensor)
        return np.asarray(strategy.gather(per_replica, axis=0).numpy())

    local = np.asarray(array, dtype=np.int64).reshape(-1)
    # Who sent what, and how much: the replicas' order is the strategy's.
    sizes = gathered(np.array([cluster.index, local.size], dtype=np.int64)).reshape(-1, 2)
    data = gathered(local)
    by_worker: dict[int, np.ndarray] = {}
    position = 0
    for index, size in sizes:
        by_worker[int(index)] = data[position : position + size]
        position += size
    if sorted(by_worker) != list(range(cluster.workers)):
        raise ClusterError(
            f"the workers are numbered {sorted(by_worker)}, not 0 to {cluster.workers - 1}"
        )
    return [by_worker[index] for index in range(cluster.workers)]


def check_same_corpus(
    strategy: Any, cluster: Cluster, fingerprint: str, counts: Mapping[str, int]
) -> None:
    """ClusterError on every worker unless every worker read the same corpus:
    a worker that found a different one (a missing file, another copy of
    the folder) would train on batches that do not match the others'."""
    summary = np.array(
        [*bytes.fromhex(fingerprint), counts.get("ham", 0), counts.get("spam", 0)], np.int64
    )
    for index, theirs in enumerate(all_gather(strategy, cluster, summary)):
        if not np.array_equal(theirs, summary):
            raise ClusterError(
                f"worker {index} read another corpus than this worker ({cluster.task}): "
                f"{int(theirs[-2])} ham and {int(theirs[-1])} spam, fingerprint "
                f"{bytes(theirs[:-2].astype(np.uint8).tolist()).hex()[:12]}..., against "
                f"{counts.get('ham', 0)} ham and {counts.get('spam', 0)} spam, "
                f"{fingerprint[:12]}...; give every worker the same sources"
            )


def exchange_buckets(
    strategy: Any, cluster: Cluster, held: list[tuple[int, np.ndarray | None]]
) -> list[np.ndarray]:
    """The buckets of every message of HELD, a list the same on every worker
    of (shard, buckets or None): each worker gives those of its shard."""
    mine = [buckets for shard, buckets in held if shard == cluster.index]
    if any(buckets is None for buckets in mine):
        raise ValueError("a message of this worker's shard has no buckets")
    lengths = np.array([len(buckets) for buckets in mine if buckets is not None], np.int64)
    flat = (
        np.concatenate([buckets for buckets in mine if buckets is not None])
        if mine
        else np.zeros(0, np.int64)
    )
    all_lengths = all_gather(strategy, cluster, lengths)
    all_flat = all_gather(strategy, cluster, flat)
    pieces: list[list[np.ndarray]] = []
    for lengths_of, flat_of in zip(all_lengths, all_flat, strict=True):
        ends = np.cumsum(lengths_of)
        pieces.append(
            [
                flat_of[end - length : end].astype(np.uint32)
                for end, length in zip(ends, lengths_of, strict=True)
            ]
        )
    positions = [0] * cluster.workers
    result = []
    for shard, _buckets in held:
        result.append(pieces[shard][positions[shard]])
        positions[shard] += 1
    return result


@contextlib.contextmanager
def collective_work() -> Iterator[None]:
    """The exchanges and the fit: Ctrl-C and SIGTERM end the process at once,
    and a lost worker is a ClusterError.

    A worker waits inside TensorFlow's C++ for the others (for one that was
    never started, forever), where no Python signal handler runs:
    spamcli.interruption's handlers would leave Ctrl-C and SIGTERM unheard.
    Nothing is written meanwhile (the folder is written after the fit), so
    the operating system's default, ending the process, loses nothing.
    """
    import tensorflow as tf

    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {number: signal.signal(number, signal.SIG_DFL) for number in signals}
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        yield
    except (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
    ) as error:
        # TensorFlow's message is a graph dump; gRPC's own words say what happened.
        reason = re.search(r'grpc_message:"([^"]+)"', str(error.message))
        raise ClusterError(
            f"lost touch with another worker ({type(error).__name__}"
            + (f": {reason.group(1)}" if reason else "")
            + "); nothing was saved: start every worker again"
        ) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
