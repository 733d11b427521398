"""The SimPy event model: one process per worker and a parameter server (PS).

The engine decides timing only: when each computation starts and ends, which parameter
version it read, and each gradient's fate. Timing never depends on gradient values, so the
engine runs ahead of any trainer, which consumes :meth:`Simulation.updates` lazily.

A worker's cycle: pull parameters (transfer time) -> compute (one draw of its own stream)
-> push the gradient (transfer time) -> the PS decides its fate on arrival.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from operator import attrgetter

import simpy
from simpy.core import EmptySchedule

from .assemble import RunInputs, inputs_of
from .config import RunConfig
from .errors import TraceExhausted
from .gcpause import gc_paused
from .latency import DurationStream
from .progress import NULL_PROGRESS
from .records import (
    APPLIED,
    CANCELLED,
    FAILED,
    PENDING,
    UNFINISHED,
    CompactLog,
    EventLog,
    Gradient,
    Update,
)
from .strategies import CANCEL, FAILURE, make_strategy


def steady_work(worker: int, index: int) -> float:
    """The work model without data-dependent cost: every mini-batch costs its drawn time."""
    return 1.0


class Steady:
    """The fail-slow timeline of a worker that is never slow."""

    __slots__ = ()

    def stretch(self, start: float, duration: float) -> float:
        return duration


class DirectPush:
    """No shared PS link: a gradient arrives one push time after its computation ends."""

    __slots__ = ()

    def arrival(self, wk: Worker, g: Gradient, compute: float):
        return wk.env.timeout(compute + wk.push, g)


class SharedLink:
    """The PS's incoming link, shared by concurrent pushes: FIFO, ``time`` seconds each."""

    def __init__(self, env: simpy.Environment, time: float):
        self.resource, self.time = simpy.Resource(env, capacity=1), time

    def arrival(self, wk: Worker, g: Gradient, compute: float):
        wk.sub = wk.env.process(self._through(wk, g, compute))
        return wk.sub

    def _through(self, wk: Worker, g: Gradient, compute: float):
        """Compute, then queue for the link, hold it for the transfer, then the fixed part of
        the push."""
        env = wk.env
        try:
            yield env.timeout(compute)
            with self.resource.request() as request:
                yield request
                yield env.timeout(self.time)
            if wk.push:
                yield env.timeout(wk.push)
        except simpy.Interrupt:
            return None
        return g


STEADY, DIRECT = Steady(), DirectPush()
_fate = attrgetter("fate")


class Worker:
    """One worker: its computation-time stream, transfer times and current computation.

    Optional parts default to no-op objects: ``work`` (per-batch factors on the computation
    time), ``slow`` (fail-slow episodes) and ``link`` (the PS's shared incoming link). A run
    without any of them uses :class:`PlainWorker`, whose cycle is a single timeout.
    """

    __slots__ = (
        "index",
        "env",
        "ps",
        "draw",
        "drawn",
        "pull",
        "push",
        "busy",
        "current",
        "process",
        "slow",
        "work",
        "link",
        "record",
        "sub",
        "alive",
        "revival",
    )

    def __init__(
        self,
        index: int,
        env: simpy.Environment,
        ps: ParameterServer,
        durations: DurationStream,
        pull: float,
        push: float,
        *,
        work=steady_work,
        slow=STEADY,
        link=DIRECT,
    ):
        self.index, self.env, self.ps = index, env, ps
        self.draw, self.drawn = durations.next, 0  # the next computation time; computations drawn
        self.pull, self.push = pull, push  # seconds
        self.work, self.slow, self.link = work, slow, link
        self.record = ps.log.new_gradient  # (worker, index, version, step, start, end) -> Gradient
        self.busy = False  # inside a cycle: pulling, computing or pushing
        self.current: Gradient | None = None
        self.process: simpy.Process | None = None
        self.sub: simpy.Process | None = None  # the cycle's process through a shared link
        self.alive, self.revival = True, None

    @staticmethod
    def make(index, env, ps, durations, pull, push, *, work=steady_work, slow=STEADY, link=DIRECT) -> Worker:
        """A :class:`PlainWorker` where the run has no optional part, else a :class:`Worker`."""
        if work is steady_work and slow is STEADY and link is DIRECT and type(ps.log) is EventLog:
            return PlainWorker(index, env, ps, durations, pull, push)
        return Worker(index, env, ps, durations, pull, push, work=work, slow=slow, link=link)

    def begin(self, step: int):
        """Start one cycle for ``step``: pull, compute, push. Returns the event of its arrival
        at the PS, whose value is the gradient record.

        Timing never depends on gradient values, so the cycle is one timeout and its start and
        end are known now (with a shared PS link, the push is a second phase that queues).
        The draw is taken here, so every cycle, cancelled or not, is one computation of the
        worker's stream. Once the run has reached its last update no cycle begins: the worker
        parks on an event that never fires.
        """
        ps = self.ps
        if ps.finished:
            return self.env.event()
        d = self.drawn
        duration = self.draw() * self.work(self.index, d)
        self.drawn = d + 1
        start = self.env.now + self.pull
        duration = self.slow.stretch(start, duration)
        g = self.record(self.index, d, ps.version, step, start, start + duration)
        self.current, self.busy = g, True
        return self.link.arrival(self, g, self.pull + duration)

    def _abandon(self, fate: str) -> None:
        g, now = self.current, self.env.now
        if self.busy and g.fate == UNFINISHED:  # a gradient that reached the PS is no longer ours
            g.fate = fate
            g.start, g.end = min(g.start, now), min(g.end, now)
            self.busy = False
            if self.sub is not None and self.sub.is_alive:
                self.sub.interrupt()

    def cancel(self) -> None:
        """Abandon the current cycle now (``cancel`` semantics)."""
        self._abandon(CANCELLED)
        self.process.interrupt(CANCEL)

    def fail(self) -> None:
        """Die now: the computation in progress is lost; wait for ``revival``."""
        self._abandon(FAILED)
        self.alive, self.revival = False, self.env.event()
        self.process.interrupt(FAILURE)


