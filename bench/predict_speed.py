"""Start-up time, throughput and peak memory of `spamcli predict`.

A mail filter starts one process per message, so start-up counts as much as
speed on a corpus. The targets are reported, never enforced:

    cold start       <= 1.8 x `python -c "import click"`
    throughput       predict FOLDER >= bogofilter -b, messages/s, on the same files
    peak RSS         <= 100 MiB for one message, <= 400 MiB for the corpus

Every measurement is a new process, and the baselines are measured in the
same run as spamcli, so the figures compare under the same load:

    cold start   python -c pass, python -c "import click", python -c "import
                 numpy", spamcli predict SAMPLE: --runs rounds, each
                 command once a round in rotating order (so a slow phase of
                 a shared machine slows them alike), timed with
                 time.perf_counter and the child's user + system CPU time
                 (getrusage); the medians, and each command once more under
                 GNU time for its peak RSS
    throughput   spamcli predict on the five .tar.bz2 archives, and on the
                 same messages unpacked into a temporary folder; bogofilter
                 in bulk mode (-b) on the unpacked files, trained with -s/-n
                 on the random split's train part: --corpus-runs rounds after
                 a warm-up round, each command once a round in rotating
                 order, as for the cold start, each run under GNU
                 `/usr/bin/time -v` for its peak RSS; the medians, and
                 spamcli's messages/s over bogofilter's

Throughput is messages over the whole command's wall time, start-up
included. Children run without PYTHONDONTWRITEBYTECODE, after warm-up runs,
so Python reads cached bytecode as it does after `pip install`.

Results go to stdout, progress to stderr. Exit status: 0 when everything was
measured (whatever the verdicts), 1 when a measurement failed, 2 for a usage
error or a missing corpus.

    .venv/bin/python bench/predict_speed.py [--runs 10] [--model models/default]
        [--corpus-runs 3] [--corpus ../shared/corpora/spamassassin]
        [--sample data/samples/spam-prize.eml]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS_DIR = REPOSITORY_DIR.parent / "shared" / "corpora" / "spamassassin"
DEFAULT_MODEL_DIR = REPOSITORY_DIR / "models" / "default"
DEFAULT_SAMPLE = REPOSITORY_DIR / "data" / "samples" / "spam-prize.eml"
# The train part of `spamcli corpus split random`, used if already written.
DEFAULT_SPLIT_DIR = REPOSITORY_DIR / "data" / "splits" / "random"
SPAMASSASSIN_FOLDERS = ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")
GNU_TIME = Path("/usr/bin/time")
MIB = 1024 * 1024

COLD_START_RATIO_TARGET = 1.8  # predict / `import click`
THROUGHPUT_RATIO_TARGET = 1.0  # predict FOLDER / bogofilter -b, messages/s
SINGLE_RSS_TARGET_MIB = 100
CORPUS_RSS_TARGET_MIB = 400

# GNU time -v: "Maximum resident set size (kbytes): 812345"
_MAX_RSS_LINE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


class MeasurementError(Exception):
    """A command failed or its figures could not be read."""


@dataclass(frozen=True)
class Timing:
    name: str
    median_seconds: float
    runs: int
    peak_rss_kib: int | None = None
    messages: int | None = None
    cpu_seconds: float | None = None  # user + system, of the child

    @property
    def messages_per_second(self) -> float | None:
        return self.messages / self.median_seconds if self.messages else None


def main() -> int:
    arguments = parse_arguments()
    archives = [arguments.corpus / f"{folder}.tar.bz2" for folder in SPAMASSASSIN_FOLDERS]
    if not all(path.is_file() for path in archives):
        print(
            f"predict_speed: the five SpamAssassin archives are not all in {arguments.corpus}",
            file=sys.stderr,
        )
        return 2
    spamcli = Path(sys.executable).parent / "spamcli"
    if not spamcli.is_file():
        print(f"predict_speed: no spamcli script beside {sys.executable}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="spamcli-predict-speed-") as temporary:
            work_dir = Path(temporary).resolve()
            if REPOSITORY_DIR in work_dir.parents:
                raise MeasurementError(f"the temporary folder {work_dir} is inside the repository")
            report = run_benchmark(arguments, spamcli, archives, work_dir)
    except MeasurementError as error:
        print(f"predict_speed: measurement failed: {error}", file=sys.stderr)
        return 1
    load_after = os.getloadavg()
    print_report(arguments, report, load_before, load_after)
    return 0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=positive, default=10, help="cold-start runs per command")
    parser.add_argument(
        "--corpus-runs", type=positive, default=3, help="runs of each whole-corpus command"
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS_DIR)
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    arguments = parser.parse_args()
    arguments.model = arguments.model.resolve()
    arguments.corpus = arguments.corpus.resolve()
    arguments.sample = arguments.sample.resolve()
    if not arguments.sample.is_file():
        parser.error(f"no sample message at {arguments.sample}")
    return arguments


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


@dataclass(frozen=True)
class Report:
    timer: str
    cold_starts: list[Timing]
    corpus_runs: list[Timing]
    bogofilter_note: str


def run_benchmark(
    arguments: argparse.Namespace, spamcli: Path, archives: list[Path], work_dir: Path
) -> Report:
    python = sys.executable
    predict = [str(spamcli), "predict", "-m", str(arguments.model)]
    cold_commands = {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import click"': [python, "-c", "import click"],
        'python -c "import numpy"': [python, "-c", "import numpy"],
        f"spamcli predict {arguments.sample.name}": [*predict, str(arguments.sample)],
    }
    progress(f"cold start: {len(cold_commands)} commands, {arguments.runs} runs each")
    timer, cold_starts = time_cold_starts(cold_commands, arguments.runs, work_dir)

    unpacked_dir = work_dir / "unpacked"
    progress(f"unpacking the archives into {unpacked_dir}")
    message_files = unpack(archives, unpacked_dir)

    corpus_commands = [
        CorpusCommand("spamcli predict ARCHIVES", [*predict, *map(str, archives)]),
        CorpusCommand("spamcli predict FOLDER", [*predict, str(unpacked_dir)]),
    ]
    bogofilter = shutil.which("bogofilter")
    if bogofilter is None:
        note = "bogofilter is not installed (apt-get install -y bogofilter): not measured"
    else:
        command, note = prepare_bogofilter(bogofilter, message_files, work_dir, arguments.corpus)
        corpus_commands.append(command)
    corpus_runs = time_corpus_commands(corpus_commands, arguments.corpus_runs)
    for timing in corpus_runs:
        if timing.messages != len(message_files):
            raise MeasurementError(
                f"{timing.name} gave {timing.messages} lines for {len(message_files)} messages"
            )
    return Report(timer, cold_starts, corpus_runs, note)


# --------------------------------------------------------------------------
# Running commands


def child_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment.pop("SPAMCLI_MODEL", None)
    return environment


def time_cold_starts(
    commands: dict[str, list[str]], runs: int, work_dir: Path
) -> tuple[str, list[Timing]]:
    """Median wall and CPU time of each command, and its peak RSS from one more run.

    The commands are interleaved: round after round, each command once, the
    order rotated every round. On a shared machine the speed comes and goes
    in phases of seconds to minutes; timed one command after the other (as
    hyperfine does), a slow phase fell on one command only and moved the
    predict / import click ratio between 1.65x and 2.67x within ten minutes.
    Interleaved, a phase slows every command alike.
    """
    environment = child_environment()
    names = list(commands)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    warm_up_rounds = 2  # page cache and bytecode
    for round_number in range(warm_up_rounds + runs):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            run_checked(commands[name], environment, subprocess.DEVNULL)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if round_number >= warm_up_rounds:
                wall[name].append(elapsed)
                cpu[name].append(
                    after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                )
    timings = []
    for name, command in commands.items():
        peak_rss_kib, _ = run_measured(command, subprocess.DEVNULL)
        timings.append(
            Timing(
                name,
                statistics.median(wall[name]),
                runs,
                peak_rss_kib,
                cpu_seconds=statistics.median(cpu[name]),
            )
        )
    return "time.perf_counter and getrusage around subprocess.run, interleaved", timings


def run_checked(
    command: list[str],
    environment: dict[str, str],
    stdout: int | IO[bytes] | None = None,
    stdin_bytes: bytes | None = None,
    ok_statuses: tuple[int, ...] = (0,),
) -> None:
    completed = subprocess.run(
        command, env=environment, stdout=stdout, stderr=subprocess.PIPE, input=stdin_bytes
    )
    if completed.returncode not in ok_statuses:
        stderr = completed.stderr.decode(errors="replace").strip()
        raise MeasurementError(
            f"{shlex.join(command)} exited with status {completed.returncode}: {stderr[-500:]}"
        )


def run_measured(
    command: list[str],
    stdout: int | IO[bytes],
    stdin_bytes: bytes | None = None,
    ok_statuses: tuple[int, ...] = (0,),
) -> tuple[int | None, float]:
    """Run COMMAND once; return its peak RSS in KiB (None without GNU time)
    and its wall time in seconds. GNU time exits with its command's status."""
    environment = child_environment()
    if not os.access(GNU_TIME, os.X_OK):
        started = time.perf_counter()
        run_checked(command, environment, stdout, stdin_bytes, ok_statuses)
        return None, time.perf_counter() - started
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        run_checked(
            [str(GNU_TIME), "-v", "-o", report.name, *command],
            environment,
            stdout,
            stdin_bytes,
            ok_statuses,
        )
        seconds = time.perf_counter() - started
        match = _MAX_RSS_LINE.search(report.read())
    if match is None:
        raise MeasurementError(f"no peak RSS in GNU time's report on {shlex.join(command)}")
    return int(match.group(1)), seconds


