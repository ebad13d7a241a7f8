"""``spamcli filter`` under maildrop: the README's ``xfilter`` recipe files
spam into a .Junk Maildir, and a failing filter either passes the message
unmarked or, with --tempfail, makes maildrop exit 75 so the mail server
tries again. Skips without /usr/bin/maildrop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_integration_procmail import FIELDS, spamcli_command

from spamcli.cli import EXIT_TEMPFAIL

pytestmark = pytest.mark.integration

MAILDROP = Path("/usr/bin/maildrop")


@pytest.fixture(scope="module")
def maildrop() -> Path:
    if not MAILDROP.exists():
        pytest.skip(f"maildrop is not installed ({MAILDROP} is missing)")
    return MAILDROP


def make_maildir(path: Path) -> Path:
    for part in ("cur", "new", "tmp"):
        (path / part).mkdir(parents=True, exist_ok=True)
    return path


def write_mailfilter(home: Path, filter_arguments: str) -> Path:
    inbox = make_maildir(home / "Maildir")
    junk = make_maildir(inbox / ".Junk")
    python_path = os.environ.get("PYTHONPATH")
    mailfilter = home / "mailfilter"
    mailfilter.write_text(
        (f'PYTHONPATH="{python_path}"\n' if python_path else "")
        + f'xfilter "{spamcli_command()} filter {filter_arguments}"\n'
        "if (/^X-Spam-Flag: YES/)\n"
        "{\n"
        f'    to "{junk}"\n'
        "}\n"
        f'to "{inbox}"\n'
    )
    # maildrop refuses a filter file that others may write to.
    mailfilter.chmod(0o600)
    return mailfilter


def deliver(maildrop: Path, mailfilter: Path, raw: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(maildrop), str(mailfilter)],
        input=raw,
        capture_output=True,
        timeout=120,
        check=False,
        cwd=mailfilter.parent,
    )


def new_messages(maildir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((maildir / "new").iterdir())]


def test_maildrop_files_spam_into_junk(
    maildrop: Path, tmp_path: Path, trained_model_dir: Path, heldout_dir: Path
) -> None:
    mailfilter = write_mailfilter(tmp_path, f"-m {trained_model_dir}")
    inbox = tmp_path / "Maildir"
    for label in ("ham", "spam"):
        raw = sorted((heldout_dir / label).iterdir())[0].read_bytes()
        completed = deliver(maildrop, mailfilter, raw)
        assert completed.returncode == 0, completed.stderr

        folder = inbox / ".Junk" if label == "spam" else inbox
        delivered = new_messages(folder)[-1]
        fields = FIELDS.match(delivered)
        assert fields, delivered[:300]
        # maildrop stores what the filter wrote, byte for byte.
        assert delivered[fields.end() :] == raw
    assert len(new_messages(inbox)) == len(new_messages(inbox / ".Junk")) == 1


def test_maildrop_missing_model(maildrop: Path, tmp_path: Path, heldout_dir: Path) -> None:
    raw = sorted((heldout_dir / "spam").iterdir())[0].read_bytes()
    missing = tmp_path / "no-model"

    passing = write_mailfilter(tmp_path / "passing", f"-m {missing}")
    completed = deliver(maildrop, passing, raw)
    assert completed.returncode == 0, completed.stderr
    assert new_messages(tmp_path / "passing" / "Maildir") == [raw]

    deferring = write_mailfilter(tmp_path / "deferring", f"-m {missing} --tempfail")
    completed = deliver(maildrop, deferring, raw)
    assert completed.returncode == EXIT_TEMPFAIL
    assert new_messages(tmp_path / "deferring" / "Maildir") == []
    assert b"the message passes unmarked" in completed.stderr
