"""spamcli evaluate --online: mail replayed in arrival order, each message
classified before it is learned, and the model folder never written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spamcli import artifacts, replay
from spamcli.cli import cli
from spamcli.config import TrainingConfig
from spamcli.online import Network


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_replay_scores_each_message_before_it_learns_it(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    before = folder_bytes(trained_model_dir)

    report = replay.replay([heldout_dir], model_dir=trained_model_dir)

    assert folder_bytes(trained_model_dir) == before  # never written
    assert len(report.messages) == 24
    assert all(message.learned for message in report.messages)
    # The first message's score is the trained model's own.
    network = Network.from_folder(trained_model_dir, artifacts.read_metadata(trained_model_dir))
    first = report.messages[0]
    raw = Path(first.source).read_bytes()
    from spamcli.scoring import Scorer

    assert first.score == pytest.approx(
        Scorer(trained_model_dir).score_messages([raw])[0], abs=1e-9
    )
    assert network.messages_learned == 0
    assert report.metrics["messages"] == 24
    curve = report.learning_curve
    assert sum(window["messages"] for window in curve) == 24


def test_replay_orders_by_date_or_by_the_number_in_the_name(tmp_path: Path, generate_mail) -> None:
    # Three ham whose Date order is the reverse of their names' numbers.
    raws = generate_mail("ham", 3, 7)
    folder = tmp_path / "stream" / "ham"
    folder.mkdir(parents=True)
    dates = [
        "Mon, 03 Jun 2024 10:00:00 +0000",
        "Sun, 02 Jun 2024 10:00:00 +0000",
        "Sat, 01 Jun 2024 10:00:00 +0000",
    ]
    for number, (raw, date) in enumerate(zip(raws, dates, strict=True), 1):
        without_date = b"\n".join(
            line for line in raw.split(b"\n") if not line.startswith(b"Date:")
        )
        (folder / f"inmail.{number}").write_bytes(f"Date: {date}\n".encode() + without_date)
    spam = tmp_path / "stream" / "spam"
    spam.mkdir()
    (spam / "inmail.9").write_bytes(generate_mail("spam", 1, 7)[0])
    scratch = TrainingConfig(bits=12, hidden_units=(4,))

    by_date = replay.replay([tmp_path / "stream"], scratch=scratch)
    by_name = replay.replay([tmp_path / "stream"], scratch=scratch, order="name")

    names = lambda report: [Path(m.source).name for m in report.messages]  # noqa: E731
    assert names(by_date)[:3] == ["inmail.3", "inmail.2", "inmail.1"]
    assert names(by_name) == ["inmail.1", "inmail.2", "inmail.3", "inmail.9"]


def test_replay_from_scratch_starts_at_even_odds_and_learns(
    tmp_path: Path, corpus_dir: Path
) -> None:
    report = replay.replay([corpus_dir], scratch=TrainingConfig(bits=14, hidden_units=(8,), seed=3))

    scores = np.array([message.score for message in report.messages])
    assert report.threshold == replay.SCRATCH_THRESHOLD
    assert abs(scores[0] - 0.5) < 0.1
    # 200 messages of two kinds: the second half is told apart.
    labels = np.array([message.label == "spam" for message in report.messages])
    second = slice(100, None)
    assert scores[second][labels[second]].min() > scores[second][~labels[second]].max()


def test_replay_trains_on_error_only_when_asked(trained_model_dir: Path, heldout_dir: Path) -> None:
    report = replay.replay([heldout_dir], model_dir=trained_model_dir, train_on="error")

    wrong = [m for m in report.messages if m.verdict != m.label]
    assert [m for m in report.messages if m.learned] == wrong


def test_cli_evaluate_online_text_and_json(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    before = folder_bytes(trained_model_dir)
    text = runner.invoke(
        cli,
        [
            "evaluate",
            "--online",
            str(heldout_dir),
            "-m",
            str(trained_model_dir),
            "--plots",
            str(tmp_path / "plots"),
        ],
    )
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("replayed 24 messages in date order")
    assert "(1-AUC)%" in text.stdout and "errors per 100 messages:" in text.stdout
    assert (tmp_path / "plots" / "learning_curve.png").is_file()

    result = runner.invoke(
        cli,
        [
            "evaluate",
            "--online",
            "--format",
            "json",
            str(heldout_dir),
            "-m",
            str(trained_model_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["online"]["learned"] == 24 and record["messages"] == 24
    assert folder_bytes(trained_model_dir) == before
    assert not (trained_model_dir / "evaluations.jsonl").exists()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--from-scratch"],
        ["--order", "name"],
        ["--train", "on-error"],
        ["--online", "-m", "a", "-m", "b"],
    ],
)
def test_cli_evaluate_online_usage_errors(
    runner: CliRunner, heldout_dir: Path, arguments: list[str]
) -> None:
    result = runner.invoke(cli, ["evaluate", str(heldout_dir), *arguments])
    assert result.exit_code == 2, result.output
