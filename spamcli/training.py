"""Labelled mail → a fitted, thresholded model folder, and a report.

1. Every message is read, tokenized and hashed once (reading.py: parsed in
   worker processes as it is read, so memory holds every message's
   buckets, never every message's bytes); the network trains on the cached
   sparse inputs, never on text.
2. The newest ``validation_fraction`` of each class, by Date, is held out:
   the newest mail is what the model will meet. Messages without a date
   count as the oldest.
3. Keras fits the network on the rest (model.py: Adagrad, the loss summed
   over each batch), at most ``epochs`` epochs, keeping the epoch of the
   lowest validation loss with its optimizer state.
4. The held-out messages are then replayed in date order through the
   online learner (online.py), as ``spamcli learn`` would take them: each is
   scored first, then learned. The threshold is chosen on those scores, the
   ones new mail gets, and the saved model has learned every message.

With ``distribute="multi-worker"`` the same steps run on several machines
under tf.distribute.MultiWorkerMirroredStrategy (see distributed.py): each
worker parses its shard and computes its shard's part of every batch, and
the chief writes the folder.

Where the time goes, the 6,046 SpamAssassin messages on the 2-core
development machine (bench/training_memory.py --profile): importing
TensorFlow 4.5 s; reading and parsing 3.7 s of wall time on two workers
(CPU: reading the archives 1.5 s, MIME, HTML and tokens 3.9 s, hashing
1.1 s, dates 0.2 s); fitting 6.5 s (one epoch, 336 steps of 16 messages at
13 ms a step, and the validation loss); replaying the held-out 906
messages 0.15 s; writing the 68 MB folder 0.3 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from spamcli import __version__, artifacts, distributed, interruption
from spamcli.artifacts import LayerSpec, NetworkSpec
from spamcli.calibration import Calibration
from spamcli.config import TrainingConfig
from spamcli.corpus import ReadFailure
from spamcli.cutoffs import model_cut_offs
from spamcli.errors import ModelError
from spamcli.features import FeatureSpec, feature_array, input_value
from spamcli.metrics import classification_metrics
from spamcli.reading import read_labelled, shard_of

# The Keras model and the NumPy network it is copied into must agree; above
# this on the validation messages the copy is wrong and nothing is saved.
EXPORT_TOLERANCE = 1e-5


@dataclass
class TrainingReport:
    model_dir: Path
    counts: dict[str, int]
    duplicates: int
    failures: list[ReadFailure]
    training_messages: int
    validation_messages: int
    epochs_run: int
    best_epoch: int
    threshold: float
    ham_cutoff: float
    validation: dict[str, Any]
    seconds: float
    timings: dict[str, float]
    saved: bool = True
    """False on a worker of a distributed training other than the chief,
    which writes the folder."""
    worker: str | None = None
    """Distributed: this process's task, e.g. ``worker 1``."""
    workers: int = 1
    weights_sha256: str = ""
    """Of the network as saved (weights and optimizer state): the same on
    every worker of a distributed training."""


def _compact(indices: np.ndarray) -> np.ndarray:
    """Buckets as uint32: 4 bytes each, where a list of Python ints took 36
    (a pointer and an int object), which at 160,000 messages is gigabytes."""
    return indices.astype(np.uint32)


@dataclass(slots=True)
class _Example:
    indices: np.ndarray  # uint32, sorted; distributed, empty for another worker's
    is_spam: bool
    date: float | None
    key: str  # ties in date order: the source
    shard: int = 0  # distributed: the worker that holds its buckets


def network_spec(config: TrainingConfig) -> NetworkSpec:
    features = FeatureSpec(bits=config.bits, max_tokens=config.max_tokens)
    layers = [
        LayerSpec(f"dense_{index}", units, config.hidden_activation)
        for index, units in enumerate(config.hidden_units)
    ]
    layers.append(LayerSpec(f"dense_{len(layers)}", 1, "sigmoid"))
    return NetworkSpec(features, layers)


