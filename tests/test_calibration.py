"""Learning moves a model's cut-offs with the held-out messages that set
them (calibration.py), the same way in both learners and in a replay."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import generated_mail, spamcli_imports, write_roomy_model

from spamcli import artifacts, calibration, cutoffs
from spamcli.calibration import Calibration
from spamcli.cli import cli
from spamcli.config import MINIMUM_THRESHOLD
from spamcli.corpus import RawMessage
from spamcli.errors import ModelError
from spamcli.features import feature_indices
from spamcli.learning import Learner, learn
from spamcli.online import Network
from spamcli.online_light import sigmoid
from spamcli.replay import replay
from spamcli.tokens import message_tokens


@pytest.fixture(autouse=True)
def no_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny model's 4,096 rows would be compacted after a message or two,
    and a learn that may compact takes the NumPy path."""
    from spamcli import online, online_light

    monkeypatch.setattr(online, "COMPACTION_SHARE", 1.0)
    monkeypatch.setattr(online_light, "COMPACTION_SHARE", 1.0)


def test_train_keeps_the_held_out_messages_nearest_the_cut_off(trained_model_dir: Path) -> None:
    metadata = artifacts.read_metadata(trained_model_dir)
    kept = Calibration.read(trained_model_dir)
    assert kept is not None
    assert metadata["threshold_rule"]["moved_by_learning"] == artifacts.CALIBRATION_FILE
    held_out = metadata["training_data"]["validation_messages"]
    assert len(kept.scores) == len(kept.is_spam) == held_out
    assert 0 < len(kept.positions) <= min(2 * calibration.NEAREST, held_out)
    # The rule, applied again by the standard-library code to what the file
    # keeps, gives train's cut-off: nothing has been learned since.
    network = Network.from_folder(trained_model_dir, metadata)
    threshold, ham_cutoff = kept.cut_offs(network, metadata)
    assert threshold == pytest.approx(metadata["threshold"], abs=1e-6)
    assert ham_cutoff is None
    # The kept messages are the nearest the cut-off in log-odds, and as
    # many ham nearest it.
    distance = [
        abs(calibration.log_odds(score) - calibration.log_odds(threshold)) for score in kept.scores
    ]
    by_distance = sorted(range(held_out), key=distance.__getitem__)
    ham_by_distance = [position for position in by_distance if not kept.is_spam[position]]
    nearest = set(by_distance[: calibration.NEAREST])
    nearest |= set(ham_by_distance[: calibration.NEAREST])
    assert set(kept.positions) == nearest
    assert sum(not kept.is_spam[position] for position in kept.positions) == min(
        calibration.NEAREST, len(ham_by_distance)
    )
    # Their row sums are the kernel's.
    for values, row_sum in zip(kept.buckets, kept.row_sums, strict=True):
        kernel_sum = network.first_kernel[values].sum(axis=0, dtype=np.float64)
        np.testing.assert_allclose(row_sum, kernel_sum, rtol=0, atol=1e-5)


def test_model_cut_offs_applies_the_rules_train_sets_cut_offs_by() -> None:
    generator = np.random.default_rng(3)
    is_spam = generator.random(300) < 0.4
    scores = np.where(is_spam, generator.beta(5, 2, 300), generator.beta(2, 5, 300))
    threshold, ham_cutoff = cutoffs.model_cut_offs(
        is_spam.tolist(), scores.tolist(), 0.001, None, 0.05
    )
    assert threshold == cutoffs.cut_off_for_false_positive_rate(is_spam, scores, 0.001, 0.5)
    assert ham_cutoff == min(
        cutoffs.threshold_for_false_positive_rate(scores[~is_spam], 0.05, 0.0), threshold
    )
    recall_cut_off, _ = cutoffs.model_cut_offs(is_spam.tolist(), scores.tolist(), 0.001, 0.9)
    assert np.mean(scores[is_spam] >= recall_cut_off) >= 0.9


