"""Hostile and broken input through `spamcli predict`, `evaluate` and `train`.

Every message of tests/hostile_catalogue.py is classified, from a file and
from stdin: one prediction line on stdout with a score in [0, 1], exit
status 0, and nothing on stderr but, for input that is no mail (empty,
binary, no header block), the one line saying so. Every hostile path gives
its one-line note or error on stderr and the exit status it promises, and
nothing ever blocks: a FIFO in a folder is skipped, the stdin of a closed
descriptor is an error.

The built-in model scores here: it needs no training, and these tests are
about what reaches the scorer, not about a model's judgement.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hostile_catalogue import (
    BIG_MESSAGES,
    HOSTILE_MESSAGES,
    ORDINARY,
    HostileMessage,
    broken_symlink,
    folder_with_fifo,
    hostile_message,
    missing_path,
    unreadable_folder,
)

from spamcli.cli import DEFAULT_MODEL_DIR, cli
from spamcli.config import EXIT_ERROR, MAX_MESSAGE_BYTES
from spamcli.mail import looks_like_mail
from spamcli.scoring import Scorer

PREDICTION_LINE = re.compile(r"(?P<label>ham|unsure|spam) (?P<score>[01]\.\d{6}) (?P<source>.+)")
SPAMCLI = [sys.executable, "-m", "spamcli"]
# A subprocess that blocks on a FIFO would hang the suite; this ends it.
PROCESS_TIMEOUT = 60


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(DEFAULT_MODEL_DIR)


def predict(*args: str | Path, input: bytes | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        cli, ["predict", "-m", str(DEFAULT_MODEL_DIR), *map(str, args)], input=input
    )


def run_predict(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*SPAMCLI, "predict", "-m", str(DEFAULT_MODEL_DIR), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        **kwargs,
    )


def assert_one_prediction(stdout: str, source: str, scorer: Scorer) -> float:
    """STDOUT is exactly one prediction line for SOURCE, its label that of its score."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    match = PREDICTION_LINE.fullmatch(lines[0])
    assert match, lines[0]
    score = float(match["score"])
    assert 0.0 <= score <= 1.0
    assert match["source"] == source
    assert match["label"] == scorer.cutoffs().label(score)
    return score


def not_mail_warning(raw: bytes, source: str) -> str:
    """The one line predict writes on stderr for input that is no mail
    (empty, binary, no header block), else nothing: it is still scored."""
    reason = looks_like_mail(raw)
    if reason is None:
        return ""
    return f"spamcli: {source}: not a mail message ({reason}); its verdict means little\n"


def catalogue_parameters() -> list[object]:
    """Each catalogue message; the big ones are slow only to build and copy."""
    parameters: list[object] = []
    for message in HOSTILE_MESSAGES:
        marks = [pytest.mark.slow] if message.name in BIG_MESSAGES else []
        parameters.append(pytest.param(message, id=message.name, marks=marks))
    return parameters


# --------------------------------------------------------------------------
# Messages


@pytest.mark.parametrize("message", catalogue_parameters())
def test_hostile_message_from_a_file(
    message: HostileMessage, tmp_path: Path, scorer: Scorer
) -> None:
    raw = message.build()
    path = tmp_path / f"{message.name}.eml"
    path.write_bytes(raw)

    result = predict(path)

    assert result.exit_code == 0, result.output
    assert result.stderr == not_mail_warning(raw, str(path))
    score = assert_one_prediction(result.stdout, str(path), scorer)
    # The score is the scorer's own for the whole message: reading only the
    # part that is parsed changes nothing.
    assert score == pytest.approx(scorer.score_messages([raw])[0], abs=1e-6)


@pytest.mark.parametrize("message", catalogue_parameters())
def test_hostile_message_on_stdin(message: HostileMessage, scorer: Scorer) -> None:
    raw = message.build()
    result = predict("-", input=raw)

    assert result.exit_code == 0, result.output
    assert result.stderr == not_mail_warning(raw, "-")
    assert_one_prediction(result.stdout, "-", scorer)


def test_hostile_empty_and_blank_messages_score_alike(tmp_path: Path) -> None:
    # An empty message and one of white space only both give no token: the
    # model's score for no evidence at all.
    empty = predict("-", input=b"")
    blank = predict("-", input=hostile_message("whitespace").build())

    assert empty.stdout == blank.stdout


