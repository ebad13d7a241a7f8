"""Peak memory and wall time of `spamcli train` as the corpus grows, and where the time goes.

The bars (issue 17): the 6,046 SpamAssassin messages train in at most 30 s
of wall time and 1.5 GiB of peak RSS; 160,000 messages in at most 2 GiB,
and no slower a message than the 6,046. Training keeps every message's
buckets (about 2.4 KB a message) and never every message's bytes, so peak
RSS should grow by little more than that a message, and time linearly.

Cases, each a new process under GNU `/usr/bin/time -v`:

    baseline   python -c "import tensorflow, keras"       (the floor)
    real       spamcli train on the five SpamAssassin archives (6,046 messages)
    N          spamcli train on N messages (--sizes, default 10,000, 40,000 and
               160,000): the corpus replayed, copy k being message k mod 6,046
               with an `X-Bench-Copy: k` header and, after the first 6,046,
               the lines of each paragraph of its body shuffled and a word
               of another message added to its Subject (seeded by k). Under
               the default header policy, `all`, the header is read too, so
               every copy has tokens of its own.

The copies are written as message files to a temporary folder outside the
repository, deleted at the end. Each case runs --runs times (median shown),
the ones above 40,000 messages --large-runs times. With --profile, the
6,046 messages are also taken through each step in this process, timed
alone: reading, parsing, tokenizing, hashing, the date, then one
training.train call for its own timings (parallel reading and parsing,
fit, replay, write), and the TensorFlow import in a fresh process.

Results go to stdout, progress to stderr. Exit status 0 whatever the
verdicts (they are lines of the output), 1 when a measurement failed, 2 for a
usage error or a missing corpus.

    .venv/bin/python bench/training_memory.py [--sizes 10000,40000,160000]
        [--runs 3] [--large-runs 1] [--profile] [--epochs 1]
        [--corpus ../shared/corpora/spamassassin]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from spamcli.config import HAM, SPAM, TrainingConfig
from spamcli.corpus import LabelledMessage, ReadFailure, iter_labelled

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS_DIR = REPOSITORY_DIR.parent / "shared" / "corpora" / "spamassassin"
GNU_TIME = Path("/usr/bin/time")

MIB = 1024 * 1024
GIB = 1024 * MIB
REAL_WALL_LIMIT_SECONDS = 30.0
REAL_RSS_LIMIT_BYTES = 1.5 * GIB
LARGE_RSS_LIMIT_BYTES = 2 * GIB
LARGE_CASE = 160_000
# Cases above this many messages run --large-runs times.
CHEAP_CASE = 40_000
SHUFFLE_SEED = 0

_MAX_RSS_LINE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_WALL_LINE = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)")
_TRAINED_LINE = re.compile(r"trained on (\d+) ham and (\d+) spam \((\d+) duplicates dropped\)")

# The fallback when GNU time is missing: a fresh interpreter whose only child
# is the command, so RUSAGE_CHILDREN's ru_maxrss is that command's peak alone.
_RUSAGE_WRAPPER = """\
import resource, subprocess, sys
status = subprocess.run(sys.argv[2:]).returncode
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as report:
    report.write(f"{status} {peak}\\n")
