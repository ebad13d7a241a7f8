"""Tests of spamcli.tokens, spamcli.features and spamcli.scoring: the token
string, the hashed input the network reads, and the scorer's arithmetic.

Everything runs on NumPy and the hand-made model of conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import reference_activation, spamcli_imports
from hypothesis import given, settings
from hypothesis import strategies as st

from spamcli import scoring
from spamcli.corpus import RawMessage, ReadFailure, iter_messages
from spamcli.features import FeatureSpec, bucket, feature_array, feature_indices, feature_ngrams
from spamcli.scoring import Classification, Scorer, classify
from spamcli.tokens import MAX_TOKEN_LENGTH, message_tokens, ngrams, token_string, tokenize

# --------------------------------------------------------------------------
# tokens


def test_scoring_tokenize_lowercases_and_splits_punctuation() -> None:
    assert tokenize("Hello, World! Visit example.com/Offers today") == [
        "hello",
        "world",
        "!",
        "visit",
        "example",
        "com",
        "offers",
        "today",
    ]


def test_scoring_tokenize_keeps_dollar_and_exclamation_on_their_own() -> None:
    assert tokenize("WIN $1,000,000!!!") == ["win", "$", "000", "000", "!", "!", "!"]


def test_scoring_tokenize_drops_single_characters() -> None:
    assert tokenize("a b c 7 ok") == ["ok"]


def test_scoring_tokenize_keeps_letters_beyond_ascii() -> None:
    assert tokenize("CAFÉ Straße") == ["café", "straße"]


def test_scoring_tokenize_long_tokens_become_skip_tokens() -> None:
    longest_kept = "k" * MAX_TOKEN_LENGTH
    assert tokenize(f"short {longest_kept} {'Q' * 45} {'z' * 120}") == [
        "short",
        longest_kept,
        "skip:q40",
        "skip:z120",
    ]


def test_scoring_token_string_prefixes_header_names() -> None:
    fields = [
        ("subject", "Lunch Friday"),
        ("x-mailer", "Outlook Express"),
        ("x mailer!", "odd name"),  # a malformed header name loses its junk
        ("body", "See you there"),
    ]
    assert token_string(fields).split(" ") == [
        "lunch",
        "friday",
        "x-mailer:outlook",
        "x-mailer:express",
        "xmailer:odd",
        "xmailer:name",
        "see",
        "you",
        "there",
    ]


def test_scoring_message_tokens_header_policies() -> None:
    raw = (
        b"From: Alice Martin <alice@example.org>\n"
        b"X-Mailer: Outlook Express\n"
        b"X-Spam-Flag: YES\n"
        b"Subject: Budget meeting\n"
        b"\n"
        b"See the attached agenda.\n"
    )
    content = message_tokens(raw, "content").split()
    every_header = message_tokens(raw, "all").split()

    assert {"budget", "meeting", "agenda"} <= set(content) & set(every_header)
    # The sender's mail program is content; its words carry the header name.
    assert {"x-mailer:outlook", "x-mailer:express"} <= set(content) & set(every_header)
    assert {"alice", "martin", "example", "org"} <= set(content)
    # X-Spam-* headers, which spam filters add, are never model input.
    assert not any(token.startswith("x-spam") for token in every_header)


def test_scoring_token_string_has_no_whitespace_inside_tokens() -> None:
    text = "tab\tseparated\u00a0no-break\u2028line\u3000ideographic\x1cfile-separator"
    tokens = token_string([("body", text), ("x\theader", text)]).split(" ")

    assert all(tokens) and not any(any(c.isspace() for c in token) for token in tokens)


def test_scoring_ngrams_unigrams_then_bigrams() -> None:
    assert ngrams(["cheap", "pills", "now"]) == [
        "cheap",
        "pills",
        "now",
        "cheap pills",
        "pills now",
    ]
    assert ngrams(["alone"]) == ["alone"]
    assert ngrams([]) == []


def test_scoring_features_are_the_buckets_of_the_first_tokens() -> None:
    spec = FeatureSpec(bits=20, max_tokens=3)

    indices = feature_indices("cheap pills now cheap pills", spec)

    grams = ["cheap", "pills", "now", "cheap pills", "pills now"]
    assert indices == sorted({bucket(gram, spec.bits) for gram in grams})
    assert feature_array("cheap pills now cheap pills", spec).tolist() == indices
    assert feature_indices("", spec) == []
    # Stable across processes and machines: the CRC-32 of the UTF-8.
    # A word's key is its CRC-32, a bigram's the two keys side by side.
    golden = 0x9E3779B97F4A7C15
    assert bucket("cash", 20) == ((zlib.crc32(b"cash") * golden) % 2**64) >> 44
    key = (zlib.crc32(b"cash") << 32) | zlib.crc32(b"prize")
    assert bucket("cash prize", 20) == ((key * golden) % 2**64) >> 44


def test_scoring_feature_ngrams_name_every_bucket_of_the_message() -> None:
    spec = FeatureSpec(bits=4, max_tokens=None)  # 16 buckets: collisions certain

    named = feature_ngrams("alpha beta gamma delta epsilon zeta eta theta", spec)

    assert sorted(named) == feature_indices("alpha beta gamma delta epsilon zeta eta theta", spec)
    grams = [gram for names in named.values() for gram in names]
    assert len(grams) == len(set(grams)) == 8 + 7
    assert any(len(names) > 1 for names in named.values())


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_scoring_body_tokens_are_never_empty_and_never_hold_whitespace(text: str) -> None:
    tokens = tokenize(text)

    joined = token_string([("body", text)])

    assert all(token and not any(char.isspace() for char in token) for token in tokens)
    # Python's split() knows more whitespace than TensorFlow's, so agreeing
    # with it means both split the string into exactly these tokens.
    assert joined.split() == tokens


@settings(max_examples=200, deadline=None)
@given(field=st.text(min_size=1), text=st.text())
def test_scoring_header_tokens_are_never_empty_and_never_hold_whitespace(
    field: str, text: str
) -> None:
    joined = token_string([(field, text)])

    tokens = joined.split(" ") if joined else []
    assert joined.split() == tokens
    assert all(tokens)


# --------------------------------------------------------------------------
# Scorer, on the hand-made model


def reference_scores(network: Any, texts: list[str]) -> np.ndarray:
    """What the network computes, spelled out: the dense input vector (1/sqrt(n)
    at each of the n buckets present), then each layer."""
    spec = network.spec.features
    inputs = np.zeros((len(texts), spec.buckets), dtype=np.float64)
    for row, text in enumerate(texts):
        present = feature_indices(text, spec)
        if present:
            inputs[row, present] = 1 / np.sqrt(len(present))
    values = inputs
    for layer in network.layers:
        values = values @ layer.kernel.astype(np.float64) + layer.bias
        values = reference_activation(values, layer.activation)
    return values[:, 0]


TEXTS = ["cash prize", "meeting the team", "cash cash cash", "unknown words only", "", "the"]


def test_scoring_scorer_matches_the_dense_computation(
    synthetic_model_dir: Path, synthetic_network: Any
) -> None:
    # "cash cash cash": a repeated n-gram counts once.
    scores = Scorer(synthetic_model_dir).score_texts(TEXTS)

    np.testing.assert_allclose(scores, reference_scores(synthetic_network, TEXTS), atol=1e-6)
    assert scores[0] > 0.5 > scores[1]


def test_scoring_leaky_relu_layers_score_as_the_dense_computation(tmp_path: Path) -> None:
    # Both scorers: NumPy for a batch, the standard library for one text.
    from tests.conftest import make_synthetic_network, write_synthetic_model

    network = make_synthetic_network("leaky_relu")
    network.layers[0].bias[...] = [-0.5, 0.1, -0.3]  # units below 0 for some texts
    scorer = Scorer(write_synthetic_model(tmp_path / "leaky", network))
    expected = reference_scores(network, TEXTS)

    np.testing.assert_allclose(scorer.score_texts(TEXTS), expected, atol=1e-6)
    for text, score in zip(TEXTS, expected, strict=True):
        assert scorer.score_text_light(text) == pytest.approx(score, abs=1e-6)
    relu = reference_scores(make_synthetic_network("relu"), TEXTS)
    assert not np.allclose(expected, relu)


def test_scoring_changed_rows_override_the_kernel(tmp_path: Path, synthetic_network: Any) -> None:
    # A learned folder keeps kernel.npz and lists the rows learning changed
    # in weights.npz; the scorer must read the changed ones.
    from tests.conftest import write_synthetic_model

    original = write_synthetic_model(tmp_path / "original", synthetic_network)
    synthetic_network.learn(
        feature_indices("meeting the team", synthetic_network.spec.features), 1.0
    )
    assert synthetic_network.changed
    learned = tmp_path / "learned"
    learned.mkdir()
    synthetic_network.kernel_path = original / "kernel.npz"
    write_synthetic_model(learned, synthetic_network)
    scorer = Scorer(learned)

    np.testing.assert_allclose(
        [scorer.score_text_light(text) for text in TEXTS],
        reference_scores(synthetic_network, TEXTS),
        atol=1e-6,
    )
    # Without the kernel built (the changed rows laid over kernel.npz's), then with it.
    laid_over = scorer.score_texts(TEXTS)
    np.testing.assert_allclose(laid_over, reference_scores(synthetic_network, TEXTS), atol=1e-6)
    scorer.first_kernel()
    np.testing.assert_allclose(scorer.score_texts(TEXTS), laid_over, rtol=0, atol=1e-12)
    assert (learned / "kernel.npz").stat().st_ino == (original / "kernel.npz").stat().st_ino


def test_scoring_scorer_scores_raw_messages(synthetic_model_dir: Path) -> None:
    scorer = Scorer(synthetic_model_dir)
    spam = b"Subject: cash prize\n\nCash prize for you.\n"
    ham = b"Subject: meeting\n\nThe meeting moved.\n"

    scores = scorer.score_messages([spam, ham])

    expected = scorer.score_texts([message_tokens(spam, "content"), message_tokens(ham, "content")])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    assert len(scores) == 2 and all(isinstance(score, float) for score in scores)


def test_scoring_light_and_numpy_paths_agree(
    synthetic_model_dir: Path, synthetic_network: Any
) -> None:
    # A few messages are scored with the standard library, batches with
    # NumPy; both must give the network's scores.
    scorer = Scorer(synthetic_model_dir)

    light = [scorer.score_text_light(text) for text in TEXTS]

    np.testing.assert_allclose(light, scorer.score_texts(TEXTS), rtol=0, atol=1e-12)
    np.testing.assert_allclose(light, reference_scores(synthetic_network, TEXTS), atol=1e-6)


def test_scoring_a_scorer_not_light_scores_one_message_with_numpy(
    synthetic_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's scorer: one-message scans take NumPy's path (0.12
    # against 0.83 ms), with the same score.
    raw = b"Subject: cash prize\n\nCash prize for you.\n"
    [light] = Scorer(synthetic_model_dir).score_messages([raw])
    scorer = Scorer(synthetic_model_dir, light=False)

    def no_light_path(text: str) -> float:
        raise AssertionError("scored with the standard library")

    monkeypatch.setattr(scorer, "score_text_light", no_light_path)
    [held] = scorer.score_messages([raw])
    assert held == pytest.approx(light, abs=1e-12)


def test_scoring_one_message_does_not_import_numpy(trained_model_dir: Path, tmp_path: Path) -> None:
    message = tmp_path / "one.eml"
    message.write_bytes(b"Subject: cash prize\n\nClaim your cash prize now!\n")
    lines, errors = spamcli_imports(
        ["predict", str(message), "-m", str(trained_model_dir)], ["numpy"]
    )
    assert lines[-2:] == ["exit 0", "False"], "\n".join(lines) + errors
    assert lines[0].endswith(str(message))


def test_scoring_verdict_threshold_is_inclusive(synthetic_model_dir: Path) -> None:
    scorer = Scorer(synthetic_model_dir)  # its threshold is 0.5

    assert scorer.verdict(0.5).label == "spam"
    assert scorer.verdict(np.nextafter(0.5, 0)).label == "ham"
    assert scorer.verdict(0.9, scorer.cutoffs(spam=0.95)).label == "ham"
    assert scorer.verdict(0.0, scorer.cutoffs(spam=0.0)).label == "spam"
    assert scorer.verdict(0.3).score == 0.3


def test_scoring_classify_keeps_order_and_passes_failures_through(
    synthetic_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "BATCH_SIZE", 2)  # several batches, and a failure between
    scorer = Scorer(synthetic_model_dir)
    raws = [b"Subject: cash prize\n\ncash\n", b"Subject: meeting\n\nthe meeting\n"] * 3
    items: list[RawMessage | ReadFailure] = [
        RawMessage(f"message-{number}", raw) for number, raw in enumerate(raws)
    ]
    items.insert(3, ReadFailure("missing.eml", "No such file or directory"))

    results = list(classify(scorer, items, scorer.cutoffs(spam=0.5)))

    assert [getattr(result, "source", None) for result in results] == [
        "message-0",
        "message-1",
        "message-2",
        "missing.eml",
        "message-3",
        "message-4",
        "message-5",
    ]
    assert results[3] == items[3]
    classified = [result for result in results if isinstance(result, Classification)]
    expected = scorer.score_messages(raws)
    assert [result.score for result in classified] == pytest.approx(list(expected), abs=0)
    assert [result.label for result in classified] == ["spam", "ham"] * 3


def test_scoring_worker_processes_keep_scores_and_order(
    tmp_path: Path, trained_model_dir: Path, generate_mail: Any
) -> None:
    # More than two batches, with an unreadable path in the middle: a
    # subprocess (no TensorFlow loaded, so it forks workers) must print the
    # same lines, in the same order, as scoring in this process.
    folder = tmp_path / "mail"
    folder.mkdir()
    for number, raw in enumerate(generate_mail("spam", 150, 5) + generate_mail("ham", 150, 6)):
        (folder / f"{number:04d}.eml").write_bytes(raw)
    paths = [str(folder), str(tmp_path / "missing"), str(folder)]
    worker_count = 2

    completed = subprocess.run(
        [sys.executable, "-m", "spamcli", "predict", *paths, "-m", str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    scorer = Scorer(trained_model_dir)
    messages = [item for path in paths for item in iter_messages(path)]
    expected = [
        f"{item.label} {item.score:.6f} {item.source}"
        for item in classify(scorer, messages, workers=1)
        if isinstance(item, Classification)
    ]
    assert scoring.BATCH_SIZE * worker_count < len(expected)
    assert completed.stdout.splitlines() == expected
    assert completed.returncode == 1
    assert "missing" in completed.stderr
