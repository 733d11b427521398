"""Dutta et al.'s family: K gradients or mini-batches per update, of P workers, fresh or stale.

References:
    Dutta, Joshi, Ghosh, Dube, Nagpurkar 2018 (arXiv 1803.01113), §3: K-sync, K-batch-sync,
    K-async, K-batch-async.
"""

from __future__ import annotations

from .base import Strategy, cancel_unfinished, cancellable, restart_at_once, wait_for_update
from .options import K
from .registry import register
from .sync import Synchronous


@register
class KSync(Synchronous):
    """K-sync: the first K of P at the current parameters; the rest are cancelled, all restart
    (``backup`` with ``cancel``, N = K and B = P - K)."""

    name = "k-sync"
    options = (K,)
    worker = staticmethod(cancellable)

    def __init__(self, workers: int, k: int):
        super().__init__(k, workers - k)

    @classmethod
    def from_config(cls, config) -> KSync:
        return cls(config.workers, config.k)

    @classmethod
    def fast_path(cls, config) -> int | None:
        return config.k

    def on_update(self, ps) -> None:
        cancel_unfinished(ps)


@register
class KBatchSync(KSync):
    """K-batch-sync: the first K mini-batches computed at the current parameters; a worker that
    finishes starts another on the same parameters at once; at the update everyone restarts.

    For Exp(λ) times an update takes K/(Pλ): K arrivals of a Poisson process of rate Pλ.
    """

    name = "k-batch-sync"

    @staticmethod
    def worker(wk):
        return cancellable(wk, wait=False)

    @classmethod
    def fast_path(cls, config) -> int | None:
        return None  # a worker can deliver two of an update's K: not an order statistic of fresh draws

    @classmethod
    def recursion(cls, config) -> str | None:
        return "batch"


@register
class KAsync(Strategy):
    """Wait for K gradients, possibly stale; only those K workers pull and restart, the others
    carry on with what they were computing."""

    name = "k-async"
    options = (K,)
    stale = True
    worker = staticmethod(wait_for_update)

    def __init__(self, workers: int, k: int):
        self.n_workers, self.per_update = workers, k

    @classmethod
    def from_config(cls, config) -> KAsync:
        return cls(config.workers, config.k)


@register
class KBatchAsync(KAsync):
    """K mini-batches from anyone, stale or not: every worker pushes, pulls and restarts at once.

    Time per update = K·E[X]/P for any distribution (renewal theory). n-softsync with λ
    workers is this with K = max(1, floor(λ/n)).
    """

    name = "k-batch-async"
    worker = staticmethod(restart_at_once)
