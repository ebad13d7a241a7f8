"""`spamcli serve` under Dovecot's Sieve (Pigeonhole's extprograms): the
Sieve scripts of docs/serve.md, run by Pigeonhole's own sieve-test with
the Dovecot settings the page gives, with spamc as the filter and pipe
program talking to the daemon.

* the delivery script filters each message through spamc and files spam
  into Junk: sieve-test runs the filter and prints the actions it decided;
* the learning script (run from imapsieve when a user moves a message into
  Junk) pipes the message to `spamc -L spam`: sieve-test -e runs it, and
  the daemon has learned the message.

Dovecot is not a Python package: without sieve-test (dovecot-sieve) or
spamc these tests skip.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_support import SPAMC, DaemonProcess, documented_snippet

pytestmark = pytest.mark.integration

SIEVE_TEST = shutil.which("sieve-test")
EXTPROGRAMS = Path("/usr/lib/dovecot/modules/sieve/lib90_sieve_extprograms_plugin.so")


@pytest.fixture
def sieve_folder() -> Iterator[Path]:
    if SIEVE_TEST is None:
        pytest.skip("Pigeonhole's sieve-test is not installed (apt-get install dovecot-sieve)")
    if not SPAMC.exists():
        pytest.skip(f"spamc is not installed ({SPAMC} is missing)")
    if not EXTPROGRAMS.exists():
        pytest.skip(f"Pigeonhole's extprograms plugin is missing ({EXTPROGRAMS})")
    # Dovecot drops to the mail user (nobody, when the tests run as root):
    # it must reach the scripts, the programs and the mail folder.
    folder = Path(tempfile.mkdtemp(prefix="spamcli-dovecot-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dovecot_config(folder: Path) -> Path:
    """The plugin settings of docs/serve.md, their folders moved into FOLDER."""
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    account = pwd.getpwnam(user)
    plugin = documented_snippet("dovecot-plugin")
    programs = folder / "programs"
    programs.mkdir()
    (programs / "spamc").symlink_to(SPAMC)
    plugin = re.sub(r"/etc/dovecot/sieve-(filter|pipe)", str(programs), plugin)
    plugin = re.sub(r"(?m)^\s*sieve_before\s*=.*\n", "", plugin)
    mail = folder / "mail"
    mail.mkdir()
    os.chown(mail, account.pw_uid, account.pw_gid)
    config = folder / "dovecot.conf"
    config.write_text(
        f"mail_uid = {account.pw_uid}\nmail_gid = {account.pw_gid}\n"
        f"first_valid_uid = {min(account.pw_uid, 100)}\n"
        f"mail_location = maildir:{mail}\n{plugin}"
    )
    return config


def sieve_script(folder: Path, name: str, socket_path: Path) -> Path:
    text = documented_snippet(name).replace("/run/spamcli/spamd.sock", str(socket_path))
    path = folder / f"{name}.sieve"
    path.write_text(text)
    return path


def sieve_test(config: Path, script: Path, message: Path, *options: str) -> str:
    assert SIEVE_TEST is not None
    completed = subprocess.run(
        [SIEVE_TEST, "-c", str(config), *options, str(script), str(message)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return completed.stdout + completed.stderr


def test_integration_dovecot_files_spam_into_junk(
    sieve_folder: Path,
    trained_model_dir: Path,
    generate_mail: Callable[[str, int, int], list[bytes]],
) -> None:
    socket_path = sieve_folder / "spamd.sock"
    config = dovecot_config(sieve_folder)
    script = sieve_script(sieve_folder, "dovecot-filter-sieve", socket_path)
    arguments = ["-m", str(trained_model_dir), "--socket", str(socket_path)]
    # The mail user reaches the socket through its group in the page's set-up;
    # here it is another user altogether, so the socket is left open to it.
    with DaemonProcess([*arguments, "--socket-mode", "0666"]) as daemon:
        for label in ("spam", "ham"):
            message = sieve_folder / f"{label}.eml"
            message.write_bytes(generate_mail(label, 1, 91)[0])
            output = sieve_test(config, script, message)
            junk = "store message in folder: Junk" in output
            assert junk == (label == "spam"), output
    # Read once the daemon has stopped: a worker writes its log lines in
    # batches, up to core.LOG_BATCH_SECONDS late.
    lines = [line for line in daemon.stderr_lines if "spamd PROCESS verdict=" in line]
    assert [re.search(r"verdict=(\w+)", line).group(1) for line in lines] == ["spam", "ham"]  # type: ignore[union-attr]


def test_integration_dovecot_learns_what_is_moved_to_junk(
    sieve_folder: Path, model_copy: Path, generate_mail: Callable[[str, int, int], list[bytes]]
) -> None:
    socket_path = sieve_folder / "spamd.sock"
    config = dovecot_config(sieve_folder)
    script = sieve_script(sieve_folder, "dovecot-learn-sieve", socket_path)
    message = sieve_folder / "ham.eml"
    message.write_bytes(generate_mail("ham", 1, 92)[0])
    arguments = ["-m", str(model_copy), "--socket", str(socket_path), "--allow-tell"]
    with DaemonProcess([*arguments, "--socket-mode", "0666"]) as daemon:
        output = sieve_test(config, script, message, "-e")
        assert "piped message to program `spamc'" in output, output
        daemon.wait_for_line(r"spamd TELL learned=spam outcome='added'", timeout=60)


def code_lines(sieve: str) -> list[str]:
    """A Sieve script's statements: its comments and blank lines dropped."""
    return [line for line in sieve.splitlines() if line.strip() and not line.startswith("#")]


def test_the_documented_ham_script_is_the_tested_one_but_for_its_pipe() -> None:
    # report-ham.sieve's Trash and Junk rule runs under a real Dovecot in
    # test_integration_dovecot_imapsieve.py (sieve-test has no IMAP
    # mailbox to run it against); the page's script for the daemon must be
    # that script, piping to spamc instead of spamcli-learn.sh.
    shipped = (
        Path(__file__).parent.parent / "contrib" / "dovecot" / "report-ham.sieve"
    ).read_text()
    expected = [
        line.replace(
            '"spamcli-learn.sh" ["ham"]', '"spamc" ["-U", "/run/spamcli/spamd.sock", "-L", "ham"]'
        )
        for line in code_lines(shipped)
    ]
    assert code_lines(documented_snippet("dovecot-learn-ham-sieve")) == expected
