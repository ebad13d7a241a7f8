"""Tests of spamcli.model_card, `spamcli info`, and the evaluation log that
`spamcli evaluate` appends to."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spamcli import artifacts
from spamcli.cli import cli
from spamcli.config import TrainingConfig
from spamcli.cutoffs import threshold_for_false_positive_rate
from spamcli.model_card import (
    EVALUATIONS_FILE,
    false_positive_rate_bound,
    model_card,
    read_evaluations,
    record_evaluation,
)


def invoke(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(cli, [str(arg) for arg in args])


def metadata_of(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / artifacts.METADATA_FILE).read_text(encoding="utf-8"))


def model_files(model_dir: Path) -> dict[str, bytes]:
    return {name: (model_dir / name).read_bytes() for name in artifacts.REQUIRED_FILES}


def row(text: str, name: str) -> str:
    """The value of the 'name  value' row called NAME."""
    match = re.search(rf"^ *{re.escape(name)}  +(.+)$", text, re.MULTILINE)
    assert match, f"no row {name!r} in:\n{text}"
    return match[1]


# --------------------------------------------------------------------------
# The card


def test_info_text_shows_the_model_card(
    runner: CliRunner, trained_model_dir: Path, corpus_dir: Path, tiny_config: TrainingConfig
) -> None:
    metadata = metadata_of(trained_model_dir)

    result = invoke(runner, "info", "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    text = result.stdout
    data = metadata["training_data"]
    assert row(text, "sources") == str(corpus_dir)
    assert row(text, "messages") == "100 ham, 100 spam (0 duplicates dropped)"
    assert row(text, "fingerprint") == data["fingerprint"]
    assert row(text, "created") == metadata["created"]
    for name, version in metadata["versions"].items():
        assert f"{name} {version}" in row(text, "versions")
    assert row(text, "header policy") == tiny_config.header_policy == "all"
    buckets = 2**tiny_config.bits
    assert row(text, "input") == (
        f"word unigrams and bigrams of the first {tiny_config.max_tokens} tokens, "
        f"hashed into {buckets} buckets"
    )
    first, second = tiny_config.hidden_units
    assert row(text, "dense_0") == f"{buckets} -> {first}, {tiny_config.hidden_activation}"
    assert row(text, "dense_1") == f"{first} -> {second}, {tiny_config.hidden_activation}"
    assert row(text, "dense_2") == f"{second} -> 1, sigmoid"
    assert row(text, "epochs") == str(tiny_config.epochs)  # the hyperparameter
    training = metadata["training"]
    assert row(text, "epochs run") == f"{training['epochs_run']} (best {training['best_epoch']})"
    assert row(text, "learning_rate") == f"{tiny_config.learning_rate:.6g}"
    difference = training["export_max_difference"]
    assert row(text, "export check") == (
        f"NumPy differs from Keras by at most {difference:.3g} on validation"
    )
    # What spamcli learn has changed since training: nothing yet.
    assert row(text, "learned since") == "0 messages, 0 kernel rows changed since kernel.npz"
    assert row(text, "spam").startswith(f"{metadata['threshold']:.6g}")
    assert row(text, "ham").startswith("no unsure band")
    validation = metadata["validation"]
    flagged, ham = validation["false_positives"] + 1, validation["ham"] + 1
    assert row(text, "new ham") == (
        f"up to {flagged / ham:.2%} flagged ({flagged} in {ham}), if like the validation ham"
    )
    assert float(row(text, "ROC AUC")) == pytest.approx(metadata["validation"]["roc_auc"], abs=1e-6)
    assert row(text, "false positives") == str(metadata["validation"]["false_positives"])
    assert "\nevaluations since training (" in text
    assert "\nlearned\n" not in text  # no messages given to spamcli learn


def test_info_json_is_the_card(
    runner: CliRunner, trained_model_dir: Path, tiny_config: TrainingConfig
) -> None:
    metadata = metadata_of(trained_model_dir)

    result = invoke(runner, "info", "-m", trained_model_dir, "--format", "json")

    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["model_dir"] == str(trained_model_dir)
    for key in ("format_version", "created", "versions", "header_policy", "hyperparameters"):
        assert card[key] == metadata[key], key
    assert card["training_data"] == metadata["training_data"]
    assert card["training"] == metadata["training"]
    assert card["validation"] == metadata["validation"]
    assert card["cutoffs"] == {
        "spam": metadata["threshold"],
        "ham": metadata["threshold"],
        "unsure_band": False,
        # Nothing learned yet: where train set it.
        "spam_at_training": metadata["threshold"],
        "new_ham_flagged_at_most": (metadata["validation"]["false_positives"] + 1)
        / (metadata["validation"]["ham"] + 1),
    }
    assert [(layer["units"], layer["activation"]) for layer in card["layers"]] == [
        (tiny_config.hidden_units[0], tiny_config.hidden_activation),
        (tiny_config.hidden_units[1], tiny_config.hidden_activation),
        (1, "sigmoid"),
    ]
    assert card["layers"][0]["inputs"] == 2 ** card["features"]["bits"]
    for key in ("features", "learning", "weights"):
        assert card[key] == metadata[key], key
    assert card["features"]["bits"] == tiny_config.bits
    assert card["export_max_difference"] == metadata["training"]["export_max_difference"]
    assert card["learned"] is None
    # The card, and where the model came from (see test_locations.py).
    assert card.pop("location") == {
        "origin": "option",
        "reason": "given with -m/--model",
        "read_only": False,
    }
    assert card == model_card(trained_model_dir)


@pytest.mark.parametrize(
    ("validation", "bound"),
    [
        ({"ham": 498, "false_positives": 0}, 1 / 499),
        ({"ham": 9, "false_positives": 2}, 3 / 10),
        ({"ham": 0, "false_positives": 0}, None),
        ({"spam": 5}, None),
        (None, None),
    ],
)
def test_false_positive_rate_bound_counts_the_validation_ham(
    validation: dict[str, int] | None, bound: float | None
) -> None:
    assert false_positive_rate_bound(validation) == bound


def test_false_positive_rate_bound_holds_for_new_ham_like_the_validation_ham() -> None:
    """Draw validation ham and new ham from one distribution, set the cut-off
    as training does, above every validation ham: new ham reach it at the
    bound's rate, 1 in n + 1, far above the 0.1 % the rule aims at."""
    import numpy as np

    generator = np.random.default_rng(7)
    validation_ham, rounds = 49, 4000
    flagged = 0
    for _ in range(rounds):
        scores = generator.random(validation_ham + 1)
        cut_off = threshold_for_false_positive_rate(scores[:validation_ham], 0.001, 0.0)
        flagged += bool(scores[-1] >= cut_off)
    bound = false_positive_rate_bound({"ham": validation_ham, "false_positives": 0})

    assert bound == 1 / 50
    # 80 expected of 4000; a binomial standard deviation is 8.9.
    assert abs(flagged / rounds - bound) < 4 * (bound * (1 - bound) / rounds) ** 0.5


