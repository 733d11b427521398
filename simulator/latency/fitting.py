"""Fitting latency models to measured durations by maximum likelihood (scipy.stats).

Every candidate family is fitted, ranked by AIC = 2k - 2 log L, with the Kolmogorov-Smirnov
statistic beside. Heavy tails matter most for stragglers, so a body + tail mixture (the
``straggler`` family over the best single family: with probability p a computation takes
``factor`` times longer) is fitted too, and the report says whether it wins: it must lower
the AIC by more than 10 (Burnham & Anderson's "essentially no support" for the loser),
since its two extra parameters always buy a little likelihood.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

from ..io.errors import InputError
from ..io.spec import format_number
from . import LatencyModel, parse_latency


@dataclass(frozen=True)
class Fit:
    """One fitted family: its parameters, a SPEC that ``--latency`` accepts, and its scores."""

    family: str
    params: dict[str, float]
    spec: str
    log_likelihood: float
    aic: float
    ks: float

    def model(self) -> LatencyModel:
        return parse_latency(self.spec)


def _spec(family: str, params: dict[str, float]) -> str:
    return f"{family}:" + ",".join(f"{k}={format_number(round_sig(v))}" for k, v in params.items())


def round_sig(x: float, digits: int = 10) -> float:
    """Round to ``digits`` significant figures (keeps SPEC strings short and exact to parse)."""
    return float(f"{x:.{digits}g}")


MIXTURE_MARGIN = 10.0  # AIC points the body + tail mixture must gain to be preferred


# family -> (maximum-likelihood fit returning SPEC parameters, number of free parameters)
def _fit_exponential(x):
    _, scale = stats.expon.fit(x, floc=0)
    return {"rate": 1 / scale}


def _fit_shifted_exponential(x):
    loc, scale = stats.expon.fit(x)  # MLE: shift = min(x), 1/rate = mean - min
    return {"shift": loc, "rate": 1 / scale}


def _fit_lognormal(x):
    s, _, scale = stats.lognorm.fit(x, floc=0)
    return {"mu": math.log(scale), "sigma": s}


def _fit_gamma(x):
    a, _, scale = stats.gamma.fit(x, floc=0)
    return {"shape": a, "scale": scale}


def _fit_weibull(x):
    c, _, scale = stats.weibull_min.fit(x, floc=0)
    return {"shape": c, "scale": scale}


def _fit_pareto(x):
    b, _, scale = stats.pareto.fit(x, floc=0)
    return {"alpha": b, "scale": scale}


FITTERS = {
    "exponential": (_fit_exponential, 1),
    "shifted-exponential": (_fit_shifted_exponential, 2),
    "lognormal": (_fit_lognormal, 2),
    "gamma": (_fit_gamma, 2),
    "weibull": (_fit_weibull, 2),
    "pareto": (_fit_pareto, 2),
}


def _score(family: str, params: dict[str, float], k: int, x: np.ndarray, loglik: float | None = None) -> Fit:
    spec = _spec(family, params)
    model = parse_latency(spec)
    if loglik is None:
        with np.errstate(divide="ignore"):
            loglik = float(np.sum(model.dist.logpdf(x)))
    ks = float(stats.kstest(x, model.cdf).statistic)
    aic = 2 * k - 2 * loglik if math.isfinite(loglik) else math.inf
    return Fit(family, params, spec, loglik, aic, ks)


def fit_single(x: np.ndarray) -> list[Fit]:
    """Every single family, best (lowest AIC) first. Families whose fit fails are left out."""
    fits = []
    for family, (fitter, k) in FITTERS.items():
        try:
            with np.errstate(all="ignore"):
                params = fitter(x)
            if all(math.isfinite(v) and v != 0 for k_, v in params.items() if k_ != "mu") and params:
                fits.append(_score(family, params, k, x))
        except (ValueError, RuntimeError, FloatingPointError, ZeroDivisionError, InputError):
            continue
    return sorted(fits, key=lambda f: f.aic)


def fit_mixture(x: np.ndarray, base: Fit) -> Fit | None:
    """Body + tail: ``straggler:base=BASE,p=P,factor=S`` by maximum likelihood over (p, S) and
    the base's parameters, starting from the base fit and a tail at the 95th percentile."""
    if base.family not in ("lognormal", "gamma", "weibull", "exponential"):
        return None
    names = list(base.params)
    start = [base.params[n] for n in names]

    def unpack(theta):
        values = dict(zip(names, theta[: len(names)], strict=True))
        p = 1 / (1 + math.exp(-theta[-2]))
        factor = 1 + math.exp(theta[-1])
        return values, p, factor

    def nll(theta):
        values, p, factor = unpack(theta)
        if any(v <= 0 for n, v in values.items() if n != "mu"):
            return math.inf
        try:
            dist = parse_latency(_spec(base.family, values)).dist
        except InputError:
            return math.inf
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            dens = (1 - p) * dist.pdf(x) + p * dist.pdf(x / factor) / factor
            value = -np.sum(np.log(dens))
        return value if np.isfinite(value) else math.inf

    tail_ratio = max(1.5, float(np.quantile(x, 0.99) / np.median(x)))
    theta0 = np.array([*start, math.log(0.05 / 0.95), math.log(tail_ratio - 1)])
    result = optimize.minimize(
        nll, theta0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-8}
    )
    if not np.isfinite(result.fun):
        return None
    values, p, factor = unpack(result.x)
    base_spec = _spec(base.family, values)[len(base.family) + 1 :]
    p, factor = round_sig(p), round_sig(factor)
    spec = f"straggler:base={base.family}({base_spec}),p={format_number(p)},factor={format_number(factor)}"
    model = parse_latency(spec)
    loglik = -float(result.fun)
    k = len(names) + 2
    params = {**{f"base_{n}": v for n, v in values.items()}, "p": p, "factor": factor}
    return Fit("straggler", params, spec, loglik, 2 * k - 2 * loglik, float(stats.kstest(x, model.cdf).statistic))


