"""The model folder: what is in it, and writing it so it is never half-written.

A model folder (format version 3) holds:

- ``metadata.json``: format version, versions of spamcli and the libraries
  that trained it, header policy, how tokens become the network's input
  (``features``), the network's layers (``network``), the optimizer that
  training and learning share (``learning``), the cut-offs, training counts
  and fingerprint, validation figures, what learning has changed since;
- ``kernel.npz``: the first layer's kernel, one row a bucket (2**bits rows,
  float32), and its optimizer accumulator (one value a row), as trained or
  as last compacted. It is the bulk of the model and is never rewritten in
  place: a folder written by ``learn`` shares it with the folder it
  replaces through a hard link;
- ``weights.npz``: everything else of the network, and all that learning
  rewrites: the other layers' weights, the first kernel's rows that learning
  has changed since kernel.npz was written (``rows``, ``dense_0.kernel.rows``
  and ``dense_0.kernel.accumulator.rows``), and the other variables'
  accumulators (``*.accumulator``). The current weights are kernel.npz's
  rows overridden by weights.npz's: ``open_weights`` is the one reader of
  both for scoring, online.Network.from_folder for learning;
- after ``spamcli learn``: ``learned.jsonl``, the learned messages (see
  learning.py).

Both .npz files are uncompressed NumPy archives of float32 arrays (and one
uint32 array of row numbers), read with ``allow_pickle=False`` or with the
standard library (WeightsFile). There is no Keras file: nothing in a model
folder is code, and no loader can run any. File names are fixed here, never
read from metadata, so no path in a model folder can point outside it.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import fcntl
import io
import json
import math
import mmap
import operator
import os
import stat
import struct
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from spamcli.config import HEADER_POLICIES, HIDDEN_ACTIVATIONS, LearningRule
from spamcli.errors import ModelError
from spamcli.features import FeatureSpec

# Version 3: hashed n-grams, the first kernel in kernel.npz, learning's
# state in weights.npz. Versions 1 and 2 read a vocabulary fixed at
# training time and cannot learn a new word; they are refused with a word
# on retraining rather than scored by code kept for them alone.
FORMAT_VERSION = 3
READABLE_FORMAT_VERSIONS = (3,)
METADATA_FILE = "metadata.json"
KERNEL_FILE = "kernel.npz"
WEIGHTS_FILE = "weights.npz"
REQUIRED_FILES = (METADATA_FILE, KERNEL_FILE, WEIGHTS_FILE)
# Written by `spamcli learn` (see learning.py).
LEARNED_FILE = "learned.jsonl"
# Written by `spamcli train`, rewritten by `spamcli learn`: the held-out
# messages that set the cut-offs (calibration.py). Folders without it keep
# their cut-offs where train set them.
CALIBRATION_FILE = "calibration.npz"
# Files of a model folder that spamcli writes; anything else in the folder
# (a model card, notes) is kept by learn and replaced by train.
MODEL_FILES = frozenset({*REQUIRED_FILES, LEARNED_FILE, CALIBRATION_FILE})

FIRST_LAYER = "dense_0"
FIRST_KERNEL = f"{FIRST_LAYER}.kernel"
# In weights.npz: the first kernel's rows changed since kernel.npz, and
# their values.
ACCUMULATOR_SUFFIX = ".accumulator"
# In kernel.npz: the first kernel and its optimizer accumulator (one a row).
FIRST_ACCUMULATOR = FIRST_KERNEL + ACCUMULATOR_SUFFIX
CHANGED_ROWS = "rows"
CHANGED_KERNEL_ROWS = f"{FIRST_KERNEL}.rows"
CHANGED_ACCUMULATOR_ROWS = f"{FIRST_ACCUMULATOR}.rows"

# Activations the layers may use; anything else is refused. The hidden
# layers are ReLU or leaky ReLU units (config.py), the last one sigmoid unit.
ACTIVATIONS = (*HIDDEN_ACTIVATIONS, "sigmoid")
# leaky_relu(x) is x above 0 and LEAKY_SLOPE * x below: Keras's leaky_relu
# with its default slope, which model.py trains with.
LEAKY_SLOPE = 0.2


def slope_below_zero(activation: str) -> float:
    """A hidden activation's slope below 0: it is max(x, slope * x)."""
    return LEAKY_SLOPE if activation == "leaky_relu" else 0.0


@dataclass(frozen=True)
class LayerSpec:
    name: str
    units: int
    activation: str


