"""Tests of the command line through click's CliRunner (and, where the
process itself matters, a subprocess).

The contract checked here: results on stdout and nothing else there;
progress, warnings and errors on stderr, one line, never a traceback; exit
status 0 on success, 1 on an error, 2 on a usage error.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from spamcli import __version__
from spamcli.artifacts import METADATA_FILE
from spamcli.cli import cli

# generate_mail(label, count, seed), the conftest fixture
GenerateMail = Callable[[str, int, int], list[bytes]]

# A message of an mbox or Maildir adds its index and Message-ID ("-" if none).
PREDICTION_LINE = re.compile(
    r"(?P<label>ham|unsure|spam) (?P<score>[01]\.\d{6}) (?P<source>.+?)"
    r"(?: (?P<index>[1-9]\d*) (?P<message_id>\S+))?"
)


def walk_commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and group under COMMAND, with the words that invoke it."""
    yield path, command
    if isinstance(command, click.Group):
        # Through list_commands and get_command, as click's own help does:
        # the group imports its commands' modules only when asked for them.
        context = click.Context(command)
        for name in command.list_commands(context):
            subcommand = command.get_command(context, name)
            assert subcommand is not None, name
            yield from walk_commands(subcommand, (*path, name))


ALL_COMMANDS = list(walk_commands(cli))


def invoke(runner: CliRunner, *args: str | Path, **kwargs: object) -> Result:
    return runner.invoke(cli, [str(arg) for arg in args], **kwargs)  # type: ignore[arg-type]


def predictions(result: Result) -> list[dict[str, Any]]:
    """The text output of predict, parsed; fails on any line that is not a prediction."""
    parsed = []
    for line in result.stdout.splitlines():
        match = PREDICTION_LINE.fullmatch(line)
        assert match, f"not a prediction line: {line!r}"
        parsed.append({**match.groupdict(), "score": float(match["score"])})
    return parsed