@dataclass(frozen=True)
class CorpusCommand:
    name: str
    command: list[str]
    stdin_text: str | None = None
    ok_statuses: tuple[int, ...] = (0,)


def time_corpus_commands(commands: list[CorpusCommand], runs: int) -> list[Timing]:
    """Median wall time of each whole-corpus command; messages = its output lines.

    Interleaved as the cold starts are: a warm-up round (page cache,
    bytecode), then RUNS rounds of each command once, the order rotated
    every round, so that a slow phase of a shared machine slows spamcli and
    bogofilter alike. Timed one after the other, the ratio of the two moved
    with whatever else the machine ran at the time.
    """
    progress(f"corpus: {len(commands)} commands, {runs} rounds after a warm-up round")
    seconds: dict[str, list[float]] = {command.name: [] for command in commands}
    peaks: dict[str, list[int]] = {command.name: [] for command in commands}
    line_counts: dict[str, set[int]] = {command.name: set() for command in commands}
    for round_number in range(1 + runs):
        shift = round_number % len(commands)
        for command in commands[shift:] + commands[:shift]:
            with tempfile.TemporaryFile() as output:
                stdin_bytes = None if command.stdin_text is None else command.stdin_text.encode()
                peak, wall = run_measured(command.command, output, stdin_bytes, command.ok_statuses)
                output.seek(0)
                line_counts[command.name].add(sum(1 for _ in output))
            if round_number == 0:
                progress(f"  warm-up {command.name}: {wall:.2f} s")
                continue
            seconds[command.name].append(wall)
            if peak is not None:
                peaks[command.name].append(peak)
            progress(f"  {command.name}: {wall:.2f} s")
    timings = []
    for command in commands:
        counts = line_counts[command.name]
        if len(counts) != 1:
            raise MeasurementError(
                f"{command.name} printed {sorted(counts)} lines in different runs"
            )
        peak_rss = int(statistics.median(peaks[command.name])) if peaks[command.name] else None
        timings.append(
            Timing(
                command.name,
                statistics.median(seconds[command.name]),
                runs,
                peak_rss,
                counts.pop(),
            )
        )
    return timings


