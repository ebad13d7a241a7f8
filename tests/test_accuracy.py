"""The accuracy bar, trained and measured on the real SpamAssassin corpus.

Marked slow: it trains a model with the default settings (about three
minutes on two cores) on the ``random`` train part and evaluates it on the test part.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spamcli.corpus import write_split
from spamcli.evaluation import evaluate
from spamcli.training import train

CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "spamassassin"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def random_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"{CORPUS_DIR} not found: the shared SpamAssassin corpus is needed")
    split_dir = tmp_path_factory.mktemp("split") / "random"
    write_split(CORPUS_DIR, "random", split_dir)
    return split_dir


def test_accuracy_default_training_meets_the_bar_on_the_random_split(
    random_split: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    train(model_dir, sources=[random_split / "train"])
    result = evaluate(model_dir, sources=[random_split / "test"])
    assert (result["ham"], result["spam"]) == (831, 379)
    assert result["roc_auc"] >= 0.999
    assert result["false_positives"] <= 2
    assert result["recall"] >= 0.95
