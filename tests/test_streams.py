"""Tests of spamcli.streams, and of the commands that read stdin and write
mail to stdout, through real pipes, a file size limit and a full tmpfs.

A non-blocking stdin took `spamcli filter` the 128 KiB a pipe held at its
first read for the whole of a 3 MB message (exit 0), or stopped it with a
TypeError when the pipe was still empty; a raw stdout (PYTHONUNBUFFERED=1)
lost the end of the message under ``ulimit -f`` or on a full disk, exit 0.
Each process test starts ``.venv/bin/spamcli`` with the hand-made model of
conftest.py and is bounded in time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spamcli import streams
from spamcli.commands.options import EXIT_TEMPFAIL
from spamcli.corpus import RawMessage, read_stream

SPAMCLI = Path(sys.executable).with_name("spamcli")
PROCESS_TIMEOUT = 120
PIECE_BYTES = 64 * 1024

pytestmark = pytest.mark.skipif(
    not SPAMCLI.exists(), reason="spamcli is not installed beside this Python"
)


def big_message(size: int = 3_000_000) -> bytes:
    """A plain message of about SIZE bytes, written for these tests."""
    header = b"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: the minutes\n\n"
    line = b"Notes from the planning meeting, with the action items and owners.\n"
    return header + line * ((size - len(header)) // len(line))


def environment(**changes: str) -> dict[str, str]:
    """This process's environment with CHANGES; PYTHONUNBUFFERED left out unless given."""
    base = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    return {**base, **changes}


