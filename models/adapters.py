"""A Flax or Equinox model as a :class:`~stragglersim.models.interface.Model`, in one call.

- :func:`from_flax`: a Flax NNX module (the current Flax API), given as a function ``rngs -> module``
  so that each seed initialises its own parameters; or a Flax Linen module. It is applied to a batch.
- :func:`from_equinox`: a function ``key -> module`` of Equinox; the module is applied to one
  example (as Equinox's layers are), vmapped over the batch.

The parameters are a plain nested dict of arrays (what the trainer keeps, checkpoints and sends
between versions). Whatever else the module holds (NNX's RNG counters and batch statistics,
Equinox's non-array fields) is held at its initial value: an NNX module runs in evaluation mode
(Dropout off, BatchNorm on its initial running statistics), and a Linen module must not ask for a
mutable collection (``BatchNorm(use_running_average=True)``). Install with
``pip install 'stragglersim[flax]'`` or ``'stragglersim[equinox]'``.

``loss`` is ``"cross_entropy"`` (integer labels, logits out), ``"mse"`` (one output per example) or a
function ``(outputs, y) -> scalar`` (the batch's mean loss).
"""

from __future__ import annotations

from collections.abc import Callable

from ..io.errors import InputError
from .interface import Model


def from_flax(module, *, loss: str | Callable, example_input, name: str = "flax") -> Model:
    """A Flax model as a Model.

    Args:
        module: ``rngs -> nnx.Module`` (NNX: e.g. ``lambda rngs: CNN(rngs=rngs)``), or a ``linen.Module``.
        loss: ``"cross_entropy"``, ``"mse"`` or ``(outputs, y) -> scalar``.
        example_input: a batch of inputs, ``(batch, *input_shape)``: Linen initialises on it, and
            both check here that the module runs on it.
    """
    import jax  # here, not at import: stragglersim.models loads no JAX until a model is built
    from flax import linen, nnx  # here, not at import: Flax is an optional extra (stragglersim[flax])

    criterion = _loss(loss)
    if isinstance(module, linen.Module):

        def init(key):
            return module.init(key, example_input)["params"]

        def apply(params, x):
            return module.apply({"params": params}, x)

    else:
        if isinstance(module, nnx.Module) or not callable(module):
            raise InputError(
                f"from_flax: give a function rngs -> module (e.g. lambda rngs: CNN(rngs=rngs)), not a built "
                f"{type(module).__name__}, so that each seed initialises its own parameters"
            )
        graph, _, rest = nnx.split(_evaluating(_built(module, nnx.Rngs(0))), nnx.Param, ...)

        def init(key):
            return nnx.to_pure_dict(nnx.split(_evaluating(_built(module, nnx.Rngs(key))), nnx.Param, ...)[1])

        def apply(params, x):
            return nnx.merge(graph, params, rest)(x)

    _check(init, apply, example_input, jax)
    return Model(init, lambda params, x, y: criterion(apply(params, x), y), predict=apply, name=name)


def from_equinox(make: Callable, *, loss: str | Callable, example_input, name: str = "equinox") -> Model:
    """An Equinox model as a Model.

    Args:
        make: ``key -> eqx.Module`` (e.g. ``lambda key: eqx.nn.MLP(64, 10, 128, 2, key=key)``),
            applied to one example and vmapped over a batch.
        loss: ``"cross_entropy"``, ``"mse"`` or ``(outputs, y) -> scalar``.
        example_input: a batch of inputs, ``(batch, *input_shape)``, to check the module on.
    """
    import equinox as eqx  # here, not at import: Equinox is an optional extra (stragglersim[equinox])
    import jax  # here, not at import: stragglersim.models loads no JAX until a model is built

    if isinstance(make, eqx.Module) or not callable(make):
        raise InputError(
            f"from_equinox: give a function key -> module (e.g. lambda key: eqx.nn.MLP(..., key=key)), not a built "
            f"{type(make).__name__}, so that each seed initialises its own parameters"
        )
    criterion = _loss(loss)
    arrays, static = eqx.partition(_built(make, jax.random.key(0)), eqx.is_inexact_array)
    paths, treedef = jax.tree_util.tree_flatten_with_path(arrays)
    names = [jax.tree_util.keystr(path) for path, _ in paths]

    def init(key):
        leaves = jax.tree_util.tree_leaves(eqx.filter(_built(make, key), eqx.is_inexact_array))
        return dict(zip(names, leaves, strict=True))

    def apply(params, x):
        module = eqx.combine(jax.tree_util.tree_unflatten(treedef, [params[n] for n in names]), static)
        return jax.vmap(module)(x)

    _check(init, apply, example_input, jax)
    return Model(init, lambda params, x, y: criterion(apply(params, x), y), predict=apply, name=name)


def _evaluating(module):
    """The NNX module in evaluation mode: Dropout off, BatchNorm on its (initial) running statistics. A
    training-mode layer changes the module's state in the forward pass, which a pure loss cannot."""
    module.eval()
    return module


def _built(factory, arg):
    try:
        return factory(arg)
    except Exception as err:  # noqa: BLE001 (the user's code may raise anything: one line says what)
        raise InputError(f"building the module raised {type(err).__name__}: {' '.join(str(err).split())}") from None


def _check(init, apply, example_input, jax) -> None:
    """The module runs on ``example_input`` (shapes only: nothing is computed)."""
    try:
        jax.eval_shape(lambda key, x: apply(init(key), x), jax.random.key(0), example_input)
    except Exception as err:  # noqa: BLE001 (the user's code may raise anything: one line says what)
        raise InputError(
            f"the module fails on example_input of shape {getattr(example_input, 'shape', '?')}: "
            f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        ) from None


def _loss(loss: str | Callable) -> Callable:
    import optax  # here, not at import: as JAX

    if callable(loss):
        return loss
    if loss == "cross_entropy":
        return lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    if loss == "mse":

        def mse(outputs, y):
            outputs = outputs.reshape(y.shape[0], -1)
            if outputs.shape[1] != 1:
                raise ValueError(f"loss 'mse' takes one output per example, the module gives {outputs.shape[1]}")
            return ((outputs[:, 0] - y) ** 2).mean()

        return mse
    raise InputError(f"loss {loss!r}: give 'cross_entropy', 'mse' or a function (outputs, y) -> scalar")
