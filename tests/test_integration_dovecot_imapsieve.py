"""Correcting verdicts from a mail client, through a real Dovecot: the
IMAPSieve recipe of contrib/dovecot/ (docs/dovecot.md), installed as shipped
but for its paths, learns a message moved or copied into Junk as spam, and
one moved out of Junk, except into Trash, as ham.

Each test starts a private Dovecot: its own configuration file (``dovecot
-F -c``), base_dir, state_dir and log, an IMAP listener on a free port of
127.0.0.1 (never 143 or 993, so a system Dovecot does not matter), no TLS,
and one user in a passwd-file. The test talks to it with imaplib: APPEND
puts generated messages in place (APPEND runs no script), then UID MOVE and
UID COPY do what a mail client does. The pipe runs inside the IMAP command,
so a learn has happened when the command returns; the tests still poll, for
a few seconds at most.

Run as root, Dovecot runs the mail user's processes as a dedicated uid (it
refuses uid 0), so everything lives in a folder of /tmp that uid can reach
(pytest's tmp_path is private to root), and the spamcli of this checkout is
run through a launcher script with an interpreter that uid may execute.
Not root, Dovecot runs rootless as the current user, or the tests skip.
Without Dovecot, its IMAP server, or Pigeonhole's imapsieve and
extprograms plugins (Debian: dovecot-imapd, dovecot-sieve; .ci/run installs
them when it can), the tests skip.

(tests/test_integration_dovecot.py is another one: `spamcli serve` under
Pigeonhole's sieve-test.)
"""

from __future__ import annotations

import grp
import hashlib
import imaplib
import os
import pwd
import shlex
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from spamcli.learning import read_learned

pytestmark = pytest.mark.integration

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
CONTRIB_DIR = REPOSITORY_DIR / "contrib" / "dovecot"
# Where the shipped files expect to be installed; the tests put them in
# their own folder instead.
INSTALLED_SIEVE_DIR = "/etc/dovecot/sieve"
INSTALLED_PIPE_DIR = "/etc/dovecot/sieve-pipe"
SYSTEM_PATH = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"))
USER = "tester"
PASSWORD = "correct horse"
# A learn takes a fraction of a second (Python and NumPy starting); the
# wrapper's own limit is 8 s and Dovecot's 10 s.
LEARN_WAIT_SECONDS = 5.0
START_WAIT_SECONDS = 10.0


# --------------------------------------------------------------------------
# What is installed


@dataclass(frozen=True)
class DovecotTools:
    dovecot: str
    sievec: str
    # Run as root, the dedicated uid and gid of the mail user; otherwise
    # the current user's, with Dovecot running rootless.
    mail_uid: int
    mail_gid: int
    rootless: bool


def free_id() -> int:
    """A number that is neither a user's uid nor a group's gid."""
    for number in range(61000, 62000):
        try:
            pwd.getpwuid(number)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(number)
        except KeyError:
            return number
    pytest.skip("no free uid for the mail user between 61000 and 62000")


