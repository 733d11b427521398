"""The public model and data interface: :class:`Model`, :class:`Dataset` and :class:`DataShape`.

The built-in models and datasets are made of these, and so can a user's (``stragglersim.Model``,
``stragglersim.Dataset``): give them to the Python API as objects, or to the command line as the
import path of a factory (``--model package.module:factory``). See docs/own-model.md.

Shapes: ``x`` is a batch ``(batch, *input_shape)``; ``y`` is ``(batch,)``, integer class labels
(classification) or float targets (regression). ``params`` is any pytree of float arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..io.errors import InputError

TASKS = ("classification", "regression")


@dataclass(frozen=True, eq=False)
class Model:
    """Pure functions of one model (JAX-traceable: the trainer jits and differentiates them).

    Attributes:
        init: ``key -> params``: initial parameters from a ``jax.random`` key (each seed its own).
        loss: ``(params, x, y) -> scalar``: the mean loss over the batch, what gradients are taken
            of (cross-entropy in nats, mean squared error, ...). It must be a scalar (shape ``()``).
        evaluate: ``(params, x, y) -> (loss_sum, correct)``: sums over the batch, for exact means
            over a test set; ``correct`` is the number of right predictions (0 without accuracy).
            Default: ``loss * batch`` and, with ``predict`` on a classification dataset, the
            number of examples whose ``predict`` argmax is the label.
        predict: ``(params, x) -> outputs`` (logits, predictions), or None.
        name: shown in messages and plots.
        has_accuracy: whether ``correct`` means anything. Default (None): on a classification
            dataset, where ``evaluate`` or ``predict`` is given.
    """

    init: Callable
    loss: Callable
    evaluate: Callable | None = None
    predict: Callable | None = None
    name: str = "model"
    has_accuracy: bool | None = None

    def param_count(self, params) -> int:
        import jax  # here, not at import: stragglersim.Model is importable without JAX

        return sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))

    def param_bytes(self, params) -> int:
        """Bytes of one copy of the parameters (= one gradient push)."""
        import jax  # here, not at import: stragglersim.Model is importable without JAX

        return sum(p.size * p.dtype.itemsize for p in jax.tree_util.tree_leaves(params))


@dataclass(frozen=True)
class DataShape:
    """What a model factory is given (``--model package.module:factory`` calls ``factory(shape)``).

    Attributes:
        input_shape: one example's shape (a batch is ``(batch, *input_shape)``), e.g. ``(8, 8, 1)``.
        out_dim: the number of classes (classification) or 1 (regression).
        task: ``"classification"`` or ``"regression"``.
        train_size: examples in the training set.
        name: the dataset's name.
    """

    input_shape: tuple[int, ...]
    out_dim: int
    task: str
    train_size: int
    name: str


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training and a test set (NumPy arrays; anything ``numpy.asarray`` takes is converted).

    Attributes:
        x_train, x_test: inputs, ``(n, *input_shape)``, numbers (float32 is what the built-ins use).
        y_train, y_test: ``(n,)`` labels: integers in ``[0, classes)`` for classification, numbers
            for regression.
        task: ``"classification"`` (accuracy is reported) or ``"regression"``.
        name: shown in messages and plots.
        metadata: anything else worth keeping with the data (units, provenance); not read.

    Raises:
        InputError: arrays that do not pair up, an empty set, an unknown task, labels of a
            classification that are not integers >= 0.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str = "classification"
    name: str = "dataset"
    metadata: Mapping = field(default_factory=dict)

    def __post_init__(self):
        for name in ("x_train", "y_train", "x_test", "y_test"):
            value = np.asarray(getattr(self, name))
            if value.dtype == object or not np.issubdtype(value.dtype, np.number):
                raise InputError(f"dataset {self.name}: {name} must hold numbers, got an array of {value.dtype}")
            object.__setattr__(self, name, value)
        if self.task not in TASKS:
            raise InputError(f"dataset {self.name}: unknown task {self.task!r} (choose from {', '.join(TASKS)})")
        if self.x_train.ndim < 1 or len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise InputError(f"dataset {self.name}: inputs and labels differ in length")
        if self.y_train.ndim != 1 or self.y_test.ndim != 1:
            raise InputError(
                f"dataset {self.name}: labels must be one per example, shape (n,); got {self.y_train.shape}"
            )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise InputError(
                f"dataset {self.name}: training inputs are {self.x_train.shape[1:]} but test inputs "
                f"{self.x_test.shape[1:]}"
            )
        if len(self.x_train) == 0 or len(self.x_test) == 0:
            raise InputError(f"dataset {self.name}: empty training or test set")
        if self.task == "classification":
            for name in ("y_train", "y_test"):
                y = getattr(self, name)
                if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
                    raise InputError(
                        f"dataset {self.name}: {name} of a classification must be integer labels >= 0, "
                        f"got {y.dtype} from {y.min()}"
                    )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def out_dim(self) -> int:
        return int(self.y_train.max()) + 1 if self.task == "classification" else 1

    @property
    def shape(self) -> DataShape:
        return DataShape(self.input_shape, self.out_dim, self.task, len(self.x_train), self.name)
