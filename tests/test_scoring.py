"""Tests of spamcli.tokens and spamcli.scoring: the token string both the Keras
model and the TensorFlow-free scorer read, and the scorer's arithmetic.

Only ``test_scoring_ngrams_match_keras_text_vectorization`` imports Keras;
everything else runs on NumPy and the hand-made model of conftest.py.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spamcli import artifacts, scoring
from spamcli.artifacts import ScoringExport
from spamcli.corpus import RawMessage, ReadFailure, iter_messages
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


def test_scoring_ngrams_match_keras_text_vectorization() -> None:
    import keras
    import tensorflow as tf

    texts = [
        token_string([("subject", "Cheap pills now"), ("body", "Order cheap pills today!")]),
        token_string([("body", "the the the repeated words the")]),
        token_string([("subject", "one")]),
        token_string([("x-mailer", "Outlook Express"), ("body", "$ $ win $")]),
    ]
    vectorizer = keras.layers.TextVectorization(
        standardize=None, split="whitespace", ngrams=2, output_mode="int"
    )
    vectorizer.adapt(tf.constant(texts))
    vocabulary = vectorizer.get_vocabulary()

    for text in texts:
        indices = np.asarray(vectorizer(tf.constant([text])))[0]
        keras_grams = [vocabulary[index] for index in indices if index != 0]
        assert keras_grams == ngrams(text.split())


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


def reference_scores(export: ScoringExport, texts: list[str]) -> np.ndarray:
    """What the Keras model computes, spelled out: a multi-hot vector over the
    vocabulary (unknown n-grams in bucket 0), divided by its count (or its L2
    norm, or nothing, as the export says), then each layer."""
    index = {term: position for position, term in enumerate(export.vocabulary)}
    bags = np.zeros((len(texts), len(export.vocabulary)), dtype=np.float64)
    for row, text in enumerate(texts):
        for gram in ngrams(text.split()):
            bags[row, index.get(gram, 0)] = 1.0
    if export.normalization == "none":
        values = bags
    else:
        order = 1 if export.normalization == "count" else 2
        norms = np.linalg.norm(bags, ord=order, axis=1, keepdims=True)
        values = np.divide(bags, norms, out=np.zeros_like(bags), where=norms > 0)
    for layer in export.layers:
        values = values @ layer.kernel + layer.bias
        values = np.maximum(values, 0) if layer.activation == "relu" else 1 / (1 + np.exp(-values))
    return values[:, 0]


def test_scoring_scorer_matches_the_dense_computation(
    synthetic_model_dir: Path, synthetic_export: ScoringExport
) -> None:
    texts = [
        "cash prize",
        "meeting the team",
        "cash cash cash",  # a repeated n-gram counts once: multi-hot, not counts
        "unknown words only",
        "",
        "the",
    ]

    scores = Scorer(synthetic_model_dir).score_texts(texts)

    np.testing.assert_allclose(scores, reference_scores(synthetic_export, texts), atol=1e-6)
    assert scores[0] > 0.5 > scores[1]


@pytest.mark.parametrize("l2_normalize", [True, False])
def test_scoring_format_version_1_folders_still_score(
    synthetic_model_dir: Path, synthetic_export: ScoringExport, l2_normalize: bool
) -> None:
    # Version 1 recorded only whether the bag was L2-normalised.
    metadata = json.loads((synthetic_model_dir / artifacts.METADATA_FILE).read_text())
    metadata["format_version"] = 1
    del metadata["export"]["normalization"]
    metadata["export"]["l2_normalize"] = l2_normalize
    artifacts.write_metadata(synthetic_model_dir, metadata)
    old_export = dataclasses.replace(
        synthetic_export, normalization="l2" if l2_normalize else "none"
    )
    texts = ["cash prize", "meeting the team", "unknown words only", "", "the"]
    scorer = Scorer(synthetic_model_dir)

    light = [scorer.score_text_light(text) for text in texts]

    np.testing.assert_allclose(light, reference_scores(old_export, texts), atol=1e-6)
    np.testing.assert_allclose(scorer.score_texts(texts), light, rtol=0, atol=1e-12)
    assert not np.allclose(light, reference_scores(synthetic_export, texts), atol=1e-3)


def test_scoring_scorer_scores_raw_messages(synthetic_model_dir: Path) -> None:
    scorer = Scorer(synthetic_model_dir)
    spam = b"Subject: cash prize\n\nCash prize for you.\n"
    ham = b"Subject: meeting\n\nThe meeting moved.\n"

    scores = scorer.score_messages([spam, ham])

    expected = scorer.score_texts([message_tokens(spam, "content"), message_tokens(ham, "content")])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    assert len(scores) == 2 and all(isinstance(score, float) for score in scores)


def test_scoring_light_and_numpy_paths_agree(
    synthetic_model_dir: Path, synthetic_export: ScoringExport
) -> None:
    # A few messages are scored with the standard library, batches with
    # NumPy; both must give the Keras computation's scores.
    texts = ["cash prize", "meeting the team", "cash cash cash", "unknown words only", "", "the"]
    scorer = Scorer(synthetic_model_dir)

    light = [scorer.score_text_light(text) for text in texts]

    np.testing.assert_allclose(light, scorer.score_texts(texts), rtol=0, atol=1e-12)
    np.testing.assert_allclose(light, reference_scores(synthetic_export, texts), atol=1e-6)


def test_scoring_one_message_does_not_import_numpy(trained_model_dir: Path, tmp_path: Path) -> None:
    message = tmp_path / "one.eml"
    message.write_bytes(b"Subject: cash prize\n\nClaim your cash prize now!\n")
    program = (
        "import sys\n"
        "from spamcli.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code)\n"
        "print('numpy' in sys.modules)\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", program, "predict", str(message), "-m", str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = completed.stdout.splitlines()
    assert lines[-2:] == ["exit 0", "False"], completed.stdout + completed.stderr
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
