"""Is a fitted latency model good enough to stand in for a measured trace?

Exact replay of the trace gives the iteration times a configuration really sees; a simulation
from the trace's fitted i.i.d. model gives what the model predicts. Their distributions are
compared by quantiles and the two-sample Kolmogorov-Smirnov distance. Persistent per-worker
speeds or slow phases in a trace are exactly what an i.i.d. fit misses; this is where it shows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import stats

from ..core.config import RunConfig
from ..core.engine import simulate
from ..latency.fitting import fit_durations
from ..latency.traces import read_trace

QUANTILES = (0.1, 0.5, 0.9, 0.99)
KS_GOOD = 0.1  # largest KS distance called good enough
MEAN_GOOD = 0.05  # largest relative error of the mean iteration time called good enough


def validate_trace(config: RunConfig, *, min_updates: int = 2000) -> dict:
    """Compare exact replay of ``config.latency`` (a ``trace:PATH``) with its fitted model.

    Args:
        config: a timing-only run whose latency is ``trace:PATH``.
        min_updates: the fitted model is simulated for at least this many updates.

    Returns:
        A report: fitted SPEC, quantiles of both, KS distance and p-value, relative error of
        the mean, and a verdict.
    """
    path = config.latency.partition(":")[2].strip()
    trace = read_trace(path, config.trace_format, config.time_scale)
    replayed = simulate(config).iteration_times()
    fit = fit_durations(trace.duration)
    model_config = replace(config, latency=fit["best"]["spec"], steps=max(len(replayed), min_updates))
    modelled = simulate(model_config).iteration_times()
    ks = stats.ks_2samp(replayed, modelled)
    mean_error = float(modelled.mean() / replayed.mean() - 1)
    good = bool(ks.statistic < KS_GOOD and abs(mean_error) < MEAN_GOOD)
    return {
        "trace": path,
        "workers": config.workers,
        "backups": config.backups,
        "semantics": config.semantics,
        "fitted_spec": fit["best"]["spec"],
        "replay_updates": int(len(replayed)),
        "model_updates": int(len(modelled)),
        "quantiles": list(QUANTILES),
        "replay_quantiles": [float(q) for q in np.quantile(replayed, QUANTILES)],
        "model_quantiles": [float(q) for q in np.quantile(modelled, QUANTILES)],
        "replay_mean": float(replayed.mean()),
        "model_mean": float(modelled.mean()),
        "mean_relative_error": mean_error,
        "ks": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "good_enough": good,
        "criterion": f"KS < {KS_GOOD} and |mean error| < {MEAN_GOOD:.0%}",
    }
