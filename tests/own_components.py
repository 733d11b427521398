"""A user's own model, data and optimizers, written apart from stragglersim's built-ins (plain JAX,
NumPy and optax): the MLP and the digits as the built-in ``mlp`` and ``digits`` are documented
(He-normal weights, zero biases; pixels / 16, a fixed 80/20 split), and factories that go wrong in
each of the ways a user's can. Named by import path in the tests (``own_components:mlp``)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import stragglersim


def mlp(shape: stragglersim.DataShape, hidden=(128,)) -> stragglersim.Model:
    sizes = [math.prod(shape.input_shape), *hidden]

    def dense(key, fan_in, fan_out, gain):
        w = jax.random.normal(key, (fan_in, fan_out), jnp.float32) * math.sqrt(gain / fan_in)
        return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}

    def init(key):
        keys = jax.random.split(key, len(hidden) + 1)
        layers = [dense(k, a, b, 2.0) for k, a, b in zip(keys, sizes, sizes[1:], strict=False)]
        return {"hidden": layers, "out": dense(keys[-1], sizes[-1], shape.out_dim, 1.0)}

    def apply(params, x):
        h = x.reshape(x.shape[0], -1)
        for layer in params["hidden"]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        return h @ params["out"]["w"] + params["out"]["b"]

    def loss(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y).mean()

    return stragglersim.Model(init=init, loss=loss, predict=apply, name="own-mlp")


def digits() -> stragglersim.Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng(20160401).permutation(len(x))
    n_test = round(len(x) * 0.2)  # 359 of the 1,797
    test, train = order[:n_test], order[n_test:]
    return stragglersim.Dataset(x[train], y[train], x[test], y[test], name="own-digits")


def sgd(learning_rate):
    return optax.sgd(learning_rate)


def clipped_momentum(learning_rate):
    return optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(learning_rate, momentum=0.9))


ADAM = optax.adam(1e-3)  # a transformation as it is: its learning rate is inside it


# --- what goes wrong ----------------------------------------------------------------------


def raises(shape):
    raise RuntimeError("no GPU found")


def wrong_inputs(shape):
    """An MLP for 10 features, whatever the data."""
    return mlp(stragglersim.DataShape((10,), shape.out_dim, shape.task, shape.train_size, shape.name))


def per_example_loss(shape):
    model = mlp(shape)
    return stragglersim.Model(
        init=model.init,
        loss=lambda p, x, y: optax.softmax_cross_entropy_with_integer_labels(model.predict(p, x), y),
        predict=model.predict,
    )


def nan_at_init(shape):
    model = mlp(shape)
    return stragglersim.Model(init=lambda key: jax.tree_util.tree_map(lambda a: a * jnp.nan, model.init(key)),
                              loss=model.loss)  # fmt: skip


def tiny() -> stragglersim.Dataset:
    x = np.zeros((12, 4), np.float32)
    return stragglersim.Dataset(x, np.arange(12) % 2, x[:4], np.arange(4) % 2, name="tiny")


def not_a_dataset():
    return {"x": np.zeros((4, 2))}


def huge(shape):
    """A model of 2^34 parameters (64 GiB in float32): refused from its shapes, never built."""
    return stragglersim.Model(init=lambda key: {"w": jnp.zeros((2**17, 2**17), jnp.float32)},
                              loss=lambda p, x, y: p["w"][0, 0])  # fmt: skip


def optimizer_raises(learning_rate):
    raise ValueError("learning_rate must be a schedule")


TINY = tiny()  # a Dataset as it is, not a loader
SEVEN = 7  # neither a factory nor an object of the kind


def returns_none(learning_rate):
    return None


def adam_fixed():
    """An optimizer factory without learning_rate: its rate is inside it."""
    return optax.adam(1e-3)


def not_a_model(shape):
    return {"init": None}


def init_not_a_function(shape):
    return stragglersim.Model(init=3, loss=mlp(shape).loss)


def integer_params(shape):
    return stragglersim.Model(init=lambda key: {"w": jnp.zeros(3, jnp.int32)}, loss=lambda p, x, y: 0.0)


def evaluate_one_value(shape):
    model = mlp(shape)
    return stragglersim.Model(init=model.init, loss=model.loss, evaluate=lambda p, x, y: model.loss(p, x, y))


def no_accuracy(shape):
    model = mlp(shape)
    return stragglersim.Model(init=model.init, loss=model.loss, predict=model.predict, has_accuracy=False)


def too_few_outputs(shape):
    """Two classes' outputs for ten classes' labels: the cross-entropy of a label past the logits is NaN."""
    return mlp(stragglersim.DataShape(shape.input_shape, 2, shape.task, shape.train_size, shape.name))


def float_labels():
    x = np.zeros((40, 3), np.float32)
    return stragglersim.Dataset(x, np.zeros(40, np.float32), x, np.zeros(40, np.float32))
