"""Sort a Maildir: move its spam, and if asked its unsure mail, into Maildir++ subfolders.

Only the Maildir's own ``new/`` and ``cur/`` are read; its subfolders (the
spam folder among them) are never touched, and neither is ``tmp/``, where
mail is still being delivered. A message keeps its file name, flags
(``:2,S``) included, and goes to the same part of the subfolder it came
from: ``cur/123.host:2,S`` to ``.Junk/cur/123.host:2,S``.

Mail is moved the way Maildir delivers it, by renaming within one
filesystem, never by copying and deleting, and never over an existing
file: a message is at its old name or its new one, and a crash can at worst
leave it at both (see ``_move_without_replacing``), never at neither.

Another mail program (an IMAP server, a mail reader) may move, flag or
delete messages while a sort runs. A message whose file is gone, or is no
longer the file that was read, when its turn to move comes is skipped and
reported; the others are sorted all the same.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spamcli.config import MAX_MESSAGE_BYTES, SPAM, UNSURE
from spamcli.corpus import RawMessage, ReadFailure
from spamcli.errors import MailboxError
from spamcli.scoring import Cutoffs, Scorer, classify

DEFAULT_SPAM_FOLDER = ".Junk"
# The parts of a Maildir that hold delivered mail, in the order they are read.
MAIL_PARTS = ("cur", "new")
MAILDIR_PARTS = ("tmp", "new", "cur")
# A folder made for sorted mail is private to its owner, like the Maildir
# that mail servers create (dovecot and Courier make theirs 0700).
FOLDER_MODE = 0o700
# The file that marks a Maildir++ subfolder (Courier's maildirmake -f and
# dovecot create it; Courier's quota code looks for it).
SUBFOLDER_MARKER = "maildirfolder"

# os.open flags: never block on a FIFO, never follow a symbolic link (the
# link, not its target, is what a rename would move).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


@dataclass(frozen=True)
class Moved:
    """A message moved (or, in a dry run, that would have been)."""

    label: str
    score: float
    source_path: Path
    destination_path: Path


@dataclass(frozen=True)
class Kept:
    """A message left where it is: ham, or unsure without an unsure folder."""

    label: str
    score: float
    source_path: Path


@dataclass(frozen=True)
class Skipped:
    """A message that could not be read or moved; it is left where it was."""

    source_path: Path
    reason: str


SortEvent = Moved | Kept | Skipped


def check_folder_name(name: str) -> str:
    """NAME if it is a Maildir++ subfolder name (``.Junk``, ``.Archive.Spam``).

    Raises ValueError otherwise: the name must start with a dot, so that
    mail readers list it as a folder and nothing that reads the Maildir as a
    tree of messages takes it for mail, and must not hold a slash.
    """
    if not name.startswith(".") or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(
            f"{name!r} is not a Maildir++ folder name: it must start with a dot and "
            "hold no slash, e.g. .Junk"
        )
    return name


@dataclass(frozen=True)
class _Listed:
    """A message file found in new/ or cur/."""

    path: Path
    part: str


@dataclass(frozen=True)
class _Read:
    """What was read of a message file, and which file it was."""

    listed: _Listed
    identity: tuple[int, int, int, int]


def sort_maildir(
    scorer: Scorer,
    maildir: str | Path,
    cutoffs: Cutoffs | None = None,
    spam_folder: str = DEFAULT_SPAM_FOLDER,
    unsure_folder: str | None = None,
    dry_run: bool = False,
    workers: int | None = None,
) -> Iterator[SortEvent]:
    """Classify every message in MAILDIR's new/ and cur/ and move the spam
    into the subfolder SPAM_FOLDER, the unsure mail into UNSURE_FOLDER if
    given (else it stays). One event per message, in the order read (cur/,
    then new/, each sorted by name).

    The Maildir is checked, its folders listed and the subfolders created
    (``tmp``, ``new`` and ``cur``, mode 0700) before this returns; in a dry
    run nothing is created or moved, and the events say what would be.

    Raises ValueError for a folder name that is not a Maildir++ name, and
    MailboxError when MAILDIR is not a Maildir, cannot be listed, or a
    subfolder cannot be made or is on another filesystem. A message that
    cannot be read or moved is a Skipped event, not an error.
    """
    maildir_path = Path(maildir)
    destinations = {SPAM: maildir_path / check_folder_name(spam_folder)}
    if unsure_folder is not None:
        destinations[UNSURE] = maildir_path / check_folder_name(unsure_folder)
    if not all(os.path.isdir(maildir_path / part) for part in MAILDIR_PARTS):
        raise MailboxError(f"{maildir_path}: not a Maildir (it needs cur, new and tmp folders)")
    listed = _list_messages(maildir_path)
    if not dry_run:
        for folder in sorted(set(destinations.values())):
            _make_subfolder(maildir_path, folder)
    return _sort(scorer, listed, cutoffs, destinations, dry_run, workers)


def _list_messages(maildir: Path) -> list[_Listed]:
    listed: list[_Listed] = []
    for part in MAIL_PARTS:
        folder = maildir / part
        try:
            with os.scandir(folder) as scan:
                # Hidden files are a mail program's own; a folder is no message.
                names = sorted(
                    entry.name
                    for entry in scan
                    if not entry.name.startswith(".") and not entry.is_dir(follow_symlinks=False)
                )
        except OSError as error:
            raise MailboxError(f"{folder}: {_reason(error)}") from error
        listed.extend(_Listed(folder / name, part) for name in names)
    return listed


def _make_subfolder(maildir: Path, folder: Path) -> None:
    """FOLDER with tmp/, new/ and cur/, made where missing, on MAILDIR's filesystem."""
    try:
        created = _make_folder(folder)
        for part in MAILDIR_PARTS:
            _make_folder(folder / part)
        if created:
            # O_EXCL: never truncate a marker another program wrote.
            os.close(os.open(folder / SUBFOLDER_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        same_filesystem = all(
            os.stat(maildir / part).st_dev == os.stat(folder / part).st_dev for part in MAIL_PARTS
        )
    except OSError as error:
        raise MailboxError(f"cannot make the folder {folder}: {_reason(error)}") from error
    if not same_filesystem:
        raise MailboxError(
            f"{folder} is on another filesystem than {maildir}: mail is only moved by "
            "renaming, never copied"
        )


def _make_folder(path: Path) -> bool:
    """Make PATH (mode 0700) unless it is a folder already; True if it was made."""
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder") from None
        return False
    return True


def _sort(
    scorer: Scorer,
    listed: list[_Listed],
    cutoffs: Cutoffs | None,
    destinations: dict[str, Path],
    dry_run: bool,
    workers: int | None,
) -> Iterator[SortEvent]:
    # What was read of each message still being classified, by source.
    pending: dict[str, _Read] = {}
    messages = _read_messages(listed, pending)
    for item in classify(scorer, messages, cutoffs, workers=workers):
        if isinstance(item, ReadFailure):
            yield Skipped(Path(item.source), item.reason)
            continue
        read = pending.pop(item.source)
        folder = destinations.get(item.label)
        if folder is None:
            yield Kept(item.label, item.score, read.listed.path)
            continue
        destination = folder / read.listed.part / read.listed.path.name
        problem = _move(read, destination, dry_run)
        if problem is None:
            yield Moved(item.label, item.score, read.listed.path, destination)
        else:
            yield Skipped(read.listed.path, problem)


def _read_messages(
    listed: Iterable[_Listed], pending: dict[str, _Read]
) -> Iterator[RawMessage | ReadFailure]:
    for entry in listed:
        source = str(entry.path)
        try:
            raw, identity = _read_message(entry.path)
        except FileNotFoundError:
            yield ReadFailure(
                source, "vanished before it was read (moved or deleted by another program)"
            )
            continue
        except OSError as error:
            yield ReadFailure(source, _reason(error))
            continue
        pending[source] = _Read(entry, identity)
        yield RawMessage(source, raw)


def _read_message(path: Path) -> tuple[bytes, tuple[int, int, int, int]]:
    """The first MAX_MESSAGE_BYTES of a message file (all the scorer reads:
    a 50 MB attachment costs no memory) and which file it was."""
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link, not a message file") from None
        raise
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks = []
        remaining = MAX_MESSAGE_BYTES
        while remaining > 0:
            chunk = os.read(descriptor, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks), _identity(status)
    finally:
        os.close(descriptor)


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    """The same file, unchanged: mail programs rename a message to flag it and
    never rewrite it in place, so this only differs when it was replaced."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _move(read: _Read, destination: Path, dry_run: bool) -> str | None:
    """Move a message unless it changed or the name is taken; why not, or None."""
    source = read.listed.path
    try:
        if _identity(os.lstat(source)) != read.identity:
            return "changed while sorting (replaced by another program); left in place"
        if dry_run:
            if os.path.lexists(destination):
                return f"{destination} exists; it would not be replaced"
            return None
        _move_without_replacing(source, destination)
    except FileNotFoundError:
        return "vanished while sorting (moved or deleted by another program)"
    except FileExistsError:
        return f"{destination} exists; not replaced, the message is left in place"
    except OSError as error:
        return f"cannot move it to {destination}: {_reason(error)}"
    return None


def _move_without_replacing(source: Path, destination: Path) -> None:
    """Rename SOURCE to DESTINATION, raising FileExistsError if that name is taken.

    os.rename would silently replace an existing file. Linux renameat2 with
    RENAME_NOREPLACE refuses in one step; where it is missing or the
    filesystem does not support it, a hard link (which never replaces) and
    an unlink do the same in two: between them the message has both names,
    so a crash there leaves a duplicate, never a loss.
    """
    if _rename_no_replace(source, destination):
        return
    os.link(source, destination, follow_symlinks=False)
    os.unlink(source)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
# renameat2 errors that mean "not here", not "this rename failed": no such
# system call, or a filesystem that does not support the flag.
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def _rename_no_replace(source: Path, destination: Path) -> bool:
    """Rename with RENAME_NOREPLACE; False where that is not available."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    import ctypes

    result = renameat2(
        _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), _RENAME_NOREPLACE
    )
    if result == 0:
        return True
    error_number = ctypes.get_errno()
    if error_number in _UNSUPPORTED:
        return False
    raise OSError(error_number, os.strerror(error_number), str(source))


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2, or None (not Linux, or a C library without it)."""
    from spamcli.artifacts import libc_renameat2

    return libc_renameat2()


def _reason(error: OSError) -> str:
    text = error.strerror or str(error) or type(error).__name__
    return " ".join(text.split())