def write_slowly(descriptor: int, data: bytes, first_delay: float = 0.0) -> None:
    """DATA in 64 KiB pieces with short sleeps between them, then close.

    Gives up when the reader has taken nothing for 10 s or is gone: a reader
    that stopped early (the defect) must fail its test, not hang it.
    """
    os.set_blocking(descriptor, False)
    try:
        time.sleep(first_delay)
        view = memoryview(data)
        for start in range(0, len(view), PIECE_BYTES):
            piece, stalled_since = view[start : start + PIECE_BYTES], time.monotonic()
            while piece:
                try:
                    piece = piece[os.write(descriptor, piece) :]
                except BlockingIOError:
                    if time.monotonic() - stalled_since > 10:
                        return
                    time.sleep(0.01)
            time.sleep(0.002)
    except BrokenPipeError:
        return
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def nonblocking_pipe_writer(data: bytes, first_delay: float) -> Iterator[int]:
    """The read end of a pipe in O_NONBLOCK mode; a thread writes DATA slowly."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    writer = threading.Thread(target=write_slowly, args=(write_end, data, first_delay))
    writer.start()
    try:
        yield read_end
    finally:
        writer.join(timeout=PROCESS_TIMEOUT)
        os.close(read_end)


def output_fields(output: bytes, raw: bytes) -> bytes:
    """OUTPUT without RAW at its end: the fields filter added, checked to be three lines."""
    assert len(output) > len(raw) and output.endswith(raw), (len(output), len(raw))
    fields = output[: len(output) - len(raw)]
    assert fields.count(b"\n") == 3 and fields.startswith(b"X-Spam-Flag: "), fields
    return fields


# --------------------------------------------------------------------------
# The helpers


@pytest.mark.parametrize("first_delay", [0.0, 0.3], ids=["filling", "empty-at-first"])
@pytest.mark.parametrize("keep", [None, 100_000], ids=["whole", "kept"])
def test_streams_read_all_waits_on_a_nonblocking_pipe(first_delay: float, keep: int | None) -> None:
    data = big_message()
    seen: list[bytes] = []

    with nonblocking_pipe_writer(data, first_delay) as read_end:
        got = streams.read_all(read_end, keep, seen.append)

    assert got == (data if keep is None else data[:keep])
    assert b"".join(seen) == data  # the rest was read, not left to block the writer


def test_streams_write_all_finishes_a_short_write_or_raises(tmp_path: Path) -> None:
    # RLIMIT_FSIZE: the write that crosses it is short, the next one EFBIG.
    script = (
        "import resource, sys\n"
        "from spamcli import streams\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "try:\n"
        "    streams.write_all(1, bytes(300_000))\n"
        "except OSError as error:\n"
        "    print(error.errno, file=sys.stderr)\n"
    )
    with open(tmp_path / "out", "wb") as out:
        completed = subprocess.run(
            [sys.executable, "-c", script],
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=PROCESS_TIMEOUT,
            check=True,
        )

    assert completed.stderr.strip() == b"27"  # EFBIG
    assert (tmp_path / "out").stat().st_size == 100_000


def test_streams_write_all_waits_on_a_full_nonblocking_pipe() -> None:
    data = big_message()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    received: list[bytes] = []

    def read_slowly() -> None:
        time.sleep(0.2)
        while chunk := os.read(read_end, PIECE_BYTES):
            received.append(chunk)
            time.sleep(0.001)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        streams.write_all(write_end, data)
    finally:
        os.close(write_end)
        reader.join(timeout=PROCESS_TIMEOUT)
        os.close(read_end)

    assert b"".join(received) == data


def test_streams_write_stream_checks_counts_without_a_descriptor() -> None:
    class Stingy(io.RawIOBase):
        """Takes at most 10 bytes a write, as a raw file may."""

        def __init__(self) -> None:
            self.taken = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            piece = bytes(memoryview(data))[:10]  # type: ignore[arg-type]
            self.taken += piece
            return len(piece)

        def fileno(self) -> int:
            raise io.UnsupportedOperation("no descriptor")

    stingy = Stingy()

    streams.write_stream(stingy, [b"a" * 25, memoryview(b"b" * 7)])

    assert bytes(stingy.taken) == b"a" * 25 + b"b" * 7


def test_streams_corpus_read_stream_waits_on_a_nonblocking_pipe() -> None:
    # How predict - and learn - read stdin (learn keeps the whole message).
    data = big_message()

    with (
        nonblocking_pipe_writer(data, 0.3) as read_end,
        open(read_end, "rb", closefd=False) as stdin,
    ):
        whole = read_stream(stdin, "-")

    assert whole == RawMessage("-", data)

    with (
        nonblocking_pipe_writer(data, 0.0) as read_end,
        open(read_end, "rb", closefd=False) as stdin,
    ):
        kept = read_stream(stdin, "-", read_limit=1000, digest_whole=True)

    assert kept == RawMessage("-", data[:1000], whole_sha256=hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------
# filter and predict through real pipes


@pytest.mark.parametrize("first_delay", [0.0, 0.5], ids=["filling", "empty-at-first"])
def test_streams_filter_reads_a_nonblocking_stdin_to_its_end(
    tmp_path: Path, synthetic_model_dir: Path, first_delay: float
) -> None:
    # 3 MB in, 128 KiB out, exit 0; with the pipe empty at first, a TypeError.
    raw = big_message()
    output_path = tmp_path / "out"

    with nonblocking_pipe_writer(raw, first_delay) as read_end, open(output_path, "wb") as out:
        completed = subprocess.run(
            [SPAMCLI, "filter", "-m", synthetic_model_dir],
            stdin=read_end,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=PROCESS_TIMEOUT,
            env=environment(),
        )

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""
    output_fields(output_path.read_bytes(), raw)


def test_streams_predict_reads_a_nonblocking_stdin_to_its_end(synthetic_model_dir: Path) -> None:
    raw = big_message()
    reference = subprocess.run(
        [SPAMCLI, "predict", "-m", synthetic_model_dir, "-"],
        input=raw,
        capture_output=True,
        timeout=PROCESS_TIMEOUT,
    )

    with nonblocking_pipe_writer(raw, 0.5) as read_end:
        completed = subprocess.run(
            [SPAMCLI, "predict", "-m", synthetic_model_dir, "-"],
            stdin=read_end,
            capture_output=True,
            timeout=PROCESS_TIMEOUT,
        )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == reference.stdout != b""


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["raw-stdout", "buffered-stdout"])
def test_streams_filter_writes_a_full_nonblocking_stdout_whole(
    synthetic_model_dir: Path, unbuffered: str
) -> None:
    raw = big_message()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    process = subprocess.Popen(
        [SPAMCLI, "filter", "-m", synthetic_model_dir],
        stdin=subprocess.PIPE,
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=environment(PYTHONUNBUFFERED=unbuffered) if unbuffered else environment(),
    )
    os.close(write_end)
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(raw)
    process.stdin.close()
    time.sleep(0.5)  # let the pipe fill up before anything is read
    received = []
    while chunk := os.read(read_end, PIECE_BYTES):
        received.append(chunk)
        time.sleep(0.001)
    os.close(read_end)
    stderr = process.stderr.read()
    process.stderr.close()
    process.wait(timeout=PROCESS_TIMEOUT)

    assert process.returncode == 0, stderr
    output_fields(b"".join(received), raw)


def limit_file_size() -> None:
    # `ulimit -f 1000` in bash: 1,000 blocks of 1,024 bytes.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_024_000, 1_024_000))


@pytest.mark.parametrize(
    ("flags", "status"), [([], 1), (["--tempfail"], EXIT_TEMPFAIL)], ids=["plain", "tempfail"]
)
@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["raw-stdout", "buffered-stdout"])
def test_streams_filter_fails_when_the_message_is_cut_by_a_file_size_limit(
    tmp_path: Path, synthetic_model_dir: Path, flags: list[str], status: int, unbuffered: str
) -> None:
    # (ulimit -f 1000; PYTHONUNBUFFERED=1 spamcli filter < big.eml > out; echo $?) said 0.
    message_path = tmp_path / "big.eml"
    message_path.write_bytes(big_message())
    with open(message_path, "rb") as message, open(tmp_path / "out", "wb") as out:
        completed = subprocess.run(
            [SPAMCLI, "filter", "-m", synthetic_model_dir, *flags],
            stdin=message,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=PROCESS_TIMEOUT,
            preexec_fn=limit_file_size,
            env=environment(PYTHONUNBUFFERED=unbuffered) if unbuffered else environment(),
        )

    assert completed.returncode == status
    assert b"filter: cannot write the message" in completed.stderr
    assert b"File too large" in completed.stderr


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for the test (root only)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], timeout=30, check=False)


def test_streams_filter_fails_with_tempfail_on_a_full_disk(
    tmp_path: Path, synthetic_model_dir: Path, small_tmpfs: Path
) -> None:
    # On a 1 MiB tmpfs: exit 0 even with --tempfail, and 1 MiB of a 3 MB message.
    message_path = tmp_path / "big.eml"
    message_path.write_bytes(big_message())
    with open(message_path, "rb") as message, open(small_tmpfs / "out", "wb") as out:
        completed = subprocess.run(
            [SPAMCLI, "filter", "-m", synthetic_model_dir, "--tempfail"],
            stdin=message,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=PROCESS_TIMEOUT,
            env=environment(PYTHONUNBUFFERED="1"),
        )

    assert completed.returncode == EXIT_TEMPFAIL
    assert b"No space left on device" in completed.stderr
