"""Measure the header policies on the standard splits and across corpora.

For each policy (``content``, ``origin``, ``all``) and each task, train with the default
settings and evaluate:

- ``random``: SpamAssassin random split, train part → test part;
- ``time``: SpamAssassin easy_ham + spam → easy_ham_2 + hard_ham + spam_2;
- ``csdmc2010``: all of SpamAssassin → the CSDMC2010 corpus.

Prints one table of (1-AUC)%, false positives, recall and training time.
Usage: python bench/header_policies.py [--corpora ../shared/corpora] [--policy content]...
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from spamcli.config import HEADER_POLICIES, TrainingConfig
from spamcli.corpus import write_split
from spamcli.evaluation import evaluate
from spamcli.training import train

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--policy", action="append", choices=HEADER_POLICIES)
    parser.add_argument("--task", action="append", choices=["random", "time", "csdmc2010"])
    arguments = parser.parse_args()
    spamassassin = arguments.corpora / "spamassassin"
    csdmc = arguments.corpora / "csdmc2010"
    if not spamassassin.is_dir():
        print(f"no SpamAssassin corpus at {spamassassin}", file=sys.stderr)
        return 2
    policies = arguments.policy or list(HEADER_POLICIES)
    tasks = arguments.task or ["random", "time", "csdmc2010"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        splits = {}
        for name in ("random", "time"):
            if name in tasks:
                write_split(spamassassin, name, scratch_dir / name)
                splits[name] = ([scratch_dir / name / "train"], [scratch_dir / name / "test"])
        if "csdmc2010" in tasks and csdmc.is_dir():
            splits["csdmc2010"] = ([spamassassin], [csdmc])
        for policy in policies:
            for task, (train_sources, test_sources) in splits.items():
                model_dir = scratch_dir / f"model-{policy}-{task}"
                started = time.monotonic()
                train(model_dir, train_sources, config=TrainingConfig(header_policy=policy))
                seconds = time.monotonic() - started
                result = evaluate(model_dir, test_sources)
                rows.append((policy, task, result, seconds))
                print(_row(policy, task, result, seconds), file=sys.stderr, flush=True)
    print(
        f"{'policy':<8} {'task':<10} {'(1-AUC)%':>9} {'FP':>4} {'of ham':>7} {'recall':>7} "
        f"{'threshold':>9} {'train s':>8}"
    )
    for policy, task, result, seconds in rows:
        print(_row(policy, task, result, seconds))
    return 0


def _row(policy: str, task: str, result: dict, seconds: float) -> str:
    return (
        f"{policy:<8} {task:<10} {100 * (1 - result['roc_auc']):>9.3f} "
        f"{result['false_positives']:>4} {result['ham']:>7} {result['recall']:>7.4f} "
        f"{result['threshold']:>9.4f} {seconds:>8.0f}"
    )


if __name__ == "__main__":
    sys.exit(main())
