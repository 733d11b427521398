"""Closed forms the simulator must agree with.

X_{k:n} is the k-th smallest of n i.i.d. computation times; H_n = 1 + 1/2 + ... + 1/n.

References:
    David & Nagaraja, "Order Statistics" (3rd ed.), §2.5 (exponential spacings) and eq. 2.1.5;
    Dutta et al. 2018 (arXiv 1803.01113), Table 1 (K-sync = X_{K:P});
    REFERENCES.md in the project's shared notes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats

from simulator.latency import LatencyModel, ScipyLatency


def harmonic(n: int) -> float:
    """H_n = sum_{i=1}^{n} 1/i (H_0 = 0)."""
    return math.fsum(1.0 / i for i in range(1, n + 1))


def exponential_order_mean(k: int, n: int, rate: float, shift: float = 0.0) -> float:
    """E[X_{k:n}] for X ~ shift + Exp(rate): shift + (H_n - H_{n-k}) / rate (seconds)."""
    _check(k, n)
    return shift + (harmonic(n) - harmonic(n - k)) / rate


def exponential_order_var(k: int, n: int, rate: float) -> float:
    """Var[X_{k:n}] for Exp(rate) (a shift does not change it): (1/rate²) Σ_{i=n-k+1}^{n} 1/i²."""
    _check(k, n)
    return math.fsum(1.0 / i**2 for i in range(n - k + 1, n + 1)) / rate**2


def order_mean(model: LatencyModel, k: int, n: int) -> float:
    """E[X_{k:n}] for any latency model, by quadrature over quantiles.

    E[X_{k:n}] = ∫_0^1 F^{-1}(u) · Beta(k, n-k+1).pdf(u) du, which needs only ``ppf``.
    Closed form for (shifted) exponential models.
    """
    _check(k, n)
    closed = _exponential_params(model)
    if closed is not None:
        return exponential_order_mean(k, n, *closed)
    return _quantile_moment(model, k, n, 1)


def _quantile_moment(model: LatencyModel, k: int, n: int, power: int) -> float:
    """E[X_{k:n}^power] = ∫_0^1 F^{-1}(u)^power · Beta(k, n-k+1).pdf(u) du, by quadrature."""
    beta = stats.beta(k, n - k + 1)
    # Split at the Beta mode so quad sees the peak for large n.
    mode = (k - 1) / (n - 1) if n > 1 else 0.5
    points = sorted({0.0, mode, 1.0})
    total = 0.0
    for a, b in zip(points, points[1:], strict=False):
        if b > a:
            value, _ = integrate.quad(lambda u: float(model.ppf(u)) ** power * beta.pdf(u), a, b, limit=400)
            total += value
    return total


def sync_iteration_time(model: LatencyModel, n: int) -> float:
    """Full sync over n workers waits for the slowest: E[X_{n:n}] (seconds)."""
    return order_mean(model, n, n)


def cancel_iteration_time(model: LatencyModel, n: int, backups: int) -> float:
    """Backup workers with ``cancel`` semantics (K-sync): E[X_{N:N+B}] (seconds)."""
    return order_mean(model, n, n + backups)


def async_update_rate(model: LatencyModel, workers: int) -> float:
    """Async SGD with P homogeneous workers applies P / E[X] updates per second."""
    return workers / model.mean


def async_exponential_staleness(workers: int) -> float:
    """Mean staleness of async SGD with P i.i.d. exponential workers: P - 1.

    While a gradient is computed, the other P - 1 workers each finish a memoryless
    Exp(λ) computation at rate λ, over a mean time of 1/λ.
    """
    return workers - 1.0


def _exponential_params(model: LatencyModel) -> tuple[float, float] | None:
    """(rate, shift) if ``model`` is a (shifted) exponential, else None."""
    if isinstance(model, ScipyLatency) and model.spec.family in ("exponential", "shifted-exponential"):
        return model.spec.params["rate"], model.spec.params.get("shift", 0.0)
    return None


def _check(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def order_second_moment(model: LatencyModel, k: int, n: int) -> float:
    """E[X_{k:n}²] by quadrature over quantiles (closed form for the exponential family)."""
    _check(k, n)
    closed = _exponential_params(model)
    if closed is not None:
        rate, shift = closed
        mean = exponential_order_mean(k, n, rate, shift)
        return exponential_order_var(k, n, rate) + mean**2
    return _quantile_moment(model, k, n, 2)


def order_std(model: LatencyModel, k: int, n: int) -> float:
    """Standard deviation of X_{k:n} (seconds)."""
    mean = order_mean(model, k, n)
    return math.sqrt(max(0.0, order_second_moment(model, k, n) - mean**2))


def predict_backups(model: LatencyModel, workers: int, backups: list[int]) -> list[dict]:
    """Iteration time of N-of-(N+B) with cancellation, E and std of X_{N:N+B}, for each B."""
    return [
        {
            "workers": workers,
            "backups": b,
            "mean_iteration_time": order_mean(model, workers, workers + b),
            "std_iteration_time": order_std(model, workers, workers + b),
        }
        for b in backups
    ]


def time_to_target(model: LatencyModel, total: int, iterations: dict[int, float]) -> dict[int, float]:
    """Predicted time to a target at fixed N + B = ``total``: iterations(N) · E[X_{N:total}].

    Args:
        iterations: updates needed to reach the target when averaging N gradients, for the N
            measured (the paper's Figure 5, left).
    Returns:
        {B: predicted seconds} for each N in ``iterations`` (B = total - N).
    """
    return {total - n: its * order_mean(model, n, total) for n, its in iterations.items()}


def dutta_error_bound(
    t,
    *,
    mean_iteration_time: float,
    eta: float,
    lipschitz: float,
    convexity: float,
    noise: float,
    k: int,
    batch: int,
    initial_gap: float,
) -> np.ndarray:
    """Dutta et al. 2018, Theorem 1 (K-sync, strongly convex, L-smooth): error after time t,

    E[F(w_J)] - F* <= ηLσ²/(2cKm) + (1 - ηc)^J (F(w_0) - F* - ηLσ²/(2cKm)), with J = t / E[T].
    """
    floor = eta * lipschitz * noise / (2 * convexity * k * batch)
    j = np.asarray(t, dtype=float) / mean_iteration_time
    return floor + (1 - eta * convexity) ** j * (initial_gap - floor)
