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

import itertools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

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
from . import checkpoint, endpoints, quality
from .evaluation import Evaluator, TrainingResult
from .optim import lr_in_state, make_optimizer
from .steps import compiled_steps
from .updates import UpdateApplier
from .versions import VersionRing


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
        None if lr_in_state(config, sim.strategy.per_update_varies) else config.lr,  # state, not code
        config.momentum,
        config.lr_schedule,
        config.lr_decay_rate,
        config.lr_decay_steps,
        config.lr_scaling,
        config.reference_batch if config.measures_quality else None,
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


class Trainer(UpdateApplier):
    """Applies the engine's updates to real parameters with real gradients (how: :class:`UpdateApplier`)."""

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
        self._watched, self._watched_chunks = 0, 0  # losses (and arrays of them) checked for divergence
        self.diverged_at: int | None = None  # the first update whose loss diverged
        self._samples: list[int] = []  # per applied update: examples whose gradients it averaged
        self._eval_mark = 0  # len(self._losses) at the last evaluation
        self.diverged: str | None = None  # why training stopped on a non-finite loss
        functions = compiled_steps(cache_key, model, self.optimizer, config.batch_size, self.counted)
        self._fused, self._scan, self._grad, self._apply_grads, evaluate, self._flush_chunk = functions
        self.evaluator = Evaluator(config, model, dataset, evaluate)
        self.quality_every = (config.quality_every or 1) if config.measures_quality else 0
        self._quality: list = []  # with quality measured: device arrays of rows of quality.FIELDS, in order
        self._measured: list[bool] = []  # per deferred fused update: whether it is measured
        if self.quality_every:
            n = min(config.reference_batch, len(dataset.x_train))
            self.reference = stream(config.seed, Stream.QUALITY).choice(len(dataset.x_train), n, replace=False)
            self._reference = jnp.asarray(self.reference) if n else None  # 0: no batch measures
            steps = quality.compiled_quality_steps(cache_key, model, self.optimizer, config.batch_size, self.counted)
            self._scan_quality, self._stale_quality, self._measure = steps

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        config, result = self.config, TrainingResult()
        mode, every = config.eval_schedule
        next_time = every
        reached = None  # (update, sim_time) of the first evaluation at the target
        consumed = 0
        applied = []  # the updates applied, in order (the engine's, read only)
        if self.resume is not None:
            saved, state = checkpoint.restore(self.resume, self.state(), result)
            self.restore(saved)
            consumed, next_time = state["consumed"], state["next_time"]
            rows = state["quality"]
            self._quality = [jnp.asarray(rows, jnp.float32).reshape(-1, len(quality.FIELDS))] if rows else []
            self._samples = list(state["samples"])
            self._watched, self._watched_chunks = len(self._samples), len(self._losses)
            reached = tuple(state["reached"]) if state["reached"] else None
        else:
            reached = self._record_eval(result, 0, 0.0)  # the initial parameters may meet the target
        for update in self.sim.updates():
            if update.index <= consumed:
                applied.append(update)
                continue  # re-simulated up to the checkpoint: already applied there
            while mode == "seconds" and next_time < update.time:  # params in effect at next_time
                hit = self._record_eval(result, self.version, next_time)  # always evaluated, reached or not
                reached = reached or hit
                next_time += every
                evals = len(result.metrics) - 1
                if self.checkpoints is not None and evals % self.checkpoint_every == 0:
                    self._checkpoint(result, consumed, next_time, reached)
            if (reached and config.stop_at_target) or self.diverged:
                break
            self._apply_update(update)
            applied.append(update)
            consumed += 1
            if mode == "updates" and update.index % every == 0:
                hit = self._record_eval(result, update.index, update.time)  # always evaluated, reached or not
                reached = reached or hit
                if self.checkpoints is not None and update.index % self.checkpoint_every == 0:
                    self._checkpoint(result, consumed, next_time, reached)
            if (reached and config.stop_at_target) or self.diverged:
                break
        self._flush()
        self._flush_stale()
        self._watch(wait=True)
        stopped_early = consumed < (config.steps if config.steps is not None else math.inf)
        self.sim.finish(consumed)
        end = self._evaluate_end(result, applied, mode, every, next_time)
        reached = reached or end
        losses = [float(v) for v in np.concatenate(jax.device_get(self._losses))] if self._losses else []
        rows = np.concatenate(jax.device_get(self._quality)) if self._quality else np.zeros((0, 4))
        qualities = [tuple(map(float, row)) for row in rows] if len(rows) else itertools.repeat(quality.NOT_MEASURED)
        for u, loss, q, samples in zip(applied, losses, qualities, self._samples, strict=False):
            result.steps.append((u.index, u.time, samples, loss, *q))
        result.params = jax.device_get(self.params)
        result.summary = endpoints.summary(self, result, reached, stopped_early, len(applied))
        if self.quality_every:
            result.summary |= {"quality_every": self.quality_every, **quality.summarize(rows[: len(applied)])}
        return result

    def _evaluate_end(self, result: TrainingResult, applied: list, mode: str, every: float, next_time: float):
        """The evaluations at the run's end: with ``--until``, those due up to that time and one at
        it (the parameters in effect then); else one after the last update applied. Returns the
        (update, time) of the target if one of them reaches it."""
        until, reached = self.config.until, None
        if until is not None and self.sim.log.budget_spent == "until" and not self.diverged:
            while mode == "seconds" and next_time <= until * (1 + 1e-12):
                hit = self._record_eval(result, self.version, next_time)
                reached, next_time = reached or hit, next_time + every
            if result.metrics[-1][1] < until * (1 - 1e-12):
                hit = self._record_eval(result, self.version, until)
                reached = reached or hit
            return reached
        last = applied[-1] if applied else None
        if last is not None and result.metrics[-1][0] != last.index:
            reached = self._record_eval(result, last.index, last.time)
        return reached

    def _checkpoint(self, result, consumed: int, next_time: float, reached) -> None:
        rows = np.concatenate(jax.device_get(self._quality)).tolist() if self._quality else []
        state = {"consumed": consumed, "next_time": next_time, "quality": rows, "reached": reached}
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

    def _record_eval(self, result: TrainingResult, update: int, time: float):
        """Evaluate, append a metrics row, and return (update, time) if the target is reached."""
        self._flush()
        self._flush_stale()
        self._watch(wait=True)
        since = self._losses[self._eval_mark :]
        train_loss = float(jnp.mean(jnp.concatenate(since))) if since else None
        self._eval_mark = len(self._losses)
        reached, diverged = self.evaluator.record(result, self.params, update, time, train_loss)
        if diverged and not self.diverged:
            self.diverged, self.diverged_at = diverged, update
        return reached
