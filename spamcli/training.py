"""Labelled mail → a fitted, thresholded model folder, and a report."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from spamcli import __version__, artifacts, interruption
from spamcli.config import MINIMUM_THRESHOLD, SPAM, TrainingConfig
from spamcli.corpus import ReadFailure, load_corpus, require_both_classes
from spamcli.errors import ModelError
from spamcli.metrics import (
    classification_metrics,
    threshold_for_false_positive_rate,
    threshold_for_recall,
)
from spamcli.tokens import message_tokens

# The Keras model and its NumPy export must agree; anything above this on the
# validation messages means the export is wrong and the model is not saved.
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
) -> TrainingReport:
    """Read the labelled mail, fit the model, choose the threshold, save the folder.

    Keras' own progress (``fit_verbosity`` 1 or 2) is written to stderr.

    ``extra_texts``: more training messages, already tokenized (see
    tokens.message_tokens, with ``config.header_policy``), as (token string,
    is spam) pairs; ``spamcli train --resume`` passes a model's learned
    messages here. Corpus messages whose SHA-256 is in ``replaced_digests``
    are left out, since an extra pair stands for them with its own label.
    ``add_to_folder(folder, metadata)`` may add files to the new model folder
    and fields to its metadata before both are written.
    """
    config = config or TrainingConfig()
    started = time.monotonic()
    artifacts.check_replaceable(model_dir)
    corpus = load_corpus(sources, ham_paths, spam_paths, progress=reading_progress)
    if replaced_digests:
        corpus.messages = [
            message
            for message in corpus.messages
            if hashlib.sha256(message.raw).hexdigest() not in replaced_digests
        ]
    require_both_classes(corpus, config.minimum_per_class)
    counts, fingerprint = corpus.counts(), corpus.fingerprint()
    texts = [message_tokens(message.raw, config.header_policy) for message in corpus.messages]
    is_spam = np.array(
        [message.label == SPAM for message in corpus.messages]
        + [bool(spam) for _text, spam in extra_texts],
        dtype=bool,
    )
    texts.extend(text for text, _spam in extra_texts)
    # The raw bytes are no longer needed: training memory is the text only.
    duplicates, failures = corpus.duplicates, corpus.failures
    del corpus

    from sklearn.model_selection import train_test_split

    train_rows, validation_rows = train_test_split(
        np.arange(len(texts)),
        test_size=config.validation_fraction,
        stratify=is_spam,
        random_state=config.seed,
    )
    train_texts = [texts[row] for row in train_rows]
    validation_texts = [texts[row] for row in validation_rows]
    del texts

    model, history = _fit(
        train_texts,
        is_spam[train_rows],
        validation_texts,
        is_spam[validation_rows],
        config,
        fit_verbosity,
    )
    validation_scores = _predict(model, validation_texts, config.batch_size)
    validation_is_spam = is_spam[validation_rows]
    best_epoch = int(np.argmin(history["val_loss"])) + 1

    export = _export(model)
    metadata: dict[str, Any] = {
        "format_version": artifacts.FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "header_policy": config.header_policy,
        "hyperparameters": dataclasses.asdict(config),
        # Provisional, so that the folder loads for the export check below.
        "threshold": MINIMUM_THRESHOLD,
        "training_data": {
            "sources": [str(path) for path in sources],
            "ham_paths": [str(path) for path in ham_paths],
            "spam_paths": [str(path) for path in spam_paths],
            "counts": counts,
            "duplicates": duplicates,
            "fingerprint": fingerprint,
            "extra_messages": len(extra_texts),
            "training_messages": len(train_texts),
            "validation_messages": len(validation_texts),
        },
        "training": {"epochs_run": len(history["val_loss"]), "best_epoch": best_epoch},
        "vocabulary_size": len(export.vocabulary),
    }

    def write_contents(directory: Path) -> None:
        if add_to_folder is not None:
            add_to_folder(directory, metadata)
        inference_model = _without_optimizer(model)
        inference_model.save(directory / artifacts.KERAS_FILE)
        metadata["export"] = artifacts.write_export(directory, export)
        exported_scores = _check_export(directory, metadata, validation_texts, validation_scores)
        # The threshold and the validation figures come from the scores
        # `predict` will compute, not Keras': the two differ in the last
        # float32 bit, enough to flip the ham the threshold sits just above.
        if config.target_recall is not None:
            threshold = threshold_for_recall(
                exported_scores[validation_is_spam], config.target_recall
            )
            metadata["threshold_rule"] = {"target_recall": config.target_recall}
        else:
            threshold = threshold_for_false_positive_rate(
                exported_scores[~validation_is_spam],
                config.target_false_positive_rate,
                MINIMUM_THRESHOLD,
            )
            metadata["threshold_rule"] = {
                "target_false_positive_rate": config.target_false_positive_rate
            }
        metadata["threshold"] = threshold
        if config.unsure_rate is not None:
            # The same rule as the threshold, at a looser rate: the lowest
            # cut-off that leaves at most unsure_rate of validation ham at
            # or above it, never above the threshold.
            metadata["ham_cutoff"] = min(
                threshold_for_false_positive_rate(
                    exported_scores[~validation_is_spam], config.unsure_rate, 0.0
                ),
                threshold,
            )
        metadata["validation"] = classification_metrics(
            validation_is_spam, exported_scores, threshold
        )
        artifacts.write_metadata(directory, metadata)

    written = artifacts.write_model_dir(model_dir, write_contents)
    return TrainingReport(
        model_dir=written,
        counts=counts,
        duplicates=duplicates,
        failures=failures,
        training_messages=len(train_texts),
        validation_messages=len(validation_texts),
        epochs_run=len(history["val_loss"]),
        best_epoch=best_epoch,
        threshold=metadata["threshold"],
        ham_cutoff=metadata.get("ham_cutoff", metadata["threshold"]),
        validation=metadata["validation"],
        seconds=time.monotonic() - started,
    )


def _fit(
    train_texts: list[str],
    train_is_spam: np.ndarray,
    validation_texts: list[str],
    validation_is_spam: np.ndarray,
    config: TrainingConfig,
    fit_verbosity: int,
) -> tuple[Any, dict[str, list[float]]]:
    import keras
    import tensorflow as tf

    from spamcli.features import adapt_vectorizer, build_vectorizer
    from spamcli.model import build_model

    # The same seed gives the same model: seeded initialisers, shuffling and
    # dropout, and deterministic kernels.
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    vectorizer = build_vectorizer(config.vocabulary_size)
    adapt_vectorizer(vectorizer, train_texts)
    model = build_model(
        vectorizer,
        config.hidden_units,
        config.dropout,
        config.learning_rate,
        config.label_smoothing,
    )

    # Class imbalance: each class weighs half of the loss.
    spam_count = int(train_is_spam.sum())
    ham_count = len(train_is_spam) - spam_count
    class_weight = {
        0: len(train_is_spam) / (2 * ham_count),
        1: len(train_is_spam) / (2 * spam_count),
    }
    training_data = (
        tf.data.Dataset.from_tensor_slices(
            (tf.constant(train_texts, dtype=tf.string), train_is_spam.astype("float32"))
        )
        .shuffle(len(train_texts), seed=config.seed)
        .batch(config.batch_size)
        .prefetch(2)
    )
    validation_data = _dataset(validation_texts, config.batch_size, validation_is_spam)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    # A Ctrl-C or SIGTERM that TensorFlow swallowed stops the fit at the
    # next batch (see spamcli.interruption).
    interruption_check = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: interruption.check()
    )
    # Keras draws its progress bar on stdout, which carries results only.
    with contextlib.redirect_stdout(sys.stderr):
        history = model.fit(
            training_data,
            validation_data=validation_data,
            epochs=config.epochs,
            class_weight=class_weight,
            callbacks=[early_stopping, interruption_check],
            shuffle=False,  # the dataset is shuffled, with the seed, above
            verbose=fit_verbosity,
        )
    return model, history.history


def _dataset(texts: list[str], batch_size: int, labels: np.ndarray | None = None) -> Any:
    import tensorflow as tf

    strings = tf.constant(texts, dtype=tf.string)
    if labels is None:
        return tf.data.Dataset.from_tensor_slices(strings).batch(batch_size)
    pairs = (strings, labels.astype("float32"))
    return tf.data.Dataset.from_tensor_slices(pairs).batch(batch_size)


def _predict(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    scores = model.predict(_dataset(texts, batch_size), verbose=0)
    return np.asarray(scores, dtype=np.float64).reshape(-1)


def _without_optimizer(model: Any) -> Any:
    """The same layers in an uncompiled model: saving it leaves out the
    optimizer state (a third of the file size)."""
    import keras

    return keras.Model(model.inputs, model.outputs, name=model.name)


def _export(model: Any) -> artifacts.ScoringExport:
    from spamcli.features import vocabulary
    from spamcli.model import normalization_layer

    dense_layers = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    return artifacts.ScoringExport(
        vocabulary=vocabulary(model.get_layer("vectorizer")),
        normalization=normalization_layer(model)[0],
        layers=[
            artifacts.DenseWeights(
                kernel=np.asarray(layer.kernel.numpy()),
                bias=np.asarray(layer.bias.numpy()),
                activation=layer.get_config()["activation"],
            )
            for layer in dense_layers
        ],
    )


def _check_export(
    directory: Path,
    metadata: dict[str, Any],
    validation_texts: list[str],
    validation_scores: np.ndarray,
) -> np.ndarray:
    """The exported model's validation scores, after checking them against Keras'."""
    from spamcli.scoring import Scorer

    artifacts.write_metadata(directory, metadata)
    exported_scores = Scorer(directory).score_texts(validation_texts)
    difference = float(np.max(np.abs(exported_scores - validation_scores), initial=0.0))
    if difference > EXPORT_TOLERANCE:
        raise ModelError(
            f"the exported model differs from the Keras model by {difference:.2g}; not saved"
        )
    metadata["export"]["max_difference_on_validation"] = difference
    return exported_scores


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "spamcli": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": sys.version.split()[0],
    }
