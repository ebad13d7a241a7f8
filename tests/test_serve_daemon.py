"""`spamcli serve` as the process a mail server runs: the command line, the
pre-forked workers, the Unix sockets, SIGHUP and SIGTERM, a worker that
dies, systemd's readiness protocol and the unit in contrib/."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from serve_support import (
    REPOSITORY,
    DaemonProcess,
    children_of,
    free_port,
    http_request,
    metric,
    needs_serve_extra,
    parse_answer,
    spamd_exchange,
    spamd_request,
)

from spamcli.cli import cli

UNIT = REPOSITORY / "contrib" / "spamcli.service"
MESSAGE = b"From: a@example.org\nSubject: the agenda for Tuesday\n\nSee you at the meeting.\n"


def check_over(port: int, raw: bytes = MESSAGE) -> str:
    answer = parse_answer(spamd_exchange(port, spamd_request("CHECK", raw)))
    assert answer.status == "SPAMD/1.1 0 EX_OK", answer
    return answer.headers["Spam"]


def check_over_unix(path: Path, raw: bytes = MESSAGE) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(20)
        connection.connect(str(path))
        connection.sendall(spamd_request("CHECK", raw))
        connection.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    return parse_answer(data).headers["Spam"]


# --------------------------------------------------------------------------
# The command line


def test_serve_check_prints_what_would_be_served(trained_model_dir: Path, tmp_path: Path) -> None:
    needs_serve_extra("aiohttp", "Milter")
    result = CliRunner().invoke(
        cli,
        [
            "serve", "--check", "-m", str(trained_model_dir),
            "--listen", "127.0.0.1:7830", "--socket", str(tmp_path / "spamd.sock"),
            "--http", "127.0.0.1:11333", "--milter", "inet:11332",
            "--workers", "2", "--allow-tell", "--max-size", "1000",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"model: {trained_model_dir} (")
    assert re.match(r"spam cut-off: [01]\.\d{6} = 5\.0 points; ham cut-off: [01]\.\d{6}", lines[1])
    assert "spamd: 127.0.0.1:7830" in lines
    assert f"spamd: unix:{tmp_path / 'spamd.sock'} (mode 0660)" in lines
    assert "http: 127.0.0.1:11333" in lines
    assert "milter: inet:11332@127.0.0.1 (on error: accept)" in lines
    assert "workers: 2; allowed clients: 127.0.0.0/8, ::1/128" in lines
    assert lines[-2].startswith("limits: messages up to 1000 bytes")
    assert lines[-2].endswith("learning on")
    assert lines[-1] == "log: stderr"
    assert not (tmp_path / "spamd.sock").exists()  # nothing was opened


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--listen", "0.0.0.0:7830"], "not a loopback address"),
        (["--http", "192.0.2.1:11333"], "--allowed-ips"),
        (["--listen", "mail.example.org:783"], "not an IP address"),
        (["--milter", "inet:11332@192.0.2.1", "-A", "192.0.2.0/24"], "libmilter cannot restrict"),
        (["--milter", "tcp:11332"], "unknown kind"),
        (["--socket-mode", "999"], "not an octal mode"),
        (["-A", "mail.example.org"], "hostnames are not supported"),
        (["--threshold", "0.4", "--ham-cutoff", "0.6"], "must not be above"),
    ],
)
def test_serve_refuses_what_cannot_work(
    trained_model_dir: Path, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["serve", "--check", "-m", str(trained_model_dir), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_serve_non_loopback_needs_allowed_ips(trained_model_dir: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["serve", "--check", "-m", str(trained_model_dir), "--listen", "0.0.0.0:7830",
         "-A", "10.0.0.0/8", "--allowed-ips", "127.0.0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "allowed clients: 10.0.0.0/8, 127.0.0.1/32" in result.stdout


def test_serve_names_the_extra_to_install(
    trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spamcli import extras

    monkeypatch.setattr(extras, "is_installed", lambda module: False)
    for option, value, package in (
        ("--http", "127.0.0.1:11333", "aiohttp"),
        ("--milter", "inet:11332", "pymilter"),
    ):
        result = CliRunner().invoke(
            cli, ["serve", "--check", "-m", str(trained_model_dir), option, value]
        )
        assert result.exit_code == 1
        assert f"{package}, which is not installed: pip install 'spamcli[serve]'" in result.output
    # The spamd protocol needs no extra.
    result = CliRunner().invoke(cli, ["serve", "--check", "-m", str(trained_model_dir)])
    assert result.exit_code == 0 and "spamd: 127.0.0.1:783" in result.stdout


def test_serve_a_missing_model_stops_it_before_it_listens(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "-m", str(tmp_path / "nowhere"), "--listen", "127.0.0.1:0"]
    )
    assert result.exit_code == 1
    assert "nowhere" in result.output


# --------------------------------------------------------------------------
# The daemon


def test_serve_daemon_workers_sockets_and_sigterm(trained_model_dir: Path, tmp_path: Path) -> None:
    needs_serve_extra("aiohttp")
    socket_path = tmp_path / "spamd.sock"
    arguments = [
        "-m", str(trained_model_dir), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
        "--socket", str(socket_path), "--workers", "2",
    ]  # fmt: skip
    with DaemonProcess(arguments) as daemon:
        spamd_port, http_port = daemon.port("spamd"), daemon.port("http")
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o660
        assert check_over(spamd_port) == check_over_unix(socket_path)
        for _ in range(20):  # enough that both workers answer some
            check_over(spamd_port)
        page = http_request(http_port, "GET", "/metrics")[2].decode()
        assert metric(page, "spamcli_requests_total", protocol="spamd", command="CHECK") == 22
        models = re.findall(r'spamcli_model_info\{worker="(\d)"', page)
        assert sorted(models) == ["0", "1"]
        assert len(children_of(daemon.process.pid)) == 2  # type: ignore[union-attr]
        assert daemon.stop() == 0
    assert not socket_path.exists()
    lines = daemon.stderr_lines
    assert sum("spamd CHECK verdict=" in line for line in lines) == 22
    assert any("SIGTERM: finishing the requests in flight" in line for line in lines)


def test_serve_socket_mode(trained_model_dir: Path, tmp_path: Path) -> None:
    socket_path = tmp_path / "spamd.sock"
    arguments = [
        "-m",
        str(trained_model_dir),
        "--socket",
        str(socket_path),
        "--socket-mode",
        "0600",
    ]
    with DaemonProcess(arguments):
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        assert check_over_unix(socket_path)


def test_serve_sigterm_finishes_the_request_in_flight(trained_model_dir: Path) -> None:
    with DaemonProcess(["-m", str(trained_model_dir), "--listen", "127.0.0.1:0"]) as daemon:
        port = daemon.port("spamd")
        request = spamd_request("CHECK", MESSAGE)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
            connection.sendall(request[:-10])  # all but the end of the message
            time.sleep(0.2)
            daemon.signal(signal.SIGTERM)
            daemon.wait_for_line("SIGTERM: finishing the requests in flight")
            time.sleep(0.2)
            connection.sendall(request[-10:])
            connection.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := connection.recv(65536):
                data += chunk
        assert re.fullmatch(r"(True|False) ; -?\d+\.\d / 5\.0", parse_answer(data).headers["Spam"])
        assert daemon.process.wait(20) == 0  # type: ignore[union-attr]


def test_serve_reload_drops_no_request(trained_model_dir: Path, tmp_path: Path) -> None:
    needs_serve_extra("aiohttp")
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    arguments = ["-m", str(model_dir), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    with DaemonProcess(arguments) as daemon:
        port = daemon.port("spamd")
        expected = check_over(port)
        answers: list[str] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    answers.append(check_over(port))
                except BaseException as error:  # reported below
                    failures.append(error)

        threads = [threading.Thread(target=client) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            for round_number in range(3):
                daemon.signal(signal.SIGHUP)
                # A writer replaces the folder, as train and learn do: a rename.
                replacement = tmp_path / f"replacement-{round_number}"
                shutil.copytree(trained_model_dir, replacement)
                old = tmp_path / f"old-{round_number}"
                os.rename(model_dir, old)
                os.rename(replacement, model_dir)
                time.sleep(0.3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(20)
        assert not failures, failures[:3]
        assert len(answers) > 10 and set(answers) == {expected}
        page = http_request(daemon.port("http"), "GET", "/metrics")[2].decode()
        assert metric(page, "spamcli_model_reloads_total", result="ok") >= 3
        assert metric(page, "spamcli_model_reloads_total", result="failed") == 0
    assert sum("SIGHUP: reloading the model" in line for line in daemon.stderr_lines) == 3


def test_serve_a_broken_model_folder_leaves_the_old_model_serving(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    with DaemonProcess(["-m", str(model_dir), "--listen", "127.0.0.1:0"]) as daemon:
        port = daemon.port("spamd")
        before = check_over(port)
        shutil.rmtree(model_dir)
        model_dir.mkdir()
        assert check_over(port) == before
        daemon.wait_for_line("model reload failed, still scoring with model")


def test_serve_restarts_a_worker_that_dies(trained_model_dir: Path) -> None:
    milter_port = free_port()
    arguments = [
        "-m", str(trained_model_dir), "--listen", "127.0.0.1:0",
        *(["--milter", f"inet:{milter_port}@127.0.0.1"] if _has_pymilter() else []),
    ]  # fmt: skip
    with DaemonProcess(arguments) as daemon:
        port = daemon.port("spamd")
        workers = children_of(daemon.process.pid)  # type: ignore[union-attr]
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        daemon.wait_for_line("was killed by SIGKILL; starting it again")
        deadline = time.monotonic() + 20
        while len(daemon.stderr_lines) and time.monotonic() < deadline:
            restarted = set(children_of(daemon.process.pid)) - set(workers)  # type: ignore[union-attr]
            if len(restarted) == len(workers):
                break
            time.sleep(0.1)
        assert check_over(port)
        if _has_pymilter():
            # The milter came back too, and SIGHUP (libmilter's "stop") does not reach it.
            daemon.signal(signal.SIGHUP)
            time.sleep(0.5)
            with socket.create_connection(("127.0.0.1", milter_port), timeout=10):
                pass
        assert daemon.stop() == 0


def _has_pymilter() -> bool:
    from spamcli import extras

    return extras.is_installed("Milter")


# --------------------------------------------------------------------------
# systemd


def test_serve_tells_systemd_when_it_is_ready(trained_model_dir: Path, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(20)
        arguments = ["-m", str(trained_model_dir), "--listen", "127.0.0.1:0"]
        with DaemonProcess(arguments, {"NOTIFY_SOCKET": str(notify_path)}) as daemon:
            assert notify.recv(100) == b"READY=1"
            daemon.stop()
            assert notify.recv(100) == b"STOPPING=1"


def test_serve_systemd_unit_is_valid() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    script = shutil.which("spamcli") or str(Path(sys.executable).parent / "spamcli")
    if not Path(script).exists():
        pytest.skip("no spamcli console script in this environment")
    unit = UNIT.read_text().replace("/usr/local/bin/spamcli", script)
    folder = Path(tempfile.mkdtemp(prefix="spamcli-unit-"))
    try:
        (folder / "spamcli.service").write_text(unit)
        completed = subprocess.run(
            [analyze, "verify", str(folder / "spamcli.service")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(folder)
    assert completed.returncode == 0, completed.stderr
    assert "spamcli.service" not in completed.stderr, completed.stderr


def test_serve_systemd_unit_runs_as_systemd_would(trained_model_dir: Path, tmp_path: Path) -> None:
    """The unit's ExecStart, with its paths moved to a temporary folder: it
    says READY=1, reloads on its ExecReload signal, and stops on SIGTERM
    to the main process alone (KillMode=mixed) within TimeoutStopSec."""
    if not _has_pymilter():
        pytest.skip("the unit's --milter needs the serve extra (pymilter)")
    text = UNIT.read_text()
    (exec_start,) = re.findall(r"(?m)^ExecStart=(.*)$", text)
    (reload,) = re.findall(r"(?m)^ExecReload=(.*)$", text)
    (stop_seconds,) = re.findall(r"(?m)^TimeoutStopSec=(\d+)$", text)
    assert "KillMode=mixed" in text and reload == "/bin/kill -HUP $MAINPID"
    runtime = tmp_path / "run"
    runtime.mkdir()
    words = shlex.split(exec_start.replace("/run/spamcli", str(runtime)))
    assert words[:2] == ["/usr/local/bin/spamcli", "serve"]
    words = [word.replace("127.0.0.1:11333", "127.0.0.1:0") for word in words[2:]]
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(20)
        environment = {"NOTIFY_SOCKET": str(notify_path), "SPAMCLI_MODEL": str(trained_model_dir)}
        with DaemonProcess(words, environment) as daemon:
            assert notify.recv(100) == b"READY=1"
            assert check_over_unix(runtime / "spamd.sock")
            assert (runtime / "milter.sock").exists()
            daemon.signal(signal.SIGHUP)
            daemon.wait_for_line("SIGHUP: reloading the model")
            started = time.monotonic()
            assert daemon.stop(timeout=int(stop_seconds)) == 0
            assert time.monotonic() - started < int(stop_seconds)
    assert not (runtime / "spamd.sock").exists()
