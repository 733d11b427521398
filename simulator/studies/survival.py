"""Means of every order statistic of n draws at once, from the survival functions.

For X >= 0, E[X_{k:n}] = ∫_0^∞ P(X_{k:n} > x) dx with P(X_{k:n} > x) = 1 - I_{F(x)}(k, n-k+1)
(David & Nagaraja, "Order Statistics", eq. 2.1.5): each value of F serves every k, so one adaptive
quadrature of a vector gives all n means, where ``theory.order_mean`` integrates each over quantiles.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

from ..latency import Constant, Empirical, LatencyModel
from .theory import _exponential_params, order_mean

# quantile levels of the breakpoints: 1e-12 ... 0.1, 1/2, 0.9 ... 1 - 1e-12, so no part's mass ends
# inside an interval, where quad's nodes, none nearer an end than 0.2% of its width, would not see it
LEVELS = np.array([*(10.0**-j for j in range(12, 0, -1)), 0.5, *(1 - 10.0**-j for j in range(1, 13))])


def order_means(model: LatencyModel, n: int) -> np.ndarray:
    """E[X_{k:n}] for k = 1, ..., n (seconds): ``theory.order_mean`` for each k where it has a closed
    form, a power tail (infinite moments, and mixtures with a power-tailed part: as slow as n calls of
    ``order_mean``) or n = 1; otherwise one quadrature of the survival functions, hundreds of times
    faster for a light-tailed mixture, whose quantiles are found by search (tests hold it to 1e-12 of
    mpmath, and to ``order_mean`` within its error estimate)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"need a whole number of draws n >= 1, got n={n!r}")
    closed = isinstance(model, Constant | Empirical) or _exponential_params(model) is not None
    if closed or math.isfinite(model.tail_index) or n == 1:  # a power tail: Pareto, or a mixture with one
        return np.array([order_mean(model, k, n) for k in range(1, n + 1)])
    k = np.arange(1, n + 1)

    def survival(x: float) -> np.ndarray:
        return special.betaincc(k, n - k + 1, float(model.cdf(x)))

    # breakpoints at quantiles (of each part of a mixture), where the survival functions fall
    cuts = sorted({float(c) for c in model.landmarks(LEVELS)} - {0.0})
    top = float(model.isf(1e-6 / n))  # past it P(X_{n:n} > x) <= n (1 - F(x)) < 1e-6: the rest by itself
    with np.errstate(all="ignore"):
        body, _ = integrate.quad_vec(survival, 0.0, top, epsrel=1e-11, norm="max", points=[c for c in cuts if c < top])
        # the tail's own values are a few ulps of 1 - F: an absolute tolerance, from the body
        tail, _ = integrate.quad_vec(survival, top, math.inf, epsabs=1e-12 * float(body.max()), norm="max")
    return body + tail
