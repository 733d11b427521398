"""Every branch of ``theory.py``, on both sides of each switch and far beyond it, against an
independent high-precision computation: mpmath (40-50 digits) or exact ``fractions.Fraction`` sums.

The switches checked: ``harmonic`` (digamma above ``EXACT_TERMS``), ``exponential_order_mean`` and
``exponential_order_var`` (closed forms in digamma / trigamma for k > ``EXACT_TERMS``),
``pareto_order_moment`` (infinite at (n-k+1)·α <= p; Pochhammer symbols for k > ``EXACT_TERMS``), the
Pareto variance (term by term up to ``EXACT_TERMS`` terms, a Hurwitz-zeta series beyond, the plain
difference for tiny tail indices), ``order_moments`` per family (constant, (shifted) exponential,
Pareto, empirical, quadrature; finite and infinite moments; the Beta-mode and Beta-quantile splits
of the quadrature, ``SPIKE_N``; the exact-``isf`` and 1 - u = 1e-15 tails; the notes), and the
callers: ``predict_backups``, ``reports.predict`` (its ``MAX_PREDICT`` guard, both sides) and
``api.predict`` at worker counts past ``EXACT_TERMS`` and up to 10^12, ``time_to_target``,
``sync``/``cancel_iteration_time``, ``async_update_rate``, ``async_exponential_staleness`` and
``dutta_error_bound``.

Tolerances (EPS = 2^-52 is the double's unit roundoff, twice the largest relative rounding error):

- A correctly rounded sum of rounded terms (``math.fsum``) is within 2 EPS relatively; we allow 4 EPS.
- A difference of two closed forms (digamma, trigamma, log-gamma) is only as good as its operands:
  we allow 4 EPS times the *sum of their magnitudes* (the subtraction's condition number) on top of
  4 EPS of the result. Where the operands nearly cancel (k << n) that is the most the float
  formula allows, and we say so at each such case.
- Quadratures: the reported error estimate plus 1e-10 relative (the Beta(k, n-k+1) density of
  SciPy is conditioned like sqrt(n) near its spike, so for n = 10^12 its last ~6 digits are noise
  no quadrature can see), and never worse than 1e-8 relative (quad's default relative tolerance).

Each assertion is tight enough that the plausible one-line slips (ψ(n) for ψ(n+1), n-k for n-k+1, a
switch taken on the wrong side, a lost Beta spike) fail by orders of magnitude.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from stragglersim import api
from stragglersim.core.limits import MAX_PREDICT
from stragglersim.io.errors import InputError
from stragglersim.latency import Empirical, LatencyModel, parse_latency
from stragglersim.studies import theory
from stragglersim.studies.reports import predict as report_predict
from stragglersim.studies.survival import order_means
from stragglersim.studies.theory import (
    EXACT_TERMS,
    LARGE_ERROR,
    SPIKE_N,
    async_exponential_staleness,
    async_update_rate,
    cancel_iteration_time,
    dutta_error_bound,
    exponential_order_mean,
    exponential_order_var,
    harmonic,
    order_mean,
    order_moments,
    order_std,
    pareto_order_moment,
    predict_backups,
    sync_iteration_time,
    time_to_target,
)

EPS = 2.0**-52
DBL_MAX = 1.7976931348623157e308
DPS = 50  # mpmath digits: H_n - H_{n-k} at k/n = 1e-12 still keeps 30 of them
QUAD_FLOOR = 1e-10  # relative: what SciPy's Beta density lets a double-precision quadrature reach
E = EXACT_TERMS


def close(got: float, exact, rel: float, absolute: float = 0.0, what: str = "") -> None:
    """|got - exact| <= rel·|exact| + absolute, with the numbers in the message."""
    exact = mp.mpf(exact)
    err = abs(mp.mpf(got) - exact)
    tol = rel * abs(exact) + absolute
    assert err <= tol, f"{what}: got {got!r}, exact {mp.nstr(exact, 20)}, error {mp.nstr(err, 3)} > tolerance {tol:.3g}"


# --- exact references -------------------------------------------------------------------------


def mp_harmonic(n: int):
    with mp.workdps(DPS):
        return mp.harmonic(n)


def mp_exp_mean(k: int, n: int, rate: float, shift: float = 0.0):
    """shift + (H_n - H_{n-k}) / rate in 50 digits."""
    with mp.workdps(DPS):
        return mp.mpf(shift) + (mp.harmonic(n) - mp.harmonic(n - k)) / mp.mpf(rate)


def mp_exp_var(k: int, n: int, rate: float):
    """Σ_{i=n-k+1}^{n} 1/i² / rate² = (ψ'(n-k+1) - ψ'(n+1)) / rate² in 50 digits."""
    with mp.workdps(DPS):
        return (mp.psi(1, n - k + 1) - mp.psi(1, n + 1)) / mp.mpf(rate) ** 2


def fraction_harmonic(n: int) -> Fraction:
    return sum((Fraction(1, i) for i in range(1, n + 1)), Fraction(0))


def mp_pareto_moment(k: int, n: int, alpha: float, scale: float, power: int, dps: int = DPS):
    """E[X_{k:n}^p] = scale^p · B(k, n-k+1-p/α) / B(k, n-k+1) (David & Nagaraja), in log-gamma form."""
    with mp.workdps(dps):
        r = mp.mpf(power) / mp.mpf(alpha)
        lg = mp.loggamma
        return mp.mpf(scale) ** power * mp.exp(lg(n + 1) + lg(n - k + 1 - r) - lg(n - k + 1) - lg(n + 1 - r))


def mp_pareto_std(k: int, n: int, alpha: float, scale: float):
    with mp.workdps(2 * DPS):  # E[X²] - E[X]² cancels all but ~1/n² of it: 100 digits keep 70
        second = mp_pareto_moment(k, n, alpha, scale, 2, 2 * DPS)
        return mp.sqrt(second - mp_pareto_moment(k, n, alpha, scale, 1, 2 * DPS) ** 2)


def exp_mean_tolerance(k: int, n: int, rate: float, shift: float = 0.0) -> tuple[float, float]:
    """(relative, absolute): 4 EPS of the result, plus for k > EXACT_TERMS 4 EPS of H_n + H_{n-k} (the
    two digamma closed forms whose difference it is)."""
    if k <= E:
        return 4 * EPS, 4 * EPS * abs(shift)
    return 4 * EPS, 4 * EPS * (float(mp_harmonic(n) + mp_harmonic(n - k)) / rate + abs(shift))


def exp_var_tolerance(k: int, n: int, rate: float) -> tuple[float, float]:
    if k <= E:
        return 4 * EPS, 0.0
    with mp.workdps(DPS):
        operands = float(mp.psi(1, n - k + 1) + mp.psi(1, n + 1))
    return 4 * EPS, 4 * EPS * operands / rate**2


# --- harmonic ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 10, E - 1, E, E + 1, 10**7, 10**12, 10**15])
def test_harmonic_on_both_sides_of_the_digamma_switch(n):
    """H_n by summation up to EXACT_TERMS and ψ(n+1) + γ beyond: both within 4 EPS of mpmath's H_n
    (the switch itself must not show: H_{E+1} - H_E is 1/(E+1) to the last bits)."""
    if n == 0:
        assert harmonic(0) == 0.0
        return
    close(harmonic(n), mp_harmonic(n), 4 * EPS, what=f"H_{n}")


def test_harmonic_steps_by_one_term_across_the_switch():
    """H_{E+1} (digamma) - H_E (sum) = 1/(E+1): the two branches agree to a few units of H_E's last digit."""
    step = harmonic(E + 1) - harmonic(E)
    assert abs(step - 1 / (E + 1)) <= 8 * EPS * harmonic(E), step


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=400))
def test_harmonic_small_n_is_the_exact_fraction(n):
    """The summation branch against the exact rational H_n: within 2 EPS (fsum rounds once, each 1/i once)."""
    exact = fraction_harmonic(n)
    assert abs(Fraction(harmonic(n)) - exact) <= 2 * EPS * exact


# --- exponential order statistics -------------------------------------------------------------

EXP_CASES = [  # (k, n): the near branch (k <= E: term by term), then the far one (closed forms)
    (1, 1),
    (1, 2),
    (2, 2),
    (3, 7),
    (1, 10**12),  # k << n: H_n - H_{n-k} would keep only 1e-12/28 of H_n (it was 0.2% off)
    (2, E + 1),
    (E - 1, E),
    (E, E),
    (E, E + 1),
    (E, 10**12),
    (E + 1, E + 1),
    (E + 1, E + 2),
    (E + 1, 10**7),
    (10**7, 10**7),
    (5 * 10**11, 10**12),
    (10**12 - 5, 10**12),
    (10**12, 10**12),
    (E + 1, 10**12),  # far branch with k/n = 1e-6: the digamma difference keeps ~8 digits fewer
]


