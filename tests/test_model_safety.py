"""A damaged, lying or malicious model folder, through `spamcli predict`,
`spamcli evaluate` and `spamcli learn`: each is refused with one line on
stderr and exit status 1 (3 with --exit-status), and nothing in the folder
is ever executed.

A model folder holds JSON and NumPy arrays only: there is no Keras file, so
no loader can run code from it. The .npz files are read by the standard
library (artifacts.WeightsFile), never unpickled. Most cases use the
hand-made model of conftest.py (no TensorFlow).
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import re
import shutil
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
    CALIBRATION_FILE,
    CHANGED_ROWS,
    FIRST_KERNEL,
    KERNEL_FILE,
    METADATA_FILE,
    REQUIRED_FILES,
    WEIGHTS_FILE,
)
from spamcli.cli import cli
from spamcli.config import EXIT_ERROR

MESSAGE = b"From: a@example.org\nSubject: cash prize\n\nclaim the cash prize at the meeting\n"
NPZ_FILES = (KERNEL_FILE, WEIGHTS_FILE)


@pytest.fixture
def message_path(tmp_path: Path) -> Path:
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE)
    return path


def predict(model_dir: Path, message_path: Path, *options: str) -> Result:
    return CliRunner().invoke(cli, ["predict", "-m", str(model_dir), str(message_path), *options])


def evaluate(model_dir: Path, message_path: Path) -> Result:
    return CliRunner().invoke(cli, ["evaluate", "-m", str(model_dir), "--ham", str(message_path)])


def learn(model_dir: Path, message_path: Path) -> Result:
    return CliRunner().invoke(cli, ["learn", "-m", str(model_dir), "--spam", str(message_path)])


def assert_refused(result: Result, message: str, status: int = 1) -> None:
    """Nothing on stdout, one 'Error: ...' line on stderr holding MESSAGE."""
    assert result.exit_code == status, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(("Error: ", "spamcli: ")), lines[0]
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def assert_learn_refused(model_dir: Path, message_path: Path, message: str) -> None:
    """learn refuses too, and leaves the folder as it was."""
    before = listing(model_dir)
    assert_refused(learn(model_dir, message_path), message)
    assert listing(model_dir) == before


def metadata_of(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))


def write_metadata(model_dir: Path, metadata: object) -> None:
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def rewrite_npz(path: Path, **arrays: Any) -> None:
    current = npz_arrays(path)
    current.update(arrays)
    with open(path, "wb") as npz_file:
        np.savez(npz_file, **current)


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
# What predict, evaluate and learn say for each file and damage.
EXPECTED_ERRORS = {
    METADATA_FILE: {
        "truncated-half": "cannot read",
        "truncated-last-10-bytes": "cannot read",
        "empty": "cannot read",
        "zeroed": "cannot read",
        "missing": "metadata.json is missing",
    },
    **{
        name: {
            "truncated-half": f"cannot read {name} in",
            "truncated-last-10-bytes": f"cannot read {name} in",
            "empty": f"cannot read {name} in",
            "zeroed": f"cannot read {name} in",
            "missing": f"{name} is missing",
        }
        for name in NPZ_FILES
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
    assert_learn_refused(synthetic_model_dir, message_path, expected)


def test_model_safety_missing_folder_is_refused(tmp_path: Path, message_path: Path) -> None:
    assert_refused(predict(tmp_path / "nowhere", message_path), "no model folder at")


# --------------------------------------------------------------------------
# Versions and metadata that lie


def set_version(version: object) -> Callable[[dict[str, Any]], None]:
    def change(metadata: dict[str, Any]) -> None:
        metadata["format_version"] = version

    change.__name__ = f"version_{version!r}"
    return change


def insert_a_layer(metadata: dict[str, Any]) -> None:
    # A valid network, but not the one weights.npz holds.
    metadata["network"]["layers"].insert(1, {"units": 3, "activation": "relu"})


def add_a_sigmoid_layer(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"].append({"units": 1, "activation": "sigmoid"})


def drop_the_last_layer(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"].pop()


def no_layers(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"] = []


def softmax_activation(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][-1]["activation"] = "softmax"


def code_as_activation(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][0]["activation"] = "__import__('os').system('true')"


def more_units_than_the_kernel(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][0]["units"] = 4


def units_beyond_any_network(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][0]["units"] = 10**9


def units_true(metadata: dict[str, Any]) -> None:
    metadata["network"]["layers"][0]["units"] = True


def more_bits_than_the_kernel(metadata: dict[str, Any]) -> None:
    metadata["features"]["bits"] += 1


def bits_beyond_any_kernel(metadata: dict[str, Any]) -> None:
    metadata["features"]["bits"] = 64


def bits_as_a_string(metadata: dict[str, Any]) -> None:
    metadata["features"]["bits"] = "8"


def max_tokens_true(metadata: dict[str, Any]) -> None:
    metadata["features"]["max_tokens"] = True


def max_tokens_negative(metadata: dict[str, Any]) -> None:
    metadata["features"]["max_tokens"] = -1


def features_missing(metadata: dict[str, Any]) -> None:
    del metadata["features"]


def learning_missing(metadata: dict[str, Any]) -> None:
    del metadata["learning"]


def learning_rate_is_code(metadata: dict[str, Any]) -> None:
    metadata["learning"]["learning_rate"] = "__import__('os').system('true')"


def learning_rate_infinite(metadata: dict[str, Any]) -> None:
    metadata["learning"]["learning_rate"] = float("inf")


def threshold_above_one(metadata: dict[str, Any]) -> None:
    metadata["threshold"] = 7


def threshold_not_a_number(metadata: dict[str, Any]) -> None:
    metadata["threshold"] = float("nan")


def ham_cutoff_above_threshold(metadata: dict[str, Any]) -> None:
    metadata["ham_cutoff"] = 0.9


def header_policy_is_a_path(metadata: dict[str, Any]) -> None:
    metadata["header_policy"] = "../../content"


def network_missing(metadata: dict[str, Any]) -> None:
    del metadata["network"]


EARLIER = "a vocabulary fixed at training time, which cannot learn new words); train a new model"
METADATA_LIES = [
    (set_version(1), f"format version 1, {EARLIER}"),
    (set_version(2), f"format version 2, {EARLIER}"),
    (set_version(4), "format version 4; this spamcli reads version 3"),
    (set_version(True), "format version True"),
    (set_version(999), "format version 999"),
    (set_version("3"), "format version '3'"),
    (set_version(None), "format version None"),
    (set_version(3.5), "format version 3.5"),
    (insert_a_layer, "weights.npz has no dense_1.kernel of the right shape"),
    (add_a_sigmoid_layer, "the network's hidden layers must be ReLU or leaky ReLU layers"),
    (drop_the_last_layer, "does not end in one sigmoid unit"),
    (no_layers, "metadata does not describe the network"),
    (softmax_activation, "layer 1 of the network is not valid"),
    (code_as_activation, "layer 0 of the network is not valid"),
    (more_units_than_the_kernel, "kernel.npz does not hold the 256 x 4 first kernel"),
    (units_beyond_any_network, "layer 0 of the network is not valid"),
    (units_true, "layer 0 of the network is not valid"),
    (more_bits_than_the_kernel, "kernel.npz does not hold the 512 x 3 first kernel"),
    (bits_beyond_any_kernel, "bits must be between 1 and 30, not 64"),
    (bits_as_a_string, "metadata describes no valid input"),
    (max_tokens_true, "metadata describes no valid input"),
    (max_tokens_negative, "metadata describes no valid input"),
    (features_missing, "metadata does not describe the network"),
    (network_missing, "metadata does not describe the network"),
    (learning_missing, "metadata does not describe the optimizer"),
    (learning_rate_is_code, "the optimizer's learning_rate \"__import__('os').system('true')\""),
    (learning_rate_infinite, "the optimizer's learning_rate inf is not a number"),
    (threshold_above_one, "the threshold 7 is not between 0 and 1"),
    (threshold_not_a_number, "the threshold nan is not between 0 and 1"),
    (ham_cutoff_above_threshold, "the ham cut-off 0.9 is not between 0 and the threshold"),
    (header_policy_is_a_path, "unknown header policy '../../content'"),
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
    assert_learn_refused(synthetic_model_dir, message_path, message)


def test_model_safety_units_that_do_not_match_are_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    # The first layer claims 4 units (its bias) for a kernel of 3 columns.
    rewrite_npz(synthetic_model_dir / WEIGHTS_FILE, **{"dense_0.bias": np.zeros(4, np.float32)})

    message = "weights.npz has no dense_0.bias of the right shape"
    assert_refused(predict(synthetic_model_dir, message_path), message)
    assert_refused(evaluate(synthetic_model_dir, message_path), message)
    assert_learn_refused(synthetic_model_dir, message_path, message)


def test_model_safety_missing_accumulator_is_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    # Learning continues the optimizer: without its state it cannot.
    arrays = npz_arrays(synthetic_model_dir / WEIGHTS_FILE)
    del arrays["dense_1.kernel" + artifacts.ACCUMULATOR_SUFFIX]
    with open(synthetic_model_dir / WEIGHTS_FILE, "wb") as npz_file:
        np.savez(npz_file, **arrays)

    assert_learn_refused(synthetic_model_dir, message_path, "no accumulator for dense_1.kernel")


def test_model_safety_changed_rows_past_the_kernel_are_refused(
    tmp_path: Path, synthetic_network: Any, message_path: Path
) -> None:
    # A row number past the kernel's end would make a lookup read beyond it.
    from conftest import write_synthetic_model

    original = write_synthetic_model(tmp_path / "original", synthetic_network)
    synthetic_network.kernel_path = original / KERNEL_FILE
    synthetic_network.learn([3, 7], 1.0)
    learned = write_synthetic_model(tmp_path / "learned", synthetic_network)
    rewrite_npz(learned / WEIGHTS_FILE, **{CHANGED_ROWS: np.array([3, 2**20], np.uint32)})

    message = "weights.npz's changed rows are not in order"
    assert_refused(predict(learned, message_path), message)
    assert_learn_refused(learned, message_path, message)


@pytest.mark.parametrize("length", [-5, True, "12", 1.5], ids=repr)
def test_model_safety_learned_length_that_lies_is_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path, length: object
) -> None:
    # metadata.json records how many bytes of learned.jsonl belong to the
    # model; a value that is no byte count made learn crash in truncate().
    assert learn(synthetic_model_dir, message_path).exit_code == 0
    metadata = metadata_of(synthetic_model_dir)
    metadata["learned"]["bytes"] = length
    write_metadata(synthetic_model_dir, metadata)
    other = tmp_path / "other.eml"
    other.write_bytes(b"Subject: lunch\n\nthe meeting moved\n")

    assert_learn_refused(synthetic_model_dir, other, "is not a number of bytes")


def test_model_safety_learned_length_past_the_file_is_not_allocated(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path
) -> None:
    # read(length) allocated a terabyte for a length of 10**12: MemoryError.
    # A file shorter than recorded has lost learned messages: refused.
    assert learn(synthetic_model_dir, message_path).exit_code == 0
    metadata = metadata_of(synthetic_model_dir)
    metadata["learned"]["bytes"] = 10**12
    write_metadata(synthetic_model_dir, metadata)
    other = tmp_path / "other.eml"
    other.write_bytes(b"Subject: lunch\n\nthe meeting moved\n")

    assert_learn_refused(synthetic_model_dir, other, "learned messages are missing")


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
    kernel = npz_arrays(synthetic_model_dir / KERNEL_FILE)[FIRST_KERNEL]
    kernel[:] = np.nan
    rewrite_npz(synthetic_model_dir / KERNEL_FILE, **{FIRST_KERNEL: kernel})
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(20):  # more than a batch of the light scorer: NumPy scores them
        (folder / f"{number}.eml").write_bytes(MESSAGE + str(number).encode())

    message = "the model's weights give no score (not a number); kernel.npz or weights.npz"
    assert_refused(predict(synthetic_model_dir, message_path), message)
    assert_refused(predict(synthetic_model_dir, folder), message)
    assert_refused(predict(synthetic_model_dir, message_path, "--exit-status"), message, EXIT_ERROR)
    assert_refused(evaluate(synthetic_model_dir, message_path), message)
    # A step from them would only write another model that scores nothing.
    assert_learn_refused(synthetic_model_dir, message_path, message)


# --------------------------------------------------------------------------
# Weights that would execute code


class Marker:
    """Unpickling this makes a folder: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


