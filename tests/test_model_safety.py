"""A damaged, lying or malicious model folder, through `spamcli predict` and
`spamcli evaluate`: each is refused with one line on stderr and exit status 1
(3 with --exit-status), and nothing in the folder is ever executed.

Most cases use the hand-made model of conftest.py (no TensorFlow). The
Keras cases build a real .keras file with a Lambda layer.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from spamcli import artifacts
from spamcli.artifacts import (
    KERAS_FILE,
    METADATA_FILE,
    VOCABULARY_FILE,
    VOCABULARY_INDEX_FILE,
    WEIGHTS_FILE,
)
from spamcli.cli import cli
from spamcli.config import EXIT_ERROR
from spamcli.errors import ModelError

MESSAGE = b"From: a@example.org\nSubject: cash prize\n\nclaim the cash prize at the meeting\n"
PREDICTION_LINE = re.compile(r"(ham|unsure|spam) [01]\.\d{6} .+")


@pytest.fixture
def message_path(tmp_path: Path) -> Path:
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE)
    return path


def predict(model_dir: Path, message_path: Path, *options: str) -> Result:
    return CliRunner().invoke(cli, ["predict", "-m", str(model_dir), str(message_path), *options])


def evaluate(model_dir: Path, message_path: Path) -> Result:
    return CliRunner().invoke(cli, ["evaluate", "-m", str(model_dir), "--ham", str(message_path)])


def assert_refused(result: Result, message: str, status: int = 1) -> None:
    """Nothing on stdout, one 'Error: ...' line on stderr holding MESSAGE."""
    assert result.exit_code == status, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(("Error: ", "spamcli: ")), lines[0]
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def metadata_of(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))


def write_metadata(model_dir: Path, metadata: object) -> None:
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")


def rewrite_weights(model_dir: Path, **arrays: Any) -> None:
    with np.load(model_dir / WEIGHTS_FILE) as stored:
        current = {name: stored[name] for name in stored.files}
    current.update(arrays)
    with open(model_dir / WEIGHTS_FILE, "wb") as weights_file:
        np.savez(weights_file, **current)


# --------------------------------------------------------------------------
# Each file truncated, zeroed or missing


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncate_last_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def zero(path: Path) -> None:
    path.write_bytes(bytes(len(path.read_bytes())))


def remove(path: Path) -> None:
    path.unlink()


DAMAGES = {
    "truncated-half": truncate_half,
    "truncated-last-10-bytes": truncate_last_bytes,
    "empty": empty,
    "zeroed": zero,
    "missing": remove,
}
# What predict and evaluate say for each read file and damage.
EXPECTED_ERRORS = {
    METADATA_FILE: {
        "truncated-half": "cannot read",
        "truncated-last-10-bytes": "cannot read",
        "empty": "cannot read",
        "zeroed": "cannot read",
        "missing": "metadata.json is missing",
    },
    VOCABULARY_FILE: {
        "truncated-half": "vocabulary.txt has",
        "truncated-last-10-bytes": "vocabulary.txt has",
        "empty": "vocabulary.txt has 0 n-grams",
        "zeroed": "vocabulary.txt has",
        "missing": "vocabulary.txt is missing",
    },
    WEIGHTS_FILE: {
        "truncated-half": "cannot read the scoring export",
        "truncated-last-10-bytes": "cannot read the scoring export",
        "empty": "cannot read the scoring export",
        "zeroed": "cannot read the scoring export",
        "missing": "weights.npz is missing",
    },
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("file_name", sorted(EXPECTED_ERRORS))
def test_model_safety_damaged_file_is_refused(
    synthetic_model_dir: Path, message_path: Path, file_name: str, damage: str
) -> None:
    DAMAGES[damage](synthetic_model_dir / file_name)
    expected = EXPECTED_ERRORS[file_name][damage]

    assert_refused(predict(synthetic_model_dir, message_path), expected)
    assert_refused(
        predict(synthetic_model_dir, message_path, "--exit-status"), expected, EXIT_ERROR
    )
    assert_refused(evaluate(synthetic_model_dir, message_path), expected)


@pytest.mark.parametrize("damage", sorted(set(DAMAGES) - {"missing"}))
def test_model_safety_damaged_keras_file_does_not_stop_scoring(
    synthetic_model_dir: Path, message_path: Path, damage: str
) -> None:
    # predict and evaluate score from the export and never open model.keras;
    # only its absence marks the folder incomplete (see the test above).
    before = predict(synthetic_model_dir, message_path)
    DAMAGES[damage](synthetic_model_dir / KERAS_FILE)

    after = predict(synthetic_model_dir, message_path)

    assert after.exit_code == 0
    assert after.stdout == before.stdout


def test_model_safety_missing_keras_file_is_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    (synthetic_model_dir / KERAS_FILE).unlink()

    assert_refused(predict(synthetic_model_dir, message_path), "model.keras is missing")
    assert_refused(evaluate(synthetic_model_dir, message_path), "model.keras is missing")


def test_model_safety_missing_folder_is_refused(tmp_path: Path, message_path: Path) -> None:
    assert_refused(predict(tmp_path / "nowhere", message_path), "no model folder at")


# --------------------------------------------------------------------------
# Versions and metadata that lie


def set_version(version: object) -> Callable[[dict[str, Any]], None]:
    def change(metadata: dict[str, Any]) -> None:
        metadata["format_version"] = version

    return change


def add_vocabulary_line(model_dir: Path) -> None:
    with open(model_dir / VOCABULARY_FILE, "a", encoding="utf-8") as vocabulary:
        vocabulary.write("an extra n-gram\n")


def add_a_layer(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"].append({"name": "dense_2", "activation": "sigmoid"})


def drop_the_last_layer(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"].pop()


def repeat_the_first_layer(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"].insert(1, dict(metadata["export"]["layers"][0]))


def no_layers(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"] = []


def softmax_activation(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"][-1]["activation"] = "softmax"


def code_as_activation(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"][0]["activation"] = "__import__('os').system('true')"


def layer_name_is_a_path(metadata: dict[str, Any]) -> None:
    metadata["export"]["layers"][0]["name"] = "../../etc/passwd"


def threshold_above_one(metadata: dict[str, Any]) -> None:
    metadata["threshold"] = 7


def threshold_not_a_number(metadata: dict[str, Any]) -> None:
    metadata["threshold"] = float("nan")


def ham_cutoff_above_threshold(metadata: dict[str, Any]) -> None:
    metadata["ham_cutoff"] = 0.9


def header_policy_is_a_path(metadata: dict[str, Any]) -> None:
    metadata["header_policy"] = "../../content"


def export_missing(metadata: dict[str, Any]) -> None:
    del metadata["export"]


def normalization_unknown(metadata: dict[str, Any]) -> None:
    metadata["export"]["normalization"] = "__import__('os').system('true')"


def normalization_missing(metadata: dict[str, Any]) -> None:
    del metadata["export"]["normalization"]


METADATA_LIES = [
    (set_version(3), "format version 3; this spamcli reads versions 1 and 2"),
    (set_version(True), "format version True"),
    (set_version(999), "format version 999"),
    (set_version("1"), "format version '1'"),
    (set_version(None), "format version None"),
    (set_version(1.5), "format version 1.5"),
    (add_a_layer, "no valid layer 'dense_2'"),
    (drop_the_last_layer, "does not end in one sigmoid unit"),
    (repeat_the_first_layer, "layer 'dense_0' does not fit the layer before it"),
    (no_layers, "does not end in one sigmoid unit"),
    (softmax_activation, "no valid layer 'dense_1'"),
    (code_as_activation, "no valid layer 'dense_0'"),
    (layer_name_is_a_path, "no valid layer '../../etc/passwd'"),
    (threshold_above_one, "the threshold 7 is not between 0 and 1"),
    (threshold_not_a_number, "the threshold nan is not between 0 and 1"),
    (ham_cutoff_above_threshold, "the ham cut-off 0.9 is not between 0 and the threshold"),
    (header_policy_is_a_path, "unknown header policy '../../content'"),
    (export_missing, "metadata does not describe the scoring export"),
    (normalization_unknown, "unknown normalization \"__import__('os').system('true')\""),
    (normalization_missing, "unknown normalization None"),
]


@pytest.mark.parametrize(
    ("lie", "message"), METADATA_LIES, ids=[lie.__name__ for lie, _ in METADATA_LIES]
)
def test_model_safety_metadata_that_lies_is_refused(
    synthetic_model_dir: Path,
    message_path: Path,
    lie: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    metadata = metadata_of(synthetic_model_dir)
    lie(metadata)
    write_metadata(synthetic_model_dir, metadata)

    assert_refused(predict(synthetic_model_dir, message_path), message)
    assert_refused(evaluate(synthetic_model_dir, message_path), message)


def test_model_safety_vocabulary_longer_than_the_kernel_is_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    add_vocabulary_line(synthetic_model_dir)

    message = "layer 'dense_0' does not fit the vocabulary: vocabulary.txt has 7 n-grams"
    assert_refused(predict(synthetic_model_dir, message_path), message)
    assert_refused(evaluate(synthetic_model_dir, message_path), message)


def test_model_safety_units_that_do_not_match_are_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    # The first layer claims 4 units (its bias) for a kernel of 3 columns.
    rewrite_weights(synthetic_model_dir, **{"dense_0.bias": np.zeros(4, np.float32)})

    message = "layer 'dense_0' does not fit the layer before it"
    assert_refused(predict(synthetic_model_dir, message_path), message)
    assert_refused(evaluate(synthetic_model_dir, message_path), message)


@pytest.mark.parametrize(
    "document",
    ["[" * 100_000 + "]" * 100_000, "[1, 2]", '"a string"', "null", "1e999999"],
    ids=["nested-100000-deep", "list", "string", "null", "huge-number"],
)
def test_model_safety_metadata_that_is_no_object_is_refused(
    synthetic_model_dir: Path, message_path: Path, document: str
) -> None:
    (synthetic_model_dir / METADATA_FILE).write_text(document, encoding="utf-8")

    result = predict(synthetic_model_dir, message_path)

    assert_refused(result, str(synthetic_model_dir / METADATA_FILE))


def test_model_safety_weights_that_are_no_numbers_are_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path
) -> None:
    with np.load(synthetic_model_dir / WEIGHTS_FILE) as stored:
        kernel = stored["dense_0.kernel"].copy()
    kernel[:] = np.nan
    rewrite_weights(synthetic_model_dir, **{"dense_0.kernel": kernel})
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(20):  # more than a batch of the light scorer: NumPy scores them
        (folder / f"{number}.eml").write_bytes(MESSAGE + str(number).encode())

    message = "the model's weights give no score (not a number); weights.npz is damaged"
    assert_refused(predict(synthetic_model_dir, message_path), message)
    assert_refused(predict(synthetic_model_dir, folder), message)
    assert_refused(predict(synthetic_model_dir, message_path, "--exit-status"), message, EXIT_ERROR)
    assert_refused(evaluate(synthetic_model_dir, message_path), message)


# --------------------------------------------------------------------------
# Weights that would execute code


class Marker:
    """Unpickling this makes a folder: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