@pytest.mark.parametrize(("k", "n"), EXP_CASES)
def test_exponential_order_mean(k, n):
    """E[X_{k:n}] = shift + (H_n - H_{n-k}) / rate (David & Nagaraja §2.5) on both sides of k = EXACT_TERMS."""
    rate, shift = 2.5, 0.75
    rel, absolute = exp_mean_tolerance(k, n, rate, shift)
    close(exponential_order_mean(k, n, rate, shift), mp_exp_mean(k, n, rate, shift), rel, absolute, f"E[X_{k}:{n}]")
    rel, absolute = exp_mean_tolerance(k, n, 0.4)
    close(exponential_order_mean(k, n, 0.4), mp_exp_mean(k, n, 0.4), rel, absolute, f"E[X_{k}:{n}] unshifted")


@pytest.mark.parametrize(
    ("k", "n"),
    [(1, 1), (1, 2), (3, 7), (1, 10**12), (E - 1, E), (E, E), (E, E + 1), (E + 1, E + 1)]
    + [(E + 1, E + 2), (E + 1, 10**7), (10**7, 10**7), (10**12, 10**12), (10**12 - 3, 10**12), (E + 1, 10**12)],
)
def test_exponential_order_var(k, n):
    """Var[X_{k:n}] = Σ_{i=n-k+1}^{n} 1/i² / rate² by summation up to k = EXACT_TERMS, ψ'(n-k+1) - ψ'(n+1) beyond."""
    rate = 0.4
    rel, absolute = exp_var_tolerance(k, n, rate)
    close(exponential_order_var(k, n, rate), mp_exp_var(k, n, rate), rel, absolute, f"Var[X_{k}:{n}]")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_exponential_order_moments_small_are_exact_fractions(kn):
    """Small k, n: the exact rational Σ 1/i and Σ 1/i² (rate 1), to 4 EPS."""
    k, n = kn
    mean = sum((Fraction(1, i) for i in range(n - k + 1, n + 1)), Fraction(0))
    var = sum((Fraction(1, i * i) for i in range(n - k + 1, n + 1)), Fraction(0))
    assert abs(Fraction(exponential_order_mean(k, n, 1.0)) - mean) <= 4 * EPS * mean
    assert abs(Fraction(exponential_order_var(k, n, 1.0)) - var) <= 4 * EPS * var


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    st.integers(E - 50, 10**12).flatmap(
        lambda n: st.tuples(st.sampled_from([1, 2, E - 1, E, E + 1, n // 2, n]), st.just(n))
    )
)
def test_exponential_order_moments_around_and_past_the_switch_slow(kn):
    """Random n from just below EXACT_TERMS to 10^12, k on both sides of the switch (and k = n, n/2)."""
    k, n = kn
    if not 1 <= k <= n:
        return
    rel, absolute = exp_mean_tolerance(k, n, 1.0)
    close(exponential_order_mean(k, n, 1.0), mp_exp_mean(k, n, 1.0), rel, absolute, f"E[X_{k}:{n}]")
    rel, absolute = exp_var_tolerance(k, n, 1.0)
    close(exponential_order_var(k, n, 1.0), mp_exp_var(k, n, 1.0), rel, absolute, f"Var[X_{k}:{n}]")


@pytest.mark.parametrize(
    ("spec", "rate", "shift"),
    [("exponential:rate=3", 3.0, 0.0), ("shifted-exponential:shift=1.5,rate=0.25", 0.25, 1.5)],
)
@pytest.mark.parametrize(("k", "n"), [(1, 1), (4, 9), (1, 10**12), (E + 1, E + 1), (10**12 - 1, 10**12)])
def test_order_moments_of_exponentials_are_the_closed_forms(spec, rate, shift, k, n):
    """The (shifted) exponential takes the closed forms: error 0, no notes; the shift moves only the mean."""
    m = order_moments(parse_latency(spec), k, n)
    assert (m.method, m.mean_error, m.std_error, m.notes) == ("closed form", 0.0, 0.0, ())
    rel, absolute = exp_mean_tolerance(k, n, rate, shift)
    close(m.mean, mp_exp_mean(k, n, rate, shift), rel, absolute, "mean")
    rel, absolute = exp_var_tolerance(k, n, rate)
    with mp.workdps(DPS):
        close(m.std, mp.sqrt(mp_exp_var(k, n, rate)), rel, math.sqrt(absolute) if absolute else 0.0, "std")


@pytest.mark.parametrize("bad", [(0, 3), (4, 3), (1, 0), (-1, 5)])
def test_k_outside_one_to_n_is_refused(bad):
    k, n = bad
    model = parse_latency("lognormal:mu=0,sigma=0.5")
    for call in (
        lambda: exponential_order_mean(k, n, 1.0),
        lambda: exponential_order_var(k, n, 1.0),
        lambda: pareto_order_moment(k, n, 3.0, 1.0, 1),
        lambda: order_moments(model, k, n),
    ):
        with pytest.raises(ValueError, match="need 1 <= k <= n"):
            call()


# --- Pareto -----------------------------------------------------------------------------------


def pareto_tolerance(k: int, n: int, alpha: float, power: int, exact) -> float:
    """Relative. Up to k = EXACT_TERMS the log of the product is a sum of k terms -log1p(-r/j), each good
    to an EPS, so it is good to a few EPS of itself; past it the Pochhammer ratio is good to a few EPS
    while it fits in a double, and else the series' first sum r·(ψ(n+1) - ψ(m)) carries 8 EPS·r·ln n.
    Near the threshold (n-k+1)·α -> p the moment is ill-conditioned in α itself: r/(a - r) more EPS."""
    r, a = power / alpha, n - k + 1
    log_size = abs(float(mp.log(exact / 1.7**power)))
    far = 8 * EPS * r * math.log(n + 1) if k > E else 0.0
    return 1e-14 + 4 * EPS * log_size + far + 4 * EPS * r / (a - r)


def pareto_std_tolerance(k: int, n: int, alpha: float, mean) -> float:
    """Relative, for std = mean·sqrt(expm1(Σ_j log1p(r²/(j(j-2r))))): the mean's tolerance, the variance's
    own threshold term (a -> 2r), and past EXACT_TERMS the series' first zeta difference, which cancels by n/k."""
    r, a = 1 / alpha, n - k + 1
    return pareto_tolerance(k, n, alpha, 1, mean) + 4 * EPS * (2 * r / (a - 2 * r) + (n / k if k > E else 1))


PARETO_MOMENT_CASES = [  # (k, n, alpha, power): around the threshold (n-k+1)·α = p, both sides of k = E
    (1, 1, 3.0, 1),
    (1, 1, 3.0, 2),
    (5, 5, 1.000001, 1),  # a·α = 1.000001: finite and huge
    (5, 5, 1.0, 1),  # a·α = 1: infinite
    (5, 5, 0.999999, 1),
    (3, 5, 1 / 3, 1),  # a = 3: a·α = 1.0 exactly in doubles
    (3, 5, 0.34, 1),
    (3, 5, 2 / 3, 2),  # a·α = 2.0 exactly
    (3, 5, 0.67, 2),
    (1, 10**12, 0.5, 2),  # a·α = 5e11
    (10**12 - 3, 10**12, 0.5, 2),  # a = 4: a·α = 2: infinite
    (10**12 - 3, 10**12, 0.51, 2),
    (E, E, 3.0, 1),  # the last summed k
    (E, 10**12, 3.0, 2),
    (E + 1, E + 1, 3.0, 1),  # the first Pochhammer k
    (E + 1, E + 1, 1.0, 1),
    (E + 1, E + 1, 1.5, 2),
    (E + 1, 10**12, 3.0, 2),
    (10**12, 10**12, 2.5, 2),
    (10**12, 10**12, 2.0, 2),
    (E + 1, 10**12, 1 / 30, 1),  # Γ(n+1)/Γ(n+1-r) = 10^360 overflows, the ratio is 1.00003: the series
    (E + 1, E + 10**9, 1e-5, 1),  # 2.6e43, r = 1e5: the series, no terms one by one
    (99900, 10**5, 0.01, 1),  # 1e342: finite but beyond the doubles (it raised OverflowError)
    (E + 1, 3 * 10**5 + E, 1e-5, 1),  # 4e70178, and 4e6 terms below 40r: beyond the doubles too
]


@pytest.mark.parametrize(("k", "n", "alpha", "power"), PARETO_MOMENT_CASES)
def test_pareto_order_moment(k, n, alpha, power):
    """E[X_{k:n}^p] exists iff (n-k+1)·α > p; then it is the Beta-function form (mpmath, 50 digits), or
    nan where that is finite but past the largest double."""
    got = pareto_order_moment(k, n, alpha, 1.7, power)
    if (n - k + 1) * alpha <= power:
        assert got == math.inf
        return
    exact = mp_pareto_moment(k, n, alpha, 1.7, power)
    if exact > DBL_MAX:
        assert math.isnan(got)  # finite, but no double
        return
    close(got, exact, pareto_tolerance(k, n, alpha, power, exact), what="E[X^p]")


@pytest.mark.parametrize(("k", "n", "alpha", "power"), [(5 * 10**6, 10**7, 0.5, 1), (15 * 10**5, 10**7, 1.5, 2)])
def test_pochhammer_moments_keep_the_last_digits(k, n, alpha, power):
    """Past EXACT_TERMS, a ratio of Pochhammer symbols is within an ulp or two of mpmath; the sum of logs
    the code falls back on when it overflows is 3e-15 to 5e-15 off here, so the shortcut is taken
    whenever it is finite (a Pochhammer with its arguments swapped is always infinite at this n)."""
    got = pareto_order_moment(k, n, alpha, 1.0, power)
    assert got == pytest.approx(float(mp_pareto_moment(k, n, alpha, 1.0, power)), rel=1e-15, abs=0)


PARETO_CASES = [  # (k, n, alpha)
    (1, 1, 3.0),
    (1, 1, 1.5),  # mean only
    (1, 1, 0.9),  # neither
    (10, 10, 2.0),  # a·α = 2: no variance
    (9, 10, 1.0),  # a = 2: 2.0: no variance, finite mean
    (8, 10, 0.8),  # a = 3: 2.4: both
    (1, 10**8, 3.0),  # E[X²] - E[X]² kept nothing of the variance here (std came out 0)
    (10, 10**4, 0.8),
    (E + 1, E + 1, 2.5),  # far branch, head of terms j = 1..m-1 then the zeta series
    (E + 1, E + 4, 0.8),  # a = 4: 3.2
    (E + 1, 2 * E, 3.0),  # a = E: no head; old std 3e-9 off
    (E + 1, 10**9, 0.8),  # old std 8e-4 off
    (10**12 - 3, 10**12, 0.8),
    (E + 1, 10**12, 1 / 30),  # the Pochhammer symbols overflow: the zeta series
    (E + 1, E + 10**9, 1e-5),  # r = 1e5: the series alone (a > 40r)
    (99900, 10**5, 0.01),  # mean 1e342: nan and a note (it raised OverflowError)
    (E + 1, 3 * 10**5 + E, 1e-5),  # more than EXACT_TERMS terms below 40r: nan, nan, two notes
]


@pytest.mark.parametrize(("k", "n", "alpha"), PARETO_CASES)
def test_order_moments_of_pareto(k, n, alpha):
    """Pareto X_{k:n} with scale 1.7: finite moments against mpmath (the std from 100-digit E[X²] - E[X]²),
    infinite ones inf with a nan error, method closed form, and a note for each missing moment."""
    m = order_moments(parse_latency(f"pareto:alpha={alpha!r},scale=1.7"), k, n)
    a = n - k + 1
    assert m.method == "closed form"
    missing = []  # the notes expected beside the tail's
    if a * alpha > 1:
        mean = mp_pareto_moment(k, n, alpha, 1.7, 1)
        if mean > DBL_MAX:
            assert math.isnan(m.mean) and math.isnan(m.mean_error)
            missing.append("mean")
        else:
            assert m.mean_error == 0.0
            close(m.mean, mean, pareto_tolerance(k, n, alpha, 1, mean), what="mean")
    else:
        assert m.mean == math.inf and math.isnan(m.mean_error)
    if a * alpha > 2:
        std = mp_pareto_std(k, n, alpha, 1.7)
        if missing or std > DBL_MAX:
            assert math.isnan(m.std) and math.isnan(m.std_error)
            missing.append("std")
        else:
            close(m.std, std, pareto_std_tolerance(k, n, alpha, mean), what="std")
            assert m.std_error == 0.0
    else:
        assert m.std == math.inf and math.isnan(m.std_error)
        exponent = f"x^(-{a * alpha:g})"
        assert exponent in m.notes[0]
        assert ("no finite mean or variance" if a * alpha <= 1 else "no finite variance") in m.notes[0]
    beyond = [note for note in m.notes if "finite but could not be computed in double precision" in note]
    assert [note.split()[1] for note in beyond] == missing
    assert len(m.notes) == len(missing) + (a * alpha <= 2)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    st.floats(0.05, 6.0, allow_nan=False),
)
def test_pareto_finiteness_follows_the_tail_exponent(kn, alpha):
    """For any k, n, α: the mean is finite iff (n-k+1)·α > 1, the std iff > 2, and finite values match mpmath."""
    k, n = kn
    m = order_moments(parse_latency(f"pareto:alpha={alpha!r},scale=1"), k, n)
    a = n - k + 1
    assert math.isfinite(m.mean) == (a * alpha > 1) and math.isfinite(m.std) == (a * alpha > 2)
    if a * alpha > 1:
        mean = mp_pareto_moment(k, n, alpha, 1.0, 1)
        close(m.mean, mean, pareto_tolerance(k, n, alpha, 1, mean), what="mean")
    if a * alpha > 2:
        close(m.std, mp_pareto_std(k, n, alpha, 1.0), pareto_std_tolerance(k, n, alpha, mean), what="std")


@pytest.mark.slow
@pytest.mark.parametrize(("k", "n", "alpha"), [(E, E, 3.0), (E, 2 * E, 3.0), (E - 1000, E, 0.8), (E, 10**12, 2.5)])
def test_order_moments_of_pareto_at_the_last_summed_k_slow(k, n, alpha):
    """k = EXACT_TERMS (a million terms twice, ~1-2 s each): the side of the switch the default run
    checks only through ``pareto_order_moment``; (E, 2E) had its std 0.13% off before the variance
    was summed term by term."""
    test_order_moments_of_pareto(k, n, alpha)


@pytest.mark.parametrize(
    ("k", "n", "which"),
    [(1, 200, "the minimum of 200"), (2, 200, "the 2nd smallest of 200"), (3, 200, "the 3rd smallest of 200")]
    + [(4, 200, "the 4th smallest"), (11, 200, "the 11th smallest"), (12, 200, "the 12th smallest")]
    + [(13, 200, "the 13th smallest"), (21, 200, "the 21st smallest"), (22, 200, "the 22nd smallest")]
    + [(23, 200, "the 23rd smallest"), (101, 200, "the 101st smallest"), (111, 200, "the 111th smallest")]
    + [(112, 200, "the 112th smallest"), (113, 200, "the 113th smallest"), (121, 200, "the 121st smallest")]
    + [(200, 200, "the maximum of 200"), (1, 1, "a single pareto")],
)
def test_notes_name_the_order_statistic(k, n, which):
    """α = 0.01: X_{k:200} has tail exponent (201-k)/100 <= 2, so every one gets a note naming it in English."""
    m = order_moments(parse_latency("pareto:alpha=0.01,scale=1"), k, n)
    assert len(m.notes) == 1 and which in m.notes[0], m.notes


# --- constant and empirical (discrete) --------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(1, 1), (3, 7), (7, 7), (1, 10**12), (10**12, 10**12)])
def test_constant_latency_is_its_value(k, n):
    m = order_moments(parse_latency("constant:value=0.25"), k, n)
    assert m == theory.OrderMoments(0.25, 0.0, 0.0, 0.0, "closed form")


def discrete_order_moments(values: list[Fraction], k: int, n: int) -> tuple[Fraction, Fraction]:
    """Exact mean and variance of X_{k:n} for the empirical distribution of ``values`` (ties allowed):
    P(X_{k:n} <= v) = P(at least k of n draws <= v) = Σ_{j=k}^{n} C(n,j) F^j (1-F)^(n-j), F = #{<= v}/m."""
    m = len(values)
    distinct = sorted(set(values))
    below, mass = Fraction(0), {}
    for v in distinct:
        f = Fraction(sum(1 for x in values if x <= v), m)
        at_most = sum((math.comb(n, j) * f**j * (1 - f) ** (n - j) for j in range(k, n + 1)), Fraction(0))
        mass[v], below = at_most - below, at_most
    mean = sum((p * v for v, p in mass.items()), Fraction(0))
    return mean, sum((p * (v - mean) ** 2 for v, p in mass.items()), Fraction(0))


def empirical(values) -> Empirical:
    return Empirical(np.asarray([float(v) for v in values]), "empirical:test")


@pytest.mark.parametrize(
    ("values", "k", "n"),
    [
        ([3], 1, 1),
        ([3], 1, 5),  # one value: every order statistic is it
        ([2, 2, 2, 2], 2, 3),  # all equal
        ([1, 2, 4], 1, 2),
        ([1, 2, 4], 2, 2),
        ([1, 1, 2, 5, 5, 5], 1, 4),  # ties
        ([1, 1, 2, 5, 5, 5], 3, 4),
        ([1, 1, 2, 5, 5, 5], 4, 4),
    ],
)
def test_empirical_order_statistics_by_enumeration(values, k, n):
    """Enumerate all m^n equally likely draws: the k-th smallest of each, its mean and variance, exactly;
    the binomial formula above agrees exactly, and the package to 1e-13."""
    draws = [sorted(d)[k - 1] for d in itertools.product([Fraction(v) for v in values], repeat=n)]
    mean = Fraction(sum(draws), len(draws))
    var = sum((Fraction(d) - mean) ** 2 for d in draws) / len(draws)
    assert discrete_order_moments([Fraction(v) for v in values], k, n) == (mean, var)
    m = order_moments(empirical(values), k, n)
    assert m.method == "closed form" and m.mean_error == 0.0 and m.std_error == 0.0
    close(m.mean, mean, 1e-13, what="mean")
    close(m.std, mp.sqrt(var), 1e-13, 1e-14 * float(max(values)), what="std")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=8),
    st.integers(1, 30).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
)
@example(values=[1, 1, 1, 1, 2], kn=(1, 14))  # a top weight of 0.2^14: lost to 1 - CDF, kept by the survival function
def test_empirical_order_statistics_with_ties_are_exact(values, kn):
    """Random small samples (many ties among 1..6) and sizes: mean and std to 1e-12 of the exact values."""
    k, n = kn
    mean, var = discrete_order_moments([Fraction(v) for v in values], k, n)
    m = order_moments(empirical(values), k, n)
    close(m.mean, mean, 1e-12, what="mean")
    close(m.std, mp.sqrt(var), 1e-12, 1e-12 * max(values), what="std")


