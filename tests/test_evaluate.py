"""Tests of `spamcli evaluate` beyond the metrics table: plots, the
confusion matrix, the threshold sweep, the unsure band, comparing models,
and `train --target-recall` / `--target-fpr`.

The figures checked here are consistency between outputs (the confusion
matrix against the message counts, evaluate against predict, (1-AUC)%
against the AUC), never a particular probability.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from spamcli import cutoffs, evaluation, metrics
from spamcli.artifacts import METADATA_FILE
from spamcli.cli import cli
from spamcli.config import TrainingConfig

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOT_FILES = ("roc.png", "precision_recall.png", "scores.png")


def invoke(runner: CliRunner, *args: str | Path, **kwargs: Any) -> Result:
    # --no-record: the session's shared model must stay as trained (an
    # evaluation would otherwise add evaluations.jsonl to its folder).
    extra = ["--no-record"] if args[:1] == ("evaluate",) else []
    return runner.invoke(cli, [str(arg) for arg in args] + extra, **kwargs)


def evaluate_json(runner: CliRunner, *args: str | Path) -> Any:
    result = invoke(runner, "evaluate", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def predicted_scores(runner: CliRunner, model_dir: Path, folder: Path) -> list[float]:
    result = invoke(runner, "predict", folder, "-m", model_dir, "--format", "json")
    assert result.exit_code == 0, result.output
    return [json.loads(line)["score"] for line in result.stdout.splitlines()]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, the first after the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    length, chunk_type = struct.unpack(">I4s", data[8:16])
    assert chunk_type == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def set_cutoffs(model_dir: Path, threshold: float, ham_cutoff: float | None = None) -> None:
    metadata_path = model_dir / METADATA_FILE
    metadata = json.loads(metadata_path.read_text())
    metadata["threshold"] = threshold
    metadata.pop("ham_cutoff", None)
    if ham_cutoff is not None:
        metadata["ham_cutoff"] = ham_cutoff
    metadata_path.write_text(json.dumps(metadata))


# --------------------------------------------------------------------------
# Plots


def test_evaluate_plots_are_png_figures(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    plots_dir = tmp_path / "figures" / "new"  # created, parents and all
    result = invoke(runner, "evaluate", heldout_dir, "-m", trained_model_dir, "--plots", plots_dir)

    assert result.exit_code == 0, result.output
    saved = [line.removeprefix("saved ") for line in result.stdout.splitlines() if "saved" in line]
    assert saved == [str(plots_dir / name) for name in PLOT_FILES]
    for name in PLOT_FILES:
        path = plots_dir / name
        width, height = png_size(path)
        assert width >= 400 and height >= 300, (name, width, height)
        assert path.stat().st_size > 10_000, name


def test_evaluate_plots_in_json_and_one_class(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    # Only spam: no ROC or precision-recall curve exists, the histogram does.
    result = invoke(
        runner,
        "evaluate",
        "--spam",
        heldout_dir / "spam",
        "-m",
        trained_model_dir,
        "--plots",
        tmp_path,
        "--format",
        "json",
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plots"] == [str(tmp_path / "scores.png")]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scores.png"]
    assert "no ROC or precision-recall plot" in result.stderr


def test_evaluate_plots_folder_that_is_a_file(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    result = invoke(runner, "evaluate", heldout_dir, "-m", trained_model_dir, "--plots", blocker)

    assert result.exit_code != 0
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_evaluate_imports_no_matplotlib_without_plots(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from spamcli.evaluation import evaluate\n"
        f"evaluate({str(trained_model_dir)!r}, [{str(heldout_dir)!r}], sweep=True)\n"
        "print('matplotlib' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["False", "False"]


# --------------------------------------------------------------------------
# Confusion matrix, unsure band, (1-AUC)%


def test_evaluate_confusion_matrix_sums_to_the_messages(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = evaluate_json(runner, heldout_dir, "-m", trained_model_dir)

    matrix = result["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == result["messages"] == 24
    assert sum(matrix["ham"].values()) == result["ham"]
    assert sum(matrix["spam"].values()) == result["spam"]
    assert matrix["ham"]["spam"] == result["false_positives"]
    assert matrix["spam"]["spam"] == result["true_positives"]
    # The model has no unsure band.
    assert result["ham_cutoff"] == result["threshold"]
    assert matrix["ham"]["unsure"] == matrix["spam"]["unsure"] == 0


def test_evaluate_counts_unsure_with_a_ham_cutoff(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    ham_scores = predicted_scores(runner, trained_model_dir, heldout_dir / "ham")
    spam_scores = predicted_scores(runner, trained_model_dir, heldout_dir / "spam")
    # Cut-offs inside the range of the scores, so that each verdict can occur.
    ham_cutoff, spam_cutoff = np.quantile(ham_scores + spam_scores, [0.25, 0.75]).tolist()
    options = ("--ham-cutoff", f"{ham_cutoff:.6f}", "--spam-cutoff", f"{spam_cutoff:.6f}")

    result = evaluate_json(runner, heldout_dir, "-m", trained_model_dir, *options)

    def unsure(scores: list[float]) -> int:
        return sum(
            float(f"{ham_cutoff:.6f}") <= score < float(f"{spam_cutoff:.6f}") for score in scores
        )

    assert result["unsure_ham"] == unsure(ham_scores)
    assert result["unsure_spam"] == unsure(spam_scores)
    assert result["unsure_ham"] + result["unsure_spam"] > 0
    assert result["confusion_matrix"]["ham"]["unsure"] == result["unsure_ham"]
    assert result["confusion_matrix"]["spam"]["unsure"] == result["unsure_spam"]
    assert sum(sum(row.values()) for row in result["confusion_matrix"].values()) == 24

    text = invoke(runner, "evaluate", heldout_dir, "-m", trained_model_dir, *options).stdout
    assert re.search(rf"^unsure ham +{result['unsure_ham']}$", text, re.MULTILINE)
    assert re.search(rf"^unsure spam +{result['unsure_spam']}$", text, re.MULTILINE)
    assert re.search(r"^ +ham +unsure +spam$", text, re.MULTILINE)


def test_evaluate_text_without_band_has_no_unsure_column(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(runner, "evaluate", heldout_dir, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    assert "unsure" not in result.stdout
    matrix = re.search(r"^ +ham +spam\nham +(\d+) +(\d+)\nspam +(\d+) +(\d+)$", result.stdout, re.M)
    assert matrix, result.stdout
    assert sum(int(count) for count in matrix.groups()) == 24


def test_evaluate_one_minus_auc_percent(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = evaluate_json(runner, heldout_dir, "-m", trained_model_dir)

    assert result["one_minus_auc_percent"] == pytest.approx(100 * (1 - result["roc_auc"]))
    text = invoke(runner, "evaluate", heldout_dir, "-m", trained_model_dir).stdout
    figure = f"{result['one_minus_auc_percent']:.4f}"
    assert re.search(rf"^\(1-AUC\)% +{figure}$", text, re.MULTILINE), text


def test_metrics_one_minus_auc_percent_of_misranked_pairs() -> None:
    # Of the 4 (ham, spam) pairs, one is in the wrong order: AUC 0.75.
    result = metrics.classification_metrics(
        [False, True, False, True], [0.1, 0.2, 0.3, 0.4], threshold=0.5
    )

    assert result["roc_auc"] == pytest.approx(0.75)
    assert result["one_minus_auc_percent"] == pytest.approx(25.0)
    assert metrics.one_minus_auc_percent(None) is None


def test_evaluate_ham_cutoff_above_spam_cutoff_is_a_usage_error(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    crossed = invoke(
        runner,
        "evaluate",
        heldout_dir,
        "-m",
        trained_model_dir,
        "--ham-cutoff",
        "0.9",
        "--threshold",
        "0.5",
    )
    above_model = invoke(
        runner, "evaluate", heldout_dir, "-m", trained_model_dir, "--ham-cutoff", "1"
    )

    for result in (crossed, above_model):
        assert result.exit_code == 2, result.output
        assert "ham cut-off" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------
# Threshold sweep


def assert_monotonic(rows: list[dict[str, Any]]) -> None:
    thresholds = [row["threshold"] for row in rows]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    for lower, higher in itertools.pairwise(rows):
        assert higher["false_positives"] <= lower["false_positives"]
        assert higher["false_positive_rate"] <= lower["false_positive_rate"]
        assert higher["true_positives"] <= lower["true_positives"]
        assert higher["recall"] <= lower["recall"]


def test_evaluate_sweep_is_monotonic_and_marks_the_cutoff(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = evaluate_json(runner, heldout_dir, "-m", trained_model_dir, "--sweep")

    rows = result["sweep"]
    assert len(rows) >= 3
    assert_monotonic(rows)
    in_force = [row for row in rows if row["threshold"] == result["threshold"]]
    assert len(in_force) == 1
    assert in_force[0]["false_positives"] == result["false_positives"]
    assert in_force[0]["recall"] == result["recall"]
    assert all("unsure_share" not in row for row in rows)  # no band
    chosen = [rule for row in rows for rule in row["rules"]]
    assert {"target_false_positive_rate": 0.001} in chosen
    assert {"target_recall": 0.95} in chosen

    text = invoke(runner, "evaluate", heldout_dir, "-m", trained_model_dir, "--sweep").stdout
    marked = [line for line in text.splitlines() if line.startswith("* ")]
    assert len(marked) == 1 and f"{result['threshold']:.6f}" in marked[0]
    assert "--target-recall 0.95" in text


def test_evaluate_sweep_with_a_ham_cutoff_shows_the_unsure_share(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = evaluate_json(
        runner, heldout_dir, "-m", trained_model_dir, "--sweep", "--ham-cutoff", "0.2"
    )

    rows = result["sweep"]
    assert_monotonic(rows)
    for row in rows:
        assert row["ham_cutoff"] == min(0.2, row["threshold"])
        assert row["unsure_share"] == pytest.approx(row["unsure"] / result["messages"])
    in_force = next(row for row in rows if row["threshold"] == result["threshold"])
    assert in_force["unsure"] == result["unsure_ham"] + result["unsure_spam"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), min_size=1, max_size=60),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_metrics_threshold_sweep_is_monotonic(
    labelled: list[tuple[bool, float]], ham_cutoff: float | None
) -> None:
    is_spam = [label for label, _ in labelled]
    scores = [score for _, score in labelled]
    grid = metrics.sweep_cutoffs(is_spam, scores)
    rows = metrics.threshold_sweep(is_spam, scores, grid, ham_cutoff, keep=0.5)

    thresholds = [row["threshold"] for row in rows]
    assert thresholds == sorted(thresholds) and 0.5 in thresholds
    for lower, higher in itertools.pairwise(rows):
        assert higher["false_positives"] <= lower["false_positives"]
        assert higher["true_positives"] <= lower["true_positives"]
    for row in rows:
        for rule in row["rules"]:
            if "target_recall" in rule:
                assert row["recall"] >= rule["target_recall"]
            elif row["threshold"] < 1.0:
                assert row["false_positive_rate"] <= rule["target_false_positive_rate"]


# --------------------------------------------------------------------------
# Comparing models


def test_evaluate_two_copies_of_a_model_agree(
    runner: CliRunner, trained_model_dir: Path, model_copy: Path, heldout_dir: Path
) -> None:
    comparison = evaluate_json(
        runner, heldout_dir, "-m", trained_model_dir, "-m", model_copy, "--disagreements", "5"
    )

    first, second = comparison["models"]
    assert (first["name"], second["name"]) == ("model", "model_copy")
    assert (first["model"], second["model"]) == (str(trained_model_dir), str(model_copy))
    assert {key: value for key, value in first.items() if key not in ("name", "model")} == {
        key: value for key, value in second.items() if key not in ("name", "model")
    }
    assert comparison["disagreement_count"] == 0
    assert comparison["disagreements"] == []

    text = invoke(runner, "evaluate", heldout_dir, "-m", trained_model_dir, "-m", model_copy).stdout
    assert re.match(r"^ +model +model_copy$", text.splitlines()[0])
    assert re.search(r"^messages +24 +24$", text, re.MULTILINE)
    assert "confusion matrix of model " in text and "confusion matrix of model_copy " in text
    assert "the models disagree on 0 of 24 messages" in text


def test_evaluate_models_with_other_cutoffs_disagree(
    runner: CliRunner, trained_model_dir: Path, model_copy: Path, heldout_dir: Path
) -> None:
    own = evaluate_json(runner, heldout_dir, "-m", trained_model_dir)
    set_cutoffs(model_copy, 0.0)  # every message is spam

    comparison = evaluate_json(
        runner, heldout_dir, "-m", trained_model_dir, "-m", model_copy, "--disagreements", "3"
    )

    not_flagged = own["messages"] - own["true_positives"] - own["false_positives"]
    assert not_flagged > 0
    assert comparison["disagreement_count"] == not_flagged
    listed = comparison["disagreements"]
    assert len(listed) == min(3, not_flagged)
    for message in listed:
        assert message["true_label"] in ("ham", "spam")
        assert f"/{message['true_label']}/" in message["source"]
        (original, copy) = message["verdicts"]
        assert original["name"] == "model" and copy["name"] == "model_copy"
        assert original["score"] == copy["score"]
        assert original["verdict"] == "ham" and copy["verdict"] == "spam"

    text = invoke(
        runner,
        "evaluate",
        heldout_dir,
        "-m",
        trained_model_dir,
        "-m",
        model_copy,
        "--disagreements",
        "3",
    ).stdout
    assert f"the models disagree on {not_flagged} of 24 messages" in text
    lines = [line for line in text.splitlines() if line.endswith(".eml")]
    assert len(lines) == len(listed)
    assert all(re.match(r"(ham|spam) +\d\.\d{4} ham +\d\.\d{4} spam +\S", line) for line in lines)


def test_evaluate_reads_the_messages_once_for_all_models(
    trained_model_dir: Path, model_copy: Path, heldout_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    load_corpus = evaluation.load_corpus

    def counting_load_corpus(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return load_corpus(*args, **kwargs)

    monkeypatch.setattr(evaluation, "load_corpus", counting_load_corpus)
    comparison = evaluation.evaluate_models(
        [trained_model_dir, model_copy, model_copy], [heldout_dir]
    )

    assert len(calls) == 1
    assert len(comparison["models"]) == 3
    # Two folders with the same name: the names are the paths as given.
    assert [result["name"] for result in comparison["models"]] == [
        str(trained_model_dir),
        str(model_copy),
        str(model_copy),
    ]


def test_evaluate_disagreements_need_two_models(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(
        runner, "evaluate", heldout_dir, "-m", trained_model_dir, "--disagreements", "3"
    )

    assert result.exit_code == 2
    assert "--disagreements" in result.stderr


def test_evaluate_model_from_the_environment(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    from_option = evaluate_json(runner, heldout_dir, "-m", trained_model_dir)
    result = invoke(
        runner,
        "evaluate",
        heldout_dir,
        "--format",
        "json",
        env={"SPAMCLI_MODEL": str(trained_model_dir)},
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == from_option


# --------------------------------------------------------------------------
# JSON has everything the text has


def test_evaluate_json_has_everything(
    runner: CliRunner, trained_model_dir: Path, model_copy: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    single = evaluate_json(
        runner,
        heldout_dir,
        "-m",
        trained_model_dir,
        "--ham-cutoff",
        "0.3",
        "--sweep",
        "--plots",
        tmp_path / "single",
    )
    for key in (
        "model",
        "name",
        "messages",
        "ham",
        "spam",
        "threshold",
        "ham_cutoff",
        "true_positives",
        "false_positives",
        "true_negatives",
        "false_negatives",
        "unsure_ham",
        "unsure_spam",
        "precision",
        "recall",
        "false_positive_rate",
        "roc_auc",
        "one_minus_auc_percent",
        "confusion_matrix",
        "sweep",
        "plots",
        "duplicates",
        "unreadable",
    ):
        assert key in single, key
    assert set(single["confusion_matrix"]["ham"]) == {"ham", "unsure", "spam"}
    assert single["plots"] == [str(tmp_path / "single" / name) for name in PLOT_FILES]

    comparison = evaluate_json(
        runner,
        heldout_dir,
        "-m",
        trained_model_dir,
        "-m",
        model_copy,
        "--sweep",
        "--disagreements",
        "2",
        "--plots",
        tmp_path / "both",
    )
    assert set(comparison) == {"models", "disagreement_count", "disagreements", "plots"}
    assert [result["name"] for result in comparison["models"]] == ["model", "model_copy"]
    assert all(
        "sweep" in result and "confusion_matrix" in result for result in comparison["models"]
    )
    assert all(Path(path).is_file() for path in comparison["plots"])


# --------------------------------------------------------------------------
# Training: the rule that chooses the threshold


# Scores a thousandth apart, wider than the margin the cut-off keeps below
# the lowest spam it must flag.
SPAM_SCORES = st.lists(st.integers(0, 1000).map(lambda step: step / 1000), min_size=1, max_size=80)


@settings(max_examples=80, deadline=None)
@given(SPAM_SCORES, st.floats(0.01, 1.0))
def test_metrics_threshold_for_recall_is_the_highest_that_keeps_the_recall(
    spam_scores: list[float], target_recall: float
) -> None:
    threshold = cutoffs.threshold_for_recall(spam_scores, target_recall)

    scores = np.array(spam_scores)
    assert np.mean(scores >= threshold) >= target_recall
    # Raising the cut-off past the lowest spam it flags loses the recall.
    lowest_flagged = scores[scores >= threshold].min()
    assert np.mean(scores > lowest_flagged) < target_recall
    assert lowest_flagged - threshold == pytest.approx(cutoffs.THRESHOLD_MARGIN) or threshold == 0


@settings(max_examples=80, deadline=None)
@given(SPAM_SCORES, SPAM_SCORES, st.sampled_from([0.0, 0.001, 0.05]))
def test_metrics_cut_off_for_false_positive_rate_is_midway_in_the_gap(
    ham_scores: list[float], spam_scores: list[float], target_rate: float
) -> None:
    """Of the cut-offs that keep the ham rate and catch as many spam as the
    lowest of them, the one midway in log-odds."""
    ham, spam = np.array(ham_scores), np.array(spam_scores)
    is_spam = np.concatenate([np.zeros(ham.size, bool), np.ones(spam.size, bool)])
    scores = np.concatenate([ham, spam])
    lowest = cutoffs.threshold_for_false_positive_rate(ham, target_rate, 0.5)

    cut_off = cutoffs.cut_off_for_false_positive_rate(is_spam, scores, target_rate, 0.5)

    assert cut_off >= lowest
    assert np.sum(ham >= cut_off) <= np.sum(ham >= lowest)
    assert np.sum(spam >= cut_off) == np.sum(spam >= lowest)
    caught = spam[spam >= lowest]
    highest = caught.min() - cutoffs.THRESHOLD_MARGIN if caught.size else lowest
    if highest > lowest:
        assert _log_odds(cut_off) - _log_odds(lowest) == pytest.approx(
            _log_odds(highest) - _log_odds(cut_off), abs=1e-6
        )
    else:
        assert cut_off == lowest


def _log_odds(probability: float) -> float:
    return float(np.log(probability / (1 - probability)))


def test_metrics_cut_off_leaves_room_on_both_sides() -> None:
    is_spam = [False, False, False, True, True, True]
    scores = [0.1, 0.2, 0.7, 0.6, 0.9, 0.95]

    cut_off = cutoffs.cut_off_for_false_positive_rate(is_spam, scores, 0.001, 0.5)

    # Between the ham at 0.7 and the spam at 0.9 (log-odds 0.85 and 2.20),
    # at log-odds 1.52: a new ham at 0.8 is not flagged, a new spam at 0.85
    # is; the validation spam at 0.6 was lost either way.
    assert cut_off == pytest.approx(0.8209, abs=1e-4)


def test_train_target_recall_meets_the_recall_on_validation(
    tmp_path: Path, corpus_dir: Path, tiny_config: TrainingConfig
) -> None:
    from spamcli.training import train

    config = dataclasses.replace(tiny_config, target_recall=0.9)
    report = train(tmp_path / "model", sources=[corpus_dir], config=config)

    metadata = json.loads((report.model_dir / METADATA_FILE).read_text())
    assert metadata["threshold_rule"] == {
        "target_recall": 0.9,
        "moved_by_learning": "calibration.npz",
        "threshold_at_training": metadata["threshold"],
    }
    assert metadata["hyperparameters"]["target_recall"] == 0.9
    assert metadata["validation"]["recall"] >= 0.9
    assert metadata["validation"]["threshold"] == metadata["threshold"] == report.threshold


def test_train_records_the_false_positive_rule(trained_model_dir: Path) -> None:
    metadata = json.loads((trained_model_dir / METADATA_FILE).read_text())

    assert metadata["threshold_rule"] == {
        "target_false_positive_rate": 0.001,
        "moved_by_learning": "calibration.npz",
        "threshold_at_training": metadata["threshold"],
    }
    assert metadata["hyperparameters"]["target_recall"] is None


def test_train_target_fpr_and_target_recall_exclude_each_other(
    runner: CliRunner, corpus_dir: Path, tmp_path: Path
) -> None:
    result = invoke(
        runner,
        "train",
        corpus_dir,
        "-m",
        tmp_path / "model",
        "--target-fpr",
        "0.01",
        "--target-recall",
        "0.9",
    )

    assert result.exit_code == 2
    assert "--target-fpr" in result.stderr and "--target-recall" in result.stderr
    assert not (tmp_path / "model").exists()


def test_training_config_rejects_a_recall_out_of_range() -> None:
    with pytest.raises(ValueError, match="target_recall"):
        TrainingConfig(target_recall=0.0)
    with pytest.raises(ValueError, match="target_recall"):
        TrainingConfig(target_recall=1.5)


# --------------------------------------------------------------------------
# What could not be read: each input, and why


def test_evaluate_lists_each_unreadable_input_and_why(
    runner: CliRunner, synthetic_model_dir: Path, generate_mail: Any, tmp_path: Path
) -> None:
    # It said "2 inputs could not be read", never which or why.
    corpus = tmp_path / "corpus"
    for label in ("ham", "spam"):
        (corpus / label).mkdir(parents=True)
        for number, raw in enumerate(generate_mail(label, 3, 7)):
            (corpus / label / f"{number}.eml").write_bytes(raw)
    (corpus / "spam" / "gone.eml").symlink_to(tmp_path / "nothing")
    (corpus / "ham" / "broken.tar.gz").write_bytes(b"not gzip at all\n")

    text = invoke(runner, "evaluate", corpus, "-m", synthetic_model_dir)
    as_json = evaluate_json(runner, corpus, "-m", synthetic_model_dir)

    assert text.exit_code == 0, text.output
    assert text.stderr.splitlines() == [
        f"spamcli: {corpus / 'ham' / 'broken.tar.gz'}: not a tar archive, or a corrupt one",
        f"spamcli: {corpus / 'spam' / 'gone.eml'}: broken symbolic link",
        "spamcli: 2 inputs could not be read",
    ]
    assert as_json["messages"] == 6
    assert as_json["unreadable"] == 2
    assert as_json["unreadable_inputs"] == [
        {
            "source": str(corpus / "ham" / "broken.tar.gz"),
            "reason": "not a tar archive, or a corrupt one",
        },
        {"source": str(corpus / "spam" / "gone.eml"), "reason": "broken symbolic link"},
    ]
