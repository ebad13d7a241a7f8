"""Time and peak memory of `spamcli predict` or `spamcli filter` on each hostile input.

Every message of tests/hostile_catalogue.py is written to a temporary
folder and classified by `spamcli predict FILE` in a fresh process, RUNS
times; so are the big ones given on stdin, and the hostile paths (a missing
file, a broken link, a folder with a FIFO in it, a closed stdin). Each run
goes under GNU `/usr/bin/time -v` (wall time and peak RSS), or, where that
is missing, under a wrapper that reads getrusage(RUSAGE_CHILDREN). The
figures are the median of the runs, set against those of an ordinary
message; an input passes when it costs at most 1 s and 200 MiB more.

With --command filter, each message goes to `spamcli filter` on stdin
instead, and its outcome is the verdict and the bytes added to the output
(a message passed through whole has the three header fields added, about
125 bytes; an output no longer than the input fails); stdin from /dev/null
and a closed stdin are measured too.

    .venv/bin/python bench/hostile_inputs.py [--runs 3] [--model DIR] [--markdown]
        [--command predict|filter]

Exit status 0 when every input passed, 1 when one exceeded a limit or
printed something unexpected, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hostile_catalogue import (  # noqa: E402
    BIG_MESSAGES,
    HOSTILE_MESSAGES,
    HOSTILE_PATHS,
    MEBIBYTE,
)

GNU_TIME = Path("/usr/bin/time")
TIME_LIMIT_SECONDS = 1.0
MEMORY_LIMIT_MIB = 200.0
PREDICTION = re.compile(r"(ham|unsure|spam) ([01]\.\d{6}) .+")
FILTER_VERDICT = re.compile(rb"X-Spam-Status: (Yes|No|Unsure), score=([01]\.\d{4})")
FILTER_LABELS = {b"Yes": "spam", b"No": "ham", b"Unsure": "unsure"}

# Runs the command given as arguments and prints its peak RSS and wall time,
# for machines without GNU time. ru_maxrss is in KiB on Linux.
RUSAGE_WRAPPER = """
import resource, subprocess, sys, time
started = time.perf_counter()
completed = subprocess.run(sys.argv[1:], stdin=sys.stdin)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"Maximum resident set size (kbytes): {peak}", file=sys.stderr)
print(f"Elapsed (wall clock) time (h:mm:ss or m:ss): 0:{elapsed:.3f}", file=sys.stderr)
sys.exit(completed.returncode)
"""


@dataclass
class Case:
    name: str
    description: str
    size: int | None
    arguments: list[str]
    stdin: Callable[[], object] | None = None  # a file object, or DEVNULL


@dataclass
class Measurement:
    seconds: float
    peak_mib: float
    status: int
    stdout: str
    stderr: str
    stdout_bytes: int = 0


def measure(
    case: Case, model_dir: Path, spamcli: list[str], subcommand: str = "predict"
) -> Measurement:
    command = [*spamcli, subcommand, "-m", str(model_dir), *case.arguments]
    if GNU_TIME.exists():
        command = [str(GNU_TIME), "-v", *command]
    else:
        command = [sys.executable, "-c", RUSAGE_WRAPPER, *command]
    stdin = case.stdin() if case.stdin else subprocess.DEVNULL
    preexec = None
    if stdin == "closed":
        stdin, preexec = subprocess.DEVNULL, lambda: os.close(0)
    try:
        completed = subprocess.run(
            command,
            stdin=stdin,  # type: ignore[arg-type]
            capture_output=True,
            timeout=300,
            preexec_fn=preexec,
        )
    finally:
        if hasattr(stdin, "close"):
            stdin.close()  # type: ignore[union-attr]
    # filter writes the message back, which may be tens of MiB and not text:
    # only its first lines are kept, as text, and its size.
    stdout = completed.stdout[:4096].decode("utf-8", "replace")
    stderr = completed.stderr.decode("utf-8", "replace")
    report = dict(
        line.strip().rsplit(": ", 1)
        for line in stderr.splitlines()
        if line.startswith("\t") or "Maximum resident" in line or "Elapsed" in line
    )
    peak_kib = int(report["Maximum resident set size (kbytes)"])
    clock = report["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
    seconds = sum(float(part) * 60**power for power, part in enumerate(reversed(clock)))
    own_stderr = "\n".join(
        line
        for line in stderr.splitlines()
        if not line.startswith("\t")
        and not line.startswith("Command ")
        and "Maximum resident" not in line
        and "Elapsed" not in line
    )
    return Measurement(
        seconds, peak_kib / 1024, completed.returncode, stdout, own_stderr, len(completed.stdout)
    )


def cases(folder: Path) -> list[Case]:
    found = []
    for message in HOSTILE_MESSAGES:
        raw = message.build()
        path = folder / f"{message.name}.eml"
        path.write_bytes(raw)
        found.append(Case(message.name, message.description, len(raw), [str(path)]))
        if message.name in BIG_MESSAGES:
            found.append(
                Case(
                    f"{message.name} (stdin)",
                    message.description + ", on stdin",
                    len(raw),
                    ["-"],
                    stdin=lambda path=path: open(path, "rb"),  # type: ignore[misc]  # noqa: SIM115
                )
            )
    for hostile in HOSTILE_PATHS:
        place = folder / hostile.name
        place.mkdir()
        target = hostile.build(place)
        found.append(Case(hostile.name, hostile.description, None, [str(target)]))
    found.append(
        Case("stdin-closed", "predict - with descriptor 0 closed", None, ["-"], lambda: "closed")
    )
    return found


def filter_cases(folder: Path) -> list[Case]:
    """Each message on the stdin of `spamcli filter`, then /dev/null and a closed stdin."""
    found = []
    for message in HOSTILE_MESSAGES:
        raw = message.build()
        path = folder / f"{message.name}.eml"
        path.write_bytes(raw)
        opener = lambda path=path: open(path, "rb")  # noqa: E731, SIM115
        found.append(Case(message.name, message.description, len(raw), [], stdin=opener))
    found.append(Case("stdin-dev-null", "filter < /dev/null", 0, [], lambda: subprocess.DEVNULL))
    found.append(
        Case("stdin-closed", "filter with descriptor 0 closed", None, [], lambda: "closed")
    )
    return found


def outcome(measurement: Measurement) -> str:
    """What a user sees, in a few words."""
    lines = measurement.stdout.splitlines()
    parts = []
    if lines:
        match = PREDICTION.fullmatch(lines[0])
        parts.append(f"{match[1]} {match[2]}" if match else f"unexpected: {lines[0][:40]}")
        if len(lines) > 1:
            parts[-1] += f" (+{len(lines) - 1} lines)"
    if measurement.stderr:
        first = measurement.stderr.splitlines()[0].replace(str(tempfile.gettempdir()), "$TMP")
        parts.append(f"stderr: {re.sub(r'/[^ ]*/', '…/', first)}")
    parts.append(f"exit {measurement.status}")
    return "; ".join(parts)


def filter_outcome(measurement: Measurement, size: int | None) -> str:
    """The verdict filter wrote and how many bytes it added to the message."""
    parts = []
    match = FILTER_VERDICT.search(measurement.stdout.encode())
    if match:
        parts.append(f"{FILTER_LABELS[match[1]]} {match[2].decode()}")
    if measurement.stdout_bytes or size:
        added = measurement.stdout_bytes - (size or 0)
        parts.append(f"{measurement.stdout_bytes:,} bytes out ({added:+,})")
    else:
        parts.append("nothing out")
    if measurement.stderr:
        parts.append(f"stderr: {measurement.stderr.splitlines()[0]}")
    parts.append(f"exit {measurement.status}")
    return "; ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each input (median)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--command",
        choices=["predict", "filter"],
        default="predict",
        help="the command measured: predict on files, or filter on stdin",
    )
    arguments = parser.parse_args()
    if arguments.runs < 1:
        parser.error("--runs must be at least 1")
    spamcli = [sys.executable, "-m", "spamcli"]
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    if not GNU_TIME.exists():
        print("spamcli bench: /usr/bin/time missing; using getrusage", file=sys.stderr)

    folder = Path(tempfile.mkdtemp(prefix="spamcli-hostile-"))
    failed = False
    try:
        rows = []
        baseline: tuple[float, float] | None = None
        filtering = arguments.command == "filter"
        for case in filter_cases(folder) if filtering else cases(folder):
            runs = [
                measure(case, arguments.model, spamcli, arguments.command)
                for _ in range(arguments.runs)
            ]
            seconds = statistics.median(run.seconds for run in runs)
            peak = statistics.median(run.peak_mib for run in runs)
            if baseline is None:  # the first case is the ordinary message
                baseline = (seconds, peak)
            extra_seconds, extra_mib = seconds - baseline[0], peak - baseline[1]
            within = extra_seconds <= TIME_LIMIT_SECONDS and extra_mib <= MEMORY_LIMIT_MIB
            if "Traceback" in runs[0].stderr:
                within = False
            # filter must pass every message on whole, the three fields added.
            if filtering and case.size is not None and runs[0].stdout_bytes <= case.size:
                within = False
            failed = failed or not within
            size = "-" if case.size is None else _size(case.size)
            rows.append(
                (
                    case.name,
                    size,
                    filter_outcome(runs[0], case.size) if filtering else outcome(runs[0]),
                    seconds,
                    peak,
                    extra_seconds,
                    extra_mib,
                    "pass" if within else "FAIL",
                )
            )
            print(f"{case.name}: {seconds:.2f} s, {peak:.0f} MiB", file=sys.stderr, flush=True)
    finally:
        for path in folder.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)

    if arguments.markdown:
        print(
            "| input | size | outcome | time (s) | peak RSS (MiB) | extra time (s) "
            "| extra RSS (MiB) | within limits |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---|")
        for name, size, seen, seconds, peak, extra_s, extra_m, verdict in rows:
            print(
                f"| {name} | {size} | {seen} | {seconds:.2f} | {peak:.0f} | {extra_s:+.2f} "
                f"| {extra_m:+.0f} | {verdict} |"
            )
    else:
        print(
            f"{'input':<30} {'size':>9} {'time s':>7} {'RSS MiB':>8} {'+s':>6} {'+MiB':>6}  outcome"
        )
        for name, size, seen, seconds, peak, extra_s, extra_m, verdict in rows:
            print(
                f"{name:<30} {size:>9} {seconds:>7.2f} {peak:>8.0f} {extra_s:>+6.2f} "
                f"{extra_m:>+6.0f}  {verdict}: {seen}"
            )
    print(
        f"limits: {TIME_LIMIT_SECONDS} s and {MEMORY_LIMIT_MIB:.0f} MiB over the ordinary "
        f"message, median of {arguments.runs} runs; result: "
        + ("some input exceeded them" if failed else "every input within them")
    )
    return 1 if failed else 0


def _size(size: int) -> str:
    if size >= MEBIBYTE:
        return f"{size / MEBIBYTE:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} B"


if __name__ == "__main__":
    sys.exit(main())
