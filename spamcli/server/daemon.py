"""The daemon: its configuration, its listeners, a small pool of pre-forked
worker processes, and the signals.

Processes. The main process opens the spamd and HTTP listening sockets,
then forks the workers and only supervises them: it never loads a model
for serving. Each scan worker loads the model once and answers on every
spamd and HTTP socket, sharing them with the other workers (the kernel
hands each connection to one of them), with an asyncio event loop and one
thread for scans (the scorer is not thread-safe and holds the GIL anyway:
a second worker process, not a thread, is what uses a second core). The
milter, if asked for, runs in a process of its own, because libmilter
takes over its process's signals and threads (server/milter.py).

Signals, sent to the main process:

* SIGHUP: every worker reloads the model folder; the old model answers
  until the new one is loaded whole (server/core.py), and a folder that
  fails to load leaves the old one serving. A changed model folder is
  noticed without a signal, on the next message.
* SIGTERM (and SIGINT): stop accepting, let the requests in flight finish
  (up to Limits.shutdown_timeout), then exit 0.

The main process tells its workers through a pipe each (``r`` reload,
``s`` stop; the pipe's end, when the main process dies, stops them too), so
the milter process, whose signals libmilter owns, is told the same way.
A worker that dies is started again, unless that keeps happening.
Under systemd (Type=notify) the main process says READY=1 once every worker
is listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import select
import signal
import socket
import stat
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spamcli.errors import ModelError, ServeError
from spamcli.server.core import BatchedLog, Limits, ScanService, ScanSettings, stderr_line
from spamcli.server.stats import Stats
from spamcli.server.syslog_lines import DEFAULT_SOCKET as DEFAULT_SYSLOG_SOCKET
from spamcli.server.syslog_lines import SyslogLines

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SPAMD_PORT = 783
DEFAULT_HTTP_PORT = 11333
DEFAULT_SOCKET_MODE = 0o660
LOOPBACK_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
LISTEN_BACKLOG = 128
# How long the main process waits for its workers to load and listen.
STARTUP_SECONDS = 60.0
# A worker that dies more often than this in RESTART_WINDOW is not started again.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# The setup.cfg extra with the protocol libraries (aiohttp, pymilter).
SERVE_EXTRA = "serve"
# A message up to this size is scanned on the event loop, not handed to the
# scan thread and back: the round trip through the thread cost a worker
# 0.12 ms a message (8 clients, SpamAssassin corpora: 1,475 messages/s
# through the thread, 1,651 with every scan on the loop). 88 % of those
# messages are this small, and those of 6 to 8 KB scan in 1.0 ms (median;
# 2.3 ms at the 99th percentile). A message made to be slow holds the loop
# longer (8 KB of 1,365 empty MIME parts: 9.7 ms, of HTML tags 1.7 ms); a
# scan thread holds the interpreter for 5 ms at a time anyway.
INLINE_SCAN_BYTES = 8 * 1024


@dataclass(frozen=True)
class ServeConfig:
    settings: ScanSettings
    limits: Limits = field(default_factory=Limits)
    spamd_address: tuple[str, int] | None = None
    spamd_socket: Path | None = None
    socket_mode: int = DEFAULT_SOCKET_MODE
    http_address: tuple[str, int] | None = None
    milter: str | None = None
    """libmilter's connection: inet:PORT@HOST, inet6:PORT@HOST or unix:PATH."""
    milter_on_error: str = "accept"
    workers: int = 1
    allowed_networks: tuple[Network, ...] = LOOPBACK_NETWORKS
    syslog_facility: str | None = None
    """Log lines go to syslog with this facility (server/syslog_lines.py);
    None: to stderr."""
    syslog_socket: str = DEFAULT_SYSLOG_SOCKET

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        if not (self.spamd_address or self.spamd_socket or self.http_address or self.milter):
            raise ValueError("nothing to listen on")


# --------------------------------------------------------------------------
# Parsing and checking the configuration


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT, HOST or :PORT, with HOST an IP address or
    localhost; port 0 picks a free one."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: an IPv6 address in brackets needs the closing ]")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected :PORT after the address")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    host = host or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


