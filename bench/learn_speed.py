#!/usr/bin/env python3
"""How fast `spamcli learn` is, and how much memory it takes.

Three figures, on a copy of a model folder (the built-in model unless -m):

- cold: one `spamcli learn --spam MESSAGE -m COPY` process per message, a
  new message each time (a message learned again changes nothing and is
  faster), wall time and peak RSS (GNU time's %M), against
  `python -c "import click"` in the same run: the runs alternate, so load
  from elsewhere falls on both alike. Median of --runs each.
- in a running process, without writing: learning.Learner.learn_message
  on --messages messages one after another, median milliseconds a message.
- in a running process, written after each message (what a daemon that
  learns through TELL does): learn_message then save, median milliseconds.

The messages are spam of the SpamAssassin corpus (../shared/corpora),
read from its archives; without it, generated messages.

    python bench/learn_speed.py [-m MODEL] [--runs 15] [--messages 200]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))


def messages(count: int) -> list[bytes]:
    archive = REPOSITORY.parent / "shared" / "corpora" / "spamassassin" / "spam_2.tar.bz2"
    if archive.is_file():
        from spamcli.corpus import iter_messages

        found = [item.raw for item in iter_messages(archive) if hasattr(item, "raw")]
        if len(found) >= count:
            return found[:count]
    return [
        f"From: offers{number}@example.com\nSubject: offer {number}\n\nbuy now {number}\n".encode()
        for number in range(count)
    ]


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS in KiB of one run of COMMAND."""
    started = time.perf_counter()
    completed = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {completed.stderr.strip()}")
    return wall, int(completed.stderr.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", type=Path, default=REPOSITORY / "models" / "default")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--messages", type=int, default=200)
    arguments = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        print("GNU time is not installed (apt-get install time)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="spamcli-learn-speed-"))
    try:
        model = Path(shutil.copytree(arguments.model, work / "model"))
        sample = messages(arguments.runs + 2 * arguments.messages)
        spamcli = str(Path(sys.executable).parent / "spamcli")
        click_times, learn_times, click_memory, learn_memory = [], [], [], []
        for run in range(arguments.runs + 1):
            message_path = work / f"message-{run}.eml"
            message_path.write_bytes(sample[run])
            click_wall, click_rss = timed([sys.executable, "-c", "import click"])
            learn_wall, learn_rss = timed(
                [spamcli, "learn", "--spam", str(message_path), "-m", str(model)]
            )
            if run:  # the first of each warms the page cache
                click_times.append(click_wall)
                learn_times.append(learn_wall)
                click_memory.append(click_rss)
                learn_memory.append(learn_rss)
        click_median = statistics.median(click_times)
        learn_median = statistics.median(learn_times)
        print(f"model: {arguments.model} ({_size(arguments.model)})")
        print(
            f"python -c 'import click': median {click_median * 1000:.1f} ms, "
            f"peak RSS {statistics.median(click_memory) / 1024:.1f} MiB"
        )
        print(
            f"spamcli learn, one new message a process: median {learn_median * 1000:.1f} ms "
            f"= {learn_median / click_median:.2f}x import click (bar: 3x), peak RSS "
            f"{max(learn_memory) / 1024:.1f} MiB at most (bar: 150 MiB)"
        )

        from spamcli import learning

        learner = learning.Learner(model)
        offset = arguments.runs + 1
        in_memory = []
        for raw in sample[offset : offset + arguments.messages]:
            started = time.perf_counter()
            learner.learn_message(raw, "spam")
            in_memory.append(time.perf_counter() - started)
        saved = []
        for raw in sample[offset + arguments.messages : offset + 2 * arguments.messages]:
            started = time.perf_counter()
            learner.learn_message(raw, "spam")
            learner.save()
            saved.append(time.perf_counter() - started)
        print(
            f"in a running process, {len(in_memory)} messages: median "
            f"{statistics.median(in_memory) * 1000:.2f} ms a message (bar: 10 ms), "
            f"slowest {max(in_memory) * 1000:.2f} ms"
        )
        print(
            f"in a running process, each message written to the folder: median "
            f"{statistics.median(saved) * 1000:.2f} ms a message, slowest "
            f"{max(saved) * 1000:.2f} ms"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _size(folder: Path) -> str:
    total = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    return f"{total / 2**20:.1f} MiB"


if __name__ == "__main__":
    sys.exit(main())
