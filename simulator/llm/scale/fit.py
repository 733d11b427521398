"""A generative model of a job's op durations, fitted from its op-level trace.

For each op type and stage that computes (not communication, as ``trace.COMMUNICATION`` says), the
duration of slot ``s`` in step ``t`` on DP rank ``w`` is

    d[s, t, w] = base[s] * exp(a[w] + c[t] + u[t, w] + n[s, t, w])

  - ``base[s]``: the slot's median over the steps and the healthy workers' DP ranks (this keeps the
    stage imbalance and each micro-batch's own length);
  - ``a[w]``: the worker's persistent factor (the median of its log-ratios). A worker (DP rank,
    stage) is *slow* where some op type's factor is at least ``SLOW_MIN`` (5%) and ``SLOW_Z`` robust
    standard deviations above its peers; the slow ones are a share ``pi`` of the workers (Jeffreys
    interval) with their observed factor vectors; the others' factors are normal, sd ``sigma_worker``
    per op type (pooled over stages: a stage has few DP ranks);
  - ``c[t] + u[t, w]``: the step's mean log-ratio over the slots (less the noise that mean carries),
    split into a part common to the stage's DP ranks (normal, sd ``sigma_step``) and the worker's own
    (normal, sd ``sigma_step_worker``), estimated as
    a one-way random-effects model. Transient *episodes* are ``u`` at least ``SLOW_MIN`` and
    ``EPISODE_Z`` robust sds out: they start with probability ``episode_start`` per worker-step
    (Jeffreys interval), last ``episode_length`` steps on average (geometric) and have the observed
    magnitudes;
  - ``n``: the remaining noise, exp(n) fitted by the latency families (``latency.fitting.fit_single``,
    the lowest AIC), with the Kolmogorov-Smirnov statistic beside.

Communication ops (their transfer times, end minus the group's latest start) and ops too short to
model are drawn from their measured values: a source step per synthetic step for the whole job
(slow steps stay slow everywhere) and a source DP rank per synthetic worker (a slow link stays slow).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ...latency.fitting import fit_single
from ..trace import COMMUNICATION, OpTrace

FLOOR = 1e-5  # seconds: a slot whose median is shorter is drawn from its measured values, not modelled
SLOW_MIN = 0.05  # a persistent factor or an episode is at least 5% above the peers
SLOW_Z = 4.0  # and this many robust standard deviations (a normal passes it once in 30,000)
EPISODE_Z = 4.0
FIT_SAMPLE = 5000  # the families are fitted to at most this many noise values (the KS statistic uses all)
LEVEL = 0.95


@dataclass(frozen=True)
class KeyModel:
    """One op type on one stage of the trace."""

    optype: str
    stage: int
    slots: np.ndarray  # the trace slots modelled (median at least FLOOR)
    base: np.ndarray  # [slots] seconds
    sigma_step: float
    sigma_step_worker: float
    episode_start: float  # per worker-step
    episode_length: float  # steps, mean
    episodes: int
    magnitudes: np.ndarray  # log-factors of the episodes' steps
    noise: object  # a latency Fit of exp(n), or None: resample the observed ratios
    noise_ratios: np.ndarray  # observed exp(n), for resampling where no family fits
    report: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobModel:
    """A trace's fitted model: per (op type, stage) parts, the slow workers, the measured transfers."""

    trace: OpTrace  # the trace fitted (its DP ranks restricted to the fitted ones)
    keys: dict  # (optype, stage) -> KeyModel
    sigma_worker: dict  # optype -> sd of the healthy workers' log-factors
    slow: list  # per slow worker: {optype: log-factor}
    workers: int  # workers fitted
    own: np.ndarray  # [slot, step, dp] the measured own time: duration, or transfer for communication
    report: dict


