"""One error style: click's `Error: ...` for every error that ends a command,
naming the option or variable at fault; a missing extra in one line; a
closed stdout ends spamcli quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spamcli import extras
from spamcli.cli import cli

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPOSITORY_DIR / "data" / "samples"
SAMPLE = SAMPLES_DIR / "spam-prize.eml"


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args], env=env)


@pytest.mark.parametrize(
    "arguments",
    [
        ["predict", "-m", "{missing}", SAMPLE],
        ["predict", "--exit-status", "-m", "{missing}", SAMPLE],
        ["sort", "-m", "{missing}", "{tmp}"],
        ["info", "-m", "{missing}"],
        ["learn", "--spam", "-m", "{missing}", SAMPLE],
        ["evaluate", "-m", "{missing}", "--spam", SAMPLE],
    ],
    ids=["predict", "predict-exit-status", "sort", "info", "learn", "evaluate"],
)
def test_errors_end_with_one_error_line_naming_the_option(
    tmp_path: Path, arguments: list[object]
) -> None:
    missing = tmp_path / "missing"
    arguments = [str(a).format(missing=missing, tmp=tmp_path) for a in arguments]

    result = invoke(*arguments)

    assert result.exit_code in (1, 3)
    assert result.stdout == ""
    assert result.stderr == f"Error: no model folder at {missing} (set by -m/--model)\n"


def test_errors_unknown_corpus_lists_the_known_ones() -> None:
    result = invoke("corpus", "fetch", "csdmc")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for 'CORPUS': unknown corpus 'csdmc'; "
        "the corpora spamcli can fetch are: spamassassin"
    )
    assert "{spamassassin}" not in result.stderr


def test_errors_missing_extra_for_train(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extras, "is_installed", lambda module: module != "tensorflow")

    result = invoke("train", "--ham", SAMPLES_DIR, "--spam", SAMPLES_DIR, "-m", "unused")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: spamcli train needs TensorFlow, which is not installed: "
        "pip install 'spamcli[train]'\n"
    )


def test_errors_missing_extra_for_evaluate_plots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(extras, "is_installed", lambda module: module != "matplotlib")

    plain = invoke("evaluate", "--spam", SAMPLE, "--no-record")
    plotted = invoke("evaluate", "--spam", SAMPLE, "--no-record", "--plots", tmp_path)

    assert plain.exit_code == 0, plain.output
    assert plotted.exit_code == 1
    assert plotted.stderr == (
        "Error: spamcli evaluate needs matplotlib, which is not installed: "
        "pip install 'spamcli[evaluate]'\n"
    )


def test_errors_an_import_error_of_an_extra_anywhere_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A command that finds out only when it imports the package (the group
    # turns the ImportError into the one line), and any other ImportError,
    # a bug, is not hidden.
    monkeypatch.setattr(extras, "require", lambda *arguments: None)
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    monkeypatch.setitem(sys.modules, "sklearn", None)

    ham = SAMPLES_DIR / "ham-meeting.eml"
    result = invoke("evaluate", "--spam", SAMPLE, "--ham", ham, "--no-record")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: spamcli evaluate needs scikit-learn, which is not installed: "
        "pip install 'spamcli[evaluate]'"
    )


def test_errors_other_import_errors_are_not_taken_for_a_missing_extra() -> None:
    error = ModuleNotFoundError("No module named 'spamcli.nothing'", name="spamcli.nothing")
    assert extras.from_import_error("spamcli x", error) is None


def test_errors_closed_stdout_ends_quietly() -> None:
    # As `spamcli predict ... | head -n 0`: the reader is gone before the
    # first line. Nothing on stderr, no traceback, exit 1.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "spamcli", "predict", *[str(SAMPLE)] * 50],
            stdout=writer,
            stderr=subprocess.PIPE,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY_DIR)},
        )
    finally:
        os.close(writer)

    assert completed.stderr == b""
    assert completed.returncode == 1
