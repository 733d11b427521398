"""Workers: the built-in loops run as callbacks give exactly the event log of the same loops
run as SimPy processes."""

import pytest
from conftest import events, update_times
from stragglersim.core import engine
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.core.worker import LoopWorker

# Constant and two-valued latencies make many arrivals simultaneous: the order in which
# events at the same time are processed then decides versions, fates and the next draws.
TIES = "straggler:base=constant(value=1),p=0.3,factor=2"
RUNS = [
    {"strategy": "sync", "workers": 4, "latency": "constant:value=1"},
    {"strategy": "backup", "semantics": "cancel", "workers": 4, "backups": 2, "latency": TIES},
    {"strategy": "backup", "semantics": "drop", "workers": 4, "backups": 2, "latency": TIES},
    {"strategy": "backup", "semantics": "tf", "workers": 4, "backups": 2, "latency": TIES},
    {"strategy": "backup", "semantics": "tf", "workers": 3, "backups": 3, "comm_latency": 0.5},
    {"strategy": "backup", "semantics": "cancel", "workers": 5, "backups": 2, "comm_latency": 0.25},
    {"strategy": "async", "workers": 5, "latency": TIES, "staleness_cutoff": 2},
    {"strategy": "softsync", "workers": 6, "softsync_n": 2, "latency": TIES},
    {"strategy": "k-sync", "workers": 5, "k": 3, "latency": TIES},
    {"strategy": "k-async", "workers": 5, "k": 2, "latency": TIES},
    {"strategy": "k-batch-async", "workers": 5, "k": 2},
    {"strategy": "deadline", "workers": 4, "deadline": 1.5, "latency": TIES},
    {"strategy": "adaptive-backup", "workers": 6, "adapt_every": 5, "latency": TIES},
]


def _log(config: RunConfig, *, callbacks: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not callbacks:
            m.setattr(engine, "CALLBACKS", False)  # every worker a SimPy process
        sim = Simulation(config)
        assert all(isinstance(wk, LoopWorker) for wk in sim.ps.workers) == callbacks
        return sim.run()


@pytest.mark.parametrize("kwargs", RUNS, ids=lambda k: "-".join(str(v) for v in k.values())[:40])
def test_loop_workers_give_the_event_log_of_simpy_processes(kwargs, monkeypatch):
    config = RunConfig(steps=60, seed=4, timing_only=True, **kwargs)
    fast = _log(config, callbacks=True, monkeypatch=monkeypatch)
    slow = _log(config, callbacks=False, monkeypatch=monkeypatch)
    assert events(fast) == events(slow)
    assert update_times(fast) == update_times(slow)
    assert [len(u.gradients) for u in fast.updates] == [len(u.gradients) for u in slow.updates]
    assert fast.summary(config) == slow.summary(config)


def test_runs_with_failures_keep_simpy_processes():
    """A worker that can fail is restarted by a process around its loop: no callbacks there."""
    config = RunConfig(strategy="sync", workers=3, steps=20, timing_only=True, fail_at="1@2.5-4")
    sim = Simulation(config)
    assert not isinstance(sim.ps.workers[1], LoopWorker)
    assert isinstance(sim.ps.workers[0], LoopWorker)
    assert len(sim.run().updates) == 20