def fit(trace: OpTrace, own: np.ndarray) -> JobModel:
    """Fit ``trace``; ``own`` [slot, step, dp] is each op's own time (its duration, or its transfer time
    for communication ops, from ``replay.measured``)."""
    slots = trace.slots
    comm = slots["optype"].isin(COMMUNICATION).to_numpy()
    median = np.median(trace.duration, axis=(1, 2))
    keys_of = {}
    for (optype, stage), idx in slots[~comm].groupby(["optype", "stage"], sort=True).groups.items():
        chosen = idx.to_numpy()[median[idx.to_numpy()] >= FLOOR]
        if len(chosen):
            keys_of[(optype, int(stage))] = chosen
    d = trace.duration
    # Pass 1: persistent factors against all DP ranks, to find the slow workers.
    factors = {k: _factors(d[s], np.ones(trace.meta.dp_size, bool)) for k, s in keys_of.items()}
    slow_cells = _slow_workers(factors)
    healthy = {k: ~np.isin(np.arange(trace.meta.dp_size), [w for (s, w) in slow_cells if s == k[1]]) for k in keys_of}
    # Pass 2: bases from the healthy workers; factors against them.
    healthy = {k: h if h.any() else np.ones_like(h) for k, h in healthy.items()}  # no healthy peer: all
    factors = {k: _factors(d[s], healthy[k]) for k, s in keys_of.items()}
    slow = [{k[0]: float(factors[k][w]) for k in keys_of if k[1] == stage} for stage, w in sorted(slow_cells)]
    keys = {k: _key(k, s, d[s], factors[k], healthy[k]) for k, s in keys_of.items()}
    sigma_worker, worker_report = {}, {}
    for optype in sorted({k[0] for k in keys_of}):
        values = np.concatenate([factors[k][healthy[k]] for k in keys_of if k[0] == optype])
        # A factor is a median over the steps, with a sampling variance of its own that is not the workers'
        # spread: a quarter of the squared difference between the factors of the odd and the even steps.
        halves = [(_factors(d[s][:, 0::2], healthy[k]) - _factors(d[s][:, 1::2], healthy[k]))[healthy[k]]
                  for k, s in keys_of.items() if k[0] == optype and d.shape[1] > 1]  # fmt: skip
        sampling = float(np.mean(np.concatenate(halves) ** 2) / 4) if halves else 0.0
        raw = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        sigma_worker[optype] = float(np.sqrt(max(raw**2 - sampling, 0.0)))
        interval = _sd_interval(raw, len(values) - 1)
        worker_report[optype] = {
            "sigma": sigma_worker[optype],
            "sigma_interval": _less(interval, sampling),
            "ks_normal": _ks_normal(values, raw),
            "workers": len(values),
        }
    n_workers = trace.meta.dp_size * trace.meta.pp_size
    modelled = np.zeros(len(slots), bool)
    for s in keys_of.values():
        modelled[s] = True
    report = {
        "workers": n_workers,
        "slow_workers": [
            {"stage": int(s), "dp_rank": int(w), "factors": {o: float(np.exp(v)) for o, v in f.items()}}
            for (s, w), f in zip(sorted(slow_cells), slow, strict=True)
        ],
        "slow_share": len(slow) / n_workers,
        "slow_share_interval": _jeffreys(len(slow), n_workers),
        "healthy_workers": worker_report,
        "op_types": [keys[k].report for k in sorted(keys)],
        "drawn_from_measured": sorted({str(o) for o in slots.optype[~modelled]}),
    }
    return JobModel(trace, keys, sigma_worker, slow, n_workers, own, report)


def _factors(x: np.ndarray, healthy: np.ndarray) -> np.ndarray:
    """[dp] each DP rank's median log-ratio to the slots' medians over the ``healthy`` ranks."""
    return np.median(_log_ratio(x, healthy), axis=(0, 1))


def _log_ratio(x: np.ndarray, healthy: np.ndarray) -> np.ndarray:
    base = np.median(x[:, :, healthy], axis=(1, 2), keepdims=True)
    return np.log(np.maximum(x, FLOOR / 10) / base)


