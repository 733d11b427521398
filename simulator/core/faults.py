"""System effects that make stragglers real: fail-slow episodes and worker failures.

- Fail-slow (Gunawi et al. 2018; FALCON, arXiv 2410.12588): each worker alternates between a
  normal state and a slow state in which it computes ``factor`` times slower, holding times
  exponential with the given means (a two-state Markov process, starting normal). A
  computation that spans a state change is stretched piece by piece.
- Failures: a dead worker contributes nothing; its computation in progress is lost (fate
  ``failed``); after a restart it pulls the newest parameters and starts again. Either an
  explicit schedule (``3@10-20``: worker 3 is down from t=10 s to t=20 s; ``4@15``: down from
  15 s for good) or a rate (each worker fails as a Poisson process, downtime exponential).

Each worker's episodes come from its own random stream, so they are the same in every
strategy for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..io.errors import InputError, named
from ..io.spec import parse_spec
from .streams import Stream, stream


def _params(text: str, option: str, names: dict[str, str]) -> dict[str, float]:
    """``key=value,...`` with exactly the keys of ``names`` (key -> what it must be)."""
    spec = parse_spec(f"x:{text}", what=option)
    unknown = [k for k in spec.params if k not in names]
    missing = [k for k in names if k not in spec.params]
    if unknown or missing:
        raise InputError(f"{option} {text!r}: expected {','.join(f'{k}=...' for k in names)}")
    for key, rule in names.items():
        value = spec.params[key]
        ok = value >= 1 if rule == ">= 1" else value > 0
        if not ok:
            raise InputError(f"{option} {text!r}: {key} must be {rule}, got {value:g}")
    return spec.params


@dataclass(frozen=True)
class FailSlow:
    """Parameters of fail-slow episodes: mean seconds normal and slow, and the slowdown."""

    normal: float
    slow: float
    factor: float

    @classmethod
    def parse(cls, text: str) -> FailSlow | None:
        if not text.strip():
            return None
        p = _params(text, named("fail_slow"), {"normal": "> 0", "slow": "> 0", "factor": ">= 1"})
        return cls(p["normal"], p["slow"], p["factor"])

    def timeline(self, seed: int, worker: int) -> Episodes:
        return Episodes(self, stream(seed, Stream.FAILSLOW, worker))


class Episodes:
    """One worker's alternating normal/slow periods, drawn lazily from its own stream."""

    def __init__(self, params: FailSlow, rng):
        self.params, self.rng = params, rng
        self.bounds = [0.0]  # bounds[i] starts period i; even i normal, odd i slow
        self.i = 0  # the period of the last query (queries never go back in time)

    def _extend(self) -> None:
        mean = self.params.normal if len(self.bounds) % 2 == 1 else self.params.slow
        self.bounds.append(self.bounds[-1] + self.rng.exponential(mean))

    def stretch(self, t0: float, work: float) -> float:
        """Elapsed seconds for ``work`` seconds of normal-speed computation starting at ``t0``."""
        while True:
            while len(self.bounds) <= self.i + 1:
                self._extend()
            if self.bounds[self.i + 1] <= t0:
                self.i += 1
            else:
                break
        t, i, left = t0, self.i, work
        while True:
            while len(self.bounds) <= i + 1:
                self._extend()
            rate = 1.0 if i % 2 == 0 else 1.0 / self.params.factor
            end = self.bounds[i + 1]
            if t + left / rate <= end:
                return t + left / rate - t0
            left -= (end - t) * rate
            t, i = end, i + 1


def parse_fail_at(text: str, n_workers: int) -> dict[int, list[tuple[float, float]]]:
    """``3@10-20,4@15`` -> {3: [(10, 20)], 4: [(15, inf)]}; intervals checked and sorted."""
    schedule: dict[int, list[tuple[float, float]]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            worker_text, _, when = item.partition("@")
            worker = int(worker_text)
            down_text, dash, up_text = when.partition("-")
            down, up = float(down_text), (float(up_text) if dash else math.inf)
        except ValueError:
            raise InputError(
                f"{named('fail_at')} {item!r}: expected WORKER@DOWN[-UP] in seconds, e.g. 3@10-20"
            ) from None
        if not 0 <= worker < n_workers:
            raise InputError(f"{named('fail_at')} {item!r}: worker must be in [0, {n_workers - 1}]")
        if not (math.isfinite(down) and down >= 0 and up > down):
            raise InputError(f"{named('fail_at')} {item!r}: need 0 <= DOWN < UP")
        schedule.setdefault(worker, []).append((down, up))
    for worker, spans in schedule.items():
        spans.sort()
        for (_, up), (down, _) in zip(spans, spans[1:], strict=False):
            if down < up:
                raise InputError(f"{named('fail_at')}: worker {worker}'s down periods overlap")
    return schedule


@dataclass(frozen=True)
class FailureRate:
    """Each worker fails at ``rate`` per second and stays down ``downtime`` seconds on average."""

    rate: float
    downtime: float

    @classmethod
    def parse(cls, text: str) -> FailureRate | None:
        if not text.strip():
            return None
        p = _params(text, named("failures"), {"rate": "> 0", "downtime": "> 0"})
        return cls(p["rate"], p["downtime"])

    def spans(self, seed: int, worker: int):
        """(down, up) periods of one worker, without end."""
        rng, t = stream(seed, Stream.FAILURE, worker), 0.0
        while True:
            down = t + rng.exponential(1 / self.rate)
            t = down + rng.exponential(self.downtime)
            yield down, t


@dataclass(frozen=True)
class Faults:
    """The faults of one run (each part None when not asked for)."""

    fail_slow: FailSlow | None
    fail_at: dict[int, list[tuple[float, float]]]
    rate: FailureRate | None

    @classmethod
    def from_config(cls, config) -> Faults:
        if config.fail_at.strip() and config.failures.strip():
            raise InputError(f"{named('fail_at')} and {named('failures')}: give one of them")
        return cls(
            FailSlow.parse(config.fail_slow),
            parse_fail_at(config.fail_at, config.total_workers),
            FailureRate.parse(config.failures),
        )

    def spans(self, seed: int, worker: int):
        """The worker's (down, up) periods, or None if it never fails."""
        if self.rate is not None:
            return self.rate.spans(seed, worker)
        return iter(self.fail_at[worker]) if worker in self.fail_at else None
