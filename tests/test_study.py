"""Theory predictions, sweeps, timelines, plots and the reproduce study."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import grid, run
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig
from stragglersim.io.results import read_csv as read_results
from stragglersim.latency import parse_latency
from stragglersim.studies.grids import run_name
from stragglersim.studies.sweeps import run_sweep
from stragglersim.studies.theory import (
    dutta_error_bound,
    exponential_order_mean,
    exponential_order_var,
    order_std,
    time_to_target,
)


def test_predict_matches_the_closed_forms(capsys):
    assert main(["predict", "--latency", "exponential:rate=2", "--workers", "10", "--backups", "0-3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["backups"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        n = 10 + r["backups"]
        assert r["mean_iteration_time"] == pytest.approx(exponential_order_mean(10, n, 2.0), rel=1e-12)
        assert r["std_iteration_time"] == pytest.approx(np.sqrt(exponential_order_var(10, n, 2.0)), rel=1e-9)


def test_numerical_std_of_an_order_statistic_matches_simulation():
    model = parse_latency("gamma:shape=2,scale=0.5")
    config, log = run(
        strategy="backup",
        workers=6,
        backups=2,
        semantics="cancel",
        latency=str(model),
        steps=6000,
        timing_only=True,
        seed=8,
    )
    assert log.iteration_times().std() == pytest.approx(order_std(model, 6, 8), rel=0.05)


def test_time_to_target_and_dutta_bound():
    model = parse_latency("exponential:rate=1")
    predicted = time_to_target(model, 10, {10: 100.0, 8: 120.0})
    assert predicted[0] == pytest.approx(100 * exponential_order_mean(10, 10, 1.0))
    assert predicted[2] == pytest.approx(120 * exponential_order_mean(8, 10, 1.0))
    t = np.array([0.0, 10.0, 1e6])
    bound = dutta_error_bound(
        t, mean_iteration_time=1.0, eta=0.1, lipschitz=2.0, convexity=1.0, noise=4.0, k=2, batch=8, initial_gap=5.0
    )
    floor = 0.1 * 2.0 * 4.0 / (2 * 1.0 * 2 * 8)
    assert bound[0] == pytest.approx(5.0) and bound[-1] == pytest.approx(floor) and bound[0] > bound[1] > bound[2]


def test_sweep_grid_holds_n_plus_b_and_resumes(tmp_path):
    base = RunConfig(strategy="backup", semantics="cancel", steps=50, timing_only=True)
    configs = grid(base, strategies=["backup", "sync"], workers=[2, 3, 4], backups=[0], seeds=[0, 1], total_workers=4)
    assert sorted((c.strategy, c.workers, c.backups) for c in configs if c.seed == 0) == [
        ("backup", 2, 2),
        ("backup", 3, 1),
        ("backup", 4, 0),
        ("sync", 4, 0),
    ]
    assert len({run_name(c) for c in configs}) == len(configs)
    first = run_sweep(configs, tmp_path / "sw", jobs=2)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sw" / "runs").glob("*/summary.json")}
    again = run_sweep(configs, tmp_path / "sw", jobs=2)  # complete runs are skipped
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "sw" / "runs").glob("*/summary.json")}
    assert [r["sim_time"] for r in first] == [r["sim_time"] for r in again]
    serial = run_sweep(configs, tmp_path / "serial", jobs=1)  # parallel and serial give the same results
    assert [r["sim_time"] for r in serial] == [r["sim_time"] for r in first]
    assert len(read_results(tmp_path / "sw" / "results.csv")) == len(configs)


def test_run_names_differ_when_anything_differs():
    a = RunConfig(strategy="async", workers=4, timing_only=True)
    assert run_name(a) != run_name(RunConfig(strategy="async", workers=4, staleness_cutoff=2, timing_only=True))
    assert run_name(a) != run_name(RunConfig(strategy="async", workers=4, lr=0.01, timing_only=True))


def test_sweep_command_and_plot_command(tmp_path, capsys):
    out = tmp_path / "sw"
    assert (
        main(
            [
                "sweep",
                "--timing-only",
                "--quiet",
                "--strategy",
                "backup",
                "--semantics",
                "drop",
                "--workers",
                "3",
                "--backups",
                "0-2",
                "--steps",
                "40",
                "--jobs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = read_results(out / "results.csv")
    assert [int(r["backups"]) for r in rows] == [0, 1, 2]
    assert main(["sweep", "--timing-only", "--strategy", "sync", "--backups", "2", "--out", str(tmp_path / "e")]) == 2
    assert "the sweep is empty" in capsys.readouterr().err
    run_dir = next((out / "runs").iterdir())
    assert main(["plot", str(out), str(run_dir), "--out", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").glob("*.png"))
    runs = [f"{run_dir.name}-{kind}.png" for kind in ("iteration-time", "timeline")]
    assert names == sorted(["sw-iteration-time.png", *runs])


def test_chrome_trace_export(tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "simulate",
                "--timing-only",
                "--quiet",
                "--strategy",
                "backup",
                "--workers",
                "3",
                "--backups",
                "1",
                "--steps",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert main(["timeline", str(out), "--out", str(tmp_path / "t.json"), "--updates", "5"]) == 0
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert complete and all(e["dur"] >= 0 and e["name"] in ("applied", "dropped_late", "unfinished") for e in complete)
    assert sum(e["ph"] == "i" for e in events) == 5
    assert {e["tid"] for e in complete} == {0, 1, 2, 3}


FIGURES = (
    "trace-fit",
    "kth-gradient",
    "iteration-time-vs-backups",
    "updates-to-target-vs-n",
    "time-to-target-vs-backups",
    "accuracy-vs-time",
    "staleness",
    "timeline",
    "convex-bound",
)


def _check_study(out: Path, report: str, *, total: int, timing_runs: int) -> None:
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
        assert (out / f"{name}.pdf").exists()
    assert json.loads((out / "timeline.json").read_text())["traceEvents"]
    assert f"Optimum at N + B = {total}: **B =" in report and "faster than" in report
    held = re.search(r"bound holds at (\d+)% of the evaluations", report)
    assert held and int(held.group(1)) >= 90  # a bound in expectation: a noisy evaluation may cross it
    timing = read_results(out / "data" / "timing" / "results.csv")
    assert {r["semantics"] for r in timing} == {"tf", "drop", "cancel"} and len(timing) == timing_runs


def test_reproduce_draws_every_figure_and_the_report(tmp_path):
    """The whole study at the smallest scale that runs every experiment: every figure, the timeline,
    the data and a report (``--quick`` itself: the slow test below)."""
    from stragglersim.studies.reproduce import Scale, reproduce

    tiny = Scale(
        kth_workers=6,
        kth_replications=200,
        timing_n=6,
        timing_backups=1,
        timing_steps=200,
        total=4,
        ns=(2, 4),
        seeds=(0,),
        train_steps=80,
        target=0.6,
        study_target=0.6,
        compare_workers=4,
        staleness_workers=(1, 4),
        convex_steps=100,
    )
    report = reproduce(tmp_path, scale=tiny, only="paper", jobs=1, log=lambda m: None).read_text()  # in-process
    _check_study(tmp_path, report, total=4, timing_runs=6)
    assert "## C1" not in report  # the claim studies: tests/test_claims.py


@pytest.mark.slow
def test_reproduce_quick(tmp_path):
    """``reproduce --quick``: the study at CI scale, with its findings."""
    from stragglersim.studies.reproduce import reproduce

    # The paper's experiments at --quick scale; the claim studies' toy scale: tests/test_claims.py.
    report = reproduce(tmp_path, quick=True, only="paper", jobs=2, log=lambda m: None).read_text()
    _check_study(tmp_path, report, total=8, timing_runs=21)
    assert "faster than sync" in report
