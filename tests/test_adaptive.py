"""Adaptive backup workers: the estimate behind the rule, and the rule against every fixed B."""

import json

import numpy as np
import pytest
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.strategies.adaptive import AdaptiveBackup, expected_order_statistic, progress
from stragglersim.studies.compare_backups import compare_with_fixed
from stragglersim.studies.theory import exponential_order_mean


def test_order_statistic_of_a_step_cdf_matches_the_exponential_closed_form():
    x = np.sort(np.random.default_rng(0).exponential(size=200_000))
    probabilities = np.arange(1, len(x) + 1) / len(x)
    for k, n in ((1, 10), (7, 10), (10, 10)):
        got = expected_order_statistic(x, probabilities, k, n)
        assert got == pytest.approx(exponential_order_mean(k, n, 1.0), rel=0.01)


def test_progress_saturates_with_the_batch():
    assert progress(1, 32, 32) == pytest.approx(0.5)
    assert progress(100, 32, 32) > 0.99 and progress(4, 32, 320) < progress(8, 32, 320)


@pytest.mark.parametrize(
    "latency",
    [
        "shifted-exponential:shift=1,rate=2",
        "straggler:base=lognormal(mu=0,sigma=0.1),p=0.05,factor=5",
        "lognormal:mu=0,sigma=0.5",
    ],
)
def test_adaptive_is_close_to_the_best_fixed_backups(latency):
    """Within 5% of the best of all P fixed choices (found with hindsight), far better than B = 0."""
    report = compare_with_fixed(
        RunConfig(strategy="adaptive-backup", workers=16, latency=latency, steps=800, timing_only=True, seed=2)
    )
    assert report["adaptive_vs_best"] < 1.05, report
    assert report["adaptive"] < 0.8 * report["fixed"]["0"]


def test_cancelled_computations_are_censored_not_dropped():
    """Kaplan-Meier sees cancelled cycles as 'took longer than this': ignoring them would
    make the fast workers look like the whole population and choose too few backups."""
    config = RunConfig(
        strategy="adaptive-backup", workers=12, latency="lognormal:mu=0,sigma=0.6", steps=300, timing_only=True, seed=4
    )
    sim = Simulation(config)
    sim.run()
    strategy: AdaptiveBackup = sim.strategy
    assert any(g.fate == "cancelled" for g in sim.log.gradients)
    k = strategy.choose(sim.log.gradients, sim.env.now)
    assert 1 <= k <= 12
    assert all(1 <= len(u.gradients) <= 12 for u in sim.log.updates)
    assert len({len(u.gradients) for u in sim.log.updates}) > 1  # it did adapt


def test_compare_backups_command(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare-backups",
                "--workers",
                "6",
                "--latency",
                "shifted-exponential:shift=1,rate=2",
                "--steps",
                "200",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "compare.json").read_text())
    assert set(report["fixed"]) == {str(b) for b in range(6)}
    assert (out / "compare.png").exists() and "adaptive-backup:" in capsys.readouterr().out