def json_predictions(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


# --------------------------------------------------------------------------
# Help and version


@pytest.mark.parametrize(
    "command_path", [path for path, _ in ALL_COMMANDS], ids=lambda path: " ".join(path) or "spamcli"
)
def test_cli_help_of_every_command(runner: CliRunner, command_path: tuple[str, ...]) -> None:
    result = invoke(runner, *command_path, "--help")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    assert result.stderr == ""


def test_cli_every_command_has_help_text() -> None:
    assert len(ALL_COMMANDS) >= 7  # spamcli, corpus, corpus fetch, corpus split, ...
    for path, command in ALL_COMMANDS:
        assert command.help and command.help.strip(), f"no help text: {' '.join(path)}"
        assert command.get_short_help_str(), f"no short help: {' '.join(path)}"
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.help, f"{' '.join(path)} {parameter.opts[0]} has no help"


def test_cli_short_help_option(runner: CliRunner) -> None:
    assert invoke(runner, "predict", "-h").exit_code == 0


def test_cli_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version")

    assert result.exit_code == 0
    assert result.stdout == f"spamcli, version {__version__}\n"


def test_cli_unknown_command_is_a_usage_error(runner: CliRunner) -> None:
    result = invoke(runner, "classify")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "No such command" in result.stderr


# --------------------------------------------------------------------------
# predict


def test_cli_predict_text_lines(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    files = (
        sorted((heldout_dir / "ham").iterdir())[:2] + sorted((heldout_dir / "spam").iterdir())[:2]
    )

    result = invoke(runner, "predict", *files, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = predictions(result)
    assert [line["source"] for line in lines] == [str(path) for path in files]


def test_cli_predict_json_lines(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(
        runner, "predict", heldout_dir / "spam", "-m", trained_model_dir, "--format", "json"
    )

    assert result.exit_code == 0, result.output
    records = json_predictions(result)
    assert len(records) == len(list((heldout_dir / "spam").iterdir()))
    for record in records:
        assert set(record) == {"source", "label", "score", "index", "message_id"}
        assert record["label"] in ("ham", "spam")
        assert isinstance(record["score"], float) and 0.0 <= record["score"] <= 1.0
        assert Path(str(record["source"])).parent == heldout_dir / "spam"


def test_cli_predict_json_and_text_agree(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    text = predictions(invoke(runner, "predict", heldout_dir, "-m", trained_model_dir))
    records = json_predictions(
        invoke(runner, "predict", heldout_dir, "-m", trained_model_dir, "--format", "json")
    )

    assert [line["label"] for line in text] == [record["label"] for record in records]
    assert [line["source"] for line in text] == [record["source"] for record in records]
    assert [line["score"] for line in text] == pytest.approx(
        [record["score"] for record in records], abs=5e-7
    )


def test_cli_predict_uses_the_model_threshold(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    threshold = json.loads((trained_model_dir / METADATA_FILE).read_text())["threshold"]

    records = json_predictions(
        invoke(runner, "predict", heldout_dir, "-m", trained_model_dir, "--format", "json")
    )

    for record in records:
        assert record["label"] == ("spam" if record["score"] >= threshold else "ham")


@pytest.mark.parametrize("arguments", [["-"], []], ids=["dash", "no-path"])
def test_cli_predict_reads_stdin(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, arguments: list[str]
) -> None:
    [raw] = generate_mail("spam", 1, 5)

    result = invoke(runner, "predict", *arguments, "-m", trained_model_dir, input=raw)

    assert result.exit_code == 0, result.output
    [line] = predictions(result)
    assert line["source"] == "-"


def test_cli_predict_stdin_scores_like_the_file(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    [raw] = generate_mail("ham", 1, 6)
    path = tmp_path / "message.eml"
    path.write_bytes(raw)

    from_stdin = json_predictions(
        invoke(runner, "predict", "-m", trained_model_dir, "--format", "json", input=raw)
    )
    from_file = json_predictions(
        invoke(runner, "predict", path, "-m", trained_model_dir, "--format", "json")
    )

    assert from_stdin[0]["score"] == from_file[0]["score"]


def test_cli_predict_folder(runner: CliRunner, trained_model_dir: Path, heldout_dir: Path) -> None:
    result = invoke(runner, "predict", heldout_dir, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    expected = sorted(str(path) for path in heldout_dir.rglob("*.eml"))
    assert sorted(line["source"] for line in predictions(result)) == expected


def test_cli_predict_mbox(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    mbox = tmp_path / "inbox.mbox"
    mbox.write_bytes(
        b"".join(
            b"From sender@example.org Mon Sep 23 12:34:56 2002\n" + raw.rstrip(b"\n") + b"\n\n"
            for raw in generate_mail("ham", 2, 7) + generate_mail("spam", 1, 7)
        )
    )

    result = invoke(runner, "predict", mbox, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    assert [line["source"] for line in predictions(result)] == [f"{mbox}:{n}" for n in (1, 2, 3)]


def test_cli_predict_maildir(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    first, second, half_delivered = generate_mail("ham", 3, 8)
    (maildir / "cur" / "1700000000.1.host:2,S").write_bytes(first)
    (maildir / "new" / "1700000001.2.host").write_bytes(second)
    (maildir / "tmp" / "1700000002.3.host").write_bytes(half_delivered)

    result = invoke(runner, "predict", maildir, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    assert [line["source"] for line in predictions(result)] == [
        f"{maildir}:cur/1700000000.1.host:2,S",
        f"{maildir}:new/1700000001.2.host",
    ]


@pytest.mark.parametrize(("threshold", "label"), [("0", "spam"), ("0.0", "spam"), ("1", "ham")])
def test_cli_predict_threshold_option(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, threshold: str, label: str
) -> None:
    result = invoke(
        runner,
        "predict",
        heldout_dir,
        "-m",
        trained_model_dir,
        "--threshold",
        threshold,
        "--format",
        "json",
    )

    assert result.exit_code == 0, result.output
    records = json_predictions(result)
    # score >= threshold is spam: at 0 everything is; at 1 only a score of exactly 1.
    for record in records:
        assert record["label"] == ("spam" if record["score"] >= float(threshold) else "ham")
    assert {record["label"] for record in records} == {label}


@pytest.mark.parametrize("threshold", ["-0.1", "1.5", "high"])
def test_cli_predict_threshold_out_of_range_is_a_usage_error(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, threshold: str
) -> None:
    result = invoke(
        runner, "predict", heldout_dir, "-m", trained_model_dir, "--threshold", threshold
    )

    assert result.exit_code == 2
    assert result.stdout == ""


def test_cli_predict_missing_path_among_good_ones(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    good = sorted((heldout_dir / "ham").iterdir())[:2]
    missing = tmp_path / "no-such-message.eml"

    result = invoke(runner, "predict", good[0], missing, good[1], "-m", trained_model_dir)

    assert result.exit_code == 1
    assert [line["source"] for line in predictions(result)] == [str(path) for path in good]
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"spamcli: {missing}: No such file or directory"]


def test_cli_predict_model_from_environment(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    with_option = invoke(runner, "predict", heldout_dir, "-m", trained_model_dir)

    from_environment = invoke(
        runner, "predict", heldout_dir, env={"SPAMCLI_MODEL": str(trained_model_dir)}
    )

    assert from_environment.exit_code == 0, from_environment.output
    assert from_environment.stdout == with_option.stdout


def test_cli_predict_option_beats_environment(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    result = invoke(
        runner,
        "predict",
        heldout_dir,
        "-m",
        trained_model_dir,
        env={"SPAMCLI_MODEL": str(tmp_path / "elsewhere")},
    )

    assert result.exit_code == 0, result.output


def test_cli_predict_missing_model_folder(
    runner: CliRunner, heldout_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "no-model-here"

    result = invoke(runner, "predict", heldout_dir, "-m", model_dir)

    assert_one_line_error(result, "no model folder", str(model_dir))


def test_cli_predict_folder_without_metadata(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    (model_copy / METADATA_FILE).unlink()

    result = invoke(runner, "predict", heldout_dir, "-m", model_copy)

    assert_one_line_error(result, "not a spamcli model", "metadata.json is missing")


def test_cli_predict_unknown_format_version(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    metadata = json.loads((model_copy / METADATA_FILE).read_text())
    metadata["format_version"] = 999
    (model_copy / METADATA_FILE).write_text(json.dumps(metadata))

    result = invoke(runner, "predict", heldout_dir, "-m", model_copy)

    assert_one_line_error(result, "version 999")


def test_cli_predict_metadata_without_threshold(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    metadata = json.loads((model_copy / METADATA_FILE).read_text())
    del metadata["threshold"]
    (model_copy / METADATA_FILE).write_text(json.dumps(metadata))

    result = invoke(runner, "predict", heldout_dir, "-m", model_copy)

    assert_one_line_error(result, "threshold")


# --------------------------------------------------------------------------
# evaluate

EVALUATION_KEYS = {
    "messages",
    "ham",
    "spam",
    "true_positives",
    "false_positives",
    "true_negatives",
    "false_negatives",
    "precision",
    "recall",
    "false_positive_rate",
    "roc_auc",
}
EVALUATION_ROWS = (
    "messages",
    "ham",
    "spam",
    "threshold",
    "true positives",
    "false positives",
    "true negatives",
    "false negatives",
    "precision",
    "recall",
    "false positive rate",
    "ROC AUC",
    "(1-AUC)%",
)


def test_cli_evaluate_text_table(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(runner, "evaluate", "--no-record", heldout_dir, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    # The table is the first block; the confusion matrix follows a blank line.
    table = result.stdout.split("\n\n")[0]
    rows = [
        re.fullmatch(r"(?P<name>[A-Za-z ()%1-]+?) +(?P<value>\d+|\d\.\d{4}|n/a)", line)
        for line in table.splitlines()
    ]
    assert all(rows), result.stdout
    assert [row["name"] for row in rows if row] == list(EVALUATION_ROWS)
    assert re.search(r"^messages +24$", result.stdout, re.MULTILINE)


def test_cli_evaluate_json_counts_are_consistent(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(
        runner, "evaluate", "--no-record", heldout_dir, "-m", trained_model_dir, "--format", "json"
    )

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) >= EVALUATION_KEYS
    assert (metrics["messages"], metrics["ham"], metrics["spam"]) == (24, 12, 12)
    assert metrics["true_positives"] + metrics["false_negatives"] == metrics["spam"]
    assert metrics["true_negatives"] + metrics["false_positives"] == metrics["ham"]
    assert metrics["recall"] == pytest.approx(metrics["true_positives"] / metrics["spam"])
    assert metrics["false_positive_rate"] == pytest.approx(
        metrics["false_positives"] / metrics["ham"]
    )
    flagged = metrics["true_positives"] + metrics["false_positives"]
    if flagged:
        assert metrics["precision"] == pytest.approx(metrics["true_positives"] / flagged)
    else:
        assert metrics["precision"] is None
    assert 0.0 <= metrics["roc_auc"] <= 1.0


def test_cli_evaluate_agrees_with_predict(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    metrics = json.loads(
        invoke(
            runner,
            "evaluate",
            "--no-record",
            heldout_dir,
            "-m",
            trained_model_dir,
            "--format",
            "json",
        ).stdout
    )
    spam_labels = [
        record["label"]
        for record in json_predictions(
            invoke(
                runner, "predict", heldout_dir / "spam", "-m", trained_model_dir, "--format", "json"
            )
        )
    ]
    ham_labels = [
        record["label"]
        for record in json_predictions(
            invoke(
                runner, "predict", heldout_dir / "ham", "-m", trained_model_dir, "--format", "json"
            )
        )
    ]

    assert metrics["true_positives"] == spam_labels.count("spam")
    assert metrics["false_positives"] == ham_labels.count("spam")


def test_cli_evaluate_threshold_option(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(
        runner,
        "evaluate",
        "--no-record",
        heldout_dir,
        "-m",
        trained_model_dir,
        "--threshold",
        "0",
        "--format",
        "json",
    )

    metrics = json.loads(result.stdout)
    assert metrics["threshold"] == 0.0
    assert (metrics["true_positives"], metrics["false_positives"]) == (12, 12)
    assert metrics["recall"] == 1.0 and metrics["false_positive_rate"] == 1.0


def test_cli_evaluate_without_sources_is_a_usage_error(
    runner: CliRunner, trained_model_dir: Path
) -> None:
    result = invoke(runner, "evaluate", "-m", trained_model_dir)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--ham" in result.stderr and "--spam" in result.stderr


def test_cli_evaluate_ham_and_spam_paths(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    # Folder names that say nothing: the labels come from the options alone.
    shutil.copytree(heldout_dir / "ham", tmp_path / "inbox")
    shutil.copytree(heldout_dir / "spam", tmp_path / "junk")

    labelled = json.loads(
        invoke(
            runner,
            "evaluate",
            "--no-record",
            heldout_dir,
            "-m",
            trained_model_dir,
            "--format",
            "json",
        ).stdout
    )
    result = invoke(
        runner,
        "evaluate",
        "--no-record",
        "--ham",
        tmp_path / "inbox",
        "--spam",
        tmp_path / "junk",
        "-m",
        trained_model_dir,
        "--format",
        "json",
    )

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert (metrics["ham"], metrics["spam"]) == (12, 12)
    for key in EVALUATION_KEYS:
        assert metrics[key] == labelled[key]


def test_cli_evaluate_only_spam_has_no_roc_auc(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(
        runner, "evaluate", "--no-record", "--spam", heldout_dir / "spam", "-m", trained_model_dir
    )

    assert result.exit_code == 0, result.output
    assert re.search(r"^ROC AUC\s+n/a$", result.stdout, re.MULTILINE)
    assert re.search(r"^false positive rate\s+n/a$", result.stdout, re.MULTILINE)


def test_cli_evaluate_missing_model(runner: CliRunner, heldout_dir: Path, tmp_path: Path) -> None:
    result = invoke(runner, "evaluate", heldout_dir, "-m", tmp_path / "nothing")

    assert_one_line_error(result, "no model folder")


def test_cli_evaluate_nothing_readable(
    runner: CliRunner, trained_model_dir: Path, tmp_path: Path
) -> None:
    result = invoke(runner, "evaluate", tmp_path / "nowhere", "-m", trained_model_dir)

    assert_one_line_error(result, "no labelled messages", "No such file or directory")


# --------------------------------------------------------------------------
# train


def test_cli_train_only_ham_names_the_missing_class(
    runner: CliRunner, corpus_dir: Path, tmp_path: Path
) -> None:
    result = invoke(runner, "train", "--ham", corpus_dir / "ham", "-m", tmp_path / "model")

    assert_one_line_error(result, "no spam messages")
    assert not (tmp_path / "model").exists()


def test_cli_train_too_few_of_a_class(runner: CliRunner, corpus_dir: Path, tmp_path: Path) -> None:
    spam = sorted((corpus_dir / "spam").iterdir())[:3]

    spam_options = [argument for path in spam for argument in ("--spam", path)]

    result = invoke(
        runner, "train", "--ham", corpus_dir / "ham", *spam_options, "-m", tmp_path / "model"
    )

    assert_one_line_error(result, "only 3 spam messages", "at least 5")


def test_cli_train_missing_source(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "no-such-corpus"

    result = invoke(runner, "train", source, "-m", tmp_path / "model")

    assert_one_line_error(result, str(source), "No such file or directory")
    assert not (tmp_path / "model").exists()


def test_cli_train_unknown_header_policy_is_a_usage_error(
    runner: CliRunner, corpus_dir: Path, tmp_path: Path
) -> None:
    result = invoke(runner, "train", corpus_dir, "-m", tmp_path / "model", "--headers", "bogus")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "bogus" in result.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("epochs", ["0", "-1", "many"])
def test_cli_train_bad_epochs_is_a_usage_error(
    runner: CliRunner, corpus_dir: Path, tmp_path: Path, epochs: str
) -> None:
    result = invoke(runner, "train", corpus_dir, "-m", tmp_path / "model", "--epochs", epochs)

    assert result.exit_code == 2


def test_cli_train_refuses_to_replace_another_folder(
    runner: CliRunner, corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refusal comes before any reading or training: fitting is replaced
    # by a stub that fails the test if it is ever reached.
    from spamcli import training

    def never(*args: object, **kwargs: object) -> object:
        raise AssertionError("training started before the destination was checked")

    monkeypatch.setattr(training, "_fit", never)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me\n")

    result = invoke(runner, "train", corpus_dir, "-m", notes)

    assert_one_line_error(result, "not a spamcli model folder")
    assert (notes / "todo.txt").read_text() == "keep me\n"


def test_cli_train_writes_a_model_and_a_summary(
    runner: CliRunner, corpus_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"

    result = invoke(
        runner, "train", corpus_dir, "-m", model_dir, "--epochs", "2", "--seed", "3", "-v"
    )

    assert result.exit_code == 0, result.output
    # Exactly the summary on stdout; Keras' per-epoch progress (-v) went to stderr.
    summary = result.stdout.splitlines()
    assert len(summary) == 3, result.stdout
    assert summary[0].startswith("trained on 100 ham and 100 spam (0 duplicates dropped)")
    assert re.search(r"best epoch [12] of 2$", summary[0])
    # The newest 12 % of each class: 12 ham and 12 spam.
    assert summary[1].startswith("validation (24 messages): ROC AUC ")
    assert summary[2] == f"saved {model_dir.absolute()}"
    assert "Epoch" in result.stderr or "epoch" in result.stderr.lower()
    # 12 validation ham cannot resolve the default 0.1 %: a cut-off above
    # all of them flags up to 1 in 13 new ham.
    assert (
        "spamcli: 12 validation ham cannot resolve a false-positive rate of 0.10%: the "
        "cut-off flags up to 7.69% of new ham like them; that takes 999 validation ham, "
        "from about 8325 ham in all"
    ) in result.stderr
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    assert metadata["hyperparameters"]["epochs"] == 2
    assert metadata["hyperparameters"]["seed"] == 3
    # The new model is usable at once.
    predicted = invoke(runner, "predict", heldout_dir, "-m", model_dir)
    assert predicted.exit_code == 0
    assert len(predictions(predicted)) == 24


@pytest.mark.parametrize(
    ("target_rate", "ham", "warned"),
    [(0.001, 998, True), (0.001, 999, False), (0.01, 498, False), (0.0, 5000, True)],
)
def test_train_warns_only_when_validation_ham_cannot_resolve_the_rate(
    capsys: pytest.CaptureFixture[str], target_rate: float, ham: int, warned: bool
) -> None:
    from spamcli.commands.train import _warn_if_unresolved

    _warn_if_unresolved(target_rate, {"ham": ham, "false_positives": 0}, 0.15)

    stderr = capsys.readouterr().err
    assert bool(stderr) == warned, stderr
    if warned:
        assert f"{ham} validation ham cannot resolve" in stderr
        assert f"up to {1 / (ham + 1):.2%} of new ham" in stderr


# --------------------------------------------------------------------------
# corpus fetch and corpus split, on a fake SpamAssassin folder

FAKE_ARCHIVE_SIZES = {"easy_ham": 3, "easy_ham_2": 2, "hard_ham": 2, "spam": 3, "spam_2": 2}


@pytest.fixture
def accept_fake_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the fake archives' counts pass for the real corpus' own, which
    fetch and split otherwise insist on (corpus.STANDARD_MESSAGE_COUNTS)."""
    from spamcli import corpus

    for name, size in FAKE_ARCHIVE_SIZES.items():
        monkeypatch.setitem(corpus.STANDARD_MESSAGE_COUNTS, name, (size,))


@pytest.fixture(scope="module")
def fake_spamassassin_dir(
    tmp_path_factory: pytest.TempPathFactory, generate_mail: GenerateMail
) -> Path:
    """The five archives, a few generated messages each, named 00001.<md5> as
    in the real corpus, with the ``cmds`` index file the real ones have."""
    folder = tmp_path_factory.mktemp("spamassassin")
    for seed, (name, size) in enumerate(FAKE_ARCHIVE_SIZES.items(), 20):
        label = "spam" if name.startswith("spam") else "ham"
        with tarfile.open(folder / f"{name}.tar.bz2", "w:bz2") as tar:
            for number, raw in enumerate(generate_mail(label, size, seed), 1):
                data = b"From sender@example.org Mon Sep 23 12:34:56 2002\n" + raw
                info = tarfile.TarInfo(f"{name}/{number:05d}.{hashlib.md5(data).hexdigest()}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            index = b"mv 00001.x 00001.y\n"
            info = tarfile.TarInfo(f"{name}/cmds")
            info.size = len(index)
            tar.addfile(info, io.BytesIO(index))
    return folder


@pytest.mark.usefixtures("accept_fake_counts")
def test_cli_corpus_split_time(
    runner: CliRunner, fake_spamassassin_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    result = invoke(
        runner, "corpus", "split", "time", "--source", fake_spamassassin_dir, "--dest", out
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "train: 3 ham, 3 spam",
        "test: 4 ham, 2 spam",
        f"written to {out}",
    ]
    counts = {
        f"{part}/{label}": sorted(
            path.name.split(".")[0] for path in (out / part / label).iterdir()
        )
        for part in ("train", "test")
        for label in ("ham", "spam")
    }
    assert counts == {
        "train/ham": ["easy_ham"] * 3,
        "train/spam": ["spam"] * 3,
        "test/ham": ["easy_ham_2"] * 2 + ["hard_ham"] * 2,
        "test/spam": ["spam_2"] * 2,
    }
    # The messages are copied byte for byte: each still matches its md5 name.
    for path in out.rglob("*.*"):
        if path.is_file():
            assert hashlib.md5(path.read_bytes()).hexdigest() == path.name.rsplit(".", 1)[1]


@pytest.mark.usefixtures("accept_fake_counts")
def test_cli_corpus_split_random(
    runner: CliRunner, fake_spamassassin_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    result = invoke(
        runner, "corpus", "split", "random", "--source", fake_spamassassin_dir, "--dest", out
    )

    assert result.exit_code == 0, result.output
    written = [path for path in out.rglob("*") if path.is_file()]
    assert len(written) == sum(FAKE_ARCHIVE_SIZES.values())


@pytest.mark.usefixtures("accept_fake_counts")
def test_cli_corpus_split_default_folders_follow_spamcli_data(
    runner: CliRunner, fake_spamassassin_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(fake_spamassassin_dir, data / "spamassassin")

    result = invoke(runner, "corpus", "split", "time", env={"SPAMCLI_DATA": str(data)})

    assert result.exit_code == 0, result.output
    assert (data / "splits" / "time" / "train" / "ham").is_dir()


def test_cli_corpus_split_missing_source(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(
        runner,
        "corpus",
        "split",
        "time",
        "--source",
        tmp_path / "nowhere",
        "--dest",
        tmp_path / "out",
    )

    assert_one_line_error(result, "no such folder")


def test_cli_corpus_split_unknown_split_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "corpus", "split", "weekly", "--dest", tmp_path / "out")

    assert result.exit_code == 2


@pytest.mark.usefixtures("accept_fake_counts")
def test_cli_corpus_fetch_from_a_mirror_folder(
    runner: CliRunner, fake_spamassassin_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"

    result = invoke(
        runner, "corpus", "fetch", "spamassassin", "--mirror", fake_spamassassin_dir, "--dest", dest
    )

    assert result.exit_code == 0, result.output
    names = [f"{name}.tar.bz2" for name in FAKE_ARCHIVE_SIZES]
    assert result.stdout.splitlines() == [
        *(f"{name}: mirrored" for name in names),
        f"{sum(FAKE_ARCHIVE_SIZES.values())} messages in {dest}",
    ]
    assert sorted(path.name for path in dest.iterdir()) == sorted(names)
    for name in names:
        assert (dest / name).read_bytes() == (fake_spamassassin_dir / name).read_bytes()

    again = invoke(
        runner, "corpus", "fetch", "spamassassin", "--mirror", fake_spamassassin_dir, "--dest", dest
    )

    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[:5] == [f"{name}: already present" for name in names]


@pytest.mark.usefixtures("accept_fake_counts")
def test_cli_corpus_fetch_reports_a_mismatched_md5(
    runner: CliRunner, fake_spamassassin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spamcli import corpus

    # hard_ham is the one archive allowed a mismatch, as the official one has.
    monkeypatch.setitem(corpus.STANDARD_MESSAGE_COUNTS, "hard_ham", (1,))
    mirror = Path(shutil.copytree(fake_spamassassin_dir, tmp_path / "mirror"))
    data = b"Subject: renamed\n\nThis file's name is not its md5.\n"
    with tarfile.open(mirror / "hard_ham.tar.bz2", "w:bz2") as tar:
        info = tarfile.TarInfo(f"hard_ham/00001.{'0' * 32}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    result = invoke(
        runner, "corpus", "fetch", "spamassassin", "--mirror", mirror, "--dest", tmp_path / "dest"
    )

    assert result.exit_code == 0, result.output
    assert f"md5 does not match the file name: hard_ham/00001.{'0' * 32}" in result.stderr


def make_empty_mirror(tmp_path: Path, fake_dir: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def make_corrupt_mirror(tmp_path: Path, fake_dir: Path) -> Path:
    mirror = Path(shutil.copytree(fake_dir, tmp_path / "corrupt"))
    (mirror / "spam.tar.bz2").write_bytes(b"this is no bzip2 stream")
    return mirror


def make_missing_mirror(tmp_path: Path, fake_dir: Path) -> Path:
    return tmp_path / "nowhere"


@pytest.mark.usefixtures("accept_fake_counts")
@pytest.mark.parametrize(
    ("make_mirror", "message"),
    [
        (make_missing_mirror, "neither an http(s) URL nor an existing folder"),
        (make_empty_mirror, "the mirror has no easy_ham.tar.bz2"),
        (make_corrupt_mirror, "spam.tar.bz2 cannot be read as a tar.bz2"),
    ],
    ids=["missing", "empty", "corrupt"],
)
def test_cli_corpus_fetch_bad_mirror(
    runner: CliRunner,
    fake_spamassassin_dir: Path,
    tmp_path: Path,
    make_mirror: object,
    message: str,
) -> None:
    mirror = make_mirror(tmp_path, fake_spamassassin_dir)  # type: ignore[operator]
    dest = tmp_path / "dest"

    result = invoke(runner, "corpus", "fetch", "spamassassin", "--mirror", mirror, "--dest", dest)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    # Nothing half-written is left under an archive's name or as a temporary file.
    assert not any(path.name.endswith(".part") for path in dest.iterdir())


# --------------------------------------------------------------------------
# The process: python -m spamcli, and what predict imports


def test_cli_python_dash_m_help() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "spamcli", "--help"], capture_output=True, text=True, timeout=60
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("Usage: spamcli ")
    for command in ("train", "predict", "evaluate", "corpus"):
        assert command in completed.stdout


PREDICT_WITHOUT_TENSORFLOW = """
import sys
from spamcli.cli import main
sys.argv = ["spamcli", "predict", sys.argv[1], "-m", sys.argv[2]]
try:
    main()
except SystemExit as exit:
    status = exit.code
print("exit", status)
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_cli_predict_does_not_import_tensorflow(trained_model_dir: Path, heldout_dir: Path) -> None:
    message = sorted((heldout_dir / "spam").iterdir())[0]

    completed = subprocess.run(
        [sys.executable, "-c", PREDICT_WITHOUT_TENSORFLOW, str(message), str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = completed.stdout.splitlines()
    assert PREDICTION_LINE.fullmatch(lines[0]), completed.stdout + completed.stderr
    assert lines[1:] == ["exit 0", "False False"]