def train(
    model_dir: str | Path,
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    config: TrainingConfig | None = None,
    reading_progress: Callable[[int], None] | None = None,
    fit_verbosity: int = 0,
    extra_texts: Sequence[tuple[str, bool]] = (),
    replaced_digests: Collection[str] = (),
    add_to_folder: Callable[[Path, dict[str, Any]], None] | None = None,
    locked: bool = False,
    epoch_progress: Callable[[int, dict[str, Any]], None] | None = None,
    distribute: str | None = None,
) -> TrainingReport:
    """Read the labelled mail, fit the model, choose the threshold, save the folder.

    Keras' own progress (``fit_verbosity`` 1 or 2) is written to stderr.

    ``extra_texts``: more training messages, already tokenized (see
    tokens.message_tokens, with ``config.header_policy``), as (token string,
    is spam) pairs; ``spamcli train --resume`` passes a model's learned
    messages here. They always train, never validate. Corpus messages whose
    SHA-256 is in ``replaced_digests`` are left out, since an extra pair
    stands for them with its own label. ``add_to_folder(folder, metadata)``
    may add files to the new model folder and fields to its metadata before
    both are written.

    The folder's lock (artifacts.model_lock) is held throughout, so a
    ``spamcli learn`` meanwhile waits and then learns into the new model;
    ``locked``: the caller holds it already. ``epoch_progress(epoch, logs)``
    is called after each epoch, as Keras' on_epoch_end, with ``val_loss``.

    ``distribute="multi-worker"``: one worker of a training on several
    machines, configured by TF_CONFIG (see distributed.py); only the chief
    takes the lock and writes the folder (``saved`` in the report).
    """
    cluster = None
    if distribute is not None:
        if distribute not in distributed.DISTRIBUTIONS:
            raise ValueError(f"distribute must be one of {distributed.DISTRIBUTIONS}")
        cluster = distributed.cluster_from_environment()
        # A worker other than the chief writes nothing, so it takes no lock:
        # on a shared folder it would wait for the chief, which waits for it.
        locked = locked or not cluster.is_chief
    if not locked:
        with artifacts.model_lock(model_dir):
            return train(
                model_dir,
                sources,
                ham_paths,
                spam_paths,
                config,
                reading_progress,
                fit_verbosity,
                extra_texts,
                replaced_digests,
                add_to_folder,
                locked=True,
                epoch_progress=epoch_progress,
                distribute=distribute,
            )
    config = config or TrainingConfig()
    started = time.monotonic()
    timings: dict[str, float] = {}
    if cluster is None or cluster.is_chief:
        artifacts.check_replaceable(model_dir)
    spec = network_spec(config)
    strategy = None
    if cluster is not None:
        # Before any other TensorFlow operation, as the strategy must be; it
        # waits for every worker to start.
        with distributed.collective_work():
            strategy = distributed.start_strategy(cluster)
    corpus = read_labelled(
        sources,
        ham_paths,
        spam_paths,
        config.header_policy,
        spec.features,
        config.minimum_per_class,
        progress=reading_progress,
        replaced_digests=replaced_digests,
        shard=None if cluster is None else cluster.shard,
    )
    counts, fingerprint = corpus.counts, corpus.fingerprint
    timings.update(corpus.seconds)
    empty = np.zeros(0, np.uint32)
    examples = [
        _Example(
            empty if message.buckets is None else message.buckets,
            message.is_spam,
            message.date,
            message.key,
            0 if cluster is None else shard_of(message.sha256, cluster.workers),
        )
        for message in corpus.messages
    ]
    # Extras are few (a model's learned messages) and hashed by every
    # worker; each trains on every Nth.
    extras = [
        _Example(
            _compact(feature_array(text, spec.features)),
            spam,
            None,
            "",
            0 if cluster is None else position % cluster.workers,
        )
        for position, (text, spam) in enumerate(extra_texts)
    ]
    duplicates, failures = corpus.duplicates, corpus.failures
    del corpus

    training_part, validation_part = chronological_split(examples, config.validation_fraction)
    training_part.extend(extras)
    interruption.check()
    if cluster is None:
        fitted = _fit(training_part, validation_part, spec, config, fit_verbosity, epoch_progress)
    else:
        with distributed.collective_work():
            distributed.check_same_corpus(strategy, cluster, fingerprint, counts)
            # Every worker holds every held-out message: each computes the
            # same validation loss, and replays the same mail.
            held_out = distributed.exchange_buckets(
                strategy,
                cluster,
                [(example.shard, example.indices) for example in validation_part],
            )
            for example, indices in zip(validation_part, held_out, strict=True):
                example.indices = indices
            fitted = _fit_distributed(
                strategy,
                cluster.index,
                training_part,
                validation_part,
                spec,
                config,
                fit_verbosity,
                epoch_progress,
            )
    timings["fit"] = fitted.seconds
    network = fitted.network

    # The held-out mail, newest last, scored before it is learned.
    replay_started = time.monotonic()
    validation_part.sort(key=_date_order)
    validation_is_spam = np.array([example.is_spam for example in validation_part], dtype=bool)
    validation_scores = np.array(
        [network.learn(example.indices, float(example.is_spam)) for example in validation_part]
    )
    timings["replay"] = time.monotonic() - replay_started
    # Counted from here: what `spamcli learn` teaches the trained model.
    network.messages_learned = 0
    weights_sha256 = network_sha256(network)

    threshold, ham_cutoff = model_cut_offs(
        validation_is_spam.tolist(),
        validation_scores.tolist(),
        config.target_false_positive_rate,
        config.target_recall,
        config.unsure_rate,
    )
    threshold_rule: dict[str, Any] = (
        {"target_recall": config.target_recall}
        if config.target_recall is not None
        else {"target_false_positive_rate": config.target_false_positive_rate}
    )
    # The held-out messages nearest the cut-offs, for learn to move them by.
    threshold_rule["moved_by_learning"] = artifacts.CALIBRATION_FILE
    threshold_rule["threshold_at_training"] = threshold
    calibration = Calibration.of_held_out(
        validation_is_spam.tolist(),
        validation_scores.tolist(),
        [example.indices.tolist() for example in validation_part],
        [threshold] if ham_cutoff is None else [threshold, ham_cutoff],
        network,
    )
    features_entry, network_entry = artifacts.network_metadata(spec)
    metadata: dict[str, Any] = {
        "format_version": artifacts.FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": fitted.versions,
        "header_policy": config.header_policy,
        "features": features_entry,
        "network": network_entry,
        "learning": artifacts.learning_metadata(config.learning_rule()),
        "hyperparameters": dataclasses.asdict(config),
        "threshold": threshold,
        "threshold_rule": threshold_rule,
        "training_data": {
            "sources": [str(path) for path in sources],
            "ham_paths": [str(path) for path in ham_paths],
            "spam_paths": [str(path) for path in spam_paths],
            "counts": counts,
            "duplicates": duplicates,
            "fingerprint": fingerprint,
            "extra_messages": len(extra_texts),
            "training_messages": len(training_part),
            "validation_messages": len(validation_part),
            "validation": f"the newest {config.validation_fraction:.0%} of each class by "
            "Date, scored one at a time and learned after being scored",
        },
        "training": {
            "epochs_run": fitted.epochs_run,
            "best_epoch": fitted.best_epoch,
            "export_max_difference": fitted.export_difference,
            "workers": 1 if cluster is None else cluster.workers,
        },
    }
    if ham_cutoff is not None:
        metadata["ham_cutoff"] = ham_cutoff
    metadata["validation"] = classification_metrics(
        validation_is_spam, validation_scores, threshold
    )

    def write_contents(directory: Path) -> None:
        if add_to_folder is not None:
            add_to_folder(directory, metadata)
        metadata["weights"], _compacted = network.write(directory)
        calibration.write(directory)
        artifacts.write_metadata(directory, metadata)

    saved = cluster is None or cluster.is_chief
    if saved:
        write_started = time.monotonic()
        written = artifacts.write_model_dir(model_dir, write_contents)
        timings["write"] = time.monotonic() - write_started
    else:
        written = Path(model_dir)
    return TrainingReport(
        model_dir=written,
        counts=counts,
        duplicates=duplicates,
        failures=failures,
        training_messages=len(training_part),
        validation_messages=len(validation_part),
        epochs_run=fitted.epochs_run,
        best_epoch=fitted.best_epoch,
        threshold=metadata["threshold"],
        ham_cutoff=metadata.get("ham_cutoff", metadata["threshold"]),
        validation=metadata["validation"],
        seconds=time.monotonic() - started,
        timings=timings,
        saved=saved,
        worker=None if cluster is None else cluster.task,
        workers=1 if cluster is None else cluster.workers,
        weights_sha256=weights_sha256,
    )


