"""`spamcli export --saved-model`: a SavedModel that scores as spamcli does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import generated_mail

from spamcli import artifacts
from spamcli.cli import cli
from spamcli.corpus import RawMessage
from spamcli.learning import learn
from spamcli.saved_model import (
    INPUT_NAME,
    OUTPUT_NAME,
    SIGNATURE,
    read_serving_info,
    serving_buckets,
    serving_features,
)
from spamcli.scoring import Scorer


@pytest.fixture
def learned_model(model_copy: Path) -> Path:
    """The trained model after learning a message: changed rows in weights.npz
    (fewer than the 1/16 of the 4,096 rows that would rewrite kernel.npz)."""
    spam = generated_mail("spam", 1, seed=11)
    learn(model_copy, spam=[RawMessage(f"spam{number}", raw) for number, raw in enumerate(spam)])
    metadata = artifacts.read_metadata(model_copy)
    assert metadata["weights"]["changed_rows"] > 0
    return model_copy


def test_export_saved_model_scores_as_spamcli_does(
    runner, learned_model: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    saved_model_dir = tmp_path / "serving" / "spamcli" / "1"
    result = runner.invoke(
        cli, ["export", "-m", str(learned_model), "--saved-model", str(saved_model_dir)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"saved {saved_model_dir}"
    assert (saved_model_dir / "saved_model.pb").is_file()

    messages = [
        *generated_mail("ham", 8, seed=12),
        *generated_mail("spam", 8, seed=12),
        b"",  # no buckets at all: the bias alone
        b"Subject: x\n\n" + b"word " * 5000,  # longer than max_tokens
    ]
    header_policy, features = serving_features(read_serving_info(saved_model_dir))
    buckets = serving_buckets(messages, header_policy, features)
    assert len({len(row) for row in buckets}) == 1 and min(map(min, buckets)) == -1

    serving = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE]
    output = serving(**{INPUT_NAME: tf.constant(buckets, dtype=tf.int64)})[OUTPUT_NAME]
    expected = Scorer(learned_model).score_messages(messages)
    np.testing.assert_allclose(output.numpy(), expected, atol=1e-5)


def test_export_refuses_a_folder_that_is_not_empty(
    runner, model_copy: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = runner.invoke(cli, ["export", "-m", str(model_copy), "--saved-model", str(target)])
    assert result.exit_code == 1
    assert "is not an empty folder" in result.output
    assert sorted(path.name for path in target.iterdir()) == ["notes.txt"]


def test_export_needs_a_saved_model_folder(runner) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(cli, ["export"])
    assert result.exit_code == 2
    assert "--saved-model" in result.output