def _made_up_held_out_mail(model_dir: Path) -> None:
    """Held-out mail of our own in MODEL_DIR's calibration.npz: ham that had
    scored 0.7 when held out, spam 0.97, and the cut-off that train's rule
    sets on them."""
    metadata = artifacts.read_metadata(model_dir)
    network = Network.from_folder(model_dir, metadata)
    raws = generated_mail("ham", 8, seed=21) + generated_mail("spam", 8, seed=21)
    buckets = [
        feature_indices(message_tokens(raw, metadata["header_policy"]), network.spec.features)
        for raw in raws
    ]
    is_spam = [number >= 8 for number in range(16)]
    scores = [0.97 if spam else 0.7 for spam in is_spam]
    threshold = cutoffs.model_cut_offs(is_spam, scores, 0.001)[0]
    Calibration.of_held_out(is_spam, scores, buckets, [threshold], network).write(model_dir)
    metadata["threshold"] = threshold
    metadata["threshold_rule"]["threshold_at_training"] = threshold
    artifacts.write_metadata(model_dir, metadata)


def _learn_ham_as_spam(model_dir: Path, count: int, light: bool) -> Learner:
    """COUNT ham-like messages learned as spam."""
    learner = Learner(model_dir, expected_messages=1 if light else None)
    for raw in generated_mail("ham", count, seed=11):
        learner.learn_message(raw, "spam")
    learner.save()
    return learner


@pytest.mark.parametrize("held_out", ["trained", "made up"])
@pytest.mark.parametrize("light", [True, False], ids=["standard library", "NumPy"])
def test_learning_moves_the_stored_cut_off_with_the_kept_messages(
    model_copy: Path, light: bool, held_out: str
) -> None:
    if held_out == "made up":
        _made_up_held_out_mail(model_copy)
    before_metadata = artifacts.read_metadata(model_copy)
    before = before_metadata["threshold"]
    kept_before = Calibration.read(model_copy)
    assert kept_before is not None
    network_before = Network.from_folder(model_copy, before_metadata)
    learner = _learn_ham_as_spam(model_copy, 1, light)
    assert learner._light is light
    metadata = artifacts.read_metadata(model_copy)
    assert metadata["threshold_rule"]["threshold_at_training"] == before
    # Computed here from the folder as written, each kept message scored
    # whole by the NumPy network before and after: its held-out score moved
    # by the log-odds learning added (every ham by at least the mean of the
    # kept ham's), and train's rule applied again.
    network = Network.from_folder(model_copy, metadata)

    def logit(score: float) -> float:
        return float(np.log(score / (1 - score)))

    rises = {
        position: logit(network.score(values)) - logit(network_before.score(values))
        for position, values in zip(kept_before.positions, kept_before.buckets, strict=True)
    }
    ham_rise = np.mean([rise for p, rise in rises.items() if not kept_before.is_spam[p]])
    scores = list(kept_before.scores)
    for position, spam in enumerate(kept_before.is_spam):
        own = rises.get(position, 0.0 if spam else ham_rise)
        rise = own if spam else max(own, ham_rise)
        scores[position] = 1 / (1 + np.exp(-(logit(scores[position]) + rise)))
    expected = cutoffs.cut_off_for_false_positive_rate(kept_before.is_spam, scores, 0.001, 0.5)
    # Never below train's cut-off.
    assert metadata["threshold"] == pytest.approx(max(expected, before), abs=1e-6)
    if held_out == "made up":
        # Ham just below the cut-off, lifted by spam that looks like them.
        assert metadata["threshold"] > before + 0.01
    # The row sums written are the kernel's.
    kept = Calibration.read(model_copy)
    assert kept is not None
    for values, row_sum in zip(kept.buckets, kept.row_sums, strict=True):
        kernel_sum = network.first_kernel[values].sum(axis=0, dtype=np.float64)
        np.testing.assert_allclose(row_sum, kernel_sum, rtol=0, atol=1e-5)


def test_both_learners_move_the_cut_off_alike(model_copy: Path, tmp_path: Path) -> None:
    other = Path(shutil.copytree(model_copy, tmp_path / "other"))
    _learn_ham_as_spam(model_copy, 1, light=True)
    _learn_ham_as_spam(other, 1, light=False)
    light, numpy = artifacts.read_metadata(model_copy), artifacts.read_metadata(other)
    assert light["threshold"] == pytest.approx(numpy["threshold"], abs=1e-6)


