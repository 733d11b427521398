"""Replaying a hybrid-parallel step: a longest-path sweep over the dependency model.

Every step is replayed on its own from time 0, all DP ranks and steps at once: the arrays are
``[slot, step, dp_rank]`` and the sweep visits the model's groups in topological order, so a what-if
replay of the 117k-op AR trace is a few hundred vectorised NumPy operations.

An op starts at the latest end of what it waits for plus its launch delay. A compute op ends after
its duration; the members of a communication group end at the group's latest start (over the DP
ranks too for data-parallel collectives) plus their own transfer time. With ``backups = B`` each
data-parallel gradient collective starts when the first ``dp_size - B`` replicas are ready; the late
replicas' gradients are dropped and they abandon the step: they take the collective's result when it
ends, as the others do, so they start the next step on the new parameters (K-sync's cancel rule).
Where a stage has several gradient collectives (DDP's buckets), the first decides: the replicas it
drops skip their share of every later bucket, which waits for the kept replicas only, and what waits
for the buckets (DDP's end of backward) goes on for them when the buckets end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .model import Model
from .trace import COMMUNICATION, OpTrace

TOLERANCE = 0.01  # seconds: a negative launch delay or transfer time beyond this is clock skew, set to 0


@dataclass(frozen=True)
class Durations:
    """What a replay is given, each ``[slot, step, dp_rank]`` in seconds."""

    duration: np.ndarray  # compute ops
    transfer: np.ndarray  # communication ops: end minus the group's latest start
    launch: np.ndarray  # start minus the latest end of the op's dependencies

    def restored(self, other: Durations, mask: np.ndarray) -> Durations:
        """These durations with ``other``'s where ``mask`` (broadcast to [slot, step, dp]) holds."""
        return replace(
            self,
            duration=np.where(mask, other.duration, self.duration),
            transfer=np.where(mask, other.transfer, self.transfer),
        )


@dataclass(frozen=True)
class Replay:
    start: np.ndarray  # [slot, step, dp] seconds from the step's start
    end: np.ndarray
    update: np.ndarray  # [step] the last optimizer op's end: when the new parameters exist
    dropped: float  # fraction of the replicas' gradients dropped, over stages and steps

    @property
    def step_times(self) -> np.ndarray:
        """[step] the last op's end."""
        return self.end.max(axis=(0, 2))


def measured(trace: OpTrace, model: Model) -> tuple[Durations, dict]:
    """Launch delays and transfer times of the recorded ops, and how many were clock skew."""
    start, end = trace.start, trace.end
    launch = np.empty_like(start)
    for slot, deps in enumerate(model.deps):
        ready = end[deps].max(axis=0) if len(deps) else 0.0
        launch[slot] = start[slot] - ready
    transfer = trace.duration.copy()
    for group in model.groups:
        if group.comm:
            members = list(group.members)
            latest = start[members].max(axis=0)
            if group.dp_sync:
                latest = latest.max(axis=1, keepdims=True)
            transfer[members] = end[members] - latest
    if trace.meta.schedule == "observed":  # each rank's step starts at 0: the lag behind other ranks is not its own
        launch[[slot for slot, deps in enumerate(model.deps) if not len(deps)]] = 0.0
    skew = {"launch_delays_set_to_0": int((launch < -TOLERANCE).sum())}
    skew["transfer_times_set_to_0"] = int((transfer < -TOLERANCE).sum())
    launch[launch < -TOLERANCE] = 0.0
    transfer[transfer < -TOLERANCE] = 0.0
    return Durations(trace.duration.copy(), transfer, launch), skew


def no_delay(durations: Durations) -> Durations:
    return replace(durations, launch=np.zeros_like(durations.launch))


def ideal(trace: OpTrace, durations: Durations) -> Durations:
    """Each compute op takes its type's mean duration over all DP ranks, stages and steps; each
    communication op its type's median duration and transfer time; no launch delay."""
    duration, transfer = durations.duration.copy(), durations.transfer.copy()
    if trace.meta.schedule == "observed":  # each op its own mean (median) over the steps and DP ranks
        comm = trace.slots["optype"].isin(COMMUNICATION).to_numpy()[:, None, None]
        mean = lambda a: np.broadcast_to(a.mean(axis=(1, 2), keepdims=True), a.shape)  # noqa: E731
        median = lambda a: np.broadcast_to(np.median(a, axis=(1, 2), keepdims=True), a.shape)  # noqa: E731
        duration = np.where(comm, median(duration), mean(duration))
        transfer = np.where(comm, median(transfer), duration)
        return Durations(duration, transfer, np.zeros_like(durations.launch))
    for optype, slots in trace.slots.groupby("optype", sort=False).groups.items():
        slots = slots.to_numpy()
        if optype in COMMUNICATION:
            duration[slots] = np.median(duration[slots])
            transfer[slots] = np.median(transfer[slots])
        else:
            duration[slots] = duration[slots].mean()
            transfer[slots] = duration[slots]
    return Durations(duration, transfer, np.zeros_like(durations.launch))


def replay(trace: OpTrace, model: Model, durations: Durations, *, backups: int = 0) -> Replay:
    """Replay every step of ``trace`` with ``durations``; ``backups`` replicas may be dropped from
    each data-parallel gradient collective."""
    n_slots, n_steps, dp = durations.duration.shape
    if not 0 <= backups < dp:
        raise ValueError(f"backups {backups} must be in 0..{dp - 1}")
    start = np.zeros((n_slots, n_steps, dp))
    end = np.zeros((n_slots, n_steps, dp))
    late = np.zeros((trace.meta.pp_size, n_steps, dp), bool)
    stage_of = trace.slots["stage"].to_numpy()
    kept: dict[int, np.ndarray] = {}  # stage -> [step, dp] the replicas its first gradient collective took
    launch, duration, transfer = durations.launch, durations.duration, durations.transfer
    for group in model.groups:
        for m in group.members:
            deps = model.deps[m]
            if len(deps) == 1:
                start[m] = end[deps[0]] + launch[m]
            elif len(deps):
                start[m] = end[deps].max(axis=0) + launch[m]
            else:
                start[m] = launch[m]
            if backups and m in model.resume:  # a dropped replica abandons its step: on at the collectives' end
                resumed = end[model.resume[m]].max(axis=0) + launch[m]
                start[m] = np.where(late[stage_of[m]], resumed, start[m])
        if not group.comm:
            m = group.members[0]
            end[m] = start[m] + duration[m]
            continue
        members = list(group.members)
        latest = start[members[0]] if len(members) == 1 else start[members].max(axis=0)
        if group.dp_sync:
            stage = stage_of[members[0]]
            if backups and group.gradient and stage in kept:  # a later bucket: the same replicas, no others
                latest = np.where(kept[stage], latest, -np.inf).max(axis=1, keepdims=True)
            elif backups and group.gradient:
                cutoff = np.partition(latest, dp - 1 - backups, axis=1)[:, dp - 1 - backups, None]
                kept[stage] = latest <= cutoff
                late[stage] |= latest > cutoff
                latest = cutoff
            else:
                latest = latest.max(axis=1, keepdims=True)
        end[members] = latest + transfer[members]
    optimizer = trace.slots.index[trace.slots.optype == "optimizer"].to_numpy()
    update = end[optimizer].max(axis=(0, 2)) if len(optimizer) else end.max(axis=(0, 2))
    return Replay(start, end, update, float(late.mean()))
