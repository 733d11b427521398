"""Dutta et al.'s error bound against a simulated run of a strongly convex model.

L2-regularised logistic regression on the digits is strongly convex with modulus c = λ (the L2
weight) and L-smooth with L <= λ_max(E[x̃ x̃ᵀ]) / 2 + λ (x̃: the input with a 1 for the bias;
the softmax cross-entropy's Hessian in the logits is at most I/2). The gradient-noise variance σ²
of one example is measured at the optimum w*, found by full-batch gradient descent. K-sync
(``k-sync``, K of P) with step η then obeys

    E[F(w_J)] - F* <= ηLσ²/(2cKm) + (1 - ηc)^J (F(w_0) - F* - ηLσ²/(2cKm)),  J = t / E[X_{K:P}]

(Dutta et al. 2018, Theorem 1), drawn beside the simulated run's F(w_t) - F*.
"""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

from ..core.config import RunConfig
from ..core.engine import Simulation
from ..core.streams import Stream
from ..latency import parse_latency
from ..models.datasets import Dataset, load_dataset
from ..models.zoo import build_model
from ..training.trainer import Trainer
from .theory import dutta_error_bound, order_mean


def convex_study(config: RunConfig, l2: float = 0.01, gd_steps: int = 3000) -> dict:
    """Simulate ``config`` (a k-sync run, model logreg) on the L2-regularised objective and
    compute the bound. Returns the curve, the bound and the constants."""
    digits = load_dataset("digits")
    # Evaluate the objective F on the training set itself: the "test" set is the training set.
    data = Dataset(digits.x_train, digits.y_train, digits.x_train, digits.y_train, "classification", "digits-train")
    model = build_model("logreg", data, l2=l2)
    x = jnp.asarray(data.x_train.reshape(len(data.x_train), -1))
    y = jnp.asarray(data.y_train)
    xb = np.hstack([np.asarray(x), np.ones((len(x), 1))])
    lipschitz = float(np.linalg.eigvalsh(xb.T @ xb / len(xb)).max()) / 2 + l2
    # F* by full-batch gradient descent with step 1/L (linear convergence for strongly convex F).
    params = model.init(jax.random.fold_in(jax.random.key(config.seed), Stream.INIT))
    initial = float(model.loss(params, x, y))
    step = jax.jit(lambda p: jax.tree_util.tree_map(lambda a, g: a - g / lipschitz, p, jax.grad(model.loss)(p, x, y)))
    optimum = params
    for _ in range(gd_steps):
        optimum = step(optimum)
    f_star = float(model.loss(optimum, x, y))
    # σ²: variance of one example's gradient at the optimum.
    per_example = jax.vmap(lambda xi, yi: jax.grad(model.loss)(optimum, xi[None], yi[None]))(x, y)
    flat = jnp.concatenate([g.reshape(len(x), -1) for g in jax.tree_util.tree_leaves(per_example)], axis=1)
    noise = float(jnp.mean(jnp.sum((flat - flat.mean(axis=0)) ** 2, axis=1)))
    config = replace(config, model="logreg", optimizer="sgd", lr_scaling="none", lr_schedule="constant")
    sim = Simulation(config)
    trainer = Trainer(
        config, sim, model, data, model.init(jax.random.fold_in(jax.random.key(config.seed), Stream.INIT))
    )
    result = trainer.run()
    times = np.array([row[1] for row in result.metrics])
    error = np.array([row[3] for row in result.metrics]) - f_star
    mean_t = order_mean(parse_latency(config.latency), config.k, config.workers)
    bound = dutta_error_bound(
        times,
        mean_iteration_time=mean_t,
        eta=config.lr,
        lipschitz=lipschitz,
        convexity=l2,
        noise=noise,
        k=config.k,
        batch=config.batch_size,
        initial_gap=initial - f_star,
    )
    return {
        "times": times,
        "error": error,
        "bound": bound,
        "L": lipschitz,
        "c": l2,
        "sigma2": noise,
        "f_star": f_star,
        "initial_gap": initial - f_star,
        "eta": config.lr,
        "K": config.k,
        "P": config.workers,
        "m": config.batch_size,
        "mean_iteration_time": mean_t,
    }
