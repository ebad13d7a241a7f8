"""Read a descriptor to its end, and write bytes to one whole, whatever its mode.

A mail filter's standard input and output are set up by someone else, and
two of the ways they can be set up lost mail:

* **A non-blocking stdin.** O_NONBLOCK belongs to the open pipe, not to a
  process, so a delivery agent that set it on its end of the pipe sets it on
  ours. A read then fails with EAGAIN (Python's buffered read returns
  ``None``, or what it has so far) whenever the writer is slower than the
  reader: `spamcli filter` took the 128 KiB the pipe held at its first read
  for the whole of a 3 MB message, and exited 0; with the pipe still empty it
  stopped with a TypeError. Here EAGAIN means "wait until it is readable"
  (poll), never the end: only a read of 0 bytes is the end.
* **A raw stdout.** With PYTHONUNBUFFERED=1 (or ``python -u``),
  ``sys.stdout.buffer`` is a raw FileIO whose ``write`` may write part of
  what it is given (a full disk, a file size limit, a full non-blocking pipe)
  and says so only in the count it returns, or returns None for EAGAIN.
  `spamcli filter` ignored the count: under ``ulimit -f 1000`` it wrote the
  first 1,024,000 bytes of a 3 MB message and exited 0. Here a short count
  means "write the rest", EAGAIN means "wait until it is writable", and
  anything else the system refuses is raised, so the caller can say the
  message was not passed on.

Standard library only, and cheap to import (``io`` and ``os`` are loaded
with the interpreter; ``select`` only when a descriptor has to be waited
for): `spamcli filter` is started once per message.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from typing import IO, Any

__all__ = ["read_all", "read_stream", "write_all", "write_stream"]

# The rest of a pipe beyond what is kept is read in pieces of this size and
# dropped; one piece is the only memory it costs.
DRAIN_BYTES = 1 << 20

_POLLIN = 0x001  # select.POLLIN and POLLOUT, the same on every POSIX system,
_POLLOUT = 0x004  # so that select is imported only when a wait is needed.


def read_all(
    descriptor: int,
    keep: int | None = None,
    observe: Callable[[bytes], object] | None = None,
) -> bytes:
    """Everything DESCRIPTOR gives until its end, or only its first KEEP bytes.

    With KEEP, the rest of a pipe is still read, and dropped, so the
    program writing to it is never cut off (a regular file is not read
    further, unless OBSERVE is given). OBSERVE, if given, is called with
    every piece read, in order, kept or dropped (a digest's update, say).
    A non-blocking descriptor is waited on whenever it has nothing to give
    yet. Raises OSError for a read the system refuses.
    """
    raw = io.FileIO(descriptor, "rb", closefd=False)
    if keep is not None:
        return _read_kept(raw, descriptor, keep, observe)
    # FileIO.readall sizes its buffer from fstat and grows it in place, so a
    # 50 MiB message costs 50 MiB, not the 100 a list of pieces joined would.
    # On a blocking descriptor it returns only at the end: reading again
    # would wait for a second end of file, which a terminal gives only after
    # a second Ctrl-D.
    blocking = os.get_blocking(descriptor)
    pieces: list[bytes] = []
    while True:
        data = raw.readall()
        if data is None:  # EAGAIN before anything was read
            _wait(descriptor, _POLLIN)
            continue
        if not data:
            break
        pieces.append(data)  # EAGAIN after some data, or the end
        if observe is not None:
            observe(data)
        if blocking:
            break
    # One piece is returned as it is, without a copy.
    return b"".join(pieces)


def _read_kept(
    raw: io.FileIO, descriptor: int, keep: int, observe: Callable[[bytes], object] | None
) -> bytes:
    pieces: list[bytes] = []
    kept = 0
    while kept < keep:
        data = raw.read(keep - kept)
        if data is None:
            _wait(descriptor, _POLLIN)
            continue
        if not data:
            return b"".join(pieces)
        pieces.append(data)
        kept += len(data)
        if observe is not None:
            observe(data)
    if observe is not None or not raw.seekable():
        while True:
            data = raw.read(DRAIN_BYTES)
            if data is None:
                _wait(descriptor, _POLLIN)
            elif not data:
                break
            elif observe is not None:
                observe(data)
    return b"".join(pieces)


def read_stream(
    stream: IO[bytes],
    keep: int | None = None,
    observe: Callable[[bytes], object] | None = None,
) -> bytes:
    """read_all on STREAM's descriptor; a stream without one (io.BytesIO,
    click's test runner) is read with its own read().

    STREAM must not have been read from: what its buffer holds is not seen.
    """
    try:
        descriptor = stream.fileno()
    except io.UnsupportedOperation:
        return _read_without_descriptor(stream, keep, observe)
    return read_all(descriptor, keep, observe)


def _read_without_descriptor(
    stream: IO[bytes], keep: int | None, observe: Callable[[bytes], object] | None
) -> bytes:
    data = stream.read() if keep is None else stream.read(keep)
    if observe is not None:
        observe(data)
    if keep is not None:
        while rest := stream.read(DRAIN_BYTES):
            if observe is not None:
                observe(rest)
    return data


def write_all(descriptor: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of DATA to DESCRIPTOR, or raise OSError.

    A short count is followed by a write of the rest (whose refusal, EFBIG
    or ENOSPC, is what is raised); a non-blocking descriptor that is full is
    waited on until it takes more. EINTR is retried by Python itself.
    """
    view = memoryview(data).cast("B")
    offset = 0
    while offset < len(view):
        try:
            written = os.write(descriptor, view[offset:])
        except BlockingIOError:
            _wait(descriptor, _POLLOUT)
            continue
        if written <= 0:
            raise OSError(f"the output took none of the last {len(view) - offset} bytes")
        offset += written


def write_stream(stream: IO[bytes] | Any, pieces: Iterable[bytes | bytearray | memoryview]) -> None:
    """Write PIECES, one after the other and whole, to STREAM's descriptor.

    Anything STREAM holds in its buffer is flushed first, so the order is
    kept. A stream without a descriptor (io.BytesIO, click's test runner) is
    written with its own write(), whose counts are checked likewise.
    Raises OSError (or ValueError, for a closed stream) when not every byte
    could be written.
    """
    stream.flush()
    try:
        descriptor = stream.fileno()
    except io.UnsupportedOperation:
        for piece in pieces:
            _write_without_descriptor(stream, piece)
        stream.flush()
        return
    for piece in pieces:
        write_all(descriptor, piece)


def _write_without_descriptor(stream: Any, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    offset = 0
    while offset < len(view):
        written = stream.write(view[offset:])
        if not written:
            raise OSError(f"the output took none of the last {len(view) - offset} bytes")
        offset += written


def _wait(descriptor: int, events: int) -> None:
    """Wait, without a time limit, as a blocking read or write would, until
    DESCRIPTOR is ready for EVENTS (or has hung up, or failed: the read or
    write that follows then says so)."""
    import select

    poller = select.poll()
    poller.register(descriptor, events)
    poller.poll()