def mp_beta_cdf(x, a: int, b: int):
    """I_x(a, b) = ∫_0^x Beta(a, b) density, by mpmath.quad in logs (its betainc crawls at a, b ~ 1e11),
    split at the mode ± up to 40 standard deviations."""
    with mp.workdps(30 + int(math.log10(a + b))):
        log_beta = mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)
        mode, sd = mp.mpf(a - 1) / (a + b - 2), mp.sqrt(mp.mpf(a) * b / ((a + b) ** 2 * (a + b + 1)))
        inside = {mode + z * sd for z in (-40, -10, -3, 0, 3, 10, 40)}
        points = [mp.mpf(0), *sorted(u for u in inside if 0 < u < x), mp.mpf(x)]
        return mp.quad(lambda u: mp.exp((a - 1) * mp.log(u) + (b - 1) * mp.log1p(-u) - log_beta), points)


@pytest.mark.parametrize(("k", "n"), [(1, 10**6), (10**6, 10**6), (250_000, 10**6), (25 * 10**10, 10**12)])
def test_empirical_order_statistics_at_large_n(k, n):
    """Values 1, 2, 2, 7 at n up to 10^12, k/n = 1/4 = F(1) included (X_{k:n} is 1 or 2, each about half the
    time): P(X_{k:n} <= v) = I_F(k, n-k+1), the Beta(k, n-k+1) probability below F(v), by mpmath."""
    values = [1, 2, 2, 7]
    with mp.workdps(DPS):
        cdf = [mp_beta_cdf(mp.mpf(c) / 4, k, n - k + 1) for c in (1, 3)] + [mp.mpf(1)]
        probs = [cdf[0], cdf[1] - cdf[0], cdf[2] - cdf[1]]
        mean = sum(p * v for p, v in zip(probs, (1, 2, 7), strict=True))
        std = mp.sqrt(sum(p * (v - mean) ** 2 for p, v in zip(probs, (1, 2, 7), strict=True)))
    m = order_moments(empirical(values), k, n)
    close(m.mean, mean, 1e-12, what="mean")
    close(m.std, std, 1e-9, 1e-12, what="std")


