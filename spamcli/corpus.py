"""Find messages, and labelled messages, in files, folders, archives, mbox, Maildir and CSV.

This module only finds and splits: it hands raw bytes to ``mail.py``, which
turns them into text. It never parses a message beyond finding the ``From ``
lines that separate the messages of an mbox file.

Two rules hold everywhere:

* Bad input never raises out of :func:`iter_messages`. A missing path, an
  unreadable file, a broken symbolic link, a FIFO or a corrupt archive
  becomes a :class:`ReadFailure` and reading goes on, so one bad file in a
  folder of 10,000 costs one message, not the run.
* Reading is lazy. An archive is read member by member without unpacking it,
  and an mbox file line by line, so memory holds one message at a time.
  Reading the five SpamAssassin ``.tar.bz2`` archives (6,046 messages, 37 MB
  unpacked) takes as long as decompressing them: 1.1 s of CPU time on the
  2-core development machine, against 1.1-1.4 s for bz2 alone.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from spamcli.config import HAM, MAX_MESSAGE_BYTES, SPAM
from spamcli.errors import CorpusError
from spamcli.streams import read_stream as read_stream_to_end

__all__ = [
    "SPLIT_NAMES",
    "STANDARD_MESSAGE_COUNTS",
    "Corpus",
    "CorpusEntry",
    "CorpusReader",
    "LabelledMessage",
    "RawMessage",
    "ReadFailure",
    "iter_labelled",
    "iter_messages",
    "label_from_path",
    "load_corpus",
    "read_stream",
    "require_both_classes",
    "require_counts",
    "standard_split",
    "write_split",
]


@dataclass(frozen=True)
class RawMessage:
    """One message as found, before any parsing."""

    source: str
    """Where it came from, for a user: ``path/to/file``, ``archive.tar.bz2:spam/00001.x``,
    ``box.mbox:17`` (1-based index in the mbox) or ``Maildir:cur/123.host:2,S``."""
    raw: bytes
    index: int | None = None
    """The 1-based position of the message in its mbox (as in the source) or
    Maildir (``cur/`` then ``new/``, each sorted by name); None for a message
    file, which includes a file starting with ``From `` that holds only one
    message."""
    whole_sha256: str | None = None
    """The sha256 of all the message's bytes when ``raw`` holds only the
    first of them (see iter_labelled); None when ``raw`` is the message."""

    def sha256(self) -> str:
        """The hex sha256 of the whole message, however much of it ``raw`` holds."""
        return self.whole_sha256 or _digest(self.raw)


@dataclass(frozen=True)
class ReadFailure:
    """Something that was asked for but could not be read."""

    source: str
    reason: str
    """One line a user can read, e.g. ``No such file or directory``."""
    skipped: bool = False
    """True for a file found in a folder that is no message file (a FIFO,
    socket or device): left out on purpose, a note rather than an error."""


@dataclass(frozen=True)
class LabelledMessage:
    """A raw message with its label, ``config.HAM`` or ``config.SPAM``."""

    source: str
    label: str
    raw: bytes
    whole_sha256: str | None = None
    """As for RawMessage: set when ``raw`` is only the message's first bytes."""

    def sha256(self) -> str:
        """The hex sha256 of the whole message, however much of it ``raw`` holds."""
        return self.whole_sha256 or _digest(self.raw)


# --------------------------------------------------------------------------
# Finding messages

# Archives are recognised by name: guessing by content would mean trying to
# decompress every message file of a folder tree.
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tbz2", ".tar.xz", ".txz")

# The SpamAssassin archives hold a `cmds` file per folder: the shell commands
# that renamed the messages, not a message.
_INDEX_FILE_NAMES = frozenset({"cmds"})

# What a corrupt or truncated archive raises, depending on its compression:
# tarfile's own errors, OSError ("Invalid data stream" from bz2,
# BadGzipFile), EOFError (truncated bz2/gzip/xz), zlib.error, LZMAError.
# tarfile, lzma, zlib, csv and shutil are imported where they are used: a
# mail filter that scores one message file never needs them, and they cost
# it several milliseconds of start-up.


def _archive_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import tarfile
    import zlib

    return (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


# An mbox separator after the first one must look like a real envelope line,
# "From sender date" with a time and a year, as mutt's is_from() requires.
# A bare "^From " test splits messages whose body has an unescaped line
# starting with "From ": hard_ham/00108 in the SpamAssassin corpus has
# "From home recordings to downloaded mp3s, ..." after a blank line.
_MBOX_SEPARATOR = re.compile(
    rb"From \S+ .*(?:\b\d{1,2}:\d{2}\b.*\b\d{4}\b|\b\d{4}\b.*\b\d{1,2}:\d{2}\b)"
)
# mboxrd quoting: a body line "From x" is stored as ">From x", ">From x" as
# ">>From x", and so on. Removing one ">" undoes both mboxrd and mboxo.
_MBOX_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)

# How much of a file is read to decide whether it is one message or an mbox.
# A message that fits (all but a few of the corpus') and has no "\nFrom " in
# it is taken whole, without walking it line by line in Python.
_PEEK_BYTES = 1 << 20

# Opening a FIFO for reading blocks until a writer appears; O_NONBLOCK makes
# open() return at once, so the fstat() that follows can reject it. It has no
# effect on regular files.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class _Found(NamedTuple):
    """A message or failure, with the folder names above it (for labels)."""

    item: RawMessage | ReadFailure
    folders: tuple[str, ...]


def iter_messages(
    path: str | Path, read_limit: int | None = None, digest_whole: bool = False
) -> Iterator[RawMessage | ReadFailure]:
    """Every message in PATH, lazily, in a stable order (folders sorted by name).

    PATH is a message file, a folder (recursively, each regular file is one
    message, except Maildir folders and mbox files found inside, which are
    expanded), an mbox file (recognised by its first line starting with
    ``From ``), a Maildir (``new/`` and ``cur/``, not ``tmp/``), or a
    .tar/.tar.gz/.tgz/.tar.bz2/.tar.xz archive read without unpacking, whose
    members are treated like the files of a folder (an mbox member is
    expanded; Maildir layout is not recognised inside archives).

    A missing path, unreadable file, broken symbolic link, FIFO, device or
    corrupt archive yields a ReadFailure and iteration continues with the rest;
    bad input never raises. Hidden files and folders (names starting with a
    dot) and the ``cmds`` index files of the SpamAssassin archives are skipped
    inside folders and archives, but read when named as PATH itself.

    A file starting with ``From `` that holds a single message is yielded
    byte for byte with its own path as source, so the SpamAssassin messages
    (which start with an envelope line) keep their bytes and names. When an
    mbox holds several messages, each is yielded without its ``From `` line
    and with ``>From `` unquoted, as ``mailbox.mbox`` would.

    Non-regular files inside a folder (FIFOs, sockets, devices) are never
    opened: each gives a ReadFailure with ``skipped`` set. A FIFO named as
    PATH itself is read, as ``cat`` would read it (``spamcli predict
    <(command)`` passes one).

    READ_LIMIT, if given, lets each message be cut after its first
    READ_LIMIT bytes, which come out as a full read gives them (at most
    twice as many are kept; see _MboxSplitter for the one exception), for a
    caller that parses no more than that: a 50 MB message then costs its
    first megabytes of memory, not 50 MB. With DIGEST_WHOLE as well, the
    rest of a message that is cut is read through a sha256, given as
    ``whole_sha256`` (and by ``sha256()``), so that a caller can tell
    messages apart by all their bytes without holding them (an mbox's
    messages are then kept whole, as without READ_LIMIT).

    An archive member is never read in one piece: a header that claims
    100 GiB for 2 MB of data is a ReadFailure for that member, not a
    MemoryError for the run.
    """
    for found in _iter_path(Path(path), read_limit, digest_whole):
        yield found.item