def assert_every_command_refuses(model_dir: Path, message_path: Path, message: str) -> None:
    assert_refused(predict(model_dir, message_path), message)
    assert_refused(evaluate(model_dir, message_path), message)
    assert_learn_refused(model_dir, message_path, message)


# The array replaced in each file: the first kernel, and a small layer's kernel.
REPLACED = {KERNEL_FILE: FIRST_KERNEL, WEIGHTS_FILE: "dense_1.kernel"}


@pytest.mark.parametrize("file_name", NPZ_FILES)
def test_model_safety_object_array_is_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path, file_name: str
) -> None:
    marker = tmp_path / "unpickled"
    arrays = npz_arrays(synthetic_model_dir / file_name)
    payload = np.empty(arrays[REPLACED[file_name]].shape, dtype=object)
    payload.flat[0] = Marker(marker)
    arrays[REPLACED[file_name]] = payload
    with open(synthetic_model_dir / file_name, "wb") as npz_file:
        np.savez(npz_file, **arrays)  # pickles the object array

    assert_every_command_refuses(
        synthetic_model_dir, message_path, "is not a float32 or uint32 array in C order"
    )
    assert not marker.exists()


@pytest.mark.parametrize("file_name", NPZ_FILES)
def test_model_safety_pickle_member_is_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path, file_name: str
) -> None:
    marker = tmp_path / "unpickled"
    with zipfile.ZipFile(synthetic_model_dir / file_name, "a") as archive:
        archive.writestr("payload.pkl", pickle.dumps(Marker(marker)))

    assert_every_command_refuses(
        synthetic_model_dir, message_path, f"cannot read {file_name} in {synthetic_model_dir}: "
        "payload.pkl is not a .npy array"
    )  # fmt: skip
    assert not marker.exists()