def network_sha256(network: Any) -> str:
    """A SHA-256 of an online.Network's weights and optimizer state."""
    digest = hashlib.sha256()
    for layer in network.layers:
        for array in (layer.kernel, layer.bias):
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    for name in sorted(network.accumulators):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(network.accumulators[name], np.float32).tobytes())
    return digest.hexdigest()


def _date_order(example: _Example) -> tuple[bool, float, str]:
    """Oldest first; messages without a date before every dated one."""
    return (example.date is not None, example.date or 0.0, example.key)


def chronological_split(
    examples: Sequence[_Example], validation_fraction: float
) -> tuple[list[_Example], list[_Example]]:
    """(older, newest): the newest share of each class, by date, held out."""
    training_part: list[_Example] = []
    validation_part: list[_Example] = []
    for is_spam in (False, True):
        of_class = sorted(
            (example for example in examples if example.is_spam == is_spam), key=_date_order
        )
        held_out = max(1, round(len(of_class) * validation_fraction))
        training_part.extend(of_class[: len(of_class) - held_out])
        validation_part.extend(of_class[len(of_class) - held_out :])
    return training_part, validation_part


@dataclass
class _Fitted:
    network: Any  # online.Network
    epochs_run: int
    best_epoch: int
    export_difference: float
    seconds: float
    versions: dict[str, str]