@pytest.fixture(scope="module")
def dovecot_tools() -> DovecotTools:
    found = {
        name: shutil.which(name, path=SYSTEM_PATH) for name in ("dovecot", "doveconf", "sievec")
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.skip(f"Dovecot is not installed ({', '.join(missing)} not found)")
    completed = subprocess.run(
        [str(found["doveconf"]), "-c", os.devnull, "-h", "mail_plugin_dir"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        pytest.skip(f"doveconf does not run: {completed.stderr.strip()}")
    module_dir = Path(completed.stdout.strip())
    wanted = {
        "the imap_sieve plugin (Debian: dovecot-sieve)": module_dir.glob("*_imap_sieve_plugin.so"),
        "Pigeonhole's imapsieve plugin (dovecot-sieve)": module_dir.glob(
            "sieve/*_sieve_imapsieve_plugin.so"
        ),
        "Pigeonhole's extprograms plugin (dovecot-sieve)": module_dir.glob(
            "sieve/*_sieve_extprograms_plugin.so"
        ),
    }
    for what, matches in wanted.items():
        if not list(matches):
            pytest.skip(f"{what} is not installed in {module_dir}")
    imap_binaries = (module_dir.parent / "imap", Path("/usr/libexec/dovecot/imap"))
    if not any(path.exists() for path in imap_binaries):
        pytest.skip("Dovecot's IMAP server is not installed (Debian: dovecot-imapd)")

    if os.getuid() == 0:
        for name in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                pytest.skip(f"no system user {name!r}, which Dovecot runs its own processes as")
        mail_id = free_id()
        return DovecotTools(str(found["dovecot"]), str(found["sievec"]), mail_id, mail_id, False)
    return DovecotTools(str(found["dovecot"]), str(found["sievec"]), os.getuid(), os.getgid(), True)


# --------------------------------------------------------------------------
# spamcli, as the mail user runs it


def run_as(tools: DovecotTools, command: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """COMMAND run as the mail user, with an environment as bare as the one
    Dovecot gives its programs."""
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=home,
        env={"HOME": str(home), "USER": USER},
        user=None if tools.rootless else tools.mail_uid,
        group=None if tools.rootless else tools.mail_gid,
        extra_groups=None if tools.rootless else [],
    )


def write_launcher(tools: DovecotTools, path: Path, home: Path) -> Path:
    """A script that runs this checkout's spamcli for the mail user: the
    value of SPAMCLI in the wrapper's settings.

    It takes this environment's interpreter if the mail user may execute
    it, else the system's interpreter of the same version, given this
    environment's site-packages (the same ABI, so the same NumPy loads).
    A virtual environment made from an interpreter under /root is out of
    reach of any other uid."""
    site_dirs = [*site.getsitepackages(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    site_dirs = [directory for directory in site_dirs if directory]
    code = (
        f"import site, sys; [site.addsitedir(d) for d in {site_dirs!r}]; "
        "sys.argv[0] = 'spamcli'; from spamcli.cli import main; main()"
    )
    probe = (
        f"import site; [site.addsitedir(d) for d in {site_dirs!r}]; import numpy, spamcli.learning"
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    interpreters = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    tried = []
    for interpreter in dict.fromkeys(interpreters):
        if not os.path.exists(interpreter):
            continue
        try:
            completed = run_as(tools, [interpreter, "-c", probe], home)
        except OSError as error:  # not executable by that uid
            tried.append(f"{interpreter}: {error.strerror}")
            continue
        if completed.returncode == 0:
            path.write_text(
                f'#!/bin/sh\nexec {shlex.quote(interpreter)} -c {shlex.quote(code)} "$@"\n'
            )
            path.chmod(0o755)
            return path
        tried.append(f"{interpreter}: {completed.stderr.strip().splitlines()[-1:]}")
    pytest.skip(f"the mail user (uid {tools.mail_uid}) cannot run spamcli: {'; '.join(tried)}")


# --------------------------------------------------------------------------
# A private Dovecot


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def installed_copy(source: Path, destination: Path, paths: dict[str, str]) -> Path:
    """SOURCE copied to DESTINATION with the installed paths replaced."""
    text = source.read_text(encoding="utf-8")
    for installed, ours in paths.items():
        assert installed in text, f"{source.name} no longer mentions {installed}"
        text = text.replace(installed, ours)
    destination.write_text(text, encoding="utf-8")
    return destination


@dataclass
class MailServer:
    tools: DovecotTools
    root_dir: Path
    port: int = 0
    spamcli_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.root_dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root_dir / "dovecot.log"

    @property
    def home_dir(self) -> Path:
        return self.root_dir / "home"

    @property
    def pipe_dir(self) -> Path:
        return self.root_dir / "sieve-pipe"

    @property
    def user_model_dir(self) -> Path:
        """The mail user's own model, used when SPAMCLI_MODEL is unset."""
        return self.home_dir / ".local" / "share" / "spamcli" / "model"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def give_to_mail_user(self, path: Path) -> None:
        if self.tools.rootless:
            return
        for directory, _folders, files in os.walk(path):
            os.chown(directory, self.tools.mail_uid, self.tools.mail_gid)
            for name in files:
                os.chown(Path(directory, name), self.tools.mail_uid, self.tools.mail_gid)

    def install_model(self, model_dir: Path, destination: Path) -> Path:
        """A copy of MODEL_DIR at DESTINATION, the mail user's to write,
        with the folders above it up to root_dir (for the lock file and
        the staging folder spamcli keeps beside a model)."""
        shutil.copytree(model_dir, destination)
        top = destination
        while top.parent != self.root_dir:
            top = top.parent
        self.give_to_mail_user(top)
        return destination

    def set_learn_settings(self, **settings: str) -> None:
        """Write spamcli-learn.conf, which the wrappers read each time: the
        launcher as SPAMCLI, no syslog (the host's is not ours to fill),
        then SETTINGS."""
        settings = {"SPAMCLI": str(self.spamcli_path), "SPAMCLI_SYSLOG": "no", **settings}
        lines = [f"{name}={shlex.quote(value)}" for name, value in settings.items()]
        (self.pipe_dir / "spamcli-learn.conf").write_text("\n".join(lines) + "\n")

    def write_config(self) -> None:
        sieve_dir = self.root_dir / "sieve"
        conf_dir = self.root_dir / "conf.d"
        for folder in (sieve_dir, self.pipe_dir, conf_dir, self.home_dir):
            folder.mkdir()
        self.give_to_mail_user(self.home_dir)
        paths = {INSTALLED_PIPE_DIR: str(self.pipe_dir), INSTALLED_SIEVE_DIR: str(sieve_dir)}
        installed_copy(
            CONTRIB_DIR / "90-spamcli-imapsieve.conf",
            conf_dir / "90-spamcli-imapsieve.conf",
            paths,
        )
        for name in ("report-spam.sieve", "report-ham.sieve"):
            shutil.copy(CONTRIB_DIR / name, sieve_dir / name)
        shutil.copy(CONTRIB_DIR / "spamcli-learn.sh", self.pipe_dir / "spamcli-learn.sh")
        (self.pipe_dir / "spamcli-learn.sh").chmod(0o755)
        passwd = self.root_dir / "passwd"
        passwd.write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{self.tools.mail_uid}:{self.tools.mail_gid}"
            f"::{self.home_dir}::\n"
        )
        rootless = ""
        login_chroot = ""
        if self.tools.rootless:
            rootless = (
                f"default_internal_user = {pwd.getpwuid(os.getuid()).pw_name}\n"
                f"default_login_user = {pwd.getpwuid(os.getuid()).pw_name}\n"
                f"default_internal_group = {grp.getgrgid(os.getgid()).gr_name}\n"
                "service anvil {\n  chroot =\n}\n"
            )
            login_chroot = "  chroot =\n"
        self.config_path.write_text(
            f"""# A private Dovecot for tests/test_integration_dovecot_imapsieve.py
base_dir = {self.root_dir / "run"}
state_dir = {self.root_dir / "state"}
instance_name = spamcli-test-{self.port}
log_path = {self.log_path}
mail_debug = yes
protocols = imap
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain
disable_plaintext_auth = no
first_valid_uid = 1
mail_location = maildir:~/Maildir
{rootless}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
namespace inbox {{
  inbox = yes
  mailbox Junk {{
    auto = create
    special_use = \\Junk
  }}
  mailbox Trash {{
    auto = create
    special_use = \\Trash
  }}
}}
service imap-login {{
{login_chroot}  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
!include {conf_dir / "90-spamcli-imapsieve.conf"}
"""
        )
        # Compiled in advance, as docs/dovecot.md says: the mail user may
        # not write beside the scripts, and Dovecot logs an error each time
        # it cannot save a binary.
        for name in ("report-spam.sieve", "report-ham.sieve"):
            completed = subprocess.run(
                [self.tools.sievec, "-c", str(self.config_path), str(sieve_dir / name)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert completed.returncode == 0, f"sievec {name}: {completed.stderr}"

    def start(self) -> None:
        stderr_path = self.root_dir / "dovecot.stderr"
        with open(stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [self.tools.dovecot, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        deadline = time.monotonic() + START_WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    if probe.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        output = stderr_path.read_text(errors="replace") + self.log()
        self.stop()
        if self.tools.rootless:
            pytest.skip(f"Dovecot does not run unprivileged here: {output.strip()[-500:]}")
        pytest.fail(f"Dovecot did not start:\n{output}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The master ends its children (shutdown_clients is on by default).
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def session(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        client.login(USER, PASSWORD)
        return client


@pytest.fixture
def mail_server(dovecot_tools: DovecotTools) -> Iterator[MailServer]:
    root_dir = Path(tempfile.mkdtemp(prefix="spamcli-imapsieve-"))
    root_dir.chmod(0o755)  # for the mail user and Dovecot's own users
    server = MailServer(dovecot_tools, root_dir, port=free_port())
    try:
        server.write_config()
        server.spamcli_path = write_launcher(dovecot_tools, root_dir / "spamcli", server.home_dir)
        server.set_learn_settings()
        server.start()
        yield server
    finally:
        server.stop()
        # Shown with the output of a failed test.
        print(f"--- {server.log_path}\n{server.log()}")
        shutil.rmtree(root_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The mail client


def message_id(raw: bytes) -> str:
    return str(BytesParser().parsebytes(raw, headersonly=True)["Message-ID"])


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def checked(response: tuple[str, list[Any]], what: str) -> list[Any]:
    status, data = response
    assert status == "OK", f"{what}: {status} {data}"
    return data


def append(client: imaplib.IMAP4, mailbox: str, raw: bytes) -> None:
    checked(client.append(mailbox, "", None, raw), "APPEND")


def uid_in(client: imaplib.IMAP4, mailbox: str, raw: bytes) -> str | None:
    """The UID of the message RAW in MAILBOX (selected), or None."""
    checked(client.select(mailbox), f"SELECT {mailbox}")
    data = checked(client.uid("SEARCH", "HEADER", "Message-ID", f'"{message_id(raw)}"'), "SEARCH")
    found = data[0].split() if isinstance(data[0], bytes) else []
    assert len(found) <= 1, found
    return found[0].decode() if found else None


def kept_in(client: imaplib.IMAP4, mailbox: str, raw: bytes) -> bool:
    """Whether the message RAW is in MAILBOX and not flagged \\Deleted (a
    pipe without :copy leaves it so, to go at the next EXPUNGE)."""
    uid = uid_in(client, mailbox, raw)
    if uid is None:
        return False
    data = checked(client.uid("FETCH", uid, "(FLAGS)"), "FETCH")
    return b"\\Deleted" not in b" ".join(item for item in data if isinstance(item, bytes))


def transfer(
    client: imaplib.IMAP4, command: str, source: str, destination: str, raw: bytes
) -> None:
    """UID MOVE or UID COPY of the message RAW, as a mail client does it."""
    uid = uid_in(client, source, raw)
    assert uid is not None, f"{message_id(raw)} is not in {source}"
    checked(client.uid(command, uid, destination), f"{command} {source} -> {destination}")


def wait_for(condition: Callable[[], bool], what: str, server: MailServer) -> None:
    deadline = time.monotonic() + LEARN_WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {LEARN_WAIT_SECONDS} s\n{server.log()}")
        time.sleep(0.05)


def learned_label(model_dir: Path, raw: bytes) -> str | None:
    learned = read_learned(model_dir).get(digest(raw))
    return None if learned is None else learned.label


def errors_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if ": Error: " in line]


# --------------------------------------------------------------------------
# The tests


def test_imapsieve_learns_spam_moved_or_copied_into_junk(
    mail_server: MailServer, model_copy: Path, generate_mail: Callable[..., list[bytes]]
) -> None:
    model_dir = mail_server.install_model(model_copy, mail_server.root_dir / "models" / "model")
    mail_server.set_learn_settings(SPAMCLI_MODEL=str(model_dir))
    moved, copied = generate_mail("spam", 2, 71)
    client = mail_server.session()
    try:
        for raw in (moved, copied):
            append(client, "INBOX", raw)
        assert read_learned(model_dir) == {}, "an APPEND was learned"

        transfer(client, "MOVE", "INBOX", "Junk", moved)
        wait_for(lambda: learned_label(model_dir, moved) == "spam", "MOVE into Junk", mail_server)
        transfer(client, "COPY", "INBOX", "Junk", copied)
        wait_for(lambda: learned_label(model_dir, copied) == "spam", "COPY into Junk", mail_server)

        # pipe :copy keeps the messages where the user put them.
        assert uid_in(client, "INBOX", moved) is None
        assert kept_in(client, "Junk", moved)
        assert kept_in(client, "INBOX", copied)
        assert kept_in(client, "Junk", copied)
    finally:
        client.logout()

    assert set(read_learned(model_dir)) == {digest(moved), digest(copied)}
    # With sieve_pipe_input_eol = lf spamcli learns the bytes of the Maildir
    # file, so `spamcli learn ~/Maildir/.Junk` would find them learned.
    junk_files = (mail_server.home_dir / "Maildir" / ".Junk").glob("*/*")
    assert {digest(path.read_bytes()) for path in junk_files} == {digest(moved), digest(copied)}
    log = mail_server.log()
    assert log.count("piped message to program `spamcli-learn.sh'") == 2, log
    assert errors_in(log) == []


def test_imapsieve_learns_ham_moved_out_of_junk_but_not_into_trash(
    mail_server: MailServer, model_copy: Path, generate_mail: Callable[..., list[bytes]]
) -> None:
    # No SPAMCLI_MODEL: the mail user's own model, under the HOME Dovecot gives.
    model_dir = mail_server.install_model(model_copy, mail_server.user_model_dir)
    rescued, deleted = generate_mail("ham", 2, 72)
    (mistaken,) = generate_mail("ham", 1, 73)
    client = mail_server.session()
    try:
        append(client, "Junk", rescued)
        append(client, "Junk", deleted)
        append(client, "INBOX", mistaken)

        transfer(client, "MOVE", "Junk", "INBOX", rescued)
        wait_for(
            lambda: learned_label(model_dir, rescued) == "ham", "MOVE out of Junk", mail_server
        )
        transfer(client, "MOVE", "Junk", "Trash", deleted)
        # A message moved into Junk by mistake and back: spam, then ham. The
        # commands run in order, so once this is learned the move to Trash
        # has run its script too.
        transfer(client, "MOVE", "INBOX", "Junk", mistaken)
        wait_for(
            lambda: learned_label(model_dir, mistaken) == "spam", "MOVE into Junk", mail_server
        )
        transfer(client, "MOVE", "Junk", "INBOX", mistaken)
        wait_for(lambda: learned_label(model_dir, mistaken) == "ham", "MOVE back", mail_server)

        assert kept_in(client, "Trash", deleted)
        assert kept_in(client, "INBOX", rescued)
        assert kept_in(client, "INBOX", mistaken)
    finally:
        client.logout()

    learned = read_learned(model_dir)
    assert digest(deleted) not in learned, "a message moved from Junk to Trash was learned"
    assert {message.label for message in learned.values()} == {"ham"}
    assert len(learned) == 2
    log = mail_server.log()
    # Two learned as ham, and the mistaken one as spam on its way into Junk;
    # none for the move to Trash.
    assert log.count("piped message to program `spamcli-learn.sh'") == 3, log
    assert errors_in(log) == []


@pytest.mark.parametrize("broken", ["model", "command"])
def test_imapsieve_moves_the_message_when_learning_fails(
    mail_server: MailServer, generate_mail: Callable[..., list[bytes]], broken: str
) -> None:
    # spamcli stops before reading the message, or never starts: the wrapper
    # reads it to the end and exits 0, so the MOVE goes through. The message
    # is larger than a pipe's buffer (64 KiB), which Dovecot could not have
    # written to a program that does not read.
    missing = mail_server.root_dir / "missing"
    variable = {"model": "SPAMCLI_MODEL", "command": "SPAMCLI"}[broken]
    mail_server.set_learn_settings(**{variable: str(missing)})
    (small,) = generate_mail("spam", 1, 74)
    large = small.rstrip(b"\n") + b"\n" + b"Buy now, limited offer! " * 12000 + b"\n"
    client = mail_server.session()
    try:
        append(client, "INBOX", large)
        transfer(client, "MOVE", "INBOX", "Junk", large)
        assert uid_in(client, "INBOX", large) is None
        assert kept_in(client, "Junk", large)
    finally:
        client.logout()

    log = mail_server.log()
    failures = [line for line in errors_in(log) if "spamcli-learn:" in line]
    assert len(failures) == 1, log
    assert f"{USER}: spamcli learn --spam failed (exit status" in failures[0]
    # Dovecot saw a program that read the message and succeeded.
    assert errors_in(log) == failures, log
    assert "piped message to program `spamcli-learn.sh'" in log
    assert not missing.exists()
