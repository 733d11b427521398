"""Synchronous SGD: ``sync`` (wait for all N) and ``backup`` (the first N of N + B), whose late
workers follow one of three semantics, ``tf``, ``drop`` or ``cancel``.

References:
    Chen et al. 2016, "Revisiting Distributed Synchronous SGD" (arXiv 1604.00981), §3;
    TensorFlow ``SyncReplicasOptimizer``; Dutta et al. 2018 (arXiv 1803.01113), K-sync.
"""

from __future__ import annotations

from collections import deque

from ..io.errors import InputError, named
from ..io.records import DROPPED_LATE
from .base import Strategy, cancel_unfinished, cancellable, wait_for_update
from .options import SEMANTICS_OPTION
from .registry import register


class Synchronous(Strategy):
    """Average the first N gradients of the current step; N + B workers (B may be 0).

    A gradient is accepted only if it was computed for the PS's current step; once N are in,
    the update is applied at once and every later gradient of that step arrives too late.
    Subclasses say what late workers do.
    """

    def __init__(self, n: int, backups: int):
        self.n, self.backups = n, backups
        self.n_workers, self.per_update = n + backups, n

    barrier = True

    def admit(self, g, ps):
        return None if g.step == ps.version else DROPPED_LATE


@register
class Sync(Synchronous):
    """``sync``: a plain barrier; each of the N workers contributes exactly one gradient per
    update and waits for it before pulling again (with no backups nobody is late)."""

    name = "sync"
    worker = staticmethod(wait_for_update)

    @classmethod
    def from_config(cls, config) -> Sync:
        return cls(config.workers, 0)

    @classmethod
    def check(cls, config) -> None:
        if config.backups != 0:
            raise InputError(
                f"{named('backups')} {config.backups}: sync waits for "
                f"all N workers; use {named('strategy')} backup for B > 0"
            )

    @classmethod
    def fast_path(cls, config) -> int | None:
        return config.workers

    @classmethod
    def processes(cls, config) -> int:
        return config.workers + config.backups


@register
class Backup(Synchronous):
    """``backup``: the first N of N + B; ``--semantics`` picks the subclass that says what the
    B late workers do."""

    name = "backup"
    options = (SEMANTICS_OPTION,)
    has_backups = True
    defaults = {"semantics": "tf"}
    semantics = ""

    @classmethod
    def from_config(cls, config) -> Backup:
        return BY_SEMANTICS[config.semantics](config.workers, config.backups)

    @classmethod
    def fast_path(cls, config) -> int | None:
        return config.workers if config.semantics == "cancel" else None

    @classmethod
    def recursion(cls, config) -> str | None:
        if config.semantics == "drop":
            return "barrier" if config.backups == 0 else "drop"
        return super().recursion(config)

    @classmethod
    def processes(cls, config) -> int:
        return config.workers + config.backups


class TokenQueue(Backup):
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

    def callback_loop(self) -> dict:
        return {"tokens": self.tokens}  # the engine's LoopWorker takes the tokens itself

    def worker(self, wk):
        step = wk.ps.version  # the first computation needs no token (also after a restart)
        while True:
            g = yield wk.begin(step)
            wk.ps.receive(g)
            while not self.tokens:
                yield wk.ps.updated
            step = self.tokens.popleft()


class DropLate(Backup):
    """``drop``: an accepted worker waits for the update, then pulls; a late worker's gradient
    is dropped on arrival and it pulls the newest parameters and starts again at once."""

    semantics = "drop"
    worker = staticmethod(wait_for_update)


class CancelAtUpdate(Backup):
    """``cancel`` (Dutta et al.'s K-sync): at each update every unfinished computation is
    abandoned and all N + B workers restart on the new parameters."""

    semantics = "cancel"
    worker = staticmethod(cancellable)

    def on_update(self, ps) -> None:
        cancel_unfinished(ps)


BY_SEMANTICS = {cls.semantics: cls for cls in (TokenQueue, DropLate, CancelAtUpdate)}