@pytest.mark.parametrize("file_name", NPZ_FILES)
def test_model_safety_npy_header_with_code_is_refused(
    synthetic_model_dir: Path, message_path: Path, tmp_path: Path, file_name: str
) -> None:
    # A .npy header is a Python literal; one that is an expression must be
    # refused by the literal parser, never evaluated.
    marker = tmp_path / "evaluated"
    header = f"__import__('os').mkdir({str(marker)!r})".encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    with zipfile.ZipFile(synthetic_model_dir / file_name, "a") as archive:
        archive.writestr("dense_9.kernel.npy", member)

    assert_every_command_refuses(synthetic_model_dir, message_path, f"cannot read {file_name} in")
    assert not marker.exists()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.mark.parametrize("file_name", NPZ_FILES)
def test_model_safety_compressed_member_is_refused(
    synthetic_model_dir: Path, message_path: Path, file_name: str
) -> None:
    # A compressed member cannot be mapped; only the replaced array is compressed.
    arrays = npz_arrays(synthetic_model_dir / file_name)
    with zipfile.ZipFile(synthetic_model_dir / file_name, "w") as archive:
        for name, array in arrays.items():
            compression = (
                zipfile.ZIP_DEFLATED if name == REPLACED[file_name] else zipfile.ZIP_STORED
            )
            archive.writestr(f"{name}.npy", npy_bytes(array), compress_type=compression)

    assert_every_command_refuses(
        synthetic_model_dir, message_path, f"{REPLACED[file_name]}.npy is compressed"
    )


