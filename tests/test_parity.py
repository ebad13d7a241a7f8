"""The TensorFlow-free scorer (scoring.py) against the Keras model it replaces.

The scorer re-implements the model's ``TextVectorization`` layer: it splits a
token string with ``str.split()``, builds unigrams then bigrams with
``tokens.ngrams`` and looks them up in the exported vocabulary. Keras splits
with TensorFlow, which knows only ASCII whitespace, whereas Python also
splits at U+001C-U+001F, U+0085, U+00A0, U+2028, U+3000 and more. The two
agree only because ``tokens.py`` never lets whitespace of any kind into a
token; the property tests hold that contract over arbitrary Unicode.

Keras numbers n-grams in two ways. ``output_mode="multi_hot"`` (the model's)
puts every unknown n-gram at 0 and the first term at 1, as
``vocabulary.txt`` does. ``output_mode="int"`` keeps 0 for padding and 1 for
unknown n-grams, so its ids are the scorer's plus one.

Every test here imports TensorFlow (seconds), and a layer over the built-in
model's 50,000 terms takes a while to build, so layers are built once per
module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import layers

from spamcli import artifacts
from spamcli.corpus import RawMessage, iter_messages
from spamcli.scoring import OUT_OF_VOCABULARY_INDEX, Scorer
from spamcli.tokens import CONTENT_FIELDS, MAX_TOKEN_LENGTH, message_tokens, ngrams, token_string

REPOSITORY_DIR = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPOSITORY_DIR / "models" / "default"
CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "spamassassin"
SPAMASSASSIN_FOLDERS = ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")

# The scorer's figure for "the same score": float32 arithmetic summed in
# another order differs by a few units in the last place (6e-8 near 1).
SCORE_TOLERANCE = 1e-5

# --------------------------------------------------------------------------
# Generated text

# Characters that trip tokenizers up: every kind of whitespace, control and
# format character, combining marks, CJK, emoji, letters whose lower case is
# longer or odd (İ becomes i + U+0307, ẞ becomes ß, the Kelvin sign k), and
# the punctuation that tokens.py treats specially.
UNUSUAL_CHARACTERS = st.one_of(
    st.characters(categories=["Zs", "Zl", "Zp", "Cc", "Cf"]),
    st.characters(categories=["Mn", "Mc", "Me"]),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    st.sampled_from("İẞ\u212aﬁΣς\u00ad\ufeff\u200b$!_-:"),
    st.characters(codec="ascii"),
)
ANY_TEXT = st.one_of(st.text(), st.text(UNUSUAL_CHARACTERS))
# Longer than MAX_TOKEN_LENGTH, so tokens.py turns it into a "skip:" token.
LONG_WORDS = st.text("abcé日", min_size=MAX_TOKEN_LENGTH + 1, max_size=4 * MAX_TOKEN_LENGTH)

HEADER_NAMES = (
    "x-mailer",
    "received",
    "content-type",
    "X-Spam-Status",
    "List-Id",
    "x mailer!",
    "x\theader",
    "Überschrift",
    "件名",
    "x-mailer:",
    "",
)
FIELD_NAMES = st.one_of(
    st.sampled_from(sorted(CONTENT_FIELDS)),
    st.sampled_from(HEADER_NAMES),
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,40}", fullmatch=True),
    st.text(UNUSUAL_CHARACTERS, max_size=40),
    st.text(max_size=40),
)


def texts_with_words(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Words (in any case) glued together by short runs of unusual characters,
    so that the n-grams of the text are often in the vocabulary."""
    word = st.one_of(words, words.map(str.upper), words.map(str.title), LONG_WORDS, ANY_TEXT)
    glue = st.text(UNUSUAL_CHARACTERS, max_size=3)
    pieces = st.lists(st.tuples(word, glue), min_size=1, max_size=30)
    return pieces.map(lambda pairs: "".join(word + glue for word, glue in pairs))


