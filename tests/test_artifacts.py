"""Tests of spamcli.artifacts: the model folder, written atomically and read
with suspicion.

Most tests use the hand-made model of conftest.py (no TensorFlow); the last
ones check that the folder a real training writes describes itself.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
from array import array as uint_array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_synthetic_model

from spamcli import artifacts
from spamcli.artifacts import (
    CALIBRATION_FILE,
    CHANGED_ROWS,
    FIRST_KERNEL,
    FORMAT_VERSION,
    KERNEL_FILE,
    METADATA_FILE,
    REQUIRED_FILES,
    WEIGHTS_FILE,
    LayerSpec,
    NetworkSpec,
    open_weights,
    read_metadata,
    write_model_dir,
)
from spamcli.config import LearningRule, TrainingConfig
from spamcli.errors import ModelError
from spamcli.features import FeatureSpec, feature_indices
from spamcli.online import Network
from spamcli.scoring import Scorer


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under FOLDER (relative name → bytes), to compare a folder before and after."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def writer(files: dict[str, bytes]) -> Callable[[Path], None]:
    """A write_contents callback that writes FILES into the staging folder."""

    def write_contents(directory: Path) -> None:
        for name, data in files.items():
            (directory / name).write_bytes(data)

    return write_contents


def edit_metadata(model_dir: Path, **changes: Any) -> None:
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata.update(changes)
    path.write_text(json.dumps(metadata), encoding="utf-8")


OLD_MODEL = {METADATA_FILE: b'{"format_version": 3, "which": "old"}', WEIGHTS_FILE: b"old"}
NEW_MODEL = {METADATA_FILE: b'{"format_version": 3, "which": "new"}', WEIGHTS_FILE: b"new"}


# --------------------------------------------------------------------------
# write_model_dir


def test_artifacts_write_model_dir_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "models" / "mine"

    written = write_model_dir(target, writer(NEW_MODEL))

    assert written == target.absolute()
    assert listing(target) == NEW_MODEL
    assert [path.name for path in target.parent.iterdir()] == ["mine"]
    # Not the private 0700 of a temporary folder: mail filters running as
    # other users read the model.
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask


def test_artifacts_write_model_dir_replaces_an_existing_model(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_model_dir(target, writer(OLD_MODEL))

    write_model_dir(target, writer({METADATA_FILE: b"{}", "extra.txt": b"x"}))

    # Replaced as a whole: nothing of the old folder survives beside the new files.
    assert listing(target) == {METADATA_FILE: b"{}", "extra.txt": b"x"}
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_artifacts_write_model_dir_replaces_without_renameat2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where there is no renameat2 (no libc found), the fallback renames twice.
    target = tmp_path / "model"
    write_model_dir(target, writer(OLD_MODEL))
    import ctypes.util

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)

    write_model_dir(target, writer(NEW_MODEL))

    assert listing(target) == NEW_MODEL
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_artifacts_write_model_dir_fills_an_empty_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()

    write_model_dir(target, writer(NEW_MODEL))

    assert listing(target) == NEW_MODEL


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_artifacts_write_model_dir_failure_keeps_the_previous_model(
    tmp_path: Path, error: BaseException
) -> None:
    target = tmp_path / "model"
    write_model_dir(target, writer(OLD_MODEL))
    before = listing(target)

    def fail_midway(directory: Path) -> None:
        (directory / METADATA_FILE).write_bytes(b'{"which": "half written"}')
        raise error

    with pytest.raises(type(error)):
        write_model_dir(target, fail_midway)

    assert listing(target) == before
    assert [path.name for path in tmp_path.iterdir()] == ["model"]  # no staging folder left


def abandoned_staging(target: Path, suffix: str, age_seconds: float) -> Path:
    """A half-written staging folder beside TARGET, as a killed writer leaves it."""
    staging = target.parent / f".{target.name}.new-{suffix}"
    staging.mkdir()
    (staging / METADATA_FILE).write_bytes(b'{"which": "half written"}')
    old = os.stat(staging).st_mtime - age_seconds
    os.utime(staging, (old, old))
    return staging


def test_artifacts_write_model_dir_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_model_dir(target, writer(OLD_MODEL))
    abandoned = abandoned_staging(target, "killed1", artifacts.ABANDONED_STAGING_SECONDS + 60)
    # Another model's staging folder and a file of the same pattern are not this writer's.
    other = abandoned_staging(
        tmp_path / "other", "killed2", artifacts.ABANDONED_STAGING_SECONDS + 60
    )
    not_a_folder = tmp_path / ".model.new-file"
    not_a_folder.write_bytes(b"kept")

    write_model_dir(target, writer(NEW_MODEL))

    assert listing(target) == NEW_MODEL
    assert not abandoned.exists()
    assert other.is_dir() and not_a_folder.read_bytes() == b"kept"


def test_artifacts_write_model_dir_keeps_a_live_or_recent_writers_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_model_dir(target, writer(OLD_MODEL))
    # Old, but locked: a writer that is still filling it.
    locked = abandoned_staging(target, "live", artifacts.ABANDONED_STAGING_SECONDS + 60)
    # Unlocked but new: a writer between creating and locking it.
    recent = abandoned_staging(target, "recent", 1)
    lock = artifacts._lock_folder(locked, wait=False)
    assert lock is not None
    try:
        write_model_dir(target, writer(NEW_MODEL))
        assert locked.is_dir() and recent.is_dir()
        assert artifacts.remove_abandoned_staging(target) == []
    finally:
        os.close(lock)
    assert listing(target) == NEW_MODEL
    old = os.stat(recent).st_mtime - artifacts.ABANDONED_STAGING_SECONDS - 60
    os.utime(recent, (old, old))
    assert sorted(artifacts.remove_abandoned_staging(target)) == sorted([locked, recent])
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_artifacts_write_model_dir_failure_without_previous_model_leaves_nothing(
    tmp_path: Path,
) -> None:
    def fail_midway(directory: Path) -> None:
        (directory / "weights.npz").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    # An OSError becomes a one-line ModelError that says what was kept.
    with pytest.raises(ModelError, match="No space left on device; nothing was written"):
        write_model_dir(tmp_path / "model", fail_midway)

    assert list(tmp_path.iterdir()) == []


def test_artifacts_write_model_dir_refuses_to_replace_another_folder(tmp_path: Path) -> None:
    target = tmp_path / "documents"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work\n")

    with pytest.raises(ModelError, match="not a spamcli model folder"):
        write_model_dir(target, writer(NEW_MODEL))

    assert listing(target) == {"thesis.tex": b"years of work\n"}
    assert [path.name for path in tmp_path.iterdir()] == ["documents"]


def test_artifacts_write_model_dir_refuses_to_replace_a_file(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.write_text("not a folder\n")

    with pytest.raises(ModelError):
        write_model_dir(target, writer(NEW_MODEL))

    assert target.read_text() == "not a folder\n"
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


# --------------------------------------------------------------------------
# Reading: metadata


def test_artifacts_read_metadata_of_a_complete_folder(synthetic_model_dir: Path) -> None:
    metadata = read_metadata(synthetic_model_dir)

    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["header_policy"] == "content"
    assert sorted(path.name for path in synthetic_model_dir.iterdir()) == sorted(REQUIRED_FILES)


def break_missing_folder(model_dir: Path) -> None:
    shutil.rmtree(model_dir)


def break_missing_metadata(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).unlink()


def break_bad_json(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_text('{"format_version": 3,', encoding="utf-8")


def break_not_an_object(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_text("[1, 2, 3]", encoding="utf-8")


def break_not_utf8(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_bytes(b'{"format_version": 3, "note": "\xff"}')


def break_unknown_version(model_dir: Path) -> None:
    edit_metadata(model_dir, format_version=999)


def break_no_version(model_dir: Path) -> None:
    metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    del metadata["format_version"]
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")


def break_version_1(model_dir: Path) -> None:
    edit_metadata(model_dir, format_version=1)


def break_version_2(model_dir: Path) -> None:
    edit_metadata(model_dir, format_version=2)


def break_missing_weights(model_dir: Path) -> None:
    (model_dir / WEIGHTS_FILE).unlink()


def break_missing_kernel(model_dir: Path) -> None:
    (model_dir / KERNEL_FILE).unlink()


def break_kernel_is_a_folder(model_dir: Path) -> None:
    (model_dir / KERNEL_FILE).unlink()
    (model_dir / KERNEL_FILE).mkdir()


def break_weights_are_a_link(model_dir: Path) -> None:
    # A link may lead out of the folder: never followed, even to a valid file.
    outside = model_dir.parent / "elsewhere.npz"
    (model_dir / WEIGHTS_FILE).rename(outside)
    (model_dir / WEIGHTS_FILE).symlink_to(outside)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (break_missing_folder, "no model folder at"),
        (break_missing_metadata, "metadata.json is missing"),
        (break_bad_json, "cannot read"),
        (break_not_an_object, "not a JSON object"),
        (break_not_utf8, "cannot read"),
        (break_unknown_version, "format version 999"),
        (break_no_version, "format version None"),
        (break_version_1, "format version 1, a vocabulary fixed at training time"),
        (break_version_2, "format version 2, a vocabulary fixed at training time"),
        (break_missing_weights, "weights.npz is missing"),
        (break_missing_kernel, "kernel.npz is missing"),
        (break_kernel_is_a_folder, "kernel.npz is not a regular file (a folder)"),
        (break_weights_are_a_link, "weights.npz is not a regular file (a symbolic link)"),
    ],
)
def test_artifacts_damaged_folder_is_a_model_error(
    synthetic_model_dir: Path, damage: Callable[[Path], None], message: str
) -> None:
    damage(synthetic_model_dir)

    with pytest.raises(ModelError, match=re.escape(message)):
        read_metadata(synthetic_model_dir)
    # The scorer reads through the same checks: a ModelError, never a KeyError.
    with pytest.raises(ModelError, match=re.escape(message)) as raised:
        Scorer(synthetic_model_dir)
    assert "\n" not in str(raised.value)


def test_artifacts_earlier_versions_say_to_train_a_new_model(synthetic_model_dir: Path) -> None:
    for version in (1, 2):
        edit_metadata(synthetic_model_dir, format_version=version)

        with pytest.raises(ModelError) as raised:
            read_metadata(synthetic_model_dir)

        assert "train a new model with spamcli train" in str(raised.value)


def drop_threshold(metadata: dict[str, Any]) -> None:
    del metadata["threshold"]


def drop_header_policy(metadata: dict[str, Any]) -> None:
    del metadata["header_policy"]


def word_threshold(metadata: dict[str, Any]) -> None:
    metadata["threshold"] = "high"


def unknown_header_policy(metadata: dict[str, Any]) -> None:
    metadata["header_policy"] = "bogus"


def layer_spec_not_an_object(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][0] = "dense_0"


def features_not_an_object(metadata: dict[str, Any]) -> None:
    metadata["features"] = 20


def drop_learning(metadata: dict[str, Any]) -> None:
    del metadata["learning"]


def word_learning_rate(metadata: dict[str, Any]) -> None:
    metadata["learning"]["learning_rate"] = "fast"


@pytest.mark.parametrize(
    "damage",
    [
        drop_threshold,
        drop_header_policy,
        word_threshold,
        unknown_header_policy,
        layer_spec_not_an_object,
        features_not_an_object,
        drop_learning,
        word_learning_rate,
    ],
)
def test_artifacts_malformed_metadata_fields_are_model_errors(
    synthetic_model_dir: Path, damage: Callable[[dict[str, Any]], None]
) -> None:
    metadata = read_metadata(synthetic_model_dir)
    damage(metadata)
    artifacts.write_metadata(synthetic_model_dir, metadata)

    with pytest.raises(ModelError):
        Scorer(synthetic_model_dir)


def test_artifacts_unknown_version_says_what_this_spamcli_reads(synthetic_model_dir: Path) -> None:
    edit_metadata(synthetic_model_dir, format_version=999)

    with pytest.raises(ModelError) as raised:
        read_metadata(synthetic_model_dir)

    assert f"reads version {FORMAT_VERSION}" in str(raised.value)
    assert "\n" not in str(raised.value)


# --------------------------------------------------------------------------
# The network and the optimizer in metadata.json


SPEC = NetworkSpec(
    FeatureSpec(bits=10, max_tokens=300),
    [
        LayerSpec("dense_0", 8, "relu"),
        LayerSpec("dense_1", 4, "relu"),
        LayerSpec("dense_2", 1, "sigmoid"),
    ],
)


def test_artifacts_network_and_learning_metadata_round_trip(tmp_path: Path) -> None:
    rule = LearningRule(learning_rate=0.05, initial_accumulator=0.1, label_smoothing=0.2)
    features, network = artifacts.network_metadata(SPEC)
    metadata = {
        "features": features,
        "network": network,
        "learning": artifacts.learning_metadata(rule),
    }

    assert artifacts.network_spec(tmp_path, metadata) == SPEC
    assert artifacts.learning_rule(tmp_path, metadata) == rule
    # Each layer says what it reads, so the metadata describes the shapes on its own.
    assert [layer["inputs"] for layer in network["layers"]] == [1024, 8, 4]
    assert SPEC.shape(FIRST_KERNEL) == (1024, 8)
    assert SPEC.shape("dense_2.kernel") == (4, 1)
    assert SPEC.variable_names() == [
        "dense_0.bias",
        "dense_1.kernel",
        "dense_1.bias",
        "dense_2.kernel",
        "dense_2.bias",
    ]


def relu_output(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][-1]["activation"] = "relu"


def two_output_units(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][-1]["units"] = 2


def sigmoid_hidden_layer(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][0]["activation"] = "sigmoid"


def no_hidden_layer(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"] = metadata["network"]["layers"][1:]


def tanh_layer(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][0]["activation"] = "tanh"


def bits_out_of_range(metadata: dict[str, Any]) -> None:
    metadata["features"]["bits"] = 31


def max_tokens_true(metadata: dict[str, Any]) -> None:
    # true is an int in Python; as max_tokens it would read one token.
    metadata["features"]["max_tokens"] = True


def negative_learning_rate(metadata: dict[str, Any]) -> None:
    metadata["learning"]["learning_rate"] = -0.1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (relu_output, "does not end in one sigmoid unit"),
        (two_output_units, "does not end in one sigmoid unit"),
        (sigmoid_hidden_layer, "hidden layers must be ReLU or leaky ReLU layers"),
        (no_hidden_layer, "hidden layers must be ReLU or leaky ReLU layers"),
        (tanh_layer, "layer 0 of the network is not valid"),
        (bits_out_of_range, "bits must be between 1 and 30"),
        (max_tokens_true, "describes no valid input"),
        (negative_learning_rate, "learning rate must be above 0"),
    ],
)
def test_artifacts_network_and_optimizer_are_checked(
    synthetic_model_dir: Path, damage: Callable[[dict[str, Any]], None], message: str
) -> None:
    metadata = read_metadata(synthetic_model_dir)
    damage(metadata)
    artifacts.write_metadata(synthetic_model_dir, metadata)

    with pytest.raises(ModelError, match=re.escape(message)):
        read_metadata(synthetic_model_dir)
    with pytest.raises(ModelError, match=re.escape(message)):
        Scorer(synthetic_model_dir)


# --------------------------------------------------------------------------
# Reading: the weights


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def rewrite_npz(path: Path, **replacements: np.ndarray) -> None:
    arrays = npz_arrays(path)
    arrays.update(replacements)
    with open(path, "wb") as npz_file:
        np.savez(npz_file, **arrays)  # type: ignore[arg-type]


def learned_folders(tmp_path: Path, network: Any) -> tuple[Path, Path]:
    """A hand-made folder, and one that learned a message after it, as
    `spamcli learn` writes it: kernel.npz shared, changed rows in weights.npz."""
    original = write_synthetic_model(tmp_path / "original", network)
    network.kernel_path = original / KERNEL_FILE
    network.learn(feature_indices("meeting the cash team", network.spec.features), 1.0)
    learned = write_synthetic_model(tmp_path / "learned", network)
    return original, learned


def test_artifacts_weights_round_trip(tmp_path: Path, synthetic_network: Any) -> None:
    original, learned = learned_folders(tmp_path, synthetic_network)
    metadata = read_metadata(learned)

    weights = open_weights(learned, metadata)
    loaded = Network.from_folder(learned, metadata)

    # kernel.npz is the original's, shared; the learned rows are in weights.npz.
    assert (learned / KERNEL_FILE).stat().st_ino == (original / KERNEL_FILE).stat().st_ino
    assert sorted(weights.changed_rows) == sorted(synthetic_network.changed)
    assert metadata["weights"]["changed_rows"] == len(synthetic_network.changed)
    for index in (*synthetic_network.changed, 0, synthetic_network.spec.features.buckets - 1):
        np.testing.assert_array_equal(
            weights.first_row(index), synthetic_network.first_kernel[index]
        )
    for index, layer in enumerate(synthetic_network.layers):
        np.testing.assert_array_equal(loaded.layers[index].kernel, layer.kernel)
        np.testing.assert_array_equal(loaded.layers[index].bias, layer.bias)
        assert loaded.layers[index].activation == layer.activation
        if index:
            np.testing.assert_array_equal(weights.values(f"dense_{index}.kernel"), layer.kernel)
        np.testing.assert_array_equal(weights.values(f"dense_{index}.bias")[0], layer.bias)
    assert loaded.accumulators.keys() == synthetic_network.accumulators.keys()
    for name, accumulator in synthetic_network.accumulators.items():
        np.testing.assert_array_equal(loaded.accumulators[name], accumulator, err_msg=name)
    assert loaded.messages_learned == synthetic_network.messages_learned == 1


def test_artifacts_npz_files_hold_only_float32_and_row_numbers(synthetic_model_dir: Path) -> None:
    for name in (KERNEL_FILE, WEIGHTS_FILE):
        weights_file = artifacts.WeightsFile(synthetic_model_dir / name)
        arrays = npz_arrays(synthetic_model_dir / name)

        assert sorted(weights_file.names()) == sorted(arrays)
        for array_name, array in arrays.items():
            expected = np.uint32 if array_name == CHANGED_ROWS else np.float32
            assert array.dtype == expected, array_name
            assert weights_file.shape(array_name) == array.shape
    assert npz_arrays(synthetic_model_dir / KERNEL_FILE)[FIRST_KERNEL].shape == (256, 3)


def test_artifacts_wrong_kernel_shape_is_a_model_error(synthetic_model_dir: Path) -> None:
    rewrite_npz(synthetic_model_dir / KERNEL_FILE, **{FIRST_KERNEL: np.zeros((257, 3), np.float32)})

    with pytest.raises(ModelError, match="does not hold the 256 x 3 first kernel"):
        Scorer(synthetic_model_dir)


def test_artifacts_wrong_bias_shape_is_a_model_error(synthetic_model_dir: Path) -> None:
    rewrite_npz(synthetic_model_dir / WEIGHTS_FILE, **{"dense_1.bias": np.zeros(2, np.float32)})

    with pytest.raises(ModelError, match=re.escape("has no dense_1.bias of the right shape")):
        Scorer(synthetic_model_dir)


def test_artifacts_changed_rows_out_of_order_are_a_model_error(
    tmp_path: Path, synthetic_network: Any
) -> None:
    _original, learned = learned_folders(tmp_path, synthetic_network)
    rows = npz_arrays(learned / WEIGHTS_FILE)[CHANGED_ROWS]
    assert len(rows) >= 2
    buckets = synthetic_network.spec.features.buckets

    for damaged in (rows[::-1], np.append(rows[:-1], np.uint32(buckets))):
        rewrite_npz(learned / WEIGHTS_FILE, **{CHANGED_ROWS: damaged.astype(np.uint32)})

        with pytest.raises(ModelError, match="changed rows are not in order"):
            Scorer(learned)


@pytest.mark.parametrize("numpy_loaded", [True, False], ids=["numpy", "standard library"])
def test_artifacts_order_check_agrees_with_and_without_numpy(
    monkeypatch: pytest.MonkeyPatch, numpy_loaded: bool
) -> None:
    # The check takes NumPy's way only where NumPy is imported already.
    if not numpy_loaded:
        monkeypatch.delitem(sys.modules, "numpy")

    def rows(*values: int) -> memoryview:
        return memoryview(uint_array("I", values).tobytes()).cast("I")

    assert artifacts._increasing(rows(1, 2, 5, 2**32 - 1))
    assert artifacts._increasing(rows(7))
    assert not artifacts._increasing(rows(1, 1, 2))
    assert not artifacts._increasing(rows(1, 3, 2))
    assert not artifacts._increasing(rows(2**32 - 1, 0))


def test_artifacts_changed_rows_must_be_row_numbers(tmp_path: Path, synthetic_network: Any) -> None:
    _original, learned = learned_folders(tmp_path, synthetic_network)
    rows = npz_arrays(learned / WEIGHTS_FILE)[CHANGED_ROWS]
    rewrite_npz(learned / WEIGHTS_FILE, **{CHANGED_ROWS: rows.astype(np.float32)})

    with pytest.raises(ModelError, match="has no valid changed rows"):
        Scorer(learned)


def test_artifacts_weights_that_are_no_npz_are_a_model_error(synthetic_model_dir: Path) -> None:
    (synthetic_model_dir / WEIGHTS_FILE).write_bytes(b"this is not a zip file")

    with pytest.raises(ModelError, match=f"cannot read {WEIGHTS_FILE} in"):
        Scorer(synthetic_model_dir)


class _Marker:
    """Unpickling this creates a folder: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


