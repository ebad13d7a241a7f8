"""spamcli learn: corrections without a retrain, exact to undo, never half-written."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spamcli import artifacts, learning
from spamcli.cli import cli
from spamcli.config import SPAM, TrainingConfig
from spamcli.corpus import RawMessage, ReadFailure
from spamcli.errors import InputError, ModelError
from spamcli.scoring import Scorer
from spamcli.tokens import message_tokens


def heldout_messages(heldout_dir: Path, label: str, count: int) -> list[RawMessage]:
    paths = sorted((heldout_dir / label).iterdir())[:count]
    return [RawMessage(str(path), path.read_bytes()) for path in paths]


def scores(model_dir: Path, messages: list[RawMessage]) -> list[float]:
    return Scorer(model_dir).score_messages([message.raw for message in messages])


def weights(model_dir: Path, name: str = artifacts.WEIGHTS_FILE) -> dict[str, np.ndarray]:
    with np.load(model_dir / name, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


def assert_same_weights(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_learn_moves_learned_messages_to_their_side(model_copy: Path, heldout_dir: Path) -> None:
    ham_as_spam = heldout_messages(heldout_dir, "ham", 2)
    spam_as_ham = heldout_messages(heldout_dir, "spam", 1)
    before = scores(model_copy, ham_as_spam + spam_as_ham)

    report = learning.learn(model_copy, spam=ham_as_spam, ham=spam_as_ham)

    after = scores(model_copy, ham_as_spam + spam_as_ham)
    assert report.changed and report.steps > 0
    assert all(new > old for new, old in zip(after[:2], before[:2], strict=True))
    assert after[2] < before[2]
    assert [correction.outcome for correction in report.corrections] == ["added"] * 3
    assert [correction.score_after for correction in report.corrections] == pytest.approx(after)
    if report.all_on_correct_side:
        assert Scorer(model_copy).verdict(after[0]).label == SPAM


def test_learn_keeps_model_keras_in_step_with_the_export(
    model_copy: Path, heldout_dir: Path
) -> None:
    import keras
    import tensorflow as tf

    messages = heldout_messages(heldout_dir, "ham", 1)
    learning.learn(model_copy, spam=messages)
    texts = [message_tokens(message.raw, TrainingConfig().header_policy) for message in messages]
    model = keras.saving.load_model(model_copy / artifacts.KERAS_FILE, safe_mode=True)
    keras_scores = np.asarray(model.predict(tf.constant(texts), verbose=0)).reshape(-1)
    np.testing.assert_allclose(Scorer(model_copy).score_texts(texts), keras_scores, atol=1e-5)


def test_learn_twice_changes_nothing(model_copy: Path, heldout_dir: Path) -> None:
    messages = heldout_messages(heldout_dir, "ham", 1)
    learning.learn(model_copy, spam=messages)
    files = {path.name: path.read_bytes() for path in model_copy.iterdir()}

    report = learning.learn(model_copy, spam=messages)

    assert not report.changed
    assert [correction.outcome for correction in report.corrections] == ["unchanged"]
    assert {path.name: path.read_bytes() for path in model_copy.iterdir()} == files


def test_learn_weights_depend_only_on_the_learned_set(
    model_copy: Path, trained_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    """Learning A, then B, then forgetting B gives the weights of learning A alone."""
    first, second = heldout_messages(heldout_dir, "ham", 2)
    only_first = Path(shutil.copytree(trained_model_dir, tmp_path / "only_first"))
    learning.learn(only_first, spam=[first])

    learning.learn(model_copy, spam=[first])
    learning.learn(model_copy, spam=[second])
    assert learning.learned_count(model_copy) == 2
    learning.learn(model_copy, spam=[second], forget=True)

    assert_same_weights(weights(model_copy), weights(only_first))
    assert (model_copy / artifacts.LEARNED_FILE).read_bytes() == (
        only_first / artifacts.LEARNED_FILE
    ).read_bytes()


def test_forget_everything_gives_back_the_original_scores(
    model_copy: Path, trained_model_dir: Path, heldout_dir: Path
) -> None:
    everything = heldout_messages(heldout_dir, "ham", 12) + heldout_messages(
        heldout_dir, "spam", 12
    )
    original = scores(trained_model_dir, everything)
    spam, ham = everything[:2], everything[12:14]
    learning.learn(model_copy, spam=spam, ham=ham)
    assert scores(model_copy, everything) != original

    report = learning.learn(model_copy, spam=spam, ham=ham, forget=True)

    assert [correction.outcome for correction in report.corrections] == ["forgotten"] * 4
    assert scores(model_copy, everything) == original
    assert_same_weights(weights(model_copy), weights(trained_model_dir))
    assert not (model_copy / artifacts.LEARNED_FILE).exists()
    assert not (model_copy / artifacts.BASE_WEIGHTS_FILE).exists()
    metadata = artifacts.read_metadata(model_copy)
    assert metadata == artifacts.read_metadata(trained_model_dir)


def test_learned_messages_are_kept_in_plain_files(
    model_copy: Path, trained_model_dir: Path, heldout_dir: Path
) -> None:
    spam = heldout_messages(heldout_dir, "ham", 1)
    ham = heldout_messages(heldout_dir, "spam", 1)
    learning.learn(model_copy, spam=spam, ham=ham)

    lines = (model_copy / artifacts.LEARNED_FILE).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    by_digest = {record["sha256"]: record for record in records}
    assert list(by_digest) == sorted(by_digest)
    for label, messages in (("spam", spam), ("ham", ham)):
        for message in messages:
            record = by_digest[hashlib.sha256(message.raw).hexdigest()]
            assert record["label"] == label
            assert record["tokens"] == message_tokens(message.raw, TrainingConfig().header_policy)

    # The base is the trained model's weights, in the layout of weights.npz.
    assert_same_weights(
        weights(model_copy, artifacts.BASE_WEIGHTS_FILE), weights(trained_model_dir)
    )
    described = artifacts.read_metadata(model_copy)["learned"]
    assert described["messages"] == 2 and described["spam"] == 1 and described["ham"] == 1
    assert described["file"] == artifacts.LEARNED_FILE
    assert described["base_weights"] == artifacts.BASE_WEIGHTS_FILE
    # The cut-offs stay where training put them.
    assert Scorer(model_copy).threshold == Scorer(trained_model_dir).threshold


def test_learn_cannot_learn_words_the_model_never_saw(
    model_copy: Path, trained_model_dir: Path, heldout_dir: Path
) -> None:
    unknown = b"Subject: zqxv\n\nzqxvwk plorbtangle frimbulous qwertyzzz\n"
    report = learning.learn(model_copy, spam=[RawMessage("unknown.eml", unknown)] * 2)

    assert [correction.outcome for correction in report.corrections] == ["added"]
    assert report.changed and report.steps == 0 and not report.all_on_correct_side
    assert_same_weights(weights(model_copy), weights(trained_model_dir))
    assert learning.learned_count(model_copy) == 1  # kept for train --resume


def test_learn_with_the_other_label_relabels(model_copy: Path, heldout_dir: Path) -> None:
    message = heldout_messages(heldout_dir, "spam", 1)
    learning.learn(model_copy, ham=message)
    report = learning.learn(model_copy, spam=message)
    assert [correction.outcome for correction in report.corrections] == ["relabelled"]
    assert [entry.label for entry in learning.read_learned(model_copy).values()] == ["spam"]


def test_learn_refuses_one_message_with_both_labels(model_copy: Path, heldout_dir: Path) -> None:
    message = heldout_messages(heldout_dir, "spam", 1)
    with pytest.raises(InputError, match="both as ham and as spam"):
        learning.learn(model_copy, spam=message, ham=message)
    assert not (model_copy / artifacts.LEARNED_FILE).exists()


def test_learn_interrupted_while_writing_leaves_the_old_model(
    model_copy: Path, heldout_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = heldout_messages(heldout_dir, "ham", 2)
    original = scores(model_copy, messages)
    files = {path.name: path.read_bytes() for path in model_copy.iterdir()}

    def fail_midway(directory: Path, export: artifacts.ScoringExport) -> dict[str, object]:
        (directory / artifacts.VOCABULARY_FILE).write_text("half-written\n", encoding="utf-8")
        raise OSError("No space left on device")

    monkeypatch.setattr(artifacts, "write_export", fail_midway)
    # Said in one line, as a ModelError: the folder was not saved.
    with pytest.raises(ModelError, match=r"No space left.*previous model is unchanged"):
        learning.learn(model_copy, spam=messages)

    assert {path.name: path.read_bytes() for path in model_copy.iterdir()} == files
    assert scores(model_copy, messages) == original
    leftovers = [path.name for path in model_copy.parent.iterdir() if ".new-" in path.name]
    assert leftovers == []


def test_learn_lock_is_exclusive_and_beside_the_folder(model_copy: Path) -> None:
    with learning.model_lock(model_copy):
        lock_path = model_copy.parent / f".{model_copy.name}.lock"
        assert lock_path.is_file()
        descriptor = os.open(lock_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)
    assert not any(path.name.endswith(".lock") for path in model_copy.iterdir())
    descriptor = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(descriptor)


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


def test_read_learned_refuses_a_broken_file(model_copy: Path) -> None:
    (model_copy / artifacts.LEARNED_FILE).write_text('{"sha256": "xyz"}\n', encoding="utf-8")
    with pytest.raises(ModelError, match="line 1"):
        learning.read_learned(model_copy)


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
    assert again.stdout.split() == ["unchanged", "spam", lines[0][3], "-", "-"]
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
    learned = (model_copy / artifacts.LEARNED_FILE).read_bytes()

    report, included = learning.train_with_learned(model_copy, [corpus_dir], config=tiny_config)

    assert included == 2
    # 200 in the corpus, one of them replaced by its correction, one new.
    assert report.training_messages + report.validation_messages == 201
    assert report.counts == {"ham": 99, "spam": 100}
    assert (model_copy / artifacts.LEARNED_FILE).read_bytes() == learned
    assert not (model_copy / artifacts.BASE_WEIGHTS_FILE).exists()
    metadata = artifacts.read_metadata(model_copy)
    assert metadata["training_data"]["extra_messages"] == 2
    assert metadata["learned"]["messages"] == 2
    # The next correction starts from the retrained weights.
    before = weights(model_copy)
    learning.learn(model_copy, spam=heldout_messages(heldout_dir, "ham", 2)[1:])
    assert_same_weights(weights(model_copy, artifacts.BASE_WEIGHTS_FILE), before)


def test_train_resume_refuses_other_headers(
    model_copy: Path, corpus_dir: Path, heldout_dir: Path
) -> None:
    learning.learn(model_copy, spam=heldout_messages(heldout_dir, "ham", 1))
    with pytest.raises(ModelError, match="--headers origin"):
        learning.train_with_learned(
            model_copy, [corpus_dir], config=TrainingConfig(header_policy="all")
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


@pytest.fixture(scope="module")
def version_1_model_dir(
    tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, tiny_config: TrainingConfig
) -> Path:
    """A folder as spamcli wrote them in format version 1: an L2-normalised
    bag, described by "l2_normalize" in the export."""
    from keras import layers

    from spamcli import model as model_module
    from spamcli.training import train

    # build_model's own network, with the layer version-1 models had in
    # place of DivideByCount.
    def unit_normalization(name: str) -> layers.Layer:
        return layers.UnitNormalization(name="l2_normalize")

    model_dir = tmp_path_factory.mktemp("version_1") / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_module, "DivideByCount", unit_normalization)
        train(model_dir, sources=[corpus_dir], config=tiny_config)
    metadata = json.loads((model_dir / artifacts.METADATA_FILE).read_text())
    assert metadata["export"].pop("normalization") == "l2"
    metadata["export"]["l2_normalize"] = True
    metadata["format_version"] = 1
    artifacts.write_metadata(model_dir, metadata)
    return model_dir


def test_learn_rewrites_a_version_1_folder_in_the_current_version(
    version_1_model_dir: Path, heldout_dir: Path, tmp_path: Path
) -> None:
    model_dir = Path(shutil.copytree(version_1_model_dir, tmp_path / "model"))
    messages = heldout_messages(heldout_dir, "ham", 12)
    original = scores(model_dir, messages)

    learning.learn(model_dir, spam=messages[:2])

    metadata = artifacts.read_metadata(model_dir)
    assert metadata["format_version"] == artifacts.FORMAT_VERSION
    assert metadata["export"]["normalization"] == "l2"
    assert metadata["learned"]["base_export"]["normalization"] == "l2"
    assert "l2_normalize" not in metadata["export"]
    learned_scores = scores(model_dir, messages)
    assert all(new > old for new, old in zip(learned_scores[:2], original[:2], strict=True))

    learning.learn(model_dir, spam=messages[:2], forget=True)

    assert scores(model_dir, messages) == original
    assert_same_weights(weights(model_dir), weights(version_1_model_dir))
    assert artifacts.read_metadata(model_dir)["export"]["normalization"] == "l2"
