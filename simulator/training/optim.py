"""Optimizers and learning-rate schedules through optax, built from a RunConfig."""

from __future__ import annotations

import inspect
import math

import jax
import optax

from ..io import imports
from ..io.errors import InputError, named


def learning_rate(config, gradients_per_update: int):
    """The schedule: ``lr`` scaled with the gradients averaged per update, then decayed.

    References:
        Goyal et al. 2017 (linear scaling rule); Chen et al. 2016, Inception setting: ×0.94
        every 2 epochs (here every ``lr_decay_steps`` updates).
    """
    lr = config.lr * count_scale(config.lr_scaling, gradients_per_update)
    if config.lr_schedule == "exponential":
        return optax.exponential_decay(lr, config.lr_decay_steps, config.lr_decay_rate, staircase=True)
    return lr


def count_scale(scaling: str, gradients):
    """The factor ``--lr-scaling`` puts on the learning rate of an update averaging ``gradients``."""
    if scaling == "linear":
        return gradients
    if scaling == "sqrt":
        return math.sqrt(gradients) if isinstance(gradients, int | float) else jax.numpy.sqrt(gradients)
    return 1.0


def make_optimizer(config, gradients_per_update: int, *, counted: bool = False) -> optax.GradientTransformation:
    """``sgd``, ``momentum``, ``rmsprop`` (decay 0.9, momentum 0.9, eps 1.0, the paper's
    Inception setting) or ``adam``.

    Where :func:`lr_in_state`, the learning rate is a value of the optimizer's state
    (``optax.inject_hyperparams``), not a constant of its code, so runs that differ only in ``lr`` share
    one compilation (tuning).

    Args:
        gradients_per_update: what ``--lr-scaling`` scales the learning rate with when every
            update averages the same number of gradients.
        counted: updates average a varying number of gradients (``deadline``,
            ``adaptive-backup``): with ``--lr-scaling``, ``update`` then takes the number
            actually averaged as the keyword ``gradients`` and scales that update's learning
            rate with it, where optax applies the learning rate.
    """
    counted = counted and config.lr_scaling != "none"
    lr = learning_rate(config, 1 if counted else gradients_per_update)
    if imports.is_user(config.optimizer):
        return user_optimizer(config, lr, counted=counted)
    if not lr_in_state(config, counted):
        return _transformation(lr, config=config, counted=counted)
    injected = optax.inject_hyperparams(_transformation, static_args=("config", "counted"))
    return injected(learning_rate=lr, config=config, counted=counted)


def lr_in_state(config, counted: bool) -> bool:
    """Whether the learning rate is a value of the optimizer's state rather than a constant of its code:
    a constant rate of sgd, momentum or adam, unscaled per update. Elsewhere XLA rounds a traced rate's
    products differently from a constant's (rmsprop, a per-count scale: one float32 ulp), and runs keep
    their numbers."""
    if imports.is_user(config.optimizer):
        return True  # injected, or fixed inside the transformation: no run compiles its rate in
    plain = not (counted and config.lr_scaling != "none")
    return plain and config.lr_schedule == "constant" and config.optimizer in ("sgd", "momentum", "adam")


def _transformation(learning_rate, *, config, counted: bool) -> optax.GradientTransformationExtraArgs:
    """The optimizer at ``learning_rate`` (a number, an array or a schedule)."""
    if not counted:
        return optax.with_extra_args_support(_optimizer(config, learning_rate))
    per_count = optax.GradientTransformationExtraArgs(
        lambda params: optax.EmptyState(),
        lambda updates, state, params=None, *, gradients, **extra: (
            jax.tree_util.tree_map(lambda u: u * count_scale(config.lr_scaling, gradients), updates),
            state,
        ),
    )
    if config.optimizer == "rmsprop":  # its momentum trace follows the learning rate
        return optax.chain(
            optax.scale_by_rms(decay=0.9, eps=1.0),
            optax.scale_by_learning_rate(learning_rate),
            per_count,
            optax.trace(decay=0.9),
        )
    return optax.chain(_optimizer(config, learning_rate), per_count)  # the learning rate is their last factor


