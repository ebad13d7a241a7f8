"""Hostile and broken input, in one place, for every command that reads mail.

Two lists:

* ``HOSTILE_MESSAGES``: (name, builder) pairs whose builder returns the bytes
  of one message. Each is fed to a command as a file and on stdin; the
  command must classify it (one line, a score in [0, 1]) within bounded time
  and memory.
* ``HOSTILE_PATHS``: (name, builder) pairs whose builder makes something on
  disk under a given folder (a missing path, a FIFO, a broken link...) and
  returns the path to give the command, with the outcome expected of it.

``tests/test_hostile.py`` runs both through ``spamcli predict``, and
``bench/hostile_inputs.py`` measures the time and memory each message costs.
Every message is generated here; none is taken from a real corpus.
"""

from __future__ import annotations

import base64
import os
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MEBIBYTE = 1 << 20

# An ordinary message: the baseline the hostile ones are measured against.
ORDINARY = (
    b"From: Alice Martin <alice@example.org>\n"
    b"To: team@example.org\n"
    b"Subject: Notes from Tuesday's planning meeting\n"
    b"Message-ID: <ordinary-1@example.org>\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"\n"
    b"Hi,\n\nThe agenda and the minutes are attached; the roadmap review moves to\n"
    b"Thursday. Let me know if you have questions.\n\nCheers,\nAlice\n"
)

HEADERS = (
    b"From: Prize Department <winner@lucky-prize.example>\n"
    b"To: undisclosed-recipients:;\n"
    b"Subject: Claim your prize now!\n"
    b"MIME-Version: 1.0\n"
)


def png_image() -> bytes:
    """A valid 16x16 grey PNG, made with zlib and struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes([128]) * 16 for _ in range(16))
    header = struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def random_bytes(size: int = 64 * 1024, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def all_header(count: int = 3_500_000) -> bytes:
    """59 MiB of short header lines and no body at all."""
    return b"".join(b"X-Line-%d: v\n" % number for number in range(count))


def huge_message(size: int = 50 * MEBIBYTE) -> bytes:
    """A plain-text message of SIZE bytes: a line of prize words, repeated."""
    line = b"claim your prize now winner cash jackpot free gift voucher today\n"
    body = line * (size // len(line) + 1)
    message = HEADERS + b"Content-Type: text/plain\n\n" + body
    return message[:size]


def long_header_line(size: int = MEBIBYTE) -> bytes:
    """A Subject header that is one line of SIZE bytes."""
    words = b"prize " * (size // 6)
    return b"From: a@example.org\nSubject: " + words + b"\n\nA short body.\n"


def many_header_lines(count: int = 100_000) -> bytes:
    lines = b"".join(b"X-Header-%d: value %d\n" % (number, number) for number in range(count))
    return b"From: a@example.org\nSubject: many headers\n" + lines + b"\nA short body.\n"


def deep_multipart(depth: int = 1_000) -> bytes:
    """Multipart parts nested DEPTH deep, the text at the bottom."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level)
        for level in range(depth)
    )
    closing = b"".join(b"\n--b%d--\n" % level for level in reversed(range(depth)))
    return HEADERS + opening + b"Content-Type: text/plain\n\nclaim your prize now\n" + closing


def many_parts(count: int = 10_000) -> bytes:
    parts = b"".join(
        b"--sep\nContent-Type: text/plain\n\npart %d of the prize offer\n" % number
        for number in range(count)
    )
    return HEADERS + b'Content-Type: multipart/mixed; boundary="sep"\n\n' + parts + b"--sep--\n"


def invalid_base64() -> bytes:
    return (
        HEADERS
        + b"Content-Type: text/plain; charset=utf-8\n"
        + b"Content-Transfer-Encoding: base64\n\n"
        + b"Y2xhaW0geW91ciBwcml6ZQ=!!!===@@@ not base64 at all \xff\xfe ===\nQQ\n"
    )


def invalid_quoted_printable() -> bytes:
    return (
        HEADERS
        + b"Content-Type: text/plain; charset=utf-8\n"
        + b"Content-Transfer-Encoding: quoted-printable\n\n"
        + b"claim =ZZ your =\n=4 prize =E2=82 now =\xff=\n=="
    )


def unknown_charset() -> bytes:
    return (
        HEADERS.replace(b"Subject: Claim your prize now!", b"Subject: =?x-no-such?Q?prize?=")
        + b"Content-Type: text/plain; charset=x-no-such-charset\n\n"
        + b"claim your prize \xe9\xe8 now\n"
    )


def lying_charset() -> bytes:
    """Declares UTF-16 and a refused codec, writes Latin-1 and UTF-8."""
    return (
        HEADERS
        + b'Content-Type: multipart/mixed; boundary="sep"\n\n'
        + b"--sep\nContent-Type: text/plain; charset=utf-16\n\nclaim your prize \xe9\n"
        + b"--sep\nContent-Type: text/plain; charset=unicode-escape\n\n\\u0041 \\N{BULLET}\n"
        + b"--sep\nContent-Type: text/plain; charset=utf-8\n\ncaf\xe9 \xff\xfe\n"
        + b"--sep--\n"
    )


