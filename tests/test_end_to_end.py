"""Train a tiny model, then use it the ways a user would: score held-out mail,
check the scorer against the Keras network, move the folder, evaluate, train
again.

These are contracts (the folder's weights score in NumPy as they do in
Keras, a model folder is self-contained, the same seed gives the same
model), not accuracy figures: accuracy is measured by ``spamcli evaluate``
and the benchmarks.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from spamcli.artifacts import FIRST_KERNEL, KERNEL_FILE, METADATA_FILE, WEIGHTS_FILE
from spamcli.cli import cli
from spamcli.config import TrainingConfig
from spamcli.features import feature_indices, input_value
from spamcli.online import Network
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


def test_end_to_end_keras_network_and_scorer_agree(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    # No Keras file is saved: the Keras network is rebuilt (model.py) with
    # the folder's weights, and must score as the scorer does.
    import tensorflow as tf

    from spamcli.model import build_model, dense_layers

    raws, _ = heldout_messages(heldout_dir)
    scorer = Scorer(trained_model_dir)
    texts = [message_tokens(raw, scorer.header_policy) for raw in raws]
    texts.append("")  # no n-gram at all
    texts.append("zzzunseen qqqnever")  # n-grams no training message had
    network = Network.from_folder(trained_model_dir, scorer.metadata)
    buckets = scorer.features.buckets
    hidden_units = [layer.units for layer in scorer.network.layers[:-1]]
    (activation,) = {layer.activation for layer in scorer.network.layers[:-1]}
    model = build_model(buckets, hidden_units, 0.1, 0.0, 0.0, activation)
    for keras_layer, layer in zip(dense_layers(model), network.layers, strict=True):
        keras_layer.kernel.assign(layer.kernel)
        keras_layer.bias.assign(layer.bias)
    positions: list[tuple[int, int]] = []
    values: list[float] = []
    for row, text in enumerate(texts):
        present = feature_indices(text, scorer.features)
        positions.extend((row, index) for index in present)
        values.extend([input_value(len(present))] * len(present))
    inputs = tf.SparseTensor(
        np.array(positions, np.int64).reshape(-1, 2),
        np.array(values, np.float32),
        (len(texts), buckets),
    )

    keras_scores = np.asarray(model.predict_on_batch(inputs), np.float64).reshape(-1)
    scorer_scores = scorer.score_texts(texts)

    assert np.max(np.abs(keras_scores - scorer_scores)) <= 1e-5
    keras_labels = [scorer.verdict(float(score)).label for score in keras_scores]
    scorer_labels = [scorer.verdict(float(score)).label for score in scorer_scores]
    assert keras_labels == scorer_labels
    # Training made the same check on its validation messages, and recorded it.
    assert scorer.metadata["training"]["export_max_difference"] <= 1e-5


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

    for name in (KERNEL_FILE, WEIGHTS_FILE):
        with (
            np.load(trained_model_dir / name, allow_pickle=False) as first,
            np.load(again_dir / name, allow_pickle=False) as second,
        ):
            assert first.files == second.files, name
            for array in first.files:
                np.testing.assert_array_equal(first[array], second[array], err_msg=array)
    first_metadata = json.loads((trained_model_dir / METADATA_FILE).read_text())
    second_metadata = json.loads((again_dir / METADATA_FILE).read_text())
    for key in (
        "threshold",
        "validation",
        "training",
        "training_data",
        "features",
        "network",
        "learning",
        "weights",
    ):
        assert first_metadata[key] == second_metadata[key], key


def test_end_to_end_header_policy_travels_with_the_model(
    tmp_path: Path, corpus_dir: Path, heldout_dir: Path, tiny_config: TrainingConfig
) -> None:
    from spamcli.training import train

    # Not the default policy, which reads every header.
    assert tiny_config.header_policy == "all"
    config = dataclasses.replace(tiny_config, header_policy="content", epochs=1)

    report = train(tmp_path / "model", sources=[corpus_dir], config=config)

    scorer = Scorer(report.model_dir)
    assert scorer.header_policy == "content"
    # Training read the mail with the policy: the buckets only other headers
    # (Date, Message-ID, To) fill were never stepped, so their rows'
    # accumulators are where the optimizer starts.
    network = Network.from_folder(report.model_dir, scorer.metadata)
    content_buckets: set[int] = set()
    header_only_buckets: set[int] = set()
    for path in sorted(corpus_dir.rglob("*.eml")):
        raw = path.read_bytes()
        content_buckets.update(feature_indices(message_tokens(raw, "content"), scorer.features))
        header_only_buckets.update(feature_indices(message_tokens(raw, "all"), scorer.features))
    header_only_buckets -= content_buckets
    accumulator = network.accumulators[FIRST_KERNEL]
    assert header_only_buckets
    assert np.all(accumulator[sorted(header_only_buckets)] == network.rule.initial_accumulator)
    assert np.mean(accumulator[sorted(content_buckets)] > network.rule.initial_accumulator) > 0.9
    # Raw mail is scored with the model's own policy, not the default one.
    raws, _ = heldout_messages(heldout_dir)
    content_only = scorer.score_texts([message_tokens(raw, "content") for raw in raws])
    every_header = scorer.score_texts([message_tokens(raw, "all") for raw in raws])
    np.testing.assert_array_equal(scorer.score_messages(raws), content_only)
    assert not np.array_equal(every_header, content_only)
