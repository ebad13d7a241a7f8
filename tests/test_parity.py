"""Parity between the Keras network that trains and the NumPy code that
scores and learns: the same outputs, and one optimizer step the same.

The online learner (online.py) claims to take exactly the step Keras'
BucketAdagrad takes on a batch of one message; these tests hold it to that,
to 1e-6, from weights and accumulators that are not at their initial values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from spamcli.artifacts import LayerSpec, NetworkSpec
from spamcli.config import LearningRule
from spamcli.features import FeatureSpec, input_value

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

BITS = 10
HIDDEN = (8, 4)
RULE = LearningRule(learning_rate=0.1, initial_accumulator=0.0, label_smoothing=0.1)


def keras_model_and_network(seed: int, activation: str = "leaky_relu") -> tuple[Any, Any]:
    """A Keras model and an online.Network holding the same random weights
    and the same random, positive accumulators; the hidden layers of
    ACTIVATION units."""
    from spamcli.model import build_model, dense_layers
    from spamcli.online import Network

    keras.utils.set_random_seed(seed)
    model = build_model(
        1 << BITS,
        HIDDEN,
        RULE.learning_rate,
        RULE.initial_accumulator,
        RULE.label_smoothing,
        activation,
    )
    generator = np.random.default_rng(seed)
    layers = dense_layers(model)
    for layer in layers:
        layer.kernel.assign(generator.normal(0, 0.5, layer.kernel.shape).astype(np.float32))
        layer.bias.assign(generator.normal(0, 0.1, layer.bias.shape).astype(np.float32))
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    for accumulator in optimizer._accumulators:
        accumulator.assign(generator.uniform(0.01, 1.0, accumulator.shape).astype(np.float32))

    spec = NetworkSpec(
        FeatureSpec(bits=BITS, max_tokens=None),
        [LayerSpec(f"dense_{i}", units, activation) for i, units in enumerate(HIDDEN)]
        + [LayerSpec(f"dense_{len(HIDDEN)}", 1, "sigmoid")],
    )
    network = Network.from_scratch(spec, RULE, seed)
    names = []
    for index, layer in enumerate(layers):
        network.layers[index].kernel = np.array(layer.kernel.numpy())
        network.layers[index].bias = np.array(layer.bias.numpy())
        names += [f"dense_{index}.kernel", f"dense_{index}.bias"]
    # The optimizer's accumulators follow model.trainable_variables' order.
    by_variable = {
        id(variable): accumulator
        for variable, accumulator in zip(
            model.trainable_variables, optimizer._accumulators, strict=True
        )
    }
    for index, layer in enumerate(layers):
        for part, variable in (("kernel", layer.kernel), ("bias", layer.bias)):
            network.accumulators[f"dense_{index}.{part}"] = np.array(
                by_variable[id(variable)].numpy()
            )
    return model, network


def sparse_batch(messages: list[list[int]]) -> Any:
    positions, values = [], []
    for row, indices in enumerate(messages):
        positions += [[row, index] for index in indices]
        values += [input_value(len(indices))] * len(indices)
    return tf.SparseTensor(
        np.array(positions, np.int64).reshape(-1, 2),
        np.array(values, np.float32),
        (len(messages), 1 << BITS),
    )


def assert_same_state(model: Any, network: Any) -> None:
    from spamcli.model import dense_layers

    optimizer = model.optimizer
    by_variable = {
        id(variable): accumulator
        for variable, accumulator in zip(
            model.trainable_variables, optimizer._accumulators, strict=True
        )
    }
    for index, layer in enumerate(dense_layers(model)):
        ours = network.layers[index]
        np.testing.assert_allclose(ours.kernel, layer.kernel.numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours.bias, layer.bias.numpy(), rtol=0, atol=1e-6)
        for part, variable in (("kernel", layer.kernel), ("bias", layer.bias)):
            np.testing.assert_allclose(
                network.accumulators[f"dense_{index}.{part}"],
                by_variable[id(variable)].numpy(),
                rtol=0,
                atol=1e-6,
            )


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_parity_one_numpy_step_equals_one_keras_step(
    seed: int, label: float, activation: str
) -> None:
    model, network = keras_model_and_network(seed, activation)
    indices = sorted(np.random.default_rng(seed).choice(1 << BITS, 40, replace=False).tolist())

    keras_score = float(model.predict_on_batch(sparse_batch([indices]))[0, 0])
    model.train_on_batch(sparse_batch([indices]), np.array([[label]], np.float32))
    score_before = network.learn(indices, label)

    assert score_before == pytest.approx(keras_score, abs=1e-6)
    assert_same_state(model, network)
    # And the step moved the message the right way.
    assert (network.score(indices) - score_before) * (label - 0.5) > 0


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_parity_several_steps_stay_equal(activation: str) -> None:
    model, network = keras_model_and_network(4, activation)
    generator = np.random.default_rng(4)
    for step in range(10):
        # Messages that share buckets: accumulators grow row by row.
        indices = sorted(set(generator.choice(60, 25).tolist()))
        label = float(step % 2)
        model.train_on_batch(sparse_batch([indices]), np.array([[label]], np.float32))
        network.learn(indices, label)
    assert_same_state(model, network)


def test_parity_a_batch_step_sums_the_gradients_of_shared_buckets() -> None:
    # Two messages sharing buckets in one batch: BucketAdagrad adds their
    # gradients for a shared row before squaring it, as dense Adagrad does.
    model, network = keras_model_and_network(5)
    first, second = [1, 2, 3, 7, 9], [2, 3, 4, 9, 11, 12]
    from spamcli.model import dense_layers

    kernel_before = dense_layers(model)[0].kernel.numpy().copy()
    accumulator_before = model.optimizer._accumulators[0].numpy().copy()
    with tf.GradientTape() as tape:
        predictions = model(sparse_batch([first, second]), training=True)
        loss = model.loss(np.array([[1.0], [0.0]], np.float32), predictions)
    gradient = tf.convert_to_tensor(tape.gradient(loss, dense_layers(model)[0].kernel)).numpy()
    model.train_on_batch(sparse_batch([first, second]), np.array([[1.0], [0.0]], np.float32))

    rows = sorted(set(first) | set(second))
    expected_accumulator = accumulator_before.copy()
    expected_accumulator[rows] += np.mean(gradient[rows] ** 2, axis=1)
    expected_kernel = kernel_before.copy()
    expected_kernel[rows] -= (
        RULE.learning_rate
        * gradient[rows]
        / np.sqrt(expected_accumulator[rows] + RULE.epsilon)[:, None]
    )
    np.testing.assert_allclose(
        model.optimizer._accumulators[0].numpy(), expected_accumulator, atol=1e-6
    )
    np.testing.assert_allclose(dense_layers(model)[0].kernel.numpy(), expected_kernel, atol=1e-6)
    untouched = [row for row in range(1 << BITS) if row not in rows]
    np.testing.assert_array_equal(
        dense_layers(model)[0].kernel.numpy()[untouched], kernel_before[untouched]
    )
    assert network  # the NumPy learner takes one message at a time


def test_parity_trained_folder_scores_as_keras_did(trained_model_dir: Any) -> None:
    # Training checks the NumPy copy against Keras on the validation mail and
    # records the largest difference; above 1e-5 nothing would be saved.
    from spamcli import artifacts

    metadata = artifacts.read_metadata(trained_model_dir)
    assert 0 <= metadata["training"]["export_max_difference"] <= 1e-5
