"""The network in Keras, for training: hashed n-grams in, spam probability out.

The input is the sparse vector of a message's buckets (features.py), each
present bucket worth 1/sqrt(n). The first layer is a Dense layer over it:
its output is the sum of the kernel rows of the present buckets, times
1/sqrt(n), plus the bias. ``BucketDense`` computes exactly that with a
gather, so that the kernel's gradient is sparse (the rows of the buckets in
the batch) and an update touches those rows only: with 2**20 buckets, a
dense gradient made every step 25 ms here whatever the batch.

The optimizer is Adagrad, the one online learning continues with
(online.py): for the first kernel with one accumulator a row (a bucket's
evidence so far: the mean of its squared gradients, added up), for every
other variable one accumulator an element, as keras.optimizers.Adagrad
keeps them. A row accumulator keeps the optimizer's state 1/units of the
kernel's size, so it is rewritten on every ``spamcli learn`` without cost.

Nothing here does I/O; the TensorFlow-free code never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

FIRST_LAYER = "dense_0"


@keras.saving.register_keras_serializable(package="spamcli")
class BucketDense(layers.Layer):
    """Dense over a sparse input of ``buckets`` columns, by gathering rows.

    A registered class rather than a Lambda layer, so that a Keras file of
    the network, should one be written (a model folder holds none), names
    it and loading rebuilds it from this code.
    """

    def __init__(self, units: int, buckets: int, activation: str = "relu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.buckets = buckets
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(
            name="kernel", shape=(self.buckets, self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        import tensorflow as tf

        rows = tf.gather(self.kernel, inputs.indices[:, 1]) * inputs.values[:, None]
        batch = tf.cast(inputs.dense_shape[0], tf.int32)
        total = tf.math.unsorted_segment_sum(rows, inputs.indices[:, 0], batch)
        return self.activation(total + self.bias)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, int]:
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "buckets": self.buckets,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package="spamcli")
class BucketAdagrad(keras.optimizers.Adagrad):
    """Adagrad, with one accumulator a row for the first layer's kernel.

    For that kernel, each row r the batch touches: acc[r] += mean(g[r]**2),
    then kernel[r] -= learning_rate * g[r] / sqrt(acc[r] + epsilon). For
    every other variable, keras.optimizers.Adagrad's own rule: acc += g**2,
    variable -= learning_rate * g / sqrt(acc + epsilon). online.py applies
    the same rules in NumPy; tests/test_parity.py checks one step of each
    against the other.
    """

    def build(self, var_list: Sequence[Any]) -> None:
        if self.built:
            return
        keras.optimizers.Optimizer.build(self, var_list)
        initializer = keras.initializers.Constant(self.initial_accumulator_value)
        self._accumulators = []
        for variable in var_list:
            shape = (variable.shape[0],) if is_first_kernel(variable) else variable.shape
            self._accumulators.append(
                self.add_variable(
                    shape=shape,
                    initializer=initializer,
                    dtype=variable.dtype,
                    name=f"{variable.name}_accumulator",
                )
            )

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        import tensorflow as tf

        accumulator = self._accumulators[self._get_variable_index(variable)]
        lr = tf.cast(learning_rate, variable.dtype)
        if len(accumulator.shape) == len(variable.shape):  # not the first kernel
            super().update_step(tf.convert_to_tensor(gradient), variable, learning_rate)
            return
        if isinstance(gradient, tf.IndexedSlices):
            # A bucket in two messages of the batch appears twice: its
            # gradient is the sum of both.
            rows, positions = tf.unique(gradient.indices)
            values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
        else:
            dense = tf.convert_to_tensor(gradient)
            rows = tf.cast(tf.where(tf.reduce_any(dense != 0, axis=1))[:, 0], tf.int32)
            values = tf.gather(dense, rows)
        self.assign_add(
            accumulator, tf.IndexedSlices(tf.reduce_mean(tf.square(values), axis=1), rows)
        )
        scale = lr / tf.sqrt(tf.gather(accumulator, rows) + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(values * scale[:, None], rows))


def is_first_kernel(variable: Any) -> bool:
    """Whether a variable is the first layer's kernel (by its path in the model)."""
    return str(getattr(variable, "path", "")).endswith(f"{FIRST_LAYER}/kernel")


def build_model(
    buckets: int,
    hidden_units: Sequence[int],
    learning_rate: float,
    initial_accumulator: float,
    label_smoothing: float,
    hidden_activation: str,
) -> keras.Model:
    """Sparse buckets → BucketDense → Dense … → Dense (sigmoid), the hidden
    layers of HIDDEN_ACTIVATION units ("relu" or "leaky_relu": Keras's, whose
    slope below 0 is artifacts.LEAKY_SLOPE).

    The loss is summed over a batch, not averaged, so that a batch's step is
    the sum of its messages' gradients, the scale of the one-message steps
    online learning takes with the same optimizer state.
    """
    if not hidden_units:
        raise ValueError("the network needs at least one hidden layer")
    bag = keras.Input(shape=(buckets,), sparse=True, name="buckets")
    hidden = BucketDense(hidden_units[0], buckets, hidden_activation, name=FIRST_LAYER)(bag)
    for index, units in enumerate(hidden_units[1:], 1):
        hidden = layers.Dense(units, activation=hidden_activation, name=f"dense_{index}")(hidden)
    spam_probability = layers.Dense(1, activation="sigmoid", name=f"dense_{len(hidden_units)}")(
        hidden
    )
    model = keras.Model(bag, spam_probability, name="spamcli")
    model.compile(
        optimizer=BucketAdagrad(
            learning_rate=learning_rate, initial_accumulator_value=initial_accumulator
        ),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing, reduction="sum"),
    )
    return model


def dense_layers(model: keras.Model) -> list[Any]:
    """The model's layers with weights, first to last (dense_0, dense_1, …)."""
    return [layer for layer in model.layers if layer.name.startswith("dense_")]