def test_trace_and_empirical_files_take_the_discrete_branch(tmp_path):
    """``empirical:`` and ``trace:`` specs (pooled durations 1, 1, 3 of two workers): the exact discrete moments."""
    trace = tmp_path / "t.csv"
    trace.write_text("worker,step,duration\n0,0,1\n0,1,3\n1,0,1\n")
    mean, var = discrete_order_moments([Fraction(1), Fraction(1), Fraction(3)], 2, 3)
    for family in ("empirical", "empirical-per-worker", "trace"):
        m = order_moments(parse_latency(f"{family}:{trace}"), 2, 3)
        close(m.mean, mean, 1e-13, what=family)
        close(m.std, mp.sqrt(var), 1e-13, what=family)


# --- quadrature over quantiles -----------------------------------------------------------------


class MpLognormal:
    """lognormal(μ, σ) written from its definition, in mpmath."""

    def __init__(self, mu: float, sigma: float):
        self.mu, self.sigma = mp.mpf(mu), mp.mpf(sigma)

    def _z(self, x):
        return (mp.log(x) - self.mu) / (self.sigma * mp.sqrt(2))

    def cdf(self, x):
        return mp.erfc(-self._z(x)) / 2

    def sf(self, x):
        return mp.erfc(self._z(x)) / 2

    def logpdf(self, x):
        return -(self._z(x) ** 2) - mp.log(x * self.sigma * mp.sqrt(2 * mp.pi))


class MpGamma:
    """gamma(shape a, scale θ): regularized incomplete gamma functions, in mpmath."""

    def __init__(self, shape: float, scale: float):
        self.a, self.theta = mp.mpf(shape), mp.mpf(scale)

    def cdf(self, x):
        return mp.gammainc(self.a, 0, x / self.theta, regularized=True)

    def sf(self, x):
        return mp.gammainc(self.a, x / self.theta, mp.inf, regularized=True)

    def logpdf(self, x):
        return (self.a - 1) * mp.log(x / self.theta) - x / self.theta - mp.loggamma(self.a) - mp.log(self.theta)


class MpWeibull:
    """weibull(shape c, scale λ): F = 1 - exp(-(x/λ)^c), in mpmath."""

    def __init__(self, shape: float, scale: float):
        self.c, self.lam = mp.mpf(shape), mp.mpf(scale)

    def cdf(self, x):
        return -mp.expm1(-((x / self.lam) ** self.c))

    def sf(self, x):
        return mp.exp(-((x / self.lam) ** self.c))

    def logpdf(self, x):
        return mp.log(self.c / self.lam) + (self.c - 1) * mp.log(x / self.lam) - (x / self.lam) ** self.c


class MpStraggler:
    """straggler: Exp(1), or factor·Exp(1) with probability p: F = (1-p)(1 - e^-x) + p(1 - e^(-x/f))."""

    def __init__(self, p: float, factor: float):
        self.p, self.f = mp.mpf(p), mp.mpf(factor)

    def cdf(self, x):
        return 1 - self.sf(x)

    def sf(self, x):
        return (1 - self.p) * mp.exp(-x) + self.p * mp.exp(-x / self.f)

    def logpdf(self, x):
        return mp.log((1 - self.p) * mp.exp(-x) + self.p / self.f * mp.exp(-x / self.f))


FAMILIES = {
    "lognormal:mu=0,sigma=0.5": MpLognormal(0, 0.5),
    "lognormal:mu=0.3,sigma=2": MpLognormal(0.3, 2),
    "gamma:shape=2.5,scale=0.4": MpGamma(2.5, 0.4),
    "weibull:shape=0.7,scale=1.5": MpWeibull(0.7, 1.5),
    "straggler:base=exponential(rate=1),p=0.05,factor=5": MpStraggler(0.05, 5),
}


def split_points(model, k: int, n: int) -> list[float]:
    """Where to split the x-integral: x at quantiles of the Beta(k, n-k+1) weight. They come from SciPy
    and the model's own quantiles, but only split the integral: each piece is still integrated by mpmath,
    whose error estimate is asserted, so they can slow the oracle, not bias it."""
    u_weight, s_weight = stats.beta(k, n - k + 1), stats.beta(n - k + 1, k)
    xs = set()
    for q in (1e-20, 1e-6, 0.05, 0.5):
        xs |= {float(model.ppf(u)) for u in (u_weight.ppf(q), u_weight.isf(q)) if 0 < u <= 0.5}
        xs |= {float(model.isf(s)) for s in (s_weight.ppf(q), s_weight.isf(q)) if 0 < s < 0.5}
    xs = sorted(x for x in xs if 0 < x < math.inf)
    return sorted({*xs, *(math.sqrt(a * b) for a, b in zip(xs, xs[1:], strict=False))})  # and halfway in logs


