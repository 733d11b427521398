"""A study: a strategy that chooses its backups online (``Strategy.compare_backups``, e.g.
adaptive-backup) against every fixed number of backups, on the same latency draws."""

from __future__ import annotations

from dataclasses import replace

from ..core.engine import Simulation
from ..strategies import Strategy, get, names


def subject() -> type[Strategy]:
    """The registered strategy that ``compare-backups`` studies."""
    return next(get(name) for name in names() if get(name).compare_backups)


def time_per_progress(log, batch_size: int, noise_scale: float) -> float:
    """Simulated seconds per unit of progress of a run (the quantity the subject minimises)."""
    progress = subject().progress
    total = sum(progress(len(u.gradients), batch_size, noise_scale) for u in log.updates)
    return log.updates[-1].time / total


def compare_with_fixed(config) -> dict:
    """Time per unit of progress of the subject against every fixed B (K-sync, K = P - B)
    on the same latency draws (common random numbers)."""
    p = config.workers
    noise = config.noise_scale or p * config.batch_size
    strategy = subject()
    fixed = {}
    for b in range(p):
        fixed[b] = time_per_progress(Simulation(strategy.fixed_backups(config, b)).run(), config.batch_size, noise)
    sim = Simulation(replace(config, strategy=strategy.name))
    adaptive = time_per_progress(sim.run(), config.batch_size, noise)
    best = min(fixed, key=fixed.get)
    return {
        "workers": p,
        "latency": config.latency,
        "updates": config.steps,
        "batch_size": config.batch_size,
        "noise_scale": noise,
        "fixed": {str(b): t for b, t in fixed.items()},
        "best_fixed_backups": best,
        "best_fixed": fixed[best],
        "adaptive": adaptive,
        "adaptive_vs_best": adaptive / fixed[best],
        "adaptive_choices": [{"from_update": u, "backups": p - k} for u, k in sim.strategy.choices],
    }