def test_a_folder_without_calibration_keeps_its_cut_off(model_copy: Path) -> None:
    (model_copy / artifacts.CALIBRATION_FILE).unlink()
    before = artifacts.read_metadata(model_copy)["threshold"]
    for light in (True, False):
        _learn_ham_as_spam(model_copy, 1, light)
        assert artifacts.read_metadata(model_copy)["threshold"] == before
    assert not (model_copy / artifacts.CALIBRATION_FILE).exists()


def _damage(path: Path, kind: str) -> None:
    if kind == "garbage":
        path.write_bytes(b"PK\x03\x04 not an archive")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "object array":
        path.unlink()
        with open(path, "wb") as handle:
            np.savez(handle, **{"held_out.scores": np.array([{}], dtype=object)})
    elif kind == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif kind == "link to a good copy":
        path.rename(path.with_name("elsewhere.npz"))
        path.symlink_to(path.with_name("elsewhere.npz"))
    elif kind == "dangling link":
        path.unlink()
        path.symlink_to(path.with_name("nowhere.npz"))
    else:
        path.unlink()
        path.mkdir()


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "truncated",
        "object array",
        "fifo",
        "folder",
        "link to a good copy",
        "dangling link",
    ],
)
def test_a_damaged_calibration_file_stops_learn_and_changes_nothing(
    model_copy: Path, runner: CliRunner, message_file: Any, kind: str
) -> None:
    _damage(model_copy / artifacts.CALIBRATION_FILE, kind)
    before = {path.name: _contents(path) for path in model_copy.iterdir()}
    with pytest.raises(ModelError, match=r"calibration\.npz"):
        learn(model_copy, spam=[RawMessage("m", generated_mail("ham", 1, seed=5)[0])])
    message = message_file("m.eml", generated_mail("ham", 1, seed=5)[0])
    result = runner.invoke(cli, ["learn", "--spam", str(message), "-m", str(model_copy)])
    assert result.exit_code != 0
    assert "calibration.npz" in result.output
    assert "Traceback" not in result.output
    assert {path.name: _contents(path) for path in model_copy.iterdir()} == before


def _contents(path: Path) -> bytes | str:
    if path.is_symlink():
        return f"a link to {os.readlink(path)}"
    return path.read_bytes() if path.is_file() else "not a file"


@pytest.mark.parametrize("field", ["target_recall", "unsure_rate", "target_false_positive_rate"])
def test_a_rule_that_is_no_share_stops_learn(
    model_copy: Path, runner: CliRunner, message_file: Any, field: str
) -> None:
    metadata = artifacts.read_metadata(model_copy)
    metadata["hyperparameters"][field] = "a lot"
    artifacts.write_metadata(model_copy, metadata)
    message = message_file("m.eml", generated_mail("ham", 1, seed=5)[0])
    result = runner.invoke(cli, ["learn", "--spam", str(message), "-m", str(model_copy)])
    assert result.exit_code != 0
    assert "is not a share between 0 and 1" in result.output
    assert "Traceback" not in result.output
    assert artifacts.read_metadata(model_copy) == metadata


def test_a_calibration_file_with_arrays_out_of_range_is_refused(model_copy: Path) -> None:
    kept = Calibration.read(model_copy)
    assert kept is not None
    positions = [len(kept.scores) + 5, *kept.positions[1:]]
    Calibration(
        kept.is_spam, kept.scores, positions, kept.buckets, kept.reference, kept.row_sums
    ).write(model_copy)
    with pytest.raises(ModelError, match="out of range"):
        Calibration.read(model_copy)


