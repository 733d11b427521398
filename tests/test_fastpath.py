"""The vectorised fast path gives the event engine's update times on the same draws."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import simulate
from stragglersim.core.fastpath import applies, fast_simulate


@settings(max_examples=40, deadline=None)
@given(
    strategy=st.sampled_from(["sync", "cancel", "k-sync"]),
    n=st.integers(1, 8),
    extra=st.integers(0, 4),
    latency=st.sampled_from(
        [
            "exponential:rate=1",
            "lognormal:mu=0,sigma=0.7",
            "pareto:alpha=2,scale=0.5",
            "straggler:base=gamma(shape=3,scale=0.3),p=0.1,factor=5",
        ]
    ),
    speeds=st.sampled_from(["", "lognormal:mu=0,sigma=0.3"]),
    comm=st.sampled_from([0.0, 0.05]),
    seed=st.integers(0, 2**31),
)
def test_fast_path_equals_the_engine(strategy, n, extra, latency, speeds, comm, seed):
    common = dict(latency=latency, speed_factors=speeds, comm_latency=comm, steps=30, seed=seed, timing_only=True)
    if strategy == "sync":
        config = RunConfig(strategy="sync", workers=n, **common)
    elif strategy == "cancel":
        config = RunConfig(strategy="backup", semantics="cancel", workers=n, backups=extra, **common)
    else:
        config = RunConfig(strategy="k-sync", workers=n + extra, k=n, **common)
    assert applies(config)
    engine = simulate(config)
    fast = fast_simulate(config)
    np.testing.assert_allclose(fast.iteration_times(), engine.iteration_times(), rtol=1e-12, atol=1e-12)
    a, b = engine.summary(config), fast.summary(config)
    for key in ("updates", "gradients_applied", "mean_staleness", "max_staleness"):
        assert a[key] == b[key]
    counts = fast_simulate(config, records=False).summary(config)
    assert counts["gradients_applied"] == b["gradients_applied"] and counts["sim_time"] == pytest.approx(b["sim_time"])


@settings(max_examples=40, deadline=None)
@given(
    strategy=st.sampled_from(["drop", "k-batch-sync", "async"]),
    n=st.integers(1, 6),
    extra=st.integers(0, 4),
    latency=st.sampled_from(
        ["exponential:rate=1", "lognormal:mu=0,sigma=0.7", "straggler:base=gamma(shape=3,scale=0.3),p=0.1,factor=5"]
    ),
    speeds=st.sampled_from(["", "lognormal:mu=0,sigma=0.3"]),
    comm=st.sampled_from([0.0, 0.05]),
    seed=st.integers(0, 2**31),
)
def test_the_other_recursions_equal_the_engine(strategy, n, extra, latency, speeds, comm, seed):
    """drop, k-batch-sync and async: the engine's update times, fates and staleness on the same draws."""
    common = dict(latency=latency, speed_factors=speeds, comm_latency=comm, steps=60, seed=seed, timing_only=True)
    if strategy == "drop":
        config = RunConfig(strategy="backup", semantics="drop", workers=n, backups=extra, **common)
    elif strategy == "k-batch-sync":
        config = RunConfig(strategy="k-batch-sync", workers=n + extra, k=n, **common)
    else:
        config = RunConfig(strategy="async", workers=n + extra, **common)
    config = RunConfig(**{**config.to_dict(), "log_gradients": "none"})
    assert applies(config)
    engine, fast = simulate(config), fast_simulate(config, records=False)
    np.testing.assert_allclose(fast.iteration_times(), engine.iteration_times(), rtol=1e-12, atol=1e-12)
    a, b = engine.summary(config), fast.summary(config)
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert b[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    assert list(fast.update_lines()) == list(engine.update_lines())


def test_atoms_and_gradient_logs_go_to_the_engine():
    """A constant latency ties every arrival (no order to know); per-gradient records: the barrier's only."""
    config = RunConfig(strategy="backup", semantics="drop", backups=2, steps=5, timing_only=True)
    assert not applies(config) and applies(RunConfig(**{**config.to_dict(), "log_gradients": "none"}))
    for kwargs in ({"strategy": "async"}, {"strategy": "k-batch-sync", "k": 2}):
        config = RunConfig(workers=3, latency="constant:value=1", steps=5, timing_only=True, **kwargs)
        assert not applies(RunConfig(**{**config.to_dict(), "log_gradients": "none"}))


def test_the_runner_takes_the_fast_path_for_every_run_it_can_serve(monkeypatch):
    """sync, cancel, drop, k-batch-sync and async without gradient logs: no engine at all."""
    from stragglersim.core import engine
    from stragglersim.training.runner import execute

    monkeypatch.setattr(engine.Simulation, "run", lambda self: pytest.fail("the engine ran"))
    for kwargs in (
        {"strategy": "sync"},
        {"strategy": "backup", "semantics": "cancel", "backups": 2},
        {"strategy": "backup", "semantics": "drop", "backups": 2},
        {"strategy": "k-batch-sync", "k": 2},
        {"strategy": "async"},
    ):
        config = RunConfig(workers=4, steps=20, timing_only=True, log_gradients="none", **kwargs)
        assert execute(config).summary["updates"] == 20


def test_fast_path_only_where_valid():
    assert not applies(RunConfig(strategy="backup", semantics="tf", backups=2, timing_only=True))
    assert not applies(RunConfig(strategy="async", timing_only=True))
    assert not applies(RunConfig(strategy="async", timing_only=True, staleness_cutoff=2, log_gradients="none"))
    assert not applies(RunConfig(strategy="sync", timing_only=True, fail_slow="normal=5,slow=5,factor=2"))
    assert not applies(RunConfig(strategy="sync", timing_only=False))
    assert not applies(RunConfig(strategy="sync", timing_only=True, param_bytes=1e6, ps_bandwidth=1e6))


def test_log_gradients_none_writes_no_gradient_log(tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "simulate",
                "--timing-only",
                "--quiet",
                "--strategy",
                "backup",
                "--semantics",
                "cancel",
                "--workers",
                "100",
                "--backups",
                "6",
                "--steps",
                "3000",
                "--log-gradients",
                "none",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert not (out / "gradients.csv").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gradients_applied"] == 300_000 and summary["gradients_cancelled"] == 18_000
    lines = (out / "updates.csv").read_text().splitlines()
    assert len(lines) == 3001 and lines[1].split(",")[3:6] == ["100", "100", "0"]


@settings(max_examples=30, deadline=None)
@given(
    strategy=st.sampled_from(["backup", "async", "softsync", "ssp", "k-async"]),
    seed=st.integers(0, 2**31),
    effect=st.sampled_from(["", "failures", "fail-slow"]),
)
def test_compact_log_has_the_same_summary_and_updates(strategy, seed, effect):
    """--log-gradients none keeps no finished gradient records, and loses no number."""
    from stragglersim.core.engine import Simulation
    from stragglersim.io.records import CompactLog

    kwargs = {
        "backup": {"backups": 2},
        "async": {},
        "softsync": {"softsync_n": 2},
        "ssp": {"ssp_bound": 1},
        "k-async": {"k": 3},
    }[strategy]
    if effect == "failures":
        kwargs["failures"] = "rate=0.05,downtime=2"
    elif effect == "fail-slow":
        kwargs["fail_slow"] = "normal=3,slow=2,factor=4"
    config = RunConfig(strategy=strategy, workers=6, steps=300, seed=seed, timing_only=True, **kwargs)
    full = Simulation(config).run()
    compact_sim = Simulation(RunConfig(**{**config.to_dict(), "log_gradients": "none"}))
    compact_sim.log.limit = 50  # fold often
    compact = compact_sim.run()
    assert isinstance(compact, CompactLog) and len(compact.gradients) <= 2 * 50 + config.total_workers
    a, b = full.summary(config), compact.summary(config)
    assert a == b
    assert list(full.update_lines()) == list(compact.update_lines())


def test_a_fast_path_logs_updates_index_and_slice_like_a_list():
    from stragglersim.core.recursions import CountsLog

    ups = CountsLog(np.array([1.0, 2.5, 4.0]), {}, per_update=2).updates
    assert len(ups) == 3 and (ups[-1].index, ups[-1].time) == (3, 4.0)
    assert [(u.index, u.time) for u in ups[1:]] == [(2, 2.5), (3, 4.0)]
    assert [u.index for u in ups[::2]] == [1, 3] and ups[5:] == []
    with pytest.raises(IndexError):
        ups[3]
