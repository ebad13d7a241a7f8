"""Tests of spamcli.artifacts: the model folder, written atomically and read
with suspicion.

Most tests use the hand-made model of conftest.py (no TensorFlow); the last
ones check that the folder a real training writes describes itself.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spamcli import artifacts
from spamcli.artifacts import (
    FORMAT_VERSION,
    METADATA_FILE,
    OPTIONAL_FILES,
    REQUIRED_FILES,
    WEIGHTS_FILE,
    read_export,
    read_metadata,
    write_export,
    write_model_dir,
)
from spamcli.config import TrainingConfig
from spamcli.errors import ModelError
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


OLD_MODEL = {METADATA_FILE: b'{"format_version": 1, "which": "old"}', "weights.npz": b"old"}
NEW_MODEL = {METADATA_FILE: b'{"format_version": 1, "which": "new"}', "weights.npz": b"new"}


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


def break_missing_folder(model_dir: Path) -> None:
    shutil.rmtree(model_dir)


def break_missing_metadata(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).unlink()


def break_bad_json(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_text('{"format_version": 1,', encoding="utf-8")


def break_not_an_object(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_text("[1, 2, 3]", encoding="utf-8")


def break_not_utf8(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_bytes(b'{"format_version": 1, "note": "\xff"}')


def break_unknown_version(model_dir: Path) -> None:
    edit_metadata(model_dir, format_version=999)


def break_no_version(model_dir: Path) -> None:
    metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    del metadata["format_version"]
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")


def break_missing_weights(model_dir: Path) -> None:
    (model_dir / WEIGHTS_FILE).unlink()


def break_missing_vocabulary(model_dir: Path) -> None:
    (model_dir / artifacts.VOCABULARY_FILE).unlink()


def break_missing_keras_file(model_dir: Path) -> None:
    (model_dir / artifacts.KERAS_FILE).unlink()


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
        (break_missing_weights, "weights.npz is missing"),
        (break_missing_vocabulary, "vocabulary.txt is missing"),
        (break_missing_keras_file, "model.keras is missing"),
    ],
)
def test_artifacts_damaged_folder_is_a_model_error(
    synthetic_model_dir: Path, damage: Callable[[Path], None], message: str
) -> None:
    damage(synthetic_model_dir)

    with pytest.raises(ModelError, match=message):
        read_metadata(synthetic_model_dir)
    # The scorer reads through the same checks: a ModelError, never a KeyError.
    with pytest.raises(ModelError, match=message):
        Scorer(synthetic_model_dir)


def drop_threshold(metadata: dict[str, Any]) -> None:
    del metadata["threshold"]


def drop_header_policy(metadata: dict[str, Any]) -> None:
    del metadata["header_policy"]


def word_threshold(metadata: dict[str, Any]) -> None:
    metadata["threshold"] = "high"


def unknown_header_policy(metadata: dict[str, Any]) -> None:
    metadata["header_policy"] = "bogus"


def layer_spec_not_an_object(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"][0] = "dense_0"


@pytest.mark.parametrize(
    "damage",
    [
        drop_threshold,
        drop_header_policy,
        word_threshold,
        unknown_header_policy,
        layer_spec_not_an_object,
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

    assert "reads versions 1 and 2" in str(raised.value)
    assert "\n" not in str(raised.value)


# --------------------------------------------------------------------------
# Reading: the scoring export


def rewrite_weights(model_dir: Path, **replacements: np.ndarray) -> None:
    with np.load(model_dir / WEIGHTS_FILE) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays.update(replacements)
    with open(model_dir / WEIGHTS_FILE, "wb") as weights_file:
        np.savez(weights_file, **arrays)  # type: ignore[arg-type]


def test_artifacts_export_round_trip(
    tmp_path: Path, synthetic_export: artifacts.ScoringExport
) -> None:
    export = synthetic_export

    described = write_export(tmp_path, export)
    loaded = read_export(tmp_path, {"format_version": FORMAT_VERSION, "export": described})

    assert loaded.vocabulary == export.vocabulary
    assert loaded.normalization == export.normalization
    assert [layer.activation for layer in loaded.layers] == ["relu", "sigmoid"]
    for loaded_layer, layer in zip(loaded.layers, export.layers, strict=True):
        np.testing.assert_array_equal(loaded_layer.kernel, layer.kernel)
        np.testing.assert_array_equal(loaded_layer.bias, layer.bias)


def test_artifacts_export_refuses_a_term_with_a_newline(
    tmp_path: Path, synthetic_export: artifacts.ScoringExport
) -> None:
    export = synthetic_export
    export.vocabulary[2] = "two\nlines"

    with pytest.raises(ValueError, match="newline"):
        write_export(tmp_path, export)


def test_artifacts_wrong_kernel_shape_is_a_model_error(synthetic_model_dir: Path) -> None:
    rows = len((synthetic_model_dir / artifacts.VOCABULARY_FILE).read_text().splitlines())
    rewrite_weights(synthetic_model_dir, **{"dense_0.kernel": np.zeros((rows + 1, 3), np.float32)})

    with pytest.raises(ModelError, match="does not fit"):
        Scorer(synthetic_model_dir)


def test_artifacts_wrong_bias_shape_is_a_model_error(synthetic_model_dir: Path) -> None:
    rewrite_weights(synthetic_model_dir, **{"dense_1.bias": np.zeros(2, np.float32)})

    with pytest.raises(ModelError, match="does not fit"):
        Scorer(synthetic_model_dir)


def test_artifacts_unknown_activation_is_a_model_error(synthetic_model_dir: Path) -> None:
    metadata = read_metadata(synthetic_model_dir)
    metadata["export"]["layers"][0]["activation"] = "tanh"
    artifacts.write_metadata(synthetic_model_dir, metadata)

    with pytest.raises(ModelError, match="no valid layer 'dense_0'"):
        Scorer(synthetic_model_dir)


def test_artifacts_export_must_end_in_one_sigmoid_unit(synthetic_model_dir: Path) -> None:
    metadata = read_metadata(synthetic_model_dir)
    metadata["export"]["layers"] = metadata["export"]["layers"][:1]  # ends in 3 ReLU units
    artifacts.write_metadata(synthetic_model_dir, metadata)

    with pytest.raises(ModelError, match="one sigmoid unit"):
        Scorer(synthetic_model_dir)


def test_artifacts_weights_that_are_no_npz_are_a_model_error(synthetic_model_dir: Path) -> None:
    (synthetic_model_dir / WEIGHTS_FILE).write_bytes(b"this is not a zip file")

    with pytest.raises(ModelError, match="cannot read the scoring export"):
        Scorer(synthetic_model_dir)


class _Marker:
    """Unpickling this creates a folder: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


