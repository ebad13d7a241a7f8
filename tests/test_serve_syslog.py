"""`spamcli serve --syslog FACILITY`: the log lines as syslog datagrams
(server/syslog_lines.py), read here from a socket of the test's own in
place of /dev/log."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_support import PROCESS_TIMEOUT, REPOSITORY, spamd_exchange, spamd_request

from spamcli.errors import ServeError
from spamcli.server.syslog_lines import SyslogLines

ORDINARY = b"From: a@example.org\nSubject: lunch\n\nSee you at noon.\n"
_LINE = re.compile(r"<(\d+)>spamcli-serve\[(\d+)\]: (.*)")


@pytest.fixture
def syslog_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A Unix datagram socket standing in for /dev/log, and its path."""
    path = str(tmp_path / "log")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(PROCESS_TIMEOUT)
    try:
        yield receiver, path
    finally:
        receiver.close()


def receive(receiver: socket.socket) -> tuple[int, int, str]:
    """The next datagram: its priority, the pid in its tag, its text."""
    match = _LINE.fullmatch(receiver.recv(65536).decode())
    assert match is not None
    return int(match.group(1)), int(match.group(2)), match.group(3)


def receive_until(receiver: socket.socket, prefix: str) -> tuple[int, int, str]:
    while True:
        priority, pid, text = receive(receiver)
        if text.startswith(prefix):
            return priority, pid, text


def test_serve_sends_its_log_lines_to_syslog(
    trained_model_dir: Path, syslog_socket: tuple[socket.socket, str]
) -> None:
    receiver, path = syslog_socket
    arguments = ["-m", str(trained_model_dir), "--listen", "127.0.0.1:0", "--workers", "2"]
    arguments += ["--syslog", "mail", "--syslog-socket", path]
    process = subprocess.Popen(
        [sys.executable, "-m", "spamcli", "serve", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    try:
        # mail is facility 2, info priority 6: <2 * 8 + 6>.
        priority, main_pid, ready = receive_until(receiver, "ready: ")
        assert (priority, main_pid) == (22, process.pid)
        port = int(re.search(r"spamd=127\.0\.0\.1:(\d+)", ready).group(1))  # type: ignore[union-attr]

        answer = spamd_exchange(port, spamd_request("CHECK", ORDINARY))
        assert answer.startswith(b"SPAMD/1.1 0 EX_OK")
        priority, worker_pid, line = receive_until(receiver, "spamd CHECK ")
        # Logged by the worker that answered, under its own pid.
        assert priority == 22 and worker_pid != process.pid
        assert f"size={len(ORDINARY)}" in line and "verdict=" in line and "lunch" not in line

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
        assert process.returncode == 0
        assert receive_until(receiver, "SIGTERM")[1] == process.pid
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert stderr == b""  # nothing went to stderr instead


def test_serve_check_reports_a_syslog_socket_it_cannot_reach(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-syslog-here"
    base = [sys.executable, "-m", "spamcli", "serve", "-m", str(trained_model_dir), "--check"]
    completed = subprocess.run(
        [*base, "--syslog", "mail", "--syslog-socket", str(missing)],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 1
    assert completed.stderr == (
        f"Error: --syslog: cannot send to the syslog socket {missing}: No such file or directory\n"
    )

    completed = subprocess.run(
        [*base, "--syslog-socket", str(missing)],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 2
    assert "--syslog-socket needs --syslog FACILITY" in completed.stderr


def test_syslog_lines_tag_facility_and_prefix(syslog_socket: tuple[socket.socket, str]) -> None:
    receiver, path = syslog_socket
    log = SyslogLines("local3", path)
    log("spamcli serve: spamd CHECK verdict=spam\n")
    log("a line of its own")
    # local3 is facility 19: <19 * 8 + 6>.
    assert receive(receiver) == (158, os.getpid(), "spamd CHECK verdict=spam")
    assert receive(receiver) == (158, os.getpid(), "a line of its own")
    log.close()

    with pytest.raises(ValueError, match="unknown syslog facility"):
        SyslogLines("kern", path)
    with pytest.raises(ServeError, match="cannot send to the syslog socket"):
        SyslogLines("mail", path + ".missing")


def test_syslog_lines_drop_rather_than_wait_and_say_so(
    syslog_socket: tuple[socket.socket, str], capfd: pytest.CaptureFixture[str]
) -> None:
    receiver, path = syslog_socket
    log = SyslogLines("mail", path)
    started = time.monotonic()
    # Nothing reads: the socket's queue fills after a few hundred lines.
    for number in range(5000):
        log(f"spamcli serve: line {number}")
    assert time.monotonic() - started < 10  # never blocked on the full queue
    notes = capfd.readouterr().err.splitlines()
    assert notes == [
        f"spamcli serve: syslog ({path}) takes no log lines; dropping them until it does"
    ]

    receiver.settimeout(0.2)
    queued = []
    try:
        while True:
            queued.append(receive(receiver)[2])
    except TimeoutError:
        pass
    assert queued == [f"line {number}" for number in range(len(queued))]
    dropped = 5000 - len(queued)
    assert dropped > 0

    receiver.settimeout(PROCESS_TIMEOUT)
    log("spamcli serve: after")
    assert receive(receiver)[2] == "after"
    assert receive(receiver)[2] == f"{dropped} log lines were dropped while syslog took none"
    log.close()


def test_syslog_lines_connect_again_when_syslog_restarts(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    first = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    first.bind(path)
    log = SyslogLines("mail", path)
    log("before")
    assert first.recv(1000).endswith(b": before")

    # The syslog daemon restarts: its socket file is made anew.
    first.close()
    os.unlink(path)
    second = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    second.bind(path)
    second.settimeout(PROCESS_TIMEOUT)
    try:
        log("after")
        assert second.recv(1000).endswith(b": after")
    finally:
        second.close()
        log.close()
