"""Tests of spamcli.corpus: finding messages and labels in files, folders and archives.

Every fixture is a small hand-written message generated into ``tmp_path``;
only the tests at the end read the shared SpamAssassin archives, and skip
when they are absent.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spamcli.config import HAM, MAX_MESSAGE_BYTES, SPAM
from spamcli.corpus import (
    Corpus,
    LabelledMessage,
    RawMessage,
    ReadFailure,
    iter_labelled,
    iter_messages,
    label_from_path,
    load_corpus,
    require_both_classes,
    standard_split,
    write_split,
)
from spamcli.errors import CorpusError

T = TypeVar("T")

SPAMASSASSIN_DIR = (
    Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "spamassassin"
)


def message(subject: str, body: str = "Hello.\n", envelope: bool = False) -> bytes:
    """A small hand-written RFC 822 message; ENVELOPE adds an mbox "From " line, as the
    SpamAssassin files have."""
    text = f"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: {subject}\n\n{body}"
    if envelope:
        text = "From alice@example.org  Mon Sep 23 12:34:56 2002\n" + text
    return text.encode("utf-8")


def write(path: Path, raw: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    """An archive holding MEMBERS (name → bytes), with folder entries as tar writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mode is one of w, w:gz, w:bz2, w:xz; typeshed types each in its own overload.
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        folders = sorted({name.rsplit("/", 1)[0] for name in members if "/" in name})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path


def by_source(items: list[LabelledMessage]) -> dict[str, str]:
    return {item.source: item.label for item in items}


def failures(items: list[RawMessage | ReadFailure]) -> list[ReadFailure]:
    return [item for item in items if isinstance(item, ReadFailure)]


def no_failures(items: Iterable[T | ReadFailure]) -> list[T]:
    """ITEMS, checked to hold no ReadFailure (which also narrows the type)."""
    found = list(items)
    assert not [item for item in found if isinstance(item, ReadFailure)]
    return [item for item in found if not isinstance(item, ReadFailure)]


# --------------------------------------------------------------------------
# Labels


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("corpus", "ham"), HAM),
        (("corpus", "easy_ham"), HAM),
        (("corpus", "easy_ham_2"), HAM),
        (("corpus", "hard_ham"), HAM),
        (("corpus", "HAM"), HAM),
        (("corpus", "Easy_Ham_12"), HAM),
        (("corpus", "spam"), SPAM),
        (("corpus", "spam_2"), SPAM),
        (("corpus", "SPAM"), SPAM),
        (("ham", "spam"), SPAM),  # innermost wins
        (("spam", "ham", "2002"), HAM),
        (("corpus", "hard_spam"), None),
        (("corpus", "spammy"), None),
        (("corpus", "ham_x"), None),
        (("corpus", "medium_ham"), None),
        (("not-spam", "hamlet"), None),
        ((), None),
    ],
)
def test_corpus_label_from_path_rules(parts: tuple[str, ...], expected: str | None) -> None:
    assert label_from_path(parts) == expected


def test_corpus_folder_tree_labels_and_unlabelled(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    write(root / "easy_ham" / "00001.aaa", message("weekly meeting"))
    write(root / "easy_ham_2" / "00001.bbb", message("minutes"))
    write(root / "2002" / "hard_ham" / "deep" / "x.eml", message("newsletter"))
    write(root / "spam_2" / "00001.ccc", message("cheap pills"))
    write(root / "Spam" / "y.eml", message("winner"))
    write(root / "ham" / "misfiled" / "spam" / "z.eml", message("free money"))
    write(root / "unsorted" / "w.eml", message("who knows"))
    write(root / "top.eml", message("no folder"))

    result = load_corpus([root])

    assert by_source(result.messages) == {
        str(root / "2002" / "hard_ham" / "deep" / "x.eml"): HAM,
        str(root / "Spam" / "y.eml"): SPAM,
        str(root / "easy_ham" / "00001.aaa"): HAM,
        str(root / "easy_ham_2" / "00001.bbb"): HAM,
        str(root / "ham" / "misfiled" / "spam" / "z.eml"): SPAM,
        str(root / "spam_2" / "00001.ccc"): SPAM,
    }
    assert [item.source for item in result.messages] == sorted(by_source(result.messages))
    assert result.unlabelled == 2
    assert result.counts() == {HAM: 3, SPAM: 3}
    assert result.failures == []


def test_corpus_source_folder_named_by_label(tmp_path: Path) -> None:
    # The path as given counts, not only the folders inside it.
    write(tmp_path / "spam" / "a.eml", message("buy now"))
    labelled = list(iter_labelled([tmp_path / "spam"]))
    assert labelled == [LabelledMessage(str(tmp_path / "spam" / "a.eml"), SPAM, message("buy now"))]


def test_corpus_iter_labelled_drops_unlabelled(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("hello"))
    write(tmp_path / "other" / "b.eml", message("unknown"))
    labelled = no_failures(iter_labelled([tmp_path]))
    assert [(item.source, item.label) for item in labelled] == [
        (str(tmp_path / "ham" / "a.eml"), HAM)
    ]


# --------------------------------------------------------------------------
# Archives


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("corpus.tar", "w"),
        ("corpus.tar.gz", "w:gz"),
        ("corpus.tgz", "w:gz"),
        ("corpus.tar.bz2", "w:bz2"),
        ("corpus.tar.xz", "w:xz"),
    ],
)
def test_corpus_archive_read_without_unpacking(tmp_path: Path, name: str, mode: str) -> None:
    archive = make_tar(
        tmp_path / name,
        {
            "easy_ham/00001.aaa": message("lunch?", envelope=True),
            "easy_ham/cmds": b"mv 00001.x 00001.aaa\n",
            "easy_ham/.DS_Store": b"\x00\x01",
            "spam/00001.bbb": message("viagra", envelope=True),
            "spam/nested/00002.ccc": message("lottery"),
            "__MACOSX/spam/._00001.bbb": b"\x00\x05\x16\x07",
            "README": message("not labelled"),
        },
        mode,
    )

    found = list(iter_messages(archive))
    labelled = load_corpus([archive])

    assert [item.source for item in found] == [
        f"{archive}:easy_ham/00001.aaa",
        f"{archive}:spam/00001.bbb",
        f"{archive}:spam/nested/00002.ccc",
        f"{archive}:README",
    ]
    assert found[0] == RawMessage(f"{archive}:easy_ham/00001.aaa", message("lunch?", envelope=True))
    assert by_source(labelled.messages) == {
        f"{archive}:easy_ham/00001.aaa": HAM,
        f"{archive}:spam/00001.bbb": SPAM,
        f"{archive}:spam/nested/00002.ccc": SPAM,
    }
    assert labelled.unlabelled == 1
    assert sorted(os.listdir(tmp_path)) == [name], "nothing was unpacked"


