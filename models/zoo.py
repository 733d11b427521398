"""The model zoo: build a model for a dataset.

A :class:`~stragglersim.models.interface.Model` bundles pure functions: ``init(key) -> params``,
``loss(params, x, y)`` (the mean loss of a batch, what gradients are taken of) and
``evaluate(params, x, y)`` (per-batch sums of loss and correct predictions, for exact averages
over a test set).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax

from . import nets, pixelcnn
from .catalog import MODELS
from .datasets import Dataset
from .interface import Model


def build_model(name: str, dataset: Dataset, *, hidden: tuple[int, ...] = (128,), l2: float = 0.0) -> Model:
    """The model ``name`` sized for ``dataset`` (its input shape and task).

    With ``l2`` > 0 the objective gains (l2/2)·‖params‖² (in ``loss`` and in ``evaluate``'s
    sums), which makes logistic regression strongly convex with modulus ``l2``.

    Raises:
        ValueError: unknown model, or a model that does not fit the dataset's task.
    """
    shape = dataset.input_shape
    if name == "pixelcnn":
        if dataset.name not in ("digits", "mnist"):
            raise ValueError(f"pixelcnn models binarised grey-scale images (digits, mnist), not {dataset.name}")

        def loss(params, x, y):
            return pixelcnn.bits_per_dim(params, x).mean()

        def evaluate(params, x, y):
            return pixelcnn.bits_per_dim(params, x).sum(), jnp.zeros((), jnp.int32)

        return Model(partial(pixelcnn.init, in_shape=shape), loss, evaluate, pixelcnn.logits, name, False)

    if name == "logreg":
        init, apply = partial(nets.linear_init, in_shape=shape, out_dim=dataset.out_dim), nets.linear_apply
    elif name == "mlp":
        init, apply = partial(nets.mlp_init, in_shape=shape, out_dim=dataset.out_dim, hidden=hidden), nets.mlp_apply
    elif name == "cnn":
        if len(shape) != 3:
            raise ValueError(f"cnn needs (H, W, C) inputs, but {dataset.name} has inputs of shape {shape}")
        init, apply = partial(nets.cnn_init, in_shape=shape, out_dim=dataset.out_dim), nets.cnn_apply
    else:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(MODELS)})")

    if dataset.task == "classification":

        def per_example(params, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y)

        def evaluate(params, x, y):
            logits = apply(params, x)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return losses.sum(), (logits.argmax(axis=-1) == y).sum()

        has_accuracy = True
    else:

        def per_example(params, x, y):
            return (apply(params, x)[:, 0] - y) ** 2

        def evaluate(params, x, y):
            return per_example(params, x, y).sum(), jnp.zeros((), jnp.int32)

        has_accuracy = False

    def loss(params, x, y):
        return per_example(params, x, y).mean() + penalty(params)

    if l2:
        plain = evaluate

        def evaluate(params, x, y):
            total, correct = plain(params, x, y)
            return total + len(x) * penalty(params), correct

    def penalty(params):
        if not l2:
            return 0.0
        return 0.5 * l2 * sum(jnp.sum(p**2) for p in jax.tree_util.tree_leaves(params))

    return Model(init, loss, evaluate, apply, name, has_accuracy)