def mp_order_moment(dist, model, k: int, n: int, power: int, center=0, extra_digits: int = 0):
    """E[(X_{k:n} - c)^p] = ∫ (x-c)^p n!/((k-1)!(n-k)!) F^(k-1) (1-F)^(n-k) f dx (REFERENCES.md), by
    mpmath.quad (tanh-sinh) on the distribution's own cdf, survival function and density, in logs so
    that F^(10^12) stays representable; digits enough for log n!/(...) ~ n ln 2 to keep 20 in all.
    Returns (value, error): mpmath's estimate, or where that is not below 1e-14 (it is pessimistic for
    some Weibull spikes), the difference from a second evaluation with 15 more digits and degrees."""
    with mp.workdps(20 + extra_digits + int(math.log10(n + 1))):
        log_c = mp.loggamma(n + 1) - mp.loggamma(k) - mp.loggamma(n - k + 1)
        c = mp.mpf(center)

        def integrand(x):
            cdf, sf = dist.cdf(x), dist.sf(x)
            if cdf == 0 or sf == 0:
                return mp.mpf(0)
            log_cdf = mp.log1p(-sf) if sf < 0.5 else mp.log(cdf)
            log_sf = mp.log1p(-cdf) if cdf < 0.5 else mp.log(sf)
            return (x - c) ** power * mp.exp(log_c + (k - 1) * log_cdf + (n - k) * log_sf + dist.logpdf(x))

        points = [mp.mpf(0), *(mp.mpf(x) for x in split_points(model, k, n)), mp.inf]
        value, error = mp.quad(integrand, points, error=True, maxdegree=6 + extra_digits // 5)
    if error >= 1e-14 * abs(value) and not extra_digits:
        finer, _ = mp_order_moment(dist, model, k, n, power, center, extra_digits=15)
        return +value, abs(finer - value)
    return +value, +error


def check_quadrature(spec: str, k: int, n: int, with_std: bool = True) -> None:
    """The package's quadrature against mpmath's: the true error within the reported estimate plus
    QUAD_FLOOR, a note if and only if the estimate is large, and where no note is given (what a user
    relies on) an error below LARGE_ERROR. The oracle must be 10 times finer than what it judges."""
    model, dist = parse_latency(spec), FAMILIES[spec]
    m = order_moments(model, k, n, with_std=with_std)
    assert m.method == "quadrature"
    mean, mean_oracle_error = mp_order_moment(dist, model, k, n, 1)
    checks = [("mean", m.mean, m.mean_error, mean, mean_oracle_error)]
    if with_std:
        var, var_oracle_error = mp_order_moment(dist, model, k, n, 2, center=mean)
        checks.append(("std", m.std, m.std_error, mp.sqrt(var), var_oracle_error / (2 * mp.sqrt(var))))
    else:
        assert math.isnan(m.std) and math.isnan(m.std_error)
    for name, got, error, exact, oracle_error in checks:
        allowed = error + QUAD_FLOOR * float(exact)
        assert oracle_error <= 0.1 * allowed, f"{name}: the oracle is only good to {mp.nstr(oracle_error, 3)}"
        true_error = float(abs(got - exact))
        assert true_error <= allowed + oracle_error, f"{name}: {got!r} is off {true_error:.3g}, reported ±{error:.3g}"
        noted = any(f"error estimate of the {name}" in note for note in m.notes)
        assert noted == (error > LARGE_ERROR * abs(got)), m.notes
        if not noted:
            assert true_error <= LARGE_ERROR * float(exact), f"{name}: {got!r} vs {mp.nstr(exact, 17)}"
    assert len(m.notes) == sum(error > LARGE_ERROR * abs(got) for _, got, error, _, _ in checks)


QUADRATURE_FAST = [  # Beta mode in (0, 1/2) and in (1/2, 1) (mode 0 and 1: the Weibull test below), and past SPIKE_N
    ("weibull:shape=0.7,scale=1.5", 30, 100, False),
    ("lognormal:mu=0.3,sigma=2", 70, 100, False),
    ("weibull:shape=0.7,scale=1.5", 5 * 10**11, 10**12, False),  # a spike 1e-6 wide at u = 1/2: was 0 ± 0
]


@pytest.mark.parametrize(("spec", "k", "n", "with_std"), QUADRATURE_FAST)
def test_quadrature_against_mpmath(spec, k, n, with_std):
    check_quadrature(spec, k, n, with_std)


@pytest.mark.parametrize(("k", "n"), [(1, 2), (2, 2), (1, SPIKE_N + 1), (1, 10**6), (1, 10**12)])
def test_quadrature_of_weibull_extremes_against_closed_forms(k, n):
    """Weibull(c, λ): the minimum of n is Weibull(c, λ n^(-1/c)), so E[X_{1:n}^p] = λ^p n^(-p/c) Γ(1 + p/c), and
    the maximum of two is X + Y - min: E[X_{2:2}^p] = 2 E[X^p] - E[X_{1:2}^p]. Mean and std through the
    quadrature (Beta mode 0 and 1, up to n = 10^12: the minimum of 10^6 came out 0 ± 0) against these
    in mpmath: true error within the reported one plus QUAD_FLOOR, no note, at most 1e-8."""
    c, lam = 0.7, 1.5
    with mp.workdps(DPS):
        c_, lam_ = mp.mpf(c), mp.mpf(lam)

        def minimum(m, p):
            return lam_**p * mp.mpf(m) ** (-p / c_) * mp.gamma(1 + p / c_)

        moment = (lambda p: minimum(n, p)) if k == 1 else (lambda p: 2 * minimum(1, p) - minimum(2, p))
        mean, std = moment(1), mp.sqrt(moment(2) - moment(1) ** 2)
    m = order_moments(parse_latency(f"weibull:shape={c},scale={lam}"), k, n)
    assert m.method == "quadrature" and not m.notes
    for got, error, exact in ((m.mean, m.mean_error, mean), (m.std, m.std_error, std)):
        close(got, exact, QUAD_FLOOR, error, what=f"X_{k}:{n}")
        close(got, exact, 1e-8, what=f"X_{k}:{n}")


QUADRATURE_SLOW = [
    (spec, k, n)
    for spec in list(FAMILIES)[:4]
    # both sides of SPIKE_N and far beyond (CI's time: the default run checks one point of each side)
    for k, n in [(70, 100), (SPIKE_N // 2, SPIKE_N), (1, SPIKE_N + 1), (10**6, 2 * 10**6), (10**12, 10**12)]
    + [(10**12 - 10**6, 10**12)]  # lognormal σ = 2 was 50% off here
]


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "k", "n"), QUADRATURE_SLOW)
def test_quadrature_against_mpmath_slow(spec, k, n):
    """Every family on each side of SPIKE_N and up to MAX_PREDICT, k = 1, n/2, n: mean and std."""
    check_quadrature(spec, k, n)


@pytest.mark.slow
@pytest.mark.parametrize(("k", "n"), [(1, 1), (2, 3), (8, 10)])
def test_quadrature_of_a_mixture_without_exact_isf_slow(k, n):
    """A straggler mixture has no exact ``isf``: the upper quantiles stop at 1 - u = 1e-15 (slow: its
    quantiles are bisections)."""
    check_quadrature("straggler:base=exponential(rate=1),p=0.05,factor=5", k, n)


def test_a_zero_variance_mixture_reports_zero_std():
    """straggler with p = 0 over a constant base: every quantile is the constant (a quadrature family without
    exact ``isf``, 1 - u stopping at 1e-15), so mean 1 and std exactly 0 with a zero std error."""
    m = order_moments(parse_latency("straggler:base=constant(value=1),p=0,factor=2"), 2, 3)
    assert m.method == "quadrature" and not m.notes
    assert abs(m.mean - 1.0) <= max(m.mean_error, 1e-12)
    assert m.std == 0.0 and m.std_error == 0.0


class ParetoByQuantiles(LatencyModel):
    """Pareto(α, scale 1) known only by its quantiles (no exact ``isf``, so 1 - u stops at 1e-15), with its
    tail index: the quadrature branch of a heavy tail, at the cost of a closed-form quantile."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def __str__(self) -> str:
        return f"pareto-by-quantiles(alpha={self.alpha:g})"

    def transform(self, u):
        return self.ppf(u[:, 0])

    @property
    def mean(self):
        return self.alpha / (self.alpha - 1) if self.alpha > 1 else math.inf

    @property
    def var(self):
        return math.inf

    @property
    def tail_index(self):
        return self.alpha

    def cdf(self, x):
        return 1 - np.asarray(x, dtype=float) ** -self.alpha

    def ppf(self, q):
        return (1 - np.asarray(q, dtype=float)) ** (-1 / self.alpha)


@pytest.mark.parametrize(("alpha", "k", "n"), [(1.2, 1, 1), pytest.param(0.8, 2, 3, marks=pytest.mark.slow)])
def test_a_power_tail_beyond_the_last_quantile_is_in_the_error(alpha, k, n):
    """The quadrature stops at 1 - u = 1e-15; beyond lies ∫_0^1e-15 x(s)^p w(s) ds, with x(s) = s^(-1/α) and
    w the Beta(n-k+1, k) density of s = 1 - u: for k = n = 1, 1e-15^(1-1/α) / (1 - 1/α), 1e-5 of the mean
    at α = 1.5, 1e-3 at α = 1.2 (a note). That remainder is nearly all of the error; the estimate must hold
    it (it held 1/3 of it at α = 1.5 and 1/6 at 1.2, a note claiming 0.02% for 0.1%). Quantiles at
    u = 1 - 1e-15 are only good to a few percent in doubles, hence 25%."""
    m = order_moments(ParetoByQuantiles(alpha), k, n, with_std=False)
    mean = mp_pareto_moment(k, n, alpha, 1.0, 1)
    true_error = float(mean - mp.mpf(m.mean))
    assert 0 < true_error <= 1.25 * m.mean_error and m.mean_error <= 2 * true_error
    assert any("error estimate of the mean" in note for note in m.notes) == (m.mean_error > LARGE_ERROR * m.mean)


def test_the_allowance_beyond_the_last_quantile_uses_the_tail_of_the_order_statistic():
    """The minimum of two Pareto(1.2) draws falls like x^-2.4: the allowance for its climb beyond
    1 - u = 1e-15 takes a = n - k + 1 = 2 (a·α = 2.4 > 1), so the estimate stays at rounding level, with
    no note, and the mean is Pareto(2.4)'s, 2.4 / 1.4 (an a of k - n + 1 = 0 made the estimate infinite)."""
    m = order_moments(ParetoByQuantiles(1.2), 1, 2, with_std=False)
    assert m.mean == pytest.approx(float(mp_pareto_moment(1, 2, 1.2, 1.0, 1)), rel=1e-12, abs=0)
    assert m.mean_error < 1e-12 * m.mean and not m.notes


@pytest.mark.slow
def test_a_power_tail_beyond_the_last_quantile_is_in_the_error_slow():
    """straggler over a constant 1 with a Pareto(α=1.5) delay (no exact ``isf``): the mean 0.9 + 0.1·(1 + 3)
    = 1.3 exists, the variance does not. The quantiles stop at 1 - u = 1e-15; what lies beyond,
    ∫_0^{1e-15} 1 + (s/0.1)^(-2/3) ds = 6.46e-6, is nearly all of the error and must be in its estimate
    (it was a third of it: the last quantile times the mass left, with no allowance for the climb).
    Quantiles found by bisection of a cdf that is 1 - 1e-15 in doubles are only good to a few percent
    there, so the estimate is checked to within 25%."""
    m = order_moments(parse_latency("straggler:base=constant(value=1),p=0.1,delay=pareto(alpha=1.5,scale=1)"), 1, 1)
    beyond = 1e-15 + 0.1 ** (2 / 3) * 3 * (1e-15) ** (1 / 3)
    assert m.std == math.inf and math.isnan(m.std_error) and "no finite variance" in m.notes[0]
    assert 0.8 * beyond <= 1.3 - m.mean <= 1.25 * m.mean_error
    assert m.mean_error <= 2 * beyond and len(m.notes) == 1


@pytest.mark.parametrize(("k", "n"), [(1, 1), (10, 10)])
def test_a_mixture_with_an_infinite_mean_is_inf_without_quadrature(k, n):
    """A Pareto(0.8) delay: X_{n:n} has tail exponent 0.8 <= 1, so inf and inf, no quadrature, one note."""
    m = order_moments(parse_latency("straggler:base=exponential(rate=1),p=0.1,delay=pareto(alpha=0.8,scale=1)"), k, n)
    assert (m.mean, m.std, m.method) == (math.inf, math.inf, "quadrature")
    assert math.isnan(m.mean_error) and math.isnan(m.std_error)
    assert len(m.notes) == 1 and "no finite mean or variance" in m.notes[0] and "x^(-0.8)" in m.notes[0]


def test_a_finite_mean_beyond_double_precision_is_nan_and_said():
    """lognormal σ = 30: E[max of 10] ~ 10·e^450 is finite but not a double: nan (not inf) and a note."""
    m = order_moments(parse_latency("lognormal:mu=0,sigma=30"), 10, 10)
    assert math.isnan(m.mean) and math.isnan(m.mean_error)
    assert any("mean of the maximum of 10" in note and "double precision" in note for note in m.notes)


@pytest.mark.parametrize(("mu", "sigma"), [(0.3, 2.0), pytest.param(0.0, 0.5, marks=pytest.mark.slow)])
def test_order_mean_and_std_of_one_draw_are_the_lognormal_moments(mu, sigma):
    """n = 1 through the quadrature: order_mean (no std) and order_std are e^(μ+σ²/2) and
    e^(μ+σ²/2)·sqrt(e^(σ²) - 1), to 1e-8 (quad's relative tolerance)."""
    model = parse_latency(f"lognormal:mu={mu},sigma={sigma}")
    with mp.workdps(DPS):
        mean = mp.exp(mp.mpf(mu) + mp.mpf(sigma) ** 2 / 2)
        std = mean * mp.sqrt(mp.expm1(mp.mpf(sigma) ** 2))
    close(order_mean(model, 1, 1), mean, 1e-8, what="mean")
    close(order_std(model, 1, 1), std, 1e-8, what="std")


# --- the callers: sync, cancel, async, predict, time to target, Dutta's bound -----------------


@pytest.mark.parametrize("n", [1, 7, E + 1, 10**12])
def test_sync_waits_for_the_slowest(n):
    """Full sync = E[X_{n:n}] = H_n / λ for Exp(λ) (REFERENCES.md), on both sides of the switch."""
    got = sync_iteration_time(parse_latency("exponential:rate=4"), n)
    close(got, mp_exp_mean(n, n, 4.0), *exp_mean_tolerance(n, n, 4.0), what="sync")


@pytest.mark.parametrize(("n", "b"), [(1, 0), (1, 10**12 - 1), (96, 4), (E, 1), (E + 1, 0), (2 * E, 10**6)])
def test_cancel_waits_for_the_nth_of_n_plus_b(n, b):
    """Backup with cancel = E[X_{N:N+B}] = (H_{N+B} - H_B) / λ."""
    got = cancel_iteration_time(parse_latency("exponential:rate=0.5"), n, b)
    close(got, mp_exp_mean(n, n + b, 0.5), *exp_mean_tolerance(n, n + b, 0.5), what="cancel")


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        ("exponential:rate=4", mp.mpf(1) / 4),
        ("lognormal:mu=0.3,sigma=0.7", mp.exp(mp.mpf("0.3") + mp.mpf("0.7") ** 2 / 2)),
        ("gamma:shape=2.5,scale=0.4", mp.mpf("2.5") * mp.mpf("0.4")),
        ("weibull:shape=0.7,scale=1.5", mp.mpf("1.5") * mp.gamma(1 + 1 / mp.mpf("0.7"))),
        ("pareto:alpha=3,scale=2", mp.mpf(3) * 2 / 2),
        ("constant:value=0.125", mp.mpf("0.125")),
    ],
)
@pytest.mark.parametrize("workers", [1, 16, 10**9])
def test_async_applies_p_over_mean_updates_per_second(spec, mean, workers):
    close(async_update_rate(parse_latency(spec), workers), workers / mean, 1e-13, what=spec)


