"""The SimPy event model: one process per worker and a parameter server (PS).

The engine decides timing only: when each computation starts and ends, which parameter
version it read, and each gradient's fate. Timing never depends on gradient values, so the
engine runs ahead of any trainer, which consumes :meth:`Simulation.updates` lazily.

A worker's cycle: pull parameters (transfer time) -> compute (one draw of its own stream)
-> push the gradient (transfer time) -> the PS decides its fate on arrival.

Each worker runs its strategy's loop as a SimPy process, except where the loop is a built-in
one and nothing can kill it (no failures, no replayed trace): a :class:`~.worker.LoopWorker`
then runs the same loop as event callbacks, the same events in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from heapq import heappop
from operator import attrgetter

import simpy
from simpy.core import EmptySchedule

from ..io.errors import TraceExhausted
from ..io.gcpause import gc_paused
from ..io.progress import NULL_PROGRESS
from ..io.records import (
    APPLIED,
    PENDING,
    UNFINISHED,
    CompactLog,
    EventLog,
    Gradient,
    Update,
)
from ..latency.durations import DurationStream
from ..strategies import FAILURE, Strategy, make_strategy
from .assemble import RunInputs, inputs_of
from .config import RunConfig
from .worker import DIRECT, STEADY, LoopWorker, PlainWorker, SharedLink, Worker, steady_work

_fate = attrgetter("fate")

CALLBACKS = True  # run the strategies' built-in worker loops as event callbacks (False: SimPy processes)


class ParameterServer:
    """Holds the parameter version, judges arriving gradients and applies updates.

    With a service time (``--ps-service``), the servers take ``service`` seconds to apply each update,
    one update after another: an update decided at time t is applied at max(t, free_at) + service,
    the time it carries, and ``free_at`` moves there. The decision (fates, staleness, the version) is
    taken at t; a worker's pull waits until ``free_at``, so it reads every update decided before it.
    """

    def __init__(self, env: simpy.Environment, strategy, steps: int, log: EventLog, service: float = 0.0):
        self.env, self.strategy, self.steps, self.log = env, strategy, steps, log
        self.service = service
        self.free_at = 0.0  # when the servers have applied every update decided so far
        self.version = 0
        self.pending: list[Gradient] = []
        self.updated = env.event()  # succeeds at the next update that someone waits for
        self.finished = False
        self.workers: list[Worker] = []
        self.admit = strategy.admit
        # The default barrier ("at least per_update are waiting") is tested inline in receive.
        self.ready = None if type(strategy).ready is Strategy.ready else strategy.ready

    def receive(self, g: Gradient) -> None:
        """A gradient arrives now: accept it, drop it, or complete an update with it."""
        if self.finished:
            return  # arrived after the last update: stays unfinished
        dropped = self.admit(g, self)
        if dropped is not None:
            g.fate, g.staleness = dropped, self.version - g.version
            return
        g.fate = PENDING
        pending = self.pending
        pending.append(g)
        ready = self.ready
        if len(pending) >= self.strategy.per_update if ready is None else ready(self):
            self.apply()

    def apply(self) -> None:
        """Apply the pending gradients as one update, now.

        Invariants checked on every update (cheap, always on): simulated time never goes
        backwards, and a gradient is applied at most once.
        """
        now = self.env.now
        if self.service:  # the servers apply it after the updates queued before it
            now = self.free_at = max(now, self.free_at) + self.service
        if self.log.updates and now < self.log.updates[-1].time:
            raise RuntimeError(f"invariant broken: update at t={now} before the previous one")
        pending, version = self.pending, self.version
        if not set(map(_fate, pending)) <= {PENDING}:
            g = next(g for g in pending if g.fate != PENDING)
            raise RuntimeError(f"invariant broken: gradient {g.id} applied with fate {g.fate}")
        for g in pending:
            g.fate, g.update, g.staleness = APPLIED, version + 1, version - g.version
        self.version = version + 1
        self.log.add_update(Update(self.version, now, tuple(pending)))
        self.pending = []
        self.strategy.on_update(self)
        if self.updated.callbacks:  # someone waits for this update: wake them
            done, self.updated = self.updated, self.env.event()
            done.succeed(self.version)
        if self.version >= self.steps:
            self.finished = True


class Budget:
    """What ends a budgeted run: a simulated time (no update after it is applied) and a count of
    applied gradients (the update that reaches it is the last)."""

    def __init__(self, until: float | None, gradients: int | None):
        self.until, self.gradients, self.applied = until, gradients, 0

    def spent_before(self, update) -> bool:
        return self.until is not None and update.time > self.until

    def spent_after(self, update) -> bool:
        self.applied += len(update.gradients)
        return self.gradients is not None and self.applied >= self.gradients


class Simulation:
    """A timing simulation of one run.

    Args:
        run: the run's :class:`RunInputs` (see :func:`~stragglersim.core.assemble.assemble`); a bare
            :class:`RunConfig` is assembled here, for timing only.
        progress: an object with ``update(n)`` called as updates happen (no-op by default).
    """

    def __init__(self, run: RunInputs | RunConfig, *, progress=NULL_PROGRESS):
        inputs = inputs_of(run)
        self.inputs = inputs
        self.config = config = inputs.config
        self.progress = progress
        self.env = simpy.Environment()
        self.strategy = make_strategy(config)
        self.cluster = cluster = inputs.cluster
        self.log = CompactLog() if config.timing_only and config.log_gradients == "none" else EventLog()
        steps = config.steps if config.steps is not None else math.inf
        self.ps = ParameterServer(self.env, self.strategy, steps, self.log, cluster.service_time)
        self.budget = Budget(config.until, config.budget_gradients) if config.budgeted else None
        faults = inputs.faults
        link = SharedLink(self.env, cluster.link_time) if cluster.link_time > 0 else DIRECT
        work = inputs.work or steady_work
        loop = self.strategy.callback_loop() if CALLBACKS else None
        for w in range(self.strategy.n_workers):
            slow = faults.fail_slow.timeline(config.seed, w) if faults.fail_slow is not None else STEADY
            durations, spans = cluster.durations(w), faults.spans(config.seed, w)
            wk = Worker.make(
                w,
                self.env,
                self.ps,
                durations,
                cluster.pull_time,
                cluster.push_time,
                work=work,
                slow=slow,
                link=link,
            )
            if loop is not None and spans is None and type(wk) is PlainWorker and type(durations) is DurationStream:
                wk = LoopWorker(w, self.env, self.ps, durations, cluster.pull_time, cluster.push_time, **loop)
                wk.start()
                self.ps.workers.append(wk)
                continue
            body = self.strategy.worker(wk)
            if spans is not None:
                body = self._mortal(wk, body)
                self.env.process(self._failures(wk, spans))
            wk.process = self.env.process(body)
            self.ps.workers.append(wk)
        self.strategy.start(self.ps)

    def _mortal(self, wk: Worker, body):
        """The worker's strategy loop, restarted from scratch after each failure."""
        while True:
            try:
                yield from body
            except simpy.Interrupt as interrupt:
                if interrupt.cause is not FAILURE:
                    raise
            yield wk.revival
            wk.alive = True
            body = self.strategy.worker(wk)

    def _failures(self, wk: Worker, spans):
        for down, up in spans:
            yield self.env.timeout(down - self.env.now)
            if self.ps.finished:
                return
            wk.fail()
            if math.isinf(up):
                return
            yield self.env.timeout(up - self.env.now)
            wk.revival.succeed()

    def _stall_message(self, seen: int) -> str:
        dead = sum(not wk.alive for wk in self.ps.workers)
        why = f"; {dead} of {len(self.ps.workers)} workers are down and will not restart" if dead else ""
        return f"no event left at t={self.env.now:g} s after {seen} updates{why}: the run cannot progress"

    def updates(self) -> Iterator[Update]:
        """Advance the simulation lazily, yielding each update as it is applied.

        The run ends after ``config.steps`` updates, or earlier when a replayed trace is used
        up (``log.exhausted`` is then True) or nothing can happen any more, as when too many
        workers have failed for good (``log.stalled`` then says why).
        """
        updates = self.log.updates
        seen = 0
        while seen < self.ps.steps:
            try:
                self._step_until(seen)
            except EmptySchedule:
                self.log.stalled = self._stall_message(seen)
                self.ps.finished = True
                self._settle()
                return
            except TraceExhausted:
                self.log.exhausted = True
                self.ps.finished = True
                self._settle()
                return
            new = updates[seen:]
            seen = len(updates)
            self.progress.update(len(new))
            if self.budget is None:
                yield from new
                continue
            for u in new:
                if self.budget.spent_before(u):
                    self._end_at_budget(u.index - 1, "until")
                    return
                yield u
                if self.budget.spent_after(u):
                    self._end_at_budget(u.index, "gradients")
                    return

    def _end_at_budget(self, applied: int, which: str) -> None:
        """The budget ``which`` (``until``, ``gradients``) ended the run after ``applied`` updates."""
        self.log.budget_spent = which
        self.ps.finished = True
        self.finish(applied)

    def _step_until(self, seen: int) -> None:
        """Process events until the log holds more than ``seen`` updates.

        ``Environment.step`` inline (SimPy 4): pop the next event, run its callbacks, crash
        on a failed event nobody handled; one call per update instead of one per event.
        """
        env, updates = self.env, self.log.updates
        queue = env._queue
        while len(updates) == seen:
            try:
                env._now, _, _, event = heappop(queue)
            except IndexError:
                raise EmptySchedule from None
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc

    def oldest_live_version(self, consumed: int | None = None) -> int:
        """No gradient still in flight or waiting at the PS read a version older than this;
        with ``consumed`` (updates the consumer has applied so far), nor a gradient of an
        update produced but not yet consumed."""
        oldest = self.ps.version
        for g in self.ps.pending:
            oldest = min(oldest, g.version)
        for wk in self.ps.workers:
            g = wk.current
            if g is not None and g.fate in (UNFINISHED, PENDING):
                oldest = min(oldest, g.version)
        if consumed is not None:
            for u in self.log.updates[consumed:]:
                oldest = min(oldest, min(g.version for g in u.gradients))
        return oldest

    def finish(self, consumed: int) -> None:
        """The consumer stopped after ``consumed`` updates (early, at a target or on divergence,
        or at the end): the updates after them were never applied, so they are forgotten and
        their gradients, like those still waiting at the PS, become unfinished."""
        for u in self.log.updates[consumed:]:
            for g in u.gradients:
                g.fate, g.update, g.staleness = UNFINISHED, None, None
        del self.log.updates[consumed:]
        self._settle()

    def _settle(self) -> None:
        """At the end of a run, gradients still waiting at the PS were never applied."""
        for g in self.ps.pending:
            g.fate = UNFINISHED
        self.ps.pending = []

    def run(self) -> EventLog:
        """Run to the last update and return the full event log.

        The cyclic garbage collector is paused meanwhile: the records form no cycles, and
        with a million of them alive its repeated full scans would double the cost of a run.
        """
        with gc_paused():
            for _ in self.updates():
                pass
        # Invariant (always on): every computation ends with exactly one final fate.
        if PENDING in map(_fate, self.log.gradients):
            raise RuntimeError("invariant broken: a gradient accepted by the PS was never applied")
        return self.log


def simulate(run: RunInputs | RunConfig, **kwargs) -> EventLog:
    """Run ``run`` to completion (timing only) and return its event log."""
    return Simulation(run, **kwargs).run()
