"""spamcli learn: one optimizer step a message, new words included, never
half-written, and never TensorFlow."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import spamcli_imports

from spamcli import artifacts, learning
from spamcli.cli import cli
from spamcli.config import TrainingConfig
from spamcli.corpus import RawMessage, ReadFailure
from spamcli.errors import InputError, ModelError
from spamcli.scoring import Scorer


def heldout_messages(heldout_dir: Path, label: str, count: int) -> list[RawMessage]:
    paths = sorted((heldout_dir / label).iterdir())[:count]
    return [RawMessage(str(path), path.read_bytes()) for path in paths]


def scores(model_dir: Path, messages: list[RawMessage]) -> list[float]:
    return Scorer(model_dir).score_messages([message.raw for message in messages])


def campaign(number: int) -> bytes:
    """A spam of a campaign whose words no training message has."""
    return (
        f"From: Zorblax Offers <deals@zorblax.example>\nSubject: zorblax quixotal "
        f"flumberwick {number}\n\nzorblax quixotal flumberwick vantrelium oxquaddle "
        f"number {number}\n"
    ).encode()


def test_learn_moves_learned_messages_towards_their_label(
    model_copy: Path, heldout_dir: Path
) -> None:
    ham_as_spam = heldout_messages(heldout_dir, "ham", 2)
    spam_as_ham = heldout_messages(heldout_dir, "spam", 1)
    before = scores(model_copy, ham_as_spam + spam_as_ham)

    report = learning.learn(model_copy, spam=ham_as_spam, ham=spam_as_ham)

    after = scores(model_copy, ham_as_spam + spam_as_ham)
    assert report.changed and report.steps == 3
    assert all(new > old for new, old in zip(after[:2], before[:2], strict=True))
    assert after[2] < before[2]
    assert [correction.outcome for correction in report.corrections] == ["added"] * 3
    # Each message is scored just before it is learned, after those before it.
    assert report.corrections[0].score_before == pytest.approx(before[0])
    # Each message is scored after the whole batch was learned.
    assert [correction.score_after for correction in report.corrections] == pytest.approx(after)


def test_learn_learns_words_the_model_never_saw(model_copy: Path) -> None:
    # Hashed n-grams: a new campaign's words have rows of their own, which
    # start from the optimizer's initial state and so take full steps.
    first, later = campaign(1), campaign(2)
    before = Scorer(model_copy).score_messages([later])[0]

    learning.learn(model_copy, spam=[RawMessage("first", first)])

    after = Scorer(model_copy).score_messages([later])[0]
    assert after > before + 0.1, (before, after)


def test_learn_changes_only_the_rows_of_the_message_and_links_the_kernel(
    model_copy: Path, heldout_dir: Path
) -> None:
    inode = (model_copy / artifacts.KERNEL_FILE).stat().st_ino
    message = heldout_messages(heldout_dir, "ham", 1)[0]
    present = Scorer(model_copy).message_indices(message.raw)

    learning.learn(model_copy, spam=[message])

    # kernel.npz is shared with the folder it replaced, not rewritten.
    assert (model_copy / artifacts.KERNEL_FILE).stat().st_ino == inode
    with np.load(model_copy / artifacts.WEIGHTS_FILE, allow_pickle=False) as arrays:
        assert arrays[artifacts.CHANGED_ROWS].tolist() == sorted(present)
    metadata = artifacts.read_metadata(model_copy)
    assert metadata["weights"]["changed_rows"] == len(present)
    assert metadata["weights"]["messages_learned"] >= 1


def test_learn_twice_changes_nothing_and_the_other_label_relabels(
    model_copy: Path, heldout_dir: Path
) -> None:
    messages = heldout_messages(heldout_dir, "ham", 1)
    learning.learn(model_copy, spam=messages)
    learned = scores(model_copy, messages)
    files = {path.name: path.read_bytes() for path in model_copy.iterdir()}

    again = learning.learn(model_copy, spam=messages)

    assert not again.changed
    assert [correction.outcome for correction in again.corrections] == ["unchanged"]
    assert again.corrections[0].score_after is None
    assert {path.name: path.read_bytes() for path in model_copy.iterdir()} == files

    relabelled = learning.learn(model_copy, ham=messages)

    assert [correction.outcome for correction in relabelled.corrections] == ["relabelled"]
    assert scores(model_copy, messages)[0] < learned[0]
    assert learning.read_learned(model_copy)[relabelled_digest(messages[0])].label == "ham"


def relabelled_digest(message: RawMessage) -> str:
    import hashlib

    return hashlib.sha256(message.raw).hexdigest()


def test_forget_takes_the_message_back_to_its_score_before(
    model_copy: Path, heldout_dir: Path
) -> None:
    messages = heldout_messages(heldout_dir, "ham", 1)
    before = scores(model_copy, messages)[0]
    learning.learn(model_copy, spam=messages)
    assert scores(model_copy, messages)[0] > before + 0.01

    report = learning.learn(model_copy, spam=messages, forget=True)

    assert [correction.outcome for correction in report.corrections] == ["forgotten"]
    assert scores(model_copy, messages)[0] == pytest.approx(before, abs=learning.FORGET_TOLERANCE)
    assert learning.learned_count(model_copy) == 0
    again = learning.learn(model_copy, spam=messages, forget=True)
    assert [correction.outcome for correction in again.corrections] == ["not learned"]


def test_learned_messages_are_kept_in_an_append_only_file(
    model_copy: Path, heldout_dir: Path
) -> None:
    first, second = heldout_messages(heldout_dir, "ham", 2)
    learning.learn(model_copy, spam=[first])
    learning.learn(model_copy, ham=[second])

    lines = (model_copy / artifacts.LEARNED_FILE).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["label"] for record in records] == ["spam", "ham"]
    assert all(set(record) == {"sha256", "label", "score_before", "tokens"} for record in records)
    metadata = artifacts.read_metadata(model_copy)
    assert metadata["learned"]["bytes"] == (model_copy / artifacts.LEARNED_FILE).stat().st_size
    assert (metadata["learned"]["spam"], metadata["learned"]["ham"]) == (1, 1)


def test_learned_bytes_past_the_recorded_length_are_not_read(
    model_copy: Path, heldout_dir: Path
) -> None:
    # What a learn killed after appending, before its folder was put in
    # place, leaves behind: bytes no reader reads, cut by the next learn.
    first, second = heldout_messages(heldout_dir, "ham", 2)
    learning.learn(model_copy, spam=[first])
    with open(model_copy / artifacts.LEARNED_FILE, "ab") as handle:
        handle.write(b'{"half a record')
    assert learning.learned_count(model_copy) == 1

    learning.learn(model_copy, spam=[second])

    assert learning.learned_count(model_copy) == 2
    text = (model_copy / artifacts.LEARNED_FILE).read_text(encoding="utf-8")
    assert "half a record" not in text


def test_learn_interrupted_while_writing_leaves_the_old_model(
    model_copy: Path, heldout_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = heldout_messages(heldout_dir, "ham", 2)
    original = scores(model_copy, messages)
    files = {path.name: path.read_bytes() for path in model_copy.iterdir()}

    def fail_midway(path: Path, arrays: object) -> None:
        path.write_bytes(b"half-written")
        raise OSError("No space left on device")

    monkeypatch.setattr(artifacts, "write_npz", fail_midway)
    # Said in one line, as a ModelError: the folder was not saved.
    with pytest.raises(ModelError, match=r"No space left.*previous model is unchanged"):
        learning.learn(model_copy, spam=messages)

    assert {path.name: path.read_bytes() for path in model_copy.iterdir()} == files
    assert scores(model_copy, messages) == original
    leftovers = [path.name for path in model_copy.parent.iterdir() if ".new-" in path.name]
    assert leftovers == []


def test_learn_two_at_once_both_take_effect(model_copy: Path, heldout_dir: Path) -> None:
    first, second = heldout_messages(heldout_dir, "ham", 2)
    errors: list[BaseException] = []

    def run(message: RawMessage) -> None:
        try:
            learning.learn(model_copy, spam=[message])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(message,)) for message in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert learning.learned_count(model_copy) == 2


def test_learn_lock_is_exclusive_and_beside_the_folder(model_copy: Path) -> None:
    with artifacts.model_lock(model_copy):
        lock_path = model_copy.parent / f".{model_copy.name}.lock"
        assert lock_path.is_file()
        descriptor = os.open(lock_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)
    assert not any(path.name.endswith(".lock") for path in model_copy.iterdir())


def test_learn_lock_is_the_same_through_a_link_and_its_target(
    model_copy: Path, tmp_path: Path
) -> None:
    link = tmp_path / "elsewhere" / "link"
    link.parent.mkdir()
    link.symlink_to(model_copy)
    with artifacts.model_lock(link):
        descriptor = os.open(model_copy.parent / f".{model_copy.name}.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)
    assert not (link.parent / ".link.lock").exists()


def test_learn_keeps_regular_files_and_follows_no_link_into_the_folder(
    model_copy: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not the model's\n")
    (model_copy / "notes.txt").symlink_to(secret)  # ln -s /etc/passwd m/notes.txt
    os.mkfifo(model_copy / "pipe")  # never opened: it would block
    (model_copy / "card.md").write_text("my notes\n")

    learning.learn(model_copy, spam=heldout_messages(heldout_dir, "spam", 1))

    assert (model_copy / "card.md").read_text() == "my notes\n"
    assert not (model_copy / "notes.txt").exists() and not (model_copy / "notes.txt").is_symlink()
    assert not (model_copy / "pipe").exists()
    assert learning.learned_count(model_copy) == 1


def test_learn_refuses_a_learned_file_shorter_than_recorded(
    model_copy: Path, heldout_dir: Path
) -> None:
    learning.learn(model_copy, spam=heldout_messages(heldout_dir, "spam", 1))
    (model_copy / artifacts.LEARNED_FILE).write_bytes(b"")
    before = {path.name: path.read_bytes() for path in model_copy.iterdir()}
    with pytest.raises(ModelError, match="learned messages are missing"):
        learning.learn(model_copy, spam=heldout_messages(heldout_dir, "spam", 1))
    (model_copy / artifacts.LEARNED_FILE).unlink()
    with pytest.raises(ModelError, match=r"holds 0 bytes where metadata\.json records"):
        learning.read_learned(model_copy)
    assert {path.name for path in model_copy.iterdir()} == set(before) - {artifacts.LEARNED_FILE}


@pytest.mark.parametrize("weights", [None, "rows", {"changed_rows": "many"}])
def test_learn_refuses_a_weights_entry_that_is_not_one(model_copy: Path, weights: object) -> None:
    metadata_path = model_copy / artifacts.METADATA_FILE
    metadata = json.loads(metadata_path.read_text())
    metadata["weights"] = weights
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match="weights entry is not valid"):
        artifacts.read_metadata(model_copy)


def test_learn_reports_unreadable_input_and_learns_the_rest(
    model_copy: Path, heldout_dir: Path
) -> None:
    messages = heldout_messages(heldout_dir, "ham", 1)
    missing = ReadFailure("missing.eml", "No such file or directory")
    report = learning.learn(model_copy, spam=[missing, *messages])
    assert report.failures == [missing]
    assert learning.learned_count(model_copy) == 1
    with pytest.raises(InputError, match="no message could be read"):
        learning.learn(model_copy, spam=[missing])


def test_learn_refuses_one_message_with_both_labels(model_copy: Path, heldout_dir: Path) -> None:
    messages = heldout_messages(heldout_dir, "ham", 1)
    with pytest.raises(InputError, match="both as ham and as spam"):
        learning.learn(model_copy, spam=messages, ham=messages)


def test_read_learned_refuses_a_broken_file(model_copy: Path) -> None:
    (model_copy / artifacts.LEARNED_FILE).write_text('{"sha256": "xyz"}\n', encoding="utf-8")
    with pytest.raises(ModelError, match="line 1"):
        learning.read_learned(model_copy)


def test_learn_does_not_import_tensorflow(model_copy: Path, heldout_dir: Path) -> None:
    message = sorted((heldout_dir / "ham").iterdir())[0]
    lines, errors = spamcli_imports(
        ["learn", "--spam", str(message), "-m", str(model_copy)], ["tensorflow", "keras"]
    )
    assert lines[-2:] == ["exit 0", "False False"], errors


def test_cli_learn_prints_one_line_per_message(
    runner: CliRunner, model_copy: Path, heldout_dir: Path
) -> None:
    first, second = sorted((heldout_dir / "ham").iterdir())[:2]
    result = runner.invoke(cli, ["learn", "--spam", str(first), str(second), "-m", str(model_copy)])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [(line[0], line[1], line[4]) for line in lines] == [
        ("added", "spam", str(first)),
        ("added", "spam", str(second)),
    ]
    assert all(float(after) > float(before) for _, _, before, after, _ in lines)
    assert "learned 2 spam and 0 ham" in result.stderr

    again = runner.invoke(cli, ["learn", "--spam", "-m", str(model_copy)], input=first.read_bytes())
    assert again.exit_code == 0, again.output
    assert again.stdout.split()[:2] == ["unchanged", "spam"]
    assert again.stdout.split()[3:] == ["-", "-"]
    assert "unchanged" in again.stderr


@pytest.mark.parametrize(
    "arguments",
    [["msg.eml"], ["--spam", "--ham", "msg.eml"], ["--spam", "-", "-"]],
    ids=["no label", "both labels", "stdin twice"],
)
def test_cli_learn_usage_errors(runner: CliRunner, model_copy: Path, arguments: list[str]) -> None:
    result = runner.invoke(cli, ["learn", *arguments, "-m", str(model_copy)])
    assert result.exit_code == 2
    assert not (model_copy / artifacts.LEARNED_FILE).exists()


def test_cli_learn_missing_path_fails_without_a_traceback(
    runner: CliRunner, model_copy: Path, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["learn", "--ham", str(tmp_path / "nope"), "-m", str(model_copy)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "no message could be read" in result.stderr


def test_train_resume_includes_and_keeps_learned_messages(
    model_copy: Path, corpus_dir: Path, heldout_dir: Path, tiny_config: TrainingConfig
) -> None:
    # A new message, and a training ham corrected to spam.
    messages = heldout_messages(heldout_dir, "ham", 1) + heldout_messages(corpus_dir, "ham", 1)
    learning.learn(model_copy, spam=messages)

    report, included = learning.train_with_learned(model_copy, [corpus_dir], config=tiny_config)

    assert included == 2
    # 200 in the corpus, one of them replaced by its correction, one new.
    assert report.training_messages + report.validation_messages == 201
    assert report.counts == {"ham": 99, "spam": 100}
    metadata = artifacts.read_metadata(model_copy)
    assert metadata["training_data"]["extra_messages"] == 2
    assert metadata["learned"]["messages"] == 2
    assert metadata["learned"]["included_in_training"] is True
    assert learning.learned_count(model_copy) == 2


def test_train_resume_refuses_other_headers(
    model_copy: Path, corpus_dir: Path, heldout_dir: Path, tiny_config: TrainingConfig
) -> None:
    learning.learn(model_copy, spam=heldout_messages(heldout_dir, "ham", 1))
    other = "content" if tiny_config.header_policy != "content" else "all"
    with pytest.raises(ModelError, match=f"--headers {tiny_config.header_policy}"):
        learning.train_with_learned(
            model_copy, [corpus_dir], config=TrainingConfig(header_policy=other)
        )


def test_cli_train_warns_about_learned_messages(
    runner: CliRunner, model_copy: Path, corpus_dir: Path, heldout_dir: Path
) -> None:
    learning.learn(model_copy, spam=heldout_messages(heldout_dir, "ham", 1))
    result = runner.invoke(
        cli, ["train", str(corpus_dir), "-m", str(model_copy), "--epochs", "1", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "1 learned messages" in result.stderr and "--resume" in result.stderr
    assert not (model_copy / artifacts.LEARNED_FILE).exists()


def test_learn_an_earlier_format_is_refused_with_a_word_on_training(model_copy: Path) -> None:
    metadata = json.loads((model_copy / artifacts.METADATA_FILE).read_text())
    metadata["format_version"] = 2
    artifacts.write_metadata(model_copy, metadata)
    with pytest.raises(ModelError, match="spamcli train"):
        learning.learn(model_copy, spam=[RawMessage("x", campaign(1))])