def read_stream(
    stream: IO[bytes] | None,
    source: str,
    read_limit: int | None = None,
    digest_whole: bool = False,
) -> RawMessage | ReadFailure:
    """One message from an open stream (standard input), never raising.

    STREAM is None when the descriptor was closed before the program
    started (``spamcli predict - <&-``): Python then has no sys.stdin.
    READ_LIMIT and DIGEST_WHOLE as for iter_messages; the rest of a pipe is
    still read, and dropped, so the program writing the message is never
    cut off. The stream is read to its end in any mode (streams.read_stream):
    a non-blocking pipe is waited on, never taken to have ended.
    """
    if stream is None:
        return ReadFailure(source, "standard input is closed")
    digest = _Sha256() if digest_whole and read_limit is not None else None
    try:
        raw = read_stream_to_end(stream, read_limit, None if digest is None else digest.update)
    except (OSError, ValueError) as error:  # ValueError: a stream closed in-process
        return ReadFailure(source, _reason(error))
    whole_sha256 = digest.hexdigest() if digest is not None and digest.length > len(raw) else None
    return RawMessage(source, raw, whole_sha256=whole_sha256)


class _Sha256:
    """hashlib.sha256, imported when first needed, counting what it was given."""

    def __init__(self) -> None:
        import hashlib

        self._hash = hashlib.sha256()
        self.length = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.length += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _iter_path(
    path: Path, read_limit: int | None = None, digest_whole: bool = False
) -> Iterator[_Found]:
    if str(path) == "":
        yield _Found(ReadFailure("", "empty path"), ())
        return
    status = _stat(path)
    if isinstance(status, ReadFailure):
        yield _Found(status, ())
    elif stat.S_ISDIR(status.st_mode):
        yield from _iter_folder(path, status, frozenset(), read_limit, digest_whole)
    else:
        yield from _iter_file(str(path), path.parent.parts, read_limit, digest_whole, named=True)


def _stat(path: Path) -> os.stat_result | ReadFailure:
    """The status of PATH after following symbolic links, or why there is none."""
    try:
        return path.stat()
    except FileNotFoundError:
        if os.path.islink(path):
            return ReadFailure(str(path), "broken symbolic link")
        return ReadFailure(str(path), "No such file or directory")
    except OSError as error:
        return ReadFailure(str(path), _reason(error))