"""


class MeasurementError(Exception):
    """A command failed or its figures could not be read."""


@dataclass(frozen=True)
class Measurement:
    peak_rss_kib: int
    wall_seconds: float
    stdout: str


@dataclass(frozen=True)
class Case:
    name: str
    messages: int
    raw_bytes: int
    sources: tuple[Path, ...]  # empty for the baseline


@dataclass(frozen=True)
class CaseResult:
    case: Case
    runs: int
    peak_rss_kib: float
    wall_seconds: float
    wall_spread: tuple[float, float]


def main() -> int:
    arguments = parse_arguments()
    corpus_dir: Path = arguments.corpus
    archive_paths = sorted(corpus_dir.glob("*.tar.bz2")) if corpus_dir.is_dir() else []
    if not archive_paths:
        print(f"training_memory: no SpamAssassin archives in {corpus_dir}", file=sys.stderr)
        return 2
    use_gnu_time = GNU_TIME.is_file() and os.access(GNU_TIME, os.X_OK)
    if not use_gnu_time:
        progress(
            f"{GNU_TIME} is absent (apt-get install -y time); falling back to "
            "resource.getrusage(RUSAGE_CHILDREN).ru_maxrss of a subprocess"
        )
    load_before = os.getloadavg()
    try:
        profile = run_profile(archive_paths) if arguments.profile else None
        with tempfile.TemporaryDirectory(prefix="spamcli-bench-") as temporary:
            work_dir = Path(temporary).resolve()
            if REPOSITORY_DIR in work_dir.parents:
                raise MeasurementError(f"the temporary folder {work_dir} is inside the repository")
            results = run_benchmark(arguments, archive_paths, work_dir, use_gnu_time)
    except MeasurementError as error:
        print(f"training_memory: measurement failed: {error}", file=sys.stderr)
        return 1
    report(arguments, results, use_gnu_time, load_before, os.getloadavg())
    if profile is not None:
        print_profile(profile)
    return 0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,40000,160000",
        help="replayed corpus sizes, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS_DIR,
        help="folder with the SpamAssassin .tar.bz2 archives (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=1, help="spamcli train --epochs (default: 1)")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each case up to 40,000 messages (median)"
    )
    parser.add_argument(
        "--large-runs", type=int, default=1, help="runs of each larger case (default: 1)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also time each step on the 6,046 messages"
    )
    arguments = parser.parse_args()
    try:
        arguments.sizes = sorted({int(size) for size in arguments.sizes.split(",") if size})
    except ValueError:
        parser.error("--sizes takes numbers separated by commas")
    if any(size < 1000 for size in arguments.sizes):
        parser.error("every size must be at least 1000")
    if arguments.epochs < 1 or arguments.runs < 1 or arguments.large_runs < 1:
        parser.error("--epochs, --runs and --large-runs must be at least 1")
    return arguments


def progress(message: str) -> None:
    print(f"training_memory: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The corpus


def read_base_messages(archive_paths: list[Path]) -> list[LabelledMessage]:
    messages: list[LabelledMessage] = []
    for item in iter_labelled(archive_paths):
        if isinstance(item, ReadFailure):
            raise MeasurementError(f"cannot read {item.source}: {item.reason}")
        messages.append(item)
    if not {HAM, SPAM} <= {message.label for message in messages}:
        raise MeasurementError("the archives do not hold both ham and spam")
    messages.sort(key=lambda message: message.source)
    random.Random(SHUFFLE_SEED).shuffle(messages)
    return messages


def perturbed(raw: bytes, copy: int, base_count: int, subject_words: list[bytes]) -> bytes:
    """Copy COPY of RAW: an `X-Bench-Copy` header (after the mbox envelope
    line, which must stay first) and, from the second replay on, each body
    paragraph's lines shuffled and a word added to the Subject."""
    envelope = b""
    if raw.startswith(b"From "):
        end = raw.find(b"\n") + 1 or len(raw)
        envelope, raw = raw[:end], raw[end:]
    newline = b"\r\n" if raw.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    head, separator, body = raw.partition(newline + newline)
    if copy >= base_count:
        rng = random.Random(copy)
        word = subject_words[rng.randrange(len(subject_words))]
        head = re.sub(
            rb"(?im)^(subject:[^\r\n]*)", lambda match: match.group(1) + b" " + word, head, count=1
        )
        paragraphs = body.split(newline + newline)
        for index, paragraph in enumerate(paragraphs):
            lines = paragraph.split(newline)
            # MIME boundaries and part headers stay where they are.
            if len(lines) > 1 and not any(
                line.startswith(b"--") or line.lower().startswith(b"content-") for line in lines
            ):
                rng.shuffle(lines)
                paragraphs[index] = newline.join(lines)
        body = (newline + newline).join(paragraphs)
    return envelope + b"X-Bench-Copy: %d" % copy + newline + head + separator + body


