"""The spamd protocol (SpamAssassin's spamc/spamd), so that spamc, Exim and
every other spamd client talk to spamcli unchanged.

Followed from spamd/PROTOCOL and, where the text is silent, from spamd
itself (spamd/spamd.raw, SpamAssassin 4.0), version by version:

* A request is a line ``COMMAND SPAMC/<version>``, headers up to an empty
  line (from protocol 1.1 on; PING and SKIP only from 1.5), then the
  message: Content-length bytes of it, or everything up to the end of the
  stream without one. One request per connection; the answer, then close.
* CHECK: ``SPAMD/1.1 0 EX_OK``, ``Spam: True ; 7.9 / 5.0`` and an empty
  line, whatever the version.
* SYMBOLS, REPORT, REPORT_IFSPAM: the same line and header, then the rule
  names (comma-separated) or the report; from 1.3 on with a
  Content-length header (and the symbols without a line ending, which
  before 1.3 ended in CRLF). REPORT_IFSPAM sends an empty body for
  non-spam, with "True"/"False" as the text says: spamd itself writes
  "Yes"/"No" there, which spamc reads as not spam.
* PROCESS, HEADERS: the message marked exactly as `spamcli filter` marks
  it (HEADERS: its header block only, up to and including the empty line;
  spamc adds the body back). From 1.3 on with Content-length and Spam
  headers, in 1.2 with Content-length only (as Exim's SPAMC/1.2 expects),
  and before 1.2 with no header at all and ``SPAMD/1.0``.
* PING: ``SPAMD/1.5 0 PONG``. SKIP: no answer.
* TELL with Message-class (spam, ham) and Set: local learns; Remove: local
  forgets; the answer has DidSet: local or DidRemove: local when the model
  changed, nothing when it had already learned (or never learned) the
  message, which spamc reports as "Message was already un/learned".
  ``remote`` (reporting to Razor and the like) is never done, so never
  acknowledged. Only with --allow-tell, as spamd.
* Errors, as spamd words them: ``SPAMD/1.0 76 Bad header line: (...)``
  for a malformed request, ``SPAMD/1.0 79 Timeout: (...)``, and ``SPAMD/1.0
  69 Service Unavailable: ...`` when the message cannot be classified, on
  which spamc passes the message through unchanged (its safe fallback), or
  with ``-x -X`` exits 75 so that the MTA retries later.

The score is on the points scale of server/core.py: the spam cut-off is
5.0 points, so ``spamc -c`` exits 1 exactly for spam.

Sizes. A message over the limit (Limits.max_message_bytes, spamc's own
default of 500 KiB) is never held whole: it is read to its end and
dropped as it arrives, then answered unscanned, ``Spam: False ; 0.0 /
5.0`` (HEADERS: the header block, if it lies within the limit). PROCESS
cannot give such a message back without holding it, so it answers
``SPAMD/1.0 65 Data error``, on which spamc passes the message on
unchanged, as it does a message over its own -s limit.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from spamcli.config import HAM, SPAM
from spamcli.errors import ServeError
from spamcli.server.core import LearningDisabled, LearnResult, ScanResult, ScanService

PROTOCOL = "spamd"
SCAN_COMMANDS = ("CHECK", "SYMBOLS", "REPORT", "REPORT_IFSPAM", "PROCESS", "HEADERS")
# sysexits.h codes as spamd names them in its answers.
EX_OK = 0
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_PROTOCOL = 76
EX_TIMEOUT = 79
# Bytes read (and passed on, or discarded) at a time.
CHUNK_BYTES = 64 * 1024
# After an error, what is still sent is read and dropped, up to this much
# and this long, before the connection closes (see Connection._linger).
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024
_REQUEST_LINE = re.compile(
    rb"^(PROCESS|CHECK|SYMBOLS|REPORT_IFSPAM|REPORT|HEADERS|TELL|SKIP|PING) SPAMC/(.*)$"
)
_VERSION = re.compile(r"^\s*(\d+(?:\.\d*)?)")
# The report's table, as SpamAssassin lays it out: "%4s %-22s %s".
_REPORT_ROW = "{points:>4} {rule:<22} {description}"
_HEADER_END = re.compile(rb"\r?\n\r?\n")

Result = TypeVar("Result")
# Runs a blocking call off the event loop (the learn executor).
Offload = Callable[[Callable[[], Result]], Awaitable[Result]]
# Runs a scan of a message of so many bytes, off the event loop or on it
# (AsyncWorker._offload_scan).
ScanOffload = Callable[[Callable[[], Result], int], Awaitable[Result]]


class ProtocolError(Exception):
    """A malformed request; the text goes in spamd's parentheses."""


