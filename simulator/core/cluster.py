"""The physical side of a run: per-worker computation times and the network.

Randomness is explicit: one seed becomes named streams through
``numpy.random.SeedSequence(seed, spawn_key=(STREAM, worker))``, so worker w's stream does
not depend on how many workers the run has. Worker w's d-th computation therefore takes the
same draw in every strategy and every backup count (common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..io.errors import InputError, named
from ..latency import LatencyModel, parse_latency
from ..latency.durations import DurationStream
from .streams import Stream, stream


def parse_speed_factors(text: str, n_workers: int, seed: int) -> np.ndarray:
    """Per-worker multipliers of the computation time (2 = twice as slow).

    Args:
        text: ``""`` (all 1), a comma list such as ``"1,1,2.5"`` (worker w takes the w-th
            entry; extra entries are ignored so one list can serve several backup counts), or
            a latency SPEC such as ``lognormal:mu=0,sigma=0.3`` from which worker w's factor
            is the w-th draw of the run's speed stream.
        n_workers: how many factors the run needs.
        seed: the run seed.

    Raises:
        InputError: a malformed list, a non-positive factor, or too few entries.
    """
    text = text.strip()
    if not text:
        return np.ones(n_workers)
    if text[0].isalpha():
        model = parse_latency(text, what=named("speed_factors"))
        return model.sample(stream(seed, Stream.SPEED), n_workers)
    try:
        factors = [float(x) for x in text.split(",")]
    except ValueError:
        raise InputError(
            f"{named('speed_factors')} {text!r}: expected numbers separated by commas, or a SPEC"
        ) from None
    bad = [f for f in factors if not (math.isfinite(f) and f > 0)]
    if bad:
        raise InputError(f"{named('speed_factors')} {text!r}: every factor must be a finite number > 0, got {bad[0]:g}")
    if len(factors) < n_workers:
        raise InputError(
            f"{named('speed_factors')} {text!r}: {len(factors)} factors given but the run has {n_workers} workers"
        )
    return np.asarray(factors[:n_workers])


@dataclass(frozen=True)
class Link:
    """A worker's network link to the parameter server.

    Attributes:
        latency: fixed cost of one transfer (seconds).
        bandwidth: bytes per second (``inf`` = free).
    """

    latency: float = 0.0
    bandwidth: float = math.inf

    def transfer_time(self, nbytes: float) -> float:
        """Seconds to move ``nbytes`` one way: latency + bytes / bandwidth."""
        return self.latency + (nbytes / self.bandwidth if nbytes else 0.0)


class Cluster:
    """Computation-time streams and transfer times for every worker of one run."""

    def __init__(
        self,
        model: LatencyModel,
        factors: np.ndarray,
        link: Link,
        param_bytes: float,
        seed: int,
        ps_bandwidth: float = math.inf,
        *,
        ps_service: float = 0.0,
        ps_servers: int = 1,
    ):
        self.model, self.factors, self.link, self.seed = model, factors, link, seed
        self.pull_time = link.transfer_time(param_bytes)  # parameters PS -> worker (seconds)
        self.push_time = link.transfer_time(param_bytes)  # gradient worker -> PS (seconds)
        # The PS's incoming links, shared by concurrent pushes (0 = not modelled): the parameters are
        # split evenly over ``ps_servers`` servers, each with its own link, so a push moves 1/S to each.
        shard = param_bytes / ps_servers
        self.link_time = shard / ps_bandwidth if param_bytes and math.isfinite(ps_bandwidth) else 0.0
        # Seconds the servers are busy applying one update: each applies its shard, in parallel.
        self.service_time = ps_service / ps_servers

    def durations(self, worker: int) -> DurationStream:
        """Worker ``worker``'s own stream of computation times."""
        return self.model.stream_for(worker, stream(self.seed, Stream.LATENCY, worker), float(self.factors[worker]))
