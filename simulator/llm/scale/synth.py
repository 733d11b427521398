"""Drawing a synthetic job from a fitted model: its op durations at any DP size, on a layout.

A draw first takes the share of slow workers from its Jeffreys posterior (the fit's uncertainty goes
into the spread over draws), then for every worker (DP rank, stage) whether it is slow (and then the
factor vector of one observed slow worker) or healthy (a normal factor per op type), and for every
op type on every stage the step effects, the episodes (a two-state chain over the steps per worker)
and the noise, as ``fit`` describes. Launch delays are 0: the replays are what-if's no-delay ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ...io.errors import InputError
from .. import model as llm_model
from ..replay import Durations
from ..trace import COMMUNICATION, P2P, OpTrace
from . import schedule
from .fit import JobModel


@dataclass(frozen=True)
class Layout:
    """The slots of a synthetic job's step (the same for every size) and its dependency model."""

    slots: pd.DataFrame
    source: np.ndarray  # [slot] the fitted trace's slot each is drawn like
    model: llm_model.Model
    pp: int
    microbatches: int


@dataclass(frozen=True)
class Synthetic:
    """One synthetic job: a trace-shaped frame for the replay, its durations, and its workers' factors."""

    trace: OpTrace
    durations: Durations
    factor: np.ndarray  # [slot, dp] the persistent log-factor drawn for each op's worker (0: not modelled)
    healthy: np.ndarray  # [slot, dp] the log-factor a healthy replacement worker would have
    cost: np.ndarray  # [dp, stage] seconds per step a worker's persistent factor costs it (mean over steps)

    def replaced(self, workers: list[tuple[int, int]]) -> Durations:
        """The durations with ``workers`` ((DP rank, stage) pairs) replaced by healthy ones."""
        stage = self.trace.slots["stage"].to_numpy()
        ratio = np.ones_like(self.factor)
        for d, s in workers:
            on = stage == s
            ratio[on, d] = np.exp(self.healthy[on, d] - self.factor[on, d])
        duration = self.durations.duration * ratio[:, None, :]
        comm = self.trace.slots["optype"].isin(COMMUNICATION).to_numpy()
        transfer = np.where(comm[:, None, None], self.durations.transfer, duration)
        return replace(self.durations, duration=duration, transfer=transfer)


def layout(job: JobModel, pp: int | None, microbatches: int | None) -> Layout:
    """The trace's own layout, or a Megatron pipeline of ``pp`` stages and ``microbatches``."""
    trace = job.trace
    own_m = schedule.microbatches_of(trace.slots)
    pp, microbatches = pp or trace.meta.pp_size, microbatches or own_m
    if (pp, microbatches) == (trace.meta.pp_size, own_m):
        return Layout(trace.slots, np.arange(len(trace.slots)), llm_model.build(trace), pp, microbatches)
    if trace.meta.schedule != "megatron":
        raise InputError(
            f"{trace.path}: a trace read by observation keeps its own pipeline (--pp {trace.meta.pp_size}, "
            f"--microbatches {own_m}); only its DP size can change"
        )
    slots, source = schedule.megatron(trace.slots, trace.meta.pp_size, pp, microbatches, trace.path)
    frame = _frame(trace, slots, replace(trace.meta, pp_size=pp), 1, 1)
    return Layout(slots, source, llm_model.build(frame), pp, microbatches)