def test_async_update_rate_is_zero_without_a_finite_mean():
    """Pareto α = 0.8 has no mean: updates come at rate 0, not nan."""
    assert async_update_rate(parse_latency("pareto:alpha=0.8,scale=1"), 8) == 0.0


@pytest.mark.parametrize("workers", [1, 2, 16, E + 1, 10**12])
def test_async_exponential_staleness_is_p_minus_one(workers):
    """Each of the other P - 1 memoryless workers finishes 1 computation on average while one gradient
    is computed (rate λ over a mean time 1/λ): staleness P - 1 (REFERENCES.md)."""
    got = async_exponential_staleness(workers)
    assert isinstance(got, float) and got == workers - 1


def expected_row(k: int, n: int, rate: float) -> tuple:
    with mp.workdps(DPS):
        return mp_exp_mean(k, n, rate), mp.sqrt(mp_exp_var(k, n, rate))


@pytest.mark.parametrize(("workers", "backups"), [(1, [0, 1, 10**12 - 1]), (2 * E, [0, 1, 10, E]), (E, [0, 1])])
def test_predict_backups_at_large_worker_counts(workers, backups):
    """predict_backups for Exp(2) with N past EXACT_TERMS, and with N = 1 out of up to 10^12: each row's
    mean and std against mpmath, closed form, errors 0, no notes."""
    rows = predict_backups(parse_latency("exponential:rate=2"), workers, backups)
    assert [r["backups"] for r in rows] == backups and {r["workers"] for r in rows} == {workers}
    for r in rows:
        n = workers + r["backups"]
        mean, std = expected_row(workers, n, 2.0)
        close(r["mean_iteration_time"], mean, *exp_mean_tolerance(workers, n, 2.0), what=f"mean B={r['backups']}")
        rel, absolute = exp_var_tolerance(workers, n, 2.0)
        close(r["std_iteration_time"], std, rel, math.sqrt(absolute), what=f"std B={r['backups']}")
        assert (r["mean_finite"], r["std_finite"], r["mean_error"], r["std_error"]) == (True, True, 0.0, 0.0)
        assert (r["method"], r["notes"]) == ("closed form", [])


