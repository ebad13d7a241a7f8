"""Tests of the text output of `spamcli predict` and `spamcli sort`
(spamcli/commands/classify.py) when names are hostile.

A file or member name may hold a newline or any other control character; in
text output such a name forged a line of its own (``a\\nham 0.000001 x``
read as a second verdict). Such names are written as Python's repr writes
them; JSON escapes them itself. The hand-made model of conftest.py scores.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

from click.testing import CliRunner

from spamcli.cli import cli

MESSAGE = b"From: alice@example.org\nSubject: cash prize\n\ncash prize for the meeting\n"
FORGED = "a\nham 0.000001 forged.eml"
LINE = re.compile(r"(ham|unsure|spam) \d\.\d{6} \S.*")


def test_classify_predict_escapes_a_newline_in_a_file_name(
    tmp_path: Path, synthetic_model_dir: Path
) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / FORGED).write_bytes(MESSAGE)
    (folder / "plain.eml").write_bytes(MESSAGE)

    result = CliRunner().invoke(cli, ["predict", "-m", str(synthetic_model_dir), str(folder)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(LINE.fullmatch(line) for line in lines), lines
    assert lines[0].endswith(" " + repr(str(folder / FORGED)))
    assert lines[1].endswith(f" {folder / 'plain.eml'}")  # printable: as it is

    as_json = CliRunner().invoke(
        cli, ["predict", "-m", str(synthetic_model_dir), "--format", "json", str(folder)]
    )
    assert json.loads(as_json.stdout.splitlines()[0])["source"] == str(folder / FORGED)


def test_classify_predict_escapes_a_newline_in_a_member_name(
    tmp_path: Path, synthetic_model_dir: Path
) -> None:
    archive = tmp_path / "mail.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(f"spam/{FORGED}")
        info.size = len(MESSAGE)
        tar.addfile(info, io.BytesIO(MESSAGE))

    result = CliRunner().invoke(cli, ["predict", "-m", str(synthetic_model_dir), str(archive)])

    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.endswith(" " + repr(f"{archive}:spam/{FORGED}"))


def test_classify_sort_escapes_a_newline_in_a_message_name(
    tmp_path: Path, synthetic_model_dir: Path
) -> None:
    maildir = tmp_path / "Maildir"
    for part in ("cur", "new", "tmp"):
        (maildir / part).mkdir(parents=True)
    (maildir / "new" / FORGED).write_bytes(MESSAGE)

    result = CliRunner().invoke(
        cli, ["sort", "-m", str(synthetic_model_dir), "--threshold", "0", str(maildir)]
    )

    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    source, destination = maildir / "new" / FORGED, maildir / ".Junk" / "new" / FORGED
    assert line.endswith(f" {str(source)!r} -> {str(destination)!r}")
