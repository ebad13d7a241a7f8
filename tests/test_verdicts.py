"""Three verdicts (ham, unsure, spam) from two cut-offs, and the exit status
of ``--exit-status``: in the core, on the command line, in a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spamcli.artifacts import METADATA_FILE
from spamcli.cli import cli
from spamcli.config import EXIT_ERROR, EXIT_HAM, EXIT_SPAM, EXIT_UNSURE
from spamcli.errors import ModelError
from spamcli.scoring import Cutoffs, Scorer, exit_status


@pytest.mark.parametrize(
    ("score", "label"),
    [(0.0, "ham"), (0.29, "ham"), (0.3, "unsure"), (0.89, "unsure"), (0.9, "spam"), (1.0, "spam")],
)
def test_cutoffs_label_the_three_bands(score: float, label: str) -> None:
    assert Cutoffs(spam=0.9, ham=0.3).label(score) == label


def test_equal_cutoffs_have_no_unsure_band() -> None:
    cutoffs = Cutoffs(spam=0.7, ham=0.7)
    assert [cutoffs.label(score) for score in (0.69, 0.7)] == ["ham", "spam"]


def test_crossed_cutoffs_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be above"):
        Cutoffs(spam=0.4, ham=0.6)


@pytest.mark.parametrize(
    ("labels", "failed", "status"),
    [
        ([], False, EXIT_HAM),
        (["ham"], False, EXIT_HAM),
        (["spam"], False, EXIT_SPAM),
        (["unsure"], False, EXIT_UNSURE),
        (["ham", "unsure", "spam"], False, EXIT_SPAM),
        (["ham", "unsure"], False, EXIT_UNSURE),
        (["spam"], True, EXIT_ERROR),
    ],
)
def test_exit_status(labels: list[str], failed: bool, status: int) -> None:
    assert exit_status(labels, failed) == status
    assert (EXIT_HAM, EXIT_SPAM, EXIT_UNSURE, EXIT_ERROR) == (0, 1, 2, 3)


def set_ham_cutoff(model_dir: Path, ham_cutoff: float | str | None) -> None:
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["ham_cutoff"] = ham_cutoff
    path.write_text(json.dumps(metadata))


def test_scorer_reads_the_ham_cutoff(model_copy: Path) -> None:
    set_ham_cutoff(model_copy, 0.25)
    scorer = Scorer(model_copy)

    assert scorer.cutoffs() == Cutoffs(spam=scorer.threshold, ham=0.25)
    # A spam cut-off given alone below the ham cut-off narrows the band.
    assert scorer.cutoffs(spam=0.2) == Cutoffs(spam=0.2, ham=0.2)
    assert scorer.cutoffs(spam=0.8, ham=0.1) == Cutoffs(spam=0.8, ham=0.1)


def test_a_model_without_a_ham_cutoff_has_no_band(trained_model_dir: Path) -> None:
    scorer = Scorer(trained_model_dir)
    assert scorer.cutoffs().ham == scorer.cutoffs().spam == scorer.threshold


@pytest.mark.parametrize("ham_cutoff", [1.5, -0.1, "low", None])
def test_a_bad_ham_cutoff_is_refused(model_copy: Path, ham_cutoff: float | str | None) -> None:
    set_ham_cutoff(model_copy, ham_cutoff)
    with pytest.raises(ModelError, match="ham cut-off"):
        Scorer(model_copy)


def predict(*args: str | Path) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(cli, ["predict", "--format", "json", *map(str, args)])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, records, result.stderr


def test_predict_reports_unsure_between_the_cutoffs(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    status, records, _ = predict(heldout_dir, "-m", trained_model_dir)
    scores = sorted(float(record["score"]) for record in records)  # type: ignore[arg-type]
    low, high = scores[len(scores) // 4], scores[3 * len(scores) // 4]

    status, records, _ = predict(
        heldout_dir, "-m", trained_model_dir, "--ham-cutoff", low, "--spam-cutoff", high
    )

    assert status == 0
    for record in records:
        assert record["label"] == Cutoffs(spam=high, ham=low).label(record["score"])  # type: ignore[arg-type]
    assert {record["label"] for record in records} == {"ham", "unsure", "spam"}


def test_predict_crossed_cutoffs_are_a_usage_error(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            str(heldout_dir),
            "-m",
            str(trained_model_dir),
            "--ham-cutoff",
            "0.9",
            "--threshold",
            "0.2",
        ],
    )
    assert result.exit_code == 2
    assert "must not be above" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("options", "status"),
    [
        (["--threshold", "0"], EXIT_SPAM),
        (["--threshold", "1"], EXIT_HAM),
        (["--threshold", "1", "--ham-cutoff", "0"], EXIT_UNSURE),
    ],
)
def test_predict_exit_status_gives_the_verdict(
    trained_model_dir: Path, heldout_dir: Path, options: list[str], status: int
) -> None:
    message = sorted((heldout_dir / "spam").iterdir())[0]
    code, records, _ = predict(message, "-m", trained_model_dir, "--exit-status", *options)
    assert code == status
    assert len(records) == 1


def test_predict_exit_status_on_errors(
    trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    message = sorted((heldout_dir / "ham").iterdir())[0]
    code, records, stderr = predict(
        message, tmp_path / "missing.eml", "-m", trained_model_dir, "--exit-status"
    )
    assert code == EXIT_ERROR
    assert len(records) == 1  # the readable message is still classified
    assert "missing.eml" in stderr

    code, records, stderr = predict(message, "-m", tmp_path / "no-model", "--exit-status")
    assert code == EXIT_ERROR
    assert records == []
    assert "no model folder" in stderr


def test_predict_without_exit_status_exits_0_whatever_the_verdict(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    code, records, _ = predict(heldout_dir, "-m", trained_model_dir, "--threshold", "0")
    assert code == 0
    assert {record["label"] for record in records} == {"spam"}


def test_training_with_an_unsure_rate_stores_a_ham_cutoff(tmp_path: Path, corpus_dir: Path) -> None:
    import dataclasses

    from conftest import TINY_CONFIG

    from spamcli.training import train

    config = dataclasses.replace(TINY_CONFIG, unsure_rate=0.2)
    report = train(tmp_path / "model", sources=[corpus_dir], config=config)
    metadata = json.loads((tmp_path / "model" / METADATA_FILE).read_text())

    assert metadata["ham_cutoff"] == report.ham_cutoff
    assert 0.0 <= report.ham_cutoff <= report.threshold
    assert metadata["hyperparameters"]["unsure_rate"] == 0.2