def _reason(error: BaseException) -> str:
    """One line for a user: the OS's own wording when there is one."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(text.split())


def _is_maildir(path: Path) -> bool:
    # os.path.isdir, not Path.is_dir: on Python 3.11 the latter raises
    # PermissionError inside a folder that cannot be entered, which must
    # become a ReadFailure when the folder is listed, not a crash.
    return all(os.path.isdir(path / name) for name in ("cur", "new", "tmp"))


def _iter_folder(
    path: Path,
    status: os.stat_result,
    ancestors: frozenset[tuple[int, int]],
    read_limit: int | None,
    digest_whole: bool,
) -> Iterator[_Found]:
    # Symbolic links to folders are followed; one that leads back to a folder
    # being read would recurse forever, so it is reported instead. Links that
    # reach the same folder twice by different routes are read twice, and the
    # duplicates are dropped by load_corpus.
    identity = (status.st_dev, status.st_ino)
    if identity in ancestors:
        yield _Found(ReadFailure(str(path), "symbolic link loop"), ())
        return
    ancestors = ancestors | {identity}
    maildir = _is_maildir(path)
    if maildir:
        # tmp/ holds messages still being delivered, possibly incomplete.
        position = itertools.count(1)
        for subfolder in ("cur", "new"):
            yield from _iter_maildir_part(path, subfolder, position, read_limit, digest_whole)
    try:
        with os.scandir(path) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        yield _Found(ReadFailure(str(path), _reason(error)), ())
        return
    # A file's path as str(path / name) writes it ("." adds nothing), without
    # a Path made for each file.
    folder = str(path)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not maildir and entry.is_file(follow_symlinks=False):
            # A regular file, as the folder's listing says (no stat): most of
            # a mail folder. _open_regular checks it again once it is open.
            if entry.name not in _INDEX_FILE_NAMES:
                source = entry.name if folder == "." else os.path.join(folder, entry.name)
                yield from _iter_file(source, path.parts, read_limit, digest_whole)
            continue
        child = path / entry.name
        child_status = _stat(child)
        if isinstance(child_status, ReadFailure):
            yield _Found(child_status, path.parts)
        elif stat.S_ISDIR(child_status.st_mode):
            if maildir and entry.name in ("cur", "new", "tmp"):
                continue
            yield from _iter_folder(child, child_status, ancestors, read_limit, digest_whole)
        elif maildir:
            # Files beside cur/new/tmp are the mail server's indexes
            # (dovecot-uidlist, dovecot.index.log, maildirfolder), not mail.
            continue
        elif entry.name in _INDEX_FILE_NAMES:
            continue
        elif not stat.S_ISREG(child_status.st_mode):
            # A FIFO in a folder would block the whole run until something
            # wrote to it; a device may never end. Neither is a message file.
            reason = str(_NotRegularFile(child_status.st_mode))
            yield _Found(ReadFailure(str(child), reason, skipped=True), path.parts)
        else:
            yield from _iter_file(str(child), path.parts, read_limit, digest_whole)


def _iter_maildir_part(
    maildir: Path,
    subfolder: str,
    position: Iterator[int],
    read_limit: int | None,
    digest_whole: bool,
) -> Iterator[_Found]:
    """The messages of ``cur/`` or ``new/``, numbered by the shared POSITION."""
    folder = maildir / subfolder
    try:
        with os.scandir(folder) as scan:
            names = sorted(entry.name for entry in scan if not entry.name.startswith("."))
    except OSError as error:
        yield _Found(ReadFailure(str(folder), _reason(error)), maildir.parts)
        return
    for name in names:
        source = f"{maildir}:{subfolder}/{name}"
        # Maildir holds one message per file by definition: no mbox splitting.
        # A message that cannot be read still takes its place in the count.
        item: RawMessage | ReadFailure
        try:
            with _open_regular(folder / name) as stream:
                raw, whole_sha256 = _read_message(stream, read_limit, digest_whole)
        except _NotRegularFile as error:
            if error.is_folder:
                continue
            item = ReadFailure(source, str(error), skipped=True)
            next(position)
        except OSError as error:
            item = ReadFailure(source, _reason(error))
            next(position)
        else:
            item = RawMessage(source, raw, next(position), whole_sha256)
        yield _Found(item, maildir.parts)


class _NotRegularFile(Exception):
    def __init__(self, mode: int) -> None:
        self.is_folder = stat.S_ISDIR(mode)
        if stat.S_ISFIFO(mode):
            kind = "a FIFO"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "a device"
        elif stat.S_ISSOCK(mode):
            kind = "a socket"
        elif self.is_folder:
            kind = "a folder"
        else:
            kind = "a special file"
        super().__init__(f"not a regular file ({kind})")


def _open_regular(path: str | Path, allow_fifo: bool = False) -> IO[bytes]:
    """Open PATH for reading if it is a regular file, without ever blocking.

    Checking with stat() and then opening would block forever if a FIFO took
    the file's place in between; opening non-blocking and checking the open
    descriptor cannot. With ALLOW_FIFO, a FIFO is opened again, blocking, so
    that reading waits for its writer as ``cat`` does.
    """
    descriptor = os.open(path, _OPEN_FLAGS)
    try:
        mode = os.fstat(descriptor).st_mode
        if allow_fifo and stat.S_ISFIFO(mode):
            return io.BufferedReader(_FifoReader(descriptor), _PEEK_BYTES)
        if not stat.S_ISREG(mode):
            raise _NotRegularFile(mode)
        return open(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


# How long a named FIFO's reader waits for its writer between checks for an
# interruption (_FifoReader.readinto).
FIFO_WAKE_MILLISECONDS = 1000


class _FifoReader(io.RawIOBase):
    """Read a FIFO opened non-blocking, waiting for its writer as ``cat`` does.

    Not closed and opened again blocking: a writer that wrote and left in
    between would take its message with it, and the second open would wait
    for another writer forever. poll() waits for data, or for a writer that
    came after the open to leave (POLLHUP); only then does an empty read
    mean the end.
    """

    def __init__(self, descriptor: int) -> None:
        super().__init__()
        self.descriptor = descriptor

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        import select

        from spamcli import interruption

        poller = select.poll()
        poller.register(self.descriptor, select.POLLIN)
        while True:
            # Woken now and then, so that an interruption is acted on: once,
            # under CI's load, a train reading a FIFO went on waiting here
            # after its SIGTERM (the signal caught, none pending; not
            # reproduced in 100 tries since). Waking runs a handler still
            # pending, and check raises for one whose exception was lost.
            if not poller.poll(FIFO_WAKE_MILLISECONDS):
                interruption.check()
                continue
            try:
                data = os.read(self.descriptor, len(buffer))
            except BlockingIOError:  # woken with nothing to read yet
                continue
            buffer[: len(data)] = data
            return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self.descriptor)
        super().close()


def _is_archive_name(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _iter_file(
    source: str,
    folders: tuple[str, ...],
    read_limit: int | None,
    digest_whole: bool = False,
    named: bool = False,
) -> Iterator[_Found]:
    """The messages of the file at SOURCE, a path; NAMED: given by the user,
    so a FIFO is read, where one found in a folder is skipped."""
    archive = _is_archive_name(os.path.basename(source))
    if not named and not archive:
        whole = _read_small_regular_file(source)
        if whole is not None:
            for item in _messages_of_head(whole, None, source, read_limit, digest_whole):
                yield _Found(item, folders)
            return
    try:
        stream = _open_regular(source, allow_fifo=named)
    except _NotRegularFile as error:
        # A file of a folder that became a FIFO or a device since the
        # folder was listed is skipped, as one found so is (_iter_folder).
        yield _Found(ReadFailure(source, _reason(error), skipped=not named), folders)
        return
    except OSError as error:
        yield _Found(ReadFailure(source, _reason(error)), folders)
        return
    with stream:
        if archive:
            yield from _iter_archive(
                stream,
                source,
                folders,
                expand_mbox=True,
                read_limit=read_limit,
                digest_whole=digest_whole,
            )
            return
        try:
            # A read error half-way through a large mbox ends it with a
            # failure after the messages already yielded.
            for item in _iter_stream(stream, source, read_limit, digest_whole):
                yield _Found(item, folders)
        except OSError as error:
            yield _Found(ReadFailure(source, _reason(error)), folders)


def _iter_stream(
    stream: IO[bytes], source: str, read_limit: int | None = None, digest_whole: bool = False
) -> Iterator[RawMessage]:
    """The messages of one file or archive member: itself, or its mbox parts."""
    return _messages_of_head(_read_head(stream), stream, source, read_limit, digest_whole)


def _read_small_regular_file(path: str) -> bytes | None:
    """All of the file at PATH when it is a regular file smaller than
    _PEEK_BYTES, read with one read; None for anything else (a FIFO, a
    file that cannot be opened, one that grew or shrank meanwhile), which
    is read again the general way (_open_regular, _read_head), failures and
    all.

    Most of a mail folder's files: 4.7 us a SpamAssassin message against
    14.8 us through _open_regular's buffered file (which checks the file's
    status three times), in the process that reads for `predict FOLDER`'s
    workers.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_size >= _PEEK_BYTES:
            return None
        data = os.read(descriptor, status.st_size + 1)
        return data if len(data) == status.st_size else None
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _messages_of_head(
    head: bytes,
    stream: IO[bytes] | None,
    source: str,
    read_limit: int | None,
    digest_whole: bool,
) -> Iterator[RawMessage]:
    """_iter_stream's messages, given HEAD, the stream's first read (see
    _read_head); STREAM is None when HEAD is all there is."""
    if not head.startswith(b"From "):
        if stream is None:
            stream = io.BytesIO()  # nothing more to read
        raw, whole_sha256 = _read_message(stream, read_limit, digest_whole, head)
        yield RawMessage(source, raw, whole_sha256=whole_sha256)
        return
    complete = len(head) < _PEEK_BYTES
    if complete and b"\nFrom " not in head:
        yield RawMessage(source, head)
        return
    blocks: Iterable[bytes] = [head]
    if not complete and stream is not None:
        more = stream
        blocks = itertools.chain(blocks, iter(lambda: more.read(_PEEK_BYTES), b""))
    # Split whole when the caller digests whole messages: the digest of an
    # mbox message is of its bytes unquoted, known only once it is split.
    for index, raw in _split_mbox(blocks, None if digest_whole else read_limit):
        if index == 0:
            yield RawMessage(source, raw)
        else:
            yield RawMessage(f"{source}:{index}", raw, index)


def _read_head(stream: IO[bytes]) -> bytes:
    """stream.read(_PEEK_BYTES), asking a regular file for no more than it holds.

    A read of a megabyte allocates a megabyte before it shrinks to what the
    file had: 17 us a SpamAssassin message, against 7 us for a read of its
    size (one byte more, to see its end). Fewer bytes than _PEEK_BYTES still
    come back only at the end, as from stream.read: a file that grew since
    its size was read is read on.
    """
    raw = getattr(stream, "raw", None)
    if isinstance(raw, io.FileIO):  # not a tar member, a FIFO or a pipe
        try:
            status = os.fstat(raw.fileno())
        except OSError:
            return stream.read(_PEEK_BYTES)
        if stat.S_ISREG(status.st_mode) and status.st_size < _PEEK_BYTES:
            head = stream.read(status.st_size + 1)
            if len(head) <= status.st_size:
                return head
            return head + stream.read(_PEEK_BYTES - len(head))
    return stream.read(_PEEK_BYTES)


