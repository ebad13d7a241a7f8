"""Properties of the parser, the tokenizer and the scorer on any input.

Arbitrary bytes, generated messages, and generated messages broken the way
real mail breaks (tests/mail_strategies.py): extract_fields and
message_tokens never raise and give clean text, and the scorer always gives
a score in [0, 1], the same with and without NumPy. ``bench/fuzz.py`` runs
the same properties over 100,000 inputs.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mail_strategies import generated_messages, hostile_mail, mutated_messages

from spamcli.cli import DEFAULT_MODEL_DIR
from spamcli.config import HEADER_POLICIES, MAX_TEXT_CHARACTERS
from spamcli.mail import extract_fields
from spamcli.scoring import Scorer
from spamcli.tokens import message_tokens

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(DEFAULT_MODEL_DIR)


def assert_clean_fields(raw: bytes, policy: str) -> None:
    fields = extract_fields(raw, policy)
    assert sum(len(text) for _, text in fields) <= MAX_TEXT_CHARACTERS
    for field, text in fields:
        assert isinstance(field, str) and field
        assert isinstance(text, str) and text == text.strip() and text
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogate survives


def assert_clean_tokens(raw: bytes, policy: str) -> None:
    text = message_tokens(raw, policy)
    assert isinstance(text, str)
    # One space between tokens, never any other white space: the scorer and
    # TextVectorization must split it the same way.
    assert text == " ".join(text.split(" "))
    assert all(token and not any(c.isspace() for c in token) for token in text.split(" ") if text)


def assert_valid_score(scorer: Scorer, raw: bytes) -> None:
    light = scorer.score_messages([raw])[0]
    batch = float(scorer.score_texts([scorer.message_text(raw)])[0])
    assert 0.0 <= light <= 1.0 and not math.isnan(light)
    assert abs(light - batch) <= 1e-9


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=4096), policy=st.sampled_from(HEADER_POLICIES))
def test_properties_arbitrary_bytes(raw: bytes, policy: str, scorer: Scorer) -> None:
    assert_clean_fields(raw, policy)
    assert_clean_tokens(raw, policy)
    assert_valid_score(scorer, raw)


@PROPERTY_SETTINGS
@given(raw=generated_messages(), policy=st.sampled_from(HEADER_POLICIES))
def test_properties_generated_messages(raw: bytes, policy: str, scorer: Scorer) -> None:
    assert_clean_fields(raw, policy)
    assert_clean_tokens(raw, policy)
    assert_valid_score(scorer, raw)


@PROPERTY_SETTINGS
@given(raw=mutated_messages(), policy=st.sampled_from(HEADER_POLICIES))
def test_properties_mutated_messages(raw: bytes, policy: str, scorer: Scorer) -> None:
    assert_clean_fields(raw, policy)
    assert_clean_tokens(raw, policy)
    assert_valid_score(scorer, raw)


# Fewer examples: each is a batch of up to 20 messages, each scored twice.
@settings(PROPERTY_SETTINGS, max_examples=40)
@given(raws=st.lists(hostile_mail(), min_size=9, max_size=20))
def test_properties_batches_score_like_single_messages(raws: list[bytes], scorer: Scorer) -> None:
    # More than LIGHT_BATCH_LIMIT messages go through NumPy; each score is
    # the one the message gets alone.
    batch = scorer.score_messages(raws)
    assert len(batch) == len(raws)
    for raw, score in zip(raws, batch, strict=True):
        assert 0.0 <= score <= 1.0
        assert score == pytest.approx(scorer.score_messages([raw])[0], abs=1e-9)


@PROPERTY_SETTINGS
@given(raw=generated_messages(), cut=st.integers(min_value=0, max_value=10_000))
def test_properties_cut_messages_still_score(raw: bytes, cut: int, scorer: Scorer) -> None:
    # A message cut anywhere (a truncated download, a full disk) is still mail.
    assert_valid_score(scorer, raw[:cut])
