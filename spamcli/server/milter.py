"""The milter front end, for Postfix and Sendmail, on pymilter (libmilter).

Each SMTP transaction's header and body are collected (up to the size
limit), scanned at the end of data, and the message is given the three
header fields `spamcli filter` adds, with the same values: any fields of
those names the message already carries are deleted first, and with a
subject tag the spam's Subject is tagged the filter's way. With
--reject-above P, a message whose spam probability reaches P is rejected
at the end of data with ``550 5.7.1`` and the reason instead.

Fail open: when anything goes wrong (the model cannot score, an error in
this code), the message is accepted unchanged and one line on stderr says
why; with --milter-on-error tempfail it is refused with ``451 4.7.1``, so
that the sending MTA tries again later. A message over the size limit is
accepted unchanged, unscanned; so is every message of a connection over
the connection cap.

libmilter runs one thread per connection and owns the process's signals
(SIGHUP and SIGTERM stop it, SIGINT aborts it), so the daemon runs the
milter in a process of its own and talks to it through a pipe
(server/daemon.py). Scans go through ScanService, which serialises them.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import Milter
import milter as libmilter

from spamcli.server.core import ScanResult, ScanService

PROTOCOL = "milter"
ON_ERROR_ACCEPT, ON_ERROR_TEMPFAIL = "accept", "tempfail"
ON_ERROR_CHOICES = (ON_ERROR_ACCEPT, ON_ERROR_TEMPFAIL)
# libmilter's timeout for the MTA's side of a connection: an SMTP session
# may wait minutes for its client (Postfix's smtpd_timeout is 300 s).
MTA_TIMEOUT_SECONDS = 600
_SUBJECT = re.compile(rb"(?im)^subject[ \t]*:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class MilterFrontEnd:
    """What every milter session shares: the service, the error policy and
    the count of open sessions."""

    service: ScanService
    on_error: str = ON_ERROR_ACCEPT
    sessions: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, not {self.on_error!r}")

    def open_session(self) -> bool:
        """Count a new session in; False when over the connection cap."""
        with self._lock:
            self.sessions += 1
            over = self.sessions > self.service.limits.max_connections
        self.service.stats.count("open_connections")
        if over:
            self.service.stats.count("refused", "over capacity")
        return not over

    def close_session(self) -> None:
        with self._lock:
            self.sessions -= 1
        self.service.stats.count("open_connections", amount=-1)

    def make_session(self) -> SpamcliMilter:
        return SpamcliMilter(self)


class SpamcliMilter(Milter.Base):  # type: ignore[misc]
    """One milter connection (libmilter calls it from its own thread)."""

    def __init__(self, front: MilterFrontEnd) -> None:
        self.front = front
        self.service = front.service
        self.counted = False
        self.bypass = False
        self._reset()

    def _reset(self) -> None:
        self.message = bytearray()
        self.size = 0
        self.over_limit = False
        self.names_seen: dict[str, int] = {}
        self.has_subject = False

    # ----------------------------------------------------------------------
    # Callbacks

    def connect(self, hostname: str, family: Any, hostaddr: Any) -> int:
        self.counted = True
        if not self.front.open_session():
            self.bypass = True
            self.service.log("spamcli serve: milter connection over the cap, accepted unscanned")
            return int(Milter.ACCEPT)
        return int(Milter.CONTINUE)

    @Milter.noreply  # type: ignore[misc]
    def envfrom(self, sender: str, *parameters: str) -> int:
        self._reset()
        return int(Milter.CONTINUE)

    @Milter.decode("bytes")  # type: ignore[misc]
    @Milter.noreply  # type: ignore[misc]
    def header(self, name: str | bytes, value: bytes) -> int:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "surrogateescape")
        lowered = name.lower()
        self.names_seen[lowered] = self.names_seen.get(lowered, 0) + 1
        if lowered == "subject":
            self.has_subject = True
        self._keep(name.encode("utf-8", "surrogateescape") + b": " + value + b"\r\n")
        return int(Milter.CONTINUE)

    @Milter.noreply  # type: ignore[misc]
    def eoh(self) -> int:
        self._keep(b"\r\n")
        return int(Milter.CONTINUE)

    def body(self, chunk: bytes) -> int:
        self._keep(chunk)
        if self.over_limit and self._protocol & Milter.P_SKIP:
            return int(Milter.SKIP)  # the rest of the body is not wanted
        return int(Milter.CONTINUE)

    def eom(self) -> int:
        started = time.monotonic()
        try:
            return self._end_of_message(started)
        except Exception as error:
            return self._failed(error, started)
        finally:
            self._reset()

    def abort(self) -> int:
        self._reset()
        return int(Milter.CONTINUE)

    def close(self) -> int:
        if self.counted:
            self.counted = False
            self.front.close_session()
        return int(Milter.CONTINUE)

    # ----------------------------------------------------------------------

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.over_limit:
            return
        if self.size > self.service.limits.max_message_bytes:
            self.over_limit = True
            self.message = bytearray()  # never held whole
            return
        self.message += data

    def _end_of_message(self, started: float) -> int:
        service = self.service
        if self.over_limit:
            result = service.unscanned(self.size)
            service.finish(PROTOCOL, "message", time.monotonic() - started, result=result)
            return int(Milter.ACCEPT)
        tag = service.settings.subject_tag
        result = service.scan(bytes(self.message), mark=tag is not None)
        if result.reject:
            self.setreply(
                "550",
                "5.7.1",
                _reply_text(
                    f"spamcli: message rejected as spam (spam probability "
                    f"{result.spam_probability:.4f}, {result.shown_points()} points)"
                ),
            )
            service.finish(
                PROTOCOL, "message", time.monotonic() - started, result=result, note="action=reject"
            )
            return int(Milter.REJECT)
        self._mark(result)
        service.finish(
            PROTOCOL, "message", time.monotonic() - started, result=result, note="action=accept"
        )
        return int(Milter.ACCEPT)

    def _mark(self, result: ScanResult) -> None:
        """The header changes that make the message the filter's output."""
        for name, _value in result.fields:
            # Highest index first: each deletion renumbers the later ones.
            for index in range(self.names_seen.get(name.lower(), 0), 0, -1):
                self.chgheader(name, index, None)
        for position, (name, value) in enumerate(result.fields):
            self.addheader(name, value, position)
        if result.is_spam and result.marked is not None:
            subject = _marked_subject(b"".join(result.marked.pieces))
            if subject is None:
                return
            text = subject.decode("utf-8", "surrogateescape")
            if self.has_subject:
                self.chgheader("Subject", 1, text)
            else:
                self.addheader("Subject", text, len(result.fields))

    def _failed(self, error: BaseException, started: float) -> int:
        reason = " ".join(str(error).split()) or type(error).__name__
        self.service.protocol_error(PROTOCOL, f"message passed unscanned: {reason}", 0.0)
        self.service.stats.request(PROTOCOL, "message", time.monotonic() - started)
        if self.front.on_error == ON_ERROR_TEMPFAIL:
            with contextlib.suppress(Exception):  # the 451 goes out without its text
                self.setreply(
                    "451", "4.7.1", "spamcli: the message could not be classified, try again later"
                )
            return int(Milter.TEMPFAIL)
        return int(Milter.ACCEPT)