def test_model_safety_object_array_in_weights_is_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    payload = np.empty((6, 3), dtype=object)
    payload[0, 0] = Marker(marker)
    rewrite_weights(synthetic_model_dir, **{"dense_0.kernel": payload})

    assert_refused(predict(synthetic_model_dir, message_path), "not a float32 array")
    assert_refused(evaluate(synthetic_model_dir, message_path), "not a float32 array")
    assert not marker.exists()


def test_model_safety_pickle_member_in_weights_is_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    with zipfile.ZipFile(synthetic_model_dir / WEIGHTS_FILE, "a") as archive:
        archive.writestr("payload.pkl", pickle.dumps(Marker(marker)))

    assert_refused(predict(synthetic_model_dir, message_path), "payload.pkl is not a .npy array")
    assert_refused(evaluate(synthetic_model_dir, message_path), "is not a .npy array")
    assert not marker.exists()


def test_model_safety_npy_header_with_code_is_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path
) -> None:
    # A .npy header is a Python literal; one that is an expression must be
    # refused by the literal parser, never evaluated.
    marker = tmp_path / "evaluated"
    header = f"__import__('os').mkdir({str(marker)!r})".encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    with zipfile.ZipFile(synthetic_model_dir / WEIGHTS_FILE, "a") as archive:
        archive.writestr("dense_9.kernel.npy", member)

    assert_refused(predict(synthetic_model_dir, message_path), "cannot read the scoring export")
    assert not marker.exists()


