"""Token string (see tokens.py) → the model's input: hashed n-grams.

The model reads a message as the set of its word unigrams and bigrams, each
hashed into one of 2**bits buckets (the hashing trick, as Vowpal Wabbit
does): a word's key is its CRC-32, a bigram's the two words' keys side by
side, and the bucket the top bits of the key times a 64-bit odd constant.
Nothing is learned to build the input: there is no vocabulary, so an n-gram
first seen long after training has a row of the first layer to itself
(short of a collision) and ``spamcli learn`` can learn it at once, and a
model can start from nothing (``evaluate --online --from-scratch``).
A vocabulary learned at training time gave every n-gram it lacked the one
shared out-of-vocabulary row: a new spam campaign could not be learned at
all until the next full training.

Each present bucket's input is 1/sqrt(n) for n present buckets, so the
input has unit L2 norm whatever the message's length. The header's n-grams
and the content's as two parts, each hashed into its own half of the
buckets and scaled to norm 1/sqrt(2) whatever its length, were measured and
not kept (2026-12-06, bench/online.py, seeds 1 to 5): the random stream
0.0101 against 0.0129 (bogofilter 0.0103) and the SpamAssassin mailbox
0.0262 against 0.0279, but the time stream 0.181 against 0.123, with 4.0
ham above the cut-off that catches 85 % of its spam against 2.6; with
another odd constant in the hash, random 0.0122 and time 0.162 against
0.0120 and 0.190 for these inputs (docs/online-learning.md, "How much of a
figure is luck"). Only the first
``max_tokens`` tokens of the token string are read: past that, a long
message adds n-grams seen once that dilute the evidence (see config.py for
the figures).

This module is the one place that turns tokens into the model's input.
Training (the Keras model, model.py), scoring (scoring.py) and learning
(online.py) all call ``feature_indices`` or its NumPy forms,
``feature_array`` and ``batch_features`` (tests/test_fast_paths.py checks
that all three give the same buckets), so they cannot drift apart. It is
the standard library only: a filter scoring one message imports nothing
more.
"""

from __future__ import annotations

import array
import itertools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spamcli.tokens import ngrams

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class FeatureSpec:
    """How token strings become bucket numbers; stored in every model folder."""

    bits: int
    """The buckets are 0 … 2**bits - 1: the first layer's kernel has that many rows."""
    max_tokens: int | None
    """Only the first this many tokens are read; None reads every token."""

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 30:
            raise ValueError(f"bits must be between 1 and 30, not {self.bits}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, not {self.max_tokens}")

    @property
    def buckets(self) -> int:
        return 1 << self.bits


# Fibonacci hashing: a key times 2**64 / golden ratio, modulo 2**64; the top
# bits are the bucket. Every bit of the key reaches them, where the low bits
# of a key alone (a plain mask) would leave a bigram's bucket to the low
# bits of its second word's CRC.
_GOLDEN = 0x9E3779B97F4A7C15
_MASK_64 = (1 << 64) - 1


def word_key(word: str) -> int:
    """A word's 32-bit key: the CRC-32 of its UTF-8.

    CRC-32 is stable across runs, machines and Python versions (Python's own
    ``hash`` of a string is salted per process) and computed in C (0.1 us a
    short string here). ``surrogatepass``: any string has a key.
    """
    return zlib.crc32(word.encode("utf-8", "surrogatepass"))


def bucket_of_key(key: int, bits: int) -> int:
    """The bucket of a unigram's key (word_key) or a bigram's (the first
    word's key times 2**32 plus the second's)."""
    return ((key * _GOLDEN) & _MASK_64) >> (64 - bits)


def bucket(gram: str, bits: int) -> int:
    """An n-gram's bucket; a bigram is two words joined by one space."""
    first, _, second = gram.partition(" ")
    key = word_key(first)
    if second:
        key = (key << 32) | word_key(second)
    return bucket_of_key(key, bits)


def message_words(text: str, spec: FeatureSpec) -> list[str]:
    """The words of a token string the model reads."""
    if spec.max_tokens is None:
        return text.split()
    # maxsplit: the words past the last one read are left in one piece.
    return text.split(None, spec.max_tokens)[: spec.max_tokens]


def message_ngrams(text: str, spec: FeatureSpec) -> list[str]:
    """The n-grams the model reads from a token string, in order, repeats kept."""
    return ngrams(message_words(text, spec))