def _marked_subject(marked: bytes) -> bytes | None:
    """The first Subject of a marked message's header block, unfolded as
    the filter left it (it tags the first one)."""
    end = _HEADER_END.search(marked)
    header = marked[: end.start() + 1] if end else marked
    match = _SUBJECT.search(header)
    return match.group(1) if match else None


def _reply_text(text: str) -> str:
    # libmilter reads '%' in a reply as a format character.
    return text.replace("%", "%%")


def run(
    front: MilterFrontEnd,
    connection: str,
    socket_mode: int | None,
    ready: Callable[[], None],
    name: str = "spamcli",
) -> None:
    """Listen on CONNECTION (libmilter's "inet:PORT@HOST" or "unix:PATH")
    and serve until stopped (``stop``, or SIGTERM to this process); then
    wait for the sessions in flight, for up to the shutdown timeout."""
    Milter.factory = front.make_session
    libmilter.set_connect_callback(Milter.connect_callback)
    libmilter.set_envfrom_callback(
        lambda context, *values: context.getpriv().envfrom_bytes(*values)
    )
    libmilter.set_header_callback(
        lambda context, field_name, value: context.getpriv().header_bytes(field_name, value)
    )
    libmilter.set_eoh_callback(lambda context: context.getpriv().eoh())
    libmilter.set_body_callback(lambda context, chunk: context.getpriv().body(chunk))
    libmilter.set_eom_callback(lambda context: context.getpriv().eom())
    libmilter.set_abort_callback(lambda context: context.getpriv().abort())
    libmilter.set_close_callback(Milter.close_callback)
    policy = Milter.TEMPFAIL if front.on_error == ON_ERROR_TEMPFAIL else Milter.ACCEPT
    libmilter.set_exception_policy(policy)
    libmilter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS)
    libmilter.setconn(connection)
    libmilter.settimeout(MTA_TIMEOUT_SECONDS)
    libmilter.register(name, negotiate=Milter.negotiate_callback)
    previous = None
    if socket_mode is not None and connection.startswith(("unix:", "local:")):
        previous = os.umask(0o777 & ~socket_mode)
    try:
        libmilter.opensocket(True)  # True: replace a stale socket file
    finally:
        if previous is not None:
            os.umask(previous)
    ready()
    libmilter.main()
    deadline = time.monotonic() + front.service.limits.shutdown_timeout
    while front.sessions > 0 and time.monotonic() < deadline:
        time.sleep(0.05)


def stop() -> None:
    """Stop accepting connections (libmilter's smfi_stop); safe from any thread."""
    libmilter.stop()