def fit_durations(x: np.ndarray) -> dict:
    """Fit every family and the mixture; the report that ``fit.json`` holds.

    Raises:
        InputError: fewer than 10 durations, or non-positive ones.
    """
    x = np.asarray(x, dtype=float)
    if len(x) < 10:
        raise InputError(f"fitting needs at least 10 durations, got {len(x)}")
    if not np.all(np.isfinite(x) & (x > 0)):
        raise InputError("fitting needs finite durations > 0")
    if np.all(x == x[0]):
        return _constant_report(x)
    singles = fit_single(x)
    if not singles:
        raise InputError("no family could be fitted to these durations")
    mixture = fit_mixture(x, singles[0])
    candidates = sorted([*singles, *([mixture] if mixture else [])], key=lambda f: f.aic)
    mixture_wins = mixture is not None and mixture.aic < singles[0].aic - MIXTURE_MARGIN
    return {
        "n": int(len(x)),
        "mean": float(x.mean()),
        "best": asdict(mixture if mixture_wins else singles[0]),
        "best_single": asdict(singles[0]),
        "mixture": asdict(mixture) if mixture else None,
        "mixture_wins": bool(mixture_wins),
        "mixture_margin": MIXTURE_MARGIN,
        "candidates": [asdict(f) for f in candidates],
    }


def _constant_report(x: np.ndarray) -> dict:
    """All durations equal: ``constant`` fits exactly (a point mass: likelihood 1, KS 0); the
    continuous families have no maximum-likelihood fit to a single value and are skipped."""
    value = round_sig(float(x[0]))
    fit = asdict(Fit("constant", {"value": value}, _spec("constant", {"value": value}), 0.0, 2.0, 0.0))
    return {
        "n": int(len(x)),
        "mean": float(x.mean()),
        "best": fit,
        "best_single": fit,
        "mixture": None,
        "mixture_wins": False,
        "mixture_margin": MIXTURE_MARGIN,
        "candidates": [fit],
        "note": f"every duration is {format_number(value)} s: the constant family fits; the others are skipped",
    }