def test_predict_backups_rows_for_infinite_and_unrepresentable_moments():
    """Pareto α = 0.8 with N = E + 5: B = 0 has neither moment (None, finite False), B = 1 (tail 1.6) a
    mean only, B = 2 (tail 2.4) both, against mpmath; lognormal σ = 30: finite but None."""
    n = E + 5
    rows = predict_backups(parse_latency("pareto:alpha=0.8,scale=1"), n, [0, 1, 2])
    assert [(r["mean_finite"], r["std_finite"]) for r in rows] == [(False, False), (True, False), (True, True)]
    assert rows[0]["mean_iteration_time"] is None and rows[0]["mean_error"] is None and rows[1]["std_error"] is None
    for r in rows[1:]:
        close(r["mean_iteration_time"], mp_pareto_moment(n, n + r["backups"], 0.8, 1.0, 1), 1e-13, what="mean")
    close(rows[2]["std_iteration_time"], mp_pareto_std(n, n + 2, 0.8, 1.0), 1e-13, what="std")
    assert [len(r["notes"]) for r in rows] == [1, 1, 0]
    (row,) = predict_backups(parse_latency("lognormal:mu=0,sigma=30"), 10, [0])
    assert row["mean_iteration_time"] is None and row["mean_finite"] is True and row["notes"]


def printed(cell: str) -> float:
    return float(cell)


@pytest.mark.parametrize(
    ("workers", "backups"), [(MAX_PREDICT - 3, [0, 3]), (1, [MAX_PREDICT - 1]), (2 * E, [0, 2]), (10, [0, 5])]
)
def test_report_predict_prints_the_exact_numbers_up_to_its_limit(workers, backups):
    """``stragglersim predict`` (reports.predict) up to N + B = MAX_PREDICT: the table's mean and std,
    printed to 6 significant digits, are mpmath's to within that rounding (5e-6 relative)."""
    report = report_predict("exponential:rate=2", workers, backups)
    lines = [line.split() for line in report.lines[2:] if line.strip() and line.split()[0].isdigit()]
    assert [int(cells[0]) for cells in lines] == backups
    for cells in lines:
        n = workers + int(cells[0])
        mean, std = expected_row(workers, n, 2.0)
        close(printed(cells[1]), mean, 5e-6, what=f"printed mean, B={cells[0]}")
        close(printed(cells[2]), std, 5e-6, what=f"printed std, B={cells[0]}")


@pytest.mark.parametrize(
    ("workers", "backups"), [(MAX_PREDICT - 3, [4]), (MAX_PREDICT + 1, [0]), (1, [0, MAX_PREDICT])]
)
def test_report_predict_refuses_past_its_limit(workers, backups):
    with pytest.raises(InputError, match="N \\+ B is at most"):
        report_predict("exponential:rate=2", workers, backups)


@pytest.mark.parametrize(("workers", "backups"), [(2 * E, [0, 3]), (1, [10**12 - 1]), (10**12, [0])])
def test_api_predict_at_large_worker_counts(workers, backups):
    """The Python API's predict (no size limit of its own) at N past EXACT_TERMS and n = 10^12: the
    DataFrame's columns against mpmath, lognormal included (its quadrature past SPIKE_N)."""
    table = api.predict("exponential:rate=2", workers, backups=backups)
    assert list(table["backups"]) == backups
    for _, r in table.iterrows():
        n = workers + int(r["backups"])
        mean, std = expected_row(workers, n, 2.0)
        close(r["mean_iteration_time"], mean, *exp_mean_tolerance(workers, n, 2.0), what="mean")
        rel, absolute = exp_var_tolerance(workers, n, 2.0)
        close(r["std_iteration_time"], std, rel, math.sqrt(absolute), what="std")


def test_api_predict_lognormal_past_spike_n():
    """A lognormal X_{N:N+B} with N = 10^6, B = 2: the quadrature of a Beta spike 1e-6 wide, against mpmath."""
    spec = "lognormal:mu=0,sigma=0.5"
    (row,) = api.predict(spec, 10**6, backups=2).to_dict("records")
    mean, error = mp_order_moment(FAMILIES[spec], parse_latency(spec), 10**6, 10**6 + 2, 1)
    assert error < 1e-15 * mean and row["method"] == "quadrature" and not row["notes"]
    close(row["mean_iteration_time"], mean, 1e-10, row["mean_error"], what="mean")


def test_time_to_target_is_iterations_times_the_order_statistic():
    """{B: iterations(N) · E[X_{N:total}]}, B = total - N: Exp(1) at total = 2E + 7 (far branch) and 10 (exact
    fractions); Pareto α = 0.8 with B = 0 has no mean: inf."""
    total = 2 * E + 7
    got = time_to_target(parse_latency("exponential:rate=1"), total, {total: 100.0, total - 7: 120.0, 1: 3.0})
    assert list(got) == [0, 7, total - 1]
    for b, its in ((0, 100), (7, 120), (total - 1, 3)):
        n = total - b
        rel, absolute = exp_mean_tolerance(n, total, 1.0)
        close(got[b], its * mp_exp_mean(n, total, 1.0), 2 * rel, its * absolute, what=f"B={b}")
    small = time_to_target(parse_latency("exponential:rate=1"), 10, {10: 100.0, 8: 120.0})
    close(small[0], 100 * fraction_harmonic(10), 4 * EPS, what="B=0")
    close(small[2], 120 * (fraction_harmonic(10) - fraction_harmonic(2)), 4 * EPS, what="B=2")
    heavy = time_to_target(parse_latency("pareto:alpha=0.8,scale=1"), 10, {10: 5.0, 8: 5.0})
    assert heavy[0] == math.inf
    close(heavy[2], 5 * mp_pareto_moment(8, 10, 0.8, 1.0, 1), 1e-14, what="pareto B=2")


DUTTA = dict(mean_iteration_time=0.5, eta=0.1, lipschitz=2.0, convexity=1.0, noise=4.0, k=2, batch=8, initial_gap=5.0)


def dutta_exact(t, mean_iteration_time, eta, lipschitz, convexity, noise, k, batch, initial_gap):
    """Dutta et al. 2018, Theorem 1, in 50 digits: ηLσ²/(2cKm) + (1 - ηc)^J (F0 - floor), J = t / E[T]."""
    with mp.workdps(DPS):
        floor = mp.mpf(eta) * lipschitz * noise / (2 * mp.mpf(convexity) * k * batch)
        return floor + (1 - mp.mpf(eta) * convexity) ** (mp.mpf(t) / mean_iteration_time) * (initial_gap - floor)


def test_dutta_error_bound_is_theorem_1():
    """At t = 0 the initial gap, at integer J the exact fraction, between them mpmath's power, far out the floor."""
    t = np.array([0.0, 0.5, 1.5, 0.37, 10.0, 1e3, 1e6])
    got = dutta_error_bound(t, **DUTTA)
    assert got.shape == t.shape and got[0] == 5.0
    floor = Fraction(1, 10) * 2 * 4 / (2 * 1 * 2 * 8)
    exact_j3 = floor + (1 - Fraction(1, 10)) ** 3 * (5 - floor)
    assert abs(Fraction(got[2]) - exact_j3) <= 4 * EPS * exact_j3
    for ti, gi in zip(t, got, strict=True):
        close(gi, dutta_exact(float(ti), **DUTTA), 1e-14, what=f"t={ti}")
    close(got[-1], floor, 4 * EPS, what="far out")
    scalar = dutta_error_bound(2.0, **DUTTA)
    assert np.ndim(scalar) == 0 and float(scalar) == pytest.approx(float(dutta_exact(2.0, **DUTTA)), rel=1e-14)


@settings(max_examples=25, deadline=None)
@given(
    st.floats(0, 1e4),
    st.floats(0.01, 10),
    st.floats(1e-3, 0.99),
    st.floats(0.1, 10),
    st.floats(0, 100),
    st.integers(1, 1000),
    st.integers(1, 512),
    st.floats(0, 1e3),
)
def test_dutta_error_bound_property(t, mean_time, eta_c, lipschitz, noise, k, batch, gap):
    """Any inputs with 0 < ηc < 1: floor + P·(gap - floor), P = (1-ηc)^J, is good to a few EPS of
    floor + |gap - floor| times P's condition number 1 + J·ln(1/(1-ηc)) (at t = 0 with gap << floor it
    cancels to the last bits of the floor)."""
    params = dict(
        mean_iteration_time=mean_time, eta=eta_c, lipschitz=lipschitz, convexity=1.0, noise=noise, k=k, batch=batch
    )
    got = float(dutta_error_bound(t, **params, initial_gap=gap))
    exact = dutta_exact(t, **params, initial_gap=gap)
    floor = eta_c * lipschitz * noise / (2 * k * batch)
    condition = 1 + (t / mean_time) * -math.log1p(-eta_c)  # of P = (1 - ηc)^J
    close(got, exact, 0.0, 8 * EPS * condition * (floor + abs(gap - floor)) + 1e-300, what="bound")


# --- order_means: every k at once, from the survival functions ------------------------------------

MIXTURE = "straggler:base=lognormal(mu=-5.942721304,sigma=0.4242954742),p=0.003317560555,factor=11.15130029"


