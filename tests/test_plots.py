"""Figures a researcher can publish: seeds averaged with intervals across seeds, panels from the
grid, overlays, unique file names, timeline windows, and reproduce's refusal of a non-empty folder."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from stragglersim.aggregation import collect
from stragglersim.cli import main
from stragglersim.config import RunConfig
from stragglersim.folder_plots import unique_names
from stragglersim.plots import numeric_order
from stragglersim.sweep_plots import plot_sweep, sweep_table
from stragglersim.sweeps import run_sweep

BASE = RunConfig(strategy="backup", semantics="cancel", workers=3, steps=30, timing_only=True)


def sweep(path, configs):
    run_sweep(configs, path, jobs=1)
    return path


def test_a_sweep_plot_draws_seed_means_and_t_intervals_across_seeds(tmp_path):
    folder = sweep(tmp_path / "sw", [replace(BASE, backups=b, seed=s) for b in (0, 1, 2) for s in (0, 1, 2)])
    drawn = plot_sweep({"sw": collect([folder])}, tmp_path / "fig")
    assert (tmp_path / "fig.png").stat().st_size > 10_000 and (tmp_path / "fig.pdf").exists()
    per_seed: dict[int, list[float]] = {}
    for summary in (folder / "runs").glob("*/summary.json"):
        s = json.loads(summary.read_text())
        per_seed.setdefault(s["backups"], []).append(s["mean_iteration_time"])
    assert sorted(r["x"] for r in drawn) == [0, 1, 2]
    for row in drawn:
        values = np.array(per_seed[row["x"]])
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert row["n_seeds"] == 3
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)


def test_one_panel_per_semantics_and_sync_drawn_in_each(tmp_path):
    configs = [
        replace(BASE, semantics=m, backups=b, seed=s)
        for m in ("tf", "drop", "cancel")
        for b in (0, 1)
        for s in (0, 1, 2)
    ]
    configs += [replace(BASE, strategy="sync", semantics=None, seed=s) for s in (0, 1, 2)]
    folder = sweep(tmp_path / "sem", configs)
    layout, metric, rows = sweep_table({"sem": collect([folder])})
    assert (layout.panel, layout.x, layout.lines, metric) == ("semantics", "backups", ("strategy",), "time_per_update")
    assert sorted({r["panel"] for r in rows}, key=numeric_order) == ["tf", "drop", "cancel", ""]  # "": every panel
    assert {r["line"] for r in rows if r["panel"] == ""} == {"sync"}
    plot_sweep({"sem": collect([folder])}, tmp_path / "sem-fig")
    assert (tmp_path / "sem-fig.png").exists()


def test_total_workers_sweeps_draw_one_line_per_p_not_per_n(tmp_path):
    configs = [replace(BASE, workers=p - b, backups=b, seed=s) for p in (5, 6) for b in (0, 1, 2) for s in (0, 1)]
    layout, _, rows = sweep_table({"p": collect([sweep(tmp_path / "p", configs)])})
    assert (layout.x, layout.lines) == ("backups", ("total_workers",))
    assert sorted({r["line"] for r in rows}) == ["P=5", "P=6"]


def test_strategies_with_different_update_sizes_are_drawn_per_gradient(tmp_path):
    configs = [replace(BASE, strategy="async", semantics=None, seed=s) for s in (0, 1)]
    configs += [replace(BASE, backups=b, seed=s) for b in (0, 1) for s in (0, 1)]
    _, metric, rows = sweep_table({"mix": collect([sweep(tmp_path / "mix", configs)])})
    assert metric == "time_per_gradient"
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "mix" / "runs").glob("async*/summary.json")]
    (row,) = [r for r in rows if r["line"] == "async"]
    assert row["mean"] == pytest.approx(np.mean([s["time_per_gradient"] for s in summaries]))


def test_legends_and_line_keys_sort_numbers_numerically():
    keys = [(("workers", 100),), (("workers", 80),), (("workers", None),)]
    assert sorted(keys, key=numeric_order) == [(("workers", 80),), (("workers", 100),), (("workers", None),)]


def test_plot_overlays_sweeps_and_runs_with_unique_names(tmp_path):
    a = sweep(tmp_path / "a" / "sw", [replace(BASE, backups=b, seed=s) for b in (0, 1) for s in (0, 1)])
    b = sweep(
        tmp_path / "b" / "sw", [replace(BASE, semantics="drop", backups=b, seed=s) for b in (0, 1) for s in (0, 1)]
    )
    run_a, run_b = next((a / "runs").iterdir()), tmp_path / "b" / "run"
    assert main(["simulate", "--timing-only", "--quiet", "--workers", "2", "--steps", "20", "--out", str(run_b)]) == 0
    shutil.copytree(run_a, tmp_path / "a" / "run")  # two runs called "run"
    out = tmp_path / "figs"
    assert main(["plot", str(a), str(b), str(tmp_path / "a" / "run"), str(run_b), "--out", str(out)]) == 0
    names = {p.name for p in out.glob("*.png")}
    assert {"a-sw-iteration-time.png", "b-sw-iteration-time.png", "overlay-sweeps-iteration-time.png"} <= names
    assert {"a-run-timeline.png", "b-run-timeline.png", "overlay-runs-iteration-time.png"} <= names
    assert len(names) == len({p.stem for p in out.glob("*.pdf")})
    _, _, rows = sweep_table({"a-sw": collect([a]), "b-sw": collect([b])})
    assert {r["line"] for r in rows} == {"a-sw", "b-sw"}  # one line per folder
    assert unique_names([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "c"]) == ["a-run", "b-run", "c"]


def test_a_run_without_gradients_csv_plots_what_it_holds(tmp_path):
    run = tmp_path / "nolog"
    args = ["simulate", "--timing-only", "--quiet", "--strategy", "async", "--workers", "3", "--steps", "40"]
    assert main([*args, "--log-gradients", "none", "--out", str(run)]) == 0
    assert not (run / "gradients.csv").exists()
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert {p.name for p in (tmp_path / "figs").glob("*.png")} == {"nolog-iteration-time.png"}
    assert main(["timeline", str(run), "--out", str(tmp_path / "t.json")]) == 2  # one clear line, no traceback


def test_timeline_window_exports_only_those_updates(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["simulate", "--timing-only", "--quiet", "--workers", "3", "--backups", "1", "--steps", "20"]
    assert main([*args, "--out", str(run)]) == 0
    assert main(["timeline", str(run), "--updates", "3:7", "--out", str(tmp_path / "t.json")]) == 0
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    marks = [e for e in events if e["ph"] == "i"]
    assert [e["name"] for e in marks] == [f"update {u}" for u in range(3, 8)]
    times = {
        int(line.split(",")[0]): float(line.split(",")[1]) for line in (run / "updates.csv").read_text().split()[1:]
    }
    for e in (e for e in events if e["ph"] == "X"):
        assert e["ts"] <= times[7] * 1e6 and e["ts"] + e["dur"] > times[2] * 1e6  # overlaps updates 3-7
    assert main(["timeline", str(run), "--updates", "7:3", "--out", str(tmp_path / "u.json")]) == 2
    assert "--updates 7:3" in capsys.readouterr().err


def test_gantt_windows_and_the_async_default(tmp_path):
    from stragglersim.plots import plot_gantt
    from stragglersim.timeline import default_window, read_run

    run = tmp_path / "async"
    args = ["simulate", "--timing-only", "--quiet", "--strategy", "async", "--workers", "5", "--steps", "40"]
    assert main([*args, "--out", str(run)]) == 0
    assert default_window(*read_run(run)) == (1, 10)  # about two computation times: 2 x 5 one-gradient updates
    plot_gantt(run, tmp_path / "g", updates=(3, 12))
    assert (tmp_path / "g.png").exists()


def test_reproduce_refuses_a_non_empty_folder_and_changes_nothing(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"] and (tmp_path / "keep.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--quick"])  # --out is required: figures/ is never overwritten by default
    assert exit_.value.code == 2