def test_hostile_50mb_message_from_stdin_in_a_subprocess(scorer: Scorer) -> None:
    raw = hostile_message("50mb-message").build()

    completed = subprocess.run(
        [*SPAMCLI, "predict", "-m", str(DEFAULT_MODEL_DIR), "-"],
        input=raw,
        capture_output=True,
        timeout=PROCESS_TIMEOUT,
    )

    # Read to its end (the writer is not cut off), and the score is the
    # scorer's for the whole message.
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""
    score = assert_one_prediction(completed.stdout.decode(), "-", scorer)
    assert score == pytest.approx(scorer.score_messages([raw[:MAX_MESSAGE_BYTES]])[0], abs=1e-6)


def test_hostile_mbox_of_50_million_empty_lines_stays_small(tmp_path: Path) -> None:
    # An mbox's message body used to be a list of its lines: 50 million
    # empty lines cost 4.5 GB. Now it is one buffer, cut after what is parsed.
    path = tmp_path / "lines.mbox"
    with open(path, "wb") as mbox:
        mbox.write(b"From a@example.org Mon Jan  1 00:00:00 2024\nSubject: one\n\nhi\n\n")
        mbox.write(b"From a@example.org Mon Jan  1 00:00:01 2024\nSubject: two\n\n")
        mbox.write(b"\n" * 5_000_000)

    from spamcli.corpus import RawMessage, iter_messages

    limited = list(iter_messages(path, read_limit=MAX_MESSAGE_BYTES))
    whole = list(iter_messages(path))

    assert [item.source for item in limited] == [f"{path}:1", f"{path}:2"]
    assert all(isinstance(item, RawMessage) for item in limited + whole)
    assert len(limited[1].raw) <= 2 * MAX_MESSAGE_BYTES  # type: ignore[union-attr]
    assert limited[0] == whole[0]
    prefix = limited[1].raw[:MAX_MESSAGE_BYTES]  # type: ignore[union-attr]
    assert prefix == whole[1].raw[:MAX_MESSAGE_BYTES]  # type: ignore[union-attr]


# --------------------------------------------------------------------------
# Paths


def test_hostile_path_that_does_not_exist(tmp_path: Path) -> None:
    path = missing_path(tmp_path)

    result = predict(path)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"spamcli: {path}: No such file or directory\n"


def test_hostile_broken_symlink(tmp_path: Path) -> None:
    path = broken_symlink(tmp_path)

    result = predict(path)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"spamcli: {path}: broken symbolic link\n"


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads a folder whatever its permissions",
)
def test_hostile_folder_without_read_permission(tmp_path: Path) -> None:
    folder = unreadable_folder(tmp_path)
    try:
        result = predict(folder)
    finally:
        folder.chmod(0o755)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"spamcli: {folder}: Permission denied\n"


def test_hostile_bad_paths_do_not_stop_the_good_ones(tmp_path: Path, scorer: Scorer) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(ORDINARY)
    missing, broken = missing_path(tmp_path), broken_symlink(tmp_path)

    result = predict(missing, good, broken, "--exit-status")

    assert result.exit_code == EXIT_ERROR
    assert_one_prediction(result.stdout, str(good), scorer)
    assert result.stderr.splitlines() == [
        f"spamcli: {missing}: No such file or directory",
        f"spamcli: {broken}: broken symbolic link",
    ]


def test_hostile_fifo_in_a_folder_is_skipped_without_blocking(
    tmp_path: Path, scorer: Scorer
) -> None:
    folder = folder_with_fifo(tmp_path)

    # Nobody ever writes to the FIFO: opening it for reading would block.
    completed = run_predict(folder)

    assert completed.returncode == 0, completed.stderr
    assert_one_prediction(completed.stdout, str(folder / "1.eml"), scorer)
    assert completed.stderr == (
        f"spamcli: skipped {folder / '2.fifo'}: not a regular file (a FIFO)\n"
    )


