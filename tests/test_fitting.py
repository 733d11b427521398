"""Maximum-likelihood fitting, its report, and validation of a fit against exact replay."""

import json

import numpy as np
import pytest
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig
from stragglersim.latency import parse_latency
from stragglersim.latency.fitting import fit_durations
from stragglersim.studies.validation import validate_trace
from test_traces import write_trace


@pytest.mark.parametrize(
    ("spec", "family", "params"),
    [
        ("lognormal:mu=0.3,sigma=0.5", "lognormal", {"mu": 0.3, "sigma": 0.5}),
        ("gamma:shape=2,scale=0.5", "gamma", {"shape": 2.0, "scale": 0.5}),
        ("shifted-exponential:shift=2,rate=0.5", "shifted-exponential", {"shift": 2.0, "rate": 0.5}),
    ],
)
def test_fit_recovers_family_and_parameters(spec, family, params):
    x = parse_latency(spec).sample(np.random.default_rng(42), 8000)
    report = fit_durations(x)
    assert report["best"]["family"] == family, [(c["family"], c["aic"]) for c in report["candidates"]]
    for name, value in params.items():
        assert report["best"]["params"][name] == pytest.approx(value, rel=0.06, abs=0.02)
    assert not report["mixture_wins"]
    assert str(parse_latency(report["best"]["spec"])) == report["best"]["spec"]  # --latency accepts it
    aics = [c["aic"] for c in report["candidates"]]
    assert aics == sorted(aics)


def test_heavy_tail_mixture_wins_on_straggler_data():
    truth = "straggler:base=lognormal(mu=0,sigma=0.2),p=0.05,factor=4"
    x = parse_latency(truth).sample(np.random.default_rng(7), 5000)
    report = fit_durations(x)
    assert report["mixture_wins"] and report["best"]["family"] == "straggler"
    assert report["best"]["params"]["p"] == pytest.approx(0.05, rel=0.2)
    assert report["best"]["params"]["factor"] == pytest.approx(4, rel=0.1)
    assert report["best"]["ks"] < report["best_single"]["ks"]


def test_fit_command_writes_report_and_figure(tmp_path, capsys):
    d = parse_latency("gamma:shape=3,scale=0.2").sample(np.random.default_rng(3), 600).reshape(3, 200)
    path = write_trace(tmp_path / "t.csv", d)
    assert main(["fit", str(path), "--out", str(tmp_path / "fit")]) == 0
    report = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert {"best", "candidates", "mixture", "mixture_wins"} <= set(report)
    assert (tmp_path / "fit" / "fit.png").stat().st_size > 10_000 and (tmp_path / "fit" / "fit.pdf").exists()
    assert "best: gamma:" in capsys.readouterr().out


def test_too_few_durations_is_a_clear_error(tmp_path, capsys):
    path = write_trace(tmp_path / "t.csv", np.ones((1, 5)))
    assert main(["fit", str(path), "--out", str(tmp_path / "fit")]) == 2
    assert "fitting needs at least 10 durations, got 5" in capsys.readouterr().err


def test_validation_accepts_an_iid_trace_and_flags_persistent_worker_speeds(tmp_path):
    rng = np.random.default_rng(5)
    iid = write_trace(tmp_path / "iid.csv", rng.lognormal(0.0, 0.3, size=(6, 400)))
    good = validate_trace(
        RunConfig(
            strategy="backup",
            workers=4,
            backups=2,
            semantics="cancel",
            latency=f"trace:{iid}",
            steps=None,
            timing_only=True,
        )
    )
    assert good["good_enough"], good
    speeds = np.array([1.0, 1.0, 1.0, 1.0, 1.6, 2.2])[:, None]  # two persistently slow workers
    skewed = write_trace(tmp_path / "skewed.csv", speeds * rng.lognormal(0.0, 0.05, size=(6, 400)))
    bad = validate_trace(
        RunConfig(
            strategy="backup",
            workers=4,
            backups=2,
            semantics="cancel",
            latency=f"trace:{skewed}",
            steps=None,
            timing_only=True,
        )
    )
    assert not bad["good_enough"] and bad["ks"] > 0.3


def test_validate_command(tmp_path, capsys):
    assert (
        main(
            [
                "validate",
                "traces/pai-mini-batch-time/job_2_norm.csv",
                "--format",
                "pai",
                "--time-scale",
                "0.001",
                "--workers",
                "8",
                "--backups",
                "2",
                "--out",
                str(tmp_path / "v"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "verdict: the fitted model is" in out and "; got KS " in out  # the criteria, then what was found
    report = json.loads((tmp_path / "v" / "validate.json").read_text())
    assert report["replay_updates"] > 100 and len(report["replay_quantiles"]) == 4


def test_a_trace_of_equal_durations_fits_the_constant_family(tmp_path, capsys):
    """Every duration equal: no continuous family has a maximum-likelihood fit; constant fits exactly."""
    path = write_trace(tmp_path / "flat.csv", np.full((2, 10), 0.25))
    assert main(["fit", str(path), "--out", str(tmp_path / "fit")]) == 0
    printed = capsys.readouterr().out
    assert (
        "best: constant:value=0.25 (every duration is 0.25 s: the constant family fits; the others are skipped)"
        in printed
    )
    report = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert [c["family"] for c in report["candidates"]] == ["constant"] and report["best"]["ks"] == 0.0
    assert parse_latency(report["best"]["spec"]).mean == 0.25


def test_durations_fitting_refuses_and_skips():
    from stragglersim.io.errors import InputError
    from stragglersim.latency.fitting import fit_single

    for bad in (np.nan, 0.0, -1.0, np.inf):
        with pytest.raises(InputError, match="fitting needs finite durations > 0"):
            fit_durations(np.array([1.0] * 11 + [bad]))
    # at the bottom of the float range the exponential's rate overflows and the shifted exponential's
    # divides by zero: those families are left out, the others still ranked
    fits = fit_single(np.array([5e-324] * 19 + [1e-323]))
    assert {f.family for f in fits} == {"pareto", "lognormal", "weibull"}
    assert [f.aic for f in fits] == sorted(f.aic for f in fits)
    assert str(fits[0].model()) == fits[0].spec
