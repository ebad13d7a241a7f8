"""Helpers for the tests of `spamcli serve` (tests/test_serve*.py and the
integration tests): a daemon worker run in this process, the real daemon
run as a process, and small spamd and HTTP clients.

Everything listens on 127.0.0.1, on ports the kernel picks, and is torn
down by the context managers, whatever the test does.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spamcli.server.core import Limits, ScanService, ScanSettings
from spamcli.server.daemon import LOOPBACK_NETWORKS, AsyncWorker, Network
from spamcli.server.stats import Stats

REPOSITORY = Path(__file__).resolve().parent.parent
SPAMC = Path("/usr/bin/spamc")
PROCESS_TIMEOUT = 30
_READY = re.compile(r"spamcli serve: ready: (.*)")


def documented_snippet(name: str) -> str:
    """The fenced block after ``<!-- snippet: NAME -->`` in docs/serve.md:
    the configuration the integration tests run is the one the page shows."""
    text = (REPOSITORY / "docs" / "serve.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {re.escape(name)} -->\s*```[^\n]*\n(.*?)```", text, re.S)
    assert match is not None, f"docs/serve.md has no snippet {name}"
    return match.group(1)


def needs_serve_extra(*modules: str) -> None:
    """Skip the calling test unless the serve extra's MODULES import (aiohttp
    for --http, Milter for --milter): the extra does not install where
    libmilter's headers are missing."""
    for module in modules:
        pytest.importorskip(module, reason=f"the serve extra ({module}) is not installed")


def free_port() -> int:
    """A port nothing listens on now (for libmilter, which cannot report
    the port it was given when asked for 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening_socket(family: int = socket.AF_INET, path: str | None = None) -> socket.socket:
    if family == socket.AF_UNIX:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        assert path is not None
        listener.bind(path)
    else:
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.setblocking(False)
    return listener


@dataclass
class InProcessDaemon:
    """One worker of the daemon (spamd and HTTP on one event loop) in a
    thread of this process: no fork, no signals, and the service and its
    log at hand."""

    settings: ScanSettings
    limits: Limits = field(default_factory=Limits)
    allowed_networks: tuple[Network, ...] = LOOPBACK_NETWORKS
    http: bool = True
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stats = Stats(1)
        self.service = ScanService(self.settings, self.limits, self.stats, log=self.lines.append)
        self.spamd_socket = listening_socket()
        self.http_socket = listening_socket() if self.http else None
        self.worker = AsyncWorker(
            self.service,
            [self.spamd_socket],
            [self.http_socket] if self.http_socket else [],
            self.allowed_networks,
            self.limits.max_connections,
        )
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-daemon", daemon=True)

    @property
    def spamd_port(self) -> int:
        return int(self.spamd_socket.getsockname()[1])

    @property
    def http_port(self) -> int:
        assert self.http_socket is not None
        return int(self.http_socket.getsockname()[1])

    def _run(self) -> None:
        try:
            asyncio.run(self.worker.run(ready=self._ready.set))
        except BaseException as error:  # reported by __exit__
            self._failure = error
            self._ready.set()

    def __enter__(self) -> InProcessDaemon:
        self._thread.start()
        if not self._ready.wait(PROCESS_TIMEOUT) or self._failure is not None:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the worker did not start: {self._failure!r}")
        return self

    def __exit__(self, *exception: object) -> None:
        self.worker.stop()
        self._thread.join(PROCESS_TIMEOUT)
        self.spamd_socket.close()
        if self.http_socket is not None:
            self.http_socket.close()
        if self._failure is not None and exception[0] is None:
            raise RuntimeError("the worker failed") from self._failure


# --------------------------------------------------------------------------
# The daemon as a process


@dataclass
class DaemonProcess:
    """`python -m spamcli serve ARGS` in a new process, until stopped."""

    arguments: Sequence[str]
    environment: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    listeners: dict[str, list[str]] = field(default_factory=dict)
    stderr_lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def __enter__(self) -> DaemonProcess:
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(REPOSITORY), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            **self.environment,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spamcli", "serve", *self.arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stderr is not None
            for raw_line in self.process.stderr:
                line = raw_line.decode("utf-8", "replace").rstrip("\n")
                self.stderr_lines.append(line)
                match = _READY.search(line)
                if match:
                    for item in match.group(1).split():
                        name, _, value = item.partition("=")
                        self.listeners.setdefault(name, []).append(value)
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(PROCESS_TIMEOUT) or "pid" not in self.listeners:
            self.__exit__(None, None, None)
            raise RuntimeError("the daemon did not start:\n" + "\n".join(self.stderr_lines))
        return self

    def port(self, name: str) -> int:
        """The port of the first TCP listener of that kind (spamd, http)."""
        address = next(value for value in self.listeners[name] if not value.startswith("unix:"))
        return int(address.rpartition(":")[2])

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait_for_line(self, pattern: str, timeout: float = PROCESS_TIMEOUT) -> str:
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.stderr_lines[seen:]:
                if compiled.search(line):
                    return line
            seen = len(self.stderr_lines)
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.stderr_lines))

    def stop(self, timeout: float = PROCESS_TIMEOUT) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def kill_group(self) -> None:
        """SIGKILL the daemon and its workers (found by their parent pid)."""
        assert self.process is not None
        for pid in children_of(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def __exit__(self, *exception: object) -> None:
        if self.process is None:
            return
        self.stop()
        if self.process.stderr is not None:
            self.process.stderr.close()


def children_of(pid: int) -> list[int]:
    """The processes whose parent is PID, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


# --------------------------------------------------------------------------
# Clients


def spamd_request(
    command: str,
    message: bytes | None,
    version: str = "1.5",
    headers: Sequence[str] = (),
    content_length: bool = True,
) -> bytes:
    lines = [f"{command} SPAMC/{version}", *headers]
    if message is not None and content_length:
        lines.append(f"Content-length: {len(message)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (message or b"")


def spamd_exchange(
    port: int, request: bytes, timeout: float = PROCESS_TIMEOUT, half_close: bool = True
) -> bytes:
    """Send REQUEST, shut our side down (as spamc does), read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        if half_close:
            # The daemon may have answered and closed already (an error
            # early in the request): what it sent is still there to read.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)
        return read_all(connection)


def read_all(connection: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class SpamdAnswer:
    status: str
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split()[1])


def parse_answer(data: bytes) -> SpamdAnswer:
    status, _, rest = data.partition(b"\r\n")
    headers: dict[str, str] = {}
    while rest and not rest.startswith(b"\r\n"):
        line, _, rest = rest.partition(b"\r\n")
        name, _, value = line.decode().partition(":")
        headers[name.strip()] = value.strip()
    return SpamdAnswer(status.decode(), headers, rest[2:] if rest.startswith(b"\r\n") else rest)


def spamc(
    arguments: Sequence[str], message: bytes, timeout: float = PROCESS_TIMEOUT
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(SPAMC), *arguments], input=message, capture_output=True, timeout=timeout
    )


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = PROCESS_TIMEOUT,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def iterate_lines(text: str) -> Iterator[str]:
    yield from (line for line in text.splitlines() if line)


def metric(text: str, name: str, **labels: Any) -> float:
    """The value of one sample of a Prometheus page (0 if absent)."""
    from spamcli.server.stats import parse_metrics

    for sample, sample_labels, value in parse_metrics(text):
        if sample == name and all(
            sample_labels.get(key) == str(item) for key, item in labels.items()
        ):
            return value
    return 0.0
