"""Real training driven by the event model.

The trainer consumes the engine's updates in order and computes exactly the gradients that
were applied, each at the parameter version its worker read:

- a synchronous update whose gradients all read the current version is one fused step: the
  mean of N equal-size mini-batch means is the gradient of their concatenation;
- otherwise (async, or any stale gradient) gradients are grouped by the version they read and
  computed on that version's parameters, kept in a history that is pruned to the oldest
  version still in flight.

Dropped and cancelled gradients are never computed. Evaluation runs on the simulated clock.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..core.assemble import RunInputs, assemble
from ..core.config import RunConfig
from ..core.data import WorkerBatches
from ..core.engine import Simulation
from ..core.streams import Stream, stream
from ..core.workload import example_work
from ..io.gcpause import gc_paused
from ..io.progress import NULL_PROGRESS
from ..models.datasets import Dataset
from ..models.zoo import Model
from . import checkpoint
from .evaluation import Evaluator, TrainingResult, describe_device
from .optim import make_optimizer
from .steps import compiled_steps
from .versions import VersionRing

MAX_FUSED = 64  # consecutive synchronous updates run in one lax.scan


def _number(x: float) -> int | float:
    """``x`` as an int when it is one (so a constant count prints as before)."""
    return int(x) if float(x).is_integer() else float(x)


def train(
    run: RunInputs | RunConfig,
    *,
    progress=NULL_PROGRESS,
    checkpoints: Path | None = None,
    resume: Path | None = None,
):
    """Simulate a run with real training.

    Args:
        run: the run's inputs (see :func:`~stragglersim.core.assemble.assemble`), or a config to
            assemble here.

    Returns:
        (the resolved config, the event log, a :class:`TrainingResult`).

    Raises:
        InputError: the dataset cannot be loaded or the model does not fit it.
    """
    inputs = run if isinstance(run, RunInputs) else assemble(run, training=True)
    config, model, dataset, params = inputs.config, inputs.model, inputs.dataset, inputs.params
    sim = Simulation(inputs, progress=progress)
    # Everything the jitted functions depend on, so runs in one process share their compilation.
    key = (
        config.model,
        config.dataset,
        config.data_path,
        config.dataset_size,
        config.hidden,
        config.optimizer,
        config.lr,
        config.momentum,
        config.lr_schedule,
        config.lr_decay_rate,
        config.lr_decay_steps,
        config.lr_scaling,
        sim.strategy.per_update,
        sim.strategy.per_update_varies,
    )
    trainer = Trainer(
        config,
        sim,
        model,
        dataset,
        params,
        cache_key=key,
        checkpoints=checkpoints if config.checkpoint_every else None,
        resume=resume,
    )
    with gc_paused():  # the engine's records form no cycles (see Simulation.run)
        result = trainer.run()
    return config, sim.log, result


class Trainer:
    """Applies the engine's updates to real parameters with real gradients."""

    def __init__(
        self,
        config: RunConfig,
        sim: Simulation,
        model: Model,
        dataset: Dataset,
        params,
        *,
        cache_key: tuple | None = None,
        checkpoints: Path | None = None,
        resume: Path | None = None,
    ):
        self.config, self.sim, self.model, self.dataset = config, sim, model, dataset
        self.checkpoints, self.resume = checkpoints, resume  # checkpoint folder to write, or to resume from
        # Checkpoint every so many updates, or (with a time-based evaluation) every so many evaluations.
        self.checkpoint_every = 0
        if config.checkpoint_every:
            mode, every = config.eval_schedule
            value = float(config.checkpoint_every.rstrip("s"))
            self.checkpoint_every = int(value) if mode == "updates" else max(1, round(value / every))
        self.per_update = sim.strategy.per_update
        self.counted = sim.strategy.per_update_varies  # --lr-scaling with the gradients actually averaged
        work = example_work(dataset.x_train) if config.data_partition == "by-work" else None
        self.batches = WorkerBatches(
            len(dataset.x_train), config.batch_size, config.total_workers, config.data_partition, config.seed, work=work
        )
        self.x = jax.device_put(dataset.x_train)
        self.y = jax.device_put(dataset.y_train)
        self.optimizer = make_optimizer(config, self.per_update, counted=self.counted)
        self.params, self.opt_state = params, self.optimizer.init(params)
        self.version = 0
        self.history = VersionRing(params) if sim.strategy.stale else None
        self._queued: list[tuple] = []  # deferred fused updates (their gradients)
        self._stale: list[tuple] = []  # deferred async updates: (index, version read, worker, batch, lr scale)
        self._losses: list = []  # device arrays of per-update training losses, in order
        self._samples: list[int] = []  # per applied update: examples whose gradients it averaged
        self._eval_mark = 0  # len(self._losses) at the last evaluation
        self.diverged: str | None = None  # why training stopped on a non-finite loss
        functions = compiled_steps(cache_key, model, self.optimizer, config.batch_size, self.counted)
        self._fused, self._scan, self._grad, self._apply_grads, evaluate, self._flush_chunk = functions
        self.evaluator = Evaluator(config, model, dataset, evaluate)
        if config.gradient_quality:
            n = min(config.reference_batch, len(dataset.x_train))
            self.reference = stream(config.seed, Stream.QUALITY).choice(len(dataset.x_train), n, replace=False)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        config, result = self.config, TrainingResult()
        mode, every = config.eval_schedule
        next_time = every
        quality: list[tuple[float, float]] = []
        reached = None  # (update, sim_time) of the first evaluation at the target
        consumed = 0
        applied = []  # the updates applied, in order (the engine's, read only)
        if self.resume is not None:
            saved, state = checkpoint.restore(self.resume, self.state(), result)
            self.restore(saved)
            consumed, next_time = state["consumed"], state["next_time"]
            quality = [tuple(q) for q in state["quality"]]
            self._samples = list(state["samples"])
            reached = tuple(state["reached"]) if state["reached"] else None
        else:
            self._record_eval(result, 0, 0.0)
        for update in self.sim.updates():
            if update.index <= consumed:
                applied.append(update)
                continue  # re-simulated up to the checkpoint: already applied there
            while mode == "seconds" and next_time < update.time:  # params in effect at next_time
                reached = reached or self._record_eval(result, self.version, next_time)
                next_time += every
                evals = len(result.metrics) - 1
                if self.checkpoints is not None and evals % self.checkpoint_every == 0:
                    self._checkpoint(result, consumed, next_time, quality, reached)
            if reached and config.stop_at_target:
                break
            quality.append(self._apply_update(update))
            applied.append(update)
            consumed += 1
            if mode == "updates" and update.index % every == 0:
                reached = reached or self._record_eval(result, update.index, update.time)
                if self.checkpoints is not None and update.index % self.checkpoint_every == 0:
                    self._checkpoint(result, consumed, next_time, quality, reached)
            if (reached and config.stop_at_target) or self.diverged:
                break
        self._flush()
        self._flush_stale()
        stopped_early = consumed < (config.steps if config.steps is not None else math.inf)
        self.sim.finish(consumed)
        last = applied[-1] if applied else None
        if last is not None and result.metrics[-1][0] != last.index:
            reached = reached or self._record_eval(result, last.index, last.time)
        losses = [float(v) for v in np.concatenate(jax.device_get(self._losses))] if self._losses else []
        for u, loss, (cos, err), samples in zip(applied, losses, quality, self._samples, strict=False):
            result.steps.append((u.index, u.time, samples, loss, cos, err))
        used = self._samples[: len(applied)]
        samples = float(np.mean(used)) if used else self.per_update * config.batch_size
        final = result.metrics[-1]
        result.params = jax.device_get(self.params)
        result.summary = {
            "model": config.model,
            "dataset": config.dataset,
            "batch_size": config.batch_size,
            "effective_batch_size": _number(samples),  # mean examples per update
            "gradients_per_update": _number(samples / config.batch_size),  # mean gradients averaged per update
            "optimizer": config.optimizer,
            "lr": config.lr,
            "param_count": self.model.param_count(self.params),
            "param_bytes": config.param_bytes,
            "device": describe_device(),
            "final_test_loss": final[3],
            "final_test_accuracy": final[4],
            "final_train_loss": final[2],
            "target_accuracy": config.target_accuracy,
            "target_loss": config.target_loss,
            "time_to_target": reached[1] if reached else None,
            "updates_to_target": reached[0] if reached else None,
            "stopped_at_target": bool(reached and stopped_early),
            "evaluations": len(result.metrics),
            "diverged": self.diverged,
        }
        if config.gradient_quality and quality:
            result.summary["mean_cosine"] = float(np.mean([c for c, _ in quality]))
            result.summary["mean_relative_error"] = float(np.mean([e for _, e in quality]))
        return result

    def _checkpoint(self, result, consumed: int, next_time: float, quality: list, reached) -> None:
        state = {"consumed": consumed, "next_time": next_time, "quality": quality, "reached": reached}
        state["samples"] = self._samples
        checkpoint.save(self.checkpoints, self.config, self.state(), result, state)

    def state(self) -> dict:
        """What a checkpoint keeps of the trainer: parameters, optimizer state, the ring of
        past versions, the losses so far (device arrays), how many of them the last evaluation
        covered, and the version in effect."""
        return {
            "params": self.params,
            "opt_state": self.opt_state,
            "ring": self.history,
            "losses": self._losses,
            "eval_mark": self._eval_mark,
            "version": self.version,
        }

    def restore(self, state: dict) -> None:
        """Take up ``state`` (as :meth:`state` gives it)."""
        self.params, self.opt_state, self.history = state["params"], state["opt_state"], state["ring"]
        self._losses, self._eval_mark, self.version = state["losses"], state["eval_mark"], state["version"]

    def _apply_update(self, update) -> tuple[float, float]:
        """Apply one update (perhaps deferred, see ``_flush``); returns (cosine, relative error)
        with ``--gradient-quality``, else NaNs. Its loss goes to ``self._losses``."""
        gradients = update.gradients
        read = update.index - 1
        fresh = all(g.version == read for g in gradients)
        if fresh and self.history is None and not self.config.gradient_quality:
            queued = self._queued
            if queued and (len(queued) == MAX_FUSED or len(queued[0]) != len(gradients)):
                self._flush()
            self._queued.append(gradients)  # indices built for the whole chunk at once (_flush)
            self._samples.append(len(gradients) * self.config.batch_size)
            self.version = update.index
            return math.nan, math.nan
        self._flush()
        if self.history is not None and len(gradients) == 1 and not self.config.gradient_quality:
            g = gradients[0]
            if len(self._stale) == MAX_FUSED:
                self._flush_stale()
            scale = 1.0 / g.staleness if self.config.staleness_lr and g.staleness else 1.0
            self._stale.append((update.index, g.version, g.worker, g.index, scale))
            self._samples.append(self.config.batch_size)
            self.version = update.index
            return math.nan, math.nan
        self._flush_stale()
        quality = (math.nan, math.nan)
        if all(g.version == self.version for g in gradients) and not self.config.gradient_quality:
            idx = self._indices(gradients)
            self.params, self.opt_state, loss = self._fused(self.params, self.opt_state, self.x, self.y, idx)
            used = len(idx)
        else:
            loss, grads, used = self._gradient(gradients)
            if self.config.gradient_quality:
                quality = self._quality(grads)
            self.params, self.opt_state = self._apply_grads(self.params, self.opt_state, grads, len(gradients))
        self._samples.append(used)
        self._losses.append(jnp.reshape(loss, (1,)))
        self.version = update.index
        if self.history is not None:
            self._prune()
            self.history.put(self.version, self.params)
        return quality

    def _flush_stale(self) -> None:
        """Apply the deferred single-gradient updates in one ``lax.scan`` over the version ring."""
        if not self._stale:
            return
        chunk, self._stale = self._stale, []
        size = 1 << (len(chunk) - 1).bit_length()  # pad to a power of two: a few compiled shapes
        padded = chunk + [chunk[-1][:4] + (0.0,)] * (size - len(chunk))  # scale 0: changes nothing
        index, version, worker, batch, scales = (np.asarray(column) for column in zip(*padded, strict=True))
        ring = self.history
        self._prune(also=int(version.min()))  # the chunk's reads are no longer "in flight"
        newest = chunk[-1][0]
        ring.reserve(newest)
        # NumPy arguments: the jitted call moves them to the device in one go.
        read = ring.slots(version, upto=newest).astype(np.int32)
        write = (index % ring.capacity).astype(np.int32)
        idxs = self.batches.many(worker, batch)
        ring.buffers, self.params, self.opt_state, losses = self._flush_chunk(
            ring.buffers, self.params, self.opt_state, self.x, self.y, read, idxs, scales.astype(np.float32), write
        )
        ring.wrote(newest)
        self._prune()  # the chunk's own reads are done with
        self._losses.append(losses if size == len(chunk) else losses[: len(chunk)])

    def _flush(self) -> None:
        """Apply the deferred fused updates: one ``lax.scan`` over their mini-batch indices."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        workers = [g.worker for gradients in queued for g in gradients]
        batches = [g.index for gradients in queued for g in gradients]
        idxs = self.batches.many(workers, batches).reshape(len(queued), -1)  # NumPy: one transfer in the call
        if len(queued) == 1:
            self.params, self.opt_state, loss = self._fused(self.params, self.opt_state, self.x, self.y, idxs[0])
            self._losses.append(jnp.reshape(loss, (1,)))
        else:
            self.params, self.opt_state, losses = self._scan(self.params, self.opt_state, self.x, self.y, idxs)
            self._losses.append(losses)

    def _indices(self, gradients) -> jnp.ndarray:
        return jnp.asarray(np.concatenate([self.batches.indices(g.worker, g.index) for g in gradients]))

    def _gradient(self, gradients):
        """Mean gradient and loss of ``gradients``, each at the version its worker read, and
        the number of examples they used.

        With ``staleness_lr`` a gradient of staleness τ > 0 is scaled by 1/τ (Zhang et al. 2016).
        """
        groups: dict[tuple[int, float], list] = {}
        for g in gradients:
            scale = 1.0 / g.staleness if self.config.staleness_lr and g.staleness else 1.0
            groups.setdefault((g.version, scale), []).append(g)
        total_loss, total_grads, used = 0.0, None, 0
        for (version, scale), group in groups.items():
            params = self.params if version == self.version else self._params_at(version)
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

    def _quality(self, grads) -> tuple[float, float]:
        """Cosine similarity and relative error of ``grads`` against the reference gradient
        at the current parameters."""
        _, reference = self._grad(self.params, self.x, self.y, jnp.asarray(self.reference))
        a, r = ravel_pytree(grads)[0], ravel_pytree(reference)[0]
        cos = jnp.dot(a, r) / (jnp.linalg.norm(a) * jnp.linalg.norm(r))
        err = jnp.linalg.norm(a - r) / jnp.linalg.norm(r)
        return float(cos), float(err)

    def _record_eval(self, result: TrainingResult, update: int, time: float):
        """Evaluate, append a metrics row, and return (update, time) if the target is reached."""
        self._flush()
        self._flush_stale()
        since = self._losses[self._eval_mark :]
        train_loss = float(jnp.mean(jnp.concatenate(since))) if since else None
        self._eval_mark = len(self._losses)
        reached, diverged = self.evaluator.record(result, self.params, update, time, train_loss)
        self.diverged = diverged or self.diverged
        return reached
