"""Invariants that must hold for every configuration (hypothesis)."""

import math

from conftest import events, run
from hypothesis import given, settings
from hypothesis import strategies as st
from stragglersim import strategies
from stragglersim.io.records import APPLIED, CANCELLED, DROPPED_LATE, DROPPED_STALE, FAILED, FATES, PENDING

LATENCIES = st.sampled_from(
    [
        "exponential:rate=1",
        "shifted-exponential:shift=0.5,rate=2",
        "lognormal:mu=0,sigma=0.8",
        "pareto:alpha=1.5,scale=0.2",
        "straggler:base=gamma(shape=2,scale=0.5),p=0.2,factor=6",
        "constant:value=1",
    ]
)
SPEEDS = st.sampled_from(["", "lognormal:mu=0,sigma=0.3", "1,2,1,3,1,1,2,1,5,1,1,2"])
SETTINGS = settings(max_examples=60, deadline=None)


# Values drawn for each strategy option a strategy owns (the others keep their defaults).
OPTION_VALUES = {
    "semantics": lambda workers: st.sampled_from(strategies.SEMANTICS),
    "staleness_cutoff": lambda workers: st.one_of(st.none(), st.integers(0, 3)),
    "k": lambda workers: st.integers(1, workers),
    "softsync_n": lambda workers: st.integers(1, workers),
    "ssp_bound": lambda workers: st.integers(0, 3),
    "deadline": lambda workers: st.sampled_from([0.3, 1.0, 3.0]),
}


@st.composite
def configs(draw):
    strategy = draw(st.sampled_from(strategies.names()))
    family = strategies.get(strategy)
    workers = draw(st.integers(1, 6))
    kwargs = {
        "strategy": strategy,
        "workers": workers,
        "latency": draw(LATENCIES),
        "speed_factors": draw(SPEEDS),
        "comm_latency": draw(st.sampled_from([0.0, 0.1])),
        "steps": draw(st.integers(1, 25)),
        "seed": draw(st.integers(0, 2**32)),
        "timing_only": True,
    }
    if family.has_backups:
        kwargs["backups"] = draw(st.integers(0, 3))
    for option in strategies.option_specs():
        if strategy in option.strategies and option.field in OPTION_VALUES:
            kwargs[option.field] = draw(OPTION_VALUES[option.field](workers))
    effect = draw(st.sampled_from(["none", "none", "fail-slow", "failures", "link"]))
    if effect == "fail-slow":
        kwargs["fail_slow"] = "normal=3,slow=2,factor=4"
    elif effect == "failures":
        kwargs["failures"] = "rate=0.05,downtime=2"
    elif effect == "link":
        kwargs.update(param_bytes=1e6, ps_bandwidth=4e6)
    return kwargs


@SETTINGS
@given(configs())
def test_every_computation_has_one_fate_and_counts_add_up(kwargs):
    config, log = run(**kwargs)
    s = log.summary(config)
    assert all(g.fate in FATES and g.fate != PENDING for g in log.gradients)
    lost = s["gradients_dropped"] + s["gradients_cancelled"] + s["gradients_failed"]
    assert s["gradients_applied"] + lost == s["gradients_computed"]
    assert s["gradients_computed"] + s["gradients_unfinished"] == len(log.gradients)
    assert s["updates"] == config.steps


@SETTINGS
@given(configs())
def test_no_gradient_is_applied_twice_and_updates_are_consistent(kwargs):
    config, log = run(**kwargs)
    in_updates = [g.id for u in log.updates for g in u.gradients]
    assert len(in_updates) == len(set(in_updates))
    assert sorted(in_updates) == [g.id for g in log.gradients if g.fate == APPLIED]
    strategy = strategies.make_strategy(config)
    for u in log.updates:
        if strategy.per_update_varies:  # deadline, adaptive-backup
            assert 1 <= len(u.gradients) <= config.workers
        else:
            assert len(u.gradients) == strategy.per_update
        assert all(g.update == u.index for g in u.gradients)


@SETTINGS
@given(configs())
def test_time_never_goes_backwards(kwargs):
    _, log = run(**kwargs)
    times = [u.time for u in log.updates]
    assert times == sorted(times) and times[0] > 0
    for g in log.gradients:
        assert g.start <= g.end
        if g.fate in (APPLIED, DROPPED_LATE, DROPPED_STALE):
            assert g.end <= log.updates[-1].time


@SETTINGS
@given(configs())
def test_staleness_is_non_negative_and_within_the_cutoff(kwargs):
    config, log = run(**kwargs)
    applied = [g.staleness for g in log.gradients if g.fate == APPLIED]
    assert min(applied) >= 0
    if not strategies.get(config.strategy).stale:
        assert max(applied) == 0  # synchronous updates only take gradients of the current step
    if config.staleness_cutoff is not None:
        assert max(applied) <= config.staleness_cutoff
        assert all(g.staleness > config.staleness_cutoff for g in log.gradients if g.fate == DROPPED_STALE)


@SETTINGS
@given(configs())
def test_same_seed_same_log(kwargs):
    _, first = run(**kwargs)
    _, second = run(**kwargs)
    assert events(first) == events(second)
    assert [(u.index, u.time) for u in first.updates] == [(u.index, u.time) for u in second.updates]


@SETTINGS
@given(
    n=st.integers(1, 6),
    b=st.integers(0, 4),
    latency=LATENCIES,
    speeds=SPEEDS,
    comm=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**32),
)
def test_cancel_adding_a_backup_never_slows_any_iteration(n, b, latency, speeds, comm, seed):
    """With cancel, iteration k is the N-th smallest of the workers' k-th draws (plus
    transfers); one more worker adds one more candidate, so no iteration gets slower."""
    common = {
        "strategy": "backup",
        "workers": n,
        "semantics": "cancel",
        "latency": latency,
        "speed_factors": speeds,
        "comm_latency": comm,
        "steps": 15,
        "seed": seed,
    }
    _, fewer = run(backups=b, **common)
    _, more = run(backups=b + 1, **common)
    for slow, fast in zip(fewer.iteration_times(), more.iteration_times(), strict=True):
        assert fast <= slow + 1e-9 * max(1.0, slow)


@SETTINGS
@given(configs(), configs())
def test_common_random_numbers_across_strategies(a, b):
    """Worker w's d-th computation lasts the same in any two runs with the same seed and
    speed factors, whatever the strategy or backup count."""
    b = {**b, "seed": a["seed"], "latency": a["latency"], "speed_factors": a["speed_factors"]}
    a.pop("fail_slow", None), b.pop("fail_slow", None)  # episodes stretch a draw by when it starts
    _, la = run(**a)
    _, lb = run(**b)

    def durations(log):
        return {(g.worker, g.index): g.end - g.start for g in log.gradients if g.fate not in (CANCELLED, FAILED)}

    da, db = durations(la), durations(lb)
    for key in da.keys() & db.keys():
        assert math.isclose(da[key], db[key], rel_tol=1e-9, abs_tol=1e-12)