def _read_message(
    stream: IO[bytes], read_limit: int | None, digest_whole: bool, head: bytes | None = None
) -> tuple[bytes, str | None]:
    """HEAD, its first _PEEK_BYTES if already read, and the rest of STREAM:
    the message and, when it is cut, the sha256 of all of it (with
    DIGEST_WHOLE), else None.

    Read in pieces of _PEEK_BYTES, never with one read(): a tar member's
    read() asks for all its header claims at once, and a header claiming
    100 GiB was a MemoryError. With READ_LIMIT, only the first READ_LIMIT
    bytes are kept; the rest is read through the digest with DIGEST_WHOLE,
    else drained from a pipe (so its writer is not cut off) and not read at
    all from a file. A 1 GiB member of zeros then costs 1 MB, not the 2 GiB
    that it and its copy took.
    """
    if head is None:
        head = _read_head(stream)
    # Every stream here is buffered (or a tar member), and a buffered read
    # gives less than it was asked for only at the end: most messages end
    # within their first read.
    if len(head) < _PEEK_BYTES:
        if read_limit is None or len(head) <= read_limit:
            return head, None
        return head[:read_limit], _digest(head) if digest_whole else None
    if read_limit is None:
        whole = io.BytesIO()
        whole.write(head)
        while piece := stream.read(_PEEK_BYTES):
            whole.write(piece)
        return whole.getvalue(), None  # the buffer itself, not a copy
    pieces = [head]
    length = len(head)
    while length < read_limit and (piece := stream.read(min(read_limit - length, _PEEK_BYTES))):
        pieces.append(piece)
        length += len(piece)
    data = b"".join(pieces)
    kept = data[:read_limit]
    if not digest_whole:
        if not stream.seekable():
            while stream.read(_PEEK_BYTES):
                pass
        return kept, None
    piece = stream.read(_PEEK_BYTES)
    if len(data) == len(kept) and not piece:
        return kept, None  # the whole message: its digest is its bytes'
    digest = _Sha256()
    digest.update(data)
    while piece:
        digest.update(piece)
        piece = stream.read(_PEEK_BYTES)
    return kept, digest.hexdigest()


def _from_lines(data: bytes, at_line_start: bool) -> Iterator[int]:
    """Where the lines of DATA that start with "From " start.

    bytes.find, not a multi-line regular expression: the expression tries
    every line start, and 50 million empty lines took it 1.5 s.
    """
    if at_line_start and data.startswith(b"From "):
        yield 0
    position = data.find(b"\nFrom ")
    while position >= 0:
        yield position + 1
        position = data.find(b"\nFrom ", position + 1)


# A line cut inside the quoting of a body line "From ...": ">", ">>Fr".
_CUT_QUOTED_FROM = re.compile(rb">+(?:F(?:r(?:o(?:m)?)?)?)?")


class _MboxSplitter:
    """Split an mbox, given as blocks of bytes, into its messages.

    Blocks are searched for "From " lines with a regular expression, and the
    text between separators is copied into one bytearray a message. Walking
    the file line by line in Python cost 6 s for a message of 50 million
    empty lines, and keeping a list of those lines 4.5 GB; this costs 0.1 s
    and the message's own size.

    With READ_LIMIT, a message keeps only its first 2 * READ_LIMIT bytes.
    Undoing ">From " quoting removes at most one byte in seven, so its first
    READ_LIMIT bytes come out as they would from the whole message, unless a
    single line of ">" characters more than half a READ_LIMIT long is cut in
    the middle of its ">From " quoting.
    """

    def __init__(self, read_limit: int | None) -> None:
        self.keep = None if read_limit is None else 2 * read_limit
        self.separator: bytes | None = None
        self.body = bytearray()
        self.length = 0  # of the whole body, kept or not
        self.tail = b""  # its last three bytes, to find a final blank line
        self.index = 0
        self.finished: list[tuple[int, bytes]] = []

    def add(self, data: bytes, at_line_start: bool) -> None:
        """Take DATA, complete lines (the last may lack its line break only at the end)."""
        position = 0
        for start in _from_lines(data, at_line_start):
            line_end = data.find(b"\n", start) + 1 or len(data)
            line = data[start:line_end]
            if self.separator is None or _MBOX_SEPARATOR.match(line):
                self._append(data[position:start])
                if self.separator is not None:
                    self.index += 1
                    self.finished.append((self.index, self._message()))
                self.separator = line
                self.body, self.length, self.tail = bytearray(), 0, b""
                position = line_end
        self._append(data[position:])

    def _append(self, segment: bytes) -> None:
        if not segment:
            return
        if self.keep is None:
            self.body += segment
        elif len(self.body) < self.keep:
            self.body += segment[: self.keep - len(self.body)]
        self.length += len(segment)
        self.tail = (self.tail + segment[-3:])[-3:]

    def _message(self) -> bytes:
        # The blank line before the next "From " belongs to the mbox format,
        # not to the message (mailbox.mbox drops it too).
        body = self.body
        if self.length > len(body):
            # Cut: a last line cut inside its ">From " quoting would not be
            # unquoted; drop it rather than keep it wrong.
            line_start = body.rfind(b"\n") + 1
            if _CUT_QUOTED_FROM.fullmatch(body, line_start):
                del body[line_start:]
        if self.length == len(body):
            whole_tail = b"\n" + self.tail if self.length == len(self.tail) else self.tail
            if whole_tail.endswith(b"\n\n"):
                del body[-1:]
            elif whole_tail.endswith(b"\n\r\n"):
                del body[-2:]
        return _MBOX_QUOTED_FROM.sub(rb"\1", body)

    def last(self) -> tuple[int, bytes]:
        if self.index == 0:
            return 0, (self.separator or b"") + bytes(self.body)
        return self.index + 1, self._message()