@dataclass(frozen=True)
class NetworkSpec:
    """What metadata.json says of the network: its input and its layers."""

    features: FeatureSpec
    layers: list[LayerSpec]

    def variable_names(self) -> list[str]:
        """Every variable but the first kernel, in layer order."""
        names = []
        for index, layer in enumerate(self.layers):
            if index:
                names.append(f"{layer.name}.kernel")
            names.append(f"{layer.name}.bias")
        return names

    def shape(self, name: str) -> tuple[int, ...]:
        layer_name, _, part = name.partition(".")
        for index, layer in enumerate(self.layers):
            if layer.name == layer_name:
                if part == "bias":
                    return (layer.units,)
                inputs = self.features.buckets if index == 0 else self.layers[index - 1].units
                return (inputs, layer.units)
        raise KeyError(name)


# A model file is opened without blocking and without following a symbolic
# link, and refused unless the open descriptor is a regular file: opening a
# FIFO waits for a writer (a FIFO named metadata.json made `spamcli filter`
# wait forever), a device may never end, and a link leads out of the folder.
# Checking before opening would leave a moment for a FIFO to take the name.
_MODEL_FILE_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def open_model_file(path: Path) -> io.BufferedReader:
    """PATH, a file of a model folder, open for reading.

    Raises ModelError if it is a symbolic link, a FIFO, a device, a socket
    or a folder, never waiting on it; FileNotFoundError and other OSErrors
    pass through.
    """
    try:
        descriptor = os.open(path, _MODEL_FILE_FLAGS)
    except OSError:
        if os.path.islink(path):  # O_NOFOLLOW's ELOOP
            raise ModelError(f"{path} is a symbolic link, not a model file") from None
        raise
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise ModelError(f"{path} is not a regular file ({file_kind(mode)})")
        os.set_blocking(descriptor, True)
        return open(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def file_kind(mode: int) -> str:
    """What a file of MODE (st_mode) is, for a message: "a FIFO", "a folder"..."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a special file"


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    """Read and check ``metadata.json``; refuse unknown format versions."""
    model_path = Path(model_dir)
    if not model_path.is_dir():
        raise ModelError(f"no model folder at {model_path}")
    metadata_path = model_path / METADATA_FILE
    try:
        with open_model_file(metadata_path) as metadata_file:
            metadata = json.loads(metadata_file.read().decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{model_path} is not a spamcli model: {METADATA_FILE} is missing"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"cannot read {metadata_path}: {error}") from None
    except RecursionError:
        # json nests by recursion: 100,000 "[" exhaust the stack.
        raise ModelError(f"cannot read {metadata_path}: nested too deeply") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"{metadata_path} is not a JSON object")
    version = metadata.get("format_version")
    # bool is an int: true must not pass for version 1.
    if not isinstance(version, bool) and version in (1, 2):
        raise ModelError(
            f"{model_path} was made by an earlier spamcli (model format version {version}, "
            "a vocabulary fixed at training time, which cannot learn new words); "
            "train a new model with spamcli train"
        )
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or version not in READABLE_FORMAT_VERSIONS
    ):
        readable = " and ".join(str(number) for number in READABLE_FORMAT_VERSIONS)
        raise ModelError(
            f"{model_path} has model format version {version!r}; this spamcli reads "
            f"version {readable} (train the model again, or upgrade spamcli)"
        )
    for name in REQUIRED_FILES:
        try:
            mode = os.lstat(model_path / name).st_mode
        except FileNotFoundError:
            raise ModelError(f"{model_path} is incomplete: {name} is missing") from None
        except OSError as error:
            raise ModelError(f"cannot read {model_path / name}: {error.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ModelError(f"{model_path / name} is not a regular file ({file_kind(mode)})")
    _check_fields(model_path, metadata)
    return metadata


def _check_fields(model_path: Path, metadata: dict[str, Any]) -> None:
    """Refuse metadata whose fields the scorer relies on are missing or wrong."""
    if metadata.get("header_policy") not in HEADER_POLICIES:
        raise ModelError(f"{model_path}: unknown header policy {metadata.get('header_policy')!r}")
    threshold = metadata.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ModelError(f"{model_path}: the threshold {threshold!r} is not a number")
    if not 0.0 <= threshold <= 1.0:
        raise ModelError(f"{model_path}: the threshold {threshold} is not between 0 and 1")
    # Optional: absent means no unsure band.
    ham_cutoff = metadata.get("ham_cutoff", threshold)
    if isinstance(ham_cutoff, bool) or not isinstance(ham_cutoff, int | float):
        raise ModelError(f"{model_path}: the ham cut-off {ham_cutoff!r} is not a number")
    if not 0.0 <= ham_cutoff <= threshold:
        raise ModelError(
            f"{model_path}: the ham cut-off {ham_cutoff} is not between 0 and the "
            f"threshold {threshold}"
        )
    network_spec(model_path, metadata)
    learning_rule(model_path, metadata)
    weights = metadata.get("weights", {})
    counts = (
        [weights.get(name, 0) for name in ("changed_rows", "messages_learned")]
        if isinstance(weights, dict)
        else [None]
    )
    if not all(isinstance(count, int) and not isinstance(count, bool) for count in counts):
        raise ModelError(f"{model_path}: metadata's weights entry is not valid")


def weights_entry(metadata: dict[str, Any]) -> dict[str, Any]:
    """metadata.json's ``weights`` entry (checked by read_metadata); empty if absent."""
    weights = metadata.get("weights")
    return weights if isinstance(weights, dict) else {}


def network_spec(model_path: Path, metadata: dict[str, Any]) -> NetworkSpec:
    """The network metadata.json describes, checked: a ModelError if it is not one."""
    features = metadata.get("features")
    network = metadata.get("network")
    layers = network.get("layers") if isinstance(network, dict) else None
    if not isinstance(features, dict) or not isinstance(layers, list) or not layers:
        raise ModelError(f"{model_path}: metadata does not describe the network")
    bits, max_tokens = features.get("bits"), features.get("max_tokens")
    if (
        isinstance(bits, bool)
        or not isinstance(bits, int)
        # true is an int too, and would read one token.
        or isinstance(max_tokens, bool)
        or not (max_tokens is None or (isinstance(max_tokens, int) and max_tokens > 0))
    ):
        raise ModelError(f"{model_path}: metadata describes no valid input")
    try:
        spec = FeatureSpec(bits=bits, max_tokens=max_tokens)
    except ValueError as error:
        raise ModelError(f"{model_path}: {error}") from None
    layer_specs = []
    for index, layer in enumerate(layers):
        units = layer.get("units") if isinstance(layer, dict) else None
        activation = layer.get("activation") if isinstance(layer, dict) else None
        if (
            isinstance(units, bool)
            or not isinstance(units, int)
            or not 1 <= units <= 4096
            or activation not in ACTIVATIONS
        ):
            raise ModelError(f"{model_path}: layer {index} of the network is not valid")
        layer_specs.append(LayerSpec(f"dense_{index}", units, activation))
    if layer_specs[-1].units != 1 or layer_specs[-1].activation != "sigmoid":
        raise ModelError(f"{model_path}: the network does not end in one sigmoid unit")
    if len(layer_specs) < 2 or any(
        layer.activation not in HIDDEN_ACTIVATIONS for layer in layer_specs[:-1]
    ):
        raise ModelError(
            f"{model_path}: the network's hidden layers must be ReLU or leaky ReLU layers"
        )
    return NetworkSpec(spec, layer_specs)


def learning_rule(model_path: Path, metadata: dict[str, Any]) -> LearningRule:
    """The optimizer metadata.json describes, checked."""
    learning = metadata.get("learning")
    if not isinstance(learning, dict):
        raise ModelError(f"{model_path}: metadata does not describe the optimizer")
    values = {}
    for name in ("learning_rate", "initial_accumulator", "epsilon", "label_smoothing"):
        value = learning.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ModelError(f"{model_path}: the optimizer's {name} {value!r} is not a number")
        values[name] = float(value)
    try:
        return LearningRule(**values)
    except ValueError as error:
        raise ModelError(f"{model_path}: {error}") from None


def network_metadata(network: NetworkSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``features`` and ``network`` entries of metadata.json for a network."""
    features = {
        "bits": network.features.bits,
        "max_tokens": network.features.max_tokens,
        "ngrams": "word unigrams and bigrams of the token string",
        "hash": (
            "a word's key is the CRC-32 of its UTF-8, a bigram's its two words' keys side"
            " by side (64 bits); the bucket is the top bits of key times"
            " 0x9E3779B97F4A7C15, modulo 2**64"
        ),
        "input": "1/sqrt(n) for each of the n buckets present",
    }
    layers = []
    inputs = network.features.buckets
    for layer in network.layers:
        layers.append(
            {
                "name": layer.name,
                "inputs": inputs,
                "units": layer.units,
                "activation": layer.activation,
            }
        )
        inputs = layer.units
    return features, {"layers": layers}


def learning_metadata(rule: LearningRule) -> dict[str, Any]:
    return {
        "optimizer": "adagrad",
        "learning_rate": rule.learning_rate,
        "initial_accumulator": rule.initial_accumulator,
        "epsilon": rule.epsilon,
        "label_smoothing": rule.label_smoothing,
        "loss": "binary cross-entropy, summed over the messages of a step",
        "accumulators": f"one a row for {FIRST_KERNEL} (the mean of the row's squared "
        "gradients, added up), one an element for every other variable",
    }


@dataclass
class ModelWeights:
    """A folder's weights, opened: kernel.npz and weights.npz, shapes checked.

    Nothing is read but headers until a row is asked for; the light scorer
    reads rows one at a time from the memory maps, NumPy reads arrays.
    """

    network: NetworkSpec
    kernel_file: WeightsFile
    weights_file: WeightsFile
    changed_rows: memoryview
    """The first kernel's rows changed since kernel.npz, sorted (uint32)."""

    def first_row(self, index: int) -> tuple[float, ...]:
        """Row ``index`` of the current first kernel."""
        position = bisect.bisect_left(self.changed_rows, index)
        if position < len(self.changed_rows) and self.changed_rows[position] == index:
            return self.weights_file.row(CHANGED_KERNEL_ROWS, position)
        return self.kernel_file.row(FIRST_KERNEL, index)

    def values(self, name: str) -> list[tuple[float, ...]]:
        """A small variable's rows (a bias is one row)."""
        if len(self.network.shape(name)) == 1:
            return [self.weights_file.row(name, 0)]
        return self.weights_file.rows(name)


def open_weights(model_dir: str | Path, metadata: dict[str, Any]) -> ModelWeights:
    """Open a folder's weight files and check every shape against metadata.json."""
    model_path = Path(model_dir)
    network = network_spec(model_path, metadata)
    kernel_file = WeightsFile(model_path / KERNEL_FILE)
    weights_file = WeightsFile(model_path / WEIGHTS_FILE)
    expected = {FIRST_KERNEL: network.shape(FIRST_KERNEL)}
    if kernel_file.shape(FIRST_KERNEL) != expected[FIRST_KERNEL]:
        raise ModelError(
            f"{model_path}: {KERNEL_FILE} does not hold the {expected[FIRST_KERNEL][0]} x "
            f"{expected[FIRST_KERNEL][1]} first kernel the metadata describes"
        )
    for name in network.variable_names():
        if weights_file.shape(name) != network.shape(name):
            raise ModelError(f"{model_path}: {WEIGHTS_FILE} has no {name} of the right shape")
        if weights_file.shape(name + ACCUMULATOR_SUFFIX) != network.shape(name):
            raise ModelError(f"{model_path}: {WEIGHTS_FILE} has no accumulator for {name}")
    rows_shape = weights_file.shape(CHANGED_ROWS)
    values_shape = weights_file.shape(CHANGED_KERNEL_ROWS)
    buckets = network.features.buckets
    if (
        rows_shape is None
        or len(rows_shape) != 1
        or weights_file.dtype(CHANGED_ROWS) != UINT32
        or values_shape != (rows_shape[0], network.layers[0].units)
        or weights_file.shape(CHANGED_ACCUMULATOR_ROWS) != rows_shape
    ):
        raise ModelError(f"{model_path}: {WEIGHTS_FILE} has no valid changed rows")
    if kernel_file.shape(FIRST_ACCUMULATOR) != (buckets,):
        raise ModelError(f"{model_path}: {KERNEL_FILE} has no accumulator for {FIRST_KERNEL}")
    changed_rows = weights_file.view(CHANGED_ROWS)
    # Sorted and within the kernel: a lookup could otherwise miss a row or
    # point past the end.
    if len(changed_rows) and (
        changed_rows[len(changed_rows) - 1] >= buckets or not _increasing(changed_rows)
    ):
        raise ModelError(f"{model_path}: {WEIGHTS_FILE}'s changed rows are not in order")
    return ModelWeights(network, kernel_file, weights_file, changed_rows)


def _increasing(values: memoryview) -> bool:
    """Whether the uint32 VALUES increase strictly. With NumPy where the
    caller has imported it already (a daemon reloading after each TELL,
    bulk scoring): 0.02 ms for 16,000 rows; else the comparisons made in C
    through map, 0.7 ms (a generator of them took 1.45 ms, 3.4 ms of a
    17 ms TELL in the daemon, and 8.7 ms for 100,000 rows)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        array = numpy.frombuffer(values, dtype=numpy.uint32)
        return bool(numpy.all(array[1:] > array[:-1]))
    return all(map(operator.lt, values, values[1:]))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed .npz of float32 arrays (uint32 for row numbers)."""
    import numpy as np

    from spamcli import interruption

    checked = {}
    for name, array in arrays.items():
        dtype = np.uint32 if name == CHANGED_ROWS else np.float32
        checked[name] = np.ascontiguousarray(array, dtype=dtype)
    with interruption.deferred(), open(path, "wb") as handle:
        np.savez(handle, **checked)  # type: ignore[arg-type]


def write_npz_bytes(path: Path, arrays: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    """Write an uncompressed .npz as np.savez writes one, with the standard
    library: ARRAYS maps each name to (dtype "<f4" or "<u4", shape, the
    little-endian bytes). np.load and WeightsFile read it."""
    import zipfile

    from spamcli import interruption

    with interruption.deferred(), zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, (dtype, shape, data) in arrays.items():
            if dtype not in (FLOAT32, UINT32) or len(data) != 4 * math.prod(shape):
                raise ValueError(f"{name}: {len(data)} bytes do not hold a {dtype} {shape} array")
            shape_text = f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"
            header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape_text}, }}"
            # As NumPy's format 1.0: magic, version, length, then the header
            # padded with spaces and a newline to a multiple of 64 bytes.
            padding = 64 - (10 + len(header) + 1) % 64
            header_bytes = (header + " " * (padding % 64) + "\n").encode("latin-1")
            prefix = _NPY_MAGIC + b"\x01\x00" + struct.pack("<H", len(header_bytes))
            archive.writestr(f"{name}.npy", prefix + header_bytes + data)


