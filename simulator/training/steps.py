"""The training maths as pure, jitted JAX functions (optax style); the trainer only feeds them.

A fused step is the gradient of the concatenation of N equal-size mini-batches (their mean
gradient) followed by one optimizer step; stale steps gather the version a gradient read from
the ring of past versions (:mod:`~stragglersim.training.versions`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

# Jitted functions by model, dataset shape and optimizer: runs in one process (sweeps,
# reproduce, benchmarks) compile each shape once instead of once per run.
_COMPILED: dict[tuple, tuple] = {}


def compiled_steps(cache_key: tuple | None, model, optimizer, batch_size: int, counted: bool, build=None) -> tuple:
    """``build(model, optimizer, batch_size, counted)`` (default :func:`build_steps`), shared by every run
    with the same ``cache_key`` (None: not shared)."""
    build = build or build_steps
    key = (build.__qualname__, cache_key)
    functions = _COMPILED.get(key) if cache_key is not None else None
    if functions is None:
        functions = build(model, optimizer, batch_size, counted)
        if cache_key is not None:
            _COMPILED[key] = functions
    return functions


def build_steps(model, optimizer, batch_size: int, counted: bool) -> tuple:
    """The jitted functions: fused step, scan of fused steps, gradient, optimizer step,
    evaluation, and a scan of stale steps over the ring of past versions.

    Args:
        model: the model (``loss`` and ``evaluate``).
        optimizer: an optax transformation (see :func:`~stragglersim.training.optim.make_optimizer`).
        batch_size: examples per mini-batch.
        counted: pass the number of gradients averaged to the optimizer (``--lr-scaling``).
    """
    extra = (lambda count: {"gradients": count}) if counted else (lambda count: {})

    def loss_at(params, x, y, idx):
        return model.loss(params, jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0))

    grad_fn = jax.value_and_grad(loss_at)

    def fused_step(params, opt_state, x, y, idx):
        loss, grads = grad_fn(params, x, y, idx)
        count = idx.shape[0] // batch_size  # mini-batches concatenated in idx
        updates, opt_state = optimizer.update(grads, opt_state, params, **extra(count))
        return optax.apply_updates(params, updates), opt_state, loss

    def apply_step(params, opt_state, grads, count=1):
        updates, opt_state = optimizer.update(grads, opt_state, params, **extra(count))
        return optax.apply_updates(params, updates), opt_state

    def scan_steps(params, opt_state, x, y, idxs):
        """Consecutive fused updates in one dispatch: nothing between them depends on them."""

        def body(carry, idx):
            params, opt_state, loss = fused_step(*carry, x, y, idx)
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), idxs)
        return params, opt_state, losses

    def flush_chunk(buffers, params, opt_state, x, y, read, idxs, scales, write):
        """Stale updates in order, in one scan: each step gathers the version its gradient
        read from the ring (written by an earlier step of the same scan if need be), applies
        the gradient and writes the new version back. A zero scale marks padding."""

        def body(carry, item):
            buffers, params, opt_state = carry
            r, idx, scale, w = item
            loss, g = grad_fn(jax.tree_util.tree_map(lambda b: b[r], buffers), x, y, idx)
            new = apply_step(params, opt_state, jax.tree_util.tree_map(lambda a: a * scale, g))
            params, opt_state = jax.tree_util.tree_map(
                lambda n, o: jnp.where(scale != 0, n, o), new, (params, opt_state)
            )
            buffers = jax.tree_util.tree_map(lambda b, p: b.at[w].set(p), buffers, params)
            return (buffers, params, opt_state), loss

        (buffers, params, opt_state), losses = jax.lax.scan(
            body, (buffers, params, opt_state), (read, idxs, scales, write)
        )
        return buffers, params, opt_state, losses

    return (
        jax.jit(fused_step),
        jax.jit(scan_steps),
        jax.jit(grad_fn),
        jax.jit(apply_step),
        jax.jit(model.evaluate),
        jax.jit(flush_chunk, donate_argnums=0),  # the ring is updated in place, not copied per chunk
    )