def _split_mbox(
    blocks: Iterable[bytes], read_limit: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """Split an mbox into (1-based index, message); (0, original bytes) if only one."""
    splitter = _MboxSplitter(read_limit)
    # The unfinished last line of a block waits for the next block, unless
    # it cannot be a separator, in which case it is body text at once (a
    # 50 MB line without a break is never copied again and again).
    pending = bytearray()
    at_line_start = True
    for block in blocks:
        pending += block
        end = pending.rfind(b"\n") + 1
        if end:
            splitter.add(bytes(pending[:end]), at_line_start)
            del pending[:end]
            at_line_start = True
        if len(pending) >= 5 and not (at_line_start and pending.startswith(b"From ")):
            splitter.add(bytes(pending), at_line_start)
            pending.clear()
            at_line_start = False
        yield from splitter.finished
        splitter.finished.clear()
    if pending:
        splitter.add(bytes(pending), at_line_start)
    yield from splitter.finished
    yield splitter.last()


def _member_parts(name: str) -> list[str]:
    return [part for part in name.split("/") if part not in ("", ".")]


def _skipped_member(member: Any, parts: list[str]) -> str | None:
    """Why a tar member is no message file to read, or None if it is one.

    A name with ``..`` is what an unpacking attack looks like; it is never
    read, whatever its type. Links are not followed (a symbolic link's
    target is a name outside the member, a hard link's the data of another
    member, read under its own name), and devices and FIFOs hold no data.
    """
    if ".." in parts:
        return "its name leads out of the archive (..)"
    if member.isfile():
        return None
    if member.issym():
        kind = "a symbolic link"
    elif member.islnk():
        kind = "a hard link"
    elif member.ischr() or member.isblk():
        kind = "a device"
    elif member.isfifo():
        kind = "a FIFO"
    else:
        kind = "a special member"
    return f"not a regular file ({kind})"


def _iter_archive(
    stream: IO[bytes],
    source: str,
    folders: tuple[str, ...],
    *,
    expand_mbox: bool,
    read_limit: int | None = None,
    digest_whole: bool = False,
) -> Iterator[_Found]:
    """The members of a tar archive, one at a time, then a failure if it is corrupt.

    A member that cannot be read (its header claims more than the archive
    holds) is a failure of its own, after which the rest is read. Members
    that are no message file are notes (``skipped``), as in a folder:
    links, devices and FIFOs, and names that lead out of the archive
    (``..``); folders, hidden names and ``cmds`` are passed over silently.

    Random access ("r:*") rather than stream mode ("r|*"): members are still
    read strictly in order, so no backward seek ever decompresses twice, and
    it was faster on the five SpamAssassin archives (1.15 s against 1.46 s;
    decompressing them alone takes 1.2 s).
    """
    import tarfile

    archive_errors = _archive_errors()
    try:
        # Opened apart from the "with" below, to tell a file that is no archive
        # from one that breaks part-way.
        archive = tarfile.open(fileobj=stream, mode="r:*")  # noqa: SIM115
    except archive_errors:
        # tarfile's own message lists every compression it tried, one per
        # line; what a user needs is the verdict.
        yield _Found(ReadFailure(source, "not a tar archive, or a corrupt one"), folders)
        return
    try:
        with archive:
            for member in archive:
                parts = _member_parts(member.name)
                if member.isdir() or not parts:
                    continue
                member_source = f"{source}:{'/'.join(parts)}"
                member_folders = folders + tuple(parts[:-1])
                if parts[-1] in _INDEX_FILE_NAMES or any(
                    part.startswith(".") and part != ".." for part in parts
                ):
                    continue
                skipped = _skipped_member(member, parts)
                if skipped is not None:
                    yield _Found(ReadFailure(member_source, skipped, skipped=True), member_folders)
                    continue
                try:
                    member_stream = archive.extractfile(member)
                    if member_stream is None:
                        continue
                    with member_stream:
                        if expand_mbox:
                            for item in _iter_stream(
                                member_stream, member_source, read_limit, digest_whole
                            ):
                                yield _Found(item, member_folders)
                        else:
                            raw, whole_sha256 = _read_message(
                                member_stream, read_limit, digest_whole
                            )
                            message = RawMessage(member_source, raw, whole_sha256=whole_sha256)
                            yield _Found(message, member_folders)
                except archive_errors as error:
                    reason = _reason(error)
                    if "unexpected end of data" in reason:
                        reason = (
                            f"the archive ends before the {member.size:,} bytes its header gives"
                        )
                    yield _Found(ReadFailure(member_source, reason), member_folders)
    except archive_errors as error:
        # The messages before the damage have been yielded already.
        reason = f"corrupt or truncated archive: {_reason(error)}"
        yield _Found(ReadFailure(source, reason), folders)


# --------------------------------------------------------------------------
# Labels

# Folder names that give a label, as in the SpamAssassin corpus: easy_ham,
# easy_ham_2, hard_ham, spam, spam_2; and plain ham/spam for everyone else.
_HAM_FOLDER = re.compile(r"(?:easy_|hard_)?ham(?:_\d+)?", re.IGNORECASE)
_SPAM_FOLDER = re.compile(r"spam(?:_\d+)?", re.IGNORECASE)


def label_from_path(parts: Sequence[str]) -> str | None:
    """The label given by the nearest label folder among PARTS, innermost first.

    ham for ``ham``, ``easy_ham``, ``easy_ham_2``, ``hard_ham`` (an optional
    ``easy_``/``hard_`` prefix, ``ham``, an optional ``_<digits>``); spam for
    ``spam``, ``spam_2`` (``spam`` and an optional ``_<digits>``). Case is
    ignored. None when no component is a label folder.
    """
    for part in reversed(parts):
        if _HAM_FOLDER.fullmatch(part):
            return HAM
        if _SPAM_FOLDER.fullmatch(part):
            return SPAM
    return None


@dataclass(frozen=True)
class _Unlabelled:
    """A message read from a labelled source whose path gave no label."""

    source: str


def iter_labelled(
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
) -> Iterator[LabelledMessage | ReadFailure]:
    """Every labelled message in SOURCES, then in HAM_PATHS, then in SPAM_PATHS.

    SOURCES are folder trees or archives whose folder names give the label
    (see label_from_path; only the path as given and the folders inside it
    count, so ``cd spam; spamcli train .`` finds no label), or CSV/TSV files
    (``.csv``/``.tsv``) with a header row naming a label column (``label``,
    ``class``, ``category`` or ``spam``; values ham/spam in any case, or 0/1
    with 1 = spam) and a text column (``text``, ``message``, ``email``,
    ``body`` or ``raw``), whose text is encoded as UTF-8 and treated as a raw
    message. Messages whose path has no label folder are skipped (load_corpus
    counts them). Everything iter_messages finds in a HAM_PATHS or SPAM_PATHS
    entry gets that label, whatever its folder names.

    A message's ``raw`` is its first ``config.MAX_MESSAGE_BYTES``, all that
    is parsed, and a message cut so has the sha256 of all its bytes in
    ``whole_sha256`` (``sha256()`` gives it for any message): a 1 GiB
    message costs 1 MB, and two messages that differ after their first
    megabyte are still two (an mbox's messages are kept whole).

    Raises CorpusError, when it reaches it, for a CSV/TSV file without a
    recognisable header; every other problem is a ReadFailure.
    """
    for item in _iter_labelled_items(sources, ham_paths, spam_paths):
        if not isinstance(item, _Unlabelled):
            yield item


def _iter_labelled_items(
    sources: Sequence[str | Path],
    ham_paths: Sequence[str | Path],
    spam_paths: Sequence[str | Path],
) -> Iterator[LabelledMessage | ReadFailure | _Unlabelled]:
    for source in sources:
        path = Path(source)
        if path.suffix.lower() in _TABLE_DELIMITERS and not os.path.isdir(path):
            yield from _iter_table(path)
            continue
        for found in _iter_path(path, MAX_MESSAGE_BYTES, digest_whole=True):
            if isinstance(found.item, ReadFailure):
                yield found.item
                continue
            label = label_from_path(found.folders)
            if label is None:
                yield _Unlabelled(found.item.source)
            else:
                found_message = found.item
                yield LabelledMessage(
                    found_message.source, label, found_message.raw, found_message.whole_sha256
                )
    for label, paths in ((HAM, ham_paths), (SPAM, spam_paths)):
        for given_path in paths:
            for item in iter_messages(given_path, MAX_MESSAGE_BYTES, digest_whole=True):
                if isinstance(item, ReadFailure):
                    yield item
                else:
                    yield LabelledMessage(item.source, label, item.raw, item.whole_sha256)


# --------------------------------------------------------------------------
# CSV and TSV

_TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
# Column names, in order of preference when a header has more than one.
_LABEL_COLUMNS = ("label", "class", "category", "spam")
_TEXT_COLUMNS = ("text", "message", "email", "body", "raw")
_LABEL_VALUES = {"ham": HAM, "spam": SPAM, "0": HAM, "1": SPAM}
# csv refuses fields over 131,072 characters by default, and a message with
# an attachment is often longer. The limit is process-wide, so it is only
# ever raised, to the largest value a C long holds on every platform.
_CSV_FIELD_LIMIT = 2**31 - 1


def _iter_table(path: Path) -> Iterator[LabelledMessage | ReadFailure]:
    source = str(path)
    try:
        binary = _open_regular(path)
    except (_NotRegularFile, OSError) as error:
        yield ReadFailure(source, _reason(error))
        return
    import csv

    # surrogateescape keeps bytes that are not UTF-8 (a Latin-1 export, say)
    # and gives them back unchanged when the text is encoded again below;
    # utf-8-sig drops the byte-order mark spreadsheet programs write.
    with io.TextIOWrapper(
        binary, encoding="utf-8-sig", errors="surrogateescape", newline=""
    ) as text:
        if csv.field_size_limit() < _CSV_FIELD_LIMIT:
            csv.field_size_limit(_CSV_FIELD_LIMIT)
        delimiter = _TABLE_DELIMITERS[path.suffix.lower()]
        lines = _RowLines(text)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise CorpusError(f"{source}: empty file, expected a header row")
            label_column, text_column = _table_columns(source, header)
            line = reader.line_num
            # Each row is given out when the next one has been read: only
            # then is it known not to be the last, the one row that can
            # have swallowed the rest of the file.
            last: tuple[str, LabelledMessage | ReadFailure, list[str]] | None = None
            for row in reader:
                row_lines = lines.take()
                row_source = f"{source}:{line + 1}"  # the line the row starts on
                line = reader.line_num
                if last is not None:
                    yield last[1]
                    last = None
                if row:  # else a blank line
                    last = (
                        row_source,
                        _table_row(row_source, row, label_column, text_column),
                        row_lines,
                    )
            if last is not None:
                row_source, item, row_lines = last
                if _ends_inside_quotes("".join(row_lines), delimiter):
                    # csv reads a quoted field that is never closed to the
                    # end of the file, and gives it as one row, silently.
                    yield ReadFailure(
                        row_source,
                        f"bad CSV: a quoted field is never closed; the rest of the file "
                        f"({len(row_lines):,} lines) would be in it, so this row is not read",
                    )
                else:
                    yield item
        except csv.Error as error:
            yield ReadFailure(f"{source}:{reader.line_num}", f"bad CSV: {_reason(error)}")
        except OSError as error:
            yield ReadFailure(source, _reason(error))


class _RowLines:
    """The lines of a text file, for csv.reader, remembering those read since
    the last ``take``: the lines of the row just read."""

    def __init__(self, text: Iterator[str]) -> None:
        self.text = text
        self.lines: list[str] = []

    def __iter__(self) -> _RowLines:
        return self

    def __next__(self) -> str:
        line = next(self.text)
        self.lines.append(line)
        return line

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    """Whether TEXT, the lines of one CSV row, ends inside a quoted field, as
    csv's default dialect reads it: a field is quoted when it starts with a
    double quote, and a doubled quote inside it is a quote."""
    position, state = 0, "field start"
    while position < len(text):
        if state == "quoted":
            closing = text.find('"', position)
            if closing < 0:
                return True
            position, state = closing + 1, "quote in quoted"
            continue
        character = text[position]
        position += 1
        if character in (delimiter, "\n", "\r"):
            state = "field start"
        elif character == '"' and state in ("field start", "quote in quoted"):
            state = "quoted"
        else:
            state = "unquoted"
    return state == "quoted"


# What a header row may show of itself in an error: a file without one has
# a message as its first row, and the error showed all of it.
_SHOWN_HEADER_CHARACTERS = 100


def _table_columns(source: str, header: list[str]) -> tuple[int, int]:
    names = [name.strip().lower() for name in header]

    def find(candidates: tuple[str, ...]) -> int | None:
        for candidate in candidates:
            if candidate in names:
                return names.index(candidate)
        return None

    label_column = find(_LABEL_COLUMNS)
    text_column = find(_TEXT_COLUMNS)
    missing = []
    if label_column is None:
        missing.append(f"a label column ({', '.join(_LABEL_COLUMNS)})")
    if text_column is None:
        missing.append(f"a text column ({', '.join(_TEXT_COLUMNS)})")
    if label_column is None or text_column is None:
        found = ", ".join(repr(name) for name in header) or "nothing"
        if len(found) > _SHOWN_HEADER_CHARACTERS:
            found = found[:_SHOWN_HEADER_CHARACTERS] + f"... ({len(found):,} characters)"
        raise CorpusError(f"{source}: the header row needs {' and '.join(missing)}; found {found}")
    return label_column, text_column


def _table_row(
    source: str, row: list[str], label_column: int, text_column: int
) -> LabelledMessage | ReadFailure:
    if max(label_column, text_column) >= len(row):
        return ReadFailure(source, "row has no label or no text")
    value = row[label_column].strip()
    label = _LABEL_VALUES.get(value.lower())
    if label is None:
        return ReadFailure(source, f"unknown label {value!r}; expected ham, spam, 0 or 1")
    return LabelledMessage(source, label, row[text_column].encode("utf-8", "surrogateescape"))


# --------------------------------------------------------------------------
# A corpus in memory


@dataclass
class Corpus:
    """Labelled messages, deduplicated, with what was dropped on the way."""

    messages: list[LabelledMessage]
    """Deduplicated, sorted by source."""
    duplicates: int
    """Messages dropped because identical bytes (same sha256) were already kept."""
    unlabelled: int
    """Messages skipped because no folder name in their path gave a label."""
    failures: list[ReadFailure]

    def counts(self) -> dict[str, int]:
        """The number of messages per label, both labels always present."""
        return label_counts(message.label for message in self.messages)

    def fingerprint(self) -> str:
        """A sha256 of the data: same labels and bytes give the same value, in any order.

        Sources are left out on purpose: the same messages moved to another
        folder are the same training data.
        """
        return fingerprint((message.label, message.sha256()) for message in self.messages)


def label_counts(labels: Iterable[str]) -> dict[str, int]:
    """The number of each label, both labels always present."""
    counts = {HAM: 0, SPAM: 0}
    for label in labels:
        counts[label] += 1
    return counts


def fingerprint(labels_and_digests: Iterable[tuple[str, str]]) -> str:
    """Corpus.fingerprint of messages given as (label, sha256) pairs."""
    import hashlib

    digest = hashlib.sha256()
    for label, sha256 in sorted(labels_and_digests):
        digest.update(f"{label} {sha256}\n".encode("ascii"))
    return digest.hexdigest()


def _digest(raw: bytes) -> str:
    import hashlib

    return hashlib.sha256(raw).hexdigest()


def load_corpus(
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    progress: Callable[[int], None] | None = None,
) -> Corpus:
    """Read every labelled message (see iter_labelled) into a deduplicated Corpus.

    Messages are sorted by (source, label) and then deduplicated, so the
    result does not depend on the order of the arguments: of identical bytes,
    the first in that order is kept and the others are counted as duplicates,
    even when their labels disagree. PROGRESS, if given, is called after each
    message or failure with the number handled so far (a running total, not
    an increment), so a caller can draw a progress bar.

    Raises CorpusError if no source was given, if a CSV/TSV file has no
    recognisable header, or if no labelled message at all could be read.
    """
    if not (sources or ham_paths or spam_paths):
        raise CorpusError("no corpus given: name a folder, archive or CSV file of labelled mail")
    found: list[tuple[str, str, str, LabelledMessage]] = []
    failures: list[ReadFailure] = []
    unlabelled = 0
    for handled, item in enumerate(_iter_labelled_items(sources, ham_paths, spam_paths), 1):
        if isinstance(item, ReadFailure):
            failures.append(item)
        elif isinstance(item, _Unlabelled):
            unlabelled += 1
        else:
            found.append((item.source, item.label, item.sha256(), item))
        if progress is not None:
            progress(handled)
    kept = [entry[3] for entry in first_copies(found)]
    if not kept:
        raise CorpusError(
            _nothing_read_message(sources, ham_paths, spam_paths, unlabelled, failures)
        )
    return Corpus(kept, len(found) - len(kept), unlabelled, failures)


def first_copies(found: Iterable[Any]) -> list[Any]:
    """The entries kept of FOUND, tuples that start (source, label, sha256):
    sorted by those three, the first of each sha256 (load_corpus's rule)."""
    kept = []
    seen: set[str] = set()
    for entry in sorted(found, key=lambda entry: entry[:3]):
        if entry[2] not in seen:
            seen.add(entry[2])
            kept.append(entry)
    return kept


class CorpusEntry(NamedTuple):
    """One labelled message as CorpusReader gives it."""

    source: str
    label: str
    sha256: str
    """Of all the message's bytes (LabelledMessage.sha256)."""
    raw: bytes
    """Its first config.MAX_MESSAGE_BYTES, as load_corpus keeps them."""


class CorpusReader:
    """A corpus read one message at a time: load_corpus for a caller that
    keeps less than every message's bytes (training keeps their buckets).

    Iterating yields every labelled message as it is read, duplicates
    included, in reading order, and records its (source, label, sha256),
    the read failures and the unlabelled messages; ``kept()`` then gives
    the messages load_corpus keeps, by the same rule. PROGRESS as for
    load_corpus. Raises CorpusError as load_corpus does: at once when no
    source is given, while reading for a CSV/TSV file without a header row,
    from ``kept()`` when no labelled message was read.
    """

    def __init__(
        self,
        sources: Sequence[str | Path] = (),
        ham_paths: Sequence[str | Path] = (),
        spam_paths: Sequence[str | Path] = (),
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if not (sources or ham_paths or spam_paths):
            raise CorpusError(
                "no corpus given: name a folder, archive or CSV file of labelled mail"
            )
        self.sources, self.ham_paths, self.spam_paths = sources, ham_paths, spam_paths
        self.progress = progress
        self.found: list[tuple[str, str, str]] = []
        """(source, label, sha256) of every labelled message read, in reading order."""
        self.failures: list[ReadFailure] = []
        self.unlabelled = 0

    def __iter__(self) -> Iterator[CorpusEntry]:
        items = _iter_labelled_items(self.sources, self.ham_paths, self.spam_paths)
        for handled, item in enumerate(items, 1):
            entry = None
            if isinstance(item, ReadFailure):
                self.failures.append(item)
            elif isinstance(item, _Unlabelled):
                self.unlabelled += 1
            else:
                entry = CorpusEntry(item.source, item.label, item.sha256(), item.raw)
                self.found.append(entry[:3])
            if self.progress is not None:
                self.progress(handled)
            if entry is not None:
                yield entry

    def kept(self) -> list[tuple[str, str, str]]:
        """(source, label, sha256) of the messages load_corpus would keep, in
        its order; raises CorpusError when there are none."""
        kept = first_copies(self.found)
        if not kept:
            raise CorpusError(
                _nothing_read_message(
                    self.sources, self.ham_paths, self.spam_paths, self.unlabelled, self.failures
                )
            )
        return kept


def _nothing_read_message(
    sources: Sequence[str | Path],
    ham_paths: Sequence[str | Path],
    spam_paths: Sequence[str | Path],
    unlabelled: int,
    failures: list[ReadFailure],
) -> str:
    names = ", ".join(str(path) for path in (*sources, *ham_paths, *spam_paths))
    reasons = []
    if unlabelled:
        reasons.append(
            f"{unlabelled} message{'s' if unlabelled != 1 else ''} had no folder named "
            "ham or spam (or easy_ham, spam_2, ...) in their path"
        )
    if failures:
        first = failures[0]
        reasons.append(f"{len(failures)} could not be read (first: {first.source}: {first.reason})")
    detail = "; ".join(reasons) if reasons else "nothing was found there"
    return f"no labelled messages in {names}: {detail}"


def require_both_classes(corpus: Corpus, minimum: int) -> None:
    """Raise CorpusError when ham or spam has fewer than MINIMUM messages.

    The message names every short class, e.g. "only 3 spam messages found;
    at least 10 are needed".
    """
    require_counts(corpus.counts(), minimum)


def require_counts(counts: Mapping[str, int], minimum: int) -> None:
    """require_both_classes for the number of messages of each label."""
    short = [
        f"only {counts[label]} {label} message{'s' if counts[label] != 1 else ''}"
        if counts[label]
        else f"no {label} messages"
        for label in (HAM, SPAM)
        if counts[label] < minimum
    ]
    if short:
        raise CorpusError(f"{' and '.join(short)} found; at least {minimum} are needed")


# --------------------------------------------------------------------------
# The standard splits of the SpamAssassin corpus

SPLIT_NAMES = ("random", "time")
"""The names standard_split and write_split accept."""

# (folder in the archive, label, part of the `time` split), oldest first.
_STANDARD_FOLDERS = (
    ("easy_ham", HAM, "train"),
    ("easy_ham_2", HAM, "test"),
    ("hard_ham", HAM, "test"),
    ("spam", SPAM, "train"),
    ("spam_2", SPAM, "test"),
)

STANDARD_MESSAGE_COUNTS: dict[str, tuple[int, ...]] = {
    "easy_ham": (2500,),
    "easy_ham_2": (1400,),
    "hard_ham": (250,),
    "spam": (500,),
    "spam_2": (1396, 1397),
}
"""The messages each SpamAssassin archive holds, the only counts a standard
split is made of: the official spam_2 has 1,397, the copy rebuilt from the
npm package (the project's figures) 1,396. An archive of another count is
another corpus, and a split of it would be reported as the standard one:
five archives of 3 invented messages each gave a 7 + 5 / 2 + 1 "split"."""


class _Keyed(NamedTuple):
    key: str
    """"folder/filename", the order the random split is drawn in."""
    message: LabelledMessage


def _find_standard_archive(corpus_dir: Path, folder: str) -> Path | None:
    # The official archives carry a date prefix (20030228_spam.tar.bz2,
    # 20050311_spam_2.tar.bz2); the shared copies do not. The pattern is
    # anchored so spam does not pick up spam_2.
    pattern = re.compile(rf"(?:\d{{8}}_)?{re.escape(folder)}\.tar\.bz2")
    try:
        names = sorted(entry.name for entry in os.scandir(corpus_dir))
    except OSError:
        return None
    # The unprefixed name sorts after the prefixed ones; prefer it, since a
    # rebuilt copy such as the shared one is what the project's figures use.
    matches = [name for name in names if pattern.fullmatch(name)]
    return corpus_dir / matches[-1] if matches else None


def _read_standard_corpus(
    corpus_dir: Path, expected_counts: Mapping[str, Collection[int]] | None
) -> dict[str, list[_Keyed]]:
    if not os.path.isdir(corpus_dir):
        raise CorpusError(f"{corpus_dir}: no such folder (expected the SpamAssassin archives)")
    archives = []
    missing = []
    for folder, label, _part in _STANDARD_FOLDERS:
        archive = _find_standard_archive(corpus_dir, folder)
        if archive is None:
            missing.append(f"{folder}.tar.bz2")
        else:
            archives.append((folder, label, archive))
    if missing:
        raise CorpusError(
            f"{corpus_dir}: missing SpamAssassin archive{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (with or without a date prefix such as 20030228_)"
        )
    by_folder: dict[str, list[_Keyed]] = {}
    for folder, label, archive in archives:
        messages: list[_Keyed] = []
        try:
            stream = _open_regular(archive)
        except (_NotRegularFile, OSError) as error:
            raise CorpusError(f"{archive}: {_reason(error)}") from error
        with stream:
            # Members as they are: a standard split must be the same 6,046
            # messages for everyone, whatever an mbox heuristic would say.
            for found in _iter_archive(stream, str(archive), (), expand_mbox=False):
                if isinstance(found.item, ReadFailure):
                    raise CorpusError(f"{found.item.source}: {found.item.reason}")
                key = found.item.source[len(str(archive)) + 1 :]
                messages.append(
                    _Keyed(key, LabelledMessage(found.item.source, label, found.item.raw))
                )
        if not messages:
            raise CorpusError(f"{archive}: no messages in the archive")
        expected = None if expected_counts is None else expected_counts.get(folder)
        if expected is not None and len(messages) not in expected:
            counts = " or ".join(f"{count:,}" for count in sorted(expected))
            raise CorpusError(
                f"{archive} holds {len(messages):,} messages, not the {counts} of the "
                f"SpamAssassin {folder} archive, so no standard split can be made of it; "
                "fetch the corpus again (spamcli corpus fetch spamassassin)"
            )
        by_folder[folder] = messages
    return by_folder


def _standard_split_keyed(
    corpus_dir: str | Path, name: str, expected_counts: Mapping[str, Collection[int]] | None
) -> tuple[list[_Keyed], list[_Keyed]]:
    if name not in SPLIT_NAMES:
        raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
    by_folder = _read_standard_corpus(Path(corpus_dir), expected_counts)
    if name == "time":
        train = [
            keyed
            for folder, _, part in _STANDARD_FOLDERS
            if part == "train"
            for keyed in by_folder[folder]
        ]
        test = [
            keyed
            for folder, _, part in _STANDARD_FOLDERS
            if part == "test"
            for keyed in by_folder[folder]
        ]
    else:
        # Imported here: scikit-learn takes a second to import, and only
        # this function needs it.
        from sklearn.model_selection import train_test_split

        everything = sorted(
            (keyed for messages in by_folder.values() for keyed in messages),
            key=lambda keyed: keyed.key,
        )
        labels = [keyed.message.label for keyed in everything]
        train, test = train_test_split(everything, test_size=0.2, stratify=labels, random_state=42)
    return sorted(train, key=lambda keyed: keyed.key), sorted(test, key=lambda keyed: keyed.key)


def standard_split(
    corpus_dir: str | Path,
    name: str,
    expected_counts: Mapping[str, Collection[int]] | None = STANDARD_MESSAGE_COUNTS,
) -> tuple[list[LabelledMessage], list[LabelledMessage]]:
    """The project's standard (train, test) split NAME of the SpamAssassin archives in CORPUS_DIR.

    CORPUS_DIR holds easy_ham, easy_ham_2, hard_ham, spam and spam_2 as
    ``.tar.bz2``, with or without the official date prefix (``20030228_``).

    * ``random``: scikit-learn ``train_test_split`` over all messages (6,046
      in the shared copy; no deduplication) sorted by ``folder/filename``,
      ``test_size=0.2, stratify=labels, random_state=42``.
    * ``time``: train on easy_ham + spam, test on easy_ham_2 + hard_ham +
      spam_2 (later and harder).

    Both parts are sorted by ``folder/filename``, so ham and spam come in
    runs: shuffle before anything that takes the last part of its input as
    validation data (Keras' ``validation_split`` does).

    Raises ValueError for an unknown NAME, CorpusError for a missing,
    unreadable or corrupt archive, or one whose number of messages is not
    among EXPECTED_COUNTS' for its folder (by default STANDARD_MESSAGE_COUNTS;
    None accepts any number, for stand-ins of the corpus).
    """
    train, test = _standard_split_keyed(corpus_dir, name, expected_counts)
    return [keyed.message for keyed in train], [keyed.message for keyed in test]


def write_split(
    corpus_dir: str | Path,
    name: str,
    dest_dir: str | Path,
    expected_counts: Mapping[str, Collection[int]] | None = STANDARD_MESSAGE_COUNTS,
) -> dict[str, dict[str, int]]:
    """Write standard split NAME as message files under DEST_DIR, atomically.

    Files go to ``DEST/train/{ham,spam}/<folder>.<filename>`` and
    ``DEST/test/{ham,spam}/...``, so ``spamcli train DEST/train`` works.
    Everything is written into a hidden temporary sibling of DEST and renamed
    into place, so DEST is either absent, the old split or the new one,
    never half written. An existing DEST is replaced only if it is empty or
    holds nothing but ``train`` and ``test`` (a split written before): any
    other folder is refused with CorpusError rather than deleted.

    Returns the number of messages per part and label,
    ``{"train": {"ham": n, "spam": n}, "test": {...}}``. Raises ValueError for
    an unknown NAME and CorpusError for anything that cannot be read or
    written, or for archives of other counts than EXPECTED_COUNTS (as for
    standard_split).
    """
    # Absolute, so that "." or "out/.." still has a parent and a name for
    # the temporary sibling.
    dest = Path(os.path.abspath(dest_dir))
    if name not in SPLIT_NAMES:
        raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
    # A destination that will be refused is refused before the corpus is read.
    try:
        if os.path.lexists(dest):
            _check_replaceable(dest)
    except OSError as error:
        raise CorpusError(f"cannot write the split to {dest}: {_reason(error)}") from error
    train, test = _standard_split_keyed(corpus_dir, name, expected_counts)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Not tempfile.mkdtemp: that makes the folder private to its owner,
        # whereas mkdir() honours the user's umask, as the files inside do.
        staging = _sibling(dest, "partial")
        staging.mkdir()
    except OSError as error:
        raise CorpusError(f"cannot write the split to {dest}: {_reason(error)}") from error
    counts: dict[str, dict[str, int]] = {}
    try:
        for part, messages in (("train", train), ("test", test)):
            counts[part] = {HAM: 0, SPAM: 0}
            for label in (HAM, SPAM):
                (staging / part / label).mkdir(parents=True)
            for keyed in messages:
                file_name = keyed.key.replace("/", ".")
                (staging / part / keyed.message.label / file_name).write_bytes(keyed.message.raw)
                counts[part][keyed.message.label] += 1
        _replace_folder(staging, dest)
    except BaseException as error:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise CorpusError(f"cannot write the split to {dest}: {_reason(error)}") from error
        raise
    return counts


def _sibling(dest: Path, kind: str) -> Path:
    """An unused hidden name beside DEST, e.g. ``.split.3f9a1c2e.partial``.

    Hidden, so a crash that leaves it behind does not add its messages to a
    folder tree read later.
    """
    # os.urandom, which is what secrets.token_hex reads: importing secrets
    # (hmac, hashlib, random) cost a one-message filter 5 ms of start-up.
    return dest.parent / f".{dest.name}.{os.urandom(4).hex()}.{kind}"


def _check_replaceable(dest: Path) -> None:
    if os.path.islink(dest) or not os.path.isdir(dest):
        raise CorpusError(f"{dest} exists and is not a folder; refusing to replace it")
    # Replacing the folder a shell is in leaves that shell in a deleted folder.
    if Path.cwd() == dest or dest in Path.cwd().parents:
        raise CorpusError(f"{dest} is the current folder or holds it; refusing to replace it")
    extra = sorted(entry.name for entry in os.scandir(dest) if entry.name not in ("train", "test"))
    if extra:
        raise CorpusError(
            f"{dest} exists and holds more than a split (e.g. {extra[0]!r}); "
            "refusing to replace it: remove it or choose another folder"
        )


def _replace_folder(new: Path, dest: Path) -> None:
    """Rename NEW to DEST, replacing a DEST folder, with a rollback if that fails.

    rename() cannot replace a non-empty folder, so the old one is first moved
    aside; DEST is missing only between two renames on the same filesystem.
    """
    if not os.path.lexists(dest):
        new.rename(dest)
        return
    old = _sibling(dest, "old")
    dest.rename(old)
    try:
        new.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    import shutil

    shutil.rmtree(old, ignore_errors=True)
