"""Latency models: how long one gradient computation takes, in seconds of simulated time.

Every model is a small object with ``sample(rng, size)`` and exact ``mean``, ``var``,
``cdf`` and ``ppf``, so that tests and figures can put the theoretical curve beside the
simulated one. Families with a ``scipy.stats`` counterpart wrap its frozen distribution.

Sampling is by inverse transform of uniforms drawn row by row: ``sample(rng, n)`` is a
prefix of ``sample(rng, m)`` for ``n < m`` on the same generator state. That is what makes
common random numbers exact: a worker's d-th computation takes the d-th draw of its own
stream however the draws are batched, in every strategy.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

from simulator.errors import InputError
from simulator.spec import Spec, parse_spec


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

    @abstractmethod
    def cdf(self, x):
        """P(X <= x), elementwise."""

    @abstractmethod
    def ppf(self, q):
        """The q-quantile, elementwise (inverse of :meth:`cdf`)."""

    def __str__(self) -> str:
        return str(self.spec)


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
        return float(self.dist.mean())

    @property
    def var(self):
        return float(self.dist.var())

    def cdf(self, x):
        return self.dist.cdf(x)

    def ppf(self, q):
        return self.dist.ppf(q)


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

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return (1 - self.p) * self.base.cdf(x) + self.p * np.vectorize(self._slow_cdf)(x)

    def _slow_cdf(self, x: float) -> float:
        """P(factor * X + D <= x) = E_D[F_X((x - D) / factor)], integrated over D's quantiles."""
        if self.delay is None:
            return float(self.base.cdf(x / self.factor))
        if isinstance(self.delay, Constant):
            return float(self.base.cdf((x - self.delay.value) / self.factor))
        if isinstance(self.base, Constant):
            return float(self.delay.cdf(x - self.factor * self.base.value))
        value, _ = integrate.quad(
            lambda v: float(self.base.cdf((x - float(self.delay.ppf(v))) / self.factor)), 0, 1, limit=200
        )
        return value

    def ppf(self, q):
        return np.vectorize(lambda qq: _invert_cdf(self.cdf, qq))(np.asarray(q, dtype=float))


def _invert_cdf(cdf: Callable, q: float) -> float:
    """Numerical quantile inf{x >= 0: F(x) >= q} of a non-negative distribution, by bisection.

    Bisection rather than a root finder because mixtures with a constant part have atoms,
    where F jumps over q and has no root.
    """
    if q <= 0:
        return 0.0
    if q >= 1:
        return math.inf
    lo, hi = 0.0, 1.0
    while float(cdf(hi)) < q:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if float(cdf(mid)) >= q:
            hi = mid
        else:
            lo = mid
    return hi


# --- the SPEC registry --------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter of a family: its check, and its default (None = required)."""

    check: str  # "positive" | "nonneg" | "real" | "probability" | "factor" | "model"
    default: float | None = None


_CHECKS = {
    "positive": (lambda v: v > 0, "> 0"),
    "nonneg": (lambda v: v >= 0, ">= 0"),
    "real": (lambda v: True, "a number"),
    "probability": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "factor": (lambda v: v >= 1, ">= 1"),
}


def _scipy(make):
    return lambda spec, **kw: ScipyLatency(make(**kw), spec)


FAMILIES: dict[str, tuple[dict[str, Param], Callable[..., LatencyModel]]] = {
    "constant": ({"value": Param("positive")}, lambda spec, value: Constant(value, spec)),
    "exponential": ({"rate": Param("positive")}, _scipy(lambda rate: stats.expon(scale=1 / rate))),
    "shifted-exponential": (
        {"shift": Param("nonneg"), "rate": Param("positive")},
        _scipy(lambda shift, rate: stats.expon(loc=shift, scale=1 / rate)),
    ),
    "lognormal": (
        {"mu": Param("real"), "sigma": Param("positive")},
        _scipy(lambda mu, sigma: stats.lognorm(s=sigma, scale=math.exp(mu))),
    ),
    "gamma": (
        {"shape": Param("positive"), "scale": Param("positive")},
        _scipy(lambda shape, scale: stats.gamma(a=shape, scale=scale)),
    ),
    "weibull": (
        {"shape": Param("positive"), "scale": Param("positive")},
        _scipy(lambda shape, scale: stats.weibull_min(c=shape, scale=scale)),
    ),
    "pareto": (
        {"alpha": Param("positive"), "scale": Param("positive")},
        _scipy(lambda alpha, scale: stats.pareto(b=alpha, scale=scale)),
    ),
    "straggler": (
        {
            "base": Param("model"),
            "p": Param("probability"),
            "factor": Param("factor", default=1.0),
            "delay": Param("model", default=0.0),
        },
        lambda spec, base, p, factor, delay: Straggler(base, p, factor, delay or None, spec),
    ),
}


def parse_latency(text: str, *, what: str = "--latency") -> LatencyModel:
    """Build a latency model from a SPEC string such as ``exponential:rate=1``.

    Raises:
        InputError: unknown family, missing or unknown parameter, value out of range.
    """
    family = text.partition(":")[0].strip()
    if family in ("trace", "empirical"):
        raise InputError(
            f"{what} {text!r}: latency family {family!r} replays a measured trace; "
            f"trace replay is not part of this build (known: {', '.join(FAMILIES)})"
        )
    if family and family not in FAMILIES:
        raise InputError(f"{what} {text!r}: unknown latency family {family!r} (known: {', '.join(FAMILIES)})")
    return build_latency(parse_spec(text, what=what), text, what)


def build_latency(spec: Spec, text: str, what: str) -> LatencyModel:
    if spec.family not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise InputError(f"{what} {text!r}: unknown latency family {spec.family!r} (known: {known})")
    params, build = FAMILIES[spec.family]
    where = f"{what} {text!r}: {spec.family}"
    unknown = [k for k in spec.params if k not in params]
    if unknown:
        raise InputError(f"{where}: unknown parameter {unknown[0]!r} (expected: {', '.join(params)})")
    values = {}
    for name, param in params.items():
        if name not in spec.params:
            if param.default is None:
                raise InputError(f"{where}: missing parameter {name!r} (expected: {', '.join(params)})")
            values[name] = param.default
            continue
        raw = spec.params[name]
        if param.check == "model":
            if not isinstance(raw, Spec):
                raise InputError(f"{where}: parameter {name!r} must be a model such as exponential(rate=1)")
            values[name] = build_latency(raw, text, what)
            continue
        if isinstance(raw, Spec):
            raise InputError(f"{where}: parameter {name!r} must be a number, got {raw.nested()!r}")
        ok, expected = _CHECKS[param.check]
        if not ok(raw):
            raise InputError(f"{where}: parameter {name!r} must be {expected}, got {raw:g}")
        values[name] = raw
    if spec.family == "straggler" and values["factor"] == 1 and not values["delay"]:
        raise InputError(f"{where}: give a slowdown 'factor' > 1 or an extra 'delay' model (or both)")
    return build(spec, **values)
