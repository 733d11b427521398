"""Strategies: who computes what, which gradients the PS accepts, and when it updates.

A strategy is a small object with three decisions:

- ``admit(g, ps)``: accept the arriving gradient (``None``) or name the fate it is dropped with;
- ``ready(pending)``: the barrier, a predicate over the accepted gradients (``FirstN``);
- ``worker(wk)``: the SimPy process body of one worker, which only waits, yields and records;

plus ``on_update(ps)``, the hook run when an update is applied (hand out tokens, cancel).

References:
    Chen et al. 2016, "Revisiting Distributed Synchronous SGD" (arXiv 1604.00981), §3;
    TensorFlow ``SyncReplicasOptimizer`` and ``DropStaleGradientOptimizer``;
    Dutta et al. 2018 (arXiv 1803.01113), K-sync.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import simpy

from .records import DROPPED_LATE, DROPPED_STALE, PENDING

CANCEL = "cancel"  # the cause of the interrupt that cancels a computation at an update
FAILURE = "failure"  # the cause of the interrupt that kills a worker


@dataclass(frozen=True)
class FirstN:
    """The barrier "at least n accepted gradients are waiting"."""

    n: int

    def __call__(self, ps) -> bool:
        return len(ps.pending) >= self.n


def restart_at_once(wk):
    """A worker loop: pull the newest parameters, compute, push, and again at once."""
    ps = wk.ps
    while True:
        g = yield wk.begin(ps.version)
        ps.receive(g)


def wait_for_update(wk):
    """A worker loop: as ``restart_at_once``, but an accepted gradient's worker waits for the
    update it will be part of before pulling again."""
    ps = wk.ps
    while True:
        g = yield wk.begin(ps.version)
        ps.receive(g)
        if g.fate == PENDING:
            yield ps.updated


def cancellable(wk, *, wait: bool = True):
    """``wait_for_update`` (or ``restart_at_once`` with ``wait=False``) whose cycle the update
    may cancel (``on_update`` records the cancellation and interrupts the worker)."""
    ps = wk.ps
    while True:
        try:
            g = yield wk.begin(ps.version)
        except simpy.Interrupt as interrupt:
            if interrupt.cause is not CANCEL:
                raise
            continue
        wk.busy = False
        ps.receive(g)
        if wait and g.fate == PENDING:
            yield ps.updated


class Strategy:
    """Defaults: accept every gradient, nothing to do at start or update.

    Attributes:
        n_workers: worker processes.
        per_update: gradients averaged per update (for learning-rate scaling); at most this
            many where ``per_update_varies``.
        per_update_varies: updates average a varying number of gradients (learning-rate
            scaling then follows the number each update actually averaged).
        stale: whether applied gradients can be stale (the trainer then keeps past versions).
    """

    semantics = None
    stale = False
    per_update_varies = False
    n_workers: int
    per_update: int

    def admit(self, g, ps):
        return None

    def start(self, ps) -> None:
        pass

    def on_update(self, ps) -> None:
        pass


class Synchronous(Strategy):
    """Average the first N gradients of the current step; N + B workers (B may be 0).

    A gradient is accepted only if it was computed for the PS's current step; once N are in,
    the update is applied at once and every later gradient of that step arrives too late.
    Subclasses say what late workers do (the ``--semantics``).
    """

    semantics = ""

    def __init__(self, n: int, backups: int):
        self.n, self.backups = n, backups
        self.n_workers, self.per_update = n + backups, n
        self.ready = FirstN(n)

    def admit(self, g, ps):
        return None if g.step == ps.version else DROPPED_LATE


class TokenQueue(Synchronous):
    """``tf``: TensorFlow's ``SyncReplicasOptimizer`` with N + B replicas.

    After each update the PS enqueues N + B tokens carrying the new step. A worker, after
    pushing, takes the next token (waiting if the queue is empty) and computes its next
    gradient for that token's step on the parameters current when it pulls. The queue starts
    with N tokens of step 0 (TF's ``get_init_tokens_op`` default), and every worker's first
    computation needs none. Consequences: a fast worker can contribute twice to one update,
    and leftover tokens can be stale, so the gradient computed for them is dropped.
    """

    semantics = "tf"

    def __init__(self, n: int, backups: int):
        super().__init__(n, backups)
        self.tokens: deque[int] = deque([0] * n)

    def on_update(self, ps) -> None:
        self.tokens.extend([ps.version] * self.n_workers)

    def worker(self, wk):
        step = wk.ps.version  # the first computation needs no token (also after a restart)
        while True:
            g = yield wk.begin(step)
            wk.ps.receive(g)
            while not self.tokens:
                yield wk.ps.updated
            step = self.tokens.popleft()


class DropLate(Synchronous):
    """``drop``: an accepted worker waits for the update, then pulls; a late worker's gradient
    is dropped on arrival and it pulls the newest parameters and starts again at once."""

    semantics = "drop"
    worker = staticmethod(wait_for_update)


class CancelAtUpdate(Synchronous):
    """``cancel`` (Dutta et al.'s K-sync): at each update every unfinished computation is
    abandoned and all N + B workers restart on the new parameters."""

    semantics = "cancel"
    worker = staticmethod(cancellable)

    def on_update(self, ps) -> None:
        for wk in ps.workers:
            if wk.busy:
                wk.cancel()


class Async(Strategy):
    """Apply every gradient as it arrives; staleness = PS version at apply - version read.

    With ``cutoff`` T, a gradient whose staleness exceeds T is dropped (TensorFlow's
    ``DropStaleGradientOptimizer``).
    """

    stale = True
    ready = FirstN(1)

    def __init__(self, workers: int, cutoff: int | None = None):
        self.n_workers, self.per_update, self.cutoff = workers, 1, cutoff

    def admit(self, g, ps):
        if self.cutoff is not None and ps.version - g.version > self.cutoff:
            return DROPPED_STALE
        return None

    worker = staticmethod(restart_at_once)


SYNCHRONOUS = {cls.semantics: cls for cls in (TokenQueue, DropLate, CancelAtUpdate)}


def make_strategy(config):
    """The strategy object a (validated) :class:`~simulator.config.RunConfig` asks for."""
    from . import relaxed

    if config.strategy in relaxed.STRATEGIES:
        return relaxed.make(config)
    if config.strategy == "async":
        return Async(config.workers, config.staleness_cutoff)
    if config.strategy == "sync":
        return DropLate(config.workers, 0)  # with no backups nobody is late: a plain barrier
    return SYNCHRONOUS[config.semantics](config.workers, config.backups)
