#!/usr/bin/env python3
"""Does learning wreck the rest of the model? The random split's test part
before and after `spamcli learn` of --messages messages.

A model trained on the `random` split's training part (`spamcli train`,
each seed of --seeds) learns --messages messages with their true labels,
through spamcli.learning.learn (the code of `spamcli learn`, one call a
message, in Date order), and is measured before and after at its stored
cut-off: false positives, spam caught, (1-AUC)%. Two sets are learned, each
from the trained model: the test part's first messages by Date (measured on
the rest of it), and the messages of another collection, CSDMC2010, a user
would correct first: half the ham it scores highest, half the spam it
scores lowest (measured on the whole test part). The learned messages are
never among the measured ones.

bogofilter (the Debian package, where installed) goes through the same: its
word list trained on the training part (`bogofilter -s`/`-n`), measured at
its spam_cutoff of 0.99, then taught the same test-part messages, and the
CSDMC2010 ham it scores highest and spam lowest, one `bogofilter -s`/`-n`
a message.

    python bench/learn_effect.py [--seeds 1,2,3] [--messages 100]
        [--systems spamcli,bogofilter] [--corpora ../shared/corpora] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

import bogofilter_peer  # noqa: E402

from spamcli.config import SPAM, TrainingConfig  # noqa: E402
from spamcli.corpus import LabelledMessage, RawMessage, load_corpus, write_split  # noqa: E402
from spamcli.metrics import classification_metrics  # noqa: E402


def measure(model_dir: Path, test_dir: Path) -> dict[str, float]:
    from spamcli.evaluation import evaluate

    return _three_figures(evaluate(model_dir, [test_dir]))


def _three_figures(result: dict[str, Any]) -> dict[str, float]:
    """The figures a row shows, from classification_metrics' result (which
    evaluate's includes)."""
    return {
        "false_positives": result["false_positives"],
        "caught": result["true_positives"],
        "one_minus_auc": result["one_minus_auc_percent"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--systems", default="spamcli,bogofilter")
    parser.add_argument("--corpora", type=Path, default=REPOSITORY.parent / "shared" / "corpora")
    parser.add_argument("--work-dir", type=Path, default=None)
    arguments = parser.parse_args()
    spamassassin, csdmc = arguments.corpora / "spamassassin", arguments.corpora / "csdmc2010"
    if not spamassassin.is_dir() or not csdmc.is_dir():
        print(f"no corpora at {arguments.corpora}", file=sys.stderr)
        return 2
    work = Path(arguments.work_dir or tempfile.mkdtemp(prefix="spamcli-learn-effect-"))
    split = work / "random"
    if not (split / "test").is_dir():
        write_split(spamassassin, "random", split)
    others = load_corpus(sorted(str(path) for path in csdmc.glob("*.tar.bz2"))).messages
    from spamcli import learning
    from spamcli.replay import arrival_key
    from spamcli.scoring import Scorer
    from spamcli.training import train

    test = load_corpus([split / "test"]).messages
    test.sort(key=lambda message: arrival_key(message.source, message.raw, "date"))
    print(
        f"{arguments.messages} messages learned with spamcli learn (one call each, in Date "
        "order), then the random split's test part measured at the model's stored cut-off "
        "(bogofilter: taught with -s/-n, measured at its spam_cutoff 0.99)"
    )
    print(
        "| system | learned | measured on | FP before | FP after | spam caught before | after "
        "| (1-AUC)% before | after |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    systems = arguments.systems.split(",")
    if "bogofilter" in systems:
        if bogofilter_peer.installed():
            _bogofilter(split, test, others, arguments.messages, work)
        else:
            print("bogofilter is not installed (apt-get install bogofilter)", file=sys.stderr)
    seeds = arguments.seeds.split(",") if "spamcli" in systems else []
    for seed in (int(text) for text in seeds):
        model = work / f"model-seed{seed}"
        if not model.is_dir():
            train(model, [split / "train"], config=TrainingConfig(seed=seed))
        scorer = Scorer(model)
        scores = scorer.score_messages([message.raw for message in others])
        corrections = _corrections(others, scores, arguments.messages)
        for what, learned_messages, measured, measured_name in _variants(
            test, corrections, arguments.messages
        ):
            learned = work / f"learned-seed{seed}"
            shutil.rmtree(learned, ignore_errors=True)
            shutil.copytree(model, learned)
            measured_dir = work / "measured"
            shutil.rmtree(measured_dir, ignore_errors=True)
            for number, message in enumerate(measured):
                target = measured_dir / message.label / f"{number:05d}.eml"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(message.raw)
            before = measure(learned, measured_dir)
            for message in learned_messages:
                item = [RawMessage(message.source, message.raw)]
                is_spam = message.label == SPAM
                learning.learn(learned, spam=item if is_spam else (), ham=() if is_spam else item)
            after = measure(learned, measured_dir)
            _print_row(f"spamcli, seed {seed}", what, measured_name, before, after)
    return 0


def _corrections(
    others: list[LabelledMessage], scores: list[float], count: int
) -> list[LabelledMessage]:
    """The corrections a user of this filter would make first: half the ham
    it scores highest, half the spam it scores lowest, in Date order."""
    from spamcli.replay import arrival_key

    ham = sorted(
        (score, number) for number, score in enumerate(scores) if others[number].label != SPAM
    )
    spam = sorted(
        (score, number) for number, score in enumerate(scores) if others[number].label == SPAM
    )
    half = count // 2
    chosen = [others[number] for _score, number in ham[-half:] + spam[: count - half]]
    chosen.sort(key=lambda message: arrival_key(message.source, message.raw, "date"))
    return chosen


def _variants(
    test: list[LabelledMessage], corrections: list[LabelledMessage], count: int
) -> tuple[tuple[str, list[LabelledMessage], list[LabelledMessage], str], ...]:
    """(what is learned, the messages, the messages measured, their name)."""
    return (
        ("the test part's first (by Date)", test[:count], test[count:], "the rest of it"),
        (
            "CSDMC2010 corrections: the ham it scores highest, the spam lowest",
            corrections,
            test,
            "all of it",
        ),
    )


def _bogofilter(
    split: Path,
    test: list[LabelledMessage],
    others: list[LabelledMessage],
    count: int,
    work: Path,
) -> None:
    trained = bogofilter_peer.WordList(work / "bogofilter-trained")
    if not (trained.directory / "wordlist.db").exists():
        trained.train(load_corpus([split / "train"]).messages)
    corrections = _corrections(others, [trained.score(message.raw) for message in others], count)
    for what, learned_messages, measured, measured_name in _variants(test, corrections, count):
        words = trained.copy(work / "bogofilter-learned")
        before = _bogofilter_figures(words, measured)
        for message in learned_messages:
            words.learn(message.raw, message.label == SPAM)
        after = _bogofilter_figures(words, measured)
        _print_row("bogofilter", what, measured_name, before, after)


def _bogofilter_figures(
    words: bogofilter_peer.WordList, measured: list[LabelledMessage]
) -> dict[str, float]:
    """measure's figures for bogofilter, at its spam_cutoff."""
    scores = [words.score(message.raw) for message in measured]
    return _three_figures(
        classification_metrics(
            [message.label == SPAM for message in measured], scores, bogofilter_peer.SPAM_CUTOFF
        )
    )


def _print_row(
    system: str, what: str, measured_name: str, before: dict[str, float], after: dict[str, float]
) -> None:
    print(
        f"| {system} | {what} | {measured_name} | {before['false_positives']} | "
        f"{after['false_positives']} | {before['caught']} | {after['caught']} | "
        f"{before['one_minus_auc']:.4f} | {after['one_minus_auc']:.4f} |",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
