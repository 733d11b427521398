"""Adaptive backup workers: choose how many gradients to wait for, online.

P workers run; each update averages the first K gradients of the step and cancels the rest
(K-sync), so B = P - K workers are backups. Waiting for more gradients makes an update slower
but worth more. The rule, re-evaluated every ``every`` updates:

1. Estimate the distribution F of one computation (pull + compute + push) by Kaplan-Meier
   (``scipy.stats.ecdf``): finished computations are exact observations, cancelled ones are
   right-censored at the time they had run. Cancelling biases naive averages toward the fast
   workers; the product-limit estimator does not.
2. The time of an update that waits for K of P is the order statistic X_{K:P}, whose CDF is
   the regularised incomplete beta I_{F(x)}(K, P-K+1); its mean follows from F.
3. Progress per update follows the empirical model of large-batch training (McCandlish et
   al. 2018, "An Empirical Model of Large-Batch Training", eq. 2.11): an update with batch
   K·b is worth 1 / (1 + B_noise / (K·b)) of an update with infinite batch, where B_noise is
   the gradient noise scale in examples.
4. Choose K minimising E[X_{K:P}] · (1 + B_noise / (K·b)): the estimated time per unit of
   progress. The first update waits for all P (K = P), so that F starts from P uncensored
   observations; the first choice follows it, then one every ``every`` updates.

References:
    Chen et al. 2016 (the trade-off); Xu, Neglia, Sebastianelli 2020 (arXiv 2004.14696), dynamic
    backup workers; McCandlish et al. 2018 (arXiv 1812.06162).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..io.records import APPLIED, CANCELLED, DROPPED_LATE
from .base import cancel_unfinished, cancellable
from .options import ADAPT_EVERY, NOISE_SCALE
from .registry import register
from .sync import Synchronous

if TYPE_CHECKING:
    import numpy as np


def progress(k: int, batch_size: int, noise_scale: float) -> float:
    """Worth of one update averaging k mini-batches of ``batch_size`` (McCandlish et al.)."""
    return 1.0 / (1.0 + noise_scale / (k * batch_size))


def expected_order_statistic(quantiles: np.ndarray, probabilities: np.ndarray, k: int, n: int) -> float:
    """E[X_{k:n}] for a step CDF F with jumps at ``quantiles`` (F = ``probabilities`` there)."""
    import numpy as np  # here, not at import: the command line starts without NumPy (150 ms of its 0.4 s)
    from scipy import special  # here, not at import: the command line starts without SciPy

    cdf_k = special.betainc(k, n - k + 1, np.clip(probabilities, 0.0, 1.0))  # P(X_{k:n} <= x)
    mass = np.diff(np.concatenate([[0.0], cdf_k]))
    tail = 1.0 - cdf_k[-1]  # mass beyond the last observation (censored tail): put it there
    return float(np.dot(mass, quantiles) + tail * quantiles[-1])


@register
class AdaptiveBackup(Synchronous):
    """K-sync with K chosen online by the rule in the module docstring."""

    name = "adaptive-backup"
    options = (NOISE_SCALE, ADAPT_EVERY)
    per_update_varies = True  # K changes as the run goes
    compare_backups = True
    worker = staticmethod(cancellable)
    progress = staticmethod(progress)  # what one update of K gradients is worth (the rule's step 3)

    @classmethod
    def fixed_backups(cls, config, backups: int):
        """The run of ``config`` with a fixed number of backups instead: K-sync with K = P - B."""
        return replace(config, strategy="k-sync", k=config.workers - backups, noise_scale=None)

    def __init__(self, workers: int, batch_size: int, noise_scale: float, every: int = 20, k_min: int = 1):
        super().__init__(workers, 0)
        self.batch_size, self.noise_scale, self.every, self.k_min = batch_size, noise_scale, every, k_min
        self.k = workers
        self.choices: list[tuple[int, int]] = [(0, workers)]  # (from update, K)

    @classmethod
    def from_config(cls, config) -> AdaptiveBackup:
        p = config.workers
        return cls(p, config.batch_size, config.noise_scale or p * config.batch_size, config.adapt_every)

    def ready(self, ps) -> bool:
        return len(ps.pending) >= self.k  # the barrier: the current K, not a fixed N

    def on_update(self, ps) -> None:
        cancel_unfinished(ps)  # the rest become censored observations
        if ps.version == 1 or ps.version % self.every == 0:
            k = self.choose(ps.log.gradients, ps.env.now)
            if k != self.k:
                self.k = k
                self.choices.append((ps.version, k))

    def choose(self, gradients, now: float) -> int:
        """The K minimising estimated time per unit of progress, from the cycles so far."""
        done = [g.end - g.start for g in gradients if g.fate in (APPLIED, DROPPED_LATE)]
        censored = [g.end - g.start for g in gradients if g.fate == CANCELLED and g.end > g.start]
        if len(done) < 10:
            return self.k
        from scipy import stats  # here, not at import: the command line starts without SciPy

        cdf = stats.ecdf(stats.CensoredData(uncensored=done, right=censored)).cdf
        p = self.n_workers
        costs = {
            k: expected_order_statistic(cdf.quantiles, cdf.probabilities, k, p)
            / progress(k, self.batch_size, self.noise_scale)
            for k in range(self.k_min, p + 1)
        }
        return min(costs, key=costs.get)
