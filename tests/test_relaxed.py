"""The strategy family against Dutta et al.'s closed forms, and the SSP and deadline rules."""

import math

import numpy as np
import pytest
from conftest import run
from stragglersim.cli.options import worded
from stragglersim.core.config import RunConfig
from stragglersim.io.errors import InputError
from stragglersim.studies.theory import harmonic

Z = 4.0  # standard errors


def mean_time(**kwargs):
    config, log = run(timing_only=True, seed=kwargs.pop("seed", 3), **kwargs)
    return log.summary(config), log


def close(got, expected, std, n, what):
    tol = Z * std / math.sqrt(n)
    assert abs(got - expected) <= tol, f"{what}: {got:.5f} vs {expected:.5f} (tolerance {tol:.5f})"


@pytest.mark.parametrize(
    "latency", ["exponential:rate=2", "lognormal:mu=0,sigma=0.5", "shifted-exponential:shift=1,rate=1"]
)
def test_k_batch_async_takes_k_mean_over_p_for_any_distribution(latency):
    from stragglersim.latency import parse_latency

    s, log = mean_time(strategy="k-batch-async", workers=8, k=3, latency=latency, steps=6000)
    x = parse_latency(latency)
    # Updates are counts of a superposed renewal process; allow 3% (stated) for the
    # correlation between successive intervals.
    assert s["mean_iteration_time"] == pytest.approx(3 * x.mean / 8, rel=0.03)


def test_k_batch_sync_for_exponential_is_k_over_p_lambda():
    s, log = mean_time(strategy="k-batch-sync", workers=8, k=4, latency="exponential:rate=2", steps=4000)
    # K arrivals of a Poisson process of rate Pλ: Gamma(K, Pλ), std sqrt(K)/(Pλ).
    close(s["mean_iteration_time"], 4 / 16, math.sqrt(4) / 16, s["updates"], "k-batch-sync")


def test_k_sync_is_the_kth_order_statistic():
    s, _ = mean_time(strategy="k-sync", workers=10, k=6, latency="exponential:rate=1", steps=4000)
    var = sum(1 / i**2 for i in range(10 - 6 + 1, 11))
    close(s["mean_iteration_time"], harmonic(10) - harmonic(4), math.sqrt(var), s["updates"], "k-sync")


def test_k_async_equals_k_sync_for_exponential_and_is_faster_for_shifted():
    sync_exp, _ = mean_time(strategy="k-sync", workers=8, k=4, latency="exponential:rate=1", steps=5000)
    async_exp, _ = mean_time(strategy="k-async", workers=8, k=4, latency="exponential:rate=1", steps=5000)
    assert async_exp["mean_iteration_time"] == pytest.approx(sync_exp["mean_iteration_time"], rel=0.03)
    sync_shift, _ = mean_time(
        strategy="k-sync", workers=8, k=4, latency="shifted-exponential:shift=1,rate=1", steps=3000
    )
    async_shift, _ = mean_time(
        strategy="k-async", workers=8, k=4, latency="shifted-exponential:shift=1,rate=1", steps=3000
    )
    assert async_shift["mean_iteration_time"] < 0.85 * sync_shift["mean_iteration_time"]


