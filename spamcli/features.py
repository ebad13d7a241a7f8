"""The Keras vectorizer: token strings (see tokens.py) → a bag of n-grams.

The vectorizer is a layer of the model, so it is saved with it and serving
cannot drift from training. Standardization and splitting are done before it,
in plain Python (tokens.py), and it splits on whitespace only: that keeps the
TensorFlow-free scorer (scoring.py) exactly in step with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from keras import layers

from spamcli.tokens import NGRAMS


def build_vectorizer(vocabulary_size: int) -> layers.TextVectorization:
    """A multi-hot bag of unigrams and bigrams over the most frequent n-grams."""
    return layers.TextVectorization(
        max_tokens=vocabulary_size,
        standardize=None,
        split="whitespace",
        ngrams=NGRAMS,
        output_mode="multi_hot",
        name="vectorizer",
    )


def adapt_vectorizer(
    vectorizer: layers.TextVectorization, training_texts: Iterable[str], batch_size: int = 256
) -> None:
    """Learn the vocabulary from the training texts only (never validation or test)."""
    import tensorflow as tf

    texts = list(training_texts)
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
    vectorizer.adapt(dataset.batch(batch_size))


def vocabulary(vectorizer: layers.TextVectorization) -> list[str]:
    """The n-grams in index order; index 0 is the out-of-vocabulary bucket."""
    return [str(term) for term in vectorizer.get_vocabulary()]
