"""Mailboxes: predict's index and Message-ID for mbox and Maildir messages,
and `spamcli sort`, which moves a Maildir's spam into a Maildir++ subfolder.

The sort tests fix the verdicts with the cut-offs rather than the model:
--threshold 0 makes every message spam, --threshold 1 none (a score is
below 1), and --threshold 1 --ham-cutoff 0 makes every message unsure.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spamcli import sorting
from spamcli.cli import cli
from spamcli.errors import MailboxError
from spamcli.scoring import Scorer

GenerateMail = Callable[[str, int, int], list[bytes]]

# LABEL SCORE SOURCE, and for a message of a mailbox INDEX MESSAGE-ID.
PREDICTION_LINE = re.compile(
    r"(?P<label>ham|unsure|spam) (?P<score>[01]\.\d{6}) (?P<source>.+?)"
    r"(?: (?P<index>[1-9]\d*) (?P<message_id>\S+))?"
)
MOVE_LINE = re.compile(
    r"(?P<label>unsure|spam) (?P<score>[01]\.\d{6}) (?P<source>\S+) -> (?P<destination>\S+)"
)
ENVELOPE = b"From sender@example.org Mon Sep 23 12:34:56 2002\n"


def invoke(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(cli, [str(arg) for arg in args])


def predictions(result: Result) -> list[dict[str, Any]]:
    parsed = []
    for line in result.stdout.splitlines():
        match = PREDICTION_LINE.fullmatch(line)
        assert match, f"not a prediction line: {line!r}"
        parsed.append(match.groupdict())
    return parsed


def moves(result: Result) -> list[dict[str, str]]:
    parsed = []
    for line in result.stdout.splitlines():
        match = MOVE_LINE.fullmatch(line)
        assert match, f"not a move line: {line!r}"
        parsed.append(match.groupdict())
    return parsed


def header_message_id(raw: bytes) -> str:
    match = re.search(rb"^Message-ID: (\S+)$", raw, re.MULTILINE)
    assert match is not None
    return match.group(1).decode()


def without_message_id(raw: bytes) -> bytes:
    return re.sub(rb"^Message-ID: .*\n", b"", raw, flags=re.MULTILINE)


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    path.write_bytes(b"".join(ENVELOPE + raw.rstrip(b"\n") + b"\n\n" for raw in messages))
    return path


def make_maildir(root: Path, cur: dict[str, bytes], new: dict[str, bytes]) -> Path:
    for part in ("cur", "new", "tmp"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for part, messages in (("cur", cur), ("new", new)):
        for name, raw in messages.items():
            (root / part / name).write_bytes(raw)
    return root


def mail_files(root: Path) -> dict[str, bytes]:
    """Every message file under ROOT's new/ and cur/ folders at any depth,
    by file name, with its bytes."""
    found: dict[str, bytes] = {}
    for path in root.rglob("*"):
        if path.is_file() and path.parent.name in ("new", "cur"):
            assert path.name not in found, f"{path.name} is in two places"
            found[path.name] = path.read_bytes()
    return found


@pytest.fixture
def mailbox(tmp_path: Path, generate_mail: GenerateMail) -> Path:
    """A Maildir with two read messages (flags kept in the name), two new ones,
    and one half-delivered message in tmp/."""
    ham = generate_mail("ham", 3, 21)
    spam = generate_mail("spam", 2, 21)
    return make_maildir(
        tmp_path / "Maildir",
        cur={"1700000000.1.host:2,S": ham[0], "1700000001.2.host:2,FS": spam[0]},
        new={"1700000002.3.host": ham[1], "1700000003.4.host": spam[1]},
    )


# --- predict -----------------------------------------------------------------


def test_mailbox_predict_mbox_index_and_message_id(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    first, second = generate_mail("ham", 2, 20)
    (third,) = generate_mail("spam", 1, 20)
    mbox = write_mbox(tmp_path / "inbox.mbox", [first, without_message_id(second), third])

    result = invoke(runner, "predict", mbox, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    lines = predictions(result)
    assert [line["source"] for line in lines] == [f"{mbox}:{n}" for n in (1, 2, 3)]
    assert [line["index"] for line in lines] == ["1", "2", "3"]
    assert [line["message_id"] for line in lines] == [
        header_message_id(first),
        "-",
        header_message_id(third),
    ]


def test_mailbox_predict_message_id_carries_no_escape_sequence_even_to_a_terminal(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    # A Message-ID is the sender's text: an escape sequence in it must not
    # reach a terminal (color=True: output as click writes to a terminal).
    (message,) = generate_mail("ham", 1, 22)
    forged = re.sub(
        rb"^Message-ID: .*$", b"Message-ID: <\x1b[2Jcleared@x.example>", message, flags=re.M
    )
    mbox = write_mbox(tmp_path / "inbox.mbox", [forged, message])

    result = runner.invoke(cli, ["predict", str(mbox), "-m", str(trained_model_dir)], color=True)

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert [line["message_id"] for line in predictions(result)] == [
        "<cleared@x.example>",
        header_message_id(message),
    ]


def test_mailbox_predict_maildir_index_and_message_id(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    result = invoke(runner, "predict", mailbox, "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    lines = predictions(result)
    names = ["cur/1700000000.1.host:2,S", "cur/1700000001.2.host:2,FS"]
    names += ["new/1700000002.3.host", "new/1700000003.4.host"]
    assert [line["source"] for line in lines] == [f"{mailbox}:{name}" for name in names]
    assert [line["index"] for line in lines] == ["1", "2", "3", "4"]
    assert [line["message_id"] for line in lines] == [
        header_message_id((mailbox / name).read_bytes()) for name in names
    ]


def test_mailbox_predict_plain_files_keep_three_fields(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    result = invoke(runner, "predict", heldout_dir / "ham", "-m", trained_model_dir)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines
    for line in lines:
        label, score, source = line.split(" ")
        assert label in ("ham", "spam")
        assert 0.0 <= float(score) <= 1.0
        assert Path(source).parent == heldout_dir / "ham"


def test_mailbox_predict_single_message_with_envelope_is_a_message_file(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    # As the SpamAssassin corpus stores its messages: one each, with a From line.
    (raw,) = generate_mail("spam", 1, 26)
    path = write_mbox(tmp_path / "00001.abc", [raw])

    text = invoke(runner, "predict", path, "-m", trained_model_dir)
    record = json.loads(
        invoke(runner, "predict", path, "-m", trained_model_dir, "--format", "json").stdout
    )

    assert text.stdout.rstrip("\n").split(" ")[2:] == [str(path)]
    assert (record["source"], record["index"]) == (str(path), None)
    assert record["message_id"] == header_message_id(raw)


def test_mailbox_predict_message_id_field_has_no_spaces(
    runner: CliRunner, trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    # A folded header, and a comment beside the ID: the text field is the
    # bracketed ID alone; JSON has the header's value, white space folded.
    folded, commented = generate_mail("ham", 2, 22)
    identifiers = [header_message_id(raw) for raw in (folded, commented)]
    folded = folded.replace(b"Message-ID: <", b"Message-ID:\n  <", 1)
    commented = re.sub(
        rb"^(Message-ID: <\S+>)", rb"\1  (sent by\n a robot)", commented, flags=re.MULTILINE
    )
    mbox = write_mbox(tmp_path / "box", [folded, commented])

    text = predictions(invoke(runner, "predict", mbox, "-m", trained_model_dir))
    records = [
        json.loads(line)
        for line in invoke(
            runner, "predict", mbox, "-m", trained_model_dir, "--format", "json"
        ).stdout.splitlines()
    ]
    assert [line["message_id"] for line in text] == identifiers
    assert [record["message_id"] for record in records] == [
        identifiers[0],
        f"{identifiers[1]} (sent by a robot)",
    ]


def test_mailbox_predict_json_fields(
    runner: CliRunner,
    trained_model_dir: Path,
    generate_mail: GenerateMail,
    mailbox: Path,
    tmp_path: Path,
) -> None:
    with_id, without_id = generate_mail("spam", 2, 23)
    mbox = write_mbox(tmp_path / "box.mbox", [with_id, without_message_id(without_id)])
    plain = tmp_path / "plain.eml"
    plain.write_bytes(with_id)
    bare = tmp_path / "bare.eml"
    bare.write_bytes(without_message_id(without_id))

    result = invoke(
        runner, "predict", plain, bare, mbox, mailbox, "-m", trained_model_dir, "--format", "json"
    )

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    for record in records:
        assert set(record) == {"source", "label", "score", "index", "message_id"}
    assert [(record["source"], record["index"]) for record in records] == [
        (str(plain), None),
        (str(bare), None),
        (f"{mbox}:1", 1),
        (f"{mbox}:2", 2),
        (f"{mailbox}:cur/1700000000.1.host:2,S", 1),
        (f"{mailbox}:cur/1700000001.2.host:2,FS", 2),
        (f"{mailbox}:new/1700000002.3.host", 3),
        (f"{mailbox}:new/1700000003.4.host", 4),
    ]
    assert [record["message_id"] for record in records[:4]] == [
        header_message_id(with_id),
        None,
        header_message_id(with_id),
        None,
    ]
    assert all(str(record["message_id"]).startswith("<") for record in records[4:])


def test_mailbox_predict_maildir_unreadable_message_keeps_its_place(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    os.mkfifo(mailbox / "cur" / "1700000000.0.host:2,")

    result = invoke(runner, "predict", mailbox, "-m", trained_model_dir, "--format", "json")

    # Not a message file (a FIFO would block the run): skipped, no error,
    # and the messages after it keep their numbers.
    assert result.exit_code == 0
    assert "skipped" in result.stderr
    assert "1700000000.0.host:2," in result.stderr
    assert [json.loads(line)["index"] for line in result.stdout.splitlines()] == [2, 3, 4, 5]


PREDICT_IN_WORKERS = """
import sys
from spamcli.cli import main
sys.argv = ["spamcli", "predict", "--format", "json", "-m", sys.argv[2], sys.argv[1]]
main()
"""


def test_mailbox_predict_message_ids_from_worker_processes(
    trained_model_dir: Path, generate_mail: GenerateMail, tmp_path: Path
) -> None:
    # Enough messages for several batches, in a process without TensorFlow,
    # so that the worker processes score them and find their Message-IDs.
    messages = generate_mail("ham", 150, 24) + generate_mail("spam", 150, 24)
    messages[200] = without_message_id(messages[200])
    mbox = write_mbox(tmp_path / "big.mbox", messages)

    completed = subprocess.run(
        [sys.executable, "-c", PREDICT_IN_WORKERS, str(mbox), str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    records = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [record["index"] for record in records] == list(range(1, 301))
    expected = [header_message_id(raw) for raw in messages[:200]]
    expected += [None] + [header_message_id(raw) for raw in messages[201:]]
    assert [record["message_id"] for record in records] == expected


# --- sort --------------------------------------------------------------------


def test_mailbox_sort_moves_spam_keeping_flags_and_part(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    before = mail_files(mailbox)

    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")

    assert result.exit_code == 0, result.output
    names = ["cur/1700000000.1.host:2,S", "cur/1700000001.2.host:2,FS"]
    names += ["new/1700000002.3.host", "new/1700000003.4.host"]
    assert [(line["label"], line["source"], line["destination"]) for line in moves(result)] == [
        ("spam", str(mailbox / name), str(mailbox / ".Junk" / name)) for name in names
    ]
    assert not any(list((mailbox / part).iterdir()) for part in ("cur", "new"))
    assert mail_files(mailbox / ".Junk") == before
    assert "4 messages: moved 4 (4 to .Junk), left 0, skipped 0" in result.stderr


def test_mailbox_sort_scores_like_predict(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    predicted = predictions(invoke(runner, "predict", mailbox, "-m", trained_model_dir))

    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")

    assert [line["score"] for line in moves(result)] == [line["score"] for line in predicted]


def test_mailbox_sort_makes_a_private_maildir_subfolder(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "1")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    for folder in (".Junk", ".Junk/tmp", ".Junk/new", ".Junk/cur"):
        assert stat.S_IMODE(os.stat(mailbox / folder).st_mode) & 0o077 == 0, folder
    assert (mailbox / ".Junk" / "maildirfolder").is_file()
    assert len(mail_files(mailbox)) == 4
    assert "4 messages: moved 0, left 4, skipped 0" in result.stderr


def test_mailbox_sort_dry_run_moves_nothing(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    before = sorted(path.relative_to(mailbox) for path in mailbox.rglob("*"))

    dry = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0", "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert sorted(path.relative_to(mailbox) for path in mailbox.rglob("*")) == before
    assert "would move 4" in dry.stderr
    real = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")
    assert dry.stdout == real.stdout
    assert len(moves(real)) == 4


def test_mailbox_sort_unsure_folder(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    every_message_unsure = ("--threshold", "1", "--ham-cutoff", "0")

    kept = invoke(runner, "sort", mailbox, "-m", trained_model_dir, *every_message_unsure)
    assert kept.exit_code == 0, kept.output
    assert kept.stdout == ""
    assert len(mail_files(mailbox)) == 4
    assert not mail_files(mailbox / ".Junk")

    result = invoke(
        runner,
        "sort",
        mailbox,
        "-m",
        trained_model_dir,
        *every_message_unsure,
        "--unsure-folder",
        ".Unsure",
    )

    assert result.exit_code == 0, result.output
    lines = moves(result)
    assert {line["label"] for line in lines} == {"unsure"}
    assert {Path(line["destination"]).parent.parent for line in lines} == {mailbox / ".Unsure"}
    assert sorted(mail_files(mailbox / ".Unsure")) == sorted(
        path.rsplit("/", 1)[-1] for path in (line["source"] for line in lines)
    )
    assert "moved 4 (4 to .Unsure)" in result.stderr


@pytest.fixture(params=["renameat2", "link"])
def move_mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of moving without replacing: one rename, or a link and an unlink."""
    if request.param == "link":
        monkeypatch.setattr(sorting, "_rename_no_replace", lambda source, destination: False)
    elif sorting._renameat2() is None:
        pytest.skip("no renameat2 here")
    return str(request.param)