def write_corpus(base: list[LabelledMessage], count: int, corpus_dir: Path) -> int:
    """Write COUNT messages as CORPUS_DIR/{ham,spam}/NNNNNNN; return their bytes."""
    for label in (HAM, SPAM):
        (corpus_dir / label).mkdir(parents=True)
    subject_words = sorted(
        {
            word
            for message in base[:500]
            for match in re.finditer(rb"(?im)^subject:([^\r\n]*)", message.raw[:4096])
            for word in match.group(1).split()
            if word.isalpha()
        }
    )
    total = 0
    for copy in range(count):
        message = base[copy % len(base)]
        raw = perturbed(message.raw, copy, len(base), subject_words)
        (corpus_dir / message.label / f"{copy:07d}").write_bytes(raw)
        total += len(raw)
    return total


# --------------------------------------------------------------------------
# Measuring


def measure(command: list[str], work_dir: Path, use_gnu_time: bool) -> Measurement:
    report_path = work_dir / "rusage.txt"
    report_path.unlink(missing_ok=True)
    if use_gnu_time:
        wrapped = [str(GNU_TIME), "-v", "-o", str(report_path), *command]
    else:
        wrapped = [sys.executable, "-c", _RUSAGE_WRAPPER, str(report_path), *command]
    started = time.monotonic()
    completed = subprocess.run(wrapped, capture_output=True, text=True, check=False)
    wall_seconds = time.monotonic() - started
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-10:])
        raise MeasurementError(
            f"{' '.join(command)} exited with status {completed.returncode}:\n{tail}"
        )
    try:
        text = report_path.read_text()
    except OSError as error:
        raise MeasurementError(f"no resource report for {' '.join(command)}: {error}") from error
    if use_gnu_time:
        rss_match, wall_match = _MAX_RSS_LINE.search(text), _WALL_LINE.search(text)
        if rss_match is None or wall_match is None:
            raise MeasurementError(f"unexpected output from {GNU_TIME} -v:\n{text}")
        peak_rss_kib = int(rss_match.group(1))
        wall_seconds = parse_clock(wall_match.group(1))
    else:
        peak_rss_kib = int(text.split()[1])
        if sys.platform == "darwin":  # ru_maxrss is in bytes there, KiB on Linux
            peak_rss_kib //= 1024
    return Measurement(peak_rss_kib, wall_seconds, completed.stdout)


def parse_clock(clock: str) -> float:
    """Seconds in GNU time's "h:mm:ss" or "m:ss.ss"."""
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def spamcli_command() -> list[str]:
    """`spamcli` from the same environment as this interpreter."""
    script = Path(sys.executable).parent / "spamcli"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "spamcli"]


def check_trained_count(case: Case, stdout: str) -> None:
    match = _TRAINED_LINE.search(stdout)
    if match is None:
        raise MeasurementError(f"{case.name}: no message counts in spamcli's output: {stdout!r}")
    ham, spam, duplicates = (int(group) for group in match.groups())
    if ham + spam != case.messages or duplicates:
        raise MeasurementError(
            f"{case.name}: spamcli trained on {ham} ham and {spam} spam with {duplicates} "
            f"duplicates dropped, not on the {case.messages} messages given"
        )


