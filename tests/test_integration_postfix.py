"""`spamcli serve --milter` under a real Postfix: mail sent with smtplib to
a Postfix of its own (its own configuration folder, queue and Maildir in a
temporary folder, on unprivileged ports of 127.0.0.1) with the
smtpd_milters lines of docs/serve.md, and what Postfix delivers and
rejects.

Postfix is not a Python package: without /usr/sbin/postfix these tests
skip, and so they do when not run as root (Postfix's master starts as
root and hands its work to the postfix user). CI installs Postfix when it
can (see .ci/run).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from serve_support import DaemonProcess, documented_snippet, free_port

from spamcli.scoring import Scorer

pytestmark = pytest.mark.integration
pytest.importorskip("Milter", reason="the serve extra (pymilter) is not installed")

POSTFIX = Path("/usr/sbin/postfix")
MASTER_CF = Path("/etc/postfix/master.cf")
RECIPIENT = "user@example.test"
DELIVERY_SECONDS = 15


@dataclass
class Postfix:
    folder: Path
    smtp_port: int
    milter_port: int

    @property
    def config_dir(self) -> Path:
        return self.folder / "etc"

    @property
    def maildir(self) -> Path:
        return self.folder / "mail" / "user"

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def delivered(self, count: int) -> list[bytes]:
        """Wait for COUNT messages in the Maildir; all of them, oldest first."""
        deadline = time.monotonic() + DELIVERY_SECONDS
        new = self.maildir / "new"
        while time.monotonic() < deadline:
            files = (
                sorted(new.iterdir(), key=lambda path: path.stat().st_mtime) if new.is_dir() else []
            )
            if len(files) >= count:
                return [path.read_bytes() for path in files]
            time.sleep(0.05)
        raise AssertionError(f"{count} messages were not delivered:\n{self.log()[-3000:]}")

    def send(self, raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            client.sendmail("sender@example.org", [RECIPIENT], raw)


def write_postfix_config(postfix: Postfix) -> None:
    folder = postfix.folder
    for name in ("etc", "queue", "data", "mail"):
        (folder / name).mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(folder / "data", pwd.getpwnam("postfix").pw_uid, -1)
    os.chown(folder / "mail", nobody.pw_uid, nobody.pw_gid)
    milter_lines = documented_snippet("postfix-main.cf").replace("11332", str(postfix.milter_port))
    (folder / "etc" / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.example.test
mydomain = example.test
myorigin = example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
relay_domains =
virtual_mailbox_domains = example.test
virtual_mailbox_base = {folder}/mail
virtual_mailbox_maps = texthash:{folder}/etc/vmailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
alias_maps =
alias_database =
local_recipient_maps =
maillog_file_prefixes = {folder}
maillog_file = {folder}/maillog
smtputf8_enable = no
biff = no
{milter_lines}"""
    )
    (folder / "etc" / "vmailbox").write_text(f"{RECIPIENT} user/\n")
    # Debian's master.cf, with smtpd on our port and nothing chrooted.
    master = re.sub(
        r"(?m)^smtp(\s+)inet(\s+)n(\s+)-(\s+)y",
        f"127.0.0.1:{postfix.smtp_port} inet n - n",
        MASTER_CF.read_text(),
    )
    master = re.sub(
        r"(?m)^(\S+\s+(?:unix|inet|fifo|pass|unix-dgram)\s+[-yn]\s+[-yn]\s+)y(\s)", r"\1n\2", master
    )
    (folder / "etc" / "master.cf").write_text(master)


def postfix_command(postfix: Postfix, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(POSTFIX), "-c", str(postfix.config_dir), *arguments],
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def postfix() -> Iterator[Postfix]:
    if not POSTFIX.exists() or not MASTER_CF.exists():
        pytest.skip(f"Postfix is not installed ({POSTFIX}; apt-get install postfix)")
    if os.geteuid() != 0:
        pytest.skip("Postfix's master starts as root; run as root to test under Postfix")
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        pytest.skip("the postfix user or the postdrop group is missing")
    # Not under pytest's own temporary folder: the postfix user and the
    # mailbox owner must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix="spamcli-postfix-"))
    folder.chmod(0o755)
    instance = Postfix(folder, free_port(), free_port())
    try:
        write_postfix_config(instance)
        started = postfix_command(instance, "start")
        if started.returncode != 0:
            pytest.fail(f"postfix start failed: {started.stderr!r}\n{instance.log()}")
        deadline = time.monotonic() + 20
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", instance.smtp_port), timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"Postfix does not listen:\n{instance.log()}")
            time.sleep(0.1)
        yield instance
    finally:
        postfix_command(instance, "stop")
        pid_file = folder / "queue" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), 9)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def empty_maildir(postfix: Postfix) -> Postfix:
    shutil.rmtree(postfix.maildir, ignore_errors=True)
    return postfix