@pytest.mark.parametrize(("p", "n"), [(8, 2), (16, 4), (12, 12)])
def test_softsync_mean_staleness_is_about_n(p, n):
    """c = P/n gradients per update; while one gradient is computed the other P-1 workers push
    about P-1 gradients, i.e. (P-1)/c = n(P-1)/P updates. Tolerance: 5% (stated)."""
    s, log = mean_time(strategy="softsync", workers=p, softsync_n=n, latency="exponential:rate=1", steps=4000)
    assert all(len(u.gradients) == max(1, p // n) for u in log.updates)
    assert s["mean_staleness"] == pytest.approx(n * (p - 1) / p, rel=0.05)


@pytest.mark.parametrize("bound", [0, 1, 3])
def test_ssp_never_lets_a_worker_run_more_than_s_clocks_ahead(bound):
    config, log = run(
        strategy="ssp",
        workers=5,
        ssp_bound=bound,
        latency="lognormal:mu=0,sigma=1",
        speed_factors="1,1,2,3,1",
        steps=600,
        timing_only=True,
    )
    ends = {w: np.sort([g.end for g in log.gradients if g.worker == w and g.fate == "applied"]) for w in range(5)}
    for g in log.gradients:
        completed = min(np.searchsorted(ends[w], g.start, side="right") for w in range(5))
        assert g.index - completed <= bound
    assert max(g.staleness for g in log.gradients if g.fate == "applied") > 0


def test_ssp_exact_event_log():
    """Two workers of 1 s and 3 s, bound 1. Worker 0 finishes at 1 and 2, then is two clocks
    ahead and waits; worker 1's first gradient (t=3) advances the slowest clock and wakes it.
    Worked by hand: updates at 1, 2, 3, 4, 6, 7, 9, 10; worker 0 reads the version current
    when it is let go."""
    _, log = run(
        strategy="ssp",
        workers=2,
        ssp_bound=1,
        latency="constant:value=1",
        speed_factors="1,3",
        steps=8,
        timing_only=True,
    )
    assert [u.time for u in log.updates] == [1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 9.0, 10.0]
    applied = [(g.worker, g.start, g.version) for u in log.updates for g in u.gradients]
    assert applied == [(0, 0, 0), (0, 1, 1), (1, 0, 0), (0, 3, 3), (1, 3, 3), (0, 6, 5), (1, 6, 5), (0, 9, 7)]


def test_deadline_updates_at_once_when_every_worker_is_in():
    """Three workers of 1 s and a 5 s deadline: all three arrive at t=1, so no update waits."""
    _, log = run(strategy="deadline", workers=3, deadline=5.0, latency="constant:value=1", steps=3, timing_only=True)
    assert [u.time for u in log.updates] == [1.0, 2.0, 3.0]
    assert [len(u.gradients) for u in log.updates] == [3, 3, 3]


def test_deadline_never_waits_past_its_timeout_unless_nothing_arrived():
    config, log = run(
        strategy="deadline", workers=6, deadline=0.4, latency="exponential:rate=1", steps=2000, timing_only=True
    )
    times = log.iteration_times()
    for u, dt in zip(log.updates, times, strict=True):
        if dt > 0.4 + 1e-12:  # nothing had arrived: the first gradient to arrive completed the step
            assert len(u.gradients) == 1 and u.gradients[0].end == pytest.approx(u.time)
    assert (times <= 0.4 + 1e-12).mean() > 0.5
    assert max(len(u.gradients) for u in log.updates) > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "k-sync", "workers": 4}, "--strategy k-sync needs --k"),
        ({"strategy": "k-sync", "workers": 4, "k": 5}, "--k must be an integer in [1, P=4], got 5"),
        ({"strategy": "backup", "k": 2}, "--k applies to --strategy k-sync / k-batch-sync / k-async / k-batch-async"),
        ({"strategy": "softsync", "workers": 4}, "--strategy softsync needs --softsync-n"),
        ({"strategy": "softsync", "workers": 4, "softsync_n": 0}, "--softsync-n must be an integer in [1, 4]"),
        ({"strategy": "ssp", "workers": 4, "ssp_bound": -1}, "--ssp-bound must be an integer >= 0"),
        ({"strategy": "deadline", "workers": 4, "deadline": 0.0}, "--deadline must be a finite number > 0"),
        ({"strategy": "backup", "staleness_lr": True}, "--staleness-lr applies to"),
        ({"strategy": "k-async", "workers": 4, "k": 2, "backups": 1}, "k-async has no backup workers"),
    ],
)
def test_family_parameters_are_validated(kwargs, message):
    with pytest.raises(InputError) as err:
        RunConfig(**kwargs).validate()
    assert message in worded(err.value)


def test_staleness_lr_trains(tmp_path):
    from stragglersim.training.trainer import train

    config = RunConfig(strategy="softsync", workers=8, softsync_n=4, staleness_lr=True, steps=200, lr=0.2, seed=2)
    _, log, result = train(config)
    assert result.summary["final_test_accuracy"] > 0.85