def message_keys(text: str, spec: FeatureSpec) -> list[int]:
    """word_key of each word the model reads from a token string, in order.

    The text is encoded and split as bytes, so that the encoding and the
    CRC-32s run in C once a message rather than once a word: 0.033 ms a
    message of the SpamAssassin corpora, against 0.077 ms for word_key in a
    loop (with a cache of repeated words). The UTF-8 of a word is its own bytes:
    no byte of a multi-byte character is ASCII. Bytes split at ASCII white
    space only, which is all the white space of ASCII text but the four
    separators \x1c to \x1f; other text is split as text first (24 token
    strings in 25 of the SpamAssassin corpus are ASCII).
    """
    if not text.isascii() or any(separator in text for separator in _ASCII_SEPARATORS_OF_TEXT):
        text = " ".join(message_words(text, spec))
    data = text.encode("utf-8", "surrogatepass")
    words = data.split() if spec.max_tokens is None else data.split(None, spec.max_tokens)
    return list(map(zlib.crc32, words[: spec.max_tokens]))


# The ASCII characters str.split splits at and bytes.split does not.
_ASCII_SEPARATORS_OF_TEXT = "\x1c\x1d\x1e\x1f"


def feature_indices(text: str, spec: FeatureSpec) -> list[int]:
    """The buckets present in a token string, each once, in increasing order
    (the standard library's way; feature_array is NumPy's)."""
    keys = message_keys(text, spec)
    # bucket_of_key written out, not called once a key: 0.224 to 0.203 ms a
    # message of the SpamAssassin corpora for the whole function.
    shift = 64 - spec.bits
    present = {((key * _GOLDEN) & _MASK_64) >> shift for key in keys}
    present.update(
        ((((first << 32) | second) * _GOLDEN) & _MASK_64) >> shift
        for first, second in itertools.pairwise(keys)
    )
    return sorted(present)


def feature_array(text: str, spec: FeatureSpec) -> np.ndarray:
    """feature_indices as a NumPy array of intp, computed with NumPy."""
    return batch_features([text], spec)[1]


def batch_features(texts: Sequence[str], spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """The buckets present in each of a batch of token strings, as two intp
    arrays of one length, ``messages`` (the text's position in TEXTS) and
    ``buckets``: each text's buckets once each, in increasing order, the
    texts one after the other (a text without words has none).

    The unigrams' and bigrams' buckets of the whole batch are a few vector
    operations, and one sort removes the repeats: done per message, the
    same steps (feature_array before) took 0.177 ms a message of the
    SpamAssassin corpora, in NumPy's per-call overhead and its hash-based
    unique, against 0.058 ms here in batches of 128, 0.033 ms of it in
    message_keys.
    """
    import numpy as np

    # The keys gathered in a C array of unsigned ints (CRC-32s fit), which
    # NumPy reads in place: np.array of a list of 80,000 ints took 3.4 ms,
    # this 1.6 ms.
    keys = array.array("I")
    lengths = []
    for text in texts:
        words = message_keys(text, spec)
        keys.extend(words)
        lengths.append(len(words))
    key_array = np.frombuffer(keys, dtype=f"u{keys.itemsize}").astype(np.uint64)
    message_of_key = np.repeat(np.arange(len(texts), dtype=np.uint64), lengths)
    # A bigram is two neighbouring words of one message.
    within = message_of_key[:-1] == message_of_key[1:]
    bigram_keys = ((key_array[:-1] << np.uint64(32)) | key_array[1:])[within]
    golden, shift = np.uint64(_GOLDEN), np.uint64(64 - spec.bits)
    # uint64 products wrap modulo 2**64, as the standard-library way masks them.
    buckets = np.concatenate([(key_array * golden) >> shift, (bigram_keys * golden) >> shift])
    messages = np.concatenate([message_of_key, message_of_key[:-1][within]])
    # One number a (message, bucket) pair, so that one sort orders the pairs
    # and brings repeats together; np.unique took 0.04 ms a message more.
    pairs = (messages << np.uint64(spec.bits)) | buckets
    if len(texts) << spec.bits <= 1 << 32:
        # A batch of 128 messages' pairs fit in 27 bits: sorted as uint32,
        # 1.0 ms against 2.8 ms for uint64 (100,000 pairs, one batch).
        pairs = pairs.astype(np.uint32)
    pairs = np.sort(pairs)
    if pairs.size:
        pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]
    return (
        (pairs >> pairs.dtype.type(spec.bits)).astype(np.intp),
        (pairs & pairs.dtype.type(spec.buckets - 1)).astype(np.intp),
    )


def feature_ngrams(text: str, spec: FeatureSpec) -> dict[int, list[str]]:
    """Each present bucket and the n-grams of the text that fall in it, sorted
    (for explanations: a bucket shared by two n-grams is named by both)."""
    by_bucket: dict[int, set[str]] = {}
    for gram in set(message_ngrams(text, spec)):
        by_bucket.setdefault(bucket(gram, spec.bits), set()).add(gram)
    return {index: sorted(grams) for index, grams in sorted(by_bucket.items())}


def input_value(count: int) -> float:
    """The input of each of ``count`` present buckets: 1/sqrt(count), so the
    input vector has unit length; 0 when nothing is present."""
    return 1.0 / math.sqrt(count) if count else 0.0