def run_benchmark(
    arguments: argparse.Namespace, archive_paths: list[Path], work_dir: Path, use_gnu_time: bool
) -> list[CaseResult]:
    progress(f"reading {len(archive_paths)} archives in {arguments.corpus}")
    base = read_base_messages(archive_paths)
    base_bytes = sum(len(message.raw) for message in base)
    cases = [
        Case("baseline", 0, 0, ()),
        Case("real", len(base), base_bytes, tuple(archive_paths)),
    ]
    for count in arguments.sizes:
        corpus_dir = work_dir / f"corpus-{count}"
        progress(f"writing {count} messages to {corpus_dir}")
        cases.append(
            Case(f"{count // 1000}k", count, write_corpus(base, count, corpus_dir), (corpus_dir,))
        )
    del base

    results = []
    for case in cases:
        runs = arguments.runs if case.messages <= CHEAP_CASE else arguments.large_runs
        samples = []
        for run in range(1, runs + 1):
            if not case.sources:
                command = [sys.executable, "-c", "import tensorflow, keras"]
            else:
                model_dir = work_dir / f"model-{case.name}"
                shutil.rmtree(model_dir, ignore_errors=True)
                command = [
                    *spamcli_command(),
                    "train",
                    *map(str, case.sources),
                    "-m",
                    str(model_dir),
                    "--epochs",
                    str(arguments.epochs),
                    "-q",
                ]
            progress(f"{case.name} ({case.messages} messages), run {run}/{runs}")
            measurement = measure(command, work_dir, use_gnu_time)
            if case.sources:
                check_trained_count(case, measurement.stdout)
            progress(
                f"  peak RSS {measurement.peak_rss_kib / 1024:.0f} MiB, "
                f"wall {measurement.wall_seconds:.1f} s"
            )
            samples.append(measurement)
        walls = [sample.wall_seconds for sample in samples]
        results.append(
            CaseResult(
                case,
                runs,
                statistics.median(sample.peak_rss_kib for sample in samples),
                statistics.median(walls),
                (min(walls), max(walls)),
            )
        )
    return results


# --------------------------------------------------------------------------
# Where the time goes


def run_profile(archive_paths: list[Path]) -> dict[str, float]:
    """Each step on the 6,046 messages, alone, in this process (CPU on one
    core), then one training.train for the rest."""
    import numpy as np  # noqa: F401  (imported before the clocks start)

    from spamcli.corpus import CorpusReader
    from spamcli.features import FeatureSpec, feature_array
    from spamcli.mail import extract_fields, message_date
    from spamcli.tokens import token_string

    config = TrainingConfig()
    features = FeatureSpec(bits=config.bits, max_tokens=config.max_tokens)
    figures: dict[str, float] = {}
    progress("profile: reading")
    started = time.process_time()
    raws = [entry.raw for entry in CorpusReader(archive_paths)]
    figures["read (decompress, split, sha256)"] = time.process_time() - started
    figures["messages"] = len(raws)
    progress("profile: parsing, tokenizing, hashing")
    started = time.process_time()
    fields = [extract_fields(raw, config.header_policy) for raw in raws]
    figures["parse (MIME, HTML: mail.extract_fields)"] = time.process_time() - started
    started = time.process_time()
    texts = [token_string(message_fields) for message_fields in fields]
    figures["tokenize (tokens.token_string)"] = time.process_time() - started
    started = time.process_time()
    for text in texts:
        feature_array(text, features)
    figures["hash (features.feature_array)"] = time.process_time() - started
    started = time.process_time()
    for raw in raws:
        message_date(raw)
    figures["date (mail.message_date)"] = time.process_time() - started
    del raws, fields, texts

    progress("profile: importing TensorFlow in a fresh process")
    imports = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import tensorflow, keras"], check=True)
        imports.append(time.monotonic() - started)
    figures["TF import (fresh process, median of 3)"] = statistics.median(imports)

    progress("profile: training.train")
    from spamcli import quiet

    quiet.import_tensorflow()
    from spamcli.training import train

    with tempfile.TemporaryDirectory(prefix="spamcli-profile-") as temporary:
        report = train(Path(temporary) / "model", archive_paths, config=config)
    for name, value in report.timings.items():
        figures[f"train: {name}"] = value
    figures["train: total"] = report.seconds
    return figures


