"""The model folder: what is in it, and writing it so it is never half-written.

A model folder holds:

- ``metadata.json``: format version, versions of spamcli/TensorFlow/Keras,
  header policy, hyperparameters, threshold, training counts and
  fingerprint, validation metrics, creation time;
- ``model.keras``: the Keras model (vectorizer included), without optimizer
  state; the source of truth, loaded with ``safe_mode=True``;
- ``vocabulary.txt`` and ``weights.npz``: the same model exported for
  scoring without TensorFlow (one n-gram a line in index order; the Dense
  kernels and biases as plain arrays, read with ``allow_pickle=False``);
- ``vocabulary.index`` (optional, found by its presence): a hash table over
  vocabulary.txt that the scorer memory-maps instead of building a
  dictionary (see vocabulary.py). A folder without it, or with one that no
  longer matches vocabulary.txt, is read as before;
- after ``spamcli learn``: ``learned.jsonl`` and ``base_weights.npz`` (see
  learning.py).

File names are fixed here, never read from metadata, so no path in a model
folder can point outside it. Nothing in a model folder is executed on load.
"""

from __future__ import annotations

import ast
import io
import json
import math
import mmap
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from spamcli import vocabulary as vocabulary_index
from spamcli.config import HEADER_POLICIES
from spamcli.errors import ModelError

# Version 2 records how the bag of n-grams is scaled ("normalization");
# version 1 had only "l2_normalize" (true or false), which still reads. A
# spamcli that reads version 1 only refuses a version 2 folder instead of
# scoring it with the wrong scaling.
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
METADATA_FILE = "metadata.json"
KERAS_FILE = "model.keras"
VOCABULARY_FILE = "vocabulary.txt"
WEIGHTS_FILE = "weights.npz"
VOCABULARY_INDEX_FILE = "vocabulary.index"
REQUIRED_FILES = (METADATA_FILE, KERAS_FILE, VOCABULARY_FILE, WEIGHTS_FILE)
# Written by every training since it was added; a folder without it is read
# as before, only slower to start.
OPTIONAL_FILES = (VOCABULARY_INDEX_FILE,)
# Optional, written by `spamcli learn` (see learning.py): the learned
# messages, one JSON object a line, and the trained Dense weights that
# learning starts from, in the layout of WEIGHTS_FILE.
LEARNED_FILE = "learned.jsonl"
BASE_WEIGHTS_FILE = "base_weights.npz"

# Activations the exported Dense layers may use; anything else is refused.
ACTIVATIONS = ("relu", "sigmoid")
# How the multi-hot bag is scaled before the first Dense layer: divided by
# the number of n-grams present ("count"), by its square root, which is its
# L2 norm ("l2"), or not at all ("none").
NORMALIZATIONS = ("count", "l2", "none")


@dataclass(frozen=True)
class DenseWeights:
    kernel: np.ndarray
    bias: np.ndarray
    activation: str


@dataclass(frozen=True)
class ScoringExport:
    """Everything the TensorFlow-free scorer needs."""

    vocabulary: list[str]
    normalization: str  # one of NORMALIZATIONS
    layers: list[DenseWeights]


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    """Read and check ``metadata.json``; refuse unknown format versions."""
    model_path = Path(model_dir)
    if not model_path.is_dir():
        raise ModelError(f"no model folder at {model_path}")
    metadata_path = model_path / METADATA_FILE
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
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
    if isinstance(version, bool) or version not in READABLE_FORMAT_VERSIONS:
        readable = " and ".join(str(number) for number in READABLE_FORMAT_VERSIONS)
        raise ModelError(
            f"{model_path} has model format version {version!r}; this spamcli reads "
            f"versions {readable} (retrain the model, or upgrade spamcli)"
        )
    for name in REQUIRED_FILES:
        if not (model_path / name).is_file():
            raise ModelError(f"{model_path} is incomplete: {name} is missing")
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
    export = metadata.get("export")
    layers = export.get("layers") if isinstance(export, dict) else None
    if not isinstance(layers, list) or not all(isinstance(spec, dict) for spec in layers):
        raise ModelError(f"{model_path}: metadata does not describe the scoring export")
    normalization(model_path, metadata)


