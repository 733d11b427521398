"""A run's dataset and model: a built-in, or the user's own (an import path or an API object).

The user's are checked here, once, before any simulation: a factory that raises, a model whose
loss fails on (or does not fit) a batch of the dataset, a loss that is not a scalar or not finite at
the initial parameters, a dataset too small for a batch. Each is one line naming the option.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..io import imports
from ..io.errors import InputError, named
from ..models.datasets import load_dataset, validation_split
from ..models.interface import Dataset, Model
from .limits import check_memory
from .streams import Stream


def dataset_of(config) -> Dataset:
    """The run's dataset (with ``validation_split``, its training set less the held-out part).

    Raises:
        InputError: a dataset that cannot be loaded, or a loader that fails or returns no Dataset.
    """
    if imports.is_user(config.dataset):
        dataset = _user_dataset(config)
    else:
        dataset = load_dataset(config.dataset, path=config.data_path or None, size=config.dataset_size or None)
    if len(dataset.x_train) < config.batch_size:
        raise InputError(
            f"{named('dataset')} {config.dataset}: {len(dataset.x_train)} training examples, fewer than one batch "
            f"({named('batch_size')} {config.batch_size}); give a smaller batch or more data"
        )
    if config.data_partition != "shared" and len(dataset.x_train) < config.total_workers:
        raise InputError(
            f"{named('data_partition')} {config.data_partition}: {config.total_workers} workers need at least "
            f"{config.total_workers} training examples to shard, and {config.dataset} has {len(dataset.x_train)}"
        )
    if config.validation_split is not None:
        dataset = validation_split(dataset, config.validation_split)
    return dataset


def _user_dataset(config) -> Dataset:
    """``loader()`` (with ``path=`` and ``size=`` where ``data_path`` and ``dataset_size`` are given), or the object."""
    value = config.dataset
    loader = imports.resolve("dataset", value)
    if isinstance(loader, Dataset):
        return loader
    if not callable(loader):
        raise InputError(
            f"{named('dataset')} {value}: a {type(loader).__name__}, not a Dataset or a loader returning one"
        )
    kwargs = {"path": config.data_path} if config.data_path else {}
    kwargs |= {"size": config.dataset_size} if config.dataset_size else {}
    dataset = _call("dataset", value, loader, **kwargs)
    if not isinstance(dataset, Dataset):
        raise InputError(f"{named('dataset')} {value}: returned a {type(dataset).__name__}, not a stragglersim.Dataset")
    return dataset


def model_of(config, dataset: Dataset):
    """The model for ``dataset`` and its initial parameters (from the run's seed).

    Raises:
        InputError: a model that does not fit the dataset (see the module docstring).
    """
    import jax  # here, not at import: a timing-only run never imports JAX (2 s)

    key = jax.random.fold_in(jax.random.key(config.seed), Stream.INIT)
    if not imports.is_user(config.model):
        from ..models.zoo import build_model  # here, not at import: it imports JAX

        try:
            model = build_model(config.model, dataset, hidden=config.hidden_sizes)
        except ValueError as err:
            raise InputError(f"{named('model')} {config.model}: {err}") from None
        return model, model.init(key)
    model, size, loss = _checked(config, dataset, key)
    data = sum(a.nbytes for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))
    check_memory(config, measured={"the model": 4.0 * size, "the dataset": float(data)})  # measured before made
    params = _call("model", config.model, model.init, key, what="its init")
    first = float(loss(params, dataset.x_train[: config.batch_size], dataset.y_train[: config.batch_size]))
    if not math.isfinite(first):
        raise InputError(
            f"{named('model')} {config.model}: its loss is {first} at the initial parameters (seed {config.seed}) on "
            f"the first batch of {dataset.name}; {_nan_hint(model, dataset, params, config.batch_size)}"
        )
    return model, params


def _nan_hint(model: Model, dataset: Dataset, params, batch: int) -> str:
    """What to check: the outputs per example against the classes, where that is the cause."""
    import jax  # here, not at import: a timing-only run never imports JAX (2 s)

    if dataset.task == "classification" and model.predict is not None:
        outputs = jax.eval_shape(model.predict, params, dataset.x_train[:batch]).shape
        if len(outputs) >= 2 and outputs[-1] < dataset.out_dim:
            return (
                f"it gives {outputs[-1]} outputs per example, but the labels go up to {dataset.out_dim - 1} "
                f"(DataShape.out_dim = {dataset.out_dim})"
            )
    return "check the initialisation and the inputs' scale"


# The user's models built and checked, by what they depend on: each once per process (a sweep's runs, tuning).
_CHECKED: dict[tuple, tuple] = {}


def _checked(config, dataset: Dataset, key) -> tuple[Model, int, object]:
    """The user's model for ``dataset``, the bytes of its parameters and its jitted loss, its functions
    checked on the shapes of a batch (:func:`_check_fit`), once per process."""
    import jax  # here, not at import: a timing-only run never imports JAX (2 s)

    x = dataset.x_train[: config.batch_size]
    data = (config.dataset, config.data_path, config.dataset_size, config.validation_split, dataset.shape)
    cached = (config.model, *data, x.shape, str(x.dtype), str(dataset.y_train.dtype))
    if cached not in _CHECKED:
        model = _user_model(config.model, dataset)
        shapes = _call("model", config.model, jax.eval_shape, model.init, key, what="its init")
        _check_fit(config, model, dataset, shapes)
        size = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(shapes))
        _CHECKED[cached] = (model, size, jax.jit(model.loss))
    return _CHECKED[cached]


def _user_model(value: str, dataset: Dataset) -> Model:
    """``factory(dataset.shape)`` (or the Model itself), its ``evaluate`` and ``has_accuracy`` filled in."""
    factory = imports.resolve("model", value)
    model = factory if isinstance(factory, Model) else None
    if model is None:
        if not callable(factory):
            raise InputError(f"{named('model')} {value}: a {type(factory).__name__}, not a Model or a factory")
        model = _call("model", value, factory, dataset.shape)
    if not isinstance(model, Model):
        raise InputError(f"{named('model')} {value}: returned a {type(model).__name__}, not a stragglersim.Model")
    for name in ("init", "loss"):
        if not callable(getattr(model, name)):
            raise InputError(f"{named('model')} {value}: its {name} is not a function")
    classification = dataset.task == "classification"
    accuracy = model.has_accuracy
    if accuracy is None:
        accuracy = classification and (model.evaluate is not None or model.predict is not None)
    return replace(model, evaluate=model.evaluate or _evaluate(model, classification), has_accuracy=accuracy)


def _evaluate(model: Model, classification: bool):
    """``evaluate`` from the mean loss and, on a classification with ``predict``, its argmax."""
    import jax.numpy as jnp  # here, not at import: a timing-only run never imports JAX (2 s)

    loss, predict = model.loss, model.predict

    def evaluate(params, x, y):
        total = loss(params, x, y) * x.shape[0]
        if classification and predict is not None:
            return total, (predict(params, x).argmax(axis=-1) == y).sum()
        return total, jnp.zeros((), jnp.int32)

    return evaluate


def _check_fit(config, model: Model, dataset: Dataset, params) -> None:
    """The loss and evaluation on the first batch's shapes, at ``params`` (their shapes): they trace
    and give scalars."""
    import jax  # here, not at import: a timing-only run never imports JAX (2 s)

    value = config.model
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves or any(not jax.numpy.issubdtype(leaf.dtype, jax.numpy.inexact) for leaf in leaves):
        raise InputError(f"{named('model')} {value}: its init must return a pytree of float arrays (what is trained)")
    x, y = dataset.x_train[: config.batch_size], dataset.y_train[: config.batch_size]
    batch = f"x {x.dtype}{list(x.shape)}, y {y.dtype}{list(y.shape)}"
    for name, function in (("loss", model.loss), ("evaluate", model.evaluate)):
        try:
            out = jax.eval_shape(function, params, x, y)
        except Exception as err:  # noqa: BLE001 (the user's code may raise anything: one line says what)
            raise InputError(
                f"{named('model')} {value}: its {name} fails on a batch of {dataset.name} ({batch}): "
                f"{imports.one_line(err)}"
            ) from None
        outs = out if name == "evaluate" and isinstance(out, tuple | list) else [out]
        shapes = [getattr(o, "shape", None) for o in outs]
        if (name == "evaluate" and len(shapes) != 2) or any(s != () for s in shapes):
            wanted = "a scalar (the batch's mean loss)" if name == "loss" else "two scalars (loss sum, correct)"
            raise InputError(f"{named('model')} {value}: its {name} returns shapes {shapes} on ({batch}), not {wanted}")


def _call(field: str, value: str, function, *args, what: str = "the factory", **kwargs):
    try:
        return function(*args, **kwargs)
    except InputError as err:  # the user's code refused something (a Dataset, an adapter): which option's
        raise InputError(f"{named(field)} {value}: {err.args[0] if err.args else err}") from None
    except Exception as err:  # noqa: BLE001 (the user's code may raise anything: one line says what)
        raise InputError(f"{named(field)} {value}: {what} raised {imports.one_line(err)}") from None
