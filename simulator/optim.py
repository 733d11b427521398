"""Optimizers and learning-rate schedules through optax, built from a RunConfig."""

from __future__ import annotations

import math

import optax


def learning_rate(config, gradients_per_update: int):
    """The schedule: ``lr`` scaled with the gradients averaged per update, then decayed.

    References:
        Goyal et al. 2017 (linear scaling rule); Chen et al. 2016, Inception setting: ×0.94
        every 2 epochs (here every ``lr_decay_steps`` updates).
    """
    scale = {"none": 1.0, "linear": gradients_per_update, "sqrt": math.sqrt(gradients_per_update)}[config.lr_scaling]
    lr = config.lr * scale
    if config.lr_schedule == "exponential":
        return optax.exponential_decay(lr, config.lr_decay_steps, config.lr_decay_rate, staircase=True)
    return lr


def make_optimizer(config, gradients_per_update: int) -> optax.GradientTransformation:
    """``sgd``, ``momentum``, ``rmsprop`` (decay 0.9, momentum 0.9, eps 1.0, the paper's
    Inception setting) or ``adam``."""
    lr = learning_rate(config, gradients_per_update)
    if config.optimizer == "sgd":
        return optax.sgd(lr)
    if config.optimizer == "momentum":
        return optax.sgd(lr, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return optax.rmsprop(lr, decay=0.9, eps=1.0, momentum=0.9)
    return optax.adam(lr)
