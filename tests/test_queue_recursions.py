"""The fast path's queue recursions (drop, k-batch-sync, async): ties and long lookaheads."""

import numpy as np
import pytest
from stragglersim.core import queue_recursions
from stragglersim.core.assemble import assemble
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import simulate
from stragglersim.core.fastpath import applies, fast_simulate
from stragglersim.core.recursions import Tie


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("drop", {"strategy": "backup", "semantics": "drop", "workers": 1, "backups": 1, "speed_factors": "1,2"}),
        ("batch", {"strategy": "k-batch-sync", "workers": 3, "k": 2}),
        ("arrival", {"strategy": "async", "workers": 3}),
    ],
)
def test_simultaneous_events_raise_tie_and_the_run_goes_to_the_engine(kind, options):
    """Equal arrival times (a constant latency) leave the order, and so the fates, to the engine."""
    config = RunConfig(latency="constant:value=1", steps=6, timing_only=True, log_gradients="none", **options)
    with pytest.raises(Tie):
        queue_recursions.QUEUES[kind](assemble(config))
    fast, engine = fast_simulate(config, records=False), simulate(config)
    assert fast.summary(config) == engine.summary(config)


@pytest.mark.slow  # about 1 s: 1030 workers in the engine and in the recursion
def test_one_worker_far_faster_than_the_others_widens_the_lookahead():
    """k-batch-sync with P = K = 1030 and one worker 10^7 times faster: every update is that worker's
    1030 arrivals, more than the lookahead's 1024 columns hold; the times are the engine's."""
    p = 1030
    config = RunConfig(
        strategy="k-batch-sync",
        workers=p,
        k=p,
        speed_factors=",".join(["1e-7"] + ["1"] * (p - 1)),
        steps=1,
        timing_only=True,
        log_gradients="none",
    )
    assert applies(config) and queue_recursions.Lookahead(assemble(config)).width == 1024
    fast, engine = fast_simulate(config, records=False), simulate(config)
    np.testing.assert_allclose(fast.iteration_times(), engine.iteration_times(), rtol=1e-12)
    assert fast.summary(config) == engine.summary(config)
