"""Latency models: SPEC parsing, exact moments against scipy and sampling, clean errors."""

import math

import numpy as np
import pytest
from scipy import stats
from stragglersim.io.errors import InputError
from stragglersim.latency import parse_latency

SPECS = {
    "constant:value=2": (2.0, 0.0),
    "exponential:rate=2": (0.5, 0.25),
    "shifted-exponential:shift=2,rate=0.5": (4.0, 4.0),
    "lognormal:mu=0,sigma=0.5": (math.exp(0.125), (math.exp(0.25) - 1) * math.exp(0.25)),
    "gamma:shape=2,scale=0.5": (1.0, 0.5),
    "weibull:shape=1.5,scale=1": (math.gamma(1 + 1 / 1.5), math.gamma(1 + 2 / 1.5) - math.gamma(1 + 1 / 1.5) ** 2),
    "pareto:alpha=3,scale=1": (1.5, 0.75),
    "straggler:base=exponential(rate=1),p=0.1,factor=5": (1.4, 0.9 * 2 + 0.1 * 50 - 1.4**2),
    "straggler:base=constant(value=1),p=0.1,delay=exponential(rate=0.2)": (1.5, 0.9 + 0.1 * (1 + 2 * 5 + 50) - 2.25),
}


@pytest.mark.parametrize("spec", SPECS)
def test_exact_moments(spec):
    model = parse_latency(spec)
    mean, var = SPECS[spec]
    assert model.mean == pytest.approx(mean, rel=1e-12)
    assert model.var == pytest.approx(var, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_sample_moments_and_cdf(spec):
    """200k draws: the sample mean is within 5 standard errors, and the empirical CDF is
    within 0.005 of the model's at its deciles (a KS-style check that tolerates atoms)."""
    model = parse_latency(spec)
    x = np.sort(model.sample(np.random.default_rng(7), 200_000))
    assert (x > 0).all()
    assert abs(x.mean() - model.mean) <= 5 * model.std / math.sqrt(len(x)) + 1e-12
    for q in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        point = float(model.ppf(q))
        ecdf = np.searchsorted(x, point, side="right") / len(x)
        assert abs(ecdf - float(model.cdf(point))) < 0.005


@pytest.mark.parametrize("spec", SPECS)
def test_ppf_inverts_cdf(spec):
    model = parse_latency(spec)
    for q in (0.05, 0.5, 0.95, 0.999):
        x = float(model.ppf(q))
        assert float(model.cdf(x)) >= q - 1e-9
        assert float(model.cdf(x * (1 - 1e-6))) <= q + 1e-9


def test_scipy_families_match_scipy():
    cases = {
        "exponential:rate=2": stats.expon(scale=0.5),
        "shifted-exponential:shift=2,rate=0.5": stats.expon(loc=2, scale=2),
        "lognormal:mu=0.3,sigma=0.5": stats.lognorm(s=0.5, scale=math.exp(0.3)),
        "gamma:shape=2,scale=0.5": stats.gamma(2, scale=0.5),
        "weibull:shape=1.5,scale=2": stats.weibull_min(1.5, scale=2),
        "pareto:alpha=3,scale=1": stats.pareto(3, scale=1),
    }
    xs = np.linspace(0.1, 10, 50)
    for spec, dist in cases.items():
        np.testing.assert_allclose(parse_latency(spec).cdf(xs), dist.cdf(xs), rtol=1e-12)


def test_sampling_is_prefix_consistent():
    """The d-th draw does not depend on how draws are batched: common random numbers."""
    for spec in SPECS:
        model = parse_latency(spec)
        a = model.sample(np.random.default_rng(3), 10)
        rng = np.random.default_rng(3)
        b = np.concatenate([model.sample(rng, 4), model.sample(rng, 6)])
        np.testing.assert_array_equal(a, b)


def test_spec_round_trips():
    for spec in SPECS:
        assert str(parse_latency(spec)) == spec
        assert str(parse_latency(str(parse_latency(spec)))) == spec


def test_pareto_heavy_tail_has_infinite_mean():
    assert parse_latency("pareto:alpha=1,scale=1").mean == math.inf


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("expo:rate=1", "unknown latency family 'expo'"),
        ("exponential", "missing parameter 'rate'"),
        ("exponential:rate=1,scale=2", "unknown parameter 'scale'"),
        ("exponential:rate=-1", "'rate' must be > 0, got -1"),
        ("exponential:rate=0", "'rate' must be > 0"),
        ("exponential:rate=abc", "not a number: 'abc'"),
        ("exponential:rate=inf", "must be finite"),
        ("exponential:rate=nan", "must be finite"),
        ("exponential:rate", "malformed parameter 'rate'"),
        ("exponential:", "no parameters after ':'"),
        (":rate=1", "missing family name"),
        ("exponential:rate=1,rate=2", "given twice"),
        ("lognormal:mu=0", "missing parameter 'sigma'"),
        ("shifted-exponential:shift=-1,rate=1", "'shift' must be >= 0"),
        ("straggler:base=exponential(rate=1),p=1.5,factor=2", "'p' must be in [0, 1]"),
        ("straggler:base=exponential(rate=1),p=0.1,factor=0.5", "'factor' must be >= 1"),
        ("straggler:base=exponential(rate=1),p=0.1", "give a slowdown 'factor'"),
        ("straggler:base=2,p=0.1,factor=2", "'base' must be a model"),
        ("straggler:base=exponential(rate=-1),p=0.1,factor=2", "'rate' must be > 0"),
        ("straggler:base=exponential(rate=1,p=0.1", "unbalanced '('"),
        ("exponential:rate=exponential(rate=1)", "'rate' must be a number"),
        ("expo(rate=1)", "unknown latency family 'expo(rate=1)'"),
        ("straggler:base=(rate=1),p=0.1,factor=2", "parameter 'base' has a nested spec without a family"),
        ("straggler:base=expo(rate=1),p=0.1,factor=2", "unknown latency family 'expo' (known: constant, exponential"),
        ("empirical:", "give the trace file after 'empirical:'"),
    ],
)
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(InputError) as err:
        parse_latency(spec)
    text = str(err.value)
    assert message in text
    assert spec.strip() in text  # the message quotes what the user typed
    assert "\n" not in text


def test_straggler_cdf_with_a_random_delay_is_the_hypoexponential_mixture():
    """A straggling computation 2X + D, X and D exponential(1): P(2X + D > x) = 2 exp(-x/2) - exp(-x)."""
    model = parse_latency("straggler:base=exponential(rate=1),p=0.1,factor=2,delay=exponential(rate=1)")
    x = np.array([0.0, 0.5, 2.0, 5.0])
    slow = 1 - 2 * np.exp(-x / 2) + np.exp(-x)
    np.testing.assert_allclose(model.cdf(x), 0.9 * (1 - np.exp(-x)) + 0.1 * slow, rtol=1e-8, atol=1e-12)