@pytest.mark.parametrize(
    ("file_name", "array_name"), [(KERNEL_FILE, FIRST_KERNEL), (WEIGHTS_FILE, "dense_1.kernel")]
)
def test_artifacts_object_array_is_refused_not_unpickled(
    synthetic_model_dir: Path, tmp_path: Path, file_name: str, array_name: str
) -> None:
    marker = tmp_path / "unpickled"
    payload = np.empty(1, dtype=object)
    payload[0] = _Marker(marker)
    arrays = npz_arrays(synthetic_model_dir / file_name)
    arrays[array_name] = payload
    with open(synthetic_model_dir / file_name, "wb") as npz_file:
        np.savez(npz_file, **arrays)  # type: ignore[arg-type]

    with pytest.raises(ModelError, match="not a float32 or uint32 array"):
        Scorer(synthetic_model_dir)
    with pytest.raises(ModelError, match="not a float32 or uint32 array"):
        Network.from_folder(synthetic_model_dir, read_metadata(synthetic_model_dir))

    assert not marker.exists()


def test_artifacts_numpy_never_loads_with_pickles_allowed(
    synthetic_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    real_load = np.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)

    # Scoring a few messages, a batch, and opening the folder for learning.
    scorer = Scorer(synthetic_model_dir)
    scorer.score_text_light("cash prize")
    scorer.score_texts(["cash prize"] * 20)
    Network.from_folder(synthetic_model_dir, scorer.metadata)

    # The weights are read by WeightsFile (headers parsed as literals, arrays
    # mapped); any NumPy load must refuse pickles.
    assert all(call.get("allow_pickle") is False for call in calls)