def draw(
    job: JobModel, lay: Layout, dp: int, steps: int, rng: np.random.Generator, *, share: float | None = None
) -> Synthetic:
    """A synthetic job of ``dp`` DP ranks on ``lay``, ``steps`` steps, from ``rng``; ``share``: the share of
    slow workers (default: drawn from its posterior)."""
    slots, source = lay.slots, lay.source
    n_slots = len(slots)
    meta = replace(job.trace.meta, dp_size=dp, pp_size=lay.pp)
    src_steps = rng.integers(0, job.own.shape[1], steps)
    src_ranks = rng.integers(0, job.own.shape[2], (dp, lay.pp))
    stage = slots["stage"].to_numpy()
    own = job.own[source[:, None, None], src_steps[None, :, None], src_ranks[:, stage].T[:, None, :]]
    duration = np.array(own, dtype=np.float64)
    factor, healthy = np.zeros((n_slots, dp)), np.zeros((n_slots, dp))
    if share is None:
        share = rng.beta(len(job.slow) + 0.5, job.workers - len(job.slow) + 0.5) if job.slow else 0.0
    is_slow = rng.random((dp, lay.pp)) < share
    which = rng.integers(0, max(len(job.slow), 1), (dp, lay.pp))
    fitted = job.trace.slots
    key_of = list(zip(fitted["optype"].to_numpy()[source], fitted["stage"].to_numpy()[source], strict=True))
    normal = {o: rng.normal(0.0, sd, (dp, lay.pp)) for o, sd in sorted(job.sigma_worker.items())}
    for s in range(lay.pp):
        for key in sorted({key_of[i] for i in np.flatnonzero(stage == s)}):
            kmodel = job.keys.get((str(key[0]), int(key[1])))
            if kmodel is None:
                continue
            mine = np.flatnonzero((stage == s) & np.array([k == key for k in key_of]))
            position = {int(slot): i for i, slot in enumerate(kmodel.slots)}
            mine = np.array([m for m in mine if int(source[m]) in position])
            if len(mine) == 0:
                continue
            base = kmodel.base[[position[int(source[m])] for m in mine]]
            well = normal[kmodel.optype][:, s]
            slow = [job.slow[w].get(kmodel.optype, 0.0) for w in which[:, s]] if job.slow else 0.0
            a = np.where(is_slow[:, s], slow, well)
            factor[mine], healthy[mine] = a, well
            log = a[None, None, :] + _steps(kmodel, steps, dp, rng)[None]
            duration[mine] = base[:, None, None] * np.exp(log) * _noise(kmodel, (len(mine), steps, dp), rng)
    # A deeper pipeline splits the same model: each stage's compute and gradients are trace PP / PP of a
    # traced stage's (activations, and so the pipeline transfers, keep their size).
    share = np.where(slots["optype"].isin(P2P).to_numpy(), 1.0, job.trace.meta.pp_size / lay.pp)[:, None, None]
    duration, own = duration * share, own * share
    comm = slots["optype"].isin(COMMUNICATION).to_numpy()
    transfer = np.where(comm[:, None, None], own, duration)
    lost = duration.mean(axis=1) * (1 - np.exp(-factor))  # [slot, dp]
    cost = np.stack([lost[stage == s].sum(axis=0) for s in range(lay.pp)], axis=1)
    frame = _frame(job.trace, slots, meta, steps, dp)
    return Synthetic(frame, Durations(duration, transfer, np.zeros_like(duration)), factor, healthy, cost)


def _steps(k, steps: int, dp: int, rng: np.random.Generator) -> np.ndarray:
    """[step, dp] log-factors: the common step effect, the worker's own, and episodes."""
    effect = rng.normal(0.0, k.sigma_step, (steps, 1)) + rng.normal(0.0, k.sigma_step_worker, (steps, dp))
    if not k.episodes:
        return effect
    start, stop = min(k.episode_start, 1.0), 1.0 / max(k.episode_length, 1.0)
    on, size = np.zeros(dp, bool), np.zeros(dp)
    for t in range(steps):
        began = ~on & (rng.random(dp) < start)
        on = np.where(on, rng.random(dp) >= stop, began)
        size = np.where(began, k.magnitudes[rng.integers(0, len(k.magnitudes), dp)], size)  # one size an episode
        effect[t] += np.where(on, size, 0.0)
    return effect


def _noise(k, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    n = int(np.prod(shape))
    if k.noise is not None:
        values = k.noise.model().sample(rng, n)
    else:
        values = k.noise_ratios[rng.integers(0, len(k.noise_ratios), n)]
    return values.reshape(shape)


def _frame(trace: OpTrace, slots: pd.DataFrame, meta, steps: int, dp: int) -> OpTrace:
    """A trace-shaped frame for the replay and the dependency model (they read slots and sizes)."""
    zeros = np.broadcast_to(0.0, (len(slots), steps, dp))
    ranks = np.arange(dp * meta.pp_size).reshape(meta.pp_size, dp).T
    return OpTrace(meta, trace.path, np.arange(steps), ranks, slots, zeros, zeros)
