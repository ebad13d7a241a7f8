"""Latency, throughput, memory and behaviour under hostile load of `spamcli serve`.

The bars are reported, never enforced:

    spamc round trip, an ordinary message   median <= 5 ms, p99 <= 20 ms
    8 concurrent clients for 30 s           throughput, against bogofilter -b
                                            measured in the same run
    worker RSS after 1,000 and 100,000      within 10 % of each other
    messages

What is measured, all on 127.0.0.1:

    round trip   the real spamc (`spamc -c`, a new process each time, as an
                 MTA runs it) on tests/hostile_catalogue.ORDINARY, --round-trips
                 times; and the same request from a Python client in this
                 process, which leaves out spamc's own start
    throughput   --concurrency client processes, each sending CHECK requests
                 one after the other for --seconds, over the corpus messages
                 (the SpamAssassin corpus when present, else generated mail);
                 bogofilter in bulk mode (-b -T) on the same messages, as
                 files, after training it on them with -s/-n. Where the time
                 goes: the CPU seconds a message of the daemon's workers and
                 of the clients (all on the same cores), and of the scan
                 alone (ScanService.scan in this process, every message once),
                 which bounds the rate any front end could reach
    memory       VmRSS of the daemon's processes after 1,000 messages and
                 after --messages (100,000)
    load         for --load-seconds (40 s, longer than the daemon's 30 s
                 read timeout), while a probe sends a well-formed CHECK
                 every 20 ms and records its latency: slow clients that
                 trickle a header a second and hold their connection (the
                 read timeout ends them), clients sending bodies over the
                 size limit, garbage bytes, and half-closed requests; it
                 stops by itself, and reports the probe's latency and failures
                 and the daemon's counters

The daemon runs as `python -m spamcli serve` with --workers (default: one
per core), logging its line per message to a pipe this script drains.
Results go to stdout, progress to stderr. Exit status: 0 when everything
was measured (whatever the verdicts), 1 when a measurement failed, 2 for a
usage error.

    .venv/bin/python bench/serve.py [--model DIR] [--workers N] [--round-trips 1000]
        [--concurrency 8] [--seconds 30] [--messages 100000] [--load-seconds 40]
        [--corpus ../shared/corpora/spamassassin]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY_DIR / "tests"))
sys.path.insert(0, str(REPOSITORY_DIR))

from hostile_catalogue import ORDINARY  # noqa: E402

DEFAULT_CORPUS_DIR = REPOSITORY_DIR.parent / "shared" / "corpora" / "spamassassin"
SPAMASSASSIN_ARCHIVES = ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")
SPAMC = shutil.which("spamc") or "/usr/bin/spamc"
MEDIAN_TARGET_MS = 5.0
P99_TARGET_MS = 20.0
RSS_GROWTH_TARGET = 0.10
# spamc's and the daemon's default limit: larger corpus messages are left
# out, so that every request is scanned.
MAX_MESSAGE_BYTES = 500 * 1024
_READY = re.compile(r"spamcli serve: ready: (.*)")


class MeasurementError(Exception):
    pass


def progress(text: str) -> None:
    print(f"serve bench: {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Messages


def corpus_messages(corpus_dir: Path) -> list[tuple[str, bytes]]:
    """(label, raw) of every message of the SpamAssassin archives, read in memory."""
    messages = []
    for name in SPAMASSASSIN_ARCHIVES:
        label = "spam" if name.startswith("spam") else "ham"
        with tarfile.open(corpus_dir / f"{name}.tar.bz2") as archive:
            for member in archive:
                if not member.isfile() or member.name.endswith("/cmds"):
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    raw = handle.read()
                    if len(raw) <= MAX_MESSAGE_BYTES:
                        messages.append((label, raw))
    return messages


def generated_messages(count: int) -> list[tuple[str, bytes]]:
    from conftest import generated_mail

    return [("ham", raw) for raw in generated_mail("ham", count, 7)] + [
        ("spam", raw) for raw in generated_mail("spam", count, 7)
    ]


# --------------------------------------------------------------------------
# The daemon


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    spamd_port: int
    http_port: int
    lines: int = 0
    tail: list[str] = field(default_factory=list)

    def worker_pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found

    def rss_kib(self) -> tuple[int, dict[str, int]]:
        """The main process's VmRSS, and the workers' VmRSS, RssAnon and
        RssFile added up, KiB. RssFile is mostly the model's memory-mapped
        files (25 MiB for the built-in model), whose pages count once read."""
        totals = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        for pid in self.worker_pids():
            for name, value in _status_kib(pid).items():
                totals[name] = totals.get(name, 0) + value
        return _status_kib(self.process.pid).get("VmRSS", 0), totals

    def metrics(self) -> str:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            connection.request("GET", "/metrics")
            return connection.getresponse().read().decode()
        finally:
            connection.close()


def _status_kib(pid: int) -> dict[str, int]:
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def start_daemon(model: Path | None, workers: int, extra: Sequence[str] = ()) -> Daemon:
    command = [sys.executable, "-m", "spamcli", "serve", "--listen", "127.0.0.1:0"]
    command += ["--http", "127.0.0.1:0", "--workers", str(workers), *extra]
    if model is not None:
        command += ["-m", str(model)]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY_DIR)}
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=environment,
    )  # fmt: skip
    assert process.stderr is not None
    ready: dict[str, str] = {}
    while True:
        raw_line = process.stderr.readline()
        if not raw_line:
            raise MeasurementError(f"the daemon exited with status {process.wait()}")
        line = raw_line.decode(errors="replace")
        match = _READY.search(line)
        if match:
            for item in match.group(1).split():
                name, _, value = item.partition("=")
                ready.setdefault(name, value)
            break
        print(line, end="", file=sys.stderr)
    daemon = Daemon(
        process,
        int(ready["spamd"].rpartition(":")[2]),
        int(ready["http"].rpartition(":")[2]),
    )

    def drain() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            daemon.lines += 1
            if b" error" in raw or b"failed" in raw:
                daemon.tail = [*daemon.tail[-9:], raw.decode(errors="replace").rstrip()]

    threading.Thread(target=drain, daemon=True).start()
    return daemon


def stop_daemon(daemon: Daemon) -> None:
    daemon.process.send_signal(signal.SIGTERM)
    try:
        daemon.process.wait(60)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        daemon.process.wait()


# --------------------------------------------------------------------------
# Clients


def check_request(raw: bytes) -> bytes:
    return f"CHECK SPAMC/1.5\r\nContent-length: {len(raw)}\r\n\r\n".encode() + raw


def exchange(port: int, request: bytes, timeout: float = 30.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe_latency(seconds: Sequence[float]) -> str:
    milliseconds = [value * 1000 for value in seconds]
    return (
        f"median {statistics.median(milliseconds):.2f} ms, p99 "
        f"{percentile(milliseconds, 0.99):.2f} ms, max {max(milliseconds):.2f} ms "
        f"({len(milliseconds)} requests)"
    )


def round_trips(daemon: Daemon, count: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"spamc": [], "python": []}
    request = check_request(ORDINARY)
    for _ in range(50):  # warm-up
        exchange(daemon.spamd_port, request)
    if Path(SPAMC).exists():
        arguments = [SPAMC, "-d", "127.0.0.1", "-p", str(daemon.spamd_port), "-c"]
        for _ in range(count):
            started = time.perf_counter()
            completed = subprocess.run(arguments, input=ORDINARY, capture_output=True)
            timings["spamc"].append(time.perf_counter() - started)
            if not re.fullmatch(rb"-?\d+\.\d/5\.0\n", completed.stdout):
                raise MeasurementError(f"spamc printed {completed.stdout!r}")
    for _ in range(count):
        started = time.perf_counter()
        answer = exchange(daemon.spamd_port, request)
        timings["python"].append(time.perf_counter() - started)
        if b"Spam: " not in answer:
            raise MeasurementError(f"the daemon answered {answer[:100]!r}")
    return timings


def _client_loop(
    port: int, requests: list[bytes], until: float, limit: int, results: multiprocessing.Queue
) -> None:
    done, failed, latencies = 0, 0, []
    position = random.Random(os.getpid()).randrange(len(requests))
    while time.monotonic() < until and done + failed < limit:
        request = requests[position % len(requests)]
        position += 1
        started = time.perf_counter()
        try:
            answer = exchange(port, request)
        except OSError:
            failed += 1
            continue
        if answer.startswith(b"SPAMD/1.1 0 EX_OK"):
            done += 1
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1
    results.put((done, failed, latencies[::10]))


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scan_seconds(model: Path | None, messages: list[tuple[str, bytes]]) -> float:
    """CPU seconds a message of ScanService.scan in this process, one thread,
    every message once (the better of two passes): what a worker spends on
    a CHECK besides the connection."""
    from spamcli.locations import builtin_model_dir
    from spamcli.server.core import ScanService, ScanSettings

    service = ScanService(ScanSettings(model or builtin_model_dir()), log=lambda line: None)
    service.warm_up()
    passes = []
    for _ in range(2):
        started = time.process_time()
        for _label, raw in messages:
            service.scan(raw)
        passes.append((time.process_time() - started) / len(messages))
    return min(passes)


def concurrent_load(
    daemon: Daemon, requests: list[bytes], clients: int, seconds: float, limit: int = 10**12
) -> tuple[int, int, float, list[float]]:
    """(messages answered, failures, seconds, sampled latencies)."""
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()
    started = time.monotonic()
    until = started + seconds
    share = max(1, limit // clients)
    workers = [
        context.Process(
            target=_client_loop, args=(daemon.spamd_port, requests, until, share, results)
        )
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    done = failed = 0
    latencies: list[float] = []
    for _ in workers:
        worker_done, worker_failed, worker_latencies = results.get()
        done, failed = done + worker_done, failed + worker_failed
        latencies += worker_latencies
    for worker in workers:
        worker.join()
    return done, failed, time.monotonic() - started, latencies


# --------------------------------------------------------------------------
# bogofilter


def bogofilter_rate(messages: list[tuple[str, bytes]], work_dir: Path) -> tuple[float, str]:
    """Messages per second of `bogofilter -b -T` on the messages as files,
    after training it on them (-s/-n)."""
    bogofilter = shutil.which("bogofilter")
    if bogofilter is None:
        raise MeasurementError("bogofilter is not installed (apt-get install bogofilter)")
    folder = work_dir / "messages"
    folder.mkdir()
    paths = {"ham": [], "spam": []}  # type: dict[str, list[Path]]
    for number, (label, raw) in enumerate(messages):
        path = folder / f"{label}-{number:06d}"
        path.write_bytes(raw)
        paths[label].append(path)
    database = work_dir / "bogofilter"
    database.mkdir()
    base = [bogofilter, "-C", "-d", str(database)]
    for label, flag in (("spam", "-s"), ("ham", "-n")):
        listing = "".join(f"{path}\n" for path in paths[label]).encode()
        subprocess.run([*base, flag, "-b"], input=listing, check=True, capture_output=True)
    listing = "".join(f"{path}\n" for path in sorted(folder.iterdir())).encode()
    started = time.perf_counter()
    completed = subprocess.run([*base, "-T", "-b"], input=listing, capture_output=True)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1, 2) or completed.stdout.count(b"\n") != len(messages):
        raise MeasurementError(f"bogofilter -b failed: {completed.stderr[-300:]!r}")
    version = subprocess.run([bogofilter, "-V"], capture_output=True, text=True).stdout
    return len(messages) / elapsed, (version.splitlines() or ["bogofilter"])[0].strip()


# --------------------------------------------------------------------------
# The load test


def _attacker(kind: str, port: int, until: float, counts: multiprocessing.Queue) -> None:
    rng = random.Random(f"{kind}-{os.getpid()}")
    count = 0
    held: list[socket.socket] = []
    while time.monotonic() < until:
        try:
            if kind == "slow":
                # Hold a connection, a header line a second, until cut off.
                connection = socket.create_connection(("127.0.0.1", port), timeout=60)
                held.append(connection)
                connection.sendall(b"CHECK SPAMC/1.5\r\n")
                try:
                    while time.monotonic() < until:
                        time.sleep(1.0)
                        connection.sendall(f"X-Slow: {rng.randrange(10**6)}\r\n".encode())
                except OSError:
                    count += 1  # cut off by the daemon's read timeout
                connection.close()
            elif kind == "oversize":
                body = b"x" * (5 * MAX_MESSAGE_BYTES)
                exchange(port, check_request(body), timeout=60)
                count += 1
            elif kind == "garbage":
                with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
                    connection.sendall(rng.randbytes(rng.randrange(1, 65536)))
                    connection.shutdown(socket.SHUT_WR)
                    connection.recv(4096)
                count += 1
            elif kind == "half-closed":
                with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
                    connection.sendall(b"PROCESS SPAMC/1.5\r\nContent-length: 5000\r\n\r\nFrom:")
                    connection.shutdown(socket.SHUT_WR)
                    connection.recv(4096)
                count += 1
        except OSError:
            time.sleep(0.05)
    counts.put((kind, count))


def hostile_load(daemon: Daemon, seconds: float, slow_clients: int) -> dict[str, object]:
    context = multiprocessing.get_context("fork")
    counts: multiprocessing.Queue = context.Queue()
    until = time.monotonic() + seconds
    kinds = ["slow"] * slow_clients + ["oversize"] * 2 + ["garbage"] * 2 + ["half-closed"] * 2
    attackers = [
        context.Process(target=_attacker, args=(kind, daemon.spamd_port, until, counts))
        for kind in kinds
    ]
    for attacker in attackers:
        attacker.start()
    request = check_request(ORDINARY)
    latencies: list[float] = []
    failures = 0
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            answer = exchange(daemon.spamd_port, request)
            if answer.startswith(b"SPAMD/1.1 0 EX_OK"):
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1
        except OSError:
            failures += 1
        time.sleep(0.02)
    done: dict[str, int] = {}
    for _ in attackers:
        kind, count = counts.get()
        done[kind] = done.get(kind, 0) + count
    for attacker in attackers:
        attacker.join(60)
    return {"latencies": latencies, "failures": failures, "attacks": done}


# --------------------------------------------------------------------------


def _memory(kib: dict[str, int]) -> str:
    return (
        f"{kib['VmRSS'] / 1024:.1f} MiB ({kib['RssAnon'] / 1024:.1f} anonymous, "
        f"{kib['RssFile'] / 1024:.1f} file-backed)"
    )


def metric_value(page: str, name: str, **labels: str) -> float:
    from spamcli.server.stats import parse_metrics

    return sum(
        value
        for sample, sample_labels, value in parse_metrics(page)
        if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


LEARN_TARGET_MS = 20.0


def learning_figures(
    model: Path | None, workers: int, messages: list[tuple[str, bytes]], count: int = 100
) -> str:
    """Median and p99 of TELL round trips that learn a new message each, on
    a copy of the model, from spamc and from a Python client."""
    from spamcli.locations import builtin_model_dir

    with tempfile.TemporaryDirectory(prefix="serve-learn-") as work:
        copy = Path(shutil.copytree(model or builtin_model_dir(), Path(work) / "model"))
        daemon = start_daemon(copy, workers, ["--allow-tell"])
        try:
            timings: dict[str, list[float]] = {"spamc": [], "python": []}
            for number, (_label, raw) in enumerate(messages[: 2 * count]):
                if number % 2 == 0 and Path(SPAMC).exists():
                    started = time.perf_counter()
                    subprocess.run(
                        [SPAMC, "-d", "127.0.0.1", "-p", str(daemon.spamd_port), "-L", "spam"],
                        input=raw, capture_output=True, check=False,
                    )  # fmt: skip
                    timings["spamc"].append(time.perf_counter() - started)
                else:
                    request = (
                        f"TELL SPAMC/1.5\r\nMessage-class: spam\r\nSet: local\r\n"
                        f"Content-length: {len(raw)}\r\n\r\n"
                    ).encode() + raw
                    started = time.perf_counter()
                    answer = exchange(daemon.spamd_port, request)
                    timings["python"].append(time.perf_counter() - started)
                    if b"EX_OK" not in answer:
                        raise MeasurementError(f"TELL failed: {answer[:200]!r}")
        finally:
            stop_daemon(daemon)
    lines = []
    for name, values in timings.items():
        if values:
            median_ms = statistics.median(values) * 1000
            verdict = "PASS" if median_ms <= LEARN_TARGET_MS else "FAIL"
            label = "spamc -L spam (a new process each)" if name == "spamc" else "Python client"
            lines.append(f"{label}: {describe_latency(values)}  [{verdict}: median <= 20 ms]")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder [the built-in one]")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--load-seconds", type=float, default=40.0)
    parser.add_argument("--slow-clients", type=int, default=24)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS_DIR)
    arguments = parser.parse_args(argv)

    if all((arguments.corpus / f"{name}.tar.bz2").exists() for name in SPAMASSASSIN_ARCHIVES):
        progress(f"reading the corpus in {arguments.corpus}")
        messages = corpus_messages(arguments.corpus)
        source = f"the SpamAssassin corpus ({len(messages)} messages up to 500 KiB)"
    else:
        messages = generated_messages(2000)
        source = f"generated mail ({len(messages)} messages)"
    requests = [check_request(raw) for _label, raw in messages]
    sizes = sorted(len(raw) for _label, raw in messages)

    print("# spamcli serve")
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"messages: {source}; median size {statistics.median(sizes):.0f} bytes")
    status = 0
    daemon = start_daemon(arguments.model, arguments.workers)
    try:
        model_line = next(
            (
                line
                for line in daemon.metrics().splitlines()
                if line.startswith("spamcli_model_info")
            ),
            "",
        )
        print(f"daemon: --workers {arguments.workers}; {model_line}")

        progress(f"{arguments.round_trips} round trips")
        timings = round_trips(daemon, arguments.round_trips)
        print("\n## Round trip, an ordinary message (CHECK)")
        for name, values in timings.items():
            if values:
                median_ms = statistics.median(values) * 1000
                p99_ms = percentile(values, 0.99) * 1000
                verdict = (
                    "PASS" if median_ms <= MEDIAN_TARGET_MS and p99_ms <= P99_TARGET_MS else "FAIL"
                )
                label = "spamc -c (a new process each)" if name == "spamc" else "Python client"
                print(f"{label}: {describe_latency(values)}  [{verdict}]")
            else:
                print(f"{name}: not measured (spamc is not installed)")

        progress(f"{arguments.concurrency} clients for {arguments.seconds:g} s")
        workers = daemon.worker_pids()
        workers_before = sum(map(cpu_seconds, workers))
        clients_before = os.times()
        done, failed, elapsed, latencies = concurrent_load(
            daemon, requests, arguments.concurrency, arguments.seconds
        )
        clients_after = os.times()
        workers_cpu = sum(map(cpu_seconds, workers)) - workers_before
        clients_cpu = (clients_after.children_user - clients_before.children_user) + (
            clients_after.children_system - clients_before.children_system
        )
        rate = done / elapsed
        print(f"\n## {arguments.concurrency} concurrent clients for {arguments.seconds:g} s")
        print(
            f"spamcli serve: {rate:,.0f} messages/s ({done:,} answered, {failed} failed); "
            f"latency {describe_latency(latencies)}"
        )
        progress("the scan alone, in this process")
        scan = scan_seconds(arguments.model, messages)
        cores = os.cpu_count() or 1
        workers_per_message = workers_cpu / max(done, 1)
        clients_per_message = clients_cpu / max(done, 1)
        bound = cores / (scan + clients_per_message)
        print(
            f"CPU a message: workers {workers_per_message * 1000:.3f} ms, clients "
            f"{clients_per_message * 1000:.3f} ms; the scan alone (ScanService.scan, "
            f"this process) {scan * 1000:.3f} ms. With nothing but the scan and the clients "
            f"on {cores} cores: at most {bound:,.0f} messages/s"
        )
        with tempfile.TemporaryDirectory(prefix="serve-bench-") as work:
            try:
                bogofilter, version = bogofilter_rate(messages, Path(work))
                print(
                    f"bogofilter -b -T, one process ({version}): {bogofilter:,.0f} messages/s; "
                    f"spamcli serve / bogofilter: {rate / bogofilter:.2f}; the bound above / "
                    f"bogofilter: {bound / bogofilter:.2f}"
                )
            except MeasurementError as error:
                print(f"bogofilter: not measured: {error}")

        print("\n## Memory (VmRSS)")
        daemon_fresh = start_daemon(arguments.model, arguments.workers)
        try:
            concurrent_load(daemon_fresh, requests, arguments.concurrency, 10**9, limit=1000)
            main_kib, first = daemon_fresh.rss_kib()
            print(f"after 1,000 messages: workers {_memory(first)}; main {main_kib / 1024:.1f} MiB")
            progress(f"{arguments.messages:,} messages for the memory figure")
            # Halfway too: a cache filled once (the scorer's) shows as growth
            # before it, a leak as growth after it.
            half = arguments.messages // 2
            concurrent_load(daemon_fresh, requests, arguments.concurrency, 10**9, limit=half - 1000)
            _main_kib, middle = daemon_fresh.rss_kib()
            print(f"after {half:,} messages: workers {_memory(middle)}")
            concurrent_load(
                daemon_fresh,
                requests,
                arguments.concurrency,
                10**9,
                limit=arguments.messages - half,
            )
            _main_kib, last = daemon_fresh.rss_kib()
            growth = last["VmRSS"] / first["VmRSS"] - 1
            anonymous = last["RssAnon"] / first["RssAnon"] - 1
            second_half = last["RssAnon"] / middle["RssAnon"] - 1
            verdict = "PASS" if abs(growth) <= RSS_GROWTH_TARGET else "FAIL"
            print(
                f"after {arguments.messages:,} messages: workers {_memory(last)}: "
                f"{growth:+.1%} since 1,000 ({anonymous:+.1%} anonymous; "
                f"{second_half:+.1%} anonymous since {half:,})  [{verdict}]"
            )
        finally:
            stop_daemon(daemon_fresh)

        progress("learning through TELL")
        print("\n## Learning through TELL (spamc -L spam), a copy of the model")
        print(learning_figures(arguments.model, arguments.workers, messages))

        progress(f"the load test, {arguments.load_seconds:g} s")
        before = daemon.metrics()
        load = hostile_load(daemon, arguments.load_seconds, arguments.slow_clients)
        after = daemon.metrics()
        print(f"\n## Hostile load for {arguments.load_seconds:g} s, then it stops")
        print(
            f"attackers: {arguments.slow_clients} slow clients (a header a second), 2 sending "
            f"{5 * MAX_MESSAGE_BYTES // 1024} KiB bodies, 2 garbage, 2 half-closed requests; "
            f"done: {json.dumps(load['attacks'])}"
        )
        probe = load["latencies"]
        assert isinstance(probe, list)
        print(
            "well-formed requests meanwhile: "
            f"{describe_latency(probe) if probe else 'none answered'}; {load['failures']} failed"
        )
        for name, labels in (
            ("spamcli_protocol_errors_total", {"protocol": "spamd"}),
            ("spamcli_verdicts_total", {"verdict": "unscanned"}),
            ("spamcli_connections_refused_total", {}),
        ):
            grown = metric_value(after, name, **labels) - metric_value(before, name, **labels)
            print(f"daemon: {name}{labels or ''} +{grown:.0f}")
        alive = daemon.process.poll() is None
        print(f"daemon still running: {'yes' if alive else 'NO'}")
        if not alive:
            status = 1
    except MeasurementError as error:
        print(f"measurement failed: {error}")
        status = 1
    finally:
        stop_daemon(daemon)
    if daemon.tail:
        print("last error lines of the daemon:\n  " + "\n  ".join(daemon.tail))
    return status


if __name__ == "__main__":
    sys.exit(main())
