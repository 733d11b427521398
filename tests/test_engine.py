"""The engine's own behaviour: lazy stepping, transfer times, the end of a run."""

import pytest
from conftest import run
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation


def test_updates_are_produced_lazily():
    """A consumer that stops early leaves the rest of the run unsimulated."""
    sim = Simulation(RunConfig(strategy="backup", workers=4, backups=1, steps=1000, seed=1))
    first = [u for _, u in zip(range(3), sim.updates(), strict=False)]
    assert [u.index for u in first] == [1, 2, 3]
    assert len(sim.log.updates) < 10
    assert sim.env.now == pytest.approx(first[-1].time)


def test_lazy_and_eager_runs_agree():
    config = RunConfig(strategy="async", workers=5, steps=200, seed=2)
    eager = Simulation(config).run()
    lazy = Simulation(config)
    times = [u.time for u in lazy.updates()]
    assert times == [u.time for u in eager.updates]


def test_transfer_time_from_bytes_and_bandwidth():
    """Pull and push each take 0.1 s + 2e6 B / 1e7 B/s = 0.3 s on top of a 1 s computation."""
    _, log = run(
        strategy="sync",
        workers=2,
        latency="constant:value=1",
        steps=3,
        comm_latency=0.1,
        bandwidth=1e7,
        param_bytes=2e6,
    )
    assert [u.time for u in log.updates] == pytest.approx([1.6, 3.2, 4.8])
    assert log.gradients[0].start == pytest.approx(0.3)


def test_progress_is_reported_per_update():
    class Count:
        n = 0

        def update(self, k):
            self.n += k

    progress = Count()
    Simulation(RunConfig(strategy="async", workers=3, steps=50), progress=progress).run()
    assert progress.n == 50


def test_summary_keys_cover_the_design_contract():
    config, log = run(strategy="backup", workers=3, backups=1, steps=20)
    s = log.summary(config)
    for key in (
        "strategy",
        "workers",
        "backups",
        "updates",
        "sim_time",
        "mean_iteration_time",
        "gradients_computed",
        "gradients_applied",
        "gradients_dropped",
        "mean_staleness",
        "max_staleness",
        "seed",
        "repeat_contributions",
    ):
        assert key in s
    assert s["mean_iteration_time"] == pytest.approx(s["sim_time"] / s["updates"])


def test_the_engine_refuses_an_invalid_config():
    """A library user who builds a Simulation directly gets the same one-line error as the CLI."""
    from stragglersim.io.errors import InputError

    with pytest.raises(InputError, match="workers"):
        Simulation(RunConfig(strategy="sync", workers=0, timing_only=True))


def test_a_trace_used_up_while_a_gradient_waits_at_the_ps(tmp_path):
    """Exact replay, drop semantics, N=2 of 3. Worker 2's single recorded computation arrives
    late at t=3.5 and it has nothing left to replay, while worker 0's gradient of t=3 waits at
    the PS for a second one: the run ends there and that gradient is unfinished, not pending."""
    trace = tmp_path / "trace.csv"
    rows = [(0, 0, 1.0), (0, 1, 1.0), (1, 0, 2.0), (1, 1, 5.0), (2, 0, 3.5)]
    trace.write_text("worker,step,duration\n" + "".join(f"{w},{s},{d}\n" for w, s, d in rows))
    config, log = run(
        strategy="backup",
        workers=2,
        backups=1,
        semantics="drop",
        latency=f"trace:{trace}",
        steps=None,
        timing_only=True,
    )
    assert log.exhausted and [u.time for u in log.updates] == [2.0]
    fates = sorted((g.worker, g.index, g.fate) for g in log.gradients)
    assert fates == [
        (0, 0, "applied"),
        (0, 1, "unfinished"),
        (1, 0, "applied"),
        (1, 1, "unfinished"),
        (2, 0, "dropped_late"),
    ]
    s = log.summary(config)
    assert s["gradients_unfinished"] == 2 and s["gradients_computed"] == 3


@pytest.mark.parametrize(
    "options", [{"strategy": "softsync", "softsync_n": 2}, {"strategy": "k-async", "k": 3}, {"strategy": "async"}]
)
def test_oldest_live_version_covers_every_gradient_not_yet_applied(options):
    """The trainer forgets parameter versions older than ``oldest_live_version()``, so at every
    event it must be at most the version read by any gradient in flight or waiting at the PS
    (softsync: a waiting gradient's worker has already moved on to a newer version)."""
    config = RunConfig(workers=8, steps=400, timing_only=True, seed=5, **options)
    sim = Simulation(config)
    while sim.ps.version < config.steps:
        sim.env.step()
        live = [g.version for g in sim.ps.pending]
        live += [
            wk.current.version for wk in sim.ps.workers if wk.current is not None and wk.current.fate == "unfinished"
        ]
        assert sim.oldest_live_version() == min([*live, sim.ps.version])


def test_a_consumer_that_stops_early_forgets_the_updates_after_it():
    """``finish(consumed)``: the updates simulated past ``consumed`` were never applied, so they
    go from the log and their gradients end unfinished (the trainer stopping at its target)."""
    sim = Simulation(RunConfig(strategy="sync", workers=3, steps=50, timing_only=True, seed=1))
    for _, _ in zip(range(4), sim.updates(), strict=False):
        pass
    forgotten = [g for u in sim.log.updates[1:] for g in u.gradients]
    assert len(sim.log.updates) >= 4 and len(forgotten) >= 9
    sim.finish(1)
    assert [u.index for u in sim.log.updates] == [1]
    assert all(g.fate == "unfinished" and g.update is None and g.staleness is None for g in forgotten)
    assert sim.ps.pending == []


def test_the_parameter_servers_invariants_stop_a_broken_update():
    """Time never goes backwards between updates, and a gradient is applied at most once."""
    sim = Simulation(RunConfig(strategy="sync", workers=2, steps=10, timing_only=True))
    for _, _ in zip(range(2), sim.updates(), strict=False):
        pass
    applied = sim.log.updates[-1].gradients[0]
    sim.ps.pending = [applied]
    with pytest.raises(RuntimeError, match=rf"invariant broken: gradient {applied.id} applied with fate applied"):
        sim.ps.apply()
    sim.env._now = 0.0
    with pytest.raises(RuntimeError, match=r"invariant broken: update at t=0.0 before the previous one"):
        sim.ps.apply()


def test_gc_paused_restores_the_collectors_previous_state():
    import gc

    from stragglersim.io.gcpause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # a caller that runs with the collector off keeps it off
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