OPTIMIZERS = {  # name: the optax optimizer at learning rate lr
    "sgd": lambda config, lr: optax.sgd(lr),
    "momentum": lambda config, lr: optax.sgd(lr, momentum=config.momentum),
    "rmsprop": lambda config, lr: optax.rmsprop(lr, decay=0.9, eps=1.0, momentum=0.9),  # the paper's Inception
    "adam": lambda config, lr: optax.adam(lr),
}


def _optimizer(config, lr) -> optax.GradientTransformation:
    if config.optimizer not in OPTIMIZERS:  # config.validate() refuses it first; never a silent default
        raise ValueError(f"unknown optimizer {config.optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[config.optimizer](config, lr)


def user_optimizer(config, lr, *, counted: bool) -> optax.GradientTransformationExtraArgs:
    """The user's optimizer (``--optimizer package.module:factory``): ``factory(learning_rate=...)``
    returning any optax ``GradientTransformation`` (a chain, with its own schedules). The learning rate
    (``lr``, with ``--lr-schedule`` and ``--lr-scaling``) is an injected hyperparameter: a value of the
    state, scaled per update where updates average varying numbers of gradients (``counted``). A
    transformation given as it is, or a factory without ``learning_rate``, has its rate inside it.

    Raises:
        InputError: a factory that raises or returns no transformation; a rate rule that cannot reach
            a fixed rate (``--lr-scaling``, ``--lr-schedule``).
    """
    value = config.optimizer
    given = imports.resolve("optimizer", value)
    if _rate_inside(given):
        rules = [
            f"{named(name)} {getattr(config, name)}"
            for name, off in (("lr_scaling", "none"), ("lr_schedule", "constant"))
            if getattr(config, name) != off
        ]
        if rules:
            raise InputError(
                f"{rules[0]}: cannot apply to {named('optimizer')} {value}, whose learning rate is fixed inside it; "
                f"give a factory taking learning_rate (package.module:factory)"
            )
        fixed = given if isinstance(given, optax.GradientTransformation) else _built(value, given)
        return optax.with_extra_args_support(fixed)

    def scaled(learning_rate, lr_factor):
        return _built(value, given, learning_rate=learning_rate * lr_factor)

    _built(value, given, learning_rate=config.lr)  # its errors here, in one line, not inside a trace
    injected = optax.inject_hyperparams(scaled)(learning_rate=lr, lr_factor=1.0)
    if not counted:
        return injected

    def update(updates, state, params=None, *, gradients, **extra):
        factor = jax.numpy.asarray(count_scale(config.lr_scaling, gradients), state.hyperparams["lr_factor"].dtype)
        state = state._replace(hyperparams={**state.hyperparams, "lr_factor": factor})
        return injected.update(updates, state, params, **extra)

    return optax.GradientTransformationExtraArgs(injected.init, update)


def rate_fixed(optimizer: str) -> bool:
    """Whether ``optimizer`` (a config's) is the user's with its learning rate inside it (``--lr`` unused)."""
    if not imports.is_user(optimizer):
        return False
    return _rate_inside(imports.resolve("optimizer", optimizer))


def _rate_inside(given) -> bool:
    """Whether the user's optimizer has its rate inside it: a transformation, or a factory without learning_rate."""
    return isinstance(given, optax.GradientTransformation) or not _takes_rate(given)


def _takes_rate(factory) -> bool:
    if not callable(factory):
        return False
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return "learning_rate" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _built(value: str, factory, **kwargs) -> optax.GradientTransformation:
    if not callable(factory):
        raise InputError(
            f"{named('optimizer')} {value}: a {type(factory).__name__}, not an optax transformation or a factory"
        )
    try:
        built = factory(**kwargs)
    except Exception as err:  # noqa: BLE001 (the user's code may raise anything: one line says what)
        raise InputError(f"{named('optimizer')} {value}: the factory raised {imports.one_line(err)}") from None
    if not isinstance(built, optax.GradientTransformation):
        raise InputError(
            f"{named('optimizer')} {value}: returned a {type(built).__name__}, not an optax GradientTransformation"
        )
    return built