def link_or_copy(source: Path, destination: Path) -> None:
    """Put SOURCE's bytes at DESTINATION: a hard link where the file system
    allows one (kernel.npz is never changed in place, so the two folders may
    share it), else a copy."""
    import shutil

    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


# The .npy files np.savez writes: little-endian float32, C order.
_NPY_MAGIC = b"\x93NUMPY"
# The two array types the folder's .npz files hold.
FLOAT32 = "<f4"
UINT32 = "<u4"
_LOCAL_HEADER = struct.Struct("<4s22xHH")


class WeightsFile:
    """An .npz of the model folder read with the standard library only.

    Importing NumPy alone takes 2.3 times as long as importing click, too
    long for a filter that scores one message per process. The arrays in the
    (uncompressed) npz are located from the zip directory and their .npy
    headers, which are parsed as literals, never executed; rows are unpacked
    from a memory map, so only the rows a message uses are read.
    """

    def __init__(self, path: Path) -> None:
        self._arrays: dict[str, tuple[int, tuple[int, ...], str]] = {}
        try:
            with open_model_file(path) as handle:
                # An empty file cannot be mapped: ValueError.
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                # Kept for copy_on_write: the path may name another file by
                # then, if the folder has been replaced.
                self._fileno: int | None = os.dup(handle.fileno())
        except (OSError, ValueError) as error:
            raise ModelError(f"cannot read {path.name} in {path.parent}: {error}") from None
        try:
            # The zip directory is read from the same map, not by opening
            # PATH again: a model folder replaced in between would give the
            # directory of one file and the arrays of another.
            members = _zip_members(self._map)
            if members is None:
                members = _zip_members_with_zipfile(self._map)
            for name, compress_type, header_offset, file_size in members:
                self._arrays[name.removesuffix(".npy")] = self._locate(
                    name, compress_type, header_offset, file_size
                )
        except (
            ValueError,
            TypeError,
            SyntaxError,
            MemoryError,
            RecursionError,
            IndexError,
            struct.error,
        ) as error:
            self._map.close()
            os.close(self._fileno)  # type: ignore[arg-type]
            # Else __del__ closes it again, or whatever file has its number by then.
            self._fileno = None
            raise ModelError(f"cannot read {path.name} in {path.parent}: {error}") from None

    def _locate(
        self, name: str, compress_type: int, header_offset: int, file_size: int
    ) -> tuple[int, tuple[int, ...], str]:
        if compress_type != _ZIP_STORED:
            raise ValueError(f"{name} is compressed")
        signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(self._map, header_offset)
        if signature != b"PK\x03\x04":
            raise ValueError(f"{name}: no local header")
        start = header_offset + _LOCAL_HEADER.size + name_length + extra_length
        if self._map[start : start + 6] != _NPY_MAGIC:
            raise ValueError(f"{name} is not a .npy array")
        major = self._map[start + 6]
        if major == 1:
            (header_length,) = struct.unpack_from("<H", self._map, start + 8)
            data_start = start + 10 + header_length
        else:
            (header_length,) = struct.unpack_from("<I", self._map, start + 8)
            data_start = start + 12 + header_length
        header = ast.literal_eval(
            self._map[data_start - header_length : data_start].decode("latin-1")
        )
        if not isinstance(header, dict):
            raise ValueError(f"{name} has no .npy header")
        shape = header.get("shape")
        dtype = header.get("descr")
        if (
            dtype not in (FLOAT32, UINT32)
            or header.get("fortran_order") is not False
            or not isinstance(shape, tuple)
            or not all(isinstance(size, int) and size >= 0 for size in shape)
        ):
            raise ValueError(f"{name} is not a float32 or uint32 array in C order")
        if data_start + 4 * math.prod(shape) > start + file_size:
            raise ValueError(f"{name} is shorter than its header says")
        return data_start, shape, dtype

    def copy(self) -> io.BytesIO:
        """The whole file, as it was when opened, in memory."""
        return io.BytesIO(self._map)

    def shape(self, name: str) -> tuple[int, ...] | None:
        located = self._arrays.get(name)
        return located[1] if located else None

    def dtype(self, name: str) -> str | None:
        located = self._arrays.get(name)
        return located[2] if located else None

    def row(self, name: str, index: int) -> tuple[float, ...]:
        """Row ``index`` of a two-dimensional float32 array (or the whole of a vector)."""
        start, shape, _dtype = self._arrays[name]
        width = shape[-1]
        return struct.unpack_from(f"<{width}f", self._map, start + 4 * width * index)

    def element(self, name: str, index: int) -> float:
        """Element ``index`` of a one-dimensional float32 array."""
        start, _shape, _dtype = self._arrays[name]
        return float(struct.unpack_from("<f", self._map, start + 4 * index)[0])

    def raw(self, name: str) -> memoryview:
        """An array's bytes as stored (little-endian), without a copy."""
        start, shape, _dtype = self._arrays[name]
        return memoryview(self._map)[start : start + 4 * math.prod(shape)]

    def view(self, name: str) -> memoryview:
        """A one-dimensional uint32 array as a memoryview of the map, for the
        standard library (bisect searches it in place). Little-endian
        machines only, as the arrays are; others get a copy."""
        start, shape, _dtype = self._arrays[name]
        data = memoryview(self._map)[start : start + 4 * math.prod(shape)]
        if sys.byteorder != "little":
            return memoryview(
                bytes(b"".join(bytes(reversed(data[i : i + 4])) for i in range(0, len(data), 4)))
            ).cast("I")
        return data.cast("I")

    def array(self, name: str) -> np.ndarray:
        """A whole array as a read-only NumPy view of the memory map: nothing
        is copied, and only the pages of the rows used are read."""
        import numpy as np

        start, shape, dtype = self._arrays[name]
        return np.frombuffer(self._map, dtype=dtype, count=math.prod(shape), offset=start).reshape(
            shape
        )

    def copy_on_write(self, name: str) -> np.ndarray:
        """A whole float32 array that may be written to, backed by a private
        (copy-on-write) map of the file: untouched rows are read from the
        file when used, a written row takes memory of its own, and the file
        never changes. Learning one message into a 64 MiB kernel reads and
        copies the few pages of its rows, not the kernel."""
        import numpy as np

        start, shape, dtype = self._arrays[name]
        assert self._fileno is not None
        private = mmap.mmap(self._fileno, 0, access=mmap.ACCESS_COPY)
        return np.frombuffer(private, dtype=dtype, count=math.prod(shape), offset=start).reshape(
            shape
        )

    def rows(self, name: str) -> list[tuple[float, ...]]:
        return [self.row(name, index) for index in range(self._arrays[name][1][0])]

    def names(self) -> list[str]:
        return list(self._arrays)

    def __del__(self) -> None:
        fileno = getattr(self, "_fileno", None)
        if fileno is not None:
            os.close(fileno)
            self._fileno = None


