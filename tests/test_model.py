"""Tests of spamcli.model: the network's own layer and what the export records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spamcli import artifacts


def test_model_divide_by_count_averages_the_present_n_grams() -> None:
    from spamcli.model import DivideByCount

    bags = np.array([[1, 0, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32)

    divided = np.asarray(DivideByCount()(bags))

    np.testing.assert_allclose(divided[0], [1 / 3, 0, 1 / 3, 1 / 3], rtol=1e-7)
    np.testing.assert_array_equal(divided[1], [0, 1, 0, 0])
    # An empty bag (nothing the vocabulary knows) stays zero, not NaN.
    np.testing.assert_array_equal(divided[2], [0, 0, 0, 0])


def test_model_trained_folder_records_count_normalization(trained_model_dir: Path) -> None:
    metadata = json.loads((trained_model_dir / artifacts.METADATA_FILE).read_text())

    assert metadata["format_version"] == artifacts.FORMAT_VERSION == 2
    assert metadata["export"]["normalization"] == "count"
    assert "l2_normalize" not in metadata["export"]


def test_model_saved_model_loads_in_safe_mode_with_its_layer(trained_model_dir: Path) -> None:
    # The .keras file names the registered DivideByCount class; safe mode
    # rebuilds it from spamcli's code, and the loaded model still scores
    # as the export does.
    from spamcli.model import normalization_layer
    from spamcli.scoring import Scorer

    model = artifacts.load_keras_model(trained_model_dir)
    texts = ["cash prize winner", "meeting agenda minutes", ""]

    import tensorflow as tf

    keras_scores = np.asarray(model(tf.constant(texts), training=False)).reshape(-1)

    assert normalization_layer(model)[0] == "count"
    scorer = Scorer(trained_model_dir)
    np.testing.assert_allclose(keras_scores, scorer.score_texts(texts), atol=1e-5)