def _robust_sd(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else 0.0


def _slow_workers(factors: dict) -> set[tuple[int, int]]:
    """(stage, DP rank) of the workers whose factor on some op type is far above the others'."""
    found = set()
    for optype in {k[0] for k in factors}:
        keys = [k for k in factors if k[0] == optype]
        pooled = np.concatenate([factors[k] for k in keys])
        threshold = max(SLOW_Z * _robust_sd(pooled), np.log1p(SLOW_MIN))
        found |= {(k[1], int(w)) for k in keys for w in np.flatnonzero(factors[k] >= threshold)}
    return found


def _key(key: tuple, slots: np.ndarray, x: np.ndarray, a: np.ndarray, healthy: np.ndarray) -> KeyModel:
    base = np.median(x[:, :, healthy], axis=(1, 2))
    r = _log_ratio(x, healthy) - a[None, None, :]
    e = r.mean(axis=0)  # [step, dp]
    # the residuals from the slots' mean are less spread than the noise by sqrt((S - 1) / S)
    noise = (r - e[None]) * (np.sqrt(len(r) / (len(r) - 1)) if len(r) > 1 else 1.0)
    steps, dp = e.shape
    u = e - np.median(e, axis=1, keepdims=True)  # first against the robust step effect, to find the episodes
    cut = max(EPISODE_Z * _robust_sd(u.ravel()), np.log1p(SLOW_MIN)) if dp > 1 else np.inf
    flagged = u >= cut
    calm_steps = np.where(flagged, np.nan, e)
    common = np.where(flagged.all(axis=1), np.median(e, axis=1), np.nanmean(calm_steps, axis=1, where=~flagged))
    u = e - common[:, None]  # then against the mean of the steps' calm workers
    calm = u[~flagged]
    # one-way random effects: Var(u) = s_w^2 (dp - 1) / dp, Var(common) = s_c^2 + s_w^2 / dp
    s_w2 = calm.var(ddof=1) * dp / (dp - 1) if dp > 1 and len(calm) > 1 else 0.0
    s_c2 = max(common.var(ddof=1) - s_w2 / dp, 0.0) if steps > 1 else 0.0
    sampling = float(noise.var() / len(r))  # a step's effect is a mean over the slots: it carries noise / S
    raw_w = np.sqrt(s_w2)
    s_w2 = max(s_w2 - sampling, 0.0)
    starts = int((flagged & ~np.vstack([np.zeros((1, dp), bool), flagged[:-1]])).sum())
    length = float(flagged.sum() / starts) if starts else 0.0
    ratios = np.exp(noise.ravel())
    family = _fit_noise(ratios) if np.ptp(ratios) > 0 else None
    sigma_step, sigma_step_worker = float(np.sqrt(s_c2)), float(np.sqrt(s_w2))
    report = {
        "optype": key[0],
        "stage": key[1],
        "slots": len(slots),
        "base_median_s": float(np.median(base)),
        "step_sd": sigma_step,
        "step_sd_interval": _sd_interval(sigma_step, steps - 1),
        "step_ks_normal": _ks_normal(common, np.sqrt(s_c2 + raw_w**2 / dp)) if steps > 2 else None,
        "step_worker_sd": sigma_step_worker,
        "step_worker_sd_interval": _less(_sd_interval(raw_w, max(len(calm) - steps, 1)), sampling),
        "step_worker_ks_normal": _ks_normal(calm, raw_w * np.sqrt((dp - 1) / dp)) if dp > 1 else None,
        "episodes": starts,
        "episode_start": starts / max((~flagged).sum(), 1),
        "episode_start_interval": _jeffreys(starts, max(int((~flagged).sum()), 1)),
        "episode_length_steps": length,
        "episode_factor_median": float(np.exp(np.median(u[flagged]))) if starts else None,
        "noise": {"family": family.spec, "ks": family.ks} if family else {"family": _no_family(ratios)},
        "noise_sd": float(noise.std()),
    }
    return KeyModel(
        key[0], key[1], slots, base, sigma_step, sigma_step_worker,
        report["episode_start"], length, starts, u[flagged], family, ratios, report,
    )  # fmt: skip


def _no_family(ratios: np.ndarray) -> str:
    """What stands in for a family: no noise at all (one slot a step: it is all in the step effects)."""
    return "none" if np.ptp(ratios) == 0 else "measured ratios"


def _fit_noise(ratios: np.ndarray):
    """The lowest-AIC latency family for exp(noise), fitted to an even subsample; KS over them all."""
    sample = ratios if len(ratios) <= FIT_SAMPLE else np.sort(ratios)[:: -(-len(ratios) // FIT_SAMPLE)]
    fits = fit_single(sample)
    if not fits:
        return None
    best = fits[0]
    ks = float(stats.kstest(ratios, best.model().cdf).statistic)
    return type(best)(best.family, best.params, best.spec, best.log_likelihood, best.aic, ks)


def _jeffreys(k: int, n: int) -> list[float]:
    """The Jeffreys interval of a share ``k / n`` (Brown, Cai and DasGupta 2001)."""
    tail = (1 - LEVEL) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(tail, k + 0.5, n - k + 0.5))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - tail, k + 0.5, n - k + 0.5))
    return [lo, hi]


def _sd_interval(sd: float, dof: int) -> list[float] | None:
    """The chi-square interval of a normal standard deviation with ``dof`` degrees of freedom."""
    if dof < 1 or sd == 0:
        return None
    tail = (1 - LEVEL) / 2
    return [float(sd * np.sqrt(dof / stats.chi2.ppf(q, dof))) for q in (1 - tail, tail)]


def _less(interval: list[float] | None, variance: float) -> list[float] | None:
    """An interval of standard deviations with ``variance`` taken out of each end."""
    return [float(np.sqrt(max(x**2 - variance, 0.0))) for x in interval] if interval else None


def _ks_normal(x: np.ndarray, sd: float) -> dict | None:
    """The Kolmogorov-Smirnov test of ``x`` against a normal of mean 0 and sd ``sd``."""
    if len(x) < 3 or sd <= 0:
        return None
    result = stats.kstest(x, stats.norm(0, sd).cdf)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}