# A zip file's end-of-central-directory record and central directory
# entries (APPNOTE 4.3.16 and 4.3.12), as np.savez writes them.
_END_OF_DIRECTORY = struct.Struct("<4s4H2LH")
_DIRECTORY_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_ZIP_STORED = 0
_ZIP64_MARKERS = (0xFFFF, 0xFFFFFFFF)


def _zip_members(data: mmap.mmap) -> list[tuple[str, int, int, int]] | None:
    """(name, compression method, local header offset, size) of each member,
    read from the zip directory at the end of DATA; None for what this short
    reader leaves to zipfile (an archive comment, zip64 fields).

    Importing zipfile (and shutil, bz2, lzma with it) cost a one-message
    predict 3 ms, a twentieth of its start-up; np.savez writes the plain
    layout this reads.
    """
    end = len(data) - _END_OF_DIRECTORY.size
    if end < 0 or data[end : end + 4] != b"PK\x05\x06":
        return None
    fields = _END_OF_DIRECTORY.unpack_from(data, end)
    count, directory_size, directory_offset = fields[4], fields[5], fields[6]
    if any(value in _ZIP64_MARKERS for value in fields[1:7]):
        return None
    if directory_offset + directory_size > end:
        raise ValueError("the zip directory lies outside the file")
    members = []
    position = directory_offset
    for _ in range(count):
        entry = _DIRECTORY_ENTRY.unpack_from(data, position)
        if entry[0] != b"PK\x01\x02":
            raise ValueError("bad zip directory entry")
        flag_bits, compress_type = entry[5], entry[6]
        file_size, name_length, extra_length, comment_length = entry[11:15]
        header_offset = entry[18]
        if file_size in _ZIP64_MARKERS or header_offset in _ZIP64_MARKERS:
            return None
        name_start = position + _DIRECTORY_ENTRY.size
        raw_name = data[name_start : name_start + name_length]
        # Bit 11: the name is UTF-8; else code page 437, as zipfile reads
        # it, which agrees with ASCII (and needs no codec module for it).
        encoding = "utf-8" if flag_bits & 0x800 else "ascii" if raw_name.isascii() else "cp437"
        name = raw_name.decode(encoding)
        members.append((name, compress_type, header_offset, file_size))
        position = name_start + name_length + extra_length + comment_length
    return members