def _mixture_survival_mean(k: int, n: int) -> mp.mpf:
    """E[X_{k:n}] of MIXTURE (the shipped trace's fit) in mpmath: ∫ 1 - I_F(x)(k, n-k+1) dx."""
    mu, sigma, p, factor = (mp.mpf(v) for v in ("-5.942721304", "0.4242954742", "0.003317560555", "11.15130029"))

    def cdf(x):
        if x <= 0:
            return mp.mpf(0)
        return (1 - p) * mp.ncdf((mp.log(x) - mu) / sigma) + p * mp.ncdf((mp.log(x / factor) - mu) / sigma)

    cuts = [0, *(mp.mpf(c) for c in ("0.001", "0.002", "0.003", "0.005", "0.01", "0.03", "0.1", "0.3", "1")), mp.inf]
    with mp.workdps(25):
        return mp.quad(lambda x: 1 - mp.betainc(k, n - k + 1, 0, cdf(x), regularized=True), cuts)


@pytest.mark.parametrize("n", [2, 7])
def test_order_means_of_a_mixture_against_mpmath(n):
    """The fitted straggler mixture, which has no closed form and quantiles found by search: every
    k against mpmath to 1e-12."""
    means = order_means(parse_latency(MIXTURE), n)
    assert means.shape == (n,)
    for k in range(1, n + 1):
        assert means[k - 1] == pytest.approx(float(_mixture_survival_mean(k, n)), rel=1e-12)


@pytest.mark.slow
def test_order_means_of_a_mixture_against_mpmath_slow():
    """n = 100 (the k-th gradient figure's), and n = 1, which takes ``order_mean``'s quadrature."""
    means = order_means(parse_latency(MIXTURE), 100)
    for k in (1, 2, 50, 99, 100):
        assert means[k - 1] == pytest.approx(float(_mixture_survival_mean(k, 100)), rel=1e-12)
    single = order_means(parse_latency(MIXTURE), 1)[0]
    assert single == pytest.approx(float(_mixture_survival_mean(1, 1)), rel=1e-9)


def _rare_straggler_survival_mean(k: int, n: int) -> mp.mpf:
    """E[X_{k:n}] of RARE_STRAGGLER in mpmath, split where its two parts' mass lies."""
    sigma, p, factor = mp.mpf("1e-4"), mp.mpf("1e-5"), mp.mpf(10_000)

    def cdf(x):
        return (1 - p) * mp.ncdf(mp.log(x) / sigma) + p * mp.ncdf(mp.log(x / factor) / sigma) if x > 0 else mp.mpf(0)

    def survival(x):  # P(fewer than k of the n draws are <= x)
        f = cdf(x)
        return mp.fsum(mp.binomial(n, j) * f**j * (1 - f) ** (n - j) for j in range(k))

    body = [mp.exp(sigma * z) for z in (-10, -6, -4, -2, -1, 0, 1, 2, 4, 6, 10)]
    with mp.workdps(25):
        return mp.quad(survival, [0, *body, *(factor * c for c in body), mp.inf])


RARE_STRAGGLER = "straggler:base=lognormal(mu=0,sigma=1e-4),p=1e-5,factor=1e4"


@pytest.mark.parametrize("n", [2, pytest.param(10, marks=pytest.mark.slow)])
def test_order_means_see_a_rare_narrow_straggler(n):
    """1 s ± 0.01%, and one draw in 100,000 takes 10^4 s ± 0.01%: the slow part's mass sits between the
    mixture's own quantiles, in 1e-5 of the range's width. Breakpoints at the mixture's quantiles alone
    left X_{10:10} 1.7e-5 too small (at ± 0.1%), none at all 100% off (quad's nodes step over both parts),
    the parts' upper quantiles alone 1.5e-4: at each part's quantiles from 1e-12 to 1 - 1e-12 it is
    within 1e-11 of mpmath."""
    means = order_means(parse_latency(RARE_STRAGGLER), n)
    for k in (1, n):
        assert means[k - 1] == pytest.approx(float(_rare_straggler_survival_mean(k, n)), rel=1e-11, abs=0)


@pytest.mark.parametrize(
    "spec",
    [
        "lognormal:mu=0.3,sigma=0.5",
        "gamma:shape=0.3,scale=1",  # a density that is infinite at 0
        "straggler:base=lognormal(mu=0,sigma=0.3),p=0.2,factor=2,delay=constant(value=0.5)",
    ],
)
def test_order_means_agree_with_the_quantile_quadrature(spec):
    """Two independent computations of E[X_{k:n}]: the survival functions over x (``order_means``)
    and the quantile quadrature over u (``order_mean``), within ``order_mean``'s error estimate."""
    model = parse_latency(spec)
    means = order_means(model, 5)
    for k in (1, 5):
        m = order_moments(model, k, 5, with_std=False)
        assert abs(means[k - 1] - m.mean) <= m.mean_error + 1e-10 * m.mean


def test_order_means_of_two_atoms_are_exact():
    """1 s with probability 0.9, else 3 s: X_{k:5} = 1 + 2·P(at least 6 - k of the 5 are 3 s), an exact
    binomial sum. (``order_mean``'s quantile quadrature is 1.2e-8 off at k = 3, past its own error
    estimate of 8.5e-9: quad cannot see the jump of the quantile function at u = 0.9.)"""
    means = order_means(parse_latency("straggler:base=constant(value=1),p=0.1,factor=3"), 5)
    p = Fraction(1, 10)
    for k in range(1, 6):
        slow = sum(math.comb(5, j) * p**j * (1 - p) ** (5 - j) for j in range(6 - k, 6))
        assert means[k - 1] == pytest.approx(float(1 + 2 * slow), rel=1e-12)


def test_order_means_of_an_exponential_known_only_as_a_mixture():
    """A straggler mixture with p = 0 is Exp(2) in disguise (the closed forms do not see it): every
    k of 12 equals (H_12 - H_{12-k}) / 2, exact sums."""
    means = order_means(parse_latency("straggler:base=exponential(rate=2),p=0,factor=3"), 12)
    for k in range(1, 13):
        exact = sum(Fraction(1, i) for i in range(12 - k + 1, 13)) / 2
        assert means[k - 1] == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize(
    "spec",
    [
        "exponential:rate=2",  # closed forms, term for term
        "pareto:alpha=0.8,scale=1",  # a heavy tail: the maxima have no mean (inf)
        "straggler:base=pareto(alpha=0.4,scale=1),p=0.1,factor=2",  # a mixture with a power tail: all inf
    ],
)
def test_order_means_take_order_mean_where_it_has_closed_forms_or_heavy_tails(spec):
    model = parse_latency(spec)
    means = order_means(model, 2)
    expected = [order_mean(model, k, 2) for k in (1, 2)]
    assert [float(m) for m in means] == expected or np.allclose(means, expected, rtol=0, atol=0, equal_nan=True)


def test_the_error_note_states_the_estimate_and_its_share_of_the_value():
    """Pareto(1.2) known only by its quantiles: the note reads ±(the error estimate) s and its share of
    the mean in percent, both as the result reports them."""
    m = order_moments(ParetoByQuantiles(1.2), 1, 1, with_std=False)
    note = next(note for note in m.notes if "error estimate of the mean" in note)
    assert note.endswith(f"is ±{m.mean_error:.3g} s ({100 * m.mean_error / m.mean:.2g}%)")
    assert 0.01 < 100 * m.mean_error / m.mean < 10  # a share in percent, not its inverse


@pytest.mark.parametrize("k", [13, 14])
def test_empirical_weights_at_the_bottom_keep_their_digits(k):
    """The mirror of the upper tail's case: the k-th of 14 draws over 1, 2, 2, 2, 2 is 1 only if at least
    k of them are (p = P(Binomial(14, 0.2) >= k)); E = 2 - p and Var = p(1 - p), exact fractions. A
    bottom weight taken as a difference of survival values near 1 (1 - (1 - p)) loses its digits: the
    std 5e-8 off at k = 14."""
    p = sum(math.comb(14, j) * Fraction(1, 5) ** j * Fraction(4, 5) ** (14 - j) for j in range(k, 15))
    m = order_moments(Empirical(np.array([1.0, 2.0, 2.0, 2.0, 2.0]), "empirical:test"), k, 14)
    assert m.mean == pytest.approx(float(2 - p), rel=1e-15)
    assert m.std == pytest.approx(math.sqrt(p * (1 - p)), rel=1e-12, abs=0)


@pytest.mark.parametrize("n", [0, -3, 2.0, True])
def test_order_means_refuses_what_is_not_a_count_of_draws(n):
    with pytest.raises(ValueError, match=rf"need a whole number of draws n >= 1, got n={n!r}"):
        order_means(parse_latency("lognormal:mu=0,sigma=1"), n)


@pytest.mark.parametrize("spec", ["lognormal:mu=0,sigma=1", "gamma:shape=2,scale=1"])
def test_a_beta_mode_in_the_upper_half_is_a_split_point(spec):
    """X_{900:1000}: the Beta weight peaks at u = 0.9, in the upper half (t = -log10(1 - u) = 1); split
    there, quad's error estimate is ~1e-12 of the mean, without the split ~1e-8 (both halves' nodes
    straddle the peak). The estimate is what the result reports; the split keeps it small."""
    m = order_moments(parse_latency(spec), 900, 1000, with_std=False)
    assert m.mean_error < 1e-10 * m.mean
