"""A vectorised fast path for the strategies whose timing has a closed recursion (timing only).

When nothing couples the workers (no failures, fail-slow episodes, shared PS link or
data-dependent cost) and latencies are i.i.d. draws of one model, each worker's computation
times are its own stream, and update times follow from them by a recursion over updates:

- **barrier** (``sync``; ``backup`` with ``cancel``, or with ``drop`` and B = 0; ``k-sync``):
  every update restarts all P workers, so update k takes pull + X_{N:P}(k) + push, where
  X_{N:P}(k) is the N-th smallest of the workers' k-th draws: a row-wise order statistic.
- **drop** (``backup --semantics drop``), **batch** (``k-batch-sync``) and **async** (``async``
  without a staleness cutoff): per-worker recursions over when each worker next begins
  (:mod:`queue_recursions`; without per-gradient records only).

With the engine's per-worker streams (common random numbers) the fast path gives the engine's
update times, fates and staleness on the same draws, with NumPy instead of SimPy events.

Not served, because their timing has no closed recursion over the workers' draws: ``backup``
with ``tf`` semantics (the token queue: which step a worker computes for depends on the order
of earlier pushes, and a fast worker may contribute twice), ``async`` with a staleness cutoff and
``ssp`` (a gradient's fate depends on the versions in flight), ``softsync``, ``k-async``,
``k-batch-async``, ``deadline`` and ``adaptive-backup`` (their barriers or decisions depend on the
event history); and any run with faults, a shared PS link, a PS service time, ``--data-cost`` or a per-worker trace.
"""

from __future__ import annotations

from ..io.records import EventLog
from ..latency import LatencyModel
from .assemble import RunInputs, inputs_of
from .barrier_recursion import barrier, continuous
from .config import RunConfig
from .engine import Simulation
from .queue_recursions import QUEUES
from .recursions import Tie, recursion


def applies(run: RunInputs | RunConfig) -> bool:
    """Whether ``run`` can take the fast path (and gives the same result there)."""
    config = run.config if isinstance(run, RunInputs) else run
    kind = recursion(config)
    quiet = not (config.fail_slow or config.fail_at or config.failures or config.data_cost != "none")
    if not (config.timing_only and kind and quiet and config.steps is not None):
        return False
    if kind != "barrier" and config.log_gradients == "all":
        return False  # per-gradient records: the barrier's only
    cluster = inputs_of(run).cluster
    if cluster.link_time > 0 or cluster.service_time > 0:
        return False
    # i.i.d. draws of one model: not a per-worker trace, which overrides stream_for
    if type(cluster.model).stream_for is not LatencyModel.stream_for:
        return False
    return kind == "barrier" or continuous(cluster.model)


def fast_simulate(run: RunInputs | RunConfig, *, records: bool = True) -> EventLog:
    """The update times (and, with ``records``, the event log) of a run :func:`applies` accepts."""
    inputs = inputs_of(run)
    kind = recursion(inputs.config)
    try:
        return barrier(inputs, records) if kind == "barrier" else QUEUES[kind](inputs)
    except Tie:
        return Simulation(inputs).run()
