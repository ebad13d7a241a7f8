"""`spamcli check`: a set-up verified end to end, non-zero when not usable."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from spamcli import artifacts
from spamcli.checking import TEST_MESSAGE
from spamcli.cli import cli
from spamcli.mail import looks_like_mail


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args], env=env)


def steps(result: Result) -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in result.stdout.splitlines()]  # type: ignore[misc]


def test_check_built_in_model_is_usable() -> None:
    result = invoke("check")

    assert result.exit_code == 0, result.output
    assert steps(result) == [
        ("ok", "model"),
        ("ok", "loads"),
        ("ok", "scores"),
        ("ok", "cut-offs"),
        ("ok", "tensorflow"),
    ]
    assert "the built-in model" in result.stdout.splitlines()[0]


def test_check_test_message_is_mail() -> None:
    assert looks_like_mail(TEST_MESSAGE) is None


def test_check_missing_model_fails_at_the_first_step(tmp_path: Path) -> None:
    result = invoke("check", env={"SPAMCLI_MODEL": str(tmp_path / "missing")})

    assert result.exit_code == 1
    assert result.stdout == (
        f"FAILED  model       no model folder at {tmp_path / 'missing'} (set by $SPAMCLI_MODEL)\n"
    )


def test_check_broken_model_fails_to_load(synthetic_model_dir: Path) -> None:
    (synthetic_model_dir / artifacts.WEIGHTS_FILE).write_bytes(b"not a zip archive")

    result = invoke("check", "-m", synthetic_model_dir)

    assert result.exit_code == 1
    assert steps(result)[0] == ("ok", "model")
    assert ("FAILED", "loads") in steps(result) or ("FAILED", "scores") in steps(result)


def test_check_insane_cutoffs_fail(synthetic_model_dir: Path) -> None:
    metadata_path = synthetic_model_dir / artifacts.METADATA_FILE
    metadata = json.loads(metadata_path.read_text())
    metadata["threshold"] = 0.0
    metadata_path.write_text(json.dumps(metadata))

    result = invoke("check", "-m", synthetic_model_dir, "--format", "json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["usable"] is False
    failed = [step["name"] for step in report["checks"] if not step["passed"]]
    assert failed == ["cut-offs"]