def test_model_safety_compressed_npz_is_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    arrays = npz_arrays(synthetic_model_dir / KERNEL_FILE)
    with open(synthetic_model_dir / KERNEL_FILE, "wb") as npz_file:
        np.savez_compressed(npz_file, **arrays)  # type: ignore[arg-type]

    assert_refused(predict(synthetic_model_dir, message_path), "is compressed")


def test_model_safety_array_shorter_than_its_header_is_refused(
    synthetic_model_dir: Path, message_path: Path
) -> None:
    # A header that claims more rows than the member holds: rows read from
    # the memory map would come from past the member, or past the file.
    arrays = npz_arrays(synthetic_model_dir / KERNEL_FILE)
    member = npy_bytes(arrays[FIRST_KERNEL])
    with zipfile.ZipFile(synthetic_model_dir / KERNEL_FILE, "w") as archive:
        for name, array in arrays.items():
            data = member[: len(member) - 4 * 3 * 10] if name == FIRST_KERNEL else npy_bytes(array)
            archive.writestr(f"{name}.npy", data)

    assert_every_command_refuses(
        synthetic_model_dir, message_path, f"{FIRST_KERNEL}.npy is shorter than its header says"
    )


@pytest.mark.parametrize("dtype", ["<f8", ">f4", "<i4"])
def test_model_safety_arrays_of_another_type_are_refused(
    synthetic_model_dir: Path, message_path: Path, dtype: str
) -> None:
    kernel = npz_arrays(synthetic_model_dir / KERNEL_FILE)[FIRST_KERNEL]
    rewrite_npz(synthetic_model_dir / KERNEL_FILE, **{FIRST_KERNEL: kernel.astype(dtype)})

    assert_every_command_refuses(
        synthetic_model_dir, message_path, "is not a float32 or uint32 array in C order"
    )


