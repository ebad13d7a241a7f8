"""`spamcli serve` under a real Exim: the data ACL of docs/serve.md, with
Exim's own spam condition talking to the daemon's spamd protocol (Exim
sends REPORT SPAMC/1.2 and reads the answer its own way, src/src/spam.c).

Each message goes in through `exim -bs` (an SMTP session on stdin, as
root, with a configuration and spool of its own in a temporary folder, and
-odq: queued, never delivered); what Exim answers at the end of data, and
the headers it queued the message with, are checked.

Exim is not a Python package, and the spam condition needs an Exim built
with content scanning (Debian's exim4-daemon-heavy; -light has none):
without one these tests skip. Debian will not install Exim beside Postfix
(both are the mail transport agent), so .ci/run unpacks the package's
files into a folder of its own and names the binary in $SPAMCLI_TEST_EXIM;
besides its -C configuration and spool, the binary needs the libraries the
package depends on and the user it is built to run as, Debian-exim, which
.ci/run installs and adds.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_support import DaemonProcess, documented_snippet

pytestmark = pytest.mark.integration

EXIM = os.environ.get("SPAMCLI_TEST_EXIM") or shutil.which("exim4") or shutil.which("exim")
EXIM_USER = "Debian-exim"


@pytest.fixture(scope="module")
def exim() -> str:
    if EXIM is None:
        pytest.skip(
            "Exim is not installed (apt-get install exim4-daemon-heavy, or name an unpacked"
            " exim4 binary in $SPAMCLI_TEST_EXIM)"
        )
    version = subprocess.run([EXIM, "-bV"], capture_output=True, text=True, timeout=30).stdout
    if "Content_Scanning" not in version:
        pytest.skip("this Exim has no content scanning (Debian: exim4-daemon-heavy has it)")
    if os.geteuid() != 0:
        pytest.skip("exim -C with a configuration of the test's own needs root")
    return EXIM


@pytest.fixture
def exim_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="spamcli-exim-"))
    folder.chmod(0o755)
    owner = exim_owner()
    for name in ("spool", "log"):
        (folder / name).mkdir()
        os.chown(folder / name, owner.pw_uid, owner.pw_gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def exim_owner() -> pwd.struct_passwd:
    """The user Exim receives mail as: the package's own, or, with Exim
    unpacked rather than installed, nobody (the configuration says so)."""
    for name in (EXIM_USER, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    return pwd.getpwuid(os.geteuid())


def write_exim_config(folder: Path, spamd_port: int) -> Path:
    acl = documented_snippet("exim-acl")
    main = documented_snippet("exim-main").replace("127.0.0.1 783", f"127.0.0.1 {spamd_port}")
    config = folder / "exim.conf"
    config.write_text(
        f"""keep_environment =
exim_user = {exim_owner().pw_uid}
exim_group = {exim_owner().pw_gid}
primary_hostname = mail.example.test
spool_directory = {folder}/spool
log_file_path = {folder}/log/%slog
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
{main}
begin acl

acl_check_rcpt:
  accept

acl_check_data:
{acl}
  accept

begin routers

nowhere:
  driver = redirect
  data = :blackhole:
"""
    )
    return config


def smtp_session(exim: str, config: Path, raw: bytes) -> str:
    """One message through `exim -bs`; what Exim answered at the end of data."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\n.", b"\n..").replace(b"\n", b"\r\n")
    session = (
        b"HELO client.example\r\nMAIL FROM:<sender@example.org>\r\n"
        b"RCPT TO:<user@example.test>\r\nDATA\r\n" + data + b"\r\n.\r\nQUIT\r\n"
    )
    completed = subprocess.run(
        [exim, "-C", str(config), "-odq", "-bs"], input=session, capture_output=True, timeout=60
    )
    replies = completed.stdout.decode(errors="replace").splitlines()
    # 220, 250 HELO, 250 MAIL, 250 RCPT, 354 DATA, then the end of data's answer.
    assert len(replies) >= 6, (completed.stdout, completed.stderr)
    return replies[5]


def queued_headers(folder: Path, message_id: str) -> str:
    return (folder / "spool" / "input" / f"{message_id}-H").read_text(errors="replace")


def test_integration_exim_spam_condition(
    exim: str,
    exim_folder: Path,
    trained_model_dir: Path,
    generate_mail: Callable[[str, int, int], list[bytes]],
) -> None:
    ham, spam = generate_mail("ham", 1, 81)[0], generate_mail("spam", 1, 81)[0]
    with DaemonProcess(["-m", str(trained_model_dir), "--listen", "127.0.0.1:0"]) as daemon:
        config = write_exim_config(exim_folder, daemon.port("spamd"))
        accepted = smtp_session(exim, config, ham)
        rejected = smtp_session(exim, config, spam)
    # Read once the daemon has stopped: a worker writes its log lines in
    # batches, up to core.LOG_BATCH_SECONDS late.
    reports = [line for line in daemon.stderr_lines if "spamd REPORT verdict=" in line]
    match = re.match(r"250 OK id=(\S+)", accepted)
    assert match, accepted
    headers = queued_headers(exim_folder, match.group(1))
    # The daemon's verdict and points, as Exim read them.
    ham_line = next(line for line in reports if "verdict=ham" in line)
    points = re.search(r"score=(-?\d+\.\d)/5\.0", ham_line).group(1)  # type: ignore[union-attr]
    assert re.search(rf"X-Spam-Score: {re.escape(points)} \([-+/]*\)", headers), headers
    assert "X-Spam-Report: spamcli has NOT identified this incoming email as spam" in headers
    assert re.match(r"550 This message scored \d+\.\d spam points\.", rejected), rejected
    assert any("verdict=spam" in line for line in reports)
