"""TensorFlow's start-up log off by default, shown with -v; Keras' line per
epoch only with -v (a progress bar on a terminal otherwise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spamcli import quiet
from spamcli.commands import train as train_command

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
# What TensorFlow 2.21 wrote on its own while loading, before quiet.py.
TENSORFLOW_LOG = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard")
KERAS_STEP_LINE = re.compile(r"^\d+/\d+ - .*loss", re.MULTILINE)


def train_in_a_process(corpus_dir: Path, model_dir: Path, *extra: str) -> str:
    environment = {
        name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"
    }
    environment["PYTHONPATH"] = str(REPOSITORY_DIR)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "spamcli",
            "train",
            "--epochs",
            "1",
            "-m",
            str(model_dir),
            *extra,
            str(corpus_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stderr


def test_quiet_train_shows_no_tensorflow_log_and_no_epoch_lines(
    corpus_dir: Path, tmp_path: Path
) -> None:
    stderr = train_in_a_process(corpus_dir, tmp_path / "model")

    assert not [line for line in stderr.splitlines() if any(s in line for s in TENSORFLOW_LOG)]
    assert "Epoch" not in stderr
    assert not KERAS_STEP_LINE.search(stderr)
    # What is left is spamcli's own: warnings start with "spamcli: ".
    assert all(line.startswith("spamcli: ") for line in stderr.splitlines()), stderr


def test_quiet_train_verbose_shows_the_epochs(corpus_dir: Path, tmp_path: Path) -> None:
    stderr = train_in_a_process(corpus_dir, tmp_path / "model", "-v")

    # Keras' line per epoch ("4/4 - 1s - 187ms/step - loss: 0.6931"; with
    # one epoch it writes no "Epoch 1/1" above it).
    assert KERAS_STEP_LINE.search(stderr), stderr


def test_quiet_keeps_the_users_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    quiet.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    quiet.quiet_tensorflow(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    quiet.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_quiet_fit_verbosity() -> None:
    assert quiet.fit_verbosity(verbose=True) == 2
    assert quiet.fit_verbosity(verbose=False) == 0


def test_quiet_epoch_progress_draws_nothing_off_a_terminal() -> None:
    # Under pytest stderr is captured, no terminal: no bar, and calls are free.
    with quiet.EpochProgress(5) as progress:
        progress(0, {"val_loss": 0.5})
        progress(1, None)
    assert not progress.enabled


def test_quiet_epoch_progress_goes_only_to_a_training_function_that_takes_it() -> None:
    progress = quiet.EpochProgress(3)
    progress.enabled = True

    def old(model_dir: str) -> None: ...

    def new(model_dir: str, epoch_progress: object = None) -> None: ...

    assert train_command._epoch_progress(old, progress) == {}
    assert train_command._epoch_progress(new, progress) == {"epoch_progress": progress}
    progress.enabled = False
    assert train_command._epoch_progress(new, progress) == {}