def load_keras_model(model_dir: str | Path) -> Any:
    """The folder's Keras model, loaded with ``safe_mode=True``.

    A ``.keras`` file may hold the bytecode of a Lambda layer; safe mode
    refuses to deserialize it, so loading a model never runs code from the
    file. Any failure, that refusal included, is a one-line ModelError.
    (predict and evaluate never call this: they score from the export.)
    """
    import keras

    import spamcli.model  # noqa: F401  (registers the custom layer the file names)

    keras_path = Path(model_dir) / KERAS_FILE
    try:
        return keras.saving.load_model(keras_path, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile and h5 errors
        text = " ".join(str(error).split())
        if "safe_mode" in text or "arbitrary code" in text:
            # Keras' own message is a paragraph, sometimes wrapped in another.
            reason = "it holds Python code (a Lambda layer or a custom function), never loaded"
        else:
            reason = text[:300] or type(error).__name__
        raise ModelError(f"cannot load {keras_path}: {reason}") from None


def read_vocabulary(model_dir: str | Path) -> list[str]:
    """The n-grams of the vectorizer, in index order."""
    try:
        text = (Path(model_dir) / VOCABULARY_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read the vocabulary in {model_dir}: {error}") from None
    vocabulary = text.split("\n")
    if vocabulary and vocabulary[-1] == "":
        vocabulary.pop()
    return vocabulary


def read_vocabulary_lookup(
    model_dir: str | Path,
) -> tuple[vocabulary_index.VocabularyIndex | dict[str, int], list[str] | None]:
    """The n-gram → index lookup: the memory-mapped vocabulary.index where
    the folder has one that matches vocabulary.txt, else a dictionary built
    from vocabulary.txt (returned too, as it has been read)."""
    model_path = Path(model_dir)
    index_path = model_path / VOCABULARY_INDEX_FILE
    if index_path.is_file():
        try:
            return vocabulary_index.VocabularyIndex(index_path, model_path / VOCABULARY_FILE), None
        except (OSError, ValueError):
            pass  # unreadable or stale: vocabulary.txt is the source of truth
    vocabulary = read_vocabulary(model_path)
    return dict(zip(vocabulary, range(len(vocabulary)), strict=True)), vocabulary


def write_vocabulary_index(model_dir: str | Path) -> Path:
    """Add (or rewrite) vocabulary.index in an existing model folder.

    The file is written beside its final name and renamed into place, so a
    scorer reading the folder meanwhile sees either no index or a whole one.
    """
    model_path = Path(model_dir)
    read_metadata(model_path)  # refuse anything that is not a readable model folder
    try:
        data = (model_path / VOCABULARY_FILE).read_bytes()
        contents = vocabulary_index.build_index(data)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot index the vocabulary in {model_path}: {error}") from None
    target = model_path / VOCABULARY_INDEX_FILE
    staging = model_path / f".{VOCABULARY_INDEX_FILE}.new-{os.getpid()}"
    try:
        with open(staging, "wb") as handle:
            handle.write(contents)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, target)
        _sync_dir(model_path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise ModelError(f"cannot write {target}: {error}") from None
    return target


def read_export(
    model_dir: str | Path,
    metadata: dict[str, Any],
    vocabulary: list[str] | None = None,
    weights: WeightsFile | None = None,
) -> ScoringExport:
    """Read the vocabulary and Dense weights, checking that their shapes agree.

    WEIGHTS, an open weights file, is read instead of the folder's: a
    scorer that loaded the folder before `train` replaced it keeps scoring
    with the weights it loaded, never with the new model's.
    """
    import numpy as np

    model_path = Path(model_dir)
    if vocabulary is None:
        vocabulary = read_vocabulary(model_path)
    source: Any = model_path / WEIGHTS_FILE if weights is None else weights.copy()
    try:
        with np.load(source, allow_pickle=False) as arrays:
            stored = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read the scoring export in {model_path}: {error}") from None
    layer_specs = metadata.get("export", {}).get("layers", [])
    layers: list[DenseWeights] = []
    width = len(vocabulary)
    for spec in layer_specs:
        name, activation = spec.get("name"), spec.get("activation")
        kernel, bias = stored.get(f"{name}.kernel"), stored.get(f"{name}.bias")
        if kernel is None or bias is None or activation not in ACTIVATIONS:
            raise ModelError(f"{model_path}: the scoring export has no valid layer {name!r}")
        if kernel.ndim != 2 or kernel.shape[0] != width or bias.shape != (kernel.shape[1],):
            raise ModelError(_misfit(model_path, name, kernel.shape, width, first=not layers))
        layers.append(DenseWeights(kernel.astype(np.float32), bias.astype(np.float32), activation))
        width = kernel.shape[1]
    if not layers or width != 1 or layers[-1].activation != "sigmoid":
        raise ModelError(f"{model_path}: the scoring export does not end in one sigmoid unit")
    return ScoringExport(vocabulary, normalization(model_path, metadata), layers)


@dataclass(frozen=True)
class LightLayer:
    """One Dense layer for the standard-library scorer: its kernel is read
    row by row from the memory-mapped weights file."""

    name: str
    units: int
    bias: tuple[float, ...]
    activation: str
    # The kernel's rows, read once, for every layer but the wide first one.
    rows: list[tuple[float, ...]] | None


@dataclass(frozen=True)
class LightExport:
    normalization: str  # one of NORMALIZATIONS
    layers: list[LightLayer]
    weights: WeightsFile


# The .npy files np.savez writes: little-endian float32, C order.
_NPY_MAGIC = b"\x93NUMPY"
_FLOAT32 = "<f4"
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LAYER_NAME = re.compile(r"dense_\d+")


class WeightsFile:
    """``weights.npz`` read with the standard library only.

    Importing NumPy alone takes 2.3 times as long as importing click, too
    long for a filter that scores one message per process. The arrays in the
    (uncompressed) npz are located from the zip directory and their .npy
    headers, which are parsed as literals, never executed; rows are unpacked
    from a memory map, so only the rows a message uses are read.
    """

    def __init__(self, path: Path) -> None:
        self._arrays: dict[str, tuple[int, tuple[int, ...]]] = {}
        try:
            with open(path, "rb") as handle:
                # An empty file cannot be mapped: ValueError.
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as error:
            raise ModelError(f"cannot read the scoring export in {path.parent}: {error}") from None
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
            raise ModelError(f"cannot read the scoring export in {path.parent}: {error}") from None

    def _locate(
        self, name: str, compress_type: int, header_offset: int, file_size: int
    ) -> tuple[int, tuple[int, ...]]:
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
        if (
            header.get("descr") != _FLOAT32
            or header.get("fortran_order") is not False
            or not isinstance(shape, tuple)
            or not all(isinstance(size, int) and size >= 0 for size in shape)
        ):
            raise ValueError(f"{name} is not a float32 array in C order")
        if data_start + 4 * math.prod(shape) > start + file_size:
            raise ValueError(f"{name} is shorter than its header says")
        return data_start, shape

    def copy(self) -> io.BytesIO:
        """The whole file, as it was when opened, in memory."""
        return io.BytesIO(self._map)

    def shape(self, name: str) -> tuple[int, ...] | None:
        located = self._arrays.get(name)
        return located[1] if located else None

    def row(self, name: str, index: int) -> tuple[float, ...]:
        """Row ``index`` of a two-dimensional array (or the whole of a vector)."""
        start, shape = self._arrays[name]
        width = shape[-1]
        return struct.unpack_from(f"<{width}f", self._map, start + 4 * width * index)

    def array(self, name: str) -> np.ndarray:
        """A whole array as a read-only NumPy view of the memory map: nothing
        is copied, and only the pages of the rows used are read."""
        import numpy as np

        start, shape = self._arrays[name]
        return np.frombuffer(
            self._map, dtype=_FLOAT32, count=math.prod(shape), offset=start
        ).reshape(shape)

    def rows(self, name: str) -> list[tuple[float, ...]]:
        return [self.row(name, index) for index in range(self._arrays[name][1][0])]


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


def read_light_export(
    model_dir: str | Path, metadata: dict[str, Any], vocabulary_size: int
) -> LightExport:
    """The export for the standard-library scorer, checked as read_export checks it."""
    model_path = Path(model_dir)
    weights = WeightsFile(model_path / WEIGHTS_FILE)
    layers: list[LightLayer] = []
    width = vocabulary_size
    for spec in metadata["export"]["layers"]:
        name, activation = spec.get("name"), spec.get("activation")
        if not isinstance(name, str) or not _LAYER_NAME.fullmatch(name):
            raise ModelError(f"{model_path}: the scoring export has no valid layer {name!r}")
        kernel_shape, bias_shape = weights.shape(f"{name}.kernel"), weights.shape(f"{name}.bias")
        if kernel_shape is None or bias_shape is None or activation not in ACTIVATIONS:
            raise ModelError(f"{model_path}: the scoring export has no valid layer {name!r}")
        if len(kernel_shape) != 2 or kernel_shape[0] != width or bias_shape != kernel_shape[1:]:
            raise ModelError(_misfit(model_path, name, kernel_shape, width, first=not layers))
        bias = weights.row(f"{name}.bias", 0)
        rows = weights.rows(f"{name}.kernel") if layers else None
        layers.append(LightLayer(name, kernel_shape[1], bias, activation, rows))
        width = kernel_shape[1]
    if not layers or width != 1 or layers[-1].activation != "sigmoid":
        raise ModelError(f"{model_path}: the scoring export does not end in one sigmoid unit")
    return LightExport(normalization(model_path, metadata), layers, weights)


def normalization(model_path: Path, metadata: dict[str, Any]) -> str:
    """How the folder's model scales the bag of n-grams (one of NORMALIZATIONS)."""
    export = metadata["export"]
    if metadata["format_version"] == 1:
        return "l2" if export.get("l2_normalize") else "none"
    value = export.get("normalization")
    if value not in NORMALIZATIONS:
        raise ModelError(f"{model_path}: unknown normalization {value!r} in the scoring export")
    return str(value)


def upgrade_metadata(metadata: dict[str, Any]) -> None:
    """Bring a readable folder's metadata to the current format version, in
    place, for a command that rewrites the folder (``learn``): version 1's
    export descriptions (the folder's own, and the trained one a learned
    folder keeps) say ``"l2_normalize"``, version 2's ``"normalization"``."""
    if metadata["format_version"] == 1:
        learned = metadata.get("learned")
        descriptions = [metadata["export"]]
        if isinstance(learned, dict) and isinstance(learned.get("base_export"), dict):
            descriptions.append(learned["base_export"])
        for description in descriptions:
            description["normalization"] = (
                "l2" if description.pop("l2_normalize", False) else "none"
            )
    metadata["format_version"] = FORMAT_VERSION


def _misfit(
    model_path: Path, name: object, kernel_shape: tuple[int, ...], width: int, first: bool
) -> str:
    """Why a layer's kernel does not fit: the first layer's rows must be the
    vocabulary's n-grams, every other layer's the units of the one before."""
    if first and len(kernel_shape) == 2 and kernel_shape[0] != width:
        return (
            f"{model_path}: layer {name!r} does not fit the vocabulary: {VOCABULARY_FILE} "
            f"has {width} n-grams, the layer {kernel_shape[0]} rows"
        )
    return f"{model_path}: layer {name!r} does not fit the layer before it"


def write_export(directory: Path, export: ScoringExport) -> dict[str, Any]:
    """Write the vocabulary and weights; return the metadata that describes them."""
    import numpy as np

    for term in export.vocabulary:
        if "\n" in term or "\r" in term:
            raise ValueError(f"vocabulary term contains a newline: {term!r}")
    vocabulary_data = "".join(term + "\n" for term in export.vocabulary).encode("utf-8")
    (directory / VOCABULARY_FILE).write_bytes(vocabulary_data)
    (directory / VOCABULARY_INDEX_FILE).write_bytes(vocabulary_index.build_index(vocabulary_data))
    arrays: dict[str, np.ndarray] = {}
    specs = []
    for index, layer in enumerate(export.layers):
        name = f"dense_{index}"
        arrays[f"{name}.kernel"] = np.ascontiguousarray(layer.kernel, dtype=np.float32)
        arrays[f"{name}.bias"] = np.ascontiguousarray(layer.bias, dtype=np.float32)
        specs.append({"name": name, "activation": layer.activation})
    with open(directory / WEIGHTS_FILE, "wb") as weights_file:
        np.savez(weights_file, **arrays)  # type: ignore[arg-type]
    return {"normalization": export.normalization, "layers": specs}


def write_model_dir(model_dir: str | Path, write_contents: Callable[[Path], None]) -> Path:
    """Write a model folder atomically.

    ``write_contents`` fills a temporary sibling folder; it is synced to disk
    and then put in place with one rename (an atomic exchange where the
    folder already exists), so a crash, Ctrl-C or full disk at any point
    leaves the previous model whole, and a reader never sees a mixture.
    Staging folders that killed writers left beside it are removed first
    (see remove_abandoned_staging).
    """
    # Imported here: a filter scoring one message never writes a model.
    import shutil
    import tempfile

    from spamcli import interruption

    target = Path(model_dir).absolute()
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

    target = Path(model_dir).absolute()
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
    path, an empty folder or another model folder."""
    target = Path(model_dir)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise ModelError(f"{target} exists and is not a folder; not replacing it")
    if not (target / METADATA_FILE).is_file() and any(target.iterdir()):
        raise ModelError(f"{target} exists and is not a spamcli model folder; not replacing it")


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


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(new_path: Path, old_path: Path) -> None:
    """Swap two folders in one step (Linux renameat2), else rename twice.

    The fallback leaves a moment in which the folder does not exist; a
    reader then gets "no model folder", never a half-written model.
    """
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    renameat2 = (
        getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    )
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