def test_corpus_archive_inside_folder_tree(tmp_path: Path) -> None:
    make_tar(tmp_path / "corpora" / "ham.tar.gz", {"ham/1.eml": message("hi")}, "w:gz")
    make_tar(tmp_path / "corpora" / "more.tar.bz2", {"x/spam/1.eml": message("sale")}, "w:bz2")
    result = load_corpus([tmp_path / "corpora"])
    assert result.counts() == {HAM: 1, SPAM: 1}


def test_corpus_corrupt_archives_fail_and_the_rest_is_read(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "a_garbage.tar.gz", b"this is not gzip at all\n")
    whole = make_tar(
        tmp_path / "whole.tar.bz2",
        {f"spam/{index:05}.eml": message(f"offer {index}", "x" * 5000) for index in range(20)},
        "w:bz2",
    ).read_bytes()
    write(root / "b_truncated.tar.bz2", whole[: len(whole) // 2])
    write(root / "ham" / "fine.eml", message("still here"))
    write(root / "spam" / "fine.eml", message("still here too"))

    items = list(iter_messages(root))
    problems = failures(items)

    assert [problem.source for problem in problems] == [
        str(root / "a_garbage.tar.gz"),
        str(root / "b_truncated.tar.bz2"),
    ]
    assert all("corrupt" in problem.reason and "\n" not in problem.reason for problem in problems)
    assert str(root / "ham" / "fine.eml") in {item.source for item in items}
    assert str(root / "spam" / "fine.eml") in {item.source for item in items}
    result = load_corpus([root])
    assert result.counts()[HAM] == 1
    assert len(result.failures) == 2


# --------------------------------------------------------------------------
# mbox and Maildir

MBOX = (
    b"From alice@example.org Mon Sep 23 12:34:56 2002\n"
    b"Subject: one\n"
    b"\n"
    b"First body.\n"
    b"\n"
    b"From bob@example.org Tue Sep 24 08:00:00 2002\n"
    b"Subject: two\n"
    b"\n"
    b"Quoted below:\n"
    b">From the desk of Bob, with love\n"
    b">>From a doubly quoted line\n"
    b"\n"
    b"From carol@example.org Wed Sep 25 09:15:00 2002\n"
    b"Subject: three\n"
    b"\n"
    b"Last one.\n"
    b"\n"
)


def test_corpus_mbox_split_and_unquoted(tmp_path: Path) -> None:
    box = write(tmp_path / "box.mbox", MBOX)

    found = list(iter_messages(box))

    assert found == [
        RawMessage(f"{box}:1", b"Subject: one\n\nFirst body.\n", 1),
        RawMessage(
            f"{box}:2",
            b"Subject: two\n\nQuoted below:\n"
            b"From the desk of Bob, with love\n>From a doubly quoted line\n",
            2,
        ),
        RawMessage(f"{box}:3", b"Subject: three\n\nLast one.\n", 3),
    ]


def test_corpus_mbox_body_line_from_without_date_is_not_a_separator(tmp_path: Path) -> None:
    # As in a real ham message: an unquoted "From " sentence after a blank line.
    raw = message(
        "gear", "Plug-ins for musicians.\n\nFrom home recordings to mp3s, we have it.\n", True
    )
    path = write(tmp_path / "00108.abc", raw)
    assert list(iter_messages(path)) == [RawMessage(str(path), raw)]


def test_corpus_single_message_with_envelope_is_kept_byte_for_byte(tmp_path: Path) -> None:
    raw = message("hello", "Keep\n>From this quoting.\n", envelope=True)
    path = write(tmp_path / "00001.abc", raw)
    assert list(iter_messages(path)) == [RawMessage(str(path), raw)]


def test_corpus_large_mbox_is_streamed(tmp_path: Path) -> None:
    # Larger than the first read (1 MiB), so the line-by-line path is exercised.
    body = "A long line of text that repeats.\n" * 20_000
    messages = [message(f"big {index}", body) for index in range(3)]
    raw = b"".join(b"From x@example.org Mon Sep 23 12:34:56 2002\n" + m + b"\n" for m in messages)
    assert len(raw) > 1.5 * 1024 * 1024
    box = write(tmp_path / "big.mbox", raw)
    assert [item.raw for item in no_failures(iter_messages(box))] == messages


def mboxrd_quote(raw: bytes) -> bytes:
    lines = raw.splitlines(keepends=True)
    return b"".join(
        b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines
    )


_body_lines = st.lists(
    st.sampled_from(
        [
            "plain text\n",
            "\n",
            "From here on, things change\n",
            "From bob@example.org Tue Sep 24 08:00:00 2002\n",
            ">From already quoted\n",
            ">>From twice quoted\n",
            "From: not an envelope\n",
            "caf\u00e9 \u2603\n",
        ]
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None, database=None)
@given(bodies=st.lists(_body_lines, min_size=2, max_size=5))
def test_corpus_mbox_round_trip(bodies: list[list[str]]) -> None:
    originals = [message(f"m{index}", "".join(lines)) for index, lines in enumerate(bodies)]
    mbox = b"".join(
        b"From sender@example.org Mon Sep 23 12:34:56 2002\n" + mboxrd_quote(raw) + b"\n"
        for raw in originals
    )
    with tempfile.TemporaryDirectory() as folder:
        box = write(Path(folder) / "box", mbox)
        found = list(iter_messages(box))
    assert [item.raw for item in found if isinstance(item, RawMessage)] == originals
    assert [item.source for item in found] == [f"{box}:{n}" for n in range(1, len(bodies) + 1)]


def make_maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    write(root / "cur" / "123.host:2,S", message("seen"))
    write(root / "new" / "124.host", message("unseen"))
    write(root / "tmp" / "125.host", message("half delivered"))
    write(root / "cur" / ".hidden", message("hidden"))
    write(root / "dovecot-uidlist", b"3 V1 N1\n")
    write(root / "maildirfolder", b"")
    return root


def test_corpus_maildir_reads_cur_and_new_only(tmp_path: Path) -> None:
    maildir = make_maildir(tmp_path / "Maildir")
    found = list(iter_messages(maildir))
    assert found == [
        RawMessage(f"{maildir}:cur/123.host:2,S", message("seen"), 1),
        RawMessage(f"{maildir}:new/124.host", message("unseen"), 2),
    ]


def test_corpus_maildir_and_mbox_inside_label_folders(tmp_path: Path) -> None:
    make_maildir(tmp_path / "ham" / "Maildir")
    write(tmp_path / "spam" / "junk.mbox", MBOX)
    result = load_corpus([tmp_path])
    assert result.counts() == {HAM: 2, SPAM: 3}
    assert f"{tmp_path / 'spam' / 'junk.mbox'}:2" in by_source(result.messages)


def test_corpus_ham_and_spam_paths(tmp_path: Path) -> None:
    single = write(tmp_path / "inbox" / "one.eml", message("single file"))
    folder = tmp_path / "spam-folder-not-named-spam"
    write(folder / "a.eml", message("folder message a"))
    write(folder / "sub" / "b.eml", message("folder message b"))
    box = write(tmp_path / "junk.mbox", MBOX)
    maildir = make_maildir(tmp_path / "Maildir")

    labelled = no_failures(iter_labelled(ham_paths=[single, maildir], spam_paths=[folder, box]))

    assert [(item.source, item.label) for item in labelled] == [
        (str(single), HAM),
        (f"{maildir}:cur/123.host:2,S", HAM),
        (f"{maildir}:new/124.host", HAM),
        (str(folder / "a.eml"), SPAM),
        (str(folder / "sub" / "b.eml"), SPAM),
        (f"{box}:1", SPAM),
        (f"{box}:2", SPAM),
        (f"{box}:3", SPAM),
    ]


def test_corpus_explicit_label_beats_folder_names(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("actually spam"))
    labelled = no_failures(iter_labelled(spam_paths=[tmp_path / "ham"]))
    assert [item.label for item in labelled] == [SPAM]


# --------------------------------------------------------------------------
# CSV and TSV


def test_corpus_csv_with_label_names(tmp_path: Path) -> None:
    table = tmp_path / "mail.csv"
    table.write_text(
        "id,Label,Text\n"
        '1,ham,"Subject: lunch\n\nSee you, at noon."\n'
        "2,SPAM,Subject: cheap caf\u00e9\n"
        "\n"
        "3,Ham,third\n",
        encoding="utf-8",
    )

    labelled = list(iter_labelled([table]))

    assert labelled == [
        LabelledMessage(f"{table}:2", HAM, b"Subject: lunch\n\nSee you, at noon."),
        # Sources give the line a row starts on; the first row spans lines 2-4.
        LabelledMessage(f"{table}:5", SPAM, "Subject: cheap caf\u00e9".encode()),
        LabelledMessage(f"{table}:7", HAM, b"third"),
    ]


@pytest.mark.parametrize(
    ("label_column", "text_column"),
    [("spam", "message"), ("class", "email"), ("category", "body"), ("label", "raw")],
)
def test_corpus_tsv_with_zero_one_labels(
    tmp_path: Path, label_column: str, text_column: str
) -> None:
    table = tmp_path / "mail.tsv"
    table.write_text(f"{text_column}\t{label_column}\nhello there\t0\nwin a prize\t1\n")
    labelled = no_failures(iter_labelled([table]))
    assert [(item.label, item.raw) for item in labelled] == [
        (HAM, b"hello there"),
        (SPAM, b"win a prize"),
    ]


def test_corpus_csv_keeps_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    table = write(tmp_path / "latin1.csv", b"label,text\nham,caf\xe9 au lait\n")
    assert [item.raw for item in no_failures(iter_labelled([table]))] == [b"caf\xe9 au lait"]


def test_corpus_csv_bad_rows_are_failures(tmp_path: Path) -> None:
    table = tmp_path / "mail.csv"
    table.write_text("label,text\nmaybe,what is this\nspam\nham,fine\n")
    items = list(iter_labelled([table]))
    assert [type(item).__name__ for item in items] == [
        "ReadFailure",
        "ReadFailure",
        "LabelledMessage",
    ]
    assert isinstance(items[0], ReadFailure)
    assert items[0].source == f"{table}:2"
    assert "maybe" in items[0].reason


@pytest.mark.parametrize(
    ("header", "missing"),
    [("label,subject\n", "text column"), ("kind,text\n", "label column"), ("", "header")],
)
def test_corpus_csv_without_columns_raises(tmp_path: Path, header: str, missing: str) -> None:
    table = tmp_path / "mail.csv"
    table.write_text(header + ("ham,hello\n" if header else ""))
    with pytest.raises(CorpusError, match=missing):
        list(iter_labelled([table]))
    with pytest.raises(CorpusError, match=missing):
        load_corpus([table])


# --------------------------------------------------------------------------
# Skipped files and read failures


def test_corpus_cmds_and_dot_files_skipped(tmp_path: Path) -> None:
    write(tmp_path / "spam" / "00001.abc", message("offer"))
    write(tmp_path / "spam" / "cmds", b"mv 00001.abc 00001.def\n")
    write(tmp_path / "spam" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(tmp_path / "spam" / ".git" / "HEAD", b"ref: refs/heads/main\n")
    write(tmp_path / ".hidden" / "ham" / "x.eml", message("hidden tree"))
    found = list(iter_messages(tmp_path))
    assert [item.source for item in found] == [str(tmp_path / "spam" / "00001.abc")]


def test_corpus_missing_path_is_a_failure(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert list(iter_messages(missing)) == [ReadFailure(str(missing), "No such file or directory")]


def test_corpus_broken_symlink_is_a_failure_and_the_rest_is_read(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("fine"))
    (tmp_path / "ham" / "b.eml").symlink_to(tmp_path / "gone.eml")
    (tmp_path / "ham" / "c.eml").symlink_to(tmp_path / "ham" / "a.eml")
    found = list(iter_messages(tmp_path))
    assert found == [
        RawMessage(str(tmp_path / "ham" / "a.eml"), message("fine")),
        ReadFailure(str(tmp_path / "ham" / "b.eml"), "broken symbolic link"),
        RawMessage(str(tmp_path / "ham" / "c.eml"), message("fine")),
    ]


def test_corpus_symlink_loop_is_a_failure(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("fine"))
    (tmp_path / "ham" / "again").symlink_to(tmp_path)
    found = list(iter_messages(tmp_path))
    assert found[0] == RawMessage(str(tmp_path / "ham" / "a.eml"), message("fine"))
    assert found[1:] == [ReadFailure(str(tmp_path / "ham" / "again"), "symbolic link loop")]


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root can read every file")
def test_corpus_unreadable_file_is_a_failure(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("fine"))
    locked = write(tmp_path / "ham" / "b.eml", message("locked"))
    locked.chmod(0)
    try:
        found = list(iter_messages(tmp_path))
    finally:
        locked.chmod(0o644)
    assert found[1] == ReadFailure(str(locked), "Permission denied")
    assert found[0].source == str(tmp_path / "ham" / "a.eml")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root can read every folder")
def test_corpus_unreadable_folder_is_a_failure(tmp_path: Path) -> None:
    write(tmp_path / "a" / "ham" / "a.eml", message("fine"))
    locked = tmp_path / "b"
    write(locked / "ham" / "b.eml", message("locked"))
    write(tmp_path / "c" / "ham" / "c.eml", message("also fine"))
    locked.chmod(0)
    try:
        found = list(iter_messages(tmp_path))
    finally:
        locked.chmod(0o755)
    assert [item.source for item in found] == [
        str(tmp_path / "a" / "ham" / "a.eml"),
        str(locked),
        str(tmp_path / "c" / "ham" / "c.eml"),
    ]
    assert found[1] == ReadFailure(str(locked), "Permission denied")


def test_corpus_open_error_is_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same path as the test above, for when the tests run as root.
    write(tmp_path / "ham" / "a.eml", message("fine"))
    locked = write(tmp_path / "ham" / "b.eml", message("locked"))
    real_open = os.open

    def refuse_locked(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_locked)
    found = list(iter_messages(tmp_path))
    assert found == [
        RawMessage(str(tmp_path / "ham" / "a.eml"), message("fine")),
        ReadFailure(str(locked), "Permission denied"),
    ]


def read_without_blocking(path: Path) -> list[RawMessage | ReadFailure]:
    """iter_messages(PATH), in a thread given ten seconds: a reader that
    opened a FIFO would wait forever for a writer, and the test fails
    instead of hanging."""
    found: list[RawMessage | ReadFailure] = []
    reader = threading.Thread(target=lambda: found.extend(iter_messages(path)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    return found


@pytest.mark.parametrize("spelling", [".", "./", "ham/..", "./ham/../"])
def test_corpus_folder_files_are_named_as_paths_join_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    # Files are named without a Path made for each; the names are the ones
    # a Path would give ("." adds nothing), whatever the folder's spelling.
    write(tmp_path / "a.eml", message("first"))
    write(tmp_path / "ham" / "b.eml", message("second"))
    monkeypatch.chdir(tmp_path)
    sources = [item.source for item in iter_messages(spelling)]
    folder = Path(spelling)
    assert sources == [str(folder / "a.eml"), str(folder / "ham" / "b.eml")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_corpus_fifo_in_a_folder_is_skipped_and_does_not_block(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("fine"))
    os.mkfifo(tmp_path / "ham" / "b.fifo")
    assert read_without_blocking(tmp_path / "ham") == [
        RawMessage(str(tmp_path / "ham" / "a.eml"), message("fine")),
        ReadFailure(str(tmp_path / "ham" / "b.fifo"), "not a regular file (a FIFO)", skipped=True),
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_corpus_file_that_became_a_fifo_after_the_listing_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A regular file is read without a stat of its own (the listing says
    # what it is); one replaced by a FIFO before it is opened must still be
    # skipped without blocking, as a FIFO found in the listing is.
    write(tmp_path / "ham" / "a.eml", message("fine"))
    write(tmp_path / "ham" / "b.eml", message("replaced"))
    real_open = os.open

    def replace_then_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("b.eml") and not stat.S_ISFIFO(os.lstat(path).st_mode):
            os.unlink(path)
            os.mkfifo(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", replace_then_open)
    assert read_without_blocking(tmp_path) == [
        RawMessage(str(tmp_path / "ham" / "a.eml"), message("fine")),
        ReadFailure(str(tmp_path / "ham" / "b.eml"), "not a regular file (a FIFO)", skipped=True),
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_corpus_fifo_named_itself_is_read_like_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "lonely.fifo"
    os.mkfifo(fifo)

    def write_message() -> None:
        with open(fifo, "wb") as writer:
            writer.write(message("through a pipe"))

    writer = threading.Thread(target=write_message, daemon=True)
    writer.start()
    found = list(iter_messages(fifo))
    writer.join(timeout=10)

    assert found == [RawMessage(str(fifo), message("through a pipe"))]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_corpus_fifo_waiting_for_its_writer_ends_on_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interruption whose KeyboardInterrupt was lost (interruption.py) is
    # acted on while the reader waits for a writer that never comes.
    from spamcli import corpus, interruption

    fifo = tmp_path / "never-written.fifo"
    os.mkfifo(fifo)
    monkeypatch.setattr(corpus, "FIFO_WAKE_MILLISECONDS", 10)
    monkeypatch.setattr(interruption, "_requested", True)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            list(iter_messages(fifo))
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)

    assert not reader.is_alive(), "reading the FIFO went on waiting"
    assert [type(error) for error in outcome] == [KeyboardInterrupt]


def test_corpus_device_is_a_failure() -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    assert list(iter_messages("/dev/null")) == [
        ReadFailure("/dev/null", "not a regular file (a device)")
    ]


# --------------------------------------------------------------------------
# load_corpus, dedup and fingerprint


def test_corpus_dedup_counts(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("same"))
    write(tmp_path / "ham" / "b.eml", message("same"))
    write(tmp_path / "ham" / "c.eml", message("different"))
    write(tmp_path / "spam" / "a.eml", message("same"))  # same bytes, other label
    write(tmp_path / "spam" / "d.eml", message("spammy"))

    result = load_corpus([tmp_path])

    assert by_source(result.messages) == {
        str(tmp_path / "ham" / "a.eml"): HAM,
        str(tmp_path / "ham" / "c.eml"): HAM,
        str(tmp_path / "spam" / "d.eml"): SPAM,
    }
    assert result.duplicates == 2
    assert result.counts() == {HAM: 2, SPAM: 1}


def test_corpus_dedup_does_not_depend_on_argument_order(tmp_path: Path) -> None:
    first = write(tmp_path / "x" / "a.eml", message("same"))
    second = write(tmp_path / "y" / "a.eml", message("same"))
    one = load_corpus(ham_paths=[first], spam_paths=[second])
    other = load_corpus(spam_paths=[second], ham_paths=[first])
    assert one.messages == other.messages
    assert one.duplicates == other.duplicates == 1


def test_corpus_fingerprint_stable_under_reordering(tmp_path: Path) -> None:
    write(tmp_path / "one" / "ham" / "a.eml", message("a"))
    write(tmp_path / "one" / "spam" / "b.eml", message("b"))
    write(tmp_path / "two" / "spam" / "zzz.eml", message("b"))
    write(tmp_path / "two" / "easy_ham" / "000.eml", message("a"))
    one = load_corpus([tmp_path / "one"])
    two = load_corpus([tmp_path / "two"])
    assert one.fingerprint() == two.fingerprint()
    shuffled = Corpus(list(reversed(one.messages)), 0, 0, [])
    assert shuffled.fingerprint() == one.fingerprint()
    assert len(one.fingerprint()) == 64


def test_corpus_fingerprint_changes_with_data_and_labels(tmp_path: Path) -> None:
    ham = LabelledMessage("a", HAM, message("a"))
    spam = LabelledMessage("b", SPAM, message("b"))
    base = Corpus([ham, spam], 0, 0, []).fingerprint()
    changed_bytes = Corpus([ham, LabelledMessage("b", SPAM, message("b!"))], 0, 0, [])
    changed_label = Corpus([ham, LabelledMessage("b", HAM, message("b"))], 0, 0, [])
    fewer = Corpus([ham], 0, 0, [])
    assert (
        len({base, changed_bytes.fingerprint(), changed_label.fingerprint(), fewer.fingerprint()})
        == 4
    )


def test_corpus_load_reports_progress_and_failures(tmp_path: Path) -> None:
    write(tmp_path / "ham" / "a.eml", message("a"))
    write(tmp_path / "spam" / "b.eml", message("b"))
    write(tmp_path / "other" / "c.eml", message("c"))
    calls: list[int] = []

    result = load_corpus([tmp_path, tmp_path / "missing"], progress=calls.append)

    assert calls == [1, 2, 3, 4]
    assert result.failures == [ReadFailure(str(tmp_path / "missing"), "No such file or directory")]
    assert result.unlabelled == 1


def test_corpus_load_without_sources_raises() -> None:
    with pytest.raises(CorpusError, match="no corpus given"):
        load_corpus()


def test_corpus_load_with_nothing_readable_raises(tmp_path: Path) -> None:
    write(tmp_path / "unsorted" / "a.eml", message("a"))
    with pytest.raises(CorpusError, match="1 message had no folder named ham or spam") as caught:
        load_corpus([tmp_path, tmp_path / "missing"])
    assert "1 could not be read" in str(caught.value)


def test_corpus_require_both_classes_message() -> None:
    messages = [LabelledMessage(f"h{n}", HAM, message(f"h{n}")) for n in range(12)]
    messages += [LabelledMessage(f"s{n}", SPAM, message(f"s{n}")) for n in range(3)]
    enough = Corpus(messages, 0, 0, [])
    require_both_classes(enough, 3)
    with pytest.raises(CorpusError) as caught:
        require_both_classes(enough, 10)
    assert str(caught.value) == "only 3 spam messages found; at least 10 are needed"
    with pytest.raises(CorpusError) as caught:
        require_both_classes(Corpus(messages[:1], 0, 0, []), 2)
    assert (
        str(caught.value) == "only 1 ham message and no spam messages found; at least 2 are needed"
    )


# --------------------------------------------------------------------------
# Standard splits, on small stand-ins for the SpamAssassin archives

FAKE_SIZES = {"easy_ham": 30, "easy_ham_2": 12, "hard_ham": 5, "spam": 10, "spam_2": 9}
# The stand-ins' counts, accepted in place of the real corpus' own.
FAKE_COUNTS = {name: (size,) for name, size in FAKE_SIZES.items()}


def make_fake_spamassassin(folder: Path, prefix: str = "20030228_") -> Path:
    for name, size in FAKE_SIZES.items():
        members = {
            f"{name}/{index:05}.{name}": message(f"{name} {index}", envelope=True)
            for index in range(1, size + 1)
        }
        members[f"{name}/cmds"] = b"mv 00001.x 00001.y\n"
        make_tar(folder / f"{prefix}{name}.tar.bz2", members, "w:bz2")
    return folder


def test_corpus_standard_split_time_on_small_archives(tmp_path: Path) -> None:
    corpus_dir = make_fake_spamassassin(tmp_path / "sa")
    train, test = standard_split(corpus_dir, "time", FAKE_COUNTS)
    assert Counter(item.source.split(":")[1].split("/")[0] for item in train) == {
        "easy_ham": 30,
        "spam": 10,
    }
    assert Counter(item.source.split(":")[1].split("/")[0] for item in test) == {
        "easy_ham_2": 12,
        "hard_ham": 5,
        "spam_2": 9,
    }
    assert Counter(item.label for item in train) == {HAM: 30, SPAM: 10}
    assert train[0] == LabelledMessage(
        f"{corpus_dir / '20030228_easy_ham.tar.bz2'}:easy_ham/00001.easy_ham",
        HAM,
        message("easy_ham 1", envelope=True),
    )


def test_corpus_standard_split_random_is_stratified_and_reproducible(tmp_path: Path) -> None:
    corpus_dir = make_fake_spamassassin(tmp_path / "sa", prefix="")
    train, test = standard_split(corpus_dir, "random", FAKE_COUNTS)
    again_train, again_test = standard_split(corpus_dir, "random", FAKE_COUNTS)
    assert (train, test) == (again_train, again_test)
    assert len(train) + len(test) == sum(FAKE_SIZES.values())
    assert len(test) == 14  # ceil(0.2 * 66)
    assert Counter(item.label for item in test) == {HAM: 10, SPAM: 4}
    assert not {item.source for item in train} & {item.source for item in test}


def test_corpus_standard_split_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown split 'weekly'"):
        standard_split(tmp_path, "weekly")
    with pytest.raises(CorpusError, match="no such folder"):
        standard_split(tmp_path / "nowhere", "time")
    make_tar(tmp_path / "easy_ham.tar.bz2", {"easy_ham/1": message("one")}, "w:bz2")
    with pytest.raises(CorpusError, match=r"missing SpamAssassin archives easy_ham_2.tar.bz2"):
        standard_split(tmp_path, "time")


def test_corpus_write_split_layout_and_replacement(tmp_path: Path) -> None:
    corpus_dir = make_fake_spamassassin(tmp_path / "sa")
    dest = tmp_path / "out" / "split"

    counts = write_split(corpus_dir, "time", dest, FAKE_COUNTS)

    assert counts == {"train": {HAM: 30, SPAM: 10}, "test": {HAM: 17, SPAM: 9}}
    assert (dest / "train" / "ham" / "easy_ham.00001.easy_ham").read_bytes() == message(
        "easy_ham 1", envelope=True
    )
    assert min(os.listdir(dest / "test" / "spam")) == "spam_2.00001.spam_2"
    assert load_corpus([dest / "train"]).counts() == {HAM: 30, SPAM: 10}

    counts = write_split(corpus_dir, "random", dest, FAKE_COUNTS)

    assert counts["test"] == {HAM: 10, SPAM: 4}
    written = sum(len(files) for _, _, files in os.walk(dest))
    assert written == sum(FAKE_SIZES.values())
    assert os.listdir(tmp_path / "out") == ["split"], "no temporary folder left behind"


def test_corpus_write_split_refuses_to_replace_other_folders(tmp_path: Path) -> None:
    corpus_dir = make_fake_spamassassin(tmp_path / "sa")
    precious = write(tmp_path / "home" / "thesis.tex", b"\\documentclass{article}\n")
    with pytest.raises(CorpusError, match="refusing to replace"):
        write_split(corpus_dir, "time", tmp_path / "home", FAKE_COUNTS)
    with pytest.raises(CorpusError, match="not a folder"):
        write_split(corpus_dir, "time", precious, FAKE_COUNTS)
    assert precious.exists()
    assert sorted(os.listdir(tmp_path / "home")) == ["thesis.tex"]


def test_corpus_write_split_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus_dir = make_fake_spamassassin(tmp_path / "sa")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    counts = write_split(corpus_dir, "time", "out/../split", FAKE_COUNTS)
    assert counts["train"] == {HAM: 30, SPAM: 10}
    assert sorted(os.listdir(tmp_path / "work")) == ["split"]
    assert sorted(os.listdir(tmp_path / "work" / "split")) == ["test", "train"]
    with pytest.raises(CorpusError, match="current folder"):
        write_split(corpus_dir, "time", ".", FAKE_COUNTS)
    with pytest.raises(CorpusError, match="current folder"):
        write_split(corpus_dir, "time", "..", FAKE_COUNTS)


def test_corpus_write_split_refuses_a_corpus_of_other_counts(tmp_path: Path) -> None:
    # Five archives of invented messages gave a "standard" 7 + 5 / 2 + 1 split.
    corpus_dir = make_fake_spamassassin(tmp_path / "sa")
    dest = tmp_path / "split"

    with pytest.raises(CorpusError, match=r"holds 30 messages, not the 2,500 of the SpamAssassin"):
        write_split(corpus_dir, "time", dest)
    with pytest.raises(CorpusError, match="no standard split"):
        standard_split(corpus_dir, "random")

    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == ["sa"]


# --------------------------------------------------------------------------
# Archive members that lie, are huge, or are no message file


def lying_tar(path: Path, claimed: int, data_bytes: int, mode: str = "w") -> Path:
    """Three ham and three spam, then spam/x.eml whose header claims CLAIMED
    bytes, followed by only DATA_BYTES of data: the archive ends inside it."""
    members = {f"ham/{number}.eml": message(f"ham {number}") for number in range(3)}
    members |= {f"spam/{number}.eml": message(f"offer {number}") for number in range(3)}
    make_tar(path, members, mode)
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo("spam/x.eml")
        info.size = claimed
        archive.addfile(info)
        assert archive.fileobj is not None
        archive.fileobj.write(b"y" * data_bytes)
    return path


def test_corpus_member_claiming_100_gib_is_a_failure_of_its_own(tmp_path: Path) -> None:
    # Was a MemoryError traceback for evaluate, train and learn: the whole run lost.
    archive = lying_tar(tmp_path / "lying.tar", 100 * 2**30, 2_000_000)

    corpus = load_corpus([archive])
    whole = list(iter_messages(archive))  # as learn reads: whole messages
    capped = list(iter_messages(archive, read_limit=1000))  # as predict reads

    assert corpus.counts() == {HAM: 3, SPAM: 3}
    expected = ReadFailure(
        f"{archive}:spam/x.eml",
        "the archive ends before the 107,374,182,400 bytes its header gives",
    )
    assert expected in corpus.failures
    assert len([item for item in whole if isinstance(item, RawMessage)]) == 6
    assert expected in whole
    # predict reads a member's first bytes only, and scores them; that the
    # archive ends early shows when the next member is looked for.
    assert [item.source for item in capped if isinstance(item, RawMessage)][-1] == expected.source
    truncated = ReadFailure(str(archive), "corrupt or truncated archive: unexpected end of data")
    assert capped[-1] == truncated


def test_corpus_evaluate_survives_a_member_claiming_100_gib(
    tmp_path: Path, synthetic_model_dir: Path
) -> None:
    archive = lying_tar(tmp_path / "lying.tar", 100 * 2**30, 2_000_000)
    spamcli = Path(sys.executable).with_name("spamcli")

    completed = subprocess.run(
        [spamcli, "evaluate", "--no-record", "-m", synthetic_model_dir, archive],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    assert f"spamcli: {archive}:spam/x.eml: the archive ends before" in completed.stderr
    assert re.search(r"^messages\s+6$", completed.stdout, re.MULTILINE), completed.stdout


class Zeros(io.RawIOBase):
    """SIZE zero bytes, made as they are read."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_corpus_a_huge_member_costs_its_first_megabyte_not_itself(tmp_path: Path) -> None:
    # A .tar.gz of 1 GiB of zeros in one member took evaluate and train to
    # 2,090 MiB: the member held whole, twice. 256 MiB shows it as well.
    size = 256 * 2**20
    archive = tmp_path / "zeros.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("spam/zeros.eml")
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(size)))
        for number in range(2):
            data = message(f"ham {number}")
            info = tarfile.TarInfo(f"ham/{number}.eml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    # The peak of this process alone: VmHWM starts again at exec, whereas
    # ru_maxrss keeps the forking test process's own (143 MiB here).
    script = (
        "import re, sys\n"
        "from spamcli.corpus import load_corpus\n"
        "corpus = load_corpus([sys.argv[1]])\n"
        "zeros = [m for m in corpus.messages if m.label == 'spam'][0]\n"
        "print(len(corpus.messages), len(zeros.raw), zeros.sha256())\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024)\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script, archive], capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr
    counts, peak_mib = completed.stdout.splitlines()
    digest = hashlib.sha256()
    for _ in range(size // 2**20):
        digest.update(bytes(2**20))
    assert counts.split() == ["3", str(MAX_MESSAGE_BYTES), digest.hexdigest()]
    assert int(peak_mib) < 100, f"peak RSS {peak_mib} MiB for a {size >> 20} MiB member"


def test_corpus_messages_cut_are_told_apart_by_all_their_bytes(tmp_path: Path) -> None:
    head = message("big", "x" * MAX_MESSAGE_BYTES)
    write(tmp_path / "spam" / "a.eml", head + b"one ending\n")
    write(tmp_path / "spam" / "b.eml", head + b"another ending\n")
    write(tmp_path / "spam" / "c.eml", head + b"one ending\n")

    corpus = load_corpus([tmp_path])

    assert [Path(item.source).name for item in corpus.messages] == ["a.eml", "b.eml"]
    assert corpus.duplicates == 1
    assert all(len(item.raw) == MAX_MESSAGE_BYTES for item in corpus.messages)
    assert corpus.messages[0].sha256() == hashlib.sha256(head + b"one ending\n").hexdigest()


def test_corpus_members_that_are_no_message_files_are_noted(tmp_path: Path) -> None:
    # Dropped without a note before; a folder's FIFO or device is a note.
    archive = make_tar(tmp_path / "odd.tar", {"spam/real.eml": message("offer")})
    with tarfile.open(archive, "a") as tar:
        for name, kind in (
            ("spam/link.eml", tarfile.SYMTYPE),
            ("spam/hard.eml", tarfile.LNKTYPE),
            ("spam/pipe", tarfile.FIFOTYPE),
            ("spam/null", tarfile.CHRTYPE),
            ("spam/.hidden-link", tarfile.SYMTYPE),
        ):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "spam/real.eml"
            tar.addfile(info)
        data = message("escape")
        info = tarfile.TarInfo("../spam/evil.eml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    found = list(iter_messages(archive))

    assert found == [
        RawMessage(f"{archive}:spam/real.eml", message("offer")),
        ReadFailure(f"{archive}:spam/link.eml", "not a regular file (a symbolic link)", True),
        ReadFailure(f"{archive}:spam/hard.eml", "not a regular file (a hard link)", True),
        ReadFailure(f"{archive}:spam/pipe", "not a regular file (a FIFO)", True),
        ReadFailure(f"{archive}:spam/null", "not a regular file (a device)", True),
        ReadFailure(f"{archive}:../spam/evil.eml", "its name leads out of the archive (..)", True),
    ]
    assert load_corpus([tmp_path]).counts() == {HAM: 0, SPAM: 1}


def test_corpus_csv_without_a_header_row_shows_only_its_start(tmp_path: Path) -> None:
    table = tmp_path / "mail.csv"
    table.write_text("spam," + "buy now " * 10_000 + "\nham,hello\n")

    with pytest.raises(CorpusError) as raised:
        list(iter_labelled([table]))

    text = str(raised.value)
    assert "the header row needs a text column" in text
    assert len(text) < 400, text
    assert text.endswith("... (80,010 characters)")


def test_corpus_csv_unterminated_quote_is_a_failure_not_a_message(tmp_path: Path) -> None:
    # The field ran to the end of the file: two rows became one message.
    table = tmp_path / "mail.csv"
    table.write_text(
        'label,text\nham,"fine, ""quoted"" and\nmultiline"\n'
        'spam,"never closed\nham,lost\nspam,lost too\n'
    )

    items = list(iter_labelled([table]))

    assert items[0] == LabelledMessage(f"{table}:2", HAM, b'fine, "quoted" and\nmultiline')
    assert isinstance(items[1], ReadFailure) and len(items) == 2
    assert items[1].source == f"{table}:4"
    assert "a quoted field is never closed" in items[1].reason
    assert "(3 lines)" in items[1].reason


@pytest.mark.parametrize(
    "text",
    [
        'label,text\nham,"closed"\n',
        'label,text\nham,"closed"\r\n',
        'label,text\nham,"a ""quote"" inside"\n',
        'label,text\nham,a "quote" unquoted\n',
        'label,text\nham,"closed" then more\n',
        "label,text\nham,no final newline",
    ],
)
def test_corpus_csv_closed_last_rows_are_read(tmp_path: Path, text: str) -> None:
    table = tmp_path / "mail.csv"
    table.write_bytes(text.encode())

    items = list(iter_labelled([table]))

    assert len(items) == 1 and isinstance(items[0], LabelledMessage), items


# --------------------------------------------------------------------------
# The shared SpamAssassin corpus

# The figures below are those of ../shared/corpora/README.md.


@pytest.fixture(scope="module")
def spamassassin_dir() -> Path:
    if not (SPAMASSASSIN_DIR / "spam.tar.bz2").exists():
        pytest.skip(f"../shared/corpora/spamassassin not found: {SPAMASSASSIN_DIR}")
    return SPAMASSASSIN_DIR


def test_corpus_spamassassin_random_split(spamassassin_dir: Path) -> None:
    train, test = standard_split(spamassassin_dir, "random")
    assert (len(train), len(test)) == (4836, 1210)
    assert Counter(item.label for item in test) == {HAM: 831, SPAM: 379}


def test_corpus_spamassassin_time_split(spamassassin_dir: Path) -> None:
    train, test = standard_split(spamassassin_dir, "time")

    def folders(items: list[LabelledMessage]) -> Counter[str]:
        return Counter(item.source.rsplit(":", 1)[1].split("/")[0] for item in items)

    assert folders(train) == {"easy_ham": 2500, "spam": 500}
    assert folders(test) == {"easy_ham_2": 1400, "hard_ham": 250, "spam_2": 1396}


def test_corpus_spamassassin_archives_read_one_message_per_member(spamassassin_dir: Path) -> None:
    # Nearly every message starts with an mbox envelope line, and hard_ham
    # has an unquoted "From " sentence: none may be split.
    result = load_corpus([spamassassin_dir])
    assert result.counts() == {HAM: 4150, SPAM: 1896}
    assert result.failures == []
    assert result.unlabelled == 0