def _zip_members_with_zipfile(mapped: mmap.mmap) -> list[tuple[str, int, int, int]]:
    import zipfile

    try:
        with zipfile.ZipFile(mapped) as archive:  # type: ignore[call-overload]
            return [
                (info.filename, info.compress_type, info.header_offset, info.file_size)
                for info in archive.infolist()
            ]
    except zipfile.BadZipFile as error:
        raise ValueError(str(error)) from None


@contextlib.contextmanager
def model_lock(model_dir: str | Path) -> Iterator[None]:
    """An exclusive lock on a model folder, held on a file beside it (the
    folder itself is replaced by every write, and a lock inside it would go
    with it). The lock file is left in place: removing it would let a
    waiting process lock a file no newcomer opens."""
    # The folder a write replaces (write_model_dir resolves a link): through a
    # link and through its target, two learns took two locks and one lost
    # its message in 10 tries of 10.
    target = _resolved(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    try:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ModelError(f"cannot lock {target}: {error.strerror or error}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def write_model_dir(model_dir: str | Path, write_contents: Callable[[Path], None]) -> Path:
    """Write a model folder atomically.

    ``write_contents`` fills a temporary sibling folder; it is synced to disk
    and then put in place with one rename (an atomic exchange where the
    folder already exists), so a crash, Ctrl-C or full disk at any point
    leaves the previous model whole, and a reader never sees a mixture.
    Staging folders that killed writers left beside it are removed first
    (see remove_abandoned_staging).

    A MODEL_DIR that is a symbolic link is resolved once, and the folder it
    points to is the one replaced, so the link goes on pointing at the new
    model; returns the folder written. (Exchanging the link itself put a
    folder in its place, left the link's target as it was, and left the
    link beside it as ``.NAME.new-XXXX`` for good.)
    """
    # Imported here: a filter scoring one message never writes a model.
    import shutil
    import tempfile

    from spamcli import interruption

    target = _resolved(model_dir)
    check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
    except OSError as error:
        raise _not_saved(target, error) from None
    staging_lock = None
    try:
        # mkdtemp makes the folder private; a model is read by mail filters
        # running as other users, so give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        try:
            staging_lock = _lock_folder(staging, wait=True)
            remove_abandoned_staging(target)
            write_contents(staging)
            _sync_tree(staging)
        except OSError as error:
            # A full disk (ENOSPC), a file size limit (EFBIG), a quota:
            # nothing has been replaced yet.
            raise _not_saved(target, error) from None
        # The last moment to honour a Ctrl-C or SIGTERM that TensorFlow
        # swallowed while the contents were written.
        interruption.check()
        if target.exists():
            check_replaceable(target)
            _exchange(staging, target)  # staging now holds the previous model
            shutil.rmtree(staging, ignore_errors=True)
        else:
            os.rename(staging, target)
        _sync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if staging_lock is not None:
            os.close(staging_lock)
    return target


# A writer holds an exclusive lock (flock) on its staging folder from the
# moment it exists until it is put in place or removed; the kernel drops
# the lock when the writer dies, SIGKILL included. A staging folder that
# no one holds and that is older than this was left by a writer that was
# killed or lost its machine (a power cut): half a model, never of use.
# The age covers the microseconds between a writer creating its folder and
# locking it, and writers of versions that took no lock.
ABANDONED_STAGING_SECONDS = 600


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.new-"


def _resolved(model_dir: str | Path) -> Path:
    """MODEL_DIR absolute, with every symbolic link in it followed (as far
    as it exists): the folder that a write replaces, and beside which its
    staging folders are."""
    return Path(model_dir).resolve()


def _lock_folder(directory: Path, wait: bool) -> int | None:
    """An open descriptor holding an exclusive lock on DIRECTORY, or None
    if another process holds one (only when not waiting)."""
    import fcntl

    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def remove_abandoned_staging(model_dir: str | Path) -> list[Path]:
    """Remove the staging folders that killed writers left beside MODEL_DIR
    (see ABANDONED_STAGING_SECONDS); return those removed. Never raises for
    a folder it cannot inspect or remove: it is left as it was."""
    import shutil
    import time

    target = _resolved(model_dir)
    prefix = _staging_prefix(target)
    removed: list[Path] = []
    try:
        with os.scandir(target.parent) as entries:
            candidates = [entry for entry in entries if entry.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for entry in candidates:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < ABANDONED_STAGING_SECONDS:
                continue
            lock = _lock_folder(Path(entry.path), wait=False)
        except OSError:
            continue
        if lock is None:
            continue  # a live writer's
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(lock)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


def _not_saved(target: Path, error: OSError) -> ModelError:
    reason = " ".join((error.strerror or str(error) or type(error).__name__).split())
    kept = "the previous model is unchanged" if target.exists() else "nothing was written"
    return ModelError(f"cannot save the model in {target}: {reason}; {kept}")


def check_replaceable(model_dir: str | Path) -> None:
    """Refuse, before any work, to write a model over anything but a missing
    path, an empty folder or another model folder (a symbolic link is
    judged by what it points to, which is what write_model_dir replaces)."""
    target = _resolved(model_dir)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise ModelError(f"{target} exists and is not a folder; not replacing it")
    if not (target / METADATA_FILE).is_file() and any(target.iterdir()):
        raise ModelError(f"{target} exists and is not a spamcli model folder; not replacing it")


def copy_kept_files(
    source_dir: str | Path, destination_dir: str | Path, skip_names: Collection[str]
) -> list[str]:
    """Copy the regular files of SOURCE_DIR whose names are not in SKIP_NAMES
    into DESTINATION_DIR, with their mode and times; return the names copied,
    sorted.

    For a command that rewrites a model folder and keeps what it does not
    write itself (a model card, notes). Anything but a regular file is
    skipped without a word: a symbolic link is never followed (``ln -s
    /etc/passwd m/notes.txt`` made ``learn`` copy /etc/passwd into the model
    as notes.txt), and folders, FIFOs (never waited for), sockets and devices
    are left out. Each file is opened without following a link and checked
    on the open descriptor, so a link put in its place meanwhile is skipped
    too. A file is never written over: DESTINATION_DIR's own files win.
    Raises OSError for a file that cannot be read or written.
    """
    import shutil

    source_path, destination_path = Path(source_dir), Path(destination_dir)
    with os.scandir(source_path) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if entry.name not in skip_names and entry.is_file(follow_symlinks=False)
        )
    copied = []
    for name in names:
        try:
            source = open_model_file(source_path / name)
        except (ModelError, FileNotFoundError):
            continue  # no longer a regular file, or gone
        with source:
            status = os.fstat(source.fileno())
            destination_flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            try:
                descriptor = os.open(destination_path / name, destination_flags, 0o600)
            except FileExistsError:
                continue
            with open(descriptor, "wb") as destination:
                shutil.copyfileobj(source, destination)
                os.fchmod(destination.fileno(), stat.S_IMODE(status.st_mode))
        os.utime(destination_path / name, ns=(status.st_atime_ns, status.st_mtime_ns))
        copied.append(name)
    return copied


def _sync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _sync_dir(directory)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def libc_renameat2() -> Any:
    """The C library's renameat2, or None where it has none (not Linux, or a
    glibc older than 2.28). Looked up among the symbols the process has
    loaded: ctypes.util.find_library runs and parses ldconfig, 1.6 ms of a
    learn here."""
    import ctypes

    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return None


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(new_path: Path, old_path: Path) -> None:
    """Swap two folders in one step (Linux renameat2), else rename twice.

    The fallback leaves a moment in which the folder does not exist; a
    reader then gets "no model folder", never a half-written model.
    """
    renameat2 = libc_renameat2()
    if renameat2 is not None:
        result = renameat2(
            _AT_FDCWD, os.fsencode(new_path), _AT_FDCWD, os.fsencode(old_path), _RENAME_EXCHANGE
        )
        if result == 0:
            return
    aside = new_path.with_name(new_path.name + ".old")
    os.rename(old_path, aside)
    os.rename(new_path, old_path)
    os.rename(aside, new_path)


def write_metadata(directory: Path, metadata: dict[str, Any]) -> None:
    (directory / METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