def tool_version(command: list[str]) -> str:
    completed = subprocess.run(command, capture_output=True, text=True)
    return (completed.stdout or completed.stderr).strip().splitlines()[0]


# --------------------------------------------------------------------------
# The corpus as files, and bogofilter


def unpack(archives: Sequence[Path], destination: Path) -> list[Path]:
    """Extract the archives; return the message files, as spamcli reads them
    (no hidden files, no `cmds` index files)."""
    for archive in archives:
        with tarfile.open(archive) as tar:
            tar.extractall(destination, filter="data")
    return sorted(
        path
        for path in destination.rglob("*")
        if path.is_file()
        and path.name != "cmds"
        and not any(part.startswith(".") for part in path.relative_to(destination).parts)
    )


def prepare_bogofilter(
    bogofilter: str, message_files: list[Path], work_dir: Path, corpus_dir: Path
) -> tuple[CorpusCommand, str]:
    """A bogofilter database trained on the random split's train part, and
    the bulk-mode command that classifies MESSAGE_FILES with it."""
    train_dir = DEFAULT_SPLIT_DIR / "train"
    if not all((train_dir / label).is_dir() for label in ("ham", "spam")):
        from spamcli.corpus import write_split

        progress(f"writing the random split to {work_dir / 'split'}")
        write_split(corpus_dir, "random", work_dir / "split")
        train_dir = work_dir / "split" / "train"
    database_dir = work_dir / "bogofilter"
    database_dir.mkdir()
    base = [bogofilter, "-C", "-d", str(database_dir)]
    environment = child_environment()
    trained = {}
    started = time.perf_counter()
    for label, flag in (("spam", "-s"), ("ham", "-n")):
        files = sorted(path for path in (train_dir / label).iterdir() if path.is_file())
        listing = "".join(f"{path}\n" for path in files)
        run_checked([*base, flag, "-b"], environment, stdin_bytes=listing.encode())
        trained[label] = len(files)
    training_seconds = time.perf_counter() - started
    version = tool_version([bogofilter, "-V"])
    listing = "".join(f"{path}\n" for path in message_files)
    note = (
        f"{version}; trained with -s/-n -b on {trained['spam']} spam and {trained['ham']} ham "
        f"of {train_dir} in {training_seconds:.1f} s"
    )
    # -T: one "file label score" line a file; the exit status is the last
    # message's verdict (0 spam, 1 ham, 2 unsure), 3 an error.
    command = CorpusCommand(
        BOGOFILTER_NAME, [*base, "-T", "-b"], stdin_text=listing, ok_statuses=(0, 1, 2)
    )
    return command, note


