"""How the trainer applies the engine's updates: deferred chunks and the general path.

- Fresh synchronous updates are queued and run as one ``lax.scan`` (``_flush``): the mean of N
  equal-size mini-batch means is the gradient of their concatenation.
- Single-gradient updates of a strategy with staleness are queued and run as one scan over the
  ring of past versions (``_flush_stale``).
- Anything else (several gradients, some stale) is computed at once, grouped by the version read.

With quality measured, the scans are their :mod:`~stragglersim.training.quality` variants. Every
chunk's losses are checked for divergence (``_watch``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import quality

MAX_FUSED = 64  # consecutive synchronous updates run in one lax.scan


class UpdateApplier:
    """The update-applying half of :class:`~stragglersim.training.trainer.Trainer` (its state is
    set up there: parameters, queues, compiled functions, the version ring)."""

    def _apply_update(self, update) -> None:
        """Apply one update (perhaps deferred, see ``_flush``); its loss goes to ``self._losses``
        and, with quality measured, its row of quality.FIELDS to ``self._quality``."""
        gradients = update.gradients
        read = update.index - 1
        fresh = all(g.version == read for g in gradients)
        measure = bool(self.quality_every) and update.index % self.quality_every == 0
        if fresh and self.history is None:
            queued = self._queued
            if queued and (len(queued) == MAX_FUSED or len(queued[0]) != len(gradients)):
                self._flush()
            self._queued.append(gradients)  # indices built for the whole chunk at once (_flush)
            self._measured.append(measure)
            self._samples.append(len(gradients) * self.config.batch_size)
            self.version = update.index
            return
        self._flush()
        if self.history is not None and len(gradients) == 1:
            g = gradients[0]
            if len(self._stale) == MAX_FUSED:
                self._flush_stale()
            scale = 1.0 / g.staleness if self.config.staleness_lr and g.staleness else 1.0
            self._stale.append((update.index, g.version, g.worker, g.index, scale, measure, g.version != read))
            self._samples.append(self.config.batch_size)
            self.version = update.index
            return
        self._flush_stale()
        if all(g.version == self.version for g in gradients) and not measure:
            idx = self._indices(gradients)
            self.params, self.opt_state, loss = self._fused(self.params, self.opt_state, self.x, self.y, idx)
            used = len(idx)
        else:
            loss, grads, used = self._gradient(gradients)
            if measure:
                fresh_grads = None if fresh else self._gradient(gradients, at=self.params)[1]
                row = self._measure(grads, fresh_grads, self.params, self.x, self.y, self._reference)
                self._quality.append(jnp.reshape(row, (1, -1)))
            self.params, self.opt_state = self._apply_grads(self.params, self.opt_state, grads, len(gradients))
        if self.quality_every and not measure:
            self._quality.append(jnp.full((1, len(quality.FIELDS)), jnp.nan, jnp.float32))
        self._samples.append(used)
        self._losses.append(jnp.reshape(loss, (1,)))
        self._watch()
        self.version = update.index
        if self.history is not None:
            self._prune()
            self.history.put(self.version, self.params)

    def _watch(self, *, wait: bool = False) -> None:
        """Check the losses not checked yet: the first that is NaN, infinite or above
        ``divergence_loss`` marks its update as the one where training diverged, and the loop
        stops. The newest chunk is left for the next check unless ``wait`` (an evaluation, the
        end): reading it would wait for the device and stall the simulation meanwhile, so a
        divergence is found at most two chunks (``2 * MAX_FUSED`` updates) after it happened."""
        upto = len(self._losses) if wait else len(self._losses) - 1
        new = self._losses[self._watched_chunks : upto]
        if not new:
            return
        self._watched_chunks = upto
        values = np.concatenate(jax.device_get(new))
        before = self._watched
        self._watched += len(values)
        if self.diverged_at is not None:
            return
        bound = self.config.divergence_loss
        bad = ~np.isfinite(values) | (values > bound if bound is not None else False)
        if bad.any():
            first = int(np.argmax(bad))
            self.diverged_at = before + first + 1
            above = f" (above the divergence bound {bound:g})" if np.isfinite(values[first]) else ""
            self.diverged = (
                f"the training loss became {float(values[first]):g} at update {self.diverged_at}{above}: "
                f"lower the learning rate; metrics so far are kept"
            )

    def _flush_stale(self) -> None:
        """Apply the deferred single-gradient updates in one ``lax.scan`` over the version ring."""
        if not self._stale:
            return
        chunk, self._stale = self._stale, []
        size = 1 << (len(chunk) - 1).bit_length()  # pad to a power of two: a few compiled shapes
        padded = chunk + [chunk[-1][:4] + (0.0, False, False)] * (size - len(chunk))  # scale 0: changes nothing
        index, version, worker, batch, scales, measured, stale = (
            np.asarray(column) for column in zip(*padded, strict=True)
        )
        ring = self.history
        self._prune(also=int(version.min()))  # the chunk's reads are no longer "in flight"
        newest = chunk[-1][0]
        ring.reserve(newest)
        # NumPy arguments: the jitted call moves them to the device in one go.
        read = ring.slots(version, upto=newest).astype(np.int32)
        write = (index % ring.capacity).astype(np.int32)
        idxs = self.batches.many(worker, batch)
        arguments = (ring.buffers, self.params, self.opt_state, self.x, self.y, read, idxs, scales.astype(np.float32))
        if self.quality_every:
            ring.buffers, self.params, self.opt_state, losses, rows = self._stale_quality(
                *arguments, write, measured, stale, self._reference
            )
            self._quality.append(rows if size == len(chunk) else rows[: len(chunk)])
        else:
            ring.buffers, self.params, self.opt_state, losses = self._flush_chunk(*arguments, write)
        ring.wrote(newest)
        self._prune()  # the chunk's own reads are done with
        self._losses.append(losses if size == len(chunk) else losses[: len(chunk)])
        self._watch()

    def _flush(self) -> None:
        """Apply the deferred fused updates: one ``lax.scan`` over their mini-batch indices."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        measured, self._measured = self._measured, []
        workers = [g.worker for gradients in queued for g in gradients]
        batches = [g.index for gradients in queued for g in gradients]
        idxs = self.batches.many(workers, batches).reshape(len(queued), -1)  # NumPy: one transfer in the call
        if self.quality_every:
            size = 1 << (len(queued) - 1).bit_length()  # pad to a power of two: a few compiled shapes
            pad = size - len(queued)
            idxs = np.concatenate([idxs, np.repeat(idxs[-1:], pad, axis=0)])
            valid = np.arange(size) < len(queued)
            measured = np.asarray(measured + [False] * pad)
            self.params, self.opt_state, losses, rows = self._scan_quality(
                self.params, self.opt_state, self.x, self.y, idxs, measured, valid, self._reference
            )
            self._losses.append(losses[: len(queued)] if pad else losses)
            self._quality.append(rows[: len(queued)] if pad else rows)
        elif len(queued) == 1:
            self.params, self.opt_state, loss = self._fused(self.params, self.opt_state, self.x, self.y, idxs[0])
            self._losses.append(jnp.reshape(loss, (1,)))
        else:
            self.params, self.opt_state, losses = self._scan(self.params, self.opt_state, self.x, self.y, idxs)
            self._losses.append(losses)
        self._watch()

    def _indices(self, gradients) -> jnp.ndarray:
        return jnp.asarray(np.concatenate([self.batches.indices(g.worker, g.index) for g in gradients]))

    def _gradient(self, gradients, *, at=None):
        """Mean gradient and loss of ``gradients``, each at the version its worker read (or all
        at the parameters ``at``), and the number of examples they used.

        With ``staleness_lr`` a gradient of staleness τ > 0 is scaled by 1/τ (Zhang et al. 2016).
        """
        groups: dict[tuple[int, float], list] = {}
        for g in gradients:
            scale = 1.0 / g.staleness if self.config.staleness_lr and g.staleness else 1.0
            groups.setdefault((g.version, scale), []).append(g)
        total_loss, total_grads, used = 0.0, None, 0
        for (version, scale), group in groups.items():
            params = at if at is not None else self.params if version == self.version else self._params_at(version)
            idx = self._indices(group)
            used += len(idx)
            loss, grads = self._grad(params, self.x, self.y, idx)
            weight = len(group) / len(gradients)
            total_loss = total_loss + weight * loss
            scaled = jax.tree_util.tree_map(lambda a, w=weight * scale: w * a, grads)
            total_grads = scaled if total_grads is None else jax.tree_util.tree_map(jnp.add, total_grads, scaled)
        return total_loss, total_grads, used

    def _params_at(self, version: int):
        return self.history.get(version)

    def _prune(self, also: int | None = None) -> None:
        """Drop versions no gradient still to be applied can have read: older than every
        gradient in flight or produced but not yet applied here, or (with a staleness cutoff T)
        older than the current version - T."""
        oldest = self.sim.oldest_live_version(consumed=self.version)
        if self.config.staleness_cutoff is not None:
            oldest = max(oldest, self.version - self.config.staleness_cutoff)
        if also is not None:
            oldest = min(oldest, also)
        self.history.forget_before(oldest)