def parse_milter(text: str) -> str:
    """libmilter's connection syntax, checked: inet:PORT@HOST (HOST an IP
    address; without @HOST, 127.0.0.1), inet6:PORT@HOST, unix:PATH."""
    kind, colon, rest = text.partition(":")
    kind = kind.lower()
    if not colon or not rest:
        raise ValueError(f"{text!r}: expected inet:PORT@HOST, inet6:PORT@HOST or unix:PATH")
    if kind in ("unix", "local"):
        if not rest.startswith("/"):
            raise ValueError(f"{text!r}: the socket path must be absolute")
        return f"unix:{rest}"
    if kind not in ("inet", "inet6"):
        raise ValueError(f"{text!r}: unknown kind {kind!r}; use inet, inet6 or unix")
    port, _, host = rest.partition("@")
    host = host or ("127.0.0.1" if kind == "inet" else "::1")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if (address.version == 6) != (kind == "inet6"):
        raise ValueError(f"{text!r}: use inet for IPv4 and inet6 for IPv6 addresses")
    return f"{kind}:{int(port)}@{host}"


def parse_allowed_ips(values: Iterable[str]) -> tuple[Network, ...]:
    """spamd's -A syntax: comma-separated addresses, CIDR ranges, IPv4
    prefixes with a trailing dot ("10."), IPv6 in brackets or not."""
    networks: list[Network] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            text = item.replace("[", "").replace("]", "")
            if text.endswith(".") and ":" not in text:
                octets = text.rstrip(".").split(".")
                if not 1 <= len(octets) <= 3:
                    raise ValueError(f"{item!r}: a prefix has 1 to 3 octets")
                text = ".".join(octets + ["0"] * (4 - len(octets))) + f"/{8 * len(octets)}"
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or range (hostnames are not supported)"
                ) from None
    if not networks:
        raise ValueError("no address given")
    return tuple(networks)


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def milter_host(connection: str) -> str | None:
    if connection.startswith("unix:"):
        return None
    return connection.rpartition("@")[2]


def check_listeners(config: ServeConfig, allowed_given: bool) -> None:
    """Loopback only, unless --allowed-ips says who else may connect."""
    for name, address in (("--listen", config.spamd_address), ("--http", config.http_address)):
        if address and not is_loopback(address[0]) and not allowed_given:
            raise ServeError(
                f"{name} {address[0]} is not a loopback address: say which clients may "
                "connect with --allowed-ips (as spamd's -A)"
            )
    host = milter_host(config.milter) if config.milter else None
    if host is not None and not is_loopback(host):
        raise ServeError(
            f"--milter {config.milter}: libmilter cannot restrict which hosts connect, so "
            "the milter listens on a loopback address or a Unix socket only"
        )


def require_extras(config: ServeConfig) -> None:
    """The optional libraries the chosen listeners need (the spamd protocol
    needs none), or a MissingExtraError that says which extra to install."""
    from spamcli import extras
    from spamcli.errors import MissingExtraError

    if config.http_address is not None:
        extras.require("serve --http", SERVE_EXTRA, ["aiohttp"])
    if config.milter is not None and not extras.is_installed("Milter"):
        raise MissingExtraError(
            f"serve --milter needs pymilter, which is not installed: "
            f"pip install 'spamcli[{SERVE_EXTRA}]' (it builds against libmilter-dev)"
        )