def _fit(
    training_part: list[_Example],
    validation_part: list[_Example],
    spec: NetworkSpec,
    config: TrainingConfig,
    fit_verbosity: int,
    epoch_progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> _Fitted:
    """Fit the Keras model; return its weights and optimizer state as an
    online.Network, checked against Keras on the validation messages."""
    import keras
    import tensorflow as tf

    from spamcli.model import build_model, dense_layers

    started = time.monotonic()
    # The same seed gives the same model: seeded initialisers and shuffling,
    # and deterministic kernels.
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(
        spec.features.buckets,
        config.hidden_units,
        config.learning_rate,
        config.initial_accumulator,
        config.label_smoothing,
        config.hidden_activation,
    )
    shuffler = np.random.default_rng(config.seed)

    def training_batches() -> Any:
        order = shuffler.permutation(len(training_part))
        for start in range(0, len(order), config.batch_size):
            yield _sparse_batch(
                [training_part[row] for row in order[start : start + config.batch_size]], spec
            )

    signature = (
        tf.SparseTensorSpec(shape=[None, spec.features.buckets], dtype=tf.float32),
        tf.TensorSpec(shape=[None, 1], dtype=tf.float32),
    )
    batch_count = -(-len(training_part) // config.batch_size)
    training_data = tf.data.Dataset.from_generator(
        training_batches, output_signature=signature
    ).apply(tf.data.experimental.assert_cardinality(batch_count))
    validation_batches = _batches_of(validation_part, spec)

    variables = [
        variable for layer in dense_layers(model) for variable in (layer.kernel, layer.bias)
    ]
    best = _BestEpoch(model, variables, config.patience)
    # Keras draws its progress bar on stdout, which carries results only.
    with contextlib.redirect_stdout(sys.stderr):
        for epoch in range(config.epochs):
            model.fit(
                training_data,
                epochs=epoch + 1,
                initial_epoch=epoch,
                verbose=fit_verbosity,
                shuffle=False,  # the batches are shuffled, with the seed, above
                callbacks=[
                    # A Ctrl-C or SIGTERM that TensorFlow swallowed stops
                    # the fit at the next batch (see spamcli.interruption).
                    keras.callbacks.LambdaCallback(
                        on_train_batch_end=lambda batch, logs: interruption.check()
                    )
                ],
            )
            loss = sum(float(model.evaluate(x, y, verbose=0)) for x, y in validation_batches())
            if epoch_progress is not None:
                epoch_progress(epoch, {"val_loss": loss})
            if best.ends_training(loss):
                break
    return _fitted_network(
        best,
        variables,
        validation_part,
        validation_batches,
        lambda inputs: model.predict_on_batch(inputs),
        spec,
        config,
        started,
    )


class _BestEpoch:
    """The epoch of lowest validation loss so far, kept as copies of its
    weights and optimizer accumulators (what the model folder stores), and
    whether PATIENCE epochs have passed without a lower one."""

    def __init__(self, model: Any, variables: list[Any], patience: int) -> None:
        self._model = model
        self._variables = variables
        self._patience = patience
        self.epochs_run = 0
        self.epoch = 0
        self.loss = float("inf")
        self.weights: list[np.ndarray] = []
        self.accumulators: list[np.ndarray] = []

    def ends_training(self, loss: float) -> bool:
        """Record an epoch's validation LOSS; True once training should stop."""
        self.epochs_run += 1
        if self.epoch == 0 or loss < self.loss:
            self.epoch, self.loss = self.epochs_run, loss
            self.weights = [variable.numpy().copy() for variable in self._variables]
            self.accumulators = [a.numpy().copy() for a in self._model.optimizer._accumulators]
            return False
        return self.epochs_run - self.epoch >= self._patience


def _fitted_network(
    best: _BestEpoch,
    variables: list[Any],
    validation_part: list[_Example],
    validation_batches: Callable[[], Iterator[tuple[Any, Any]]],
    predict: Callable[[Any], Any],
    spec: NetworkSpec,
    config: TrainingConfig,
    started: float,
) -> _Fitted:
    """The best epoch's weights and optimizer state as an online.Network,
    checked against the Keras model (PREDICT) on the validation messages."""
    import keras
    import tensorflow as tf

    from spamcli.online import Network

    weights = best.weights
    for variable, value in zip(variables, weights, strict=True):
        variable.assign(value)
    network = Network.from_scratch(spec, config.learning_rule(), config.seed)
    for index, layer in enumerate(network.layers):
        layer.kernel = np.ascontiguousarray(weights[2 * index], dtype=np.float32)
        layer.bias = np.ascontiguousarray(weights[2 * index + 1], dtype=np.float32)
    names = [
        name
        for index in range(len(network.layers))
        for name in (f"dense_{index}.kernel", f"dense_{index}.bias")
    ]
    for name, accumulator in zip(names, best.accumulators, strict=True):
        network.accumulators[name] = np.ascontiguousarray(accumulator, dtype=np.float32)
    # The copy must score as Keras does.
    keras_scores = np.concatenate(
        [np.asarray(predict(x), dtype=np.float64).reshape(-1) for x, _y in validation_batches()]
    )
    copied_scores = np.array([network.score(example.indices) for example in validation_part])
    difference = float(np.max(np.abs(keras_scores - copied_scores), initial=0.0))
    if difference > EXPORT_TOLERANCE:
        raise ModelError(
            f"the NumPy network differs from the Keras model by {difference:.2g}; not saved"
        )
    return _Fitted(
        network,
        best.epochs_run,
        best.epoch,
        difference,
        time.monotonic() - started,
        {
            "spamcli": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
    )


def _fit_distributed(
    strategy: Any,
    worker: int,
    training_part: list[_Example],
    validation_part: list[_Example],
    spec: NetworkSpec,
    config: TrainingConfig,
    fit_verbosity: int,
    epoch_progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> _Fitted:
    """_fit on one worker of MultiWorkerMirroredStrategy, by a custom loop.

    Keras' fit cannot take the sparse batches under a strategy: before the
    first step it averages the first batch over the replicas to build the
    model (Trainer._maybe_symbolic_build), and a SparseTensor cannot be
    averaged. The loop does what fit does for each batch (the loss summed
    over the batch, its gradient, one optimizer step) in strategy.run, so
    that the optimizer sums the workers' gradients.

    Every worker builds the same batches as single-process training (same
    seed, same messages, same order) and feeds the rows of its own shard;
    every worker computes the validation loss on all the held-out messages,
    so each stops at the same epoch.
    """
    import keras
    import tensorflow as tf

    from spamcli.model import build_model, dense_layers

    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    with strategy.scope():
        model = build_model(
            spec.features.buckets,
            config.hidden_units,
            config.learning_rate,
            config.initial_accumulator,
            config.label_smoothing,
            config.hidden_activation,
        )
    loss_function = keras.losses.BinaryCrossentropy(
        label_smoothing=config.label_smoothing, reduction="sum"
    )
    trainable = model.trainable_variables
    signature = (
        tf.SparseTensorSpec(shape=[None, spec.features.buckets], dtype=tf.float32),
        tf.TensorSpec(shape=[None, 1], dtype=tf.float32),
    )

    @tf.function(input_signature=signature)
    def train_step(inputs: Any, labels: Any) -> Any:
        def step(inputs: Any, labels: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = loss_function(labels, model(inputs, training=True))
            gradients = tape.gradient(loss, trainable)
            model.optimizer.apply_gradients(zip(gradients, trainable, strict=True))
            return loss

        return strategy.run(step, args=(inputs, labels))

    def scores(inputs: Any) -> Any:
        # Called directly, not by predict_on_batch, which under a strategy
        # gathers the workers' outputs (a collective) for a local batch.
        return model(inputs, training=False)

    validation_batches = _batches_of(validation_part, spec)
    shuffler = np.random.default_rng(config.seed)
    variables = [
        variable for layer in dense_layers(model) for variable in (layer.kernel, layer.bias)
    ]
    best = _BestEpoch(model, variables, config.patience)
    for epoch in range(config.epochs):
        order = shuffler.permutation(len(training_part))
        for begin in range(0, len(order), config.batch_size):
            rows = [
                training_part[row]
                for row in order[begin : begin + config.batch_size]
                if training_part[row].shard == worker
            ]
            train_step(*_sparse_batch(rows, spec))
            interruption.check()
        loss = sum(float(loss_function(y, scores(x))) for x, y in validation_batches())
        if fit_verbosity:
            print(f"epoch {epoch + 1}/{config.epochs}: val_loss {loss:.4f}", file=sys.stderr)
        if epoch_progress is not None:
            epoch_progress(epoch, {"val_loss": loss})
        if best.ends_training(loss):
            break
    return _fitted_network(
        best,
        variables,
        validation_part,
        validation_batches,
        scores,
        spec,
        config,
        started,
    )


def _batches_of(
    examples: list[_Example], spec: NetworkSpec
) -> Callable[[], Iterator[tuple[Any, Any]]]:
    """EXAMPLES in sparse batches of 256, made anew each time they are
    gone through: held as SparseTensors, with int64 (row, bucket) pairs,
    the held-out 15 % took 12 KB a message against 2.4 KB of buckets,
    1.8 KB a corpus message more at the peak."""

    def batches() -> Iterator[tuple[Any, Any]]:
        for start in range(0, len(examples), 256):
            yield _sparse_batch(examples[start : start + 256], spec)

    return batches


def _sparse_batch(examples: Sequence[_Example], spec: NetworkSpec) -> tuple[Any, Any]:
    """A batch as Keras takes it: the sparse input and the labels."""
    import tensorflow as tf

    positions = []
    values = []
    for row, example in enumerate(examples):
        count = len(example.indices)
        positions.append(
            np.stack([np.full(count, row), np.asarray(example.indices)], axis=1).reshape(count, 2)
        )
        values.append(np.full(count, input_value(count), dtype=np.float32))
    indices = (
        np.concatenate(positions).astype(np.int64) if positions else np.zeros((0, 2), np.int64)
    )
    inputs = tf.SparseTensor(
        indices,
        np.concatenate(values) if values else np.zeros(0, np.float32),
        (len(examples), spec.features.buckets),
    )
    labels = np.array([[float(example.is_spam)] for example in examples], dtype=np.float32).reshape(
        -1, 1
    )
    return inputs, labels