BOGOFILTER_NAME = "bogofilter -b (FOLDER files)"


# --------------------------------------------------------------------------
# Report


def print_report(
    arguments: argparse.Namespace,
    report: Report,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    print(f"predict_speed: model {arguments.model}, {os.cpu_count()} CPUs")
    print(
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        "another process's load makes every figure worse, baselines included"
    )
    print()
    print(
        f"Cold start: median of {plural(arguments.runs, 'run')}, new process each "
        f"({report.timer}); peak RSS from one more run"
    )
    print(f"{'command':<34} {'median ms':>10} {'CPU ms':>8} {'peak RSS MiB':>13}")
    for timing in report.cold_starts:
        print(
            f"{timing.name:<34} {1000 * timing.median_seconds:>10.1f} "
            f"{1000 * (timing.cpu_seconds or 0):>8.1f} {mebibytes(timing.peak_rss_kib):>13}"
        )
    click_cold = report.cold_starts[1]
    predict_cold = report.cold_starts[-1]
    ratio = predict_cold.median_seconds / click_cold.median_seconds
    cpu_ratio = (predict_cold.cpu_seconds or 0) / (click_cold.cpu_seconds or 1)
    print(f"predict / import click: {ratio:.2f}x wall time, {cpu_ratio:.2f}x CPU time")
    print()
    messages = report.corpus_runs[0].messages
    print(
        f"Throughput: {messages:,} messages, median of {plural(arguments.corpus_runs, 'run')}, "
        "start-up included"
    )
    print(f"{'command':<34} {'median s':>10} {'messages/s':>11} {'peak RSS MiB':>13}")
    for timing in report.corpus_runs:
        print(
            f"{timing.name:<34} {timing.median_seconds:>10.2f} "
            f"{timing.messages_per_second or 0:>11,.0f} {mebibytes(timing.peak_rss_kib):>13}"
        )
    print(f"bogofilter: {report.bogofilter_note}")
    bogofilter = next(
        (timing for timing in report.corpus_runs if timing.name == BOGOFILTER_NAME), None
    )
    throughput_ratio = None
    if bogofilter is not None and bogofilter.messages_per_second:
        for timing in report.corpus_runs[:2]:
            timing_ratio = (timing.messages_per_second or 0) / bogofilter.messages_per_second
            print(f"{timing.name} / bogofilter -b: {timing_ratio:.2f}x messages/s")
        folder = report.corpus_runs[1]
        throughput_ratio = (folder.messages_per_second or 0) / bogofilter.messages_per_second
    print()
    corpus_rss = (
        max((timing.peak_rss_kib or 0 for timing in report.corpus_runs[:2]), default=0) or None
    )
    rows = [
        (
            f"cold start <= {COLD_START_RATIO_TARGET:g}x import click",
            f"{ratio:.2f}x",
            ratio <= COLD_START_RATIO_TARGET,
        ),
        (
            f"predict FOLDER >= {THROUGHPUT_RATIO_TARGET:g}x bogofilter -b",
            "n/a" if throughput_ratio is None else f"{throughput_ratio:.2f}x",
            None if throughput_ratio is None else throughput_ratio >= THROUGHPUT_RATIO_TARGET,
        ),
        rss_row("peak RSS, one message", predict_cold.peak_rss_kib, SINGLE_RSS_TARGET_MIB),
        rss_row("peak RSS, whole corpus", corpus_rss, CORPUS_RSS_TARGET_MIB),
    ]
    print("Targets (reported, not enforced)")
    print(f"{'target':<38} {'measured':>18} {'verdict':>8}")
    for target, measured, met in rows:
        verdict = "n/a" if met is None else ("met" if met else "MISSED")
        print(f"{target:<38} {measured:>18} {verdict:>8}")


def rss_row(label: str, peak_rss_kib: int | None, limit_mib: int) -> tuple[str, str, bool | None]:
    met = None if peak_rss_kib is None else peak_rss_kib * 1024 <= limit_mib * MIB
    return f"{label} <= {limit_mib} MiB", f"{mebibytes(peak_rss_kib)} MiB", met


def mebibytes(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib * 1024 / MIB:.0f}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def progress(message: str) -> None:
    print(f"predict_speed: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
