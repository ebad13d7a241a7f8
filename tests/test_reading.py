"""Streamed reading for training (spamcli.reading): load_corpus's result,
each message's buckets and date, whether parsed here, in worker processes
or by shards."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import generated_mail

from spamcli.config import HAM, SPAM
from spamcli.corpus import CorpusReader, load_corpus
from spamcli.errors import CorpusError
from spamcli.features import FeatureSpec
from spamcli.reading import Shard, message_features, read_labelled

FEATURES = FeatureSpec(bits=16, max_tokens=500)


def write(path: Path, raw: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


@pytest.fixture
def corpus_with_duplicates(tmp_path: Path) -> Path:
    """60 ham and 40 spam, with copies: within a class, across classes (the
    first in source order wins) and inside an archive."""
    root = tmp_path / "corpus"
    ham, spam = generated_mail("ham", 60, seed=7), generated_mail("spam", 40, seed=7)
    for number, raw in enumerate(ham):
        write(root / "ham" / f"h{number:03d}.eml", raw)
    for number, raw in enumerate(spam):
        write(root / "spam" / f"s{number:03d}.eml", raw)
    write(root / "ham" / "copy-of-h001.eml", ham[1])
    write(root / "spam" / "a-ham-copy.eml", ham[2])  # same bytes, other label
    write(root / "ham" / "zz-spam-copy.eml", spam[3])
    write(root / "other" / "unlabelled.eml", ham[4])
    archive_path = root / "more.tar"
    with tarfile.open(archive_path, "w") as archive:
        for number, raw in enumerate((spam[5], ham[50])):
            member = root / f"member{number}"
            write(member, raw)
            archive.add(member, arcname=f"{'spam' if number == 0 else 'ham'}/m{number}.eml")
            member.unlink()
    return root


def expected(root: Path) -> tuple[list[tuple[str, bool, str]], object]:
    corpus = load_corpus([root])
    return [
        (message.source, message.label == SPAM, message.sha256()) for message in corpus.messages
    ], corpus


def test_reading_keeps_what_load_corpus_keeps(corpus_with_duplicates: Path) -> None:
    messages, corpus = expected(corpus_with_duplicates)
    result = read_labelled([corpus_with_duplicates], (), (), "all", FEATURES, 5, workers=1)
    assert [(m.key, m.is_spam, m.sha256) for m in result.messages] == messages
    assert result.counts == corpus.counts()  # type: ignore[attr-defined]
    assert result.fingerprint == corpus.fingerprint()  # type: ignore[attr-defined]
    assert result.duplicates == corpus.duplicates == 5  # type: ignore[attr-defined]
    assert result.unlabelled == 1


def test_reading_gives_each_message_its_buckets_and_date(corpus_with_duplicates: Path) -> None:
    result = read_labelled([corpus_with_duplicates], (), (), "content", FEATURES, 5, workers=1)
    raw_by_source = {m.source: m.raw for m in load_corpus([corpus_with_duplicates]).messages}
    for message in result.messages:
        date, buckets = message_features(raw_by_source[message.key], "content", FEATURES)
        assert message.date == date
        assert message.buckets is not None and message.buckets.dtype == np.uint32
        assert np.array_equal(message.buckets, buckets)


def test_reading_in_worker_processes_gives_the_same_result(corpus_with_duplicates: Path) -> None:
    here = read_labelled([corpus_with_duplicates], (), (), "all", FEATURES, 5, workers=1)
    # parallel_after=0: workers from the first batch on.
    there = read_labelled(
        [corpus_with_duplicates], (), (), "all", FEATURES, 5, workers=2, parallel_after=0
    )
    assert [(m.key, m.sha256, m.date) for m in there.messages] == [
        (m.key, m.sha256, m.date) for m in here.messages
    ]
    for one, other in zip(here.messages, there.messages, strict=True):
        assert np.array_equal(one.buckets, other.buckets)  # type: ignore[arg-type]
    assert there.seconds["tokenize"] > 0


def test_reading_shards_split_the_parsing_and_agree_on_the_rest(
    corpus_with_duplicates: Path,
) -> None:
    whole = read_labelled([corpus_with_duplicates], (), (), "all", FEATURES, 5, workers=1)
    shards = [
        read_labelled(
            [corpus_with_duplicates], (), (), "all", FEATURES, 5, shard=Shard(index, 3), workers=1
        )
        for index in range(3)
    ]
    for shard in shards:
        assert shard.fingerprint == whole.fingerprint and shard.counts == whole.counts
        assert [(m.key, m.date) for m in shard.messages] == [
            (m.key, m.date) for m in whole.messages
        ]
    for position, message in enumerate(whole.messages):
        holders = [
            shard.messages[position]
            for shard in shards
            if shard.messages[position].buckets is not None
        ]
        assert len(holders) == 1, "each message is parsed by exactly one shard"
        assert np.array_equal(holders[0].buckets, message.buckets)  # type: ignore[arg-type]
    assert all(any(m.buckets is None for m in shard.messages) for shard in shards)


def test_reading_leaves_out_replaced_messages_after_deduplication(
    corpus_with_duplicates: Path,
) -> None:
    messages, _corpus = expected(corpus_with_duplicates)
    replaced = {messages[0][2], messages[-1][2]}
    result = read_labelled(
        [corpus_with_duplicates], (), (), "all", FEATURES, 5, replaced_digests=replaced, workers=1
    )
    assert [m.sha256 for m in result.messages] == [
        digest for _source, _spam, digest in messages if digest not in replaced
    ]
    assert result.duplicates == 5
    assert sum(result.counts.values()) == len(messages) - 2


def test_reading_raises_as_load_corpus_does(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no corpus given"):
        read_labelled([], (), (), "all", FEATURES, 5)
    write(tmp_path / "unsorted" / "a.eml", generated_mail("ham", 1, seed=1)[0])
    with pytest.raises(CorpusError, match="no labelled messages"):
        read_labelled([tmp_path], (), (), "all", FEATURES, 5)
    for number, raw in enumerate(generated_mail("ham", 3, seed=1)):
        write(tmp_path / "ham" / f"{number}.eml", raw)
    with pytest.raises(CorpusError, match="no spam messages found; at least 5"):
        read_labelled([tmp_path], (), (), "all", FEATURES, 5)


def test_corpus_reader_reports_progress_failures_and_order(tmp_path: Path) -> None:
    write(tmp_path / "spam" / "b.eml", b"Subject: b\n\nb\n")
    write(tmp_path / "ham" / "a.eml", b"Subject: a\n\na\n")
    write(tmp_path / "other" / "c.eml", b"Subject: c\n\nc\n")
    calls: list[int] = []
    reader = CorpusReader([tmp_path, tmp_path / "missing"], progress=calls.append)
    sources = [entry.source for entry in reader]
    assert sources == [str(tmp_path / "ham" / "a.eml"), str(tmp_path / "spam" / "b.eml")]
    assert calls == [1, 2, 3, 4]
    assert reader.unlabelled == 1 and len(reader.failures) == 1
    assert [label for _source, label, _digest in reader.kept()] == [HAM, SPAM]
