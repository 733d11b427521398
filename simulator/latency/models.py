"""The parametric latency families and their base class (see the package docstring: sampling by
inverse transform of uniforms, so that draws are prefix-stable and common random numbers exact)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from scipy import integrate

from ..io.spec import Spec
from .durations import DurationStream


class LatencyModel(ABC):
    """A distribution of computation times (seconds).

    Subclasses implement :meth:`transform`, which maps uniforms of shape
    ``(size, n_uniforms)`` to ``size`` durations, and the exact moments.
    """

    n_uniforms: int = 1
    spec: Spec

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` durations (seconds) from ``rng``; prefix-consistent in ``size``."""
        return self.transform(rng.random((size, self.n_uniforms)))

    @abstractmethod
    def transform(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms of shape ``(size, n_uniforms)`` to ``size`` durations."""

    @property
    @abstractmethod
    def mean(self) -> float:
        """E[X] in seconds (``inf`` where it does not exist)."""

    @property
    @abstractmethod
    def var(self) -> float:
        """Var[X] in seconds² (``inf`` where it does not exist)."""

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    @property
    def tail_index(self) -> float:
        """α such that E[X^p] is finite exactly for p < α: the tail falls like x^-α (``inf`` for
        tails lighter than every power, and for bounded distributions)."""
        return math.inf

    @abstractmethod
    def cdf(self, x):
        """P(X <= x), elementwise."""

    @abstractmethod
    def ppf(self, q):
        """The q-quantile, elementwise (inverse of :meth:`cdf`)."""

    def isf(self, q):
        """The (1 - q)-quantile, elementwise; exact for tiny q where the family allows."""
        return self.ppf(1.0 - np.asarray(q, dtype=float))

    def landmarks(self, q) -> np.ndarray:
        """Points where the mass lies, for a quadrature's breakpoints: the q-quantiles (those of each
        part, for a mixture: a rare part's mass sits between the mixture's own quantiles)."""
        return np.asarray(self.ppf(q), dtype=float)

    def __str__(self) -> str:
        return str(self.spec)

    def stream_for(self, worker: int, rng: np.random.Generator, factor: float = 1.0):
        """Worker ``worker``'s stream of computation times (i.i.d. draws from its own ``rng``)."""
        return DurationStream(self, rng, factor)


class Constant(LatencyModel):
    """Every computation takes exactly ``value`` seconds."""

    def __init__(self, value: float, spec: Spec):
        self.value, self.spec = float(value), spec

    def transform(self, u):
        return np.full(len(u), self.value)

    @property
    def mean(self):
        return self.value

    @property
    def var(self):
        return 0.0

    def cdf(self, x):
        return np.where(np.asarray(x, dtype=float) >= self.value, 1.0, 0.0)

    def ppf(self, q):
        return np.full(np.shape(q), self.value) if np.ndim(q) else self.value


class ScipyLatency(LatencyModel):
    """A family backed by a frozen ``scipy.stats`` distribution."""

    def __init__(self, dist, spec: Spec):
        self.dist, self.spec = dist, spec

    def transform(self, u):
        return self.dist.ppf(u[:, 0])

    @property
    def mean(self):
        with np.errstate(over="ignore", invalid="ignore"):  # a moment past the doubles is inf or nan, said later
            return float(self.dist.mean())

    @property
    def var(self):
        with np.errstate(over="ignore", invalid="ignore"):
            return float(self.dist.var())

    @property
    def tail_index(self) -> float:
        return float(self.spec.params["alpha"]) if self.spec.family == "pareto" else math.inf

    def cdf(self, x):
        return self.dist.cdf(x)

    def ppf(self, q):
        return self.dist.ppf(q)

    def isf(self, q):
        return self.dist.isf(q)