def test_info_shows_an_unsure_band_and_learned_messages(
    runner: CliRunner, model_copy: Path
) -> None:
    metadata = metadata_of(model_copy)
    metadata["ham_cutoff"] = metadata["threshold"] / 2
    metadata["learned"] = {"ham": 3, "spam": 5, "last": "2026-11-27T12:00:00+00:00"}
    artifacts.write_metadata(model_copy, metadata)

    text = invoke(runner, "info", "-m", model_copy).stdout
    card = json.loads(invoke(runner, "info", "-m", model_copy, "--format", "json").stdout)

    assert row(text, "ham").startswith(f"{metadata['threshold'] / 2:.6g} (below: ham")
    assert "\nlearned\n" in text
    assert row(text, "spam").startswith(f"{metadata['threshold']:.6g}")
    assert "  last  2026-11-27T12:00:00+00:00" in text
    assert card["cutoffs"]["unsure_band"] is True
    assert card["learned"] == metadata["learned"]


def test_info_missing_model_is_a_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "info", "-m", tmp_path / "nothing")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "no model folder" in result.stderr


INFO_WITHOUT_HEAVY_IMPORTS = """
import sys
from spamcli.cli import main
sys.argv = ["spamcli", "info", "-m", sys.argv[1]]
try:
    main()
except SystemExit as exit:
    status = exit.code
print("exit", status)
print("tensorflow" in sys.modules, "keras" in sys.modules, "numpy" in sys.modules)
"""


