"""Learning one message at a time, in NumPy: the network's own loss, the
training's own optimizer, continued where training stopped.

A filter lives on a stream: mail arrives, the user corrects a verdict, and
the correction must count at once. Each message learned is one step of the
optimizer ``spamcli train`` used (model.py's BucketAdagrad) on the
network's loss for that message alone, from the optimizer's state as
training (or the last learn) left it:

- the loss is binary cross-entropy of the spam probability against the
  label, smoothed as in training (0.05 / 0.95 with label smoothing 0.1);
- every variable takes an Adagrad step, g being its gradient:
  acc += g**2, variable -= learning_rate * g / sqrt(acc + epsilon); for the
  first kernel the accumulator is one a row, acc[r] += mean(g[r]**2), and
  only the rows of the message's buckets move.

Because the input is hashed (features.py), a word training never saw has a
row of its own, whose accumulator is still at its initial value: its first
step is a full learning_rate, so one message is enough to teach a new
spam campaign. tests/test_parity.py checks that one step here equals one
Keras step of BucketAdagrad on the same weights.

Nothing here imports TensorFlow. A cold ``spamcli learn`` maps the folder's
kernel copy-on-write, so it reads and copies only the rows it learns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spamcli import artifacts
from spamcli.artifacts import (
    ACCUMULATOR_SUFFIX,
    CHANGED_ACCUMULATOR_ROWS,
    CHANGED_KERNEL_ROWS,
    CHANGED_ROWS,
    FIRST_ACCUMULATOR,
    FIRST_KERNEL,
    NetworkSpec,
    slope_below_zero,
)
from spamcli.config import LearningRule
from spamcli.features import input_value
from spamcli.online_light import sigmoid

# kernel.npz is rewritten with the changed rows merged in once this share
# of its rows has changed: weights.npz, rewritten by every learn, stays
# small (2**20 / 16 rows of 16 units is 4 MiB), and the kernel is written
# once in thousands of messages rather than at every one.
COMPACTION_SHARE = 1 / 16


@dataclass
class Layer:
    kernel: np.ndarray  # float32
    bias: np.ndarray  # float32
    activation: str


class ChangedRows:
    """The rows of a first kernel of BUCKETS rows that learning changed: a
    flag a row. Kept as a set of Python ints, they took 1.9 ms (sorted()),
    then 0.8-1.1 ms (np.fromiter and np.sort), to become the sorted array
    that every write of weights.npz holds, 16,000 rows into a daemon's
    TELLs; np.flatnonzero reads the flags of 2**20 rows in 0.3 ms."""

    def __init__(self, buckets: int, rows: np.ndarray | None = None) -> None:
        self._flags = np.zeros(buckets, dtype=bool)
        if rows is not None:
            self._flags[rows] = True

    def update(self, rows: np.ndarray) -> None:
        self._flags[rows] = True

    def sorted_rows(self) -> np.ndarray:
        """The changed rows, in increasing order (intp)."""
        return np.flatnonzero(self._flags)

    def clear(self) -> None:
        self._flags[:] = False

    def __len__(self) -> int:
        return int(np.count_nonzero(self._flags))

    def __iter__(self) -> Iterator[int]:
        return iter(self.sorted_rows().tolist())


@dataclass
class Network:
    """The weights and the optimizer's state, in memory, ready to learn."""

    spec: NetworkSpec
    rule: LearningRule
    layers: list[Layer]
    # The optimizer's accumulators, by variable name (see artifacts);
    # FIRST_KERNEL's has one value a row.
    accumulators: dict[str, np.ndarray]
    # The rows of the first kernel that differ from the folder's kernel.npz
    # when the network is made (None: none).
    changed_rows: InitVar[np.ndarray | None] = None
    messages_learned: int = 0
    # The kernel.npz these weights were read from (None: not from a folder).
    kernel_path: Path | None = None
    # Those rows, and every row learning changes since.
    changed: ChangedRows = field(init=False)

    def __post_init__(self, changed_rows: np.ndarray | None) -> None:
        self.changed = ChangedRows(self.spec.features.buckets, changed_rows)
        # The hidden layers' slopes below 0, first to last.
        self._slopes = [slope_below_zero(layer.activation) for layer in self.spec.layers[:-1]]

    @property
    def first_kernel(self) -> np.ndarray:
        return self.layers[0].kernel

    # ------------------------------------------------------------------
    # Building

    @classmethod
    def from_folder(cls, model_dir: str | Path, metadata: dict[str, Any]) -> Network:
        """A folder's current weights and optimizer state."""
        model_path = Path(model_dir)
        spec = artifacts.network_spec(model_path, metadata)
        rule = artifacts.learning_rule(model_path, metadata)
        weights = artifacts.open_weights(model_path, metadata)
        kernel = weights.kernel_file.copy_on_write(FIRST_KERNEL)
        changed_rows = weights.weights_file.array(CHANGED_ROWS).astype(np.intp)
        if changed_rows.size:
            kernel[changed_rows] = weights.weights_file.array(CHANGED_KERNEL_ROWS)
        layers = []
        for index, layer_spec in enumerate(spec.layers):
            layer_kernel = (
                kernel if index == 0 else weights.weights_file.array(f"{layer_spec.name}.kernel")
            )
            bias = weights.weights_file.array(f"{layer_spec.name}.bias")
            layers.append(
                Layer(
                    layer_kernel if index == 0 else np.array(layer_kernel, dtype=np.float32),
                    np.array(bias, dtype=np.float32),
                    layer_spec.activation,
                )
            )
        # The first kernel's accumulator: kernel.npz's, changed rows' from weights.npz.
        first_accumulator = weights.kernel_file.copy_on_write(FIRST_ACCUMULATOR)
        if changed_rows.size:
            first_accumulator[changed_rows] = weights.weights_file.array(CHANGED_ACCUMULATOR_ROWS)
        accumulators = {FIRST_KERNEL: first_accumulator}
        for name in spec.variable_names():
            accumulators[name] = np.array(
                weights.weights_file.array(name + ACCUMULATOR_SUFFIX), dtype=np.float32
            )
        learned = artifacts.weights_entry(metadata).get("messages_learned", 0)
        return cls(
            spec,
            rule,
            layers,
            accumulators,
            changed_rows=changed_rows,
            messages_learned=learned if isinstance(learned, int) else 0,
            kernel_path=model_path / artifacts.KERNEL_FILE,
        )

    @classmethod
    def from_scratch(cls, spec: NetworkSpec, rule: LearningRule, seed: int) -> Network:
        """A network that has learned nothing: Glorot-uniform kernels (as
        Keras initialises them), zero biases, accumulators at their initial
        value."""
        generator = np.random.default_rng(seed)
        layers = []
        inputs = spec.features.buckets
        for layer_spec in spec.layers:
            limit = math.sqrt(6 / (inputs + layer_spec.units))
            kernel = generator.uniform(-limit, limit, (inputs, layer_spec.units))
            layers.append(
                Layer(
                    kernel.astype(np.float32),
                    np.zeros(layer_spec.units, np.float32),
                    layer_spec.activation,
                )
            )
            inputs = layer_spec.units
        network = cls(spec, rule, layers, {})
        for name in (FIRST_KERNEL, *spec.variable_names()):
            shape = (spec.features.buckets,) if name == FIRST_KERNEL else spec.shape(name)
            network.accumulators[name] = np.full(shape, rule.initial_accumulator, np.float32)
        return network

    # ------------------------------------------------------------------
    # Scoring and learning

    def score(self, indices: Sequence[int] | np.ndarray) -> float:
        """The spam probability of a message given as its buckets."""
        return float(self._forward(np.asarray(indices, dtype=np.intp))[0])

    def learn(
        self, indices: Sequence[int] | np.ndarray, target: float, smooth: bool = True
    ) -> float:
        """One optimizer step on the message's loss against TARGET (1 spam,
        0 ham; label smoothing applied unless SMOOTH is false, for a target
        that is a probability already); returns the score the message had
        before the step."""
        buckets = np.asarray(indices, dtype=np.intp)
        probability, activations = self._forward(buckets)
        smoothing = self.rule.label_smoothing if smooth else 0.0
        smoothed = target * (1.0 - smoothing) + 0.5 * smoothing
        # d(loss)/d(logit) of sigmoid + cross-entropy.
        delta = np.array([probability - smoothed])
        gradients: list[tuple[str, np.ndarray]] = []
        for index in range(len(self.layers) - 1, 0, -1):
            layer = self.layers[index]
            below = activations[index - 1]
            slope = self._slopes[index - 1]
            gradients.append((f"dense_{index}.kernel", np.outer(_activate(below, slope), delta)))
            gradients.append((f"dense_{index}.bias", delta))
            delta = (layer.kernel.astype(np.float64) @ delta) * np.where(below > 0, 1.0, slope)
        gradients.append(("dense_0.bias", delta))
        # Every present bucket's input is the same value, so every row's
        # gradient is the same vector: that value times the first layer's delta.
        row_gradient = delta * input_value(buckets.size)
        self._step_first_kernel(buckets, row_gradient)
        for name, gradient in gradients:
            self._step(name, gradient)
        self.messages_learned += 1
        return probability

    def log_odds_of_row_sum(self, row_sum: Sequence[float], count: int) -> float:
        """The log-odds of a message of COUNT buckets whose rows sum to ROW_SUM."""
        total = np.asarray(row_sum, dtype=np.float64)
        return float(self._from_row_sum(total, count)[1][-1][0])

    def bucket_groups(self, lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """LISTS of buckets (messages), ready for group_row_sums: all of them
        in one array, and where each list starts."""
        sizes = np.array([len(values) for values in lists], dtype=np.intp)
        flat = np.fromiter((bucket for values in lists for bucket in values), dtype=np.intp)
        return flat, np.concatenate(([0], np.cumsum(sizes)))

    def group_row_sums(self, groups: tuple[np.ndarray, np.ndarray]) -> list[list[float]]:
        """The sum of the first kernel's rows of each list of bucket_groups
        (calibration.py), in one gather: 16 held-out messages of 10,000
        buckets in all took 1.1 ms one at a time, the conversion of each list
        to an array the most of it."""
        flat, bounds = groups
        units = self.first_kernel.shape[1]
        if not flat.size:
            return [[0.0] * units for _start in bounds[1:]]
        starts = np.minimum(bounds[:-1], flat.size - 1)
        # np.take, not kernel[flat]: for the 19,325 buckets of 29 held-out
        # messages it took 0.32 ms against 4.3 ms (NumPy 2.4, 2026-12-07).
        rows = np.take(self.first_kernel, flat, axis=0)
        sums = np.add.reduceat(rows, starts, axis=0, dtype=np.float64)
        # reduceat gives an empty list the row at its start instead of nothing.
        sums[bounds[1:] == bounds[:-1]] = 0.0
        return sums.tolist()

    def _row_sum(self, buckets: np.ndarray) -> np.ndarray:
        kernel = self.first_kernel
        if not buckets.size:
            return np.zeros(kernel.shape[1], dtype=np.float64)
        return kernel[buckets].sum(axis=0, dtype=np.float64)

    def _forward(self, buckets: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The probability and every layer's pre-activation, in float64."""
        return self._from_row_sum(self._row_sum(buckets), buckets.size)

    def _from_row_sum(self, total: np.ndarray, count: int) -> tuple[float, list[np.ndarray]]:
        first = self.layers[0]
        pre_activation = total * input_value(count) + first.bias
        activations = [np.asarray(pre_activation, dtype=np.float64)]
        for layer, slope in zip(self.layers[1:], self._slopes, strict=True):
            below = _activate(activations[-1], slope)
            activations.append(below @ layer.kernel.astype(np.float64) + layer.bias)
        logit = float(activations[-1][0])
        return sigmoid(logit), activations

    def _step(self, name: str, gradient: np.ndarray) -> None:
        layer_index, _, part = name.partition(".")
        layer = self.layers[int(layer_index.removeprefix("dense_"))]
        variable = layer.kernel if part == "kernel" else layer.bias
        accumulator = self.accumulators[name]
        updated = accumulator.astype(np.float64) + gradient**2
        accumulator[...] = updated
        step = self.rule.learning_rate * gradient / np.sqrt(updated + self.rule.epsilon)
        variable[...] = variable.astype(np.float64) - step

    def _step_first_kernel(self, buckets: np.ndarray, row_gradient: np.ndarray) -> None:
        if not buckets.size:
            return
        accumulator = self.accumulators[FIRST_KERNEL]
        updated = accumulator[buckets].astype(np.float64) + float(np.mean(row_gradient**2))
        accumulator[buckets] = updated
        scale = self.rule.learning_rate / np.sqrt(updated + self.rule.epsilon)
        kernel = self.first_kernel
        kernel[buckets] = kernel[buckets].astype(np.float64) - scale[:, None] * row_gradient
        self.changed.update(buckets)

    # ------------------------------------------------------------------
    # Writing

    def write(self, directory: Path) -> tuple[dict[str, Any], bool]:
        """Write kernel.npz and weights.npz into DIRECTORY (a staging folder);
        return metadata.json's ``weights`` entry and whether kernel.npz was
        written anew (see after_write).

        kernel.npz is linked from the folder these weights came from while
        few rows have changed, else written anew with every row current.
        """
        compact = self.kernel_path is None or len(self.changed) > (
            COMPACTION_SHARE * self.spec.features.buckets
        )
        first_accumulator = self.accumulators[FIRST_KERNEL]
        if compact:
            artifacts.write_npz(
                directory / artifacts.KERNEL_FILE,
                {FIRST_KERNEL: self.first_kernel, FIRST_ACCUMULATOR: first_accumulator},
            )
            rows = np.zeros(0, dtype=np.intp)
        else:
            assert self.kernel_path is not None
            artifacts.link_or_copy(self.kernel_path, directory / artifacts.KERNEL_FILE)
            rows = self.changed.sorted_rows()
        arrays: dict[str, np.ndarray] = {
            CHANGED_ROWS: rows,
            CHANGED_KERNEL_ROWS: self.first_kernel[rows].reshape(
                rows.size, self.spec.layers[0].units
            ),
            CHANGED_ACCUMULATOR_ROWS: first_accumulator[rows],
        }
        for index, layer in enumerate(self.layers):
            if index:
                arrays[f"dense_{index}.kernel"] = layer.kernel
            arrays[f"dense_{index}.bias"] = layer.bias
        for name, accumulator in self.accumulators.items():
            if name != FIRST_KERNEL:
                arrays[name + ACCUMULATOR_SUFFIX] = accumulator
        artifacts.write_npz(directory / artifacts.WEIGHTS_FILE, arrays)
        entry = {
            "kernel_file": artifacts.KERNEL_FILE,
            "weights_file": artifacts.WEIGHTS_FILE,
            "changed_rows": int(rows.size),
            "messages_learned": self.messages_learned,
        }
        return entry, compact

    def after_write(self, model_dir: Path, compacted: bool) -> None:
        """Once what write() wrote is in place as MODEL_DIR: its kernel.npz is
        the one later writes link, and holds every change if compacted."""
        self.kernel_path = Path(model_dir) / artifacts.KERNEL_FILE
        if compacted:
            self.changed.clear()


def _activate(values: np.ndarray, slope: float) -> np.ndarray:
    """A hidden layer's activation: ReLU (slope 0) or leaky ReLU."""
    return np.maximum(values, slope * values)
