"""The simulator against closed forms: seeded, many iterations, tolerance stated.

Under ``sync`` and ``cancel`` every iteration starts all workers afresh, so iteration times
are i.i.d. with the order statistic's mean and variance and the tolerance is a number of
standard errors of the mean. Async intervals are those of a superposed Poisson process.
"""

import math

import pytest
from conftest import run

from simulator.latency import parse_latency
from simulator.theory import (
    async_exponential_staleness,
    async_update_rate,
    cancel_iteration_time,
    exponential_order_mean,
    exponential_order_var,
    harmonic,
    order_mean,
    sync_iteration_time,
)

Z = 4.0  # tolerance in standard errors: a false alarm about 1 run in 16,000


def test_harmonic_and_exponential_order_statistics():
    assert harmonic(0) == 0 and harmonic(4) == pytest.approx(25 / 12)
    assert exponential_order_mean(1, 1, rate=2) == 0.5
    assert exponential_order_mean(3, 3, rate=1) == pytest.approx(1 + 1 / 2 + 1 / 3)
    assert exponential_order_mean(2, 3, rate=1, shift=2) == pytest.approx(2 + 1 / 3 + 1 / 2)
    assert exponential_order_var(3, 3, rate=2) == pytest.approx((1 + 1 / 4 + 1 / 9) / 4)


@pytest.mark.parametrize(("spec", "k", "n"), [("gamma:shape=1,scale=0.5", 7, 10), ("gamma:shape=1,scale=0.5", 10, 10)])
def test_numerical_order_mean_matches_closed_form(spec, k, n):
    """gamma(shape=1) is Exp(rate=2) through a different code path (quadrature)."""
    assert order_mean(parse_latency(spec), k, n) == pytest.approx(exponential_order_mean(k, n, rate=2), rel=1e-7)


def _assert_mean_within(summary, expected, std, what):
    k = summary["updates"]
    got = summary["mean_iteration_time"]
    tol = Z * std / math.sqrt(k)
    assert abs(got - expected) <= tol, (
        f"{what}: simulated {got:.5f} s vs theory {expected:.5f} s (tolerance {tol:.5f} s)"
    )


@pytest.mark.parametrize(("n", "rate"), [(1, 1.0), (10, 2.0), (32, 0.5)])
def test_full_sync_waits_harmonic_over_rate(n, rate):
    """Full sync over n i.i.d. Exp(λ) workers: E[T] = H_n / λ."""
    config, log = run(strategy="sync", workers=n, latency=f"exponential:rate={rate}", steps=3000, seed=11)
    expected = harmonic(n) / rate
    assert expected == pytest.approx(sync_iteration_time(parse_latency(config.latency), n))
    _assert_mean_within(log.summary(config), expected, math.sqrt(exponential_order_var(n, n, rate)), "sync")


@pytest.mark.parametrize(("n", "b"), [(8, 2), (20, 4), (50, 5)])
def test_cancel_backup_waits_for_nth_of_n_plus_b(n, b):
    """Backup with cancel: E[T] = (H_{N+B} - H_B) / λ."""
    config, log = run(
        strategy="backup", workers=n, backups=b, semantics="cancel", latency="exponential:rate=1", steps=3000, seed=5
    )
    expected = harmonic(n + b) - harmonic(b)
    _assert_mean_within(log.summary(config), expected, math.sqrt(exponential_order_var(n, n + b, 1.0)), "cancel")


def test_shifted_exponential_adds_the_shift():
    config, log = run(
        strategy="backup",
        workers=8,
        backups=2,
        semantics="cancel",
        latency="shifted-exponential:shift=2,rate=0.5",
        steps=3000,
        seed=3,
    )
    expected = 2 + (harmonic(10) - harmonic(2)) / 0.5
    _assert_mean_within(log.summary(config), expected, math.sqrt(exponential_order_var(8, 10, 0.5)), "shifted")


def test_cancel_matches_numerical_order_statistic_for_lognormal():
    model = parse_latency("lognormal:mu=0,sigma=0.5")
    config, log = run(
        strategy="backup", workers=12, backups=3, semantics="cancel", latency=str(model), steps=3000, seed=9
    )
    expected = cancel_iteration_time(model, 12, 3)
    second = order_mean(
        parse_latency("lognormal:mu=0,sigma=1"), 12, 15
    )  # E[X²] of lognormal(0,.5) = E[Y] of lognormal(0,1)
    std = math.sqrt(second - expected**2) if second > expected**2 else model.std
    _assert_mean_within(log.summary(config), expected, std, "lognormal cancel")


@pytest.mark.parametrize("p", [2, 8, 16])
def test_async_update_rate_and_staleness(p):
    """Async, P Exp(λ=1) workers: P·λ updates per second and mean staleness P - 1."""
    config, log = run(strategy="async", workers=p, latency="exponential:rate=1", steps=20000, seed=2)
    s = log.summary(config)
    rate = async_update_rate(parse_latency(config.latency), p)
    # Intervals of the superposed process are Exp(P·λ): std = mean = 1/(P·λ).
    _assert_mean_within(s, 1 / rate, 1 / rate, "async interval")
    # Staleness is geometric with mean P-1 and variance P(P-1); successive values are
    # correlated, so allow twice the i.i.d. standard error.
    tol = 2 * Z * math.sqrt(p * (p - 1)) / math.sqrt(s["updates"]) + 1e-12
    assert abs(s["mean_staleness"] - async_exponential_staleness(p)) <= tol


@pytest.mark.parametrize(
    "latency", ["exponential:rate=1", "shifted-exponential:shift=1,rate=1", "lognormal:mu=0,sigma=0.5"]
)
def test_cancel_is_not_slower_than_tf_or_drop(latency):
    """Cancelling restarts every worker on the new step at once; tf and drop leave late
    workers busy with useless gradients, so on the same draws cancel is fastest."""
    means = {}
    for semantics in ("tf", "drop", "cancel"):
        config, log = run(
            strategy="backup", workers=8, backups=2, semantics=semantics, latency=latency, steps=3000, seed=4
        )
        means[semantics] = log.summary(config)["mean_iteration_time"]
    assert means["cancel"] < means["tf"] and means["cancel"] < means["drop"], means


def test_tf_fast_workers_contribute_twice():
    config, log = run(strategy="backup", workers=8, backups=2, semantics="tf", steps=1000, seed=1)
    s = log.summary(config)
    assert s["repeat_contributions"] > 0
    assert s["repeat_contributions"] == sum(
        len(u.gradients) - len({g.worker for g in u.gradients}) for u in log.updates
    )
    assert all(len(u.gradients) == 8 for u in log.updates)