def describe(config: ServeConfig) -> list[str]:
    """What the daemon would do, after loading the model to check it; one
    line each. Raises ServeError or ModelError."""
    require_extras(config)
    if config.spamd_socket is not None:
        folder = config.spamd_socket.parent
        if not folder.is_dir():
            raise ServeError(f"--socket {config.spamd_socket}: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ServeError(f"--socket {config.spamd_socket}: cannot create files in {folder}")
    service = ScanService(config.settings, config.limits, Stats(), log=lambda line: None)
    model = service.model
    cutoffs = model.cutoffs
    if config.syslog_facility is not None:  # the syslog socket can be reached
        SyslogLines(config.syslog_facility, config.syslog_socket).close()
    lines = [
        f"model: {config.settings.model_dir} ({model.description})",
        f"spam cut-off: {cutoffs.spam:.6f} = 5.0 points; ham cut-off: {cutoffs.ham:.6f}",
    ]
    if config.spamd_address:
        lines.append(f"spamd: {_address_text(config.spamd_address)}")
    if config.spamd_socket:
        lines.append(f"spamd: unix:{config.spamd_socket} (mode {config.socket_mode:04o})")
    if config.http_address:
        lines.append(f"http: {_address_text(config.http_address)}")
    if config.milter:
        lines.append(f"milter: {config.milter} (on error: {config.milter_on_error})")
    limits = config.limits
    lines.append(
        f"workers: {config.workers}; allowed clients: "
        + ", ".join(str(network) for network in config.allowed_networks)
    )
    lines.append(
        f"limits: messages up to {limits.max_message_bytes} bytes, {limits.max_connections} "
        f"connections, idle timeout {limits.idle_timeout:g} s, read timeout "
        f"{limits.read_timeout:g} s; learning {'on' if config.settings.allow_learning else 'off'}"
    )
    lines.append(
        f"log: syslog, facility {config.syslog_facility}, {config.syslog_socket}"
        if config.syslog_facility
        else "log: stderr"
    )
    return lines


def open_log(config: ServeConfig) -> Callable[[str], None]:
    """Where this process's log lines go: syslog, made anew in each
    process (its pid goes in the tag), or stderr. Raises ServeError when
    the syslog socket cannot be reached."""
    if config.syslog_facility is None:
        return stderr_line
    return SyslogLines(config.syslog_facility, config.syslog_socket)


def _address_text(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------
# Listening sockets


@dataclass
class Listeners:
    spamd: list[socket.socket] = field(default_factory=list)
    http: list[socket.socket] = field(default_factory=list)
    unix_path: Path | None = None

    def all(self) -> list[socket.socket]:
        return [*self.spamd, *self.http]

    def close(self) -> None:
        for listener in self.all():
            listener.close()
        if self.unix_path is not None:
            with contextlib.suppress(OSError):
                self.unix_path.unlink()

    def names(self) -> list[str]:
        names = []
        for kind, sockets in (("spamd", self.spamd), ("http", self.http)):
            for listener in sockets:
                address = listener.getsockname()
                if listener.family == socket.AF_UNIX:
                    names.append(f"{kind}=unix:{address}")
                else:
                    names.append(f"{kind}={_address_text((address[0], address[1]))}")
        return names


def open_listeners(config: ServeConfig) -> Listeners:
    listeners = Listeners()
    try:
        if config.spamd_address:
            listeners.spamd.append(_tcp_listener(config.spamd_address, "--listen"))
        if config.spamd_socket:
            listeners.spamd.append(_unix_listener(config.spamd_socket, config.socket_mode))
            listeners.unix_path = config.spamd_socket
        if config.http_address:
            listeners.http.append(_tcp_listener(config.http_address, "--http"))
    except BaseException:
        listeners.close()
        raise
    return listeners


def _tcp_listener(address: tuple[str, int], option: str) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as error:
        raise ServeError(
            f"{option} {_address_text(address)}: cannot listen: {error.strerror or error}"
        ) from None
    listener.setblocking(False)
    return listener


def _unix_listener(path: Path, mode: int) -> socket.socket:
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ServeError(f"--socket {path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a socket nobody listens on any more
        else:
            raise ServeError(f"--socket {path}: another daemon is listening on it")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Created with the mode asked for, not widened afterwards: no moment
        # in which anyone may connect.
        previous = os.umask(0o777 & ~mode)
        try:
            listener.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, mode)
        listener.listen(LISTEN_BACKLOG)
    except OSError as error:
        listener.close()
        raise ServeError(f"--socket {path}: cannot listen: {error.strerror or error}") from None
    listener.setblocking(False)
    return listener


# --------------------------------------------------------------------------
# A scan worker: spamd and HTTP on one event loop


class _TrackedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one accepted connection, with word of its end."""

    def __init__(self, inner: asyncio.Protocol, closed: asyncio.Future[None]) -> None:
        self.inner = inner
        self.closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.inner.connection_lost(exc)
        finally:
            if not self.closed.done():
                self.closed.set_result(None)


class AsyncWorker:
    """Serves spamd and HTTP connections on the given listening sockets
    until told to stop; then finishes the requests in flight."""

    def __init__(
        self,
        service: ScanService,
        spamd_sockets: list[socket.socket],
        http_sockets: list[socket.socket],
        allowed_networks: tuple[Network, ...],
        capacity: int,
    ) -> None:
        self.service = service
        self.spamd_sockets = spamd_sockets
        self.http_sockets = http_sockets
        self.allowed_networks = allowed_networks
        self.capacity = capacity
        self.connections: set[asyncio.Task[None]] = set()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # aiohttp's protocol factory (web.Server), once run() has set it up.
        self.http_server: Any = None

    def stop(self) -> None:
        """Ask the worker to stop; safe from any thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def reload(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._reload_soon)

    async def run(
        self,
        control_fd: int | None = None,
        ready: Callable[[], None] | None = None,
        signals: bool = False,
        batch_log: bool = False,
    ) -> None:
        """Serve until stopped. ``batch_log``: the service's log lines go to
        stderr in batches (core.BatchedLog), as a worker process writes them."""
        if not batch_log:
            await self._serve(control_fd, ready, signals)
            return
        log = self.service.log = BatchedLog(asyncio.get_running_loop())
        try:
            await self._serve(control_fd, ready, signals)
        finally:
            log.close()
            self.service.log = stderr_line

    async def _serve(
        self, control_fd: int | None, ready: Callable[[], None] | None, signals: bool
    ) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.gate = asyncio.Semaphore(self.capacity)
        self.scan_executor = ThreadPoolExecutor(1, thread_name_prefix="spamcli-scan")
        self.learn_executor = ThreadPoolExecutor(1, thread_name_prefix="spamcli-learn")
        if signals:
            loop.add_signal_handler(signal.SIGTERM, self._stop.set)
            loop.add_signal_handler(signal.SIGINT, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        if control_fd is not None:
            os.set_blocking(control_fd, False)
            loop.add_reader(control_fd, self._on_control, control_fd)
        runner = None
        if self.http_sockets:
            from aiohttp import web

            from spamcli.server.http import make_application, runner_options

            application = make_application(self.service, self._offload_scan, self._offload_learn)
            runner = web.AppRunner(application, **runner_options(self.service))
            await runner.setup()
            self.http_server = runner.server
        accepting = [
            asyncio.create_task(self._accept(listener, self._serve_spamd))
            for listener in self.spamd_sockets
        ] + [
            asyncio.create_task(self._accept(listener, self._serve_http))
            for listener in self.http_sockets
        ]
        if ready is not None:
            ready()
        try:
            await self._stop.wait()
        finally:
            for task in accepting:
                task.cancel()
            await asyncio.gather(*accepting, return_exceptions=True)
            if control_fd is not None:
                loop.remove_reader(control_fd)
            timeout = self.service.limits.shutdown_timeout
            waiting: list[Awaitable[Any]] = []
            if self.connections:
                waiting.append(asyncio.wait(set(self.connections), timeout=timeout))
            if runner is not None:
                waiting.append(runner.cleanup())
            await asyncio.gather(*waiting, return_exceptions=True)
            self.scan_executor.shutdown(wait=True)
            self.learn_executor.shutdown(wait=True)

    def _on_control(self, control_fd: int) -> None:
        try:
            data = os.read(control_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or b"s" in data:
            assert self._stop is not None
            self._stop.set()
        elif b"r" in data:
            self._reload_soon()

    def _reload_soon(self) -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _reload_quietly, self.service)

    async def _offload_scan(self, function: Callable[[], Any], size: int) -> Any:
        """Scan a message of SIZE bytes: on the event loop if it is small,
        else in the scan thread, so that a large one does not hold up the
        other connections."""
        if size <= INLINE_SCAN_BYTES:
            return function()
        return await asyncio.get_running_loop().run_in_executor(self.scan_executor, function)

    async def _offload_learn(self, function: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.learn_executor, function)

    async def _accept(
        self, listener: socket.socket, serve: Callable[[socket.socket], Awaitable[None]]
    ) -> None:
        loop = asyncio.get_running_loop()
        stats = self.service.stats
        while True:
            # At the cap, nothing more is accepted: new clients wait in the
            # kernel's listen queue, and memory stays bounded.
            await self.gate.acquire()
            try:
                connection, address = await loop.sock_accept(listener)
            except asyncio.CancelledError:
                self.gate.release()
                raise
            except OSError as error:  # out of descriptors, or a connection reset early
                self.gate.release()
                self.service.log(f"spamcli serve: accept failed: {error}")
                await asyncio.sleep(0.1)
                continue
            if not self._allowed(connection, address):
                stats.count("refused", "not allowed")
                self.service.log(f"spamcli serve: refused a connection from {address[0]}")
                connection.close()
                self.gate.release()
                continue
            task = asyncio.create_task(self._run_connection(serve, connection))
            self.connections.add(task)
            task.add_done_callback(self.connections.discard)

    def _allowed(self, connection: socket.socket, address: Any) -> bool:
        if connection.family == socket.AF_UNIX:
            return True  # the socket file's permissions decide
        peer = ipaddress.ip_address(address[0].split("%")[0])
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return any(peer in network for network in self.allowed_networks)

    async def _run_connection(
        self, serve: Callable[[socket.socket], Awaitable[None]], connection: socket.socket
    ) -> None:
        stats = self.service.stats
        stats.count("open_connections")
        try:
            await serve(connection)
        except Exception as error:  # one connection's failure is never the daemon's
            self.service.log(f"spamcli serve: connection failed: {error!r}")
        finally:
            stats.count("open_connections", amount=-1)
            self.gate.release()

    async def _serve_spamd(self, connection: socket.socket) -> None:
        from spamcli.server.spamd import serve_connection

        reader, writer = await asyncio.open_connection(
            sock=connection, limit=self.service.limits.max_line_bytes
        )
        await serve_connection(
            reader, writer, self.service, self._offload_scan, self._offload_learn
        )

    async def _serve_http(self, connection: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        await loop.connect_accepted_socket(
            lambda: _TrackedProtocol(self.http_server(), closed), sock=connection
        )
        await closed


def _reload_quietly(service: ScanService) -> None:
    with contextlib.suppress(ModelError):  # logged by reload; the old model serves
        service.reload()


# --------------------------------------------------------------------------
# The main process and its workers


@dataclass
class _Child:
    slot: int
    kind: str  # "scan" or "milter"
    pid: int = 0
    control: int = -1
    status: int = -1
    started: float = 0.0
    ready: bool = False


class Supervisor:
    def __init__(self, config: ServeConfig, listeners: Listeners, log: Callable[[str], None]):
        self.config = config
        self.listeners = listeners
        self.log = log
        kinds = ["scan"] * config.workers + (["milter"] if config.milter else [])
        self.children = [_Child(slot, kind) for slot, kind in enumerate(kinds)]
        self.stats = Stats(len(self.children))
        self.stopping = False
        self.restarts: list[float] = []

    def run(self) -> int:
        handled = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
        try:
            for child in self.children:
                self._spawn(child)
            if not self._wait_ready():
                self._stop_all()
                return 1
            self.log(
                "spamcli serve: ready: "
                + " ".join(
                    [
                        *self.listeners.names(),
                        *([f"milter={self.config.milter}"] if self.config.milter else []),
                        f"workers={self.config.workers}",
                        f"pid={os.getpid()}",
                    ]
                )
            )
            notify_systemd("READY=1")
            while True:
                info = signal.sigtimedwait(handled, 1.0)
                if info is None or info.si_signo == signal.SIGCHLD:
                    if not self._reap_and_restart():
                        self._stop_all()
                        return 1
                elif info.si_signo == signal.SIGHUP:
                    self.log("spamcli serve: SIGHUP: reloading the model")
                    self._tell_all(b"r")
                else:
                    name = signal.Signals(info.si_signo).name
                    self.log(f"spamcli serve: {name}: finishing the requests in flight")
                    notify_systemd("STOPPING=1")
                    self._stop_all()
                    return 0
        finally:
            self.listeners.close()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)

    def _spawn(self, child: _Child) -> None:
        control_read, control_write = os.pipe()
        status_read, status_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(control_write)
                os.close(status_read)
                for other in self.children:
                    for descriptor in (other.control, other.status):
                        if descriptor >= 0:
                            with contextlib.suppress(OSError):
                                os.close(descriptor)
                code = _run_child(self, child, control_read, status_write)
            except BaseException as error:
                message = "".join(traceback.format_exception_only(type(error), error)).strip()
                with contextlib.suppress(OSError):
                    os.write(status_write, b"E" + message.encode("utf-8", "replace"))
                if not isinstance(error, ServeError | ModelError):
                    traceback.print_exc()
            finally:
                os._exit(code)
        os.close(control_read)
        os.close(status_write)
        child.pid, child.control, child.status = pid, control_write, status_read
        child.started, child.ready = time.monotonic(), False

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not all(child.ready for child in self.children):
            pending = {child.status: child for child in self.children if not child.ready}
            left = deadline - time.monotonic()
            if left <= 0:
                self.log("spamcli serve: the workers did not start in time")
                return False
            readable, _, _ = select.select(list(pending), [], [], min(left, 1.0))
            for descriptor in readable:
                child = pending[descriptor]
                data = os.read(descriptor, 4096)
                if data.startswith(b"R"):
                    child.ready = True
                    continue
                reason = data[1:].decode("utf-8", "replace") if data else "it exited"
                self.log(f"spamcli serve: the {child.kind} worker could not start: {reason}")
                return False
        return True

    def _reap_and_restart(self) -> bool:
        """Restart workers that died; False when they keep dying."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return True
            child = next((child for child in self.children if child.pid == pid), None)
            if child is None:
                continue
            self._forget(child)
            self.stats.release_slot(child.slot)
            self.log(
                f"spamcli serve: the {child.kind} worker (pid {pid}) {_exit_text(status)}; "
                "starting it again"
            )
            now = time.monotonic()
            self.restarts = [moment for moment in self.restarts if now - moment < RESTART_WINDOW]
            self.restarts.append(now)
            if len(self.restarts) > MAX_RESTARTS:
                self.log(
                    f"spamcli serve: workers died {len(self.restarts)} times in "
                    f"{RESTART_WINDOW:g} s; stopping"
                )
                return False
            time.sleep(0.5)
            self._spawn(child)
            if not self._wait_ready():
                return False

    def _tell_all(self, command: bytes) -> None:
        for child in self.children:
            if child.control >= 0:
                with contextlib.suppress(OSError):
                    os.write(child.control, command)

    def _stop_all(self) -> None:
        self.stopping = True
        self._tell_all(b"s")
        deadline = time.monotonic() + self.config.limits.shutdown_timeout + 5.0
        alive = {child.pid: child for child in self.children if child.pid}
        while alive and time.monotonic() < deadline:
            for pid in list(alive):
                try:
                    done, _status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self._forget(alive.pop(pid))
            if alive:
                time.sleep(0.05)
        for pid, child in alive.items():
            self.log(f"spamcli serve: the {child.kind} worker (pid {pid}) did not stop; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._forget(child)

    def _forget(self, child: _Child) -> None:
        for descriptor in (child.control, child.status):
            if descriptor >= 0:
                with contextlib.suppress(OSError):
                    os.close(descriptor)
        child.pid, child.control, child.status = 0, -1, -1


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _run_child(supervisor: Supervisor, child: _Child, control_fd: int, status_fd: int) -> int:
    config = supervisor.config
    stats = supervisor.stats
    stats.use_slot(child.slot)
    for handled in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(handled, signal.SIG_DFL)

    def ready() -> None:
        os.write(status_fd, b"R")
        os.close(status_fd)

    if child.kind == "milter":
        for listener in supervisor.listeners.all():
            listener.close()
        # libmilter's signal thread takes HUP, TERM and INT; they stay
        # blocked in every other thread, the control thread below included.
        signal.pthread_sigmask(signal.SIG_SETMASK, {signal.SIGHUP, signal.SIGTERM, signal.SIGINT})
        _run_milter_child(config, stats, control_fd, ready)
        return 0
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    service = ScanService(config.settings, config.limits, stats, log=open_log(config))
    service.warm_up()
    capacity = max(1, config.limits.max_connections // config.workers)
    worker = AsyncWorker(
        service,
        supervisor.listeners.spamd,
        supervisor.listeners.http,
        config.allowed_networks,
        capacity,
    )
    # Lines to stderr are written in batches; to syslog, one datagram each.
    batch_log = config.syslog_facility is None
    asyncio.run(worker.run(control_fd=control_fd, ready=ready, signals=True, batch_log=batch_log))
    return 0


def _run_milter_child(
    config: ServeConfig, stats: Stats, control_fd: int, ready: Callable[[], None]
) -> None:
    from spamcli.server import milter as milter_front

    assert config.milter is not None
    service = ScanService(config.settings, config.limits, stats, log=open_log(config))
    service.warm_up()
    front = milter_front.MilterFrontEnd(service, config.milter_on_error)

    def control() -> None:
        while True:
            try:
                data = os.read(control_fd, 64)
            except OSError:
                data = b""
            if not data or b"s" in data:
                milter_front.stop()
                return
            if b"r" in data:
                _reload_quietly(service)

    threading.Thread(target=control, name="spamcli-control", daemon=True).start()
    milter_front.run(front, config.milter, config.socket_mode, ready)


def notify_systemd(message: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, if set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notifier:
            notifier.connect(address)
            notifier.sendall(message.encode())
    except OSError:
        pass


def serve(config: ServeConfig, log: Callable[[str], None] | None = None) -> int:
    """Run the daemon until SIGTERM; the exit status. LOG: where the main
    process's lines go (by default as the configuration says, open_log).
    Raises ServeError or ModelError when it cannot start."""
    require_extras(config)
    if log is None:
        log = open_log(config)
    # The model is loaded once here to fail early and clearly; the workers
    # load their own after the fork.
    ScanService(config.settings, config.limits, Stats(), log=lambda line: None)
    listeners = open_listeners(config)
    return Supervisor(config, listeners, log).run()