def field(message: bytes, name: str) -> str | None:
    match = re.search(rb"(?im)^" + name.encode() + rb":[ \t]*(.*?)\r?$", message.split(b"\n\n")[0])
    return match.group(1).decode() if match else None


def test_integration_postfix_marks_delivers_and_rejects(
    empty_maildir: Postfix,
    trained_model_dir: Path,
    generate_mail: Callable[[str, int, int], list[bytes]],
) -> None:
    postfix = empty_maildir
    scorer = Scorer(trained_model_dir)
    ham = generate_mail("ham", 1, 61)[0]
    spams = sorted(generate_mail("spam", 6, 61), key=lambda raw: scorer.score_messages([raw])[0])
    low, high = spams[0], spams[-1]
    low_score, high_score = scorer.score_messages([low])[0], scorer.score_messages([high])[0]
    assert scorer.cutoffs().label(low_score) == "spam" and high_score > low_score
    reject_above = (low_score + high_score) / 2
    # A sender's own verdict is not what gets delivered.
    forged_ham = b"X-Spam-Flag: YES\nX-Spam-Status: Yes, trust me\n" + ham
    arguments = [
        "-m", str(trained_model_dir),
        "--milter", f"inet:{postfix.milter_port}@127.0.0.1",
        "--reject-above", repr(reject_above),
        "--subject-tag", "[SPAM]",
    ]  # fmt: skip
    with DaemonProcess(arguments) as daemon:
        postfix.send(forged_ham)
        postfix.send(low)
        with pytest.raises(smtplib.SMTPDataError) as rejected:
            postfix.send(high)
        assert rejected.value.smtp_code == 550
        assert b"5.7.1 spamcli: message rejected as spam" in rejected.value.smtp_error
        delivered = postfix.delivered(2)
        daemon.wait_for_line(r"milter message verdict=spam .* action=reject")
        accepted_spam = daemon.wait_for_line(r"milter message verdict=spam .* action=accept")
    by_id = {field(message, "Message-ID"): message for message in delivered}
    delivered_ham = by_id[field(ham, "Message-ID")]
    delivered_spam = by_id[field(low, "Message-ID")]
    assert field(delivered_ham, "X-Spam-Flag") == "NO"
    assert len(re.findall(rb"(?im)^X-Spam-Flag:", delivered_ham)) == 1
    assert b"trust me" not in delivered_ham
    assert field(delivered_spam, "X-Spam-Flag") == "YES"
    # The score the daemon logged (of the message as Postfix passed it on,
    # its Received field included) is the one in the field.
    logged = float(re.search(r"probability=([\d.]+)", accepted_spam).group(1))  # type: ignore[union-attr]
    assert field(delivered_spam, "X-Spam-Score") == f"{logged:.4f}"
    assert re.match(
        r"Yes, score=0\.\d{4}, spam_cutoff=", field(delivered_spam, "X-Spam-Status") or ""
    )
    assert (field(delivered_spam, "Subject") or "").startswith("[SPAM] ")
    assert (field(delivered_ham, "Subject") or "") == field(ham, "Subject")
    # The body arrives as it was sent (Postfix may end it with an empty line).
    assert delivered_ham.split(b"\n\n", 1)[1].rstrip(b"\n") == ham.split(b"\n\n", 1)[1].rstrip(
        b"\n"
    )


def test_integration_postfix_delivers_when_the_daemon_is_down(
    empty_maildir: Postfix, generate_mail: Callable[[str, int, int], list[bytes]]
) -> None:
    # Nothing listens on the milter port: milter_default_action = accept.
    raw = generate_mail("spam", 1, 62)[0]
    empty_maildir.send(raw)
    (delivered,) = empty_maildir.delivered(1)
    assert field(delivered, "X-Spam-Flag") is None
    assert field(delivered, "Message-ID") == field(raw, "Message-ID")