def test_info_does_not_import_tensorflow_or_numpy(trained_model_dir: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", INFO_WITHOUT_HEAVY_IMPORTS, str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = completed.stdout.splitlines()
    assert lines[0].startswith("model "), completed.stdout + completed.stderr
    assert lines[-2:] == ["exit 0", "False False False"]


# --------------------------------------------------------------------------
# The evaluation log


def test_info_evaluate_records_an_evaluation_that_info_shows(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    before = model_files(model_copy)

    first = invoke(runner, "evaluate", heldout_dir, "-m", model_copy, "--format", "json")
    second = invoke(runner, "evaluate", "--spam", heldout_dir / "spam", "-m", model_copy)

    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert first.stderr == second.stderr == ""
    assert model_files(model_copy) == before  # the model itself is untouched
    lines = (model_copy / EVALUATIONS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    metrics = json.loads(first.stdout)
    record = json.loads(lines[0])
    assert record["sources"] == [str(heldout_dir)]
    assert record["ham_paths"] == record["spam_paths"] == []
    for name in ("messages", "ham", "spam", "roc_auc", "false_positives", "false_negatives"):
        assert record[name] == metrics[name], name
    assert record["threshold"] == metrics["threshold"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["date"])
    assert json.loads(lines[1])["spam_paths"] == [str(heldout_dir / "spam")]

    text = invoke(runner, "info", "-m", model_copy).stdout
    card = json.loads(invoke(runner, "info", "-m", model_copy, "--format", "json").stdout)

    assert "evaluations since training (2)" in text
    shown = [line for line in text.splitlines() if line.startswith(f"  {record['date']}")]
    assert len(shown) == 2
    assert "24 messages (12 ham, 12 spam)" in shown[0]
    assert f"FP {metrics['false_positives']}  FN {metrics['false_negatives']}" in shown[0]
    assert str(heldout_dir) in shown[0]
    assert "n/a" in shown[1]  # spam only: no ROC AUC
    assert card["evaluations"] == [json.loads(line) for line in lines]


def test_info_no_record_leaves_no_log(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    result = invoke(runner, "evaluate", heldout_dir, "-m", model_copy, "--no-record")

    assert result.exit_code == 0, result.output
    assert not (model_copy / EVALUATIONS_FILE).exists()
    assert "evaluations since training (0)" in invoke(runner, "info", "-m", model_copy).stdout


def test_info_unwritable_log_warns_and_still_evaluates(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    (model_copy / EVALUATIONS_FILE).mkdir()  # cannot be opened for writing, even by root

    result = invoke(runner, "evaluate", heldout_dir, "-m", model_copy, "--format", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"] == 24
    assert result.stderr.count("\n") == 1
    assert "the evaluation is not recorded" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any folder")
def test_info_read_only_model_folder_warns_and_still_evaluates(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    model_copy.chmod(0o555)
    try:
        result = invoke(runner, "evaluate", heldout_dir, "-m", model_copy)
    finally:
        model_copy.chmod(0o755)

    assert result.exit_code == 0, result.output
    assert row(result.stdout, "messages") == "24"
    assert "Permission denied; the evaluation is not recorded" in result.stderr
    assert not (model_copy / EVALUATIONS_FILE).exists()


def test_info_log_refuses_to_follow_a_link(model_copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("untouched\n")
    (model_copy / EVALUATIONS_FILE).symlink_to(elsewhere)

    with pytest.raises(artifacts.ModelError, match="cannot record"):
        record_evaluation(model_copy, {"messages": 1})

    assert elsewhere.read_text() == "untouched\n"


def test_info_log_skips_unreadable_lines(runner: CliRunner, model_copy: Path) -> None:
    record_evaluation(model_copy, {"date": "2026-01-01T00:00:00+00:00", "messages": 7})
    with open(model_copy / EVALUATIONS_FILE, "a", encoding="utf-8") as log:
        log.write("not json\n[1, 2]\n\n")
    record_evaluation(model_copy, {"date": "2026-01-02T00:00:00+00:00", "messages": 8})

    records, unreadable = read_evaluations(model_copy)
    text = invoke(runner, "info", "-m", model_copy).stdout

    assert [record["messages"] for record in records] == [7, 8]
    assert unreadable == 2
    assert "evaluations since training (2)" in text
    assert "(2 unreadable lines skipped)" in text


def test_info_text_shows_the_latest_ten_evaluations(runner: CliRunner, model_copy: Path) -> None:
    for day in range(1, 13):
        record_evaluation(model_copy, {"date": f"2026-01-{day:02d}T00:00:00+00:00"})

    text = invoke(runner, "info", "-m", model_copy).stdout

    assert "evaluations since training (12)" in text
    assert "(2 earlier not shown; --format json has all)" in text
    assert "2026-01-02T" not in text
    assert "2026-01-03T" in text and "2026-01-12T" in text