class PlainWorker(Worker):
    """A worker without optional parts, recording into a full :class:`EventLog`: the engine's
    hot path. :meth:`Worker.begin` with the no-ops and the record call left out: fewer calls
    and lookups, the same events and numbers."""

    __slots__ = ("gradients",)

    def __init__(self, index, env, ps, durations, pull, push):
        super().__init__(index, env, ps, durations, pull, push)
        self.gradients = ps.log.gradients

    def begin(self, step: int):
        ps = self.ps
        if ps.finished:
            return self.env.event()
        d = self.drawn
        duration = self.draw()
        self.drawn = d + 1
        env = self.env
        start = env._now + self.pull  # Environment.now without the property call
        gradients = self.gradients  # EventLog.new_gradient, inline
        g = Gradient(len(gradients), self.index, d, ps.version, step, start, start + duration)
        gradients.append(g)
        self.current = g
        self.busy = True
        return env.timeout(self.pull + duration + self.push, g)


class ParameterServer:
    """Holds the parameter version, judges arriving gradients and applies updates."""

    def __init__(self, env: simpy.Environment, strategy, steps: int, log: EventLog):
        self.env, self.strategy, self.steps, self.log = env, strategy, steps, log
        self.version = 0
        self.pending: list[Gradient] = []
        self.updated = env.event()  # succeeds at the next update that someone waits for
        self.finished = False
        self.workers: list[Worker] = []

    def receive(self, g: Gradient) -> None:
        """A gradient arrives now: accept it, drop it, or complete an update with it."""
        if self.finished:
            return  # arrived after the last update: stays unfinished
        strategy = self.strategy
        dropped = strategy.admit(g, self)
        if dropped is not None:
            g.fate, g.staleness = dropped, self.version - g.version
            return
        g.fate = PENDING
        self.pending.append(g)
        if self.strategy.ready(self):
            self.apply()

    def apply(self) -> None:
        """Apply the pending gradients as one update, now.

        Invariants checked on every update (cheap, always on): simulated time never goes
        backwards, and a gradient is applied at most once.
        """
        if self.log.updates and self.env.now < self.log.updates[-1].time:
            raise RuntimeError(f"invariant broken: update at t={self.env.now} before the previous one")
        pending, version = self.pending, self.version
        if not set(map(_fate, pending)) <= {PENDING}:
            g = next(g for g in pending if g.fate != PENDING)
            raise RuntimeError(f"invariant broken: gradient {g.id} applied with fate {g.fate}")
        for g in pending:
            g.fate, g.update, g.staleness = APPLIED, version + 1, version - g.version
        self.version = version + 1
        self.log.add_update(Update(self.version, self.env.now, tuple(pending)))
        self.pending = []
        self.strategy.on_update(self)
        if self.updated.callbacks:  # someone waits for this update: wake them
            done, self.updated = self.updated, self.env.event()
            done.succeed(self.version)
        if self.version >= self.steps:
            self.finished = True


class Simulation:
    """A timing simulation of one run.

    Args:
        run: the run's :class:`RunInputs` (see :func:`~stragglersim.assemble.assemble`); a bare
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
        self.ps = ParameterServer(self.env, self.strategy, steps, self.log)
        faults = inputs.faults
        link = SharedLink(self.env, cluster.link_time) if cluster.link_time > 0 else DIRECT
        work = inputs.work or steady_work
        for w in range(self.strategy.n_workers):
            slow = faults.fail_slow.timeline(config.seed, w) if faults.fail_slow is not None else STEADY
            wk = Worker.make(
                w,
                self.env,
                self.ps,
                cluster.durations(w),
                cluster.pull_time,
                cluster.push_time,
                work=work,
                slow=slow,
                link=link,
            )
            body = self.strategy.worker(wk)
            spans = faults.spans(config.seed, w)
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
        step, updates = self.env.step, self.log.updates
        seen = 0
        while seen < self.ps.steps:
            try:
                while len(updates) == seen:
                    step()
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
            yield from new

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
