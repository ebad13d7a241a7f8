"""Tests of spamcli.explaining and `spamcli predict --explain`: each listed
effect is the score minus the score of the message without that n-gram."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import write_synthetic_model

from spamcli import artifacts
from spamcli.artifacts import ScoringExport
from spamcli.cli import cli
from spamcli.explaining import OUT_OF_VOCABULARY, explain_text
from spamcli.scoring import OUT_OF_VOCABULARY_INDEX, Scorer
from spamcli.tokens import ngrams

PREDICTION_LINE = re.compile(r"(?P<label>ham|unsure|spam) (?P<score>[01]\.\d{6}) (?P<source>.+)")
EFFECT_LINE = re.compile(
    r"    (?P<effect>[+-]\d\.\d{6})  (?:\"(?P<token>[^\"]+)\"|(?P<bucket>\(out of vocabulary\)))"
)
# An out-of-vocabulary word: it only adds to bucket 0, as do the bigrams it makes.
SEPARATOR = "zzseparatorzz"


def invoke(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(cli, [str(arg) for arg in args])


def heldout_texts(scorer: Scorer, heldout_dir: Path, label: str) -> list[str]:
    return [
        scorer.message_text(path.read_bytes()) for path in sorted((heldout_dir / label).iterdir())
    ]


def reference_score(export: ScoringExport, indices: set[int]) -> float:
    """The model on an explicit multi-hot vector, as Keras computes it."""
    vector = np.zeros(len(export.vocabulary))
    vector[sorted(indices)] = 1.0
    if indices and export.normalization == "count":
        vector /= len(indices)
    elif indices and export.normalization == "l2":
        vector /= np.linalg.norm(vector)
    hidden = vector
    for layer in export.layers:
        hidden = hidden @ layer.kernel.astype(np.float64) + layer.bias
        hidden = (
            np.maximum(hidden, 0.0) if layer.activation == "relu" else 1 / (1 + np.exp(-hidden))
        )
    return float(hidden[0])


def text_without(scorer: Scorer, text: str, removed: int) -> str | None:
    """A token string whose n-grams are those of TEXT but n-gram REMOVED, or
    None where no token string can say that (a word of a bigram that stays).

    Each remaining n-gram is written on its own between out-of-vocabulary
    separators, which only touch bucket 0, so TEXT must already use it."""
    present = set(scorer.present_indices(text).tolist())
    assert OUT_OF_VOCABULARY_INDEX in present
    assert SEPARATOR not in scorer.vocabulary
    chunks = [
        scorer.vocabulary[index]
        for index in sorted(present)
        if index not in (OUT_OF_VOCABULARY_INDEX, removed)
    ]
    modified = f" {SEPARATOR} ".join(chunks)
    expected = present - {removed}
    return modified if set(scorer.present_indices(modified).tolist()) == expected else None


# --------------------------------------------------------------------------
# The core


def test_explain_names_only_ngrams_of_the_message(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    scorer = Scorer(trained_model_dir)
    for label in ("ham", "spam"):
        for text in heldout_texts(scorer, heldout_dir, label):
            explanation = explain_text(scorer, text, top=50)
            message_ngrams = set(ngrams(text.split()))
            assert explanation.effects
            for effect in explanation.effects:
                if effect.token != OUT_OF_VOCABULARY:
                    assert effect.token in message_ngrams
                    assert effect.token in scorer.vocabulary


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
    text = heldout_texts(scorer, heldout_dir, label)[0]
    explanation = explain_text(scorer, text, top=1000)
    index = {term: position for position, term in enumerate(scorer.vocabulary)}
    compared = 0
    for effect in explanation.effects:
        if effect.token == OUT_OF_VOCABULARY:
            continue
        modified = text_without(scorer, text, index[effect.token])
        if modified is None:
            continue
        score_without = float(scorer.score_texts([modified])[0])
        assert effect.effect == pytest.approx(explanation.score - score_without, abs=1e-9)
        compared += 1
    assert compared >= 5


def test_explain_every_effect_matches_a_multi_hot_reference(
    synthetic_model_dir: Path, synthetic_export: ScoringExport
) -> None:
    scorer = Scorer(synthetic_model_dir)
    # cash, prize, meeting, "cash prize", the, and bucket 0 ("prize meeting", "meeting the")
    text = "cash prize meeting the"
    present = set(scorer.present_indices(text).tolist())
    assert present == {0, 1, 2, 3, 4, 5}

    explanation = explain_text(scorer, text, top=10)

    assert explanation.score == pytest.approx(reference_score(synthetic_export, present), abs=1e-9)
    by_token = {effect.token: effect.effect for effect in explanation.effects}
    for position in present:
        token = OUT_OF_VOCABULARY if position == 0 else synthetic_export.vocabulary[position]
        expected = explanation.score - reference_score(synthetic_export, present - {position})
        if expected != 0.0:
            assert by_token[token] == pytest.approx(expected, abs=1e-9), token
    assert by_token["cash"] > 0 and by_token["prize"] > 0
    assert by_token["meeting"] < 0


@pytest.mark.parametrize("normalization", ["l2", "none"])
def test_explain_with_other_normalisations_matches_the_reference(
    tmp_path: Path, synthetic_export: ScoringExport, normalization: str
) -> None:
    export = dataclasses.replace(synthetic_export, normalization=normalization)
    model_dir = write_synthetic_model(tmp_path / normalization)
    metadata = json.loads((model_dir / artifacts.METADATA_FILE).read_text())
    metadata["export"] = artifacts.write_export(model_dir, export)
    artifacts.write_metadata(model_dir, metadata)
    scorer = Scorer(model_dir)
    present = {0, 1, 2, 3, 4, 5}

    explanation = explain_text(scorer, "cash prize meeting the", top=10)

    assert explanation.score == pytest.approx(reference_score(export, present), abs=1e-9)
    for effect in explanation.effects:
        position = 0 if effect.token == OUT_OF_VOCABULARY else export.vocabulary.index(effect.token)
        expected = explanation.score - reference_score(export, present - {position})
        assert effect.effect == pytest.approx(expected, abs=1e-9), effect.token


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


def test_explain_one_ngram_and_no_ngram(
    synthetic_model_dir: Path, synthetic_export: ScoringExport
) -> None:
    scorer = Scorer(synthetic_model_dir)

    nothing = explain_text(scorer, "")
    single = explain_text(scorer, "cash")

    assert nothing.effects == []
    assert nothing.score == pytest.approx(float(scorer.score_texts([""])[0]), abs=1e-12)
    assert [effect.token for effect in single.effects] == ["cash"]
    assert single.effects[0].effect == pytest.approx(
        reference_score(synthetic_export, {1}) - reference_score(synthetic_export, set()), abs=1e-9
    )


def test_explain_out_of_vocabulary_ngrams_are_one_entry(synthetic_model_dir: Path) -> None:
    scorer = Scorer(synthetic_model_dir)

    explanation = explain_text(scorer, "unknown words only here cash", top=10)

    tokens = [effect.token for effect in explanation.effects]
    assert tokens.count(OUT_OF_VOCABULARY) == 1
    assert set(tokens) == {OUT_OF_VOCABULARY, "cash"}


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
        message_ngrams = set(ngrams(scorer.message_text(path.read_bytes()).split()))
        assert all(match["bucket"] or match["token"] in message_ngrams for match in effects)


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
