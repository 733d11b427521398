"""Latency models: how long one gradient computation takes, in seconds of simulated time.

Every model is a small object with ``sample(rng, size)`` and exact ``mean``, ``var``,
``cdf`` and ``ppf``, so that tests and figures can put the theoretical curve beside the
simulated one. Families with a ``scipy.stats`` counterpart wrap its frozen distribution.

Sampling is by inverse transform of uniforms drawn row by row: ``sample(rng, n)`` is a
prefix of ``sample(rng, m)`` for ``n < m`` on the same generator state. That is what makes
common random numbers exact: a worker's d-th computation takes the d-th draw of its own
stream however the draws are batched, in every strategy.
"""

from .empirical import TRACE_FAMILIES, Empirical, EmpiricalPerWorker, TraceReplay, parse_trace_latency
from .models import Constant, LatencyModel, ScipyLatency, Straggler
from .parse import FAMILIES, build_latency, parse_latency

__all__ = [
    "FAMILIES",
    "TRACE_FAMILIES",
    "Constant",
    "Empirical",
    "EmpiricalPerWorker",
    "LatencyModel",
    "ScipyLatency",
    "Straggler",
    "TraceReplay",
    "build_latency",
    "parse_latency",
    "parse_trace_latency",
]
