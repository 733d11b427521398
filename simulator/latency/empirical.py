"""Latency models from recorded durations: bootstrap (``empirical:``, ``empirical-per-worker:``) and
exact replay (``trace:``)."""

from __future__ import annotations

import numpy as np

from ..io.errors import InputError
from ..io.spec import Spec
from .durations import DurationStream, ReplayStream
from .models import LatencyModel
from .traces import read_trace


class Empirical(LatencyModel):
    """The empirical distribution of recorded durations: bootstrap sampling.

    Its moments, CDF and quantiles are exact for the recorded sample (population variance).
    """

    def __init__(self, durations: np.ndarray, text: str):
        self.sorted = np.sort(np.asarray(durations, dtype=float))
        self.text, self.spec = text, Spec(text.partition(":")[0], {})

    def __str__(self) -> str:
        return self.text

    def transform(self, u):
        n = len(self.sorted)
        return self.sorted[np.minimum((u[:, 0] * n).astype(np.int64), n - 1)]

    @property
    def mean(self):
        return float(self.sorted.mean())

    @property
    def var(self):
        return float(self.sorted.var())

    def cdf(self, x):
        return np.searchsorted(self.sorted, np.asarray(x, dtype=float), side="right") / len(self.sorted)

    def ppf(self, q):
        n = len(self.sorted)
        k = np.clip(np.ceil(np.asarray(q, dtype=float) * n).astype(np.int64) - 1, 0, n - 1)
        return self.sorted[k]


class EmpiricalPerWorker(Empirical):
    """Bootstrap from each worker's own recorded durations (pooled moments for theory)."""

    def __init__(self, per_worker: list[np.ndarray], text: str):
        super().__init__(np.concatenate(per_worker), text)
        self.workers = [Empirical(d, text) for d in per_worker]
        self.n_workers = len(per_worker)

    def stream_for(self, worker, rng, factor=1.0):
        return DurationStream(self.workers[worker], rng, factor)


class TraceReplay(EmpiricalPerWorker):
    """Exact replay: worker w's i-th computation takes w's i-th recorded duration (step order).

    Asking for more computations than a worker recorded raises :class:`TraceExhausted`,
    which ends the run. Moments and quantiles are those of the pooled durations.
    """

    def __init__(self, per_worker: list[np.ndarray], text: str):
        super().__init__(per_worker, text)
        self.recorded = per_worker

    def stream_for(self, worker, rng, factor=1.0):
        return ReplayStream(self.recorded[worker], factor)


TRACE_FAMILIES = ("trace", "empirical", "empirical-per-worker")


def parse_trace_latency(text: str, what: str, trace_format: str, time_scale: float) -> LatencyModel:
    """``trace:PATH`` (exact replay), ``empirical:PATH`` (pooled bootstrap) or
    ``empirical-per-worker:PATH``."""
    family, _, path = text.partition(":")
    family, path = family.strip(), path.strip()
    if not path:
        raise InputError(f"{what} {text!r}: give the trace file after '{family}:'")
    trace = read_trace(path, trace_format, time_scale)
    if family == "empirical":
        return Empirical(trace.duration, text)
    if family == "empirical-per-worker":
        return EmpiricalPerWorker(trace.per_worker(), text)
    return TraceReplay(trace.per_worker(), text)
