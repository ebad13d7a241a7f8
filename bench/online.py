#!/usr/bin/env python3
"""Mail streams replayed as they arrived: spamcli against bogofilter.

The TREC immediate-feedback protocol on six streams, each ordered by Date
(messages without a date last, ties by name; spamcli.replay's order):

    time          SpamAssassin easy_ham_2 + hard_ham + spam_2, after training
                  on easy_ham + spam (the `time` split)
    random        the `random` split's test part, after its training part
    csdmc-scratch CSDMC2010 from a filter that has learned nothing
    csdmc-sa      CSDMC2010 after training on all of SpamAssassin
    sa-mailbox    all of SpamAssassin as one mailbox in date order: the older
                  half trains, the newer half is replayed
    csdmc-mailbox CSDMC2010 likewise

Each message is classified, then learned with its true label (train on
everything). spamcli: `spamcli train` (spamcli.training.train, in this
process) with each seed of --seeds, then spamcli.replay.replay, the code
behind `spamcli evaluate --online`; from scratch, a network of train's
settings with that seed. bogofilter 1.2.5 (Debian package): `bogofilter -s`
/ `-n` on each training message, then for each stream message `bogofilter
-T` (its score) and `-s` or `-n`, one process per step.

Figures per stream and system: (1-AUC)% of the scores given before each
message was learned; false positives at each system's own cut-off (spamcli:
its model's threshold, moving as learning moves it, 0.5 from scratch;
bogofilter: its spam_cutoff 0.99) and the recall there; false positives at
a cut-off chosen the same way for every system, the highest that catches
at least 85 % of the stream's spam; wall seconds of the replay. spamcli
rows give the mean over the seeds and each seed's figure.

    python bench/online.py [--seeds 1,2,3,4,5] [--streams time,random,csdmc-scratch,csdmc-sa]
        [--systems spamcli,bogofilter] [--set FIELD=VALUE ...] [--corpora ../shared/corpora]
        [--work-dir DIR]

--set overrides a field of spamcli.config.TrainingConfig (for example
--set hidden_units=32 --set header_policy=origin), for measuring settings.
Results on stdout, progress on stderr; exit status 0 when every measurement
ran, 1 when one failed, 2 for a usage error or a missing corpus.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

import bogofilter_peer  # noqa: E402
import numpy as np  # noqa: E402

from spamcli.config import SPAM, TrainingConfig  # noqa: E402
from spamcli.corpus import load_corpus, write_split  # noqa: E402
from spamcli.metrics import one_minus_auc_percent  # noqa: E402
from spamcli.replay import arrival_key  # noqa: E402

STREAMS = ("time", "random", "csdmc-scratch", "csdmc-sa", "sa-mailbox", "csdmc-mailbox")
# The mailbox streams: one corpus as one mailbox, in arrival order; the
# first share trains, the rest is replayed.
MAILBOX_TRAINING_SHARE = 0.5
RECALL = 0.85


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--streams", default=",".join(STREAMS))
    parser.add_argument("--systems", default="spamcli,bogofilter")
    parser.add_argument("--set", dest="settings", action="append", default=[])
    parser.add_argument("--corpora", type=Path, default=REPOSITORY.parent / "shared" / "corpora")
    parser.add_argument("--work-dir", type=Path, default=None)
    arguments = parser.parse_args()
    streams = arguments.streams.split(",")
    systems = arguments.systems.split(",")
    if not set(streams) <= set(STREAMS) or not set(systems) <= {"spamcli", "bogofilter"}:
        parser.error(f"streams are {', '.join(STREAMS)}; systems spamcli and bogofilter")
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    try:
        overrides = dict(_setting(text) for text in arguments.settings)
        config = TrainingConfig(**overrides)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    spamassassin = arguments.corpora / "spamassassin"
    csdmc = arguments.corpora / "csdmc2010"
    if not spamassassin.is_dir() or not csdmc.is_dir():
        print(f"no corpora at {arguments.corpora}", file=sys.stderr)
        return 2
    if "bogofilter" in systems and not bogofilter_peer.installed():
        print("bogofilter is not installed (apt-get install bogofilter)", file=sys.stderr)
        return 2
    work = Path(arguments.work_dir or tempfile.mkdtemp(prefix="spamcli-online-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("time", "random"):
        if not (work / name).is_dir():
            write_split(spamassassin, name, work / name)
    spamassassin_all = sorted(str(path) for path in spamassassin.glob("*.tar.bz2"))
    csdmc_all = sorted(str(path) for path in csdmc.glob("*.tar.bz2"))
    mailbox_parts = {
        name: _mailbox_split(sources, work / name)
        for name, sources in (("sa-mailbox", spamassassin_all), ("csdmc-mailbox", csdmc_all))
        if name in streams
    }
    definitions = {
        "time": ([str(work / "time" / "train")], [str(work / "time" / "test")]),
        "random": ([str(work / "random" / "train")], [str(work / "random" / "test")]),
        "csdmc-scratch": ([], csdmc_all),
        "csdmc-sa": (spamassassin_all, csdmc_all),
        **mailbox_parts,
    }
    print(f"settings: {_changed_settings(config) or 'the defaults of spamcli train'}")
    print(f"seeds: {', '.join(map(str, seeds))}; load average before: {_load()}")
    print()
    print(
        "| stream | system | (1-AUC)% | FP at its cut-off | recall there "
        "| FP at recall 0.85 | seconds |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    failed = False
    for stream in streams:
        train_sources, test_sources = definitions[stream]
        if "spamcli" in systems:
            rows = []
            for seed in seeds:
                try:
                    rows.append(_spamcli(train_sources, test_sources, config, seed, work / stream))
                except Exception as error:  # a failed measurement is reported, not hidden
                    progress(f"{stream} seed {seed}: {type(error).__name__}: {error}")
                    failed = True
            if rows:
                _print_spamcli(stream, rows, seeds)
        if "bogofilter" in systems:
            row = _bogofilter(train_sources, test_sources, work / stream)
            print(
                f"| {stream} | bogofilter | {row['auc']:.4f} | {row['fp']} | {row['recall']:.3f} | "
                f"{row['fp_at_recall']} | {row['seconds']:.1f} |",
                flush=True,
            )
    print()
    print(f"load average after: {_load()}")
    return 1 if failed else 0


def _setting(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    fields = {field.name: field for field in dataclasses.fields(TrainingConfig)}
    if name not in fields:
        raise ValueError(f"no setting {name!r}")
    default = getattr(TrainingConfig, name)
    if name == "hidden_units":
        return name, tuple(int(part) for part in value.split(","))
    if value == "none":
        return name, None
    if isinstance(default, bool):
        return name, value == "true"
    if isinstance(default, int):
        return name, int(value)
    if isinstance(default, float):
        return name, float(value)
    return name, value


def _changed_settings(config: TrainingConfig) -> str:
    default = TrainingConfig()
    return ", ".join(
        f"{field.name}={getattr(config, field.name)}"
        for field in dataclasses.fields(config)
        if getattr(config, field.name) != getattr(default, field.name)
    )


def _figures(is_spam: np.ndarray, scores: np.ndarray, cutoff: float) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    flagged = scores >= cutoff
    spam_scores = np.sort(scores[is_spam])[::-1]
    same_way = spam_scores[int(np.ceil(RECALL * len(spam_scores))) - 1]
    return {
        "auc": one_minus_auc_percent(float(roc_auc_score(is_spam, scores))),
        "fp": int((flagged & ~is_spam).sum()),
        "recall": float((flagged & is_spam).sum() / is_spam.sum()),
        "fp_at_recall": int(((scores >= same_way) & ~is_spam).sum()),
    }


def _spamcli(
    train_sources: list[str], test_sources: list[str], config: TrainingConfig, seed: int, work: Path
) -> dict[str, Any]:
    from spamcli.replay import replay
    from spamcli.training import train

    seeded = dataclasses.replace(config, seed=seed)
    started = time.monotonic()
    if train_sources:
        model_dir = work / f"spamcli-seed{seed}"
        train(model_dir, train_sources, config=seeded)
        trained = time.monotonic() - started
        report = replay(test_sources, model_dir=model_dir)
    else:
        trained = 0.0
        report = replay(test_sources, scratch=seeded)
    is_spam = np.array([message.label == SPAM for message in report.messages])
    scores = np.array([message.score for message in report.messages])
    row = _figures(is_spam, scores, report.threshold)
    moving = report.metrics.get("moving_cut_off")
    if moving is not None:
        # At its cut-off: the verdicts given, the cut-off moving with learning.
        row["fp"], row["recall"] = moving["false_positives"], moving["recall"]
    row["seconds"] = report.seconds
    row["train_seconds"] = trained
    progress(f"{work.name} seed {seed}: {row}")
    return row


def _print_spamcli(stream: str, rows: list[dict[str, Any]], seeds: list[int]) -> None:
    def mean(key: str) -> float:
        return statistics.fmean(row[key] for row in rows)

    each = " / ".join(f"{row['auc']:.4f}" for row in rows)
    print(
        f"| {stream} | spamcli, mean of seeds {','.join(map(str, seeds))} ({each}) | "
        f"{mean('auc'):.4f} | {mean('fp'):.1f} | {mean('recall'):.3f} | "
        f"{mean('fp_at_recall'):.1f} (most {max(row['fp_at_recall'] for row in rows)}) | "
        f"{mean('seconds'):.1f} |",
        flush=True,
    )


def _bogofilter(train_sources: list[str], test_sources: list[str], work: Path) -> dict[str, Any]:
    words = bogofilter_peer.WordList(Path(tempfile.mkdtemp(prefix="bogofilter-", dir=work.parent)))
    try:
        if train_sources:
            words.train(load_corpus(train_sources).messages)
        stream = load_corpus(test_sources).messages
        stream.sort(key=lambda message: arrival_key(message.source, message.raw, "date"))
        started = time.monotonic()
        scores = []
        for message in stream:
            scores.append(words.score(message.raw))
            words.learn(message.raw, message.label == SPAM)
        seconds = time.monotonic() - started
    finally:
        shutil.rmtree(words.directory, ignore_errors=True)
    is_spam = np.array([message.label == SPAM for message in stream])
    row = _figures(is_spam, np.array(scores), bogofilter_peer.SPAM_CUTOFF)
    row["seconds"] = seconds
    return row


def _mailbox_split(sources: list[str], folder: Path) -> tuple[list[str], list[str]]:
    """Write a corpus's older and newer parts (by arrival order) as ham/ and
    spam/ files under FOLDER/train and FOLDER/test."""
    if not (folder / "test").is_dir():
        messages = load_corpus(sources).messages
        messages.sort(key=lambda message: arrival_key(message.source, message.raw, "date"))
        cut = round(len(messages) * MAILBOX_TRAINING_SHARE)
        for part, chosen in (("train", messages[:cut]), ("test", messages[cut:])):
            for number, message in enumerate(chosen):
                target = folder / part / message.label / f"{number:05d}.eml"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(message.raw)
    return [str(folder / "train")], [str(folder / "test")]


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
