"""Closed forms the simulator must agree with.

X_{k:n} is the k-th smallest of n i.i.d. computation times; H_n = 1 + 1/2 + ... + 1/n.

References:
    David & Nagaraja, "Order Statistics" (3rd ed.), §2.5 (exponential spacings) and eq. 2.1.5;
    Dutta et al. 2018 (arXiv 1803.01113), Table 1 (K-sync = X_{K:P});
    REFERENCES.md in the project's shared notes.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special, stats

from ..latency import Constant, Empirical, LatencyModel, ScipyLatency

EXACT_TERMS = 1_000_000  # longer sums take their closed forms in digamma, trigamma and log-gamma


def harmonic(n: int) -> float:
    """H_n = sum_{i=1}^{n} 1/i (H_0 = 0); for n > EXACT_TERMS, ψ(n+1) + γ."""
    if n > EXACT_TERMS:
        return float(special.digamma(n + 1)) + float(np.euler_gamma)
    return math.fsum(1.0 / i for i in range(1, n + 1))


def exponential_order_mean(k: int, n: int, rate: float, shift: float = 0.0) -> float:
    """E[X_{k:n}] for X ~ shift + Exp(rate): shift + (H_n - H_{n-k}) / rate (seconds)."""
    _check(k, n)
    if k > EXACT_TERMS:
        return shift + (harmonic(n) - harmonic(n - k)) / rate
    # Σ_{i=n-k+1}^{n} 1/i term by term: H_n - H_{n-k} cancels all but k/n of H_n ≈ ln n (0.2% off at k=1, n=1e12)
    return shift + math.fsum(1.0 / i for i in range(n - k + 1, n + 1)) / rate


def exponential_order_var(k: int, n: int, rate: float) -> float:
    """Var[X_{k:n}] for Exp(rate) (a shift does not change it): (1/rate²) Σ_{i=n-k+1}^{n} 1/i²."""
    _check(k, n)
    if k > EXACT_TERMS:  # Σ_{i=a}^{n} 1/i² = ψ'(a) - ψ'(n+1)
        return float(special.polygamma(1, n - k + 1) - special.polygamma(1, n + 1)) / rate**2
    return math.fsum(1.0 / i**2 for i in range(n - k + 1, n + 1)) / rate**2


def order_mean(model: LatencyModel, k: int, n: int) -> float:
    """E[X_{k:n}] for any latency model (seconds; ``inf`` where it does not exist).

    Closed forms for (shifted) exponential and Pareto models; otherwise quadrature over
    quantiles, E[X_{k:n}] = ∫_0^1 F^{-1}(u) · Beta(k, n-k+1).pdf(u) du, which needs only ``ppf``.
    """
    return order_moments(model, k, n, with_std=False).mean


@dataclass(frozen=True)
class OrderMoments:
    """Mean and standard deviation of X_{k:n} (seconds), with what is known of their accuracy.

    Attributes:
        mean, std: ``inf`` where the moment does not exist (a heavy tail).
        mean_error, std_error: absolute error estimates (0 for closed forms; ``nan`` where
            the moment is infinite).
        method: ``closed form`` or ``quadrature``.
        notes: one line per moment that is infinite or whose numerical error is large.
    """

    mean: float
    std: float
    mean_error: float
    std_error: float
    method: str
    notes: tuple[str, ...] = ()


LARGE_ERROR = 1e-4  # relative error estimate above which a quadrature result says so
LN10 = math.log(10.0)
LOG_MAX = math.log(sys.float_info.max)  # exp of more overflows
SPIKE = (1e-40, 1e-10, 1e-3, 0.1, 0.5)  # tail masses of the Beta weight: split points past SPIKE_N draws
SPIKE_N = 1_000  # up to here quad finds the Beta weight in the halves by itself (to 1e-12 for Exp)


def order_moments(model: LatencyModel, k: int, n: int, *, with_std: bool = True) -> OrderMoments:
    """E and std of X_{k:n}: closed forms where they exist, else quadrature with an error
    estimate; an infinite moment (a heavy tail) is ``inf``, and ``notes`` says why. Without
    ``with_std`` the std is not computed by quadrature (``nan``).

    X_{k:n} has the tail P(X_{k:n} > x) ~ C(n, n-k+1) P(X > x)^{n-k+1}, so with a tail of index
    α its p-th moment is finite exactly when (n-k+1)·α > p.

    References:
        David & Nagaraja, "Order Statistics" (3rd ed.), §2.5 and §3.1 (moments of the
        exponential and Pareto order statistics).
    """
    _check(k, n)
    alpha = model.tail_index
    mean_ok, second_ok = (n - k + 1) * alpha > 1, (n - k + 1) * alpha > 2
    notes = []
    what = _order_statistic_words(model, k, n)
    tail = f"its survival function falls like x^(-{(n - k + 1) * alpha:g})"
    if not mean_ok:
        notes.append(f"{what} has no finite mean or variance: {tail}, and a finite mean needs an exponent above 1")
    elif not second_ok:
        notes.append(f"{what} has no finite variance: {tail}, and a finite variance needs an exponent above 2")
    if isinstance(model, Constant):
        return OrderMoments(model.value, 0.0, 0.0, 0.0, "closed form")
    closed = _exponential_params(model)
    if closed is not None:
        rate, shift = closed
        mean, var = exponential_order_mean(k, n, rate, shift), exponential_order_var(k, n, rate)
        return OrderMoments(mean, math.sqrt(var), 0.0, 0.0, "closed form")
    if isinstance(model, ScipyLatency) and model.spec.family == "pareto":
        scale = model.spec.params["scale"]
        mean = pareto_order_moment(k, n, alpha, scale, 1) if mean_ok else math.inf
        std = mean * math.sqrt(_pareto_relative_variance(k, n, alpha)) if second_ok else math.inf
        std = math.nan if second_ok and math.isinf(std) else std  # a finite product past the doubles
        for name, value in (("mean", mean), ("std", std)):
            if math.isnan(value):
                notes.append(f"the {name} of {what} is finite but could not be computed in double precision")
        errors = [0.0 if math.isfinite(value) else math.nan for value in (mean, std)]
        return OrderMoments(mean, std, *errors, "closed form", tuple(notes))
    if isinstance(model, Empirical):
        mean, var = _discrete_order_moments(model.sorted, k, n)
        return OrderMoments(mean, math.sqrt(var), 0.0, 0.0, "closed form")
    mean, mean_error = _quantile_moment(model, k, n, 1) if mean_ok else (math.inf, math.nan)
    if not with_std or not math.isfinite(mean):
        std, std_error = (math.nan, math.nan) if mean_ok else (math.inf, math.nan)
    elif second_ok:
        var, var_error = _quantile_moment(model, k, n, 2, center=mean)
        std = math.sqrt(max(0.0, var)) if math.isfinite(var) else math.nan
        std_error = var_error / (2 * std) if std > 0 else math.sqrt(var_error)
    else:
        std, std_error = math.inf, math.nan
    for name, value, error, ok in (
        ("mean", mean, mean_error, mean_ok),
        ("std", std, std_error, second_ok and with_std),
    ):
        if ok and not math.isfinite(value):
            notes.append(f"the {name} of {what} is finite but could not be computed in double precision")
        elif ok and error > LARGE_ERROR * max(abs(value), 1e-300):
            share = f"{100 * error / abs(value):.2g}%"
            notes.append(f"the quadrature error estimate of the {name} of {what} is ±{error:.3g} s ({share})")
    if mean_ok and not math.isfinite(mean):
        mean, mean_error = math.nan, math.nan
    return OrderMoments(mean, std, mean_error, std_error, "quadrature", tuple(notes))


def _discrete_order_moments(values: np.ndarray, k: int, n: int) -> tuple[float, float]:
    """Exact mean and variance of X_{k:n} for the empirical distribution of sorted ``values``:
    X_{k:n} is the i-th value with probability I_{i/m}(k, n-k+1) - I_{(i-1)/m}(k, n-k+1)."""
    m = len(values)
    grid = np.arange(m + 1) / m
    below, above = stats.beta.cdf(grid, k, n - k + 1), stats.beta.sf(grid, k, n - k + 1)
    # the lower tail's differences from the CDF, the upper tail's from the survival function: a
    # difference of two CDF values near 1 loses the digits of a tiny weight (1 - (1 - 0.2^14))
    weights = np.where(below[1:] <= 0.5, np.diff(below), -np.diff(above))
    mean = float(np.dot(weights, values))
    return mean, float(np.dot(weights, (values - mean) ** 2))


def pareto_order_moment(k: int, n: int, alpha: float, scale: float, power: int) -> float:
    """E[X_{k:n}^p] for X ~ Pareto(alpha, scale), finite when (n-k+1)·alpha > p (``nan``: finite, but
    beyond the largest double):

    scale^p · Γ(n+1) Γ(n-k+1-p/α) / (Γ(n-k+1) Γ(n+1-p/α)) = scale^p · Π_{j=n-k+1}^{n} j / (j - p/α).
    """
    _check(k, n)
    if (n - k + 1) * alpha <= power:
        return math.inf
    r = power / alpha
    if k > EXACT_TERMS:  # Pochhammer symbols (a)_r = Γ(a + r) / Γ(a), accurate for large a, while they fit
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = float(special.poch(n + 1 - r, r) / special.poch(n - k + 1 - r, r))
        if math.isfinite(ratio):
            return scale**power * ratio
    log = _log_product(n - k + 1, n, r, lambda j: -math.log1p(-r / j), lambda i: 1 / i)
    return scale**power * math.exp(log) if log < LOG_MAX else math.nan


def _pareto_relative_variance(k: int, n: int, alpha: float) -> float:
    """Var[X_{k:n}] / E[X_{k:n}]² for X ~ Pareto(alpha), finite when (n-k+1)·alpha > 2: with r = 1/alpha,

    Π_{j=n-k+1}^{n} (j-r)² / (j(j-2r)) - 1 = expm1(Σ_j log1p(r² / (j(j-2r)))),

    not E[X²] / E[X]² - 1, whose subtraction keeps only ~r² k / (n (n-k+1)) of the digits (none of
    them for k = 1, n = 1e8).
    """
    r = 1.0 / alpha
    log = _log_product(n - k + 1, n, r, lambda j: math.log1p(r * r / (j * (j - 2 * r))), lambda i: (2.0**i - 2) / i)
    return math.expm1(log) if log < LOG_MAX else math.nan


def _log_product(a: int, n: int, r: float, term: Callable[[int], float], coefficient: Callable[[int], float]) -> float:
    """Σ_{j=a}^{n} term(j), for a term(j) = Σ_{i≥1} coefficient(i) (r/j)^i (j > 2r): one by one up to
    EXACT_TERMS terms; past that, those from m = max(a, 40r) on by the series, summed over j in
    ψ(n+1) - ψ(m) (i = 1) and Hurwitz zeta functions ζ(i, m) - ζ(i, n+1). ``nan`` where more than
    EXACT_TERMS terms lie below 40r (a tail index below ~1e-4, whose moments exceed the doubles).
    """
    if n - a < EXACT_TERMS:
        return math.fsum(term(j) for j in range(a, n + 1))
    m = min(max(a, math.ceil(40 * r)), n + 1)
    if m - a > EXACT_TERMS:
        return math.nan
    parts = [term(j) for j in range(a, m)]
    for i in range(1, 60):  # each (r/j)^i at most 1/40 of the one before
        c = coefficient(i)
        sum_j = special.digamma(n + 1) - special.digamma(m) if i == 1 else special.zeta(i, m) - special.zeta(i, n + 1)
        if c == 0 or sum_j <= 0:  # no such power, or no j left (m = n + 1)
            continue
        parts.append(c * math.exp(i * math.log(r) + math.log(float(sum_j))))  # (r^i overflows past r ~ 1e19)
        if abs(parts[-1]) <= 1e-18 * abs(parts[m - a]):  # the first of the series
            break
    return math.fsum(parts)


def _order_statistic_words(model: LatencyModel, k: int, n: int) -> str:
    """``the maximum of 10 pareto:alpha=0.8,scale=1 draws``, ``the 3rd smallest of ...``."""
    if n == 1:
        return f"a single {model} draw"
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    which = "the maximum" if k == n else "the minimum" if k == 1 else f"the {k}{suffix} smallest"
    return f"{which} of {n} {model} draws"


def _quantile_moment(model: LatencyModel, k: int, n: int, power: int, center: float = 0.0) -> tuple[float, float]:
    """E[(X_{k:n} - center)^power] by quadrature over quantiles; returns (value, absolute
    error estimate).

    ∫_0^1 (F^{-1}(u) - c)^p Beta(k, n-k+1).pdf(u) du: the lower half in u; the upper half in
    t = -log10(1 - u), from the exact upper quantiles (``isf``) down to 1 - u = 1e-300, so a long
    tail's climb is spread over decades instead of crowded against u = 1. Both halves are split
    at the Beta mode and the upper one at decades; quad's warnings give way to its error
    estimate.
    """

    lower_pdf, upper_beta = stats.beta(k, n - k + 1).pdf, stats.beta(n - k + 1, k)  # the latter in s = 1 - u

    def lower(u: float) -> float:
        return float(np.float64(float(model.ppf(u)) - center) ** power) * lower_pdf(u)

    def upper(t: float) -> float:  # s = 10^-t; in logs, so a huge quantile times a tiny s stays finite
        s = 10.0**-t
        x = float(model.isf(s)) - center
        if x == 0:
            return 0.0
        sign = -1.0 if x < 0 and power % 2 else 1.0
        weight = float(upper_beta.pdf(s))  # its logpdf is off by ~1e-9 for n ~ 1e6: only where pdf underflows
        log_weight = math.log(weight) if 0 < weight < math.inf else float(upper_beta.logpdf(s))
        return sign * math.exp(power * math.log(abs(x)) + log_weight + math.log(s) + math.log(LN10))

    mode = (k - 1) / (n - 1) if n > 1 else 0.5
    # The lower half in u, split at the Beta mode; the upper half in t = -log10(1 - u), from
    # u = 1/2 down to 1 - u = 1e-300 where ``isf`` is exact, else 1e-15 (1 - u still exact).
    # Above SPIKE_N both are also split at quantiles of the Beta weight: for large n it is a
    # spike far narrower than a half, which quad's first nodes would step over (0 ± 0).
    deepest = 300 if type(model).isf is not LatencyModel.isf else 15
    masses = SPIKE if n > SPIKE_N else ()
    weight = stats.beta(k, n - k + 1)
    spike = [float(u) for u in (*weight.ppf(masses), *weight.isf(masses)) if 0 < u < 0.5]
    pieces = [(lower, sorted({0.0, 0.5, *([mode] if 0 < mode < 0.5 else []), *spike}))]
    cut = -math.log10(1 - mode) if 0.5 < mode < 1 else None
    decades = [t for t in (math.log10(2), 2, 5, 10, 15, 30, 100, 300) if t <= deepest]
    spike = [-math.log10(s) for s in (*upper_beta.ppf(masses), *upper_beta.isf(masses)) if 10.0**-deepest < s < 0.5]
    pieces.append((upper, sorted({*decades, *([cut] if cut and cut < deepest else []), *spike})))
    total, error = 0.0, 0.0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        for f, points in pieces:
            for a, b in zip(points, points[1:], strict=False):
                try:
                    value, abserr, *_ = integrate.quad(f, a, b, limit=200, full_output=1)
                except OverflowError:
                    value, abserr = math.inf, math.inf
                total += value
                error += abserr
        if deepest < 300:  # what lies beyond: the integrand's last value times the mass left, and for a
            # tail of index α, whose quantiles climb like s^(-1/α), times aα / (aα - p) (a = n-k+1)
            s, a, alpha = 10.0**-deepest, n - k + 1, model.tail_index
            beyond = abs(float(model.isf(s)) - center) ** power * float(upper_beta.cdf(s))
            climb = 1.0 if math.isinf(alpha) else a * alpha / (a * alpha - power) if a * alpha > power else math.inf
            error += beyond * climb
    return total, error


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


def order_std(model: LatencyModel, k: int, n: int) -> float:
    """Standard deviation of X_{k:n} (seconds; ``inf`` where it does not exist)."""
    return order_moments(model, k, n).std


def predict_backups(model: LatencyModel, workers: int, backups: list[int]) -> list[dict]:
    """Iteration time of N-of-(N+B) with cancellation, E and std of X_{N:N+B}, for each B.

    Each row says whether each moment is finite (an infinite one is ``None``, and so is a finite
    one too large for double precision), its absolute error estimate, how it was computed and,
    in ``notes``, why a number is missing or rough.
    """

    def number(x: float) -> float | None:
        return x if math.isfinite(x) else None

    rows = []
    for b in backups:
        m = order_moments(model, workers, workers + b)
        rows.append(
            {
                "workers": workers,
                "backups": b,
                "mean_iteration_time": number(m.mean),
                "std_iteration_time": number(m.std),
                "mean_finite": not math.isinf(m.mean),  # nan: finite, but beyond double precision
                "std_finite": not math.isinf(m.std),
                "mean_error": number(m.mean_error) if math.isfinite(m.mean) else None,
                "std_error": number(m.std_error) if math.isfinite(m.std) else None,
                "method": m.method,
                "notes": list(m.notes),
            }
        )
    return rows


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
