"""An independent reference event model of a timing run, written from DESIGN.md and the README.

It shares no code with the package: it reads the plain fields of a ``RunConfig`` and is handed
each worker's raw computation-time draws (speed factor 1) and the random draws of its fault
episodes; everything else (its event kernel, the worker cycle, every strategy's rule, the token
queue, fail-slow stretching, failures, the PS's shared incoming link, trace replay, the end of a
run) is written here again from the documents.

Simultaneous events. The documents fix what happens at one instant in the way of a discrete-event
simulator whose queue is ordered by (time, priority, order of scheduling): an interrupt (a
cancellation, a failure) and the start of a process are urgent and come before ordinary events
due at the same time; everything else happens in the order it was scheduled; a worker woken by an
update is woken by an event scheduled at the update, so it restarts after the events already due
at that instant. The kernel below is a minimal one with that rule.

Records are plain dicts: worker, index, version, step, start, end, fate, update, staleness.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from heapq import heappop, heappush

import numpy as np
from scipy import special

URGENT, NORMAL = 0, 1


class Stop(Exception):
    """The run ends (a replayed trace is used up)."""


# --- the kernel ---------------------------------------------------------------------------------


class Event:
    def __init__(self, kernel):
        self.kernel, self.waiters, self.triggered, self.value = kernel, [], False, None

    def succeed(self, value=None):
        self.triggered, self.value = True, value
        self.kernel.schedule(0.0, NORMAL, self._fire)
        return self

    def _fire(self):
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter(self.value)


class Kernel:
    def __init__(self):
        self.now, self.heap, self.seq = 0.0, [], 0

    def schedule(self, delay: float, priority: int, action) -> None:
        self.seq += 1
        heappush(self.heap, (self.now + delay, priority, self.seq, action))

    def timeout(self, delay: float, value=None) -> Event:
        event = Event(self)
        event.triggered, event.value = True, value
        self.seq += 1
        heappush(self.heap, (self.now + delay, NORMAL, self.seq, event._fire))
        return event

    def process(self, generator) -> Process:
        return Process(self, generator)


class Interrupt(Exception):
    def __init__(self, cause):
        self.cause = cause


class Process:
    """A generator that yields events; it resumes when the event fires."""

    def __init__(self, kernel: Kernel, generator):
        self.kernel, self.generator, self.target, self.alive = kernel, generator, None, True
        self.done = Event(kernel)
        kernel.schedule(0.0, URGENT, lambda: self._resume(None))

    def _resume(self, value, throw=None):
        try:
            event = self.generator.throw(throw) if throw is not None else self.generator.send(value)
        except StopIteration as stop:
            self.alive, self.target = False, None
            self.done.succeed(stop.value)
            return
        except Stop:  # a replayed trace is used up: the run ends once this failure is handled
            self.alive, self.target = False, None
            self.kernel.schedule(0.0, NORMAL, _exhaust)
            return
        self.target = event
        event.waiters.append(self._resume)

    def interrupt(self, cause) -> None:
        def deliver():
            if not self.alive:
                return
            if self.target is not None and self._resume in self.target.waiters:
                self.target.waiters.remove(self._resume)
            self.target = None
            self._resume(None, throw=Interrupt(cause))

        self.kernel.schedule(0.0, URGENT, deliver)


# --- the run ------------------------------------------------------------------------------------


def read_trace(path: str) -> list[list[float]]:
    """A canonical trace (worker,step,duration[,start]): each worker's durations in step order."""
    rows: dict[int, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.setdefault(int(row["worker"]), []).append((int(row["step"]), float(row["duration"])))
    return [[d for _, d in sorted(rows[w])] for w in sorted(rows)]


def speed_factors(text: str, n: int) -> list[float]:
    text = text.strip()
    return [1.0] * n if not text else [float(x) for x in text.split(",")][:n]


class Reference:
    """One timing run.

    Args:
        config: a validated ``RunConfig`` (read as plain fields).
        draws: ``draws(w, d)``, worker w's d-th raw computation time (speed factor 1); for an exact
            ``trace:`` replay this is not used (the trace is read here).
        fail_slow: ``periods(w)``, an iterator over worker w's alternating normal and slow period
            lengths (seconds), when the run has fail-slow episodes.
        failure_spans: ``spans(w)``, an iterator over worker w's (down, up) periods from
            ``--failures``; ``--fail-at`` is parsed here.
    """

    def __init__(self, config, draws, *, fail_slow=None, failure_spans=None):
        c = self.c = config
        self.k = Kernel()
        name = c.strategy
        sem = c.semantics if name == "backup" else None
        self.name, self.sem = name, sem
        self.P = c.workers + c.backups if name in ("sync", "backup") else c.workers
        self.factors = speed_factors(c.speed_factors, self.P)
        nbytes = c.param_bytes or 0.0
        self.transfer = c.comm_latency + (nbytes / c.bandwidth if nbytes else 0.0)
        self.link_time = nbytes / c.ps_bandwidth if nbytes and math.isfinite(c.ps_bandwidth) else 0.0
        self.trace = read_trace(c.latency.strip()[len("trace:") :]) if c.latency.strip().startswith("trace:") else None
        self.draws = draws
        self.fail_slow = fail_slow
        self.steps = c.steps if c.steps is not None else math.inf
        # per worker
        self.drawn = [0] * self.P
        self.busy = [False] * self.P
        self.current: list[dict | None] = [None] * self.P
        self.process: list[Process | None] = [None] * self.P
        self.sub: list[Process | None] = [None] * self.P
        self.alive = [True] * self.P
        self.revival: list[Event | None] = [None] * self.P
        self.bounds = [[0.0] for _ in range(self.P)]  # fail-slow period starts
        self.periods = [fail_slow(w) for w in range(self.P)] if fail_slow else None
        self.slow_factor = float(dict(p.split("=") for p in c.fail_slow.split(","))["factor"]) if fail_slow else 1.0
        # the PS
        self.version, self.pending, self.finished = 0, [], False
        self.updated = Event(self.k)
        self.gradients: list[dict] = []
        self.updates: list[tuple[float, list[dict]]] = []
        self.exhausted, self.stalled = False, False
        self.link_queue: deque = deque()
        self.link_busy = False
        # the strategy's parameters, from the README's table
        P = self.P
        if name in ("sync", "backup"):
            self.per_update = c.workers
        elif name in ("async", "ssp"):
            self.per_update = 1
        elif name == "softsync":
            self.per_update = max(1, P // c.softsync_n)
        elif name in ("k-sync", "k-batch-sync", "k-async", "k-batch-async"):
            self.per_update = c.k
        elif name in ("deadline", "adaptive-backup"):
            self.per_update = P
        else:
            raise ValueError(name)
        self.tokens = deque([0] * c.workers) if sem == "tf" else None
        self.clock = [0] * P
        self.advanced = Event(self.k)
        self.K = P  # adaptive-backup's current K
        self.noise = (c.noise_scale or P * c.batch_size) if name == "adaptive-backup" else None
        self.spans = self._spans(failure_spans)

    # --- the worker's cycle ---------------------------------------------------------------------

    def _stretch(self, w: int, t0: float, work: float) -> float:
        """Elapsed time of ``work`` normal-speed seconds from ``t0`` through normal/slow periods."""
        bounds, factor = self.bounds[w], self.slow_factor
        while bounds[-1] <= t0:
            bounds.append(bounds[-1] + next(self.periods[w]))
        i = max(j for j in range(len(bounds)) if bounds[j] <= t0)
        t, left = t0, work
        while True:
            while len(bounds) <= i + 1:
                bounds.append(bounds[-1] + next(self.periods[w]))
            rate = 1.0 if i % 2 == 0 else 1.0 / factor
            if t + left / rate <= bounds[i + 1]:
                return t + left / rate - t0
            left -= (bounds[i + 1] - t) * rate
            t, i = bounds[i + 1], i + 1

    def _draw(self, w: int, d: int) -> float:
        if self.trace is not None:
            if d >= len(self.trace[w]):
                raise Stop
            return self.trace[w][d] * self.factors[w]
        return self.draws(w, d) * self.factors[w]

    def begin(self, w: int, step: int) -> Event:
        """Pull, compute, push: the event of the gradient's arrival at the PS."""
        k = self.k
        if self.finished:
            return Event(k)  # never fires
        d = self.drawn[w]
        duration = self._draw(w, d)
        self.drawn[w] = d + 1
        start = k.now + self.transfer
        if self.periods is not None:
            duration = self._stretch(w, start, duration)
        g = dict(
            worker=w, index=d, version=self.version, step=step, start=start, end=start + duration,
            fate="unfinished", update=None, staleness=None,
        )  # fmt: skip
        self.gradients.append(g)
        self.current[w], self.busy[w] = g, True
        if not self.link_time:
            return k.timeout(self.transfer + duration + self.transfer, g)
        self.sub[w] = sub = k.process(self._through_link(w, g, self.transfer + duration))
        return sub.done

    def _through_link(self, w: int, g: dict, compute: float):
        """Compute, then wait for the PS's link (first come, first served), hold it, then the
        fixed part of the push; an interrupt gives the link up."""
        k = self.k
        granted = None
        try:
            yield k.timeout(compute)
            granted = Event(k)
            if not self.link_busy and not self.link_queue:
                self.link_busy = True
                granted.succeed()
            else:
                self.link_queue.append(granted)
            yield granted
            yield k.timeout(self.link_time)
            self._release(granted)
            granted = None
            if self.transfer:
                yield k.timeout(self.transfer)
        except Interrupt:
            if granted is not None:
                self._release(granted)
            return None
        return g

    def _release(self, granted: Event) -> None:
        if granted in self.link_queue:
            self.link_queue.remove(granted)
            return
        if not granted.triggered:
            return
        self.link_busy = False
        if self.link_queue:
            self.link_busy = True
            self.link_queue.popleft().succeed()

    def _abandon(self, w: int, fate: str) -> None:
        g, now = self.current[w], self.k.now
        if self.busy[w] and g["fate"] == "unfinished":
            g["fate"] = fate
            g["start"], g["end"] = min(g["start"], now), min(g["end"], now)
            self.busy[w] = False
            if self.sub[w] is not None and self.sub[w].alive:
                self.sub[w].interrupt("cancel")

    # --- the parameter server -------------------------------------------------------------------

    def receive(self, g: dict) -> None:
        if self.finished:
            return
        name, ps_version = self.name, self.version
        late = name in ("sync", "backup", "k-sync", "k-batch-sync", "deadline", "adaptive-backup")
        if late and g["step"] != ps_version:
            g["fate"], g["staleness"] = "dropped_late", ps_version - g["version"]
            return
        cutoff = self.c.staleness_cutoff if name == "async" else None
        if cutoff is not None and ps_version - g["version"] > cutoff:
            g["fate"], g["staleness"] = "dropped_stale", ps_version - g["version"]
            return
        g["fate"] = "pending"
        self.pending.append(g)
        if self._ready():
            self.apply()

    def _ready(self) -> bool:
        n = len(self.pending)
        if self.name == "deadline":
            return n >= self.P or (n > 0 and self.k.now >= self.step_started + self.c.deadline)
        if self.name == "adaptive-backup":
            return n >= self.K
        return n >= self.per_update

    def apply(self) -> None:
        v = self.version
        for g in self.pending:
            g["fate"], g["update"], g["staleness"] = "applied", v + 1, v - g["version"]
        self.version = v + 1
        self.updates.append((self.k.now, self.pending))
        self.pending = []
        self._on_update()
        if self.updated.waiters:
            done, self.updated = self.updated, Event(self.k)
            done.succeed(self.version)
        if self.version >= self.steps:
            self.finished = True

    def _on_update(self) -> None:
        name, sem = self.name, self.sem
        if sem == "tf":
            self.tokens.extend([self.version] * self.P)
        if sem == "cancel" or name in ("k-sync", "k-batch-sync", "adaptive-backup"):
            for w in range(self.P):
                if self.busy[w]:
                    self._abandon(w, "cancelled")
                    self.process[w].interrupt("cancel")
        if name == "deadline":
            self._start_step()
        if name == "adaptive-backup" and (self.version == 1 or self.version % self.c.adapt_every == 0):
            self.K = self._choose_k()

    def _start_step(self) -> None:
        self.step_started, version, k = self.k.now, self.version, self.k

        def timer():
            yield k.timeout(self.c.deadline)
            if self.version == version and self.pending and not self.finished:
                self.apply()

        k.process(timer())

    def _choose_k(self) -> int:
        """Kaplan-Meier over finished (exact) and cancelled (right-censored) cycles, then the K
        minimising E[X_{K:P}] (1 + B_noise / (K b)) (README, adaptive-backup)."""
        done = [g["end"] - g["start"] for g in self.gradients if g["fate"] in ("applied", "dropped_late")]
        cens = [g["end"] - g["start"] for g in self.gradients if g["fate"] == "cancelled" and g["end"] > g["start"]]
        if len(done) < 10:
            return self.K
        times = np.unique(np.array(done + cens))
        done_arr, all_arr = np.array(done), np.array(done + cens)
        survival, cdf = 1.0, []
        for t in times:
            deaths = np.count_nonzero(done_arr == t)
            at_risk = np.count_nonzero(all_arr >= t)
            survival *= 1.0 - deaths / at_risk
            cdf.append(1.0 - survival)
        cdf = np.array(cdf)
        best, best_cost = None, math.inf
        for kk in range(1, self.P + 1):
            below = special.betainc(kk, self.P - kk + 1, np.clip(cdf, 0.0, 1.0))
            mass = np.diff(np.concatenate([[0.0], below]))
            mean = float(np.dot(mass, times) + (1.0 - below[-1]) * times[-1])
            cost = mean / (1.0 / (1.0 + self.noise / (kk * self.c.batch_size)))
            if cost < best_cost:
                best, best_cost = kk, cost
        return best

    # --- worker loops ---------------------------------------------------------------------------

    def loop(self, w: int):
        """Worker w's rule, by strategy (README, "Strategies and semantics")."""
        name, sem = self.name, self.sem
        if sem == "tf":
            step = self.version
            while True:
                g = yield self.begin(w, step)
                self.receive(g)
                while not self.tokens:
                    yield self.updated
                step = self.tokens.popleft()
        if name == "ssp":
            while True:
                while self.clock[w] - min(self.clock) > self.c.ssp_bound:
                    yield self.advanced
                g = yield self.begin(w, self.version)
                self.receive(g)
                before = min(self.clock)
                self.clock[w] += 1
                if min(self.clock) > before:
                    done, self.advanced = self.advanced, Event(self.k)
                    done.succeed()
        cancellable = sem == "cancel" or name in ("k-sync", "k-batch-sync", "adaptive-backup")
        waits = name in ("sync", "k-sync", "k-async", "deadline", "adaptive-backup") or sem in ("drop", "cancel")
        while True:
            try:
                g = yield self.begin(w, self.version)
            except Interrupt as interrupt:
                if interrupt.cause != "cancel":
                    raise
                continue
            if cancellable:
                self.busy[w] = False
            self.receive(g)
            if waits and g["fate"] == "pending":
                yield self.updated

    def mortal(self, w: int):
        """Worker w's loop, started again from scratch after each failure."""
        body = self.loop(w)
        while True:
            try:
                yield from body
            except Interrupt as interrupt:
                if interrupt.cause != "failure":
                    raise
            yield self.revival[w]
            self.alive[w] = True
            body = self.loop(w)

    def _spans(self, failure_spans):
        c, spans = self.c, {}
        for item in filter(None, (s.strip() for s in c.fail_at.split(","))):
            worker, _, when = item.partition("@")
            down, dash, up = when.partition("-")
            spans.setdefault(int(worker), []).append((float(down), float(up) if dash else math.inf))
        out = {w: iter(sorted(s)) for w, s in spans.items()}
        if failure_spans is not None:
            out = {w: failure_spans(w) for w in range(self.P)}
        return out

    def failures(self, w: int, spans):
        k = self.k
        for down, up in spans:
            yield k.timeout(down - k.now)
            if self.finished:
                return
            self._abandon(w, "failed")
            self.alive[w], self.revival[w] = False, Event(k)
            self.process[w].interrupt("failure")
            if math.isinf(up):
                return
            yield k.timeout(up - k.now)
            self.revival[w].succeed()

    # --- running --------------------------------------------------------------------------------

    def run(self) -> Reference:
        k = self.k
        for w in range(self.P):
            spans = self.spans.get(w)
            if spans is not None:
                k.process(self.failures(w, spans))
            self.process[w] = k.process(self.mortal(w) if spans is not None else self.loop(w))
        if self.name == "deadline":
            self._start_step()
        while len(self.updates) < self.steps:
            if not k.heap:
                self.stalled = True
                break
            k.now, _, _, action = heappop(k.heap)
            try:
                action()
            except _Exhausted:
                self.exhausted = True
                break
        for g in self.pending:
            g["fate"] = "unfinished"
        self.pending = []
        return self


class _Exhausted(Exception):
    pass


def _exhaust():
    raise _Exhausted