def test_replay_gives_each_verdict_at_the_cut_off_in_force(
    model_copy: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    _made_up_held_out_mail(model_copy)
    report = replay([corpus_dir], model_dir=model_copy)
    cut_offs = [message.cut_off for message in report.messages]
    assert cut_offs[0] == report.threshold == artifacts.read_metadata(model_copy)["threshold"]
    assert len(set(cut_offs)) > 1
    for message in report.messages:
        assert (message.verdict == "spam") == (message.score >= message.cut_off)
    moving = report.metrics["moving_cut_off"]
    flagged_ham = sum(m.label == "ham" and m.verdict == "spam" for m in report.messages)
    assert moving["false_positives"] == flagged_ham
    assert moving["first_threshold"] == report.threshold
    # The folder replayed from is never written.
    assert artifacts.read_metadata(model_copy)["threshold"] == report.threshold

    (model_copy / artifacts.CALIBRATION_FILE).unlink()
    fixed = replay([corpus_dir], model_dir=model_copy)
    assert {message.cut_off for message in fixed.messages} == {fixed.threshold}
    assert "moving_cut_off" not in fixed.metrics


def test_a_learn_of_one_message_into_a_calibrated_model_imports_no_numpy(
    tmp_path: Path, heldout_dir: Path
) -> None:
    # With the kept messages a train would write.
    model, network = write_roomy_model(tmp_path / "model", "leaky_relu")
    generator = np.random.default_rng(1)
    buckets = [sorted(generator.choice(2**16, 60, replace=False).tolist()) for _ in range(30)]
    is_spam = [number % 2 == 1 for number in range(30)]
    scores = [network.score(values) for values in buckets]
    threshold = cutoffs.model_cut_offs(is_spam, scores, 0.001)[0]
    Calibration.of_held_out(is_spam, scores, buckets, [threshold], network).write(model)
    metadata = artifacts.read_metadata(model)
    metadata["threshold"] = threshold
    artifacts.write_metadata(model, metadata)

    message = sorted((heldout_dir / "spam").iterdir())[0]
    lines, errors = spamcli_imports(["learn", "--ham", str(message), "-m", str(model)], ["numpy"])
    assert lines[-2:] == ["exit 0", "False"], errors
    written = json.loads((model / artifacts.METADATA_FILE).read_text())
    assert written["learned"]["ham"] == 1
    assert Calibration.read(model) is not None


def test_only_the_false_positive_rule_keeps_train_s_cut_off_as_a_floor(
    trained_model_dir: Path,
) -> None:
    metadata = artifacts.read_metadata(trained_model_dir)
    kept = Calibration.read(trained_model_dir)
    assert kept is not None
    network = Network.from_folder(trained_model_dir, metadata)
    high = {
        **metadata,
        "threshold_rule": {**metadata["threshold_rule"], "threshold_at_training": 0.999},
    }
    assert kept.cut_offs(network, high)[0] == 0.999
    # A recall asked for is kept whichever way the held-out spam moved.
    by_recall = {**high, "hyperparameters": {**metadata["hyperparameters"], "target_recall": 0.9}}
    spam_scores = [score for score, spam in zip(kept.scores, kept.is_spam, strict=True) if spam]
    assert kept.cut_offs(network, by_recall)[0] == pytest.approx(
        cutoffs.threshold_for_recall(spam_scores, 0.9), abs=1e-6
    )


class _RowSumIsLogOdds:
    """A network whose log-odds of a message are its row sum's first value."""

    def log_odds_of_row_sum(self, row_sum: list[float], count: int) -> float:
        return row_sum[0]


def test_every_held_out_ham_moves_at_least_as_far_as_the_kept_ham_on_average() -> None:
    # Held out: ham at 0.8 (kept, learning lifted it by 0.1 in log-odds),
    # 0.6 (kept, lifted by 1.1) and 0.3 (not kept); spam at 0.95 and 0.99
    # (kept, not moved). Each log-odds starts at 0, as the reference.
    is_spam = [False, False, False, True, True]
    kept = Calibration(
        is_spam,
        [0.8, 0.6, 0.3, 0.95, 0.99],
        positions=[0, 1, 3, 4],
        buckets=[[1], [2], [3], [4]],
        reference=[0.0] * 4,
        row_sums=[[0.1], [1.1], [0.0], [0.0]],
    )
    metadata = {
        "hyperparameters": {"target_false_positive_rate": 0.001},
        "threshold_rule": {"threshold_at_training": 0.5},
    }
    threshold, _ = kept.cut_offs(_RowSumIsLogOdds(), metadata)
    # The mean rise of the kept ham, 0.6, lifts the 0.8 ham more than its
    # own 0.1 does, and lifts the ham that was not kept as well; the 0.6 ham
    # moves by its own 1.1.
    moved = [
        sigmoid(calibration.log_odds(score) + rise)
        for score, rise in zip(kept.scores, [0.6, 1.1, 0.6, 0.0, 0.0], strict=True)
    ]
    assert threshold == cutoffs.cut_off_for_false_positive_rate(
        is_spam, moved, 0.001, MINIMUM_THRESHOLD
    )
    assert threshold > sigmoid(calibration.log_odds(0.8) + 0.6)
