"""The Keras network: BucketDense computes a Dense layer over the sparse input,
and BucketAdagrad keeps one accumulator a row of the first kernel."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_model_bucket_dense_equals_a_dense_layer_over_the_dense_input(activation: str) -> None:
    from spamcli.artifacts import slope_below_zero
    from spamcli.model import build_model, dense_layers

    keras.utils.set_random_seed(1)
    model = build_model(64, (5,), 0.1, 0.0, 0.1, activation)
    messages = [[1, 5, 9], [], [5, 63]]
    positions = [[row, index] for row, indices in enumerate(messages) for index in indices]
    values = [1 / np.sqrt(len(indices)) for indices in messages for _ in indices]
    sparse = tf.SparseTensor(np.array(positions, np.int64), np.array(values, np.float32), (3, 64))

    scores = np.asarray(model.predict_on_batch(sparse)).reshape(-1)

    dense = np.asarray(tf.sparse.to_dense(tf.sparse.reorder(sparse)))
    first, last = dense_layers(model)
    before = dense @ first.kernel.numpy() + first.bias.numpy()
    assert (before < 0).any() and (before > 0).any()
    hidden = np.where(before > 0, before, slope_below_zero(activation) * before)
    expected = 1 / (1 + np.exp(-(hidden @ last.kernel.numpy() + last.bias.numpy())))
    np.testing.assert_allclose(scores, expected.reshape(-1), atol=1e-6)


def test_model_first_kernel_has_one_accumulator_a_row() -> None:
    from spamcli.model import build_model, dense_layers

    model = build_model(128, (4, 3), 0.1, 0.25, 0.1, "leaky_relu")
    model.optimizer.build(model.trainable_variables)

    shapes = [tuple(accumulator.shape) for accumulator in model.optimizer._accumulators]
    first = dense_layers(model)[0]
    assert shapes[0] == (128,) and tuple(first.kernel.shape) == (128, 4)
    assert shapes[1:] == [(4,), (4, 3), (3,), (3, 1), (1,)]
    assert all(np.all(a.numpy() == 0.25) for a in model.optimizer._accumulators)


def test_model_needs_a_hidden_layer() -> None:
    from spamcli.model import build_model

    with pytest.raises(ValueError, match="hidden layer"):
        build_model(16, (), 0.1, 0.0, 0.1, "relu")
