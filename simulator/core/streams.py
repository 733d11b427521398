"""Every random stream of a run, by name.

One run seed becomes independent streams through
``numpy.random.SeedSequence(seed, spawn_key=(STREAM, ...))``: the first key names what the
stream is for, the rest say whose it is (a worker, a block of batches). Worker w's stream does
not depend on how many workers the run has, so worker w's d-th computation takes the same draw
in every strategy and every backup count (common random numbers).

The integers are part of every result ever written: changing one changes the numbers.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """The first spawn key of each stream (``INIT`` is a JAX ``fold_in`` of the seed's key)."""

    LATENCY = 0  # per worker: its computation times
    SPEED = 1  # the drawn per-worker speed factors
    DATA = 2  # per worker and block: its mini-batches
    SHARD = 3  # the assignment of examples to shards
    INIT = 4  # the parameter initialisation (jax.random.fold_in)
    QUALITY = 5  # the reference batch of --gradient-quality
    FAILSLOW = 6  # per worker: its fail-slow episodes
    FAILURE = 7  # per worker: its random failures


def stream(seed: int, *key: int) -> np.random.Generator:
    """The random stream ``key`` (a :class:`Stream`, then its owners) of run seed ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
