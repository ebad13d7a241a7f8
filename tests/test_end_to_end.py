"""Train a tiny model, then use it the ways a user would: score held-out mail,
reload the saved Keras model, move the folder, evaluate, train again.

These are contracts (the export agrees with the Keras model, a model folder
is self-contained, the same seed gives the same model), not accuracy
figures: accuracy is measured by ``spamcli evaluate`` and the benchmarks.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from spamcli.artifacts import KERAS_FILE, METADATA_FILE, VOCABULARY_FILE, WEIGHTS_FILE
from spamcli.cli import cli
from spamcli.config import TrainingConfig
from spamcli.scoring import Scorer
from spamcli.tokens import message_tokens


def heldout_messages(heldout_dir: Path) -> tuple[list[bytes], np.ndarray]:
    paths = sorted(heldout_dir.rglob("*.eml"))
    return [path.read_bytes() for path in paths], np.array([p.parent.name == "spam" for p in paths])


def test_end_to_end_heldout_mail_is_told_apart(trained_model_dir: Path, heldout_dir: Path) -> None:
    raws, is_spam = heldout_messages(heldout_dir)
    scorer = Scorer(trained_model_dir)

    scores = np.asarray(scorer.score_messages(raws))

    assert scores[is_spam].mean() > scores[~is_spam].mean()
    # Every held-out spam outranks every held-out ham: the word lists do not overlap.
    assert scores[is_spam].min() > scores[~is_spam].max()
    labels = np.array([scorer.verdict(float(score)).label == "spam" for score in scores])
    assert (labels == is_spam).mean() >= 0.75


def test_end_to_end_keras_model_and_scorer_agree(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    import keras
    import tensorflow as tf

    raws, _ = heldout_messages(heldout_dir)
    scorer = Scorer(trained_model_dir)
    texts = [message_tokens(raw, scorer.header_policy) for raw in raws]
    texts.append("")  # no n-gram at all
    texts.append("zzzunseen qqqnever")  # nothing in the vocabulary

    model = keras.saving.load_model(trained_model_dir / KERAS_FILE, safe_mode=True)
    keras_scores = np.asarray(model.predict(tf.constant(texts), verbose=0)).reshape(-1)
    scorer_scores = scorer.score_texts(texts)

    assert np.max(np.abs(keras_scores - scorer_scores)) <= 1e-5
    keras_labels = [scorer.verdict(float(score)).label for score in keras_scores]
    scorer_labels = [scorer.verdict(float(score)).label for score in scorer_scores]
    assert keras_labels == scorer_labels


def test_end_to_end_moved_model_predicts_the_same(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    before = runner.invoke(cli, ["predict", str(heldout_dir), "-m", str(trained_model_dir)])
    moved = Path(shutil.copytree(trained_model_dir, tmp_path / "elsewhere" / "renamed"))

    after = runner.invoke(cli, ["predict", str(heldout_dir), "-m", str(moved)])

    assert before.exit_code == after.exit_code == 0
    assert len(before.stdout.splitlines()) == 24
    assert after.stdout == before.stdout


def test_end_to_end_evaluate_heldout(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = runner.invoke(
        cli,
        [
            "evaluate",
            "--no-record",
            str(heldout_dir),
            "-m",
            str(trained_model_dir),
            "--format",
            "json",
        ],
    )

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert (metrics["ham"], metrics["spam"]) == (12, 12)
    assert metrics["duplicates"] == metrics["unreadable"] == 0
    threshold = json.loads((trained_model_dir / METADATA_FILE).read_text())["threshold"]
    assert metrics["threshold"] == threshold
    assert metrics["roc_auc"] == 1.0  # see test_end_to_end_heldout_mail_is_told_apart


def test_end_to_end_same_seed_same_model(
    tmp_path: Path, corpus_dir: Path, trained_model_dir: Path, tiny_config: TrainingConfig
) -> None:
    from spamcli.training import train

    again_dir = tmp_path / "again"

    train(again_dir, sources=[corpus_dir], config=tiny_config)

    with (
        np.load(trained_model_dir / WEIGHTS_FILE) as first,
        np.load(again_dir / WEIGHTS_FILE) as second,
    ):
        assert first.files == second.files
        for name in first.files:
            np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert (again_dir / VOCABULARY_FILE).read_bytes() == (
        trained_model_dir / VOCABULARY_FILE
    ).read_bytes()
    first_metadata = json.loads((trained_model_dir / METADATA_FILE).read_text())
    second_metadata = json.loads((again_dir / METADATA_FILE).read_text())
    for key in ("threshold", "validation", "training", "training_data", "export"):
        assert first_metadata[key] == second_metadata[key], key


def test_end_to_end_header_policy_travels_with_the_model(
    tmp_path: Path, corpus_dir: Path, heldout_dir: Path, tiny_config: TrainingConfig
) -> None:
    from spamcli.training import train

    config = dataclasses.replace(tiny_config, header_policy="all", epochs=1)

    report = train(tmp_path / "model", sources=[corpus_dir], config=config)

    scorer = Scorer(report.model_dir)
    assert scorer.header_policy == "all"
    vocabulary = (report.model_dir / VOCABULARY_FILE).read_text(encoding="utf-8").splitlines()
    assert any(term.startswith("message-id:") for term in vocabulary)
    # Raw mail is scored with the model's own policy, not the default one.
    raws, _ = heldout_messages(heldout_dir)
    every_header = scorer.score_texts([message_tokens(raw, "all") for raw in raws])
    content_only = scorer.score_texts([message_tokens(raw, "content") for raw in raws])
    np.testing.assert_array_equal(scorer.score_messages(raws), every_header)
    assert not np.array_equal(every_header, content_only)