class TimedOut(Exception):
    """The client took too long."""


@dataclass
class Request:
    command: str
    version: float
    content_length: int | None = None
    compressed: bool = False
    message_class: str | None = None
    set_local: bool = False
    set_remote: bool = False
    remove_local: bool = False
    remove_remote: bool = False


@dataclass(frozen=True)
class Answer:
    """What to send: the status line and headers, then the body's pieces
    (the marked message comes as views of the input, not a copy)."""

    head: bytes
    body: tuple[bytes | memoryview, ...] = ()


class Connection:
    """One client connection, read within the limits, answered once."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: ScanService,
        offload_scan: ScanOffload[Any],
        offload_learn: Offload[Any],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.service = service
        self.limits = service.limits
        self.offload_scan = offload_scan
        self.offload_learn = offload_learn
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadline: float | None = None  # set once the request line is in
        self.linger = False  # the request was cut short: drain before closing

    async def serve(self) -> None:
        command = "other"
        try:
            line = await self._read_line(first=True)
            if not line:
                return  # connected and closed: nothing asked, nothing to answer
            request = parse_request_line(line)
            command = request.command
            answer = await self._answer(request)
            if answer is not None:
                await self._send(answer)
        except ProtocolError as error:
            await self._fail(f"SPAMD/1.0 {EX_PROTOCOL} Bad header line: ({error})", str(error))
        except TimedOut as error:
            await self._fail(f"SPAMD/1.0 {EX_TIMEOUT} Timeout: ({error})", str(error))
        except (ConnectionError, asyncio.IncompleteReadError):
            self.service.protocol_error(PROTOCOL, f"{command}: connection lost", self._elapsed())
        finally:
            await self._close()

    # ----------------------------------------------------------------------
    # Commands

    async def _answer(self, request: Request) -> Answer | None:
        if request.command in ("PING", "SKIP"):
            if request.version >= 1.5:
                await self._read_headers(request)
            self.service.finish(PROTOCOL, request.command, self._elapsed())
            return Answer(b"SPAMD/1.5 0 PONG\r\n") if request.command == "PING" else None
        if request.version > 1.0:
            await self._read_headers(request)
        if request.command == "TELL":
            return await self._tell(request)
        return await self._scan(request)

    async def _scan(self, request: Request) -> Answer:
        command = request.command
        raw, over = await self._read_body(request, keep_over=command == "HEADERS")
        if over is not None:
            return await self._answer_unscanned(request, over)
        explain = command in ("REPORT", "REPORT_IFSPAM")
        mark = command in ("PROCESS", "HEADERS")
        top = self.limits.explain_top if explain else 0
        try:
            result: ScanResult = await self.offload_scan(
                lambda: self.service.scan(raw, explain_top=top, mark=mark), len(raw)
            )
        except Exception as error:  # the message cannot be classified: spamc passes it on
            return self._unavailable(command, error)
        answer = render_scan(request, result)
        self.service.finish(PROTOCOL, command, self._elapsed(), result=result)
        return answer

    async def _answer_unscanned(self, request: Request, over: Oversize) -> Answer:
        """A message over the size limit: unscanned, and never held whole.
        It is read to its end first: a client sends the whole message before
        it reads (spamc and Exim do), so an answer written while it still
        sends would fill both sockets' buffers and stall the two."""
        command = request.command
        await self._discard(over)
        if command == "PROCESS":
            # Passing it back would mean holding it whole: an error instead,
            # on which spamc passes the message on unchanged, as it passes a
            # message over its own -s limit.
            self.service.unscanned(over.size)
            reason = (
                f"a message larger than {self.limits.max_message_bytes} bytes is not "
                "scanned: pass it on unchanged"
            )
            self.service.protocol_error(PROTOCOL, f"PROCESS: {reason}", self._elapsed())
            return Answer(f"SPAMD/1.0 {EX_DATAERR} Data error: ({reason})\r\n".encode())
        result = self.service.unscanned(over.size)
        spam_header = render_spam_header(command, result)
        if command == "HEADERS":
            match = _HEADER_END.search(over.start)
            if request.compressed or match is None:
                raise ProtocolError(
                    f"no end of the header block in the first {self.limits.max_message_bytes} bytes"
                )
            headers = bytes(over.start[: match.end()])
            head = _status_and_headers(request.version, len(headers), spam_header)
            self.service.finish(PROTOCOL, command, self._elapsed(), result=result)
            return Answer(head, (headers,))
        answer = render_scan(request, result)
        self.service.finish(PROTOCOL, command, self._elapsed(), result=result)
        return answer

    async def _tell(self, request: Request) -> Answer:
        if request.set_local and request.remove_local:
            raise ProtocolError("Unable to set local and remove local in the same operation.")
        if request.set_remote and request.remove_remote:
            raise ProtocolError("Unable to set remote and remove remote in the same operation.")
        if request.set_local and request.message_class not in (SPAM, HAM):
            raise ProtocolError("Message-class header contains invalid class")
        raw, over = await self._read_body(request, keep_over=False)
        if over is not None:
            await self._discard(over)
            self.service.protocol_error(PROTOCOL, "TELL: message too large", self._elapsed())
            return Answer(
                f"SPAMD/1.0 {EX_DATAERR} Data error: (a message larger than "
                f"{self.limits.max_message_bytes} bytes is not learned)\r\n".encode()
            )
        if not (request.set_local or request.remove_local):
            # Only "remote" was asked for: nothing is reported anywhere.
            self.service.finish(PROTOCOL, "TELL", self._elapsed(), size=len(raw))
            return Answer(b"SPAMD/1.1 0 EX_OK\r\n\r\n")
        forget = request.remove_local
        label = None if forget else request.message_class
        try:
            learned: LearnResult = await self.offload_learn(
                lambda: self.service.learn(raw, label, forget=forget)
            )
        except LearningDisabled:
            self.service.protocol_error(PROTOCOL, "TELL: learning not enabled", self._elapsed())
            return Answer(
                f"SPAMD/1.0 {EX_UNAVAILABLE} Service Unavailable: TELL commands are not "
                "enabled, set the --allow-tell switch.\r\n".encode()
            )
        except Exception as error:
            return self._unavailable("TELL", error)
        self.service.finish(PROTOCOL, "TELL", self._elapsed(), learned=learned, size=len(raw))
        return Answer(render_tell(learned, forget))

    def _unavailable(self, command: str, error: BaseException) -> Answer:
        reason = _one_line(error)
        self.service.protocol_error(PROTOCOL, f"{command}: {reason}", self._elapsed())
        return Answer(f"SPAMD/1.0 {EX_UNAVAILABLE} Service Unavailable: {reason}\r\n".encode())

    # ----------------------------------------------------------------------
    # Reading, within the limits

    async def _read(self, coroutine: Awaitable[Result], what: str) -> Result:
        """Await a read for at most the idle timeout, and not past the
        request's deadline."""
        timeout = self.limits.idle_timeout
        reason = f"{timeout:g} second idle timeout {what}"
        if self.deadline is not None:
            left = self.deadline - self.loop.time()
            if left <= timeout:
                timeout = max(left, 0.0)
                reason = f"{self.limits.read_timeout:g} second timeout reading the request"
        try:
            async with asyncio.timeout(timeout):
                return await coroutine
        except TimeoutError:
            raise TimedOut(reason) from None

    async def _read_line(self, first: bool = False) -> bytes:
        what = "waiting for the request" if first else "reading headers"
        try:
            line = await self._read(self.reader.readuntil(b"\n"), what)
        except asyncio.IncompleteReadError as error:
            if first and not error.partial:
                return b""
            raise ProtocolError("EOF during headers") from None
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"line longer than {self.limits.max_line_bytes} bytes") from None
        if first:
            self.deadline = self.loop.time() + self.limits.read_timeout
        return line

    async def _read_headers(self, request: Request) -> None:
        for _ in range(self.limits.max_header_lines + 1):
            line = (await self._read_line()).rstrip(b"\r\n")
            if not line:
                return
            parse_header(request, line)
        raise ProtocolError("too many headers")

    async def _read_body(self, request: Request, keep_over: bool) -> tuple[bytes, Oversize | None]:
        """The message, or what to do with one over the size limit."""
        limit = self.limits.max_message_bytes
        length = request.content_length
        if length is not None and length > limit:
            keep = keep_over and not request.compressed
            start = await self._read_exactly(limit, length) if keep else b""
            return b"", Oversize(length, memoryview(start), length - len(start))
        body = bytearray()
        wanted = length if length is not None else limit + 1
        while len(body) < wanted:
            chunk = await self._read(
                self.reader.read(min(CHUNK_BYTES, wanted - len(body))), "reading the message"
            )
            if not chunk:
                break
            body += chunk
        if length is not None and len(body) != length:
            raise ProtocolError(
                f"Content-Length mismatch: Expected {length} bytes, got {len(body)} bytes"
            )
        if length is None and len(body) > limit:
            # No length given: the rest runs to the end of the stream.
            return b"", Oversize(len(body), memoryview(body), None)
        raw = bytes(body)
        if request.compressed:
            raw = self._inflate(raw)
            if len(raw) > limit:
                return b"", Oversize(len(raw), memoryview(raw[:limit]), 0)
        return raw, None

    def _inflate(self, compressed: bytes) -> bytes:
        """zlib-compressed input (spamc -z), inflated to at most one byte
        over the limit: a small bomb must not inflate to gigabytes."""
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(compressed, self.limits.max_message_bytes + 1)
        except zlib.error as error:
            raise ProtocolError(f"zlib: {error}") from None
        if not inflater.eof and len(raw) <= self.limits.max_message_bytes:
            raise ProtocolError("zlib: failed to find end of zlib stream")
        return raw

    async def _read_exactly(self, count: int, announced: int) -> bytes:
        body = bytearray()
        while len(body) < count:
            chunk = await self._read(
                self.reader.read(min(CHUNK_BYTES, count - len(body))), "reading the message"
            )
            if not chunk:
                raise ProtocolError(
                    f"Content-Length mismatch: Expected {announced} bytes, got {len(body)} bytes"
                )
            body += chunk
        return bytes(body)

    async def _discard(self, over: Oversize) -> None:
        """Read and drop the rest of an oversize message (until its length,
        or the end of the stream), so that the client reads our answer
        rather than a reset."""
        left = over.rest
        while left is None or left > 0:
            size = CHUNK_BYTES if left is None else min(CHUNK_BYTES, left)
            chunk = await self._read(self.reader.read(size), "reading the message")
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)

    # ----------------------------------------------------------------------
    # Writing

    async def _send(self, answer: Answer) -> None:
        self.writer.write(answer.head)
        for piece in answer.body:
            self.writer.write(piece)
            await self._drain()
        await self._drain()

    async def _drain(self) -> None:
        if not self.writer.transport.get_write_buffer_size():
            # The socket took the whole answer, as it takes a verdict: no
            # wait, so no timer either.
            return
        try:
            async with asyncio.timeout(self.limits.read_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise TimedOut(
                f"{self.limits.read_timeout:g} second timeout writing the answer"
            ) from None

    async def _fail(self, line: str, reason: str) -> None:
        self.service.protocol_error(PROTOCOL, reason, self._elapsed())
        self.linger = True
        try:
            self.writer.write(line.encode("ascii", "replace") + b"\r\n")
            async with asyncio.timeout(self.limits.idle_timeout):
                await self.writer.drain()
        except (ConnectionError, TimeoutError, RuntimeError):
            pass

    async def _close(self) -> None:
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except (OSError, RuntimeError):
            pass
        if self.linger:
            await self._linger()
        self.writer.close()
        try:
            async with asyncio.timeout(self.limits.idle_timeout):
                await self.writer.wait_closed()
        except (ConnectionError, TimeoutError, OSError):
            pass

    async def _linger(self) -> None:
        """After an error, read and drop what the client still sends, for a
        moment: closing with its bytes unread would reset the connection,
        and a reset can destroy the error line before the client reads it
        (spamc reads only once it has sent everything)."""
        dropped = 0
        try:
            async with asyncio.timeout(min(LINGER_SECONDS, self.limits.idle_timeout)):
                while dropped < LINGER_BYTES:
                    chunk = await self.reader.read(CHUNK_BYTES)
                    if not chunk:
                        return
                    dropped += len(chunk)
        except (ConnectionError, TimeoutError, OSError):
            pass

    def _elapsed(self) -> float:
        return self.loop.time() - self.started


@dataclass(frozen=True)
class Oversize:
    """A message over the limit: its (announced) size, the start of it kept
    (for PROCESS and HEADERS), and how many bytes are still to come (None:
    up to the end of the stream)."""

    size: int
    start: memoryview
    rest: int | None


# --------------------------------------------------------------------------
# Parsing


def parse_request_line(line: bytes) -> Request:
    stripped = line.rstrip(b"\r\n")
    match = _REQUEST_LINE.search(stripped)
    if match is None:
        raise ProtocolError(_printable(stripped))
    version = _VERSION.match(match.group(2).decode("ascii", "replace"))
    # spamd compares versions as Perl numbers: anything unreadable is 0.
    return Request(match.group(1).decode(), float(version.group(1)) if version else 0.0)


def parse_header(request: Request, line: bytes) -> None:
    name_bytes, colon, value_bytes = line.partition(b":")
    if not colon:
        raise ProtocolError("header not in 'Name: value' format")
    name = name_bytes.decode("latin-1")
    value = value_bytes.decode("latin-1").strip()
    lowered = name.lower()
    if lowered == "content-length":
        if not value.isdigit() or not value.isascii():
            raise ProtocolError("Content-Length contains non-numeric bytes")
        request.content_length = int(value)
    elif lowered == "user":
        if any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
            raise ProtocolError("User header contains control chars")
    elif lowered == "message-class":
        request.message_class = value.lower()
    elif lowered in ("set", "remove"):
        local, remote = "local" in value.lower(), "remote" in value.lower()
        if lowered == "set":
            request.set_local, request.set_remote = local, remote
        else:
            request.remove_local, request.remove_remote = local, remote
    elif lowered == "compress":
        if value.lower() != "zlib":
            raise ProtocolError(f"compression type not supported: {_printable(value.encode())}")
        request.compressed = True
    # Other headers are ignored, as the protocol asks.


# --------------------------------------------------------------------------
# Rendering the one scan result


def render_spam_header(command: str, result: ScanResult) -> str:
    spam = "True" if result.is_spam else "False"
    return f"Spam: {spam} ; {result.shown_points()} / {result.required_points:.1f}"


def render_scan(request: Request, result: ScanResult) -> Answer:
    command, version = request.command, request.version
    spam_header = render_spam_header(command, result)
    if command in ("PROCESS", "HEADERS"):
        if result.marked is None:  # unscanned: passed back as it came
            raise ServeError("an unscanned message has no marked form")
        pieces = result.marked.pieces
        if command == "HEADERS":
            whole = b"".join(pieces)
            match = _HEADER_END.search(whole)
            pieces = (whole[: match.end()] if match else whole,)
        length = sum(len(piece) for piece in pieces)
        return Answer(_status_and_headers(version, length, spam_header), pieces)
    status = b"SPAMD/1.1 0 EX_OK\r\n"
    if command == "CHECK":
        return Answer(status + spam_header.encode() + b"\r\n\r\n")
    if command == "SYMBOLS":
        body = ",".join(symbols(result))
        if version < 1.3:
            body += "\r\n"
    elif command == "REPORT" or result.is_spam:
        body = report(result)
    else:  # REPORT_IFSPAM of a message that is not spam: no report
        body = ""
    encoded = body.encode("utf-8")
    if version >= 1.3:
        head = f"Content-length: {len(encoded)}\r\n{spam_header}\r\n\r\n"
    else:
        head = f"{spam_header}\r\n\r\n"
    return Answer(status + head.encode(), (encoded,))


def _status_and_headers(version: float, length: int, spam_header: str) -> bytes:
    if version >= 1.3:
        return f"SPAMD/1.1 0 EX_OK\r\nContent-length: {length}\r\n{spam_header}\r\n\r\n".encode()
    if version >= 1.2:
        return f"SPAMD/1.1 0 EX_OK\r\nContent-length: {length}\r\n\r\n".encode()
    return b"SPAMD/1.0 0 EX_OK\r\n"


def render_tell(learned: LearnResult, forget: bool) -> bytes:
    header = ""
    if learned.changed:
        header = "DidRemove: local\r\n" if forget else "DidSet: local\r\n"
    return f"SPAMD/1.1 0 EX_OK\r\n{header}\r\n".encode()


def symbols(result: ScanResult) -> list[str]:
    """The "rules hit": one, named for the verdict."""
    return [f"SPAMCLI_{result.label.upper()}"] if result.label else []


def report(result: ScanResult) -> str:
    """A report laid out as SpamAssassin's: the verdict, then a table of
    points, the verdict's line and the n-grams that moved the score most."""
    if not result.scanned:
        return f"spamcli did not scan this message: it is {result.reason}.\n"
    verdict = {
        SPAM: "has identified this incoming email as spam",
        HAM: "has NOT identified this incoming email as spam",
    }.get(result.verdict, "is unsure whether this incoming email is spam")
    lines = [
        f"spamcli {verdict}.",
        "",
        f"Content analysis details:   ({result.shown_points()} points, "
        f"{result.required_points:.1f} required)",
        "",
        _REPORT_ROW.format(points=" pts", rule="rule name", description="description"),
        _REPORT_ROW.format(points="----", rule="-" * 22, description="-" * 50),
        _REPORT_ROW.format(
            points=result.shown_points(),
            rule=symbols(result)[0],
            description=f"spam probability {result.spam_probability:.6f} "
            f"(spam cut-off {result.spam_cutoff:.6f}, model {result.model})",
        ),
    ]
    # The n-grams are not rules: their points are no part of the sum, so
    # their column is left empty and the points go in the description.
    for effect in result.effects:
        rule = "SPAMCLI_TOKEN_SPAM" if effect.effect > 0 else "SPAMCLI_TOKEN_HAM"
        token = _printable(effect.token.encode("utf-8"))
        lines.append(
            _REPORT_ROW.format(
                points="",
                rule=rule,
                description=f'"{token}": {effect.points:+.2f} points '
                f"({effect.effect:+.4f} probability)",
            )
        )
    return "\n".join(lines) + "\n"


def _printable(text: bytes, limit: int = 120) -> str:
    """Client bytes made safe to echo in a line: printable ASCII, escaped otherwise."""
    escaped = text[:limit].decode("ascii", "backslashreplace")
    escaped = "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in escaped
    )
    return escaped + ("..." if len(text) > limit else "")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    service: ScanService,
    offload_scan: ScanOffload[Any],
    offload_learn: Offload[Any],
) -> None:
    """Answer one spamd client connection (the daemon's accept loop calls this)."""
    await Connection(reader, writer, service, offload_scan, offload_learn).serve()