def token_strings(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """What tokens.token_string makes of a body, or of (field, text) pairs."""
    text = st.one_of(texts_with_words(words), ANY_TEXT)
    body = text.map(lambda body_text: [("body", body_text)])
    fields = st.lists(st.tuples(FIELD_NAMES, text), min_size=1, max_size=6)
    return st.one_of(body, fields).map(token_string)


def read_vocabulary(model_dir: Path) -> list[str]:
    """The model's n-grams in index order, "[UNK]" first."""
    return artifacts.read_export(model_dir, artifacts.read_metadata(model_dir)).vocabulary


DEFAULT_VOCABULARY = read_vocabulary(DEFAULT_MODEL_DIR)
# Its terms, bigrams included (as two words and a space), so that generated
# text holds known unigrams and bigrams as well as unknown ones.
DEFAULT_WORDS = st.sampled_from(DEFAULT_VOCABULARY[1:])

# A fixed corpus for a vocabulary of our own: odd scripts, header-prefixed
# tokens, skip tokens, "$" and "!".
SAMPLE_FIELDS = [
    [("subject", "Cheap pills now!"), ("body", "Order today, WIN $1,000,000!!!")],
    [("from", "Ville Skyttä <ville@example.fi>"), ("body", "Café Straße İstanbul ﬁnance")],
    [("subject", "会议记录 魔鬼英语"), ("body", "Các bạn sẽ đến 😀 ok")],
    [("x-mailer", "Outlook Express"), ("X Weird:Name", "odd header"), ("body", "x" * 45)],
]
SAMPLE_TERMS = list(
    dict.fromkeys(gram for fields in SAMPLE_FIELDS for gram in ngrams(token_string(fields).split()))
)
SAMPLE_WORDS = st.sampled_from(
    sorted(
        {word for fields in SAMPLE_FIELDS for _, text in fields for word in text.split()}
        | {term for term in SAMPLE_TERMS if " " not in term}
    )
)
# The per-example vocabulary's most terms, "[UNK]" included (see below).
SCRATCH_MAX_TOKENS = 1024


# --------------------------------------------------------------------------
# Keras layers and the scorer's lookup


@dataclass(frozen=True)
class Vectorizers:
    """The same vocabulary in both of TextVectorization's numberings."""

    ids: layers.TextVectorization
    bag: layers.TextVectorization


def build_vectorizers(vocabulary: list[str], **options: object) -> Vectorizers:
    """VOCABULARY without its leading "[UNK]", which Keras adds itself."""
    common = {"standardize": None, "split": "whitespace", "ngrams": 2, **options}
    return Vectorizers(
        ids=layers.TextVectorization(output_mode="int", vocabulary=vocabulary, **common),
        bag=layers.TextVectorization(output_mode="multi_hot", vocabulary=vocabulary, **common),
    )


def scorer_indices(index: dict[str, int], text: str) -> set[int]:
    """Scorer._present_set on this vocabulary, without a model folder."""
    return Scorer._present_set(SimpleNamespace(_index=index), text)  # type: ignore[arg-type]


def assert_keras_agrees(vectorizers: Vectorizers, index: dict[str, int], text: str) -> None:
    """Keras' ids for TEXT, in both numberings, are the scorer's."""
    expected_sequence = [index.get(gram, OUT_OF_VOCABULARY_INDEX) for gram in ngrams(text.split())]
    batch = tf.constant([text])
    # One text, so no padding: every int id is a real n-gram's.
    keras_sequence = [int(value) - 1 for value in np.asarray(vectorizers.ids(batch))[0]]
    bag = np.asarray(vectorizers.bag(batch))[0]

    assert keras_sequence == expected_sequence
    assert set(bag.tolist()) <= {0, 1}
    assert set(np.flatnonzero(bag).tolist()) == set(expected_sequence)
    assert scorer_indices(index, text) == set(expected_sequence)


@pytest.fixture(scope="module")
def default_scorer() -> Scorer:
    return Scorer(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="module")
def default_vectorizers() -> Vectorizers:
    vectorizers = build_vectorizers(DEFAULT_VOCABULARY[1:])
    assert vectorizers.bag.get_vocabulary() == DEFAULT_VOCABULARY
    return vectorizers


@pytest.fixture(scope="module")
def scratch_vectorizers() -> Vectorizers:
    """Layers whose vocabulary each example replaces. A multi-hot layer may
    not change its width once called, so it is padded to a fixed width."""
    return build_vectorizers(SAMPLE_TERMS, max_tokens=SCRATCH_MAX_TOKENS, pad_to_max_tokens=True)


# --------------------------------------------------------------------------
# Token ids, on generated text


@settings(max_examples=200, deadline=None)
@given(text=token_strings(DEFAULT_WORDS))
def test_parity_ids_match_keras_on_the_default_vocabulary(
    default_scorer: Scorer, default_vectorizers: Vectorizers, text: str
) -> None:
    index = {term: position for position, term in enumerate(DEFAULT_VOCABULARY)}

    assert_keras_agrees(default_vectorizers, index, text)
    # And the scorer itself, on its own loaded vocabulary.
    assert set(default_scorer._present_indices(text).tolist()) == scorer_indices(index, text)


@settings(max_examples=200, deadline=None)
@given(text=token_strings(SAMPLE_WORDS), data=st.data())
def test_parity_ids_match_keras_on_a_vocabulary_of_the_texts_own_ngrams(
    scratch_vectorizers: Vectorizers, text: str, data: st.DataObject
) -> None:
    # Some of the text's n-grams, in any order, beside the fixed sample terms:
    # both known and unknown n-grams, whatever characters they hold.
    candidates = [gram for gram in dict.fromkeys(ngrams(text.split())) if gram not in SAMPLE_TERMS]
    room = SCRATCH_MAX_TOKENS - 1 - len(SAMPLE_TERMS)
    chosen = (
        data.draw(st.lists(st.sampled_from(candidates), unique=True, max_size=room))
        if candidates
        else []
    )
    vocabulary = data.draw(st.permutations([*SAMPLE_TERMS, *chosen]))
    scratch_vectorizers.ids.set_vocabulary(vocabulary)
    scratch_vectorizers.bag.set_vocabulary(vocabulary)
    keras_vocabulary = scratch_vectorizers.bag.get_vocabulary()
    assert keras_vocabulary == ["[UNK]", *vocabulary]
    index = {term: position for position, term in enumerate(keras_vocabulary)}

    assert_keras_agrees(scratch_vectorizers, index, text)


# --------------------------------------------------------------------------
# Scores of the built-in model, on real mail


@dataclass(frozen=True)
class RealMail:
    sources: list[str]
    texts: list[str]


def iter_spamassassin() -> Iterator[RawMessage]:
    for folder in SPAMASSASSIN_FOLDERS:
        for item in iter_messages(CORPUS_DIR / f"{folder}.tar.bz2"):
            assert isinstance(item, RawMessage), item
            yield item


@pytest.fixture(scope="module")
def real_mail(default_scorer: Scorer) -> RealMail:
    """All 6,046 messages of the five archives (tokenizing them takes about 7 s)."""
    if not all((CORPUS_DIR / f"{folder}.tar.bz2").is_file() for folder in SPAMASSASSIN_FOLDERS):
        pytest.skip(f"{CORPUS_DIR} not found: the shared SpamAssassin archives are needed")
    messages = list(iter_spamassassin())
    texts = [message_tokens(message.raw, default_scorer.header_policy) for message in messages]
    return RealMail([message.source for message in messages], texts)


@pytest.fixture(scope="module")
def default_keras_model() -> keras.Model:
    return keras.saving.load_model(DEFAULT_MODEL_DIR / artifacts.KERAS_FILE, safe_mode=True)


def in_batches(texts: list[str], size: int) -> Iterator[tuple[int, list[str]]]:
    for start in range(0, len(texts), size):
        yield start, texts[start : start + size]


@pytest.mark.slow
def test_parity_real_mail_bags_match_the_model_vectorizer(
    default_scorer: Scorer, default_keras_model: keras.Model, real_mail: RealMail
) -> None:
    vectorizer = default_keras_model.get_layer("vectorizer")
    # 64 rows of 50,000 int64 are 25 MB; the whole corpus at once would be 2.4 GB.
    for start, batch in in_batches(real_mail.texts, 64):
        bags = np.asarray(vectorizer(tf.constant(batch)))
        for offset, (text, bag) in enumerate(zip(batch, bags, strict=True)):
            keras_indices = set(np.flatnonzero(bag).tolist())
            scorer_present = set(default_scorer._present_indices(text).tolist())
            assert keras_indices == scorer_present, real_mail.sources[start + offset]


@pytest.mark.slow
def test_parity_real_mail_scores_and_labels_match_keras(
    default_scorer: Scorer, default_keras_model: keras.Model, real_mail: RealMail
) -> None:
    keras_scores = np.asarray(
        default_keras_model.predict(tf.constant(real_mail.texts), batch_size=256, verbose=0),
        dtype=np.float64,
    ).reshape(-1)
    scorer_scores = default_scorer.score_texts(real_mail.texts)

    difference = np.abs(keras_scores - scorer_scores)
    worst = int(np.argmax(difference))
    # 1.2e-7 (two float32 units in the last place) on 2026-11-27.
    assert difference[worst] <= SCORE_TOLERANCE, real_mail.sources[worst]
    keras_labels = [default_scorer.verdict(float(score)).label for score in keras_scores]
    scorer_labels = [default_scorer.verdict(float(score)).label for score in scorer_scores]
    disagreements = [
        source
        for source, keras_label, scorer_label in zip(
            real_mail.sources, keras_labels, scorer_labels, strict=True
        )
        if keras_label != scorer_label
    ]
    assert disagreements == []


# --------------------------------------------------------------------------
# Safe mode


def test_parity_safe_mode_refuses_a_lambda_layer(tmp_path: Path) -> None:
    inputs = keras.Input(shape=(3,))
    outputs = layers.Lambda(lambda values: values * 2)(inputs)
    model_path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(model_path)

    with pytest.raises(ValueError, match="Lambda"):
        keras.saving.load_model(model_path, safe_mode=True)
    # The file itself is sound: only safe mode refuses it.
    unsafe = keras.saving.load_model(model_path, safe_mode=False)
    np.testing.assert_array_equal(unsafe.predict(np.ones((1, 3)), verbose=0), [[2.0, 2.0, 2.0]])
