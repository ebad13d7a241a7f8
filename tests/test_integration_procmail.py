"""``spamcli filter`` in a real delivery: procmail pipes each message through
it and files it by the X-Spam-Flag it added.

procmail is not a Python package: without /usr/bin/procmail these tests
skip (CI installs it when it can, see .ci/run). Each message is delivered
twice, once through spamcli and once through ``cat`` as the filter, because
procmail itself changes what a filter sees (it hands the filter the message
with an empty line at the end); what spamcli adds is measured against that.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROCMAIL = Path("/usr/bin/procmail")
FIELDS = re.compile(
    rb"X-Spam-Flag: (YES|NO)\n"
    rb"X-Spam-Score: [01]\.\d{4}\n"
    rb"X-Spam-Status: (Yes|No|Unsure), score=[01]\.\d{4}, spam_cutoff=[01]\.\d{4}, "
    rb"ham_cutoff=[01]\.\d{4}, model=[A-Za-z0-9._+-]+\n"
)


@pytest.fixture(scope="module")
def procmail() -> Path:
    if not PROCMAIL.exists():
        pytest.skip(f"procmail is not installed ({PROCMAIL} is missing)")
    return PROCMAIL


def spamcli_command() -> str:
    """The console script of the running environment, else ``python -m spamcli``."""
    script = Path(sys.executable).parent / "spamcli"
    if script.exists():
        return str(script)
    return f"{sys.executable} -m spamcli"


def write_rcfile(home: Path, filter_command: str) -> Path:
    """A procmailrc that filters through FILTER_COMMAND, files spam into the
    Maildir folder .Junk/ and everything else into the Maildir itself."""
    maildir = home / "Maildir"
    maildir.mkdir(parents=True, exist_ok=True)
    # procmail clears its environment when it starts (all but TZ): set it again.
    python_path = os.environ.get("PYTHONPATH")
    rcfile = home / "procmailrc"
    rcfile.write_text(
        "SHELL=/bin/sh\n"
        f'HOME="{home}"\n'
        f'MAILDIR="{maildir}/"\n'
        f'LOGFILE="{home}/procmail.log"\n'
        "VERBOSE=on\n" + (f'PYTHONPATH="{python_path}"\n' if python_path else "") + "\n"
        ":0fw\n"
        f"| {filter_command}\n"
        "\n"
        ":0\n"
        "* ^X-Spam-Flag: YES\n"
        ".Junk/\n"
        "\n"
        ":0\n"
        "./\n"
    )
    return rcfile


def deliver(procmail: Path, rcfile: Path, raw: bytes) -> None:
    home = rcfile.parent
    completed = subprocess.run(
        [str(procmail), "-m", str(rcfile)],
        input=raw,
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(home)},
        cwd=home,
    )
    log = home / "procmail.log"
    assert completed.returncode == 0, (completed.stderr, log.read_text() if log.exists() else "")


def delivered(home: Path) -> dict[str, list[bytes]]:
    """The messages in the Maildir's inbox and in .Junk, in delivery order."""
    maildir = home / "Maildir"
    folders = {"inbox": maildir / "new", "junk": maildir / ".Junk" / "new"}
    return {
        name: [path.read_bytes() for path in sorted(folder.iterdir(), key=os.path.getmtime)]
        if folder.is_dir()
        else []
        for name, folder in folders.items()
    }


def body(raw: bytes) -> bytes:
    return raw.split(b"\n\n", 1)[1]


def test_procmail_files_spam_into_junk_with_our_headers(
    procmail: Path, tmp_path: Path, trained_model_dir: Path, heldout_dir: Path
) -> None:
    filtered_home = tmp_path / "filtered"
    control_home = tmp_path / "control"
    filtered_rc = write_rcfile(filtered_home, f"{spamcli_command()} filter -m {trained_model_dir}")
    control_rc = write_rcfile(control_home, "cat")

    for label in ("ham", "spam"):
        for path in sorted((heldout_dir / label).iterdir()):
            raw = path.read_bytes()
            before = delivered(filtered_home)
            deliver(procmail, filtered_rc, raw)
            deliver(procmail, control_rc, raw)
            after = delivered(filtered_home)
            folder = "junk" if label == "spam" else "inbox"
            new = after[folder][len(before[folder]) :]
            assert len(new) == 1, f"{path.name} did not land in {folder}"
            assert sum(map(len, after.values())) == sum(map(len, before.values())) + 1

            message = new[0]
            fields = FIELDS.match(message)
            assert fields, message[:300]
            assert fields[1] == (b"YES" if label == "spam" else b"NO")
            # Nothing else changed: the rest is what procmail delivers through cat.
            control = delivered(control_home)["inbox"][-1]
            assert message[fields.end() :] == control
            assert body(message).rstrip(b"\n") == body(raw).rstrip(b"\n")
            assert body(raw) in body(message)


@pytest.mark.parametrize(("flags", "filtered"), [("", True), ("--tempfail", False)])
def test_procmail_delivers_unmarked_mail_when_the_model_is_missing(
    procmail: Path, tmp_path: Path, heldout_dir: Path, flags: str, filtered: bool
) -> None:
    # Exit 0 with the message unchanged: procmail takes the output, as it does
    # cat's. Exit 75 (--tempfail): procmail keeps the message it had.
    missing = tmp_path / "no-model"
    filtered_rc = write_rcfile(
        tmp_path / "filtered", f"{spamcli_command()} filter -m {missing} {flags}"
    )
    reference_rc = write_rcfile(tmp_path / "reference", "cat" if filtered else "false")
    raw = sorted((heldout_dir / "spam").iterdir())[0].read_bytes()

    deliver(procmail, filtered_rc, raw)
    deliver(procmail, reference_rc, raw)

    messages = delivered(tmp_path / "filtered")
    assert messages["junk"] == []
    assert messages["inbox"] == delivered(tmp_path / "reference")["inbox"]
    assert b"X-Spam-" not in messages["inbox"][0]
    log = (tmp_path / "filtered" / "procmail.log").read_text()
    assert "the message passes unmarked: no model folder" in log
    assert ("Program failure (75)" in log) == (not filtered), log