class Straggler(LatencyModel):
    """A base model where, with probability ``p``, a computation straggles.

    A straggling computation takes ``factor * X + D`` instead of ``X``, with X from the base
    model and D from the optional ``delay`` model (0 without one).
    """

    def __init__(self, base: LatencyModel, p: float, factor: float, delay: LatencyModel | None, spec: Spec):
        self.base, self.p, self.factor, self.delay, self.spec = base, p, factor, delay, spec
        self.n_uniforms = base.n_uniforms + 1 + (delay.n_uniforms if delay else 0)

    def transform(self, u):
        kb = self.base.n_uniforms
        x = self.base.transform(u[:, :kb])
        slow = u[:, kb] < self.p
        extra = self.delay.transform(u[:, kb + 1 :]) if self.delay else 0.0
        return np.where(slow, self.factor * x + extra, x)

    @property
    def mean(self):
        d = self.delay.mean if self.delay else 0.0
        return (1 - self.p) * self.base.mean + self.p * (self.factor * self.base.mean + d)

    @property
    def var(self):
        m1, m2 = self.base.mean, self.base.var + self.base.mean**2
        d1, d2 = (self.delay.mean, self.delay.var + self.delay.mean**2) if self.delay else (0.0, 0.0)
        second = (1 - self.p) * m2 + self.p * (self.factor**2 * m2 + 2 * self.factor * m1 * d1 + d2)
        return second - self.mean**2

    @property
    def tail_index(self) -> float:
        """The heavier tail of its parts (a factor does not change a tail's index)."""
        if self.p == 0:
            return self.base.tail_index
        return min(self.base.tail_index, self.delay.tail_index if self.delay else math.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        if self.delay is None:  # both parts in one call of the base's CDF
            fast, slow = self.base.cdf(np.stack([x, x / self.factor]))
            return (1 - self.p) * fast + self.p * slow
        return (1 - self.p) * self.base.cdf(x) + self.p * self._slow_cdf(x)

    def _slow_cdf(self, x: np.ndarray) -> np.ndarray:
        """P(factor * X + D <= x) = E_D[F_X((x - D) / factor)], elementwise, for a delay D (``cdf``
        takes the case without one)."""
        if isinstance(self.delay, Constant):
            return self.base.cdf((x - self.delay.value) / self.factor)
        if isinstance(self.base, Constant):
            return self.delay.cdf(x - self.factor * self.base.value)

        def one(xx: float) -> float:  # integrate over D's quantiles
            value, _ = integrate.quad(
                lambda v: float(self.base.cdf((xx - float(self.delay.ppf(v))) / self.factor)), 0, 1, limit=200
            )
            return value

        return np.vectorize(one, otypes=[float])(x)

    def ppf(self, q):
        return _invert_cdf(self.cdf, q)

    def landmarks(self, q) -> np.ndarray:
        """The base's landmarks and the straggling part's: factor times them, plus the delay's."""
        base = self.base.landmarks(q)
        slow = self.factor * base + (self.delay.landmarks(q) if self.delay else 0.0)
        return np.concatenate([base, slow])


QUANTILE_RTOL = 1e-14  # relative width of the last bracket of a numerical quantile


def _invert_cdf(cdf: Callable, q):
    """Numerical quantiles inf{x >= 0: F(x) >= q} of a non-negative distribution, to a relative
    QUANTILE_RTOL, vectorised. Each stays bracketed, F(lo) < q <= F(hi), and ``hi`` is returned: a
    bracket found by doubling or halving from 1, then shrunk by false position with the Illinois rule
    (the end kept twice in a row has its F - q halved) and a bisection every third step, each
    probing a pair of points closer than the tolerance (a sign change between them ends it). Not a plain root finder:
    mixtures with a constant part have atoms, where F jumps over q and has no root; the bisections
    close in on the jump however false position fares there."""
    q = np.asarray(q, dtype=float)
    flat = q.reshape(-1)
    out = np.full(flat.shape, np.inf)
    out[flat <= 0] = 0.0
    inner = (flat > 0) & (flat < 1)
    target = flat[inner]
    if target.size:
        # the bracket: from 1, doubling while F < q or halving while F >= q (to 0 at the least)
        ones = np.ones_like(target)
        f_one = cdf(ones) - target
        lo, hi, f_lo, f_hi = ones, ones.copy(), f_one, f_one.copy()
        up = f_one < 0
        for _ in range(1100):
            short, over = up & (f_hi < 0), ~up & (f_lo >= 0)
            if not (short.any() or over.any()):
                break
            probe = np.where(short, 2.0 * hi, np.where(over, 0.5 * lo, hi))
            f_probe = cdf(probe) - target
            lo, f_lo, hi, f_hi = (
                np.where(short, hi, np.where(over, probe, lo)),
                np.where(short, f_hi, np.where(over, f_probe, f_lo)),
                np.where(short, probe, np.where(over, lo, hi)),
                np.where(short, f_probe, np.where(over, f_lo, f_hi)),
            )
        kept = np.zeros(target.shape, dtype=int)  # -1: lo was kept last step, +1: hi was, 0: neither
        with np.errstate(all="ignore"):
            for step in range(400):
                open_ = hi - lo > QUANTILE_RTOL * hi
                if not open_.any():
                    break
                # F - q is 0 over a few ulps of x where F rounds to q: there a secant step of 0 would
                # stall, so F - q counts as at least a rounding error at hi
                f_top = np.maximum(f_hi, np.spacing(target))
                x = hi - f_top * (hi - lo) / (f_top - f_lo)
                x = np.where((step % 3 == 2) | ~(x > lo) | ~(x < hi), 0.5 * (lo + hi), x)
                # a pair of points around x, closer than the tolerance: where F - q changes sign between
                # them the bracket closes at once, else the nearer one replaces an end
                delta = 0.25 * QUANTILE_RTOL * x
                left, right = np.maximum(x - delta, lo), np.minimum(x + delta, hi)
                f_left, f_right = cdf(np.stack([left, right])) - target
                above, below = open_ & (f_left >= 0), open_ & (f_right < 0)
                between = open_ & ~above & ~below
                f_lo = np.where(above & (kept == -1), 0.5 * f_lo, f_lo)  # lo kept a second time
                f_hi = np.where(below & (kept == 1), 0.5 * f_hi, f_hi)
                lo, f_lo = (
                    np.where(below | between, np.where(below, right, left), lo),
                    np.where(below | between, np.where(below, f_right, f_left), f_lo),
                )
                hi, f_hi = (
                    np.where(above | between, np.where(above, left, right), hi),
                    np.where(above | between, np.where(above, f_left, f_right), f_hi),
                )
                kept = np.where(above, -1, np.where(below, 1, kept))
        out[inner] = hi
    return out.reshape(q.shape) if q.ndim else float(out[0])
