"""A model folder → a TensorFlow SavedModel that TensorFlow Serving loads.

The SavedModel holds the folder's current network (kernel.npz with the rows
``spamcli learn`` changed since, from weights.npz: online.Network.from_folder
reads them) and one signature, ``serving_default``:

- input ``buckets``: int64, shape [messages, k], each row one message's
  buckets (features.feature_array: distinct, any order) padded with -1 to
  the longest row of the request;
- output ``spam_probability``: float32, shape [messages].

TensorFlow has no CRC-32 of strings, the hash the buckets are made with
(features.py), and a model that took raw mail would need spamcli's MIME
and HTML parsing in the graph. So spamcli parses, tokenizes and hashes, on
the client (``serving_buckets``, standard library only, the code ``spamcli
predict`` runs), and the server multiplies. A padded dense tensor, not a
RaggedTensor: TF Serving's predict API feeds named dense tensors, and a
ragged input splits into component tensors a client would have to name
(TF Serving issues #2084, #2222).

The folder also gets ``assets.extra/spamcli.json``: what a client needs to
compute the input (header policy, bits, max_tokens) and the model's
cut-offs. TF Serving ignores assets.extra.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spamcli import __version__, artifacts
from spamcli.errors import ModelError, SpamcliError
from spamcli.features import FeatureSpec, feature_indices
from spamcli.tokens import message_tokens

SIGNATURE = "serving_default"
INPUT_NAME = "buckets"
OUTPUT_NAME = "spam_probability"
PADDING = -1
INFO_FILE = Path("assets.extra") / "spamcli.json"


class ExportError(SpamcliError):
    """The SavedModel could not be written where asked."""


@dataclass(frozen=True)
class ExportReport:
    saved_model_dir: Path
    buckets: int
    layers: int
    changed_rows: int
    """Rows of the first kernel that learning had changed, taken from weights.npz."""


def export_saved_model(model_dir: str | Path, saved_model_dir: str | Path) -> ExportReport:
    """Write MODEL_DIR's current network as a SavedModel in SAVED_MODEL_DIR.

    SAVED_MODEL_DIR must not exist or be empty; it is written beside itself
    and renamed into place, so it is never half-written. Raises ModelError
    for an unreadable model folder, ExportError for the target.
    """
    import numpy as np
    import tensorflow as tf

    from spamcli.online import Network

    model_path = Path(model_dir)
    target = Path(os.path.abspath(saved_model_dir))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportError(f"{target} exists and is not an empty folder; export to a new one")
    with contextlib.ExitStack() as stack:
        # The folder's lock keeps a `spamcli learn` from replacing it while it
        # is read; a folder this user cannot write (the built-in model, a
        # system-wide one) cannot be locked, and is read as it is.
        with contextlib.suppress(ModelError):
            stack.enter_context(artifacts.model_lock(model_path))
        metadata = artifacts.read_metadata(model_path)
        network = Network.from_folder(model_path, metadata)
        changed_rows = len(network.changed)
        module = _serving_module(
            [np.array(layer.kernel, dtype=np.float32) for layer in network.layers],
            [np.array(layer.bias, dtype=np.float32) for layer in network.layers],
            [layer.activation for layer in network.layers],
        )
    del network
    signature = module.spam_probability.get_concrete_function(
        tf.TensorSpec([None, None], tf.int64, name=INPUT_NAME)
    )
    staging = target.parent / f".{target.name}.{os.urandom(4).hex()}.partial"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE: signature})
        info_path = staging / INFO_FILE
        info_path.parent.mkdir(parents=True, exist_ok=True)
        info_path.write_text(json.dumps(_serving_info(model_path, metadata), indent=2) + "\n")
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except OSError as error:
        raise ExportError(f"cannot write the SavedModel to {target}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(target, module.buckets, len(module.kernels), changed_rows)


def _serving_info(model_path: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "exported_by": f"spamcli {__version__}",
        "model_dir": str(model_path.resolve()),
        "signature": SIGNATURE,
        "input": {
            "name": INPUT_NAME,
            "dtype": "int64",
            "shape": ["messages", "k"],
            "padding": PADDING,
            "meaning": "each message's distinct buckets (spamcli.features.feature_array), "
            "padded with -1",
        },
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["messages"]},
        "header_policy": metadata["header_policy"],
        "features": metadata["features"],
        "threshold": metadata["threshold"],
        "ham_cutoff": metadata.get("ham_cutoff", metadata["threshold"]),
    }


def _serving_module_class() -> Any:
    import tensorflow as tf

    class ServingModule(tf.Module):  # type: ignore[misc, name-defined]
        """The network as TensorFlow variables, and the serving function."""

        def __init__(self, kernels: list[Any], biases: list[Any], activations: list[str]) -> None:
            super().__init__(name="spamcli")
            self.kernels = [
                tf.Variable(kernel, trainable=False, name=f"dense_{index}_kernel")
                for index, kernel in enumerate(kernels)
            ]
            self.biases = [
                tf.Variable(bias, trainable=False, name=f"dense_{index}_bias")
                for index, bias in enumerate(biases)
            ]
            self.activations = list(activations)
            self.buckets = int(kernels[0].shape[0])

        @tf.function
        def spam_probability(self, buckets: Any) -> dict[str, Any]:
            present = buckets >= 0
            # A bucket outside the kernel is an error, as the model cannot
            # score it; -1 is padding.
            tf.debugging.assert_less(
                buckets, tf.constant(self.buckets, tf.int64), message="bucket out of range"
            )
            rows = tf.gather(self.kernels[0], tf.where(present, buckets, tf.zeros_like(buckets)))
            mask = tf.cast(present, tf.float32)
            sums = tf.reduce_sum(rows * mask[:, :, None], axis=1)
            count = tf.reduce_sum(mask, axis=1)
            # features.input_value: 1/sqrt(n) for each of n present buckets, 0 for none.
            value = tf.math.divide_no_nan(tf.ones_like(count), tf.sqrt(count))
            hidden = _activation(sums * value[:, None] + self.biases[0], self.activations[0])
            for kernel, bias, activation in zip(
                self.kernels[1:], self.biases[1:], self.activations[1:], strict=True
            ):
                hidden = _activation(tf.matmul(hidden, kernel) + bias, activation)
            return {OUTPUT_NAME: tf.reshape(hidden, [-1])}

    def _activation(values: Any, activation: str) -> Any:
        if activation == "relu":
            return tf.nn.relu(values)
        if activation == "leaky_relu":
            return tf.nn.leaky_relu(values, alpha=artifacts.LEAKY_SLOPE)
        if activation == "sigmoid":
            return tf.sigmoid(values)
        raise ValueError(f"unknown activation {activation!r}")

    return ServingModule


def _serving_module(kernels: list[Any], biases: list[Any], activations: list[str]) -> Any:
    return _serving_module_class()(kernels, biases, activations)


# --------------------------------------------------------------------------
# The client's side


def serving_buckets(
    raw_messages: Iterable[bytes], header_policy: str, features: FeatureSpec
) -> list[list[int]]:
    """The signature's input for raw messages: each one's buckets, as
    ``spamcli predict`` computes them, padded with -1 to the longest. Needs
    the standard library only (and spamcli's light install)."""
    return padded(
        [
            feature_indices(message_tokens(raw, header_policy, features.max_tokens), features)
            for raw in raw_messages
        ]
    )


def read_serving_info(saved_model_dir: str | Path) -> dict[str, Any]:
    """The exported SavedModel's assets.extra/spamcli.json."""
    info: dict[str, Any] = json.loads((Path(saved_model_dir) / INFO_FILE).read_text())
    return info


def serving_features(info: dict[str, Any]) -> tuple[str, FeatureSpec]:
    """(header policy, FeatureSpec) from read_serving_info's result."""
    features = info["features"]
    return info["header_policy"], FeatureSpec(
        bits=int(features["bits"]), max_tokens=features.get("max_tokens")
    )


def padded(rows: Sequence[Sequence[int]]) -> list[list[int]]:
    """ROWS of buckets padded with -1 to the longest."""
    width = max((len(row) for row in rows), default=0)
    return [list(row) + [PADDING] * (width - len(row)) for row in rows]
