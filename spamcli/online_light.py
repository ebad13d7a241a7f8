"""online.Network's step, with the standard library only, for a learn of a
few messages.

A cold ``spamcli learn`` of one message is a process start, a model read,
one step and a folder write. Importing NumPy alone would cost it more than
all of that together (45 ms of about 130 here), so a learn of up to
LIGHT_MESSAGE_LIMIT messages takes the step here, on the rows it needs,
read one at a time from the memory-mapped .npz files, as the light scorer
reads them. The arithmetic is online.Network's, operation for operation, in
double precision, each stored value rounded to float32 as NumPy stores it;
tests/test_online_light.py checks that the two agree.

It never compacts kernel.npz (online.COMPACTION_SHARE): once that many rows
have changed, the learn goes to online.Network, which does.
"""

from __future__ import annotations

import math
import operator
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spamcli import artifacts
from spamcli.artifacts import (
    ACCUMULATOR_SUFFIX,
    CHANGED_ACCUMULATOR_ROWS,
    CHANGED_KERNEL_ROWS,
    CHANGED_ROWS,
    FIRST_ACCUMULATOR,
    slope_below_zero,
)
from spamcli.features import input_value

if TYPE_CHECKING:
    from spamcli.calibration import Calibration

# A learn of more messages than this imports NumPy: past a few messages the
# vectorised step is faster than the import is slow.
LIGHT_MESSAGE_LIMIT = 8
# The share of the kernel's rows that may have changed before compaction;
# the same as online.COMPACTION_SHARE (not imported: that imports NumPy).
COMPACTION_SHARE = 1 / 16

_FLOAT32 = struct.Struct("<f")


def _float32(value: float) -> float:
    """VALUE rounded to float32, as NumPy stores a float64 into a float32 array."""
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


