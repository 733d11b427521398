"""The strategy interface: who computes what, which gradients the PS accepts, and when it updates.

A strategy is a small object with three decisions:

- ``admit(g, ps)``: accept the arriving gradient (``None``) or name the fate it is dropped with;
- ``ready(ps)``: the barrier, a predicate over the accepted gradients (by default "at least
  ``per_update`` are waiting");
- ``worker(wk)``: the SimPy process body of one worker, which only waits, yields and records;

plus ``start(ps)``, run once the workers exist, and ``on_update(ps)``, run when an update is
applied (hand out tokens, cancel). Its class tells the rest of the package what it needs to
know without running it: its ``name``, the ``options`` it owns, whether it is ``stale``,
whether it has backup workers, whether the vectorised fast path applies, how its runs are
named and how it is built from a configuration. ``registry.register`` makes it a choice of
``--strategy``.

References:
    Chen et al. 2016, "Revisiting Distributed Synchronous SGD" (arXiv 1604.00981), §3.
"""

from __future__ import annotations

from typing import ClassVar

import simpy

from ..io.errors import InputError, named
from ..io.records import PENDING
from .options import OPTIONS, Option

CANCEL = "cancel"  # the cause of the interrupt that cancels a computation at an update
FAILURE = "failure"  # the cause of the interrupt that kills a worker


def restart_at_once(wk):
    """A worker loop: pull the newest parameters, compute, push, and again at once."""
    ps = wk.ps
    begin, receive = wk.begin, ps.receive
    while True:
        g = yield begin(ps.version)
        receive(g)


def wait_for_update(wk):
    """A worker loop: as ``restart_at_once``, but an accepted gradient's worker waits for the
    update it will be part of before pulling again."""
    ps = wk.ps
    begin, receive = wk.begin, ps.receive
    while True:
        g = yield begin(ps.version)
        receive(g)
        if g.fate == PENDING:
            yield ps.updated


def cancellable(wk, *, wait: bool = True):
    """``wait_for_update`` (or ``restart_at_once`` with ``wait=False``) whose cycle the update
    may cancel (``on_update`` records the cancellation and interrupts the worker)."""
    ps = wk.ps
    begin, receive = wk.begin, ps.receive
    while True:
        try:
            g = yield begin(ps.version)
        except simpy.Interrupt as interrupt:
            if interrupt.cause is not CANCEL:
                raise
            continue
        wk.busy = False
        receive(g)
        if wait and g.fate == PENDING:
            yield ps.updated


# The built-in worker loops the engine runs as event callbacks (the same events, no generator):
# the loop -> the options of the engine's LoopWorker.
CALLBACK_LOOPS = {
    restart_at_once: {"wait": False, "cancellable": False},
    wait_for_update: {"wait": True, "cancellable": False},
    cancellable: {"wait": True, "cancellable": True},
}


def cancel_unfinished(ps) -> None:
    """Abandon every computation in progress; its worker restarts on the newest parameters."""
    for wk in ps.workers:
        if wk.busy:
            wk.cancel()


class Strategy:
    """Defaults: accept every gradient, update once ``per_update`` are in, nothing to do at
    start or update; no backup workers, no fast path.

    Class attributes:
        name: the ``--strategy`` value.
        options: the strategy options it owns (``options.py``).
        stale: whether applied gradients can be stale (the trainer then keeps past versions,
            and ``--staleness-lr`` applies).
        has_backups: whether ``--backups`` may be above 0.
        per_update_varies: updates average a varying number of gradients (learning-rate
            scaling then follows the number each update actually averaged).
        barrier: every worker computes once per update (the memory estimate counts P
            computations per update; otherwise one per update).
        defaults: option values it takes when they are not given (``RunConfig`` fills them in).
        compare_backups: ``stragglersim compare-backups`` studies it against every fixed number
            of backups (:meth:`fixed_backups` gives those runs).
        shows_staleness: a run's printed summary has its staleness line.

    Attributes:
        n_workers: worker processes.
        per_update: gradients averaged per update (for learning-rate scaling); at most this
            many where ``per_update_varies``.
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    stale: ClassVar[bool] = False
    has_backups: ClassVar[bool] = False
    per_update_varies: ClassVar[bool] = False
    barrier: ClassVar[bool] = False
    defaults: ClassVar[dict[str, object]] = {}
    compare_backups: ClassVar[bool] = False
    shows_staleness: ClassVar[bool] = False
    n_workers: int
    per_update: int

    def __init__(self, workers: int):
        self.n_workers, self.per_update = workers, workers

    @classmethod
    def from_config(cls, config) -> Strategy:
        """The strategy object a validated ``RunConfig`` asks for."""
        return cls(config.workers)

    @classmethod
    def check(cls, config) -> None:
        """Checks of the configuration beyond those of each option.

        Raises:
            InputError: naming the option, what is wrong and what would be right.
        """
        if not cls.has_backups and config.backups != 0:
            raise InputError(
                f"{named('backups')} {config.backups}: {cls.name} has no "
                f"backup workers; {named('workers')} sets how many run"
            )

    @classmethod
    def owns(cls, option: Option) -> bool:
        return any(o.field == option.field for o in cls.options) or (option.stale and cls.stale)

    @classmethod
    def fast_path(cls, config) -> int | None:
        """N when every update waits for the first N of all the workers' fresh computations and
        then restarts them all (the vectorised fast path can run it); None otherwise."""
        return None

    @classmethod
    def recursion(cls, config) -> str | None:
        """The fast path's closed recursion that times ``config``: "barrier" (every update restarts
        all workers: :meth:`fast_path`), "drop", "batch" or "arrival" (``core/queue_recursions.py``), or None
        (the event engine runs it)."""
        return "barrier" if cls.fast_path(config) is not None else None

    @classmethod
    def processes(cls, config) -> int:
        """Worker processes of a run of ``config``."""
        return config.workers

    @classmethod
    def run_name(cls, config) -> str:
        """The readable part of a run's folder name: the strategy, N, B and the options given."""
        bare = "".join(f"-{v}" for o in OPTIONS if o.tag == "" and (v := getattr(config, o.field)))
        tags = "".join(f"-{o.tag}{v:g}" for o in OPTIONS if o.tag and (v := getattr(config, o.field)) is not None)
        return f"{cls.name}{bare}-N{config.workers}-B{config.backups}{tags}"

    def admit(self, g, ps):
        return None

    def ready(self, ps) -> bool:
        return len(ps.pending) >= self.per_update

    def callback_loop(self) -> dict | None:
        """How the engine may run the worker loop as event callbacks (the options of its
        LoopWorker), or None: each worker is a SimPy process running :meth:`worker`."""
        return CALLBACK_LOOPS.get(type(self).worker)

    def worker(self, wk):
        raise NotImplementedError(f"{type(self).__name__} needs a worker loop, e.g. restart_at_once")

    def start(self, ps) -> None:
        pass

    def on_update(self, ps) -> None:
        pass
