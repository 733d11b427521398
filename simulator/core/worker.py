"""A worker of the event model: its cycle (pull, compute, push) and its optional parts.

Optional parts are no-op objects unless the run asks for them: the work model of
``--data-cost nnz``, fail-slow episodes, and the PS's shared incoming link.
"""

from __future__ import annotations

from heapq import heappush

import simpy
from simpy.events import NORMAL, URGENT, Event, Timeout

from ..io.records import CANCELLED, FAILED, PENDING, UNFINISHED, CompactLog, EventLog, Gradient
from ..latency.durations import DurationStream
from ..strategies import CANCEL, FAILURE


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
        ps,  # the ParameterServer
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
        if work is steady_work and slow is STEADY and link is DIRECT and type(ps.log) in (EventLog, CompactLog):
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
        lead = _lead(self, ps)
        start = self.env.now + lead
        duration = self.slow.stretch(start, duration)
        g = self.record(self.index, d, ps.version, step, start, start + duration)
        self.current, self.busy = g, True
        return self.link.arrival(self, g, lead + duration)

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
    """A worker without optional parts: the engine's hot path. :meth:`Worker.begin` with the
    no-ops left out, the arrival's timeout scheduled inline and, into a full :class:`EventLog`,
    the record made inline: fewer calls and lookups, the same events and numbers."""

    __slots__ = ("gradients", "compact", "queue", "eid")

    def __init__(self, index, env, ps, durations, pull, push):
        super().__init__(index, env, ps, durations, pull, push)
        self.gradients = ps.log.gradients  # a CompactLog folds this list in place
        self.compact = ps.log if type(ps.log) is CompactLog else None
        self.queue, self.eid = env._queue, env._eid  # the environment's event heap and its id counter

    def begin(self, step: int):
        return self._launch(step, [], Timeout)

    def _launch(self, step: int, callbacks: list, kind: type):
        """:meth:`Worker.begin`, whose arrival is a ``kind`` event with ``callbacks``."""
        ps = self.ps
        if ps.finished:
            parked = Event(self.env)  # never fires
            parked.callbacks = callbacks
            return parked
        d = self.drawn
        duration = self.draw()
        self.drawn = d + 1
        env = self.env
        now = env._now  # Environment.now without the property call
        lead = self.pull if ps.free_at <= now else _lead(self, ps)
        start = now + lead
        # The log's new_gradient, Gradient.__init__ and env.timeout(delay, g), inline: one call
        # per cycle instead of five (separate stores, which run faster than tuple assignments).
        gradients, compact = self.gradients, self.compact
        g = _new(Gradient)
        if compact is None:
            g.id = len(gradients)
        else:
            g.id = compact.created
            compact.created += 1
        g.worker = self.index
        g.index = d
        g.version = ps.version
        g.step = step
        g.start = start
        g.end = start + duration
        g.fate = UNFINISHED
        g.update = None
        g.staleness = None
        gradients.append(g)
        if compact is not None and len(gradients) > compact.fold_at:
            compact.fold()
        self.current = g
        self.busy = True
        delay = lead + duration + self.push
        arrival = _new(kind)
        arrival.env = env
        arrival.callbacks = callbacks
        arrival._value = g
        arrival._delay = delay
        arrival._ok = True
        heappush(self.queue, (now + delay, NORMAL, next(self.eid), arrival))  # Environment.schedule
        return arrival


def _lead(wk: Worker, ps) -> float:
    """Seconds from now to the start of ``wk``'s computation: its pull, after the servers have applied
    the updates decided so far (``--ps-service``; the same expression as without it when they have)."""
    now = wk.env.now
    return wk.pull if ps.free_at <= now else ps.free_at - now + wk.pull


class Arrival:
    """A gradient's arrival at the PS as a :class:`LoopWorker` schedules it: what the event
    loop reads of a SimPy ``Timeout`` (``callbacks``, ``_ok``, ``_value``), without its dict."""

    __slots__ = ("env", "callbacks", "_value", "_delay", "_ok")


_new = object.__new__


class LoopWorker(PlainWorker):
    """A :class:`PlainWorker` whose loop is one of the built-in ones (``restart_at_once``,
    ``wait_for_update``, ``cancellable``, the ``tf`` token loop) run as event callbacks
    instead of a SimPy process: the same steps at the same events, scheduled in the same order
    (so the same event ids and tie-breaks), without a generator to resume twice per gradient.

    Only for runs where the loop cannot fail or be killed: no failures, and a drawn duration
    stream that never runs out (a replayed trace raises when used up).

    Args:
        wait: an accepted gradient's worker waits for the update before pulling again.
        cancellable: the update may cancel its computation (``cancel`` semantics).
        tokens: the ``tf`` token queue: after each push the worker takes the next token
            (waiting for updates while there is none) and computes for its step.
    """

    __slots__ = ("wait", "cancellable", "tokens", "target", "arrive", "restart", "next_token")

    def __init__(self, index, env, ps, durations, pull, push, *, wait=False, cancellable=False, tokens=None):
        super().__init__(index, env, ps, durations, pull, push)
        self.wait, self.cancellable, self.tokens = wait, cancellable, tokens
        self.target = None  # the event the loop waits for
        # Bound once: SimPy finds a callback to remove by equality.
        self.arrive, self.restart, self.next_token = self._arrive, self._restart, self._next_token

    def start(self) -> None:
        """Schedule the loop's start where ``env.process`` would (an urgent event, now)."""
        self.env.schedule(_now_event(self.env, self.restart), URGENT)

    def _restart(self, event) -> None:
        """Pull the newest parameters and compute (at the start, after an update or a cancel)."""
        self.target = self._launch(self.ps.version, [self.arrive], Arrival)

    def _arrive(self, event) -> None:
        g = event._value
        if self.cancellable:
            self.busy = False
        ps = self.ps
        ps.receive(g)
        if self.tokens is not None:
            self._next_token(event)
        elif self.wait and g.fate == PENDING:
            self.target = target = ps.updated
            target.callbacks.append(self.restart)
        else:
            self.target = self._launch(ps.version, [self.arrive], Arrival)

    def _next_token(self, event) -> None:
        tokens = self.tokens
        if tokens:
            self.target = self._launch(tokens.popleft(), [self.arrive], Arrival)
        else:
            self.target = target = self.ps.updated
            target.callbacks.append(self.next_token)

    def cancel(self) -> None:
        """Abandon the current cycle; restart at an urgent event now (as an interrupt would)."""
        self._abandon(CANCELLED)
        self.env.schedule(_now_event(self.env, self._cancelled), URGENT)

    def _cancelled(self, event) -> None:
        self.target.callbacks.remove(self.arrive)
        self._restart(event)


def _now_event(env: simpy.Environment, callback) -> Event:
    """A triggered event whose processing calls ``callback``."""
    event = Event(env)
    event.callbacks.append(callback)
    event._ok, event._value = True, None
    return event
