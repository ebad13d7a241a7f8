"""Tests of spamcli.explaining and `spamcli predict --explain`: each listed
effect is the score minus the score of the message without that n-gram's
bucket, the other buckets' inputs rescaled from 1/sqrt(k) to 1/sqrt(k-1)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import SYNTHETIC_ROWS, reference_activation, write_synthetic_model

from spamcli.artifacts import read_metadata
from spamcli.cli import cli
from spamcli.explaining import BOTH, explain_text
from spamcli.features import bucket, feature_ngrams, message_ngrams
from spamcli.online import Network
from spamcli.scoring import Scorer

PREDICTION_LINE = re.compile(r"(?P<label>ham|unsure|spam) (?P<score>[01]\.\d{6}) (?P<source>.+)")
EFFECT_LINE = re.compile(r"    (?P<effect>[+-]\d\.\d{6})  \"(?P<token>[^\"]+)\"")


def invoke(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(cli, [str(arg) for arg in args])


def heldout_texts(scorer: Scorer, heldout_dir: Path, label: str) -> list[str]:
    return [
        scorer.message_text(path.read_bytes()) for path in sorted((heldout_dir / label).iterdir())
    ]


def reference_score(network: Any, indices: set[int]) -> float:
    """The network on an explicit input vector (1/sqrt(n) at each of the n
    buckets), as Keras computes it."""
    vector = np.zeros(network.spec.features.buckets)
    if indices:
        vector[sorted(indices)] = 1 / np.sqrt(len(indices))
    hidden = vector
    for layer in network.layers:
        hidden = hidden @ layer.kernel.astype(np.float64) + layer.bias
        hidden = reference_activation(hidden, layer.activation)
    return float(hidden[0])


def folder_network(model_dir: Path) -> Any:
    return Network.from_folder(model_dir, read_metadata(model_dir))


def bucket_of_effect(scorer: Scorer, token: str) -> int:
    """The one bucket an effect's n-grams (joined by BOTH) fall in."""
    bits = scorer.features.bits
    buckets = {bucket(gram, bits) for gram in token.split(BOTH)}
    assert len(buckets) == 1, token
    return buckets.pop()


def one_token_shorter(scorer: Scorer, text: str) -> list[tuple[str, int]]:
    """(TEXT without one of its tokens, the bucket that removal drops), for
    each token whose removal drops exactly one bucket and adds none."""
    words = text.split()[: scorer.features.max_tokens]
    present = set(scorer.present_indices(" ".join(words)).tolist())
    shorter = []
    for position in range(len(words)):
        modified = " ".join(words[:position] + words[position + 1 :])
        remaining = set(scorer.present_indices(modified).tolist())
        if remaining < present and len(present - remaining) == 1:
            shorter.append((modified, (present - remaining).pop()))
    return shorter


# --------------------------------------------------------------------------
# The core