def test_hostile_fifo_named_on_the_command_line_is_read(tmp_path: Path, scorer: Scorer) -> None:
    fifo = tmp_path / "message.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as writer:  # blocks until spamcli opens it
            writer.write(ORDINARY)

    writer_thread = threading.Thread(target=write, daemon=True)
    writer_thread.start()
    completed = run_predict(fifo)
    writer_thread.join(timeout=PROCESS_TIMEOUT)

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    score = assert_one_prediction(completed.stdout, str(fifo), scorer)
    assert score == pytest.approx(scorer.score_messages([ORDINARY])[0], abs=1e-6)


def test_hostile_stdin_from_dev_null_is_an_empty_message(scorer: Scorer) -> None:
    completed = run_predict("-", stdin=subprocess.DEVNULL)

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == not_mail_warning(b"", "-")
    score = assert_one_prediction(completed.stdout, "-", scorer)
    assert score == pytest.approx(scorer.score_messages([b""])[0], abs=1e-6)


@pytest.mark.parametrize("arguments", [["-"], [], ["-", "--exit-status"]], ids=str)
def test_hostile_closed_stdin_is_an_error(arguments: list[str]) -> None:
    # preexec_fn runs in the child after its standard streams are set up,
    # so this closes the child's descriptor 0 just before spamcli starts.
    completed = run_predict(*arguments, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))

    assert completed.stdout == ""
    assert completed.stderr == "spamcli: -: standard input is closed\n"
    assert completed.returncode == (EXIT_ERROR if "--exit-status" in arguments else 1)


# --------------------------------------------------------------------------
# evaluate and train read the same catalogue


def write_hostile_corpus(root: Path) -> Path:
    """Every small catalogue message as spam and as ham, plus a FIFO and a broken link."""
    for label in ("ham", "spam"):
        folder = root / label
        folder.mkdir(parents=True)
        for message in HOSTILE_MESSAGES:
            if message.name in BIG_MESSAGES or message.name == "base64-zeros-20mb":
                continue
            # A label byte keeps the two copies distinct for deduplication.
            (folder / f"{message.name}.eml").write_bytes(message.build() + label.encode())
    os.mkfifo(root / "spam" / "never-written.fifo")
    (root / "ham" / "dangling.eml").symlink_to(root / "nowhere")
    return root


def test_hostile_evaluate_reads_the_catalogue(tmp_path: Path) -> None:
    corpus = write_hostile_corpus(tmp_path / "corpus")
    count = len(HOSTILE_MESSAGES) - len(BIG_MESSAGES) - 1

    # --no-record: the built-in model's card is not the test's to write to.
    command = ["evaluate", "-m", str(DEFAULT_MODEL_DIR), "--no-record", "--format", "json"]
    completed = subprocess.run(
        [*SPAMCLI, *command, str(corpus)],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.splitlines() == [
        f"spamcli: {corpus / 'ham' / 'dangling.eml'}: broken symbolic link",
        f"spamcli: {corpus / 'spam' / 'never-written.fifo'}: not a regular file (a FIFO)",
        "spamcli: 2 inputs could not be read",
    ]
    import json

    result = json.loads(completed.stdout)
    assert (result["ham"], result["spam"], result["unreadable"]) == (count, count, 2)
    assert 0.0 <= result["roc_auc"] <= 1.0


@pytest.mark.slow
def test_hostile_train_reads_the_catalogue(tmp_path: Path, corpus_dir: Path) -> None:
    # Hostile mail among ordinary training mail: every message is read, the
    # FIFO and the broken link are reported, and a model is saved.
    corpus = write_hostile_corpus(tmp_path / "hostile")
    ordinary = shutil.copytree(corpus_dir, tmp_path / "ordinary")
    model_dir = tmp_path / "model"

    result = CliRunner().invoke(
        cli,
        ["train", "-q", "--epochs", "1", "-m", str(model_dir), str(corpus), str(ordinary)],
    )

    assert result.exit_code == 0, result.output
    *skipped, too_few = result.stderr.splitlines()
    assert skipped == [
        f"spamcli: skipped {corpus / 'ham' / 'dangling.eml'}: broken symbolic link",
        f"spamcli: skipped {corpus / 'spam' / 'never-written.fifo'}: not a regular file (a FIFO)",
    ]
    # A corpus this small has too few validation ham for the default rate.
    assert "validation ham cannot resolve a false-positive rate of 0.10%" in too_few
    assert result.stdout.splitlines()[-1] == f"saved {model_dir}"
    assert Scorer(model_dir).score_messages([b""])[0] <= 1.0