def test_model_safety_compressed_weights_are_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    with np.load(synthetic_model_dir / WEIGHTS_FILE) as stored:
        arrays = {name: stored[name] for name in stored.files}
    with open(synthetic_model_dir / WEIGHTS_FILE, "wb") as weights_file:
        np.savez_compressed(weights_file, **arrays)  # type: ignore[arg-type]

    assert_refused(predict(synthetic_model_dir, message_path), "is compressed")


# --------------------------------------------------------------------------
# Paths inside metadata


OPENED_PATHS = """
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
from spamcli.scoring import Scorer
scorer = Scorer(sys.argv[1])
scorer.score_messages([b"Subject: cash prize"])
scorer.score_texts(["cash prize"])
for path in opened:
    print(path)
"""


def test_model_safety_no_metadata_value_is_used_as_a_path(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    # Every string in metadata that could be taken for a path points outside
    # the folder; loading and scoring must open nothing but the folder's files.
    outside = tmp_path / "outside"
    outside.mkdir()
    metadata = metadata_of(synthetic_model_dir)
    metadata["training_data"] = {
        "sources": [str(outside), "../../etc/passwd"],
        "ham_paths": [str(outside / "ham")],
        "spam_paths": ["/etc/shadow"],
    }
    metadata["vocabulary_file"] = str(outside / "vocabulary.txt")
    metadata["weights_file"] = "../weights.npz"
    metadata["export"]["weights"] = str(outside / "weights.npz")
    write_metadata(synthetic_model_dir, metadata)

    completed = subprocess.run(
        [sys.executable, "-c", OPENED_PATHS, str(synthetic_model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )

    assert completed.returncode == 0, completed.stderr
    opened = {Path(line) for line in completed.stdout.splitlines()}
    in_folder = {path for path in opened if path.parent == synthetic_model_dir}
    # Every name is fixed in artifacts.py (the index: where the folder has one).
    assert {path.name for path in in_folder} <= {
        METADATA_FILE,
        VOCABULARY_FILE,
        WEIGHTS_FILE,
        VOCABULARY_INDEX_FILE,
    }
    assert {METADATA_FILE, VOCABULARY_FILE, WEIGHTS_FILE} <= {path.name for path in in_folder}
    assert not any(str(path).startswith((str(outside), "/etc", "..")) for path in opened)
    assert not any("weights.npz" in str(path) and path not in in_folder for path in opened)


# --------------------------------------------------------------------------
# Keras: a Lambda layer is refused, never run


def build_lambda_model_dir(model_dir: Path, marker: Path) -> None:
    """A model folder whose model.keras holds a Lambda layer that makes MARKER."""
    import keras

    marker_name = str(marker)
    inputs = keras.Input(shape=(3,))
    # A Python lambda: Keras stores its bytecode in the file.
    outputs = keras.layers.Lambda(
        lambda values: (os.makedirs(marker_name, exist_ok=True), values * 2)[1]
    )(inputs)
    keras.Model(inputs, outputs).save(model_dir / KERAS_FILE)
    os.rmdir(marker)  # building the model traced the Lambda once


def test_model_safety_keras_lambda_is_refused_and_never_run(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "lambda-ran"
    scores_before = predict(synthetic_model_dir, message_path).stdout
    build_lambda_model_dir(synthetic_model_dir, marker)

    with pytest.raises(ModelError) as raised:
        artifacts.load_keras_model(synthetic_model_dir)

    assert str(raised.value) == (
        f"cannot load {synthetic_model_dir / KERAS_FILE}: it holds Python code "
        "(a Lambda layer or a custom function), never loaded"
    )
    assert "\n" not in str(raised.value)
    # predict and evaluate score from the export; model.keras is never opened.
    result = predict(synthetic_model_dir, message_path)
    assert result.exit_code == 0 and result.stdout == scores_before
    assert evaluate(synthetic_model_dir, message_path).exit_code == 0
    assert not marker.exists()


def test_model_safety_damaged_keras_file_is_refused_by_keras(synthetic_model_dir: Path) -> None:
    # The synthetic folder's model.keras is a placeholder, not a zip file.
    with pytest.raises(ModelError, match="cannot load"):
        artifacts.load_keras_model(synthetic_model_dir)


def test_model_safety_every_keras_load_uses_safe_mode() -> None:
    # The one place spamcli loads a .keras file, and it passes safe_mode=True.
    package = Path(artifacts.__file__).resolve().parent
    calls = [
        (path.name, line.strip())
        for path in sorted(package.glob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "load_model(" in line and "def load_keras_model" not in line
    ]
    assert calls == [("artifacts.py", "return keras.saving.load_model(keras_path, safe_mode=True)")]


def test_model_safety_trained_model_loads_in_safe_mode(trained_model_dir: Path) -> None:
    import tensorflow as tf

    from spamcli.scoring import Scorer

    model = artifacts.load_keras_model(trained_model_dir)

    keras_score = float(np.asarray(model.predict(tf.constant(["cash prize"]), verbose=0))[0, 0])
    assert keras_score == pytest.approx(
        float(Scorer(trained_model_dir).score_texts(["cash prize"])[0]), abs=1e-5
    )
