"""Gradient quality, separated into its causes (``--gradient-quality``, ``--quality-every K``).

For an update that applies the gradient ``a`` (the mean of its mini-batch gradients, each at the
parameters its worker read, scaled as the strategy scales it) to parameters ``θ``:

- ``stale_cosine``, ``stale_error``: ``a`` against ``f``, the same mini-batches' gradients at
  ``θ`` with the same weights and scales. Staleness is the only difference, so a fresh update
  is exactly ``(1, 0)`` (recorded as such: the two are the same computation), and sampling
  noise does not enter.
- ``batch_cosine``, ``batch_error``: ``a`` against the gradient of a fixed reference batch
  (``--reference-batch`` examples of the training set) at ``θ``: sampling noise and staleness
  together (the measure of earlier versions, then named ``cosine`` and ``relative_error``).
  ``--reference-batch 0`` leaves them out.

An error is ``|a - r| / |r|`` for the reference ``r``. The measures run inside the trainer's
fused and batched paths (``lax.cond`` skips the updates not measured), so measuring every K-th
update costs little beyond the gradients it needs: one more per stale mini-batch, and one of
``--reference-batch`` examples (on a CPU that one dominates when it is much larger than an
update's own examples; see ``benchmarks/quality_cost.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from .steps import compiled_steps

FIELDS = ("stale_cosine", "stale_error", "batch_cosine", "batch_error")
NOT_MEASURED = (float("nan"),) * len(FIELDS)


def compiled_quality_steps(cache_key: tuple | None, model, optimizer, batch_size: int, counted: bool) -> tuple:
    """:func:`build_quality_steps`, shared by every run with the same ``cache_key`` (None: not shared)."""
    return compiled_steps(cache_key, model, optimizer, batch_size, counted, build=build_quality_steps)


def compare(a, b):
    """Cosine of flat vectors ``a`` and ``b``, and ``|a - b| / |b|``."""
    cosine = jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
    return cosine, jnp.linalg.norm(a - b) / jnp.linalg.norm(b)


def build_quality_steps(model, optimizer, batch_size: int, counted: bool) -> tuple:
    """The jitted functions of a run that measures quality: a scan of fused (fresh) updates, a
    scan of single stale updates over the ring of past versions, and one measurement.

    Each scan takes per-update flags (measure it; a real update, not padding) and returns the
    losses and one row of ``FIELDS`` per update (NaN where not measured). The parameters they
    produce are those of the functions of :func:`~stragglersim.training.steps.build_steps`.
    """
    extra = (lambda count: {"gradients": count}) if counted else (lambda count: {})
    nan_row = jnp.full(len(FIELDS), jnp.nan, jnp.float32)

    def loss_at(params, x, y, idx):
        return model.loss(params, jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0))

    grad_fn = jax.value_and_grad(loss_at)

    def measure(applied, fresh, params, x, y, reference):
        """One row of ``FIELDS``; ``fresh`` None: the applied gradient is fresh (stale part 1, 0)."""
        a = ravel_pytree(applied)[0]
        if reference is None:  # --reference-batch 0: the stale measures alone
            batch_cos, batch_err = jnp.float32(jnp.nan), jnp.float32(jnp.nan)
        else:
            batch_cos, batch_err = compare(a, ravel_pytree(grad_fn(params, x, y, reference)[1])[0])
        if fresh is None:
            stale_cos, stale_err = jnp.float32(1.0), jnp.float32(0.0)
        else:
            stale_cos, stale_err = compare(a, ravel_pytree(fresh)[0])
        return jnp.stack([stale_cos, stale_err, batch_cos, batch_err]).astype(jnp.float32)

    def keep(valid, new, old):
        return jax.tree_util.tree_map(lambda n, o: jnp.where(valid, n, o), new, old)

    def scan_fused(params, opt_state, x, y, idxs, measured, valid, reference):
        """Fresh updates (each the mean gradient of its concatenated mini-batches) in one scan."""

        def body(carry, item):
            params, opt_state = carry
            idx, m, v = item
            loss, grads = grad_fn(params, x, y, idx)
            row = jax.lax.cond(m, lambda: measure(grads, None, params, x, y, reference), lambda: nan_row)
            updates, new_state = optimizer.update(grads, opt_state, params, **extra(idx.shape[0] // batch_size))
            carry = keep(v, (optax.apply_updates(params, updates), new_state), (params, opt_state))
            return carry, (loss, row)

        (params, opt_state), (losses, rows) = jax.lax.scan(body, (params, opt_state), (idxs, measured, valid))
        return params, opt_state, losses, rows

    def scan_stale(buffers, params, opt_state, x, y, read, idxs, scales, write, measured, stale, reference):
        """Single-gradient updates over the ring (as ``flush_chunk``); a zero scale marks padding."""

        def body(carry, item):
            buffers, params, opt_state = carry
            r, idx, scale, w, m, s = item
            loss, g = grad_fn(jax.tree_util.tree_map(lambda b: b[r], buffers), x, y, idx)
            applied = jax.tree_util.tree_map(lambda a: a * scale, g)

            def row():
                fresh = jax.tree_util.tree_map(lambda a: a * scale, grad_fn(params, x, y, idx)[1])
                measured_row = measure(applied, fresh, params, x, y, reference)
                return jnp.where(s, measured_row, measured_row.at[:2].set(jnp.array([1.0, 0.0])))

            row = jax.lax.cond(m, row, lambda: nan_row)
            updates, new_state = optimizer.update(applied, opt_state, params, **extra(1))
            params, opt_state = keep(scale != 0, (optax.apply_updates(params, updates), new_state), (params, opt_state))
            buffers = jax.tree_util.tree_map(lambda b, p: b.at[w].set(p), buffers, params)
            return (buffers, params, opt_state), (loss, row)

        carry = (buffers, params, opt_state)
        (buffers, params, opt_state), (losses, rows) = jax.lax.scan(
            body, carry, (read, idxs, scales, write, measured, stale)
        )
        return buffers, params, opt_state, losses, rows

    return jax.jit(scan_fused), jax.jit(scan_stale, donate_argnums=0), jax.jit(measure)


def summarize(rows: np.ndarray) -> dict:
    """``summary.json``'s quality keys from the measured rows (an ``(n, 4)`` array, NaN rows not
    measured): for each field its mean, median, 10th percentile and fraction below 0, over the
    measured updates whose value is finite; and how many updates were measured."""
    rows = np.asarray(rows, dtype=float).reshape(-1, len(FIELDS))
    measured = rows[~np.isnan(rows).all(axis=1)]
    summary: dict = {"quality_updates": len(measured)}
    for column, name in enumerate(FIELDS):
        values = measured[:, column]
        values = values[np.isfinite(values)]
        stats = (
            (
                float(values.mean()),
                float(np.median(values)),
                float(np.percentile(values, 10)),
                float(np.mean(values < 0)),
            )
            if len(values)
            else (None,) * 4
        )
        summary |= dict(zip((f"{name}_mean", f"{name}_median", f"{name}_p10", f"{name}_below0"), stats, strict=True))
    return summary
