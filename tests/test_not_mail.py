"""Input that is no mail: empty, binary, or without a header block.

`mail.looks_like_mail` is the one judgement; predict warns and still scores
(its JSON carries "warning"), learn refuses unless --force, an empty folder
is a failed input as a missing one is, and a terminal on stdin gets a hint.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spamcli.cli import cli
from spamcli.config import EXIT_ERROR
from spamcli.mail import looks_like_mail

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
SAMPLE = REPOSITORY_DIR / "data" / "samples" / "ham-meeting.eml"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def invoke(*args: object, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args], input=input)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b" \r\n\t\n", "empty"),
        (PNG, "binary data"),
        (b"Subject: hi\n\n" + bytes(range(32)) * 40, "binary data"),
        (b"Subject: nul\x00\n\nbody\n", "binary data"),
        (b"Dear friend,\n\nthis is only a body.\n", "no header block"),
        (b"\nSubject: after a blank line\n\nbody\n", "no header block"),
        (b"Subject: hi\n\nbody\n", None),
        (b"Subject: hi\r\nFrom: a@example.org\r\n\r\nbody\r\n", None),
        (b"From alice@example.org Mon Sep  2 10:00:00 2024\nSubject: mbox\n\nbody\n", None),
        (b"X-Odd-Name_1 : obsolete white space before the colon\n\nbody\n", None),
        (b"Subject: caf\xe9 in latin-1\n\nna\xefve \x1b[1mbold\x1b[0m\n", None),
    ],
)
def test_not_mail_looks_like_mail(raw: bytes, reason: str | None) -> None:
    assert looks_like_mail(raw) == reason


def test_not_mail_real_samples_are_mail() -> None:
    for path in sorted((REPOSITORY_DIR / "data" / "samples").iterdir()):
        assert looks_like_mail(path.read_bytes()) is None, path
    for path in sorted((REPOSITORY_DIR / "tests" / "messages").iterdir()):
        if path.stat().st_size:
            assert looks_like_mail(path.read_bytes()) is None, path


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_not_mail_predict_warns_and_still_scores(tmp_path: Path, output_format: str) -> None:
    image = tmp_path / "picture.png"
    image.write_bytes(PNG)

    result = invoke("predict", "--format", output_format, image, SAMPLE)

    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"spamcli: {image}: not a mail message (binary data); its verdict means little\n"
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    if output_format == "json":
        records = [json.loads(line) for line in lines]
        assert records[0]["warning"] == "not a mail message"
        assert "warning" not in records[1]
    else:
        assert lines[0].endswith(f" {image}")


def test_not_mail_predict_empty_stdin_warns() -> None:
    result = invoke("predict", "--format", "json", input=b"")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["warning"] == "not a mail message"
    assert result.stderr == "spamcli: -: not a mail message (empty); its verdict means little\n"


@pytest.mark.parametrize("exit_status", [False, True])
def test_not_mail_predict_empty_folder_is_a_failed_input(tmp_path: Path, exit_status: bool) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".hidden").write_bytes(b"Subject: skipped, as hidden files in a folder are\n\n")

    result = invoke("predict", *(["--exit-status"] if exit_status else []), empty, SAMPLE)

    assert result.exit_code == (EXIT_ERROR if exit_status else 1)
    assert result.stderr == f"spamcli: {empty}: no messages in this folder\n"
    assert len(result.stdout.splitlines()) == 1  # the other input is still classified


def test_not_mail_learn_refuses_unless_forced(model_copy: Path, tmp_path: Path) -> None:
    body_only = tmp_path / "body-only.txt"
    body_only.write_bytes(b"Buy cheap pills now, no header at all\n")
    mail = tmp_path / "mail.eml"
    mail.write_bytes(b"Subject: cheap pills\n\nBuy cheap pills now\n")

    refused = invoke("learn", "--spam", "-m", model_copy, body_only, mail)
    forced = invoke("learn", "--spam", "--force", "-m", model_copy, body_only)

    assert refused.exit_code == 1
    assert (
        f"spamcli: {body_only}: not a mail message (no header block); "
        "--force learns it all the same\n"
    ) in refused.stderr
    assert [line.split()[-1] for line in refused.stdout.splitlines()] == [str(mail)]
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.split()[-1] == str(body_only)


def test_not_mail_learn_refuses_empty_stdin(model_copy: Path) -> None:
    result = invoke("learn", "--ham", "-m", model_copy, input=b"")

    assert result.exit_code == 1
    assert "not a mail message (empty)" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", [["predict"], ["filter"]])
def test_not_mail_terminal_on_stdin_gets_a_hint(command: list[str]) -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "spamcli", *command],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY_DIR)},
        )
        os.close(terminal)
        terminal = -1
        time.sleep(0.5)  # let it start reading before the message is typed
        os.write(controller, b"Subject: typed by hand\n\nhello\n\x04")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)

    assert process.returncode == 0, stderr
    assert stderr.decode().splitlines()[0] == (
        "spamcli: reading one message from the terminal; end it with Ctrl-D "
        "(or give a PATH to read files)"
    )
    assert stdout