class LightNetwork:
    """A folder's network for a few steps: the rows a step changes are kept
    in dictionaries; everything else is read from the folder's files."""

    def __init__(self, model_dir: str | Path, metadata: dict[str, Any]) -> None:
        self.model_dir = Path(model_dir)
        self._weights = artifacts.open_weights(self.model_dir, metadata)
        self.spec = self._weights.network
        self.rule = artifacts.learning_rule(self.model_dir, metadata)
        # The hidden layers' slopes below 0, first to last.
        self._slopes = [slope_below_zero(layer.activation) for layer in self.spec.layers[:-1]]
        kernel_file, weights_file = self._weights.kernel_file, self._weights.weights_file
        self._old_rows = self._weights.changed_rows
        self._kernel_file, self._weights_file = kernel_file, weights_file
        # Rows of the first kernel and their accumulators that this learn changed.
        self._rows: dict[int, list[float]] = {}
        self._row_accumulators: dict[int, float] = {}
        # The small variables and their accumulators, as lists of rows.
        self.variables: dict[str, list[list[float]]] = {}
        self.accumulators: dict[str, list[list[float]]] = {}
        for name in self.spec.variable_names():
            self.variables[name] = [list(row) for row in self._weights.values(name)]
            if len(self.spec.shape(name)) == 1:
                accumulator = [list(weights_file.row(name + ACCUMULATOR_SUFFIX, 0))]
            else:
                accumulator = [list(row) for row in weights_file.rows(name + ACCUMULATOR_SUFFIX)]
            self.accumulators[name] = accumulator
        learned = artifacts.weights_entry(metadata).get("messages_learned", 0)
        self.messages_learned = learned if isinstance(learned, int) else 0
        # The held-out messages whose row sums each step moves (learning.py
        # sets it where the folder has them); NumPy's network instead has
        # them computed anew (calibration.Calibration.refresh).
        self.calibration: Calibration | None = None

    @property
    def changed_count(self) -> int:
        """Rows that differ from kernel.npz, this learn's included."""
        old = set(self._old_rows)
        return len(old | set(self._rows))

    def _row(self, index: int) -> list[float]:
        row = self._rows.get(index)
        return row if row is not None else list(self._weights.first_row(index))

    def _row_accumulator(self, index: int) -> float:
        value = self._row_accumulators.get(index)
        if value is not None:
            return value
        position = _position(self._old_rows, index)
        if position is not None:
            return self._weights_file.element(CHANGED_ACCUMULATOR_ROWS, position)
        return self._kernel_file.element(FIRST_ACCUMULATOR, index)

    def _row_sum(self, buckets: list[int]) -> list[float]:
        total = [0.0] * self.spec.layers[0].units
        for index in buckets:
            total = list(map(operator.add, total, self._row(index)))
        return total

    def log_odds_of_row_sum(self, row_sum: list[float], count: int) -> float:
        """As online.Network.log_odds_of_row_sum."""
        return self._from_row_sum(row_sum, count)[1][-1][0]

    def _forward(self, buckets: list[int]) -> tuple[float, list[list[float]]]:
        return self._from_row_sum(self._row_sum(buckets), len(buckets))

    def _from_row_sum(self, total: list[float], count: int) -> tuple[float, list[list[float]]]:
        scale = input_value(count)
        bias = self.variables["dense_0.bias"][0]
        activations = [[value * scale + b for value, b in zip(total, bias, strict=True)]]
        for layer_index in range(1, len(self.spec.layers)):
            slope = self._slopes[layer_index - 1]
            below = [max(value, slope * value) for value in activations[-1]]
            kernel = self.variables[f"dense_{layer_index}.kernel"]
            output = list(self.variables[f"dense_{layer_index}.bias"][0])
            for value, row in zip(below, kernel, strict=True):
                if value:
                    output = [
                        sum_ + value * weight for sum_, weight in zip(output, row, strict=True)
                    ]
            activations.append(output)
        return sigmoid(activations[-1][0]), activations

    def score(self, indices: list[int]) -> float:
        return self._forward(list(indices))[0]

    def learn(self, indices: list[int], target: float, smooth: bool = True) -> float:
        """As online.Network.learn."""
        buckets = list(indices)
        probability, activations = self._forward(buckets)
        smoothing = self.rule.label_smoothing if smooth else 0.0
        delta = [probability - (target * (1.0 - smoothing) + 0.5 * smoothing)]
        gradients: list[tuple[str, list[list[float]]]] = []
        for index in range(len(self.spec.layers) - 1, 0, -1):
            below = activations[index - 1]
            slope = self._slopes[index - 1]
            hidden = [max(value, slope * value) for value in below]
            gradients.append((f"dense_{index}.kernel", [[h * d for d in delta] for h in hidden]))
            gradients.append((f"dense_{index}.bias", [list(delta)]))
            kernel = self.variables[f"dense_{index}.kernel"]
            delta = [
                sum(weight * d for weight, d in zip(row, delta, strict=True))
                * (1.0 if value > 0 else slope)
                for row, value in zip(kernel, below, strict=True)
            ]
        gradients.append(("dense_0.bias", [list(delta)]))
        row_gradient = [d * input_value(len(buckets)) for d in delta]
        self._step_first_kernel(buckets, row_gradient)
        for name, gradient in gradients:
            self._step(name, gradient)
        self.messages_learned += 1
        return probability

    def _step(self, name: str, gradient: list[list[float]]) -> None:
        variable, accumulator = self.variables[name], self.accumulators[name]
        rate, epsilon = self.rule.learning_rate, self.rule.epsilon
        for values, sums, gradients in zip(variable, accumulator, gradient, strict=True):
            for column, g in enumerate(gradients):
                updated = sums[column] + g * g
                sums[column] = _float32(updated)
                values[column] = _float32(values[column] - rate * g / math.sqrt(updated + epsilon))

    def _step_first_kernel(self, buckets: list[int], row_gradient: list[float]) -> None:
        if not buckets:
            return
        increment = sum(g * g for g in row_gradient) / len(row_gradient)
        rate, epsilon = self.rule.learning_rate, self.rule.epsilon
        scales = {}
        for index in buckets:
            updated = self._row_accumulator(index) + increment
            self._row_accumulators[index] = _float32(updated)
            scale = scales[index] = rate / math.sqrt(updated + epsilon)
            self._rows[index] = [
                _float32(value - scale * g)
                for value, g in zip(self._row(index), row_gradient, strict=True)
            ]
        if self.calibration is not None:
            self.calibration.moved(scales, row_gradient)

    def write(self, directory: Path) -> tuple[dict[str, Any], bool]:
        """As online.Network.write, never compacting: weights.npz anew,
        kernel.npz linked."""
        artifacts.link_or_copy(
            self.model_dir / artifacts.KERNEL_FILE, directory / artifacts.KERNEL_FILE
        )
        units = self.spec.layers[0].units
        old_positions = {index: position for position, index in enumerate(self._old_rows)}
        rows = sorted(old_positions.keys() | self._rows.keys())
        row_bytes = 4 * units
        values = bytearray(row_bytes * len(rows))
        sums = bytearray(4 * len(rows))
        old_values = self._weights_file.raw(CHANGED_KERNEL_ROWS)
        old_sums = self._weights_file.raw(CHANGED_ACCUMULATOR_ROWS)
        row_format = struct.Struct(f"<{units}f")
        for position, index in enumerate(rows):
            changed = self._rows.get(index)
            if changed is None:
                old = old_positions[index]
                values[position * row_bytes : (position + 1) * row_bytes] = old_values[
                    old * row_bytes : (old + 1) * row_bytes
                ]
                sums[4 * position : 4 * position + 4] = old_sums[4 * old : 4 * old + 4]
            else:
                row_format.pack_into(values, position * row_bytes, *changed)
                _FLOAT32.pack_into(sums, 4 * position, self._row_accumulators[index])
        arrays: dict[str, tuple[str, tuple[int, ...], bytes]] = {
            CHANGED_ROWS: ("<u4", (len(rows),), struct.pack(f"<{len(rows)}I", *rows)),
            CHANGED_KERNEL_ROWS: ("<f4", (len(rows), units), bytes(values)),
            CHANGED_ACCUMULATOR_ROWS: ("<f4", (len(rows),), bytes(sums)),
        }
        for name in self.spec.variable_names():
            shape = self.spec.shape(name)
            for key, table in (
                (name, self.variables[name]),
                (name + ACCUMULATOR_SUFFIX, self.accumulators[name]),
            ):
                flat = [value for row in table for value in row]
                arrays[key] = ("<f4", shape, struct.pack(f"<{len(flat)}f", *flat))
        artifacts.write_npz_bytes(directory / artifacts.WEIGHTS_FILE, arrays)
        entry = {
            "kernel_file": artifacts.KERNEL_FILE,
            "weights_file": artifacts.WEIGHTS_FILE,
            "changed_rows": len(rows),
            "messages_learned": self.messages_learned,
        }
        return entry, False

    def after_write(self, model_dir: Path, compacted: bool) -> None:
        """Nothing to do: a LightNetwork serves one learn."""


def needs_compaction(network: LightNetwork) -> bool:
    return network.changed_count > COMPACTION_SHARE * network.spec.features.buckets


def _position(rows: memoryview, index: int) -> int | None:
    import bisect

    position = bisect.bisect_left(rows, index)
    if position < len(rows) and rows[position] == index:
        return position
    return None


def sigmoid(logit: float) -> float:
    """The probability of LOGIT, the network's output (and calibration.py's)."""
    # Through exp(-|x|), so that nothing overflows.
    decay = math.exp(-abs(logit))
    return 1.0 / (1.0 + decay) if logit >= 0 else decay / (1.0 + decay)