# --------------------------------------------------------------------------
# Nothing in a model folder is code


def test_model_safety_folder_holds_only_json_and_plain_arrays(trained_model_dir: Path) -> None:
    assert sorted(path.name for path in trained_model_dir.iterdir()) == sorted(
        [*REQUIRED_FILES, CALIBRATION_FILE]
    )
    assert isinstance(json.loads((trained_model_dir / METADATA_FILE).read_text("utf-8")), dict)
    # calibration.npz is read by learn alone (tests/test_calibration.py).
    for name in (*NPZ_FILES, CALIBRATION_FILE):
        with zipfile.ZipFile(trained_model_dir / name) as archive:
            members = archive.infolist()
            assert members, name
            for member in members:
                # Stored, not compressed, and each a .npy array whose header
                # is a plain literal: a float32 (or uint32 row numbers) in C order.
                assert member.filename.endswith(".npy"), member.filename
                assert member.compress_type == zipfile.ZIP_STORED, member.filename
                data = archive.read(member)
                assert data.startswith(b"\x93NUMPY"), member.filename
                header_length = int.from_bytes(data[8:10], "little")
                header = ast.literal_eval(data[10 : 10 + header_length].decode("latin-1"))
                assert header["descr"] in ("<f4", "<u4"), member.filename
                assert header["fortran_order"] is False
        # And NumPy reads every array without allowing a pickle.
        assert all(
            array.dtype.kind in "fu" for array in npz_arrays(trained_model_dir / name).values()
        )


def test_model_safety_package_never_unpickles_or_loads_code() -> None:
    # The model's files are read by json, artifacts.WeightsFile (headers by
    # ast.literal_eval) and np.frombuffer. Nothing in the package may unpickle,
    # load a Keras file, or evaluate text; a np.load must refuse pickles.
    package = Path(artifacts.__file__).resolve().parent
    forbidden = re.compile(
        r"^\s*(import|from)\s+(pickle|marshal|shelve|dill|joblib)\b"
        r"|load_model\(|allow_pickle\s*=\s*True|(?<![\w.])(eval|exec)\("
    )
    found = []
    for path in sorted(package.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if forbidden.search(code):
                found.append(f"{path.name}:{number}: {line.strip()}")
            if (
                re.search(r"\bnp\.load\(|\bnumpy\.load\(", code)
                and "allow_pickle=False" not in code
            ):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert found == []


# --------------------------------------------------------------------------
# Paths inside metadata


OPENED_PATHS = """
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
from spamcli.scoring import Scorer
from spamcli.online import Network
scorer = Scorer(sys.argv[1])
scorer.score_messages([b"Subject: cash prize"])
scorer.score_texts(["cash prize"] * 20)
Network.from_folder(scorer.model_dir, scorer.metadata)
for path in opened:
    print(path)
"""


def test_model_safety_no_metadata_value_is_used_as_a_path(
    synthetic_model_dir: Path, tmp_path: Path, message_path: Path
) -> None:
    # Every string in metadata that could be taken for a path points outside
    # the folder; loading, scoring and learning must open nothing but the
    # folder's own files.
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in REQUIRED_FILES:
        shutil.copy(synthetic_model_dir / name, outside / name)
    metadata = metadata_of(synthetic_model_dir)
    metadata["training_data"] = {
        "sources": [str(outside), "../../etc/passwd"],
        "ham_paths": [str(outside / "ham")],
        "spam_paths": ["/etc/shadow"],
    }
    metadata["weights"]["kernel_file"] = str(outside / KERNEL_FILE)
    metadata["weights"]["weights_file"] = "../outside/weights.npz"
    metadata["network"]["layers"][0]["name"] = "../../etc/passwd"
    metadata["learned"] = {"file": str(outside / "learned.jsonl")}
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
    # Every name is fixed in artifacts.py.
    assert {path.name for path in in_folder} == set(REQUIRED_FILES)
    assert not any(str(path).startswith((str(outside), "/etc", "..")) for path in opened)
    # And learn writes the folder it was given, and only it.
    outside_before = listing(outside)
    assert learn(synthetic_model_dir, message_path).exit_code == 0
    assert listing(outside) == outside_before
    assert (synthetic_model_dir / artifacts.LEARNED_FILE).is_file()