def test_artifacts_object_array_in_weights_is_refused_not_unpickled(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    payload = np.empty(1, dtype=object)
    payload[0] = _Marker(marker)
    rewrite_weights(synthetic_model_dir, **{"dense_0.kernel": payload})

    with pytest.raises(ModelError, match="cannot read the scoring export"):
        Scorer(synthetic_model_dir)

    assert not marker.exists()


def test_artifacts_weights_loaded_with_allow_pickle_false(
    synthetic_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    real_load = np.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)

    # NumPy reads the weights for batches; a few messages never load them so.
    Scorer(synthetic_model_dir).score_texts(["cash prize"])

    assert calls
    assert all(call.get("allow_pickle") is False for call in calls)


# --------------------------------------------------------------------------
# A trained model's folder


def test_artifacts_trained_folder_describes_itself(
    trained_model_dir: Path, tiny_config: TrainingConfig
) -> None:
    metadata = read_metadata(trained_model_dir)

    assert sorted(path.name for path in trained_model_dir.iterdir()) == sorted(
        REQUIRED_FILES + OPTIONAL_FILES
    )
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["header_policy"] == tiny_config.header_policy
    assert metadata["hyperparameters"]["vocabulary_size"] == tiny_config.vocabulary_size
    assert metadata["hyperparameters"]["hidden_units"] == list(tiny_config.hidden_units)
    assert metadata["hyperparameters"]["seed"] == tiny_config.seed
    assert 0.5 <= metadata["threshold"] <= 1.0
    assert metadata["training_data"]["counts"] == {"ham": 100, "spam": 100}
    assert len(metadata["training_data"]["fingerprint"]) == 64
    assert set(metadata["versions"]) >= {"spamcli", "tensorflow", "keras", "python"}
    assert metadata["export"]["max_difference_on_validation"] <= 1e-5
    assert [layer["activation"] for layer in metadata["export"]["layers"]] == [
        "relu",
        "relu",
        "sigmoid",
    ]
    vocabulary = (trained_model_dir / artifacts.VOCABULARY_FILE).read_text(encoding="utf-8")
    assert len(vocabulary.splitlines()) == metadata["vocabulary_size"] <= 2000