def nul_bytes() -> bytes:
    return (
        b"From: a\x00b@example.org\nSubject: prize\x00\x00 now\n\n"
        + b"claim\x00your\x00prize\n"
        + b"\x00" * 10_000
    )


def zip_bomb_base64(size: int = 20 * MEBIBYTE) -> bytes:
    """A text part whose base64 decodes to SIZE * 3/4 zero bytes."""
    encoded = base64.encodebytes(bytes(size * 3 // 4))
    return (
        HEADERS
        + b"Content-Type: text/plain; charset=utf-8\n"
        + b"Content-Transfer-Encoding: base64\n\n"
        + encoded
    )


def empty_lines(count: int = 1_000_000) -> bytes:
    """A message whose body is COUNT empty lines: the parser's cost is per line."""
    return HEADERS + b"Content-Type: text/plain\n\nclaim your prize\n" + b"\n" * count


def mbox_empty_lines(size: int = 50 * MEBIBYTE) -> bytes:
    """One message in mbox form (an envelope line first), its body SIZE empty lines."""
    return b"From winner@lucky-prize.example Mon Jan  1 00:00:00 2024\n" + empty_lines(size)


@dataclass(frozen=True)
class HostileMessage:
    name: str
    build: Callable[[], bytes]
    description: str


HOSTILE_MESSAGES: tuple[HostileMessage, ...] = (
    HostileMessage("ordinary", lambda: ORDINARY, "an ordinary plain-text message (the baseline)"),
    HostileMessage("empty", lambda: b"", "0 bytes"),
    HostileMessage("whitespace", lambda: b" \t\r\n" * 256, "spaces, tabs and line breaks only"),
    HostileMessage("png", png_image, "a PNG image, not mail"),
    HostileMessage("random-bytes", random_bytes, "64 KiB of random bytes"),
    HostileMessage("50mb-message", huge_message, "a 50 MiB plain-text message"),
    HostileMessage("all-header", all_header, "3,500,000 short header lines, no body"),
    HostileMessage("1mb-header-line", long_header_line, "a Subject header of 1 MiB on one line"),
    HostileMessage("100k-header-lines", many_header_lines, "100,000 header lines"),
    HostileMessage("multipart-1000-deep", deep_multipart, "multipart nested 1,000 deep"),
    HostileMessage("10k-parts", many_parts, "a multipart of 10,000 parts"),
    HostileMessage("invalid-base64", invalid_base64, "a base64 body that is not base64"),
    HostileMessage(
        "invalid-quoted-printable", invalid_quoted_printable, "broken quoted-printable escapes"
    ),
    HostileMessage("unknown-charset", unknown_charset, "a charset no codec knows"),
    HostileMessage("lying-charset", lying_charset, "UTF-16 and unicode-escape declared, not used"),
    HostileMessage("nul-bytes", nul_bytes, "NUL bytes in headers and body"),
    HostileMessage(
        "base64-zeros-20mb", zip_bomb_base64, "20 MiB of base64 that decodes to 15 MiB of zeros"
    ),
    HostileMessage("1m-empty-lines", empty_lines, "a body of 1,000,000 empty lines"),
    HostileMessage(
        "mbox-50m-empty-lines",
        mbox_empty_lines,
        "an mbox file of one message whose body is 50 million empty lines",
    ),
)

# Messages of tens of megabytes: slow to build and to pass around in tests.
BIG_MESSAGES = frozenset({"50mb-message", "all-header", "mbox-50m-empty-lines"})


def hostile_message(name: str) -> HostileMessage:
    for message in HOSTILE_MESSAGES:
        if message.name == name:
            return message
    raise KeyError(name)


# --------------------------------------------------------------------------
# Paths


def missing_path(folder: Path) -> Path:
    return folder / "no-such-message.eml"


def unreadable_folder(folder: Path) -> Path:
    """A folder holding one message, without read permission (mode 000)."""
    locked = folder / "locked"
    locked.mkdir()
    (locked / "message.eml").write_bytes(ORDINARY)
    locked.chmod(0)
    return locked


def broken_symlink(folder: Path) -> Path:
    link = folder / "dangling.eml"
    link.symlink_to(folder / "gone.eml")
    return link


def folder_with_fifo(folder: Path) -> Path:
    """A folder with an ordinary message and a FIFO nobody writes to."""
    inbox = folder / "inbox"
    inbox.mkdir()
    (inbox / "1.eml").write_bytes(ORDINARY)
    os.mkfifo(inbox / "2.fifo")
    return inbox


@dataclass(frozen=True)
class HostilePath:
    name: str
    build: Callable[[Path], Path]
    description: str


HOSTILE_PATHS: tuple[HostilePath, ...] = (
    HostilePath("missing-path", missing_path, "a path that does not exist"),
    HostilePath("unreadable-folder", unreadable_folder, "a folder without read permission"),
    HostilePath("broken-symlink", broken_symlink, "a symbolic link to nothing"),
    HostilePath("fifo-in-folder", folder_with_fifo, "a FIFO among the files of a folder"),
)
