"""Peak memory and wall time of `spamcli learn` as the learned set grows.

`learn` takes one optimizer step a new message, with NumPy (the standard
library for up to 8 messages), and appends each to learned.jsonl; its memory
must not grow by much per learned message (the bar: 150 MiB peak). The
learn of model format 2 fine-tuned with TensorFlow on the whole learned set:
its figures, and the `import tensorflow` floor measured beside it, are in
bench/README.md.

The messages are the spam of the SpamAssassin public corpus, cycled up to
--messages and made distinct by an `X-Bench-Copy: <n>` header line, as in
training_memory.py (whose corpus helpers this script uses); they are written
to a temporary folder outside the repository. Each measurement is a new
process under GNU `/usr/bin/time -v`, on a fresh copy of the model:

    baseline   python -c "import tensorflow"            (the floor)
    small      spamcli learn --spam on messages/8
    large      spamcli learn --spam on messages

Results go to stdout, progress to stderr. Exit status 0 when everything was
measured, 1 when a measurement failed, 2 for a usage error or a missing
corpus or model.

    .venv/bin/python bench/learn_memory.py [--messages 4000]
        [--model models/default] [--corpus ../shared/corpora/spamassassin]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from training_memory import (
    DEFAULT_CORPUS_DIR,
    GNU_TIME,
    REPOSITORY_DIR,
    MeasurementError,
    measure,
    read_base_messages,
    spamcli_command,
    with_copy_header,
)

from spamcli.config import SPAM

DEFAULT_MODEL_DIR = REPOSITORY_DIR / "models" / "default"
SMALL_FRACTION = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4_000)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS_DIR)
    arguments = parser.parse_args()
    if arguments.messages < SMALL_FRACTION:
        parser.error(f"--messages must be at least {SMALL_FRACTION}")
    archive_paths = sorted(arguments.corpus.glob("*.tar.bz2")) if arguments.corpus.is_dir() else []
    if not archive_paths:
        print(f"learn_memory: no SpamAssassin archives in {arguments.corpus}", file=sys.stderr)
        return 2
    if not (arguments.model / "metadata.json").is_file():
        print(f"learn_memory: no model in {arguments.model}", file=sys.stderr)
        return 2
    use_gnu_time = GNU_TIME.is_file() and os.access(GNU_TIME, os.X_OK)
    load_before = os.getloadavg()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="spamcli-bench-") as temporary:
            work_dir = Path(temporary).resolve()
            spam = [m for m in read_base_messages(archive_paths) if m.label == SPAM]
            cases = [("baseline", 0), ("small", arguments.messages // SMALL_FRACTION)]
            cases.append(("large", arguments.messages))
            for name, count in cases:
                if count == 0:
                    command = [sys.executable, "-c", "import tensorflow"]
                else:
                    messages_dir = work_dir / f"spam-{name}"
                    messages_dir.mkdir()
                    for copy in range(count):
                        raw = with_copy_header(spam[copy % len(spam)].raw, copy)
                        (messages_dir / f"{copy:06d}").write_bytes(raw)
                    model_dir = work_dir / f"model-{name}"
                    shutil.copytree(arguments.model, model_dir)
                    command = [
                        *spamcli_command(), "learn", "--spam", "-m", str(model_dir),
                        str(messages_dir),
                    ]  # fmt: skip
                print(f"learn_memory: {name} ({count} messages)", file=sys.stderr, flush=True)
                measurement = measure(command, work_dir, use_gnu_time)
                rows.append((name, count, measurement.peak_rss_kib, measurement.wall_seconds))
    except MeasurementError as error:
        print(f"learn_memory: measurement failed: {error}", file=sys.stderr)
        return 1
    load_after = os.getloadavg()
    print(
        f"spamcli learn --spam, {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(f"{'case':<10} {'messages':>9} {'peak RSS MiB':>13} {'wall s':>8}")
    for name, count, peak_kib, wall in rows:
        print(f"{name:<10} {count:>9} {peak_kib / 1024:>13.0f} {wall:>8.1f}")
    (_, small_count, small_kib, _), (_, large_count, large_kib, _) = rows[1], rows[2]
    growth = (large_kib - small_kib) / (large_count - small_count)
    print(f"growth: {growth:.1f} KiB of peak RSS per added learned message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
