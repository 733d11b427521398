"""The parametric latency families and their base class (see the package docstring: sampling by
inverse transform of uniforms, so that draws are prefix-stable and common random numbers exact)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from scipy import integrate

from ..durations import DurationStream
from ..spec import Spec


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
        return (1 - self.p) * self.base.cdf(x) + self.p * self._slow_cdf(x)

    def _slow_cdf(self, x: np.ndarray) -> np.ndarray:
        """P(factor * X + D <= x) = E_D[F_X((x - D) / factor)], elementwise."""
        if self.delay is None:
            return self.base.cdf(x / self.factor)
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


def _invert_cdf(cdf: Callable, q):
    """Numerical quantiles inf{x >= 0: F(x) >= q} of a non-negative distribution, by
    vectorised bisection (not a root finder: mixtures with a constant part have atoms, where
    F jumps over q and has no root)."""
    q = np.asarray(q, dtype=float)
    flat = q.reshape(-1)
    out = np.full(flat.shape, np.inf)
    out[flat <= 0] = 0.0
    inner = (flat > 0) & (flat < 1)
    target = flat[inner]
    if target.size:
        lo, hi = np.zeros_like(target), np.ones_like(target)
        for _ in range(1100):  # doubling until F(hi) >= q
            short = cdf(hi) < target
            if not short.any():
                break
            lo, hi = np.where(short, hi, lo), np.where(short, hi * 2.0, hi)
        for _ in range(200):
            if np.all(hi - lo <= 1e-12 * np.maximum(1.0, hi)):
                break
            mid = 0.5 * (lo + hi)
            above = cdf(mid) >= target
            lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
        out[inner] = hi
    return out.reshape(q.shape) if q.ndim else float(out[0])
