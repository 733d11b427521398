"""The simulator against closed forms: seeded, many iterations, tolerance stated.

Under ``sync`` and ``cancel`` every iteration starts all workers afresh, so iteration times
are i.i.d. with the order statistic's mean and variance and the tolerance is a number of
standard errors of the mean. Async intervals are those of a superposed Poisson process.
"""

import json
import math

import pytest
from conftest import run
from stragglersim.latency import parse_latency
from stragglersim.studies.theory import (
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


# --- predict: closed forms, heavy tails, quadrature with an error estimate -------------------


def _pareto_exact(k: int, n: int, alpha: float, scale: float, power: int) -> float:
    """E[X_{k:n}^p] of Pareto(alpha, scale) from the Beta-function form: scale^p · B(k, n-k+1-p/α)
    / B(k, n-k+1) (David & Nagaraja), written independently of the product in theory.py."""
    from scipy.special import betaln

    return scale**power * math.exp(betaln(k, n - k + 1 - power / alpha) - betaln(k, n - k + 1))


@pytest.mark.parametrize(("k", "n"), [(10, 10), (10, 12), (1, 5), (95, 100)])
def test_pareto_order_statistics_match_the_exact_formula(k, n):
    from stragglersim.studies.theory import _quantile_moment, order_moments

    model = parse_latency("pareto:alpha=3,scale=1.5")
    m = order_moments(model, k, n)
    mean = _pareto_exact(k, n, 3.0, 1.5, 1)
    std = math.sqrt(_pareto_exact(k, n, 3.0, 1.5, 2) - mean**2)
    assert m.mean == pytest.approx(mean, rel=1e-6) and m.std == pytest.approx(std, rel=1e-6)
    assert m.method == "closed form" and not m.notes
    # The generic quadrature, on the same model, agrees with the closed form.
    value, error = _quantile_moment(model, k, n, 1)
    assert value == pytest.approx(mean, rel=1e-6) and error < 1e-6 * mean


@pytest.mark.parametrize(
    ("alpha", "backups", "mean_finite", "std_finite"),
    [
        (0.8, 0, False, False),
        (0.8, 1, True, False),
        (0.8, 2, True, True),
        (1.5, 0, True, False),
        (1.0, 0, False, False),
        (2.0, 0, True, False),
        (2.0, 1, True, True),
    ],
)
def test_heavy_tails_give_infinite_moments_not_numbers(alpha, backups, mean_finite, std_finite):
    """X_{N:N+B} of Pareto(α) has the tail x^-(B+1)α: its mean exists only for (B+1)α > 1 and
    its variance only for (B+1)α > 2 (equality included: the integral diverges)."""
    from stragglersim.studies.theory import order_moments

    m = order_moments(parse_latency(f"pareto:alpha={alpha},scale=1"), 10, 10 + backups)
    assert math.isfinite(m.mean) == mean_finite and math.isfinite(m.std) == std_finite
    assert (m.mean == math.inf or m.mean > 1) and (m.std == math.inf or m.std > 0)
    assert bool(m.notes) == (not std_finite)
    # A straggler mixture with a Pareto delay inherits the heavy tail.
    mixture = parse_latency(f"straggler:base=exponential(rate=1),p=0.1,delay=pareto(alpha={alpha},scale=1)")
    assert mixture.tail_index == alpha


def test_predict_prints_inf_and_says_why(capsys):
    from stragglersim.cli.main import main

    args = ["predict", "--latency", "pareto:alpha=0.8,scale=1", "--workers", "10", "--backups", "0,2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    table = [line.split() for line in out.splitlines() if line.strip().split()[0].isdigit()]
    assert table[0] == ["0", "inf", "inf"]
    assert float(table[1][1]) == pytest.approx(_pareto_exact(10, 12, 0.8, 1.0, 1), rel=1e-5)
    assert "the maximum of 10 pareto:alpha=0.8,scale=1 draws has no finite mean" in out
    assert main([*args[:2], "pareto:alpha=1.5,scale=1", *args[3:], "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["mean_finite"] and rows[0]["mean_iteration_time"] == pytest.approx(_pareto_exact(10, 10, 1.5, 1, 1))
    assert rows[0]["std_iteration_time"] is None and rows[0]["std_finite"] is False
    assert "no finite variance" in rows[0]["notes"][0]
    assert rows[1]["std_finite"] and rows[1]["std_iteration_time"] > 0


@pytest.mark.parametrize("sigma", [1.0, 3.0, 6.0])
def test_lognormal_quadrature_is_accurate_and_quiet(sigma):
    """Long-tailed lognormals (warnings are errors in this suite): the quantile quadrature
    agrees with an independent integration in log space, x = exp(σz), to 1e-6."""
    from scipy import integrate, stats
    from stragglersim.studies.theory import order_moments

    n, k = 10, 10

    def moment(power):
        def f(z):
            log_density = math.log(n) + (n - 1) * stats.norm.logcdf(z) + stats.norm.logpdf(z)
            return math.exp(power * sigma * z + log_density)

        peak = power * sigma  # where exp(p·σ·z)·φ(z) peaks
        return integrate.quad(f, -40, 40 + peak, points=[0.0, peak / 2, peak], limit=500)[0]

    mean = moment(1)
    std = math.sqrt(moment(2) - mean**2)
    m = order_moments(parse_latency(f"lognormal:mu=0,sigma={sigma}"), k, n)
    assert m.mean == pytest.approx(mean, rel=1e-6)
    assert m.std == pytest.approx(std, rel=1e-5)
    assert m.mean_error < 1e-6 * m.mean and not m.notes


def test_a_straggler_mixture_has_its_exact_moments():
    """One computation (N=1, B=0) of Exp(1) that takes 5x with probability 0.05: mean
    0.95 + 0.05·5 = 1.2, E[X²] = 0.95·2 + 0.05·50 = 4.4. The mixture has no exact ``isf``, so
    its upper quantiles stop where 1 - u is still exact."""
    from stragglersim.studies.theory import order_moments

    m = order_moments(parse_latency("straggler:base=exponential(rate=1),p=0.05,factor=5"), 1, 1)
    assert m.mean == pytest.approx(1.2, rel=1e-6) and m.std == pytest.approx(math.sqrt(4.4 - 1.44), rel=1e-6)


def test_empirical_order_statistics_are_exact(tmp_path):
    """Two draws from the three recorded durations 1, 2, 4: enumerate the nine pairs."""
    from stragglersim.studies.theory import order_moments

    trace = tmp_path / "t.csv"
    trace.write_text("worker,step,duration\n0,0,1\n0,1,2\n0,2,4\n")
    model = parse_latency(f"empirical:{trace}")
    pairs = [(a, b) for a in (1, 2, 4) for b in (1, 2, 4)]
    for k, pick in ((1, min), (2, max)):
        values = [pick(p) for p in pairs]
        mean = sum(values) / 9
        m = order_moments(model, k, 2)
        assert m.mean == pytest.approx(mean, rel=1e-12) and m.method == "closed form"
        assert m.std == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 9), rel=1e-12)


def test_huge_but_finite_moments_say_so(capsys):
    """Lognormal sigma=10: the max of 10 is about 10·e^50 (finite, printed); sigma=30 is beyond
    double precision: no number, no traceback, and a note."""
    from stragglersim.cli.main import main

    assert main(["predict", "--latency", "lognormal:mu=0,sigma=10", "--workers", "10", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["mean_iteration_time"] == pytest.approx(10 * math.exp(50), rel=0.01) and not row["notes"]
    assert main(["predict", "--latency", "lognormal:mu=0,sigma=30", "--workers", "10"]) == 0
    captured = capsys.readouterr()
    assert "n/a" in captured.out and "could not be computed in double precision" in captured.out
    assert captured.err == ""
