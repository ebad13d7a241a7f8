"""The daemon's log lines sent to syslog (`spamcli serve --syslog FACILITY`),
as spamd's ``--syslog`` sends its own.

Each line is one datagram to the syslog socket (/dev/log, or
``--syslog-socket PATH``) in the shape every syslog daemon reads, RFC 3164's
``<PRIORITY>TAG[PID]: TEXT`` (rsyslog, syslog-ng and journald's /dev/log
alike), at priority info, tagged ``spamcli-serve`` and the process's pid:
each worker says which it is. The line's own "spamcli serve: " is left out,
the tag says it.

Written here rather than with logging.handlers.SysLogHandler, whose
socket blocks: a syslog daemon that stops reading would stop a worker at
its next log line, with mail waiting. This socket never blocks. A line the
syslog daemon cannot take at once is dropped (stderr says so once, and
syslog how many once it takes lines again); a socket that went away (the
syslog daemon restarted) is connected again at the next line.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from spamcli.errors import ServeError
from spamcli.server.core import stderr_line

DEFAULT_SOCKET = "/dev/log"
TAG = "spamcli-serve"
# syslog(3)'s facility numbers (<syslog.h>): the ones a mail filter logs to.
FACILITIES = {
    "mail": 2,
    "daemon": 3,
    "user": 1,
    **{f"local{number}": 16 + number for number in range(8)},
}
_INFO = 6
# The longest datagram sent: a longer line is cut (the daemon's lines are
# short; a client's bytes in them are cut to 120 characters already).
MAX_LINE_BYTES = 4096
_PREFIX = "spamcli serve: "


class SyslogLines:
    """A log callable (one line a call) that sends to syslog; safe from
    any thread. Made in the process that logs: the pid goes in the tag."""

    def __init__(self, facility: str, address: str = DEFAULT_SOCKET) -> None:
        if facility not in FACILITIES:
            raise ValueError(f"unknown syslog facility {facility!r}")
        self.address = address
        self.facility = facility
        self._header = f"<{FACILITIES[facility] * 8 + _INFO}>{TAG}[{os.getpid()}]: "
        self._lock = threading.Lock()
        self._dropped = 0
        try:
            self._socket: socket.socket | None = self._connect()
        except OSError as error:
            raise ServeError(
                f"--syslog: cannot send to the syslog socket {address}: {error.strerror or error}"
            ) from None

    def __call__(self, line: str) -> None:
        text = line.rstrip("\n").removeprefix(_PREFIX)
        with self._lock:
            if self._send(text) and self._dropped:
                dropped, self._dropped = self._dropped, 0
                self._send(f"{dropped} log lines were dropped while syslog took none")

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _send(self, text: str) -> bool:
        data = (self._header + text).encode("utf-8", "replace")[:MAX_LINE_BYTES]
        for _attempt in range(2):
            try:
                if self._socket is None:
                    self._socket = self._connect()
                self._socket.send(data)
                return True
            except BlockingIOError:
                break  # syslog is behind: the line is dropped, the worker goes on
            except OSError:
                # The syslog daemon restarted (its socket is a new one), or
                # is gone: connect again, once.
                if self._socket is not None:
                    with contextlib.suppress(OSError):
                        self._socket.close()
                    self._socket = None
        self._dropped += 1
        if self._dropped == 1:
            stderr_line(
                f"spamcli serve: syslog ({self.address}) takes no log lines; "
                "dropping them until it does"
            )
        return False

    def _connect(self) -> socket.socket:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            connection.connect(self.address)
            connection.setblocking(False)
        except OSError:
            connection.close()
            raise
        return connection