def test_mailbox_sort_never_replaces_an_existing_file(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path, move_mechanism: str
) -> None:
    taken = mailbox / ".Junk" / "cur" / "1700000001.2.host:2,FS"
    make_maildir(mailbox / ".Junk", cur={taken.name: b"Subject: already here\n\nkeep me\n"}, new={})
    original = (mailbox / "cur" / taken.name).read_bytes()

    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")

    assert result.exit_code == 1
    assert taken.read_bytes() == b"Subject: already here\n\nkeep me\n"
    assert (mailbox / "cur" / taken.name).read_bytes() == original
    assert f"skipped {mailbox / 'cur' / taken.name}: {taken} exists" in result.stderr
    assert len(moves(result)) == 3
    assert sorted(path.name for path in mailbox.glob("cur/*")) == [taken.name]
    assert not list(mailbox.glob("new/*"))


def test_mailbox_sort_dry_run_reports_a_taken_name(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    make_maildir(mailbox / ".Junk", cur={}, new={"1700000002.3.host": b"Subject: x\n\ny\n"})

    result = invoke(
        runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0", "--dry-run"
    )

    assert result.exit_code == 1
    assert "1700000002.3.host exists" in result.stderr
    assert len(moves(result)) == 3


def racing_classify(
    monkeypatch: pytest.MonkeyPatch, victim: Path, act: Callable[[Path], None]
) -> None:
    """Make another mail program ACT on VICTIM after it was read and scored,
    just before sort gets to move it."""
    original = sorting.classify

    def classify(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for item in original(*args, **kwargs):
            if item.source == str(victim):
                act(victim)
            yield item

    monkeypatch.setattr(sorting, "classify", classify)


def test_mailbox_sort_message_removed_mid_run(
    runner: CliRunner,
    trained_model_dir: Path,
    mailbox: Path,
    monkeypatch: pytest.MonkeyPatch,
    move_mechanism: str,
) -> None:
    victim = mailbox / "cur" / "1700000001.2.host:2,FS"
    # Another mail reader marks it replied: it is renamed, not deleted.
    flagged = victim.with_name("1700000001.2.host:2,FRS")
    racing_classify(monkeypatch, victim, lambda path: path.rename(flagged))
    before = mail_files(mailbox)

    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")

    assert result.exit_code == 1
    assert f"skipped {victim}: vanished while sorting" in result.stderr
    assert "Traceback" not in result.stderr
    assert [Path(line["source"]).name for line in moves(result)] == [
        "1700000000.1.host:2,S",
        "1700000002.3.host",
        "1700000003.4.host",
    ]
    assert flagged.read_bytes() == before.pop(victim.name)
    assert mail_files(mailbox / ".Junk") == before


def test_mailbox_sort_message_replaced_mid_run(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = mailbox / "new" / "1700000002.3.host"

    def replace(path: Path) -> None:
        replacement = mailbox / "tmp" / "replacement"
        replacement.write_bytes(b"Subject: edited\n\nanother message now\n")
        replacement.rename(path)

    racing_classify(monkeypatch, victim, replace)

    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")

    assert result.exit_code == 1
    assert f"skipped {victim}: changed while sorting" in result.stderr
    assert victim.read_bytes() == b"Subject: edited\n\nanother message now\n"
    assert len(moves(result)) == 3


def test_mailbox_sort_unreadable_message_is_skipped(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path
) -> None:
    fifo = mailbox / "new" / "1700000004.5.host"
    os.mkfifo(fifo)
    link = mailbox / "cur" / "1700000005.6.host:2,S"
    link.symlink_to(mailbox / "cur" / "1700000000.1.host:2,S")

    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")

    assert result.exit_code == 1
    assert f"skipped {fifo}: not a regular file" in result.stderr
    assert f"skipped {link}: a symbolic link" in result.stderr
    assert len(moves(result)) == 4
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert link.is_symlink()


def test_mailbox_sort_leaves_subfolders_alone_and_loses_nothing(
    runner: CliRunner, trained_model_dir: Path, mailbox: Path, generate_mail: GenerateMail
) -> None:
    junk = generate_mail("spam", 2, 25)
    make_maildir(
        mailbox / ".Junk",
        cur={"1600000000.1.host:2,S": junk[0]},
        new={"1600000001.2.host": junk[1]},
    )
    make_maildir(mailbox / ".Archive", cur={"1600000002.3.host:2,S": junk[0]}, new={})
    before = mail_files(mailbox)
    junk_before = mail_files(mailbox / ".Junk")

    for threshold in ("1", "0", "0"):
        result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", threshold)
        assert result.exit_code == 0, result.output
        for line in moves(result):
            assert Path(line["source"]).parent.parent == mailbox

    assert mail_files(mailbox) == before
    assert mail_files(mailbox / ".Archive") == {"1600000002.3.host:2,S": junk[0]}
    assert set(junk_before.items()) <= set(mail_files(mailbox / ".Junk").items())
    assert len(mail_files(mailbox / ".Junk")) == 6


def test_mailbox_sort_errors(runner: CliRunner, trained_model_dir: Path, mailbox: Path) -> None:
    not_a_maildir = mailbox / "cur"
    result = invoke(runner, "sort", not_a_maildir, "-m", trained_model_dir)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: {not_a_maildir}: not a Maildir (it needs cur, new and tmp folders)\n"
    )

    for name in ("Junk", ".Junk/sub", "."):
        result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--spam-folder", name)
        assert result.exit_code == 2, name
        assert "not a Maildir++ folder name" in result.stderr

    (mailbox / ".Junk").write_bytes(b"not a folder")
    result = invoke(runner, "sort", mailbox, "-m", trained_model_dir, "--threshold", "0")
    assert result.exit_code == 1
    assert "cannot make the folder" in result.stderr
    assert result.stdout == ""
    assert len(mail_files(mailbox)) == 4

    result = invoke(runner, "sort", mailbox, "-m", mailbox / "no-model")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr


def test_mailbox_sort_maildir_core_errors(trained_model_dir: Path, mailbox: Path) -> None:
    scorer = Scorer(trained_model_dir)
    with pytest.raises(MailboxError, match="not a Maildir"):
        sorting.sort_maildir(scorer, mailbox / "new")
    with pytest.raises(ValueError, match="Maildir\\+\\+ folder name"):
        sorting.sort_maildir(scorer, mailbox, spam_folder="Junk")
    with pytest.raises(ValueError, match="Maildir\\+\\+ folder name"):
        sorting.sort_maildir(scorer, mailbox, unsure_folder="../Unsure")


def test_mailbox_sort_maildir_events(trained_model_dir: Path, mailbox: Path) -> None:
    scorer = Scorer(trained_model_dir)
    cutoffs = scorer.cutoffs(spam=1.0, ham=0.0)

    events = list(sorting.sort_maildir(scorer, mailbox, cutoffs, unsure_folder=".Unsure"))

    assert [type(event) for event in events] == [sorting.Moved] * 4
    assert {event.label for event in events if isinstance(event, sorting.Moved)} == {"unsure"}
    assert (mailbox / ".Junk" / "cur").is_dir()
    assert len(mail_files(mailbox / ".Unsure")) == 4


SORT_WITHOUT_TENSORFLOW = """
import sys
from spamcli.cli import main
sys.argv = ["spamcli", "sort", "--dry-run", "--threshold", "0", "-m", sys.argv[2], sys.argv[1]]
try:
    main()
except SystemExit as exit:
    print("exit", exit.code)
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_mailbox_sort_does_not_import_tensorflow(trained_model_dir: Path, mailbox: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", SORT_WITHOUT_TENSORFLOW, str(mailbox), str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = completed.stdout.splitlines()
    assert len(lines) == 6, completed.stdout + completed.stderr
    assert all(MOVE_LINE.fullmatch(line) for line in lines[:4])
    assert lines[4:] == ["exit 0", "False False"]