def test_explain_names_only_ngrams_of_the_message(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    scorer = Scorer(trained_model_dir)
    for label in ("ham", "spam"):
        for text in heldout_texts(scorer, heldout_dir, label):
            explanation = explain_text(scorer, text, top=50)
            by_bucket = feature_ngrams(text, scorer.features)
            assert explanation.effects
            buckets = [bucket_of_effect(scorer, effect.token) for effect in explanation.effects]
            # One entry a bucket, named by every n-gram of the message in it
            # (of the first max_tokens tokens), sorted.
            assert len(buckets) == len(set(buckets))
            for effect, index in zip(explanation.effects, buckets, strict=True):
                assert effect.token == BOTH.join(by_bucket[index])
                assert set(effect.token.split(BOTH)) <= set(message_ngrams(text, scorer.features))


def test_explain_score_is_the_message_score(trained_model_dir: Path, heldout_dir: Path) -> None:
    scorer = Scorer(trained_model_dir)
    for text in heldout_texts(scorer, heldout_dir, "spam")[:4]:
        explanation = explain_text(scorer, text)
        assert explanation.score == pytest.approx(scorer.score_text_light(text), abs=1e-12)
        assert explanation.score == pytest.approx(float(scorer.score_texts([text])[0]), abs=1e-12)


@pytest.mark.parametrize("label", ["ham", "spam"])
def test_explain_effects_agree_with_scoring_the_message_without_the_ngram(
    trained_model_dir: Path, heldout_dir: Path, label: str
) -> None:
    scorer = Scorer(trained_model_dir)
    network = folder_network(trained_model_dir)
    text = heldout_texts(scorer, heldout_dir, label)[0]
    present = set(scorer.present_indices(text).tolist())
    explanation = explain_text(scorer, text, top=10_000)
    by_bucket = {
        bucket_of_effect(scorer, effect.token): effect.effect for effect in explanation.effects
    }

    # Every bucket, against the network on the input without it.
    for index in present:
        expected = explanation.score - reference_score(network, present - {index})
        if index in by_bucket:
            assert by_bucket[index] == pytest.approx(expected, abs=1e-9)
        else:
            assert expected == pytest.approx(0.0, abs=1e-9)
    # And where a token string without the n-gram exists (one token fewer,
    # one bucket fewer), against scoring that string.
    compared = 0
    for modified, index in one_token_shorter(scorer, text):
        score_without = float(scorer.score_texts([modified])[0])
        assert by_bucket.get(index, 0.0) == pytest.approx(
            explanation.score - score_without, abs=1e-9
        )
        compared += 1
    assert compared >= 2


def test_explain_every_effect_matches_a_dense_reference(
    synthetic_model_dir: Path, synthetic_network: Any
) -> None:
    scorer = Scorer(synthetic_model_dir)
    # cash, prize, meeting, the, "cash prize", and two bigrams of small rows
    text = "cash prize meeting the"
    present = set(scorer.present_indices(text).tolist())
    assert len(present) == 7

    explanation = explain_text(scorer, text, top=10)

    assert explanation.score == pytest.approx(reference_score(synthetic_network, present), abs=1e-9)
    by_token = {effect.token: effect.effect for effect in explanation.effects}
    for index, grams in feature_ngrams(text, scorer.features).items():
        expected = explanation.score - reference_score(synthetic_network, present - {index})
        assert by_token[BOTH.join(grams)] == pytest.approx(expected, abs=1e-9), grams
    assert by_token["cash"] > 0 and by_token["prize"] > 0
    assert by_token["meeting"] < 0


def test_explain_removal_rescales_the_other_buckets(tmp_path: Path, synthetic_network: Any) -> None:
    # An n-gram whose row is all zeros adds nothing to the first layer's sum,
    # yet removing it moves the score: the other buckets' inputs grow from
    # 1/sqrt(k) to 1/sqrt(k-1).
    bits = synthetic_network.spec.features.bits
    taken = {bucket(gram, bits) for gram in (*SYNTHETIC_ROWS, "cash zzinert", "zzinert cash")}
    assert bucket("zzinert", bits) not in taken
    synthetic_network.layers[0].kernel[bucket("zzinert", bits)] = 0.0
    scorer = Scorer(write_synthetic_model(tmp_path / "inert", synthetic_network))
    present = set(scorer.present_indices("cash zzinert").tolist())

    effects = {
        effect.token: effect.effect for effect in explain_text(scorer, "cash zzinert").effects
    }

    inert = bucket("zzinert", bits)
    expected = reference_score(synthetic_network, present) - reference_score(
        synthetic_network, present - {inert}
    )
    assert expected != pytest.approx(0.0, abs=1e-6)
    assert effects["zzinert"] == pytest.approx(expected, abs=1e-9)


def test_explain_orders_effects_and_keeps_the_top_each_way(synthetic_model_dir: Path) -> None:
    scorer = Scorer(synthetic_model_dir)
    text = "cash prize meeting the"
    everything = explain_text(scorer, text, top=10).effects

    shortest = explain_text(scorer, text, top=1).effects

    values = [effect.effect for effect in everything]
    assert values == sorted(values, reverse=True)
    assert 0.0 not in values
    assert shortest == [
        max(everything, key=lambda effect: effect.effect),
        min(everything, key=lambda effect: effect.effect),
    ]
    assert explain_text(scorer, text, top=0).effects == []


def test_explain_one_ngram_and_no_ngram(synthetic_model_dir: Path, synthetic_network: Any) -> None:
    scorer = Scorer(synthetic_model_dir)
    cash = bucket("cash", synthetic_network.spec.features.bits)

    nothing = explain_text(scorer, "")
    single = explain_text(scorer, "cash")

    assert nothing.effects == []
    assert nothing.score == pytest.approx(float(scorer.score_texts([""])[0]), abs=1e-12)
    assert [effect.token for effect in single.effects] == ["cash"]
    assert single.effects[0].effect == pytest.approx(
        reference_score(synthetic_network, {cash}) - reference_score(synthetic_network, set()),
        abs=1e-9,
    )


def colliding_words(spec_bits: int, avoid: set[int]) -> tuple[str, str]:
    """Two made-up words that hash to one bucket, none of AVOID."""
    seen: dict[int, str] = {}
    for number in range(100_000):
        word = f"zzword{number}"
        index = bucket(word, spec_bits)
        if index in avoid:
            continue
        if index in seen:
            return seen[index], word
        seen[index] = word
    raise AssertionError("no two words share a bucket")


def test_explain_ngrams_sharing_a_bucket_are_one_entry(
    synthetic_model_dir: Path, synthetic_network: Any
) -> None:
    scorer = Scorer(synthetic_model_dir)
    bits = synthetic_network.spec.features.bits
    first, second = colliding_words(bits, {bucket(gram, bits) for gram in SYNTHETIC_ROWS})
    text = f"{first} cash {second}"
    by_bucket = feature_ngrams(text, scorer.features)
    present = set(by_bucket)

    explanation = explain_text(scorer, text, top=10)

    tokens = [effect.token for effect in explanation.effects]
    assert BOTH.join(sorted([first, second])) in tokens
    assert first not in tokens and second not in tokens
    # Every other n-gram is an entry of its own: a word no training saw has
    # a bucket, not a shared out-of-vocabulary entry.
    assert sorted(tokens) == sorted(BOTH.join(grams) for grams in by_bucket.values())
    shared = bucket(first, bits)
    effect = explanation.effects[tokens.index(BOTH.join(sorted([first, second])))].effect
    assert effect == pytest.approx(
        explanation.score - reference_score(synthetic_network, present - {shared}), abs=1e-9
    )


def test_explain_removing_the_top_spam_word_lowers_the_score(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    scorer = Scorer(trained_model_dir)
    path = sorted((heldout_dir / "spam").iterdir())[0]
    raw = path.read_bytes()
    explanation = explain_text(scorer, scorer.message_text(raw))
    word = next(
        effect.token
        for effect in explanation.effects
        if effect.effect > 0 and re.fullmatch(r"\w+", effect.token)
    )

    rewritten = re.sub(rf"\b{re.escape(word)}\b", "", raw.decode(), flags=re.IGNORECASE).encode()

    assert word not in scorer.message_text(rewritten).split()
    assert scorer.score_messages([rewritten])[0] < scorer.score_messages([raw])[0]


# --------------------------------------------------------------------------
# The command


def test_explain_cli_text_lists_effects_under_each_prediction(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    paths = [sorted((heldout_dir / label).iterdir())[0] for label in ("ham", "spam")]

    result = invoke(runner, "predict", "--explain", *paths, "-m", trained_model_dir)
    plain = invoke(runner, "predict", *paths, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    blocks: list[tuple[str, list[re.Match[str]]]] = []
    for line in result.stdout.splitlines():
        if line.startswith(" "):
            match = EFFECT_LINE.fullmatch(line)
            assert match, f"not an effect line: {line!r}"
            blocks[-1][1].append(match)
        else:
            assert PREDICTION_LINE.fullmatch(line), f"not a prediction line: {line!r}"
            blocks.append((line, []))
    assert [line for line, _ in blocks] == plain.stdout.splitlines()
    scorer = Scorer(trained_model_dir)
    for path, (_, effects) in zip(paths, blocks, strict=True):
        assert 0 < len(effects) <= 20
        values = [float(match["effect"]) for match in effects]
        assert values == sorted(values, reverse=True)
        text = scorer.message_text(path.read_bytes())
        grams = set(message_ngrams(text, scorer.features))
        assert all(set(match["token"].split(BOTH)) <= grams for match in effects)


def test_explain_cli_json_carries_the_list(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    path = sorted((heldout_dir / "spam").iterdir())[0]

    result = invoke(
        runner, "predict", "--explain", "--explain-top", "3", "--format", "json", path,
        "-m", trained_model_dir,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == {"source", "label", "score", "index", "message_id", "explanation"}
    scorer = Scorer(trained_model_dir)
    expected = explain_text(scorer, scorer.message_text(path.read_bytes()), top=3)
    assert record["score"] == expected.score
    assert record["explanation"] == [
        {"token": effect.token, "effect": effect.effect} for effect in expected.effects
    ]
    assert len([entry for entry in record["explanation"] if entry["effect"] > 0]) <= 3
    assert len([entry for entry in record["explanation"] if entry["effect"] < 0]) <= 3


def test_explain_cli_plain_json_has_no_explanation(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    path = sorted((heldout_dir / "ham").iterdir())[0]

    result = invoke(runner, "predict", "--format", "json", path, "-m", trained_model_dir)

    assert set(json.loads(result.stdout)) == {"source", "label", "score", "index", "message_id"}


def test_explain_cli_top_without_explain_is_a_usage_error(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    path = sorted((heldout_dir / "ham").iterdir())[0]

    result = invoke(runner, "predict", "--explain-top", "3", path, "-m", trained_model_dir)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--explain-top needs --explain" in result.stderr


def test_explain_cli_reports_unreadable_paths_and_explains_the_rest(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    path = sorted((heldout_dir / "spam").iterdir())[0]

    result = invoke(
        runner, "predict", "--explain", tmp_path / "missing", path, "-m", trained_model_dir
    )

    assert result.exit_code == 1
    assert "missing" in result.stderr
    assert PREDICTION_LINE.fullmatch(result.stdout.splitlines()[0])


EXPLAIN_WITHOUT_TENSORFLOW = """
import sys
from spamcli.cli import main
sys.argv = ["spamcli", "predict", "--explain", sys.argv[1], "-m", sys.argv[2]]
try:
    main()
except SystemExit as exit:
    status = exit.code
print("exit", status)
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_explain_does_not_import_tensorflow(trained_model_dir: Path, heldout_dir: Path) -> None:
    message = sorted((heldout_dir / "spam").iterdir())[0]

    completed = subprocess.run(
        [sys.executable, "-c", EXPLAIN_WITHOUT_TENSORFLOW, str(message), str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = completed.stdout.splitlines()
    assert PREDICTION_LINE.fullmatch(lines[0]), completed.stdout + completed.stderr
    assert all(EFFECT_LINE.fullmatch(line) for line in lines[1:-2])
    assert lines[-2:] == ["exit 0", "False False"]