def print_profile(figures: dict[str, float]) -> None:
    messages = int(figures.pop("messages"))
    print()
    print(f"where the time goes, {messages} messages (seconds; CPU for the steps alone, on one")
    print("core; for train: wall time of reading and parsing on every core, CPU of its steps")
    print("wherever they ran, wall time of fit, replay and write)")
    for name, value in figures.items():
        print(f"  {name:<44} {value:>7.2f}   {value / messages * 1000:>6.3f} ms a message")


# --------------------------------------------------------------------------
# The report


def report(
    arguments: argparse.Namespace,
    results: list[CaseResult],
    use_gnu_time: bool,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    tool = "GNU time -v" if use_gnu_time else "getrusage(RUSAGE_CHILDREN)"
    print(
        f"spamcli train, {arguments.epochs} epoch(s), batch size {TrainingConfig().batch_size}, "
        f"{tool}; {os.cpu_count()} CPUs, load average {format_load(load_before)} before, "
        f"{format_load(load_after)} after"
    )
    print()
    print(
        f"{'case':<9} {'messages':>9} {'raw MiB':>8} {'runs':>5} {'peak RSS MiB':>13} "
        f"{'wall s':>8} {'(min-max)':>13} {'ms/message':>11}"
    )
    for result in results:
        case = result.case
        raw = f"{case.raw_bytes / MIB:.1f}" if case.sources else "-"
        per_message = f"{result.wall_seconds / case.messages * 1000:.2f}" if case.messages else "-"
        spread = f"{result.wall_spread[0]:.1f}-{result.wall_spread[1]:.1f}"
        print(
            f"{case.name:<9} {case.messages:>9} {raw:>8} {result.runs:>5} "
            f"{result.peak_rss_kib / 1024:>13.0f} {result.wall_seconds:>8.1f} {spread:>13} "
            f"{per_message:>11}"
        )
    by_name = {result.case.name: result for result in results}
    real = by_name["real"]
    replayed = [result for result in results if result.case.name not in ("baseline", "real")]
    print()
    if len(replayed) >= 2:
        small, large = replayed[0], replayed[-1]
        added = large.case.messages - small.case.messages
        growth = (large.peak_rss_kib - small.peak_rss_kib) / added
        seconds = (large.wall_seconds - small.wall_seconds) / added * 1000
        print(
            f"growth from {small.case.messages} to {large.case.messages} messages: "
            f"{growth:.2f} KiB of peak RSS and {seconds:.2f} ms of wall time per added message "
            f"(raw mail {(large.case.raw_bytes - small.case.raw_bytes) / 1024 / added:.1f} KiB "
            "a message)"
        )
    real_rss = real.peak_rss_kib * 1024
    print(
        verdict(real.wall_seconds <= REAL_WALL_LIMIT_SECONDS and real_rss <= REAL_RSS_LIMIT_BYTES)
        + f": {real.case.messages} real messages in {real.wall_seconds:.1f} s (limit "
        f"{REAL_WALL_LIMIT_SECONDS:.0f} s) and {real.peak_rss_kib / 1024:.0f} MiB (limit "
        f"{REAL_RSS_LIMIT_BYTES / MIB:.0f} MiB)"
    )
    large_result = by_name.get(f"{LARGE_CASE // 1000}k")
    if large_result is not None:
        real_per_message = real.wall_seconds / real.case.messages * 1000
        large_per_message = large_result.wall_seconds / large_result.case.messages * 1000
        print(
            verdict(
                large_result.peak_rss_kib * 1024 <= LARGE_RSS_LIMIT_BYTES
                and large_per_message <= real_per_message
            )
            + f": {LARGE_CASE} messages in {large_result.peak_rss_kib / 1024:.0f} MiB (limit "
            f"{LARGE_RSS_LIMIT_BYTES / MIB:.0f} MiB), {large_per_message:.2f} ms a message "
            f"against {real_per_message:.2f} at {real.case.messages}"
        )


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def format_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


if __name__ == "__main__":
    sys.exit(main())