# --------------------------------------------------------------------------
# A trained model's folder


def test_artifacts_trained_folder_describes_itself(
    trained_model_dir: Path, tiny_config: TrainingConfig
) -> None:
    metadata = read_metadata(trained_model_dir)

    assert sorted(path.name for path in trained_model_dir.iterdir()) == sorted(
        [*REQUIRED_FILES, CALIBRATION_FILE]
    )
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["header_policy"] == tiny_config.header_policy
    assert metadata["hyperparameters"]["bits"] == tiny_config.bits
    assert metadata["hyperparameters"]["hidden_units"] == list(tiny_config.hidden_units)
    assert metadata["hyperparameters"]["seed"] == tiny_config.seed
    assert metadata["features"]["bits"] == tiny_config.bits
    assert metadata["features"]["max_tokens"] == tiny_config.max_tokens
    assert 0.5 <= metadata["threshold"] <= 1.0
    assert metadata["training_data"]["counts"] == {"ham": 100, "spam": 100}
    assert len(metadata["training_data"]["fingerprint"]) == 64
    assert set(metadata["versions"]) >= {"spamcli", "tensorflow", "keras", "python"}
    assert metadata["training"]["export_max_difference"] <= 1e-5
    layers = metadata["network"]["layers"]
    assert [layer["activation"] for layer in layers] == ["leaky_relu", "leaky_relu", "sigmoid"]
    assert [layer["units"] for layer in layers] == [*tiny_config.hidden_units, 1]
    assert [layer["inputs"] for layer in layers] == [2**tiny_config.bits, *tiny_config.hidden_units]
    assert artifacts.learning_rule(trained_model_dir, metadata) == tiny_config.learning_rule()
    # Training wrote the kernel whole: nothing has changed since.
    assert metadata["weights"]["changed_rows"] == 0
    # Counted from training on: replaying the held-out messages is training's own.
    assert metadata["weights"]["messages_learned"] == 0
    kernel = npz_arrays(trained_model_dir / KERNEL_FILE)[FIRST_KERNEL]
    assert kernel.shape == (2**tiny_config.bits, tiny_config.hidden_units[0])
    assert kernel.dtype == np.float32
