"""Figures a researcher can publish: seeds averaged with intervals across seeds, panels from the
grid, overlays, unique file names, timeline windows, and reproduce's refusal of a non-empty folder."""

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig
from stragglersim.io.errors import InputError
from stragglersim.plots import figures as plots
from stragglersim.plots.figures import numeric_order
from stragglersim.studies import folder_plots, sweep_plots
from stragglersim.studies.aggregation import RunRecord, collect
from stragglersim.studies.folder_plots import unique_names
from stragglersim.studies.sweep_layout import Layout, sweep_table
from stragglersim.studies.sweep_plots import plot_sweep
from stragglersim.studies.sweeps import run_sweep

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
    from stragglersim.io.timeline import default_window, read_run
    from stragglersim.plots.figures import plot_gantt

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


# Figures drawn from hand-made records and run folders: saving is replaced by placeholder files (a
# PNG and PDF write costs about 0.4 s), the figures themselves are drawn and inspected.


def _capture(monkeypatch, module, name) -> list:
    """Replace ``module.name`` (a save function) by one that keeps the figure and writes placeholders."""
    from stragglersim.plots.figures import _pyplot

    kept = []

    def keep(fig, path, *args, **kwargs):
        kept.append((Path(path).name, fig))
        for suffix in (".png", ".pdf"):
            Path(path).with_suffix(suffix).write_bytes(b"placeholder")
        _pyplot().close(fig)

    monkeypatch.setattr(module, name, keep)
    return kept


def _record(i: int, summary: dict, **config) -> RunRecord:
    return RunRecord.of(Path(f"/sweep/runs/r{i}"), config, summary)


def test_older_summaries_give_p_from_n_plus_b_and_seconds_per_update_from_the_mean_iteration_time():
    points = [(p, b, s) for p in (4, 5) for b in (0, 1) for s in (0, 1)]  # N = P - B, no total_workers written
    records = [
        _record(i, {"mean_iteration_time": 1.0 + p + 0.1 * s}, workers=p - b, backups=b, seed=s)
        for i, (p, b, s) in enumerate(points)
    ]
    lay, metric, rows = sweep_table({"old": records})
    assert lay == Layout(None, "backups", ("total_workers",)) and metric == "time_per_update"
    got = sorted((r["line"], r["x"], r["mean"]) for r in rows)
    assert got == [("P=4", 0, pytest.approx(5.05)), ("P=4", 1, pytest.approx(5.05))] + [
        ("P=5", 0, pytest.approx(6.05)),
        ("P=5", 1, pytest.approx(6.05)),
    ]
    for asked, named in [(None, "time_per_update"), ("time_to_target", "time_to_target")]:
        message = f"/sweep/runs/r0: summary.json has no {named} (written by an older stragglersim?)"
        with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
            sweep_table({"old": [_record(0, {"updates": 3}, workers=2)]}, asked)


def test_layouts_a_full_n_by_b_grid_another_numeric_axis_and_a_reference_strategy():
    grid = [
        _record(i, {"time_per_update": 1.0}, workers=n, backups=b)
        for i, (n, b) in enumerate([(2, 0), (2, 1), (3, 0), (3, 1)])
    ]
    lay, _, rows = sweep_table({"g": grid})
    assert lay == Layout(None, "backups", ("workers",))  # N and B vary independently: N names the lines
    assert sorted(r["line"] for r in rows) == ["N=2", "N=2", "N=3", "N=3"]
    comm = [_record(i, {"time_per_update": 1.0 + c}, comm_latency=c) for i, c in enumerate((0.0, 0.5, 1.0))]
    assert sweep_table({"c": comm})[0] == Layout(None, "comm_latency", ())
    specs = ("exponential:rate=1", "lognormal:mu=0,sigma=0.5")
    mixed = [
        _record(i, {"time_per_update": 1.0}, strategy="backup", backups=i % 3, latency=specs[i // 3]) for i in range(6)
    ]
    mixed += [_record(6 + i, {"time_per_update": 1.0}, strategy="sync", latency=spec) for i, spec in enumerate(specs)]
    assert sweep_table({"m": mixed})[0] == Layout("latency", "backups", ("strategy",))  # sync: one x, a reference


def test_a_categorical_x_axis_is_labelled_by_its_values(tmp_path, monkeypatch):
    kept = _capture(monkeypatch, sweep_plots, "_save_outside")
    specs = ["exponential:rate=1", "lognormal:mu=0,sigma=0.5"]
    records = [
        _record(2 * i + s, {"time_per_update": 1.0 + i + s}, latency=spec, seed=s)
        for i, spec in enumerate(specs)
        for s in (0, 1)
    ]
    rows = plot_sweep({"l": records}, tmp_path / "l")
    assert [(r["x"], r["mean"]) for r in sorted(rows, key=lambda r: r["x"])] == [(specs[0], 1.5), (specs[1], 2.5)]
    ((_, fig),) = kept
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == specs and ax.get_xlabel() == "latency"


def test_strategies_spanning_a_long_n_axis_get_a_panel_each_and_seconds_per_gradient(tmp_path, monkeypatch):
    kept = _capture(monkeypatch, sweep_plots, "_save_outside")
    records = []
    for strategy, ks in (("sync", [None]), ("async", [None]), ("k-sync", [1, 2]), ("k-async", [1, 2])):
        for k in ks:
            for n in range(2, 15):  # 13 values of N
                applied = 10 * (n if strategy.endswith("sync") and "async" not in strategy else 1)
                summary = {
                    "updates": 10,
                    "gradients_applied": applied,
                    "time_per_update": 1.0,
                    "time_per_gradient": 10 / applied,
                }
                records.append(
                    _record(len(records), summary, strategy=strategy, workers=n, **({} if k is None else {"k": k}))
                )
    assert sweep_table({"s": records})[0] == Layout("strategy", "workers", ("k",))
    plot_sweep({"s": records}, tmp_path / "s")
    ((_, fig),) = kept
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in shown) == ["async", "k-async", "k-sync", "sync"] and len(fig.axes) == 6
    assert shown[0].get_ylabel().endswith("(update sizes differ between strategies)")
    assert all(float(t).is_integer() for t in shown[0].get_xticks())  # 13 values: integer ticks, not one per value
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["k=1", "k=2", "mean"]  # sync and async: no k


def test_a_fit_figure_shows_the_mixture_even_when_four_families_fit_better(tmp_path, monkeypatch):
    kept = _capture(monkeypatch, plots, "save_figure")
    specs = ["exponential:rate=1", "gamma:shape=1.3,scale=0.8", "weibull:shape=1.1,scale=1.1", "lognormal:mu=0,sigma=1"]
    fits = [{"family": s.split(":")[0], "spec": s, "aic": 100.0 + i, "ks": 0.05} for i, s in enumerate(specs)]
    fits.append({"family": "pareto", "spec": "pareto:alpha=2,scale=0.5", "aic": 105.0, "ks": 0.2})
    mixture = {
        "family": "straggler",
        "spec": "straggler:base=exponential(rate=1),p=0.05,factor=3",
        "aic": 110.0,
        "ks": 0.1,
    }
    report = {"candidates": [*fits, mixture], "mixture": mixture, "best": fits[0]}
    plots.plot_fit(np.random.default_rng(0).exponential(1.0, 50) + 0.01, report, tmp_path / "fit")
    ((_, fig),) = kept
    labels = [t.get_text().split(" ")[0] for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["measured", "exponential", "gamma", "weibull", "lognormal", "straggler"]  # not pareto


def test_a_failed_figure_write_leaves_neither_file_and_closes_the_figure(tmp_path):
    plt = plots._pyplot()
    fig, _ = plt.subplots(figsize=(2, 2))

    def full_disk(file, **kwargs):  # the PNG is written, the PDF half written when the disk fills
        Path(file).write_bytes(b"partial")
        if str(file).endswith(".pdf"):
            raise OSError(28, "No space left on device")

    fig.savefig = full_disk
    with pytest.raises(OSError, match="No space left on device"):
        plots.save_figure(fig, tmp_path / "f")
    assert list(tmp_path.iterdir()) == [] and not plt.fignum_exists(fig.number)


def test_more_than_ten_lines_get_distinct_colours():
    assert plots.line_colours(3) == ["C0", "C1", "C2"]
    colours = plots.line_colours(12)
    assert len(set(colours)) == 12 and all(len(c) == 4 for c in colours)  # RGBA from a colormap, no repeat


def _run(folder: Path, config: dict, summary: dict, *, updates=3, gradients=2, metrics=None) -> Path:
    """A run folder by hand: config.toml, summary.json, updates.csv (1.5 s per update), metrics.csv."""
    folder.mkdir(parents=True)
    config = {"strategy": "sync", "workers": 2, "backups": 0, "seed": 0, **config}
    (folder / "config.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
    applied = {"updates": updates, "gradients_applied": gradients * updates, "time_per_update": 1.5}
    (folder / "summary.json").write_text(json.dumps({**config, **applied, **summary}))
    rows = [f"{u},{1.5 * u},1.5,{gradients}\n" for u in range(1, updates + 1)]
    (folder / "updates.csv").write_text("update,time,iteration_time,gradients\n" + "".join(rows))
    if metrics is not None:
        text = "".join(f"{t},{a},{loss}\n" for t, a, loss in metrics)
        (folder / "metrics.csv").write_text("sim_time,test_accuracy,test_loss\n" + text)
    return folder


def test_trained_runs_get_accuracy_figures_and_unlike_update_sizes_are_per_gradient(tmp_path, monkeypatch):
    kept = _capture(monkeypatch, folder_plots, "_save")
    a = _run(tmp_path / "a", {}, {}, metrics=[(1.0, 0.5, 1.2), (2.0, 0.7, 0.9)])
    b = _run(tmp_path / "b", {"strategy": "async"}, {}, gradients=1, metrics=[(1.0, "", 1.3), (2.0, "", 1.0)])
    written = folder_plots.plot_folders([a, b], tmp_path / "figs")
    stems = ["a-iteration-time", "a-accuracy", "b-iteration-time", "b-accuracy", "overlay-runs-iteration-time"]
    assert [p.name for p in written] == [f"{s}.png" for s in [*stems, "overlay-runs-accuracy"]]
    figs = dict(kept)
    assert figs["a-accuracy"].axes[0].get_ylabel() == "test accuracy"
    assert figs["b-accuracy"].axes[0].get_ylabel() == "test loss"  # no accuracy recorded: the loss instead
    left = figs["overlay-runs-iteration-time"].axes[0]
    assert left.get_title() == "update sizes differ: time per applied gradient"
    assert [list(line.get_ydata()) for line in left.get_lines()] == [[0.75] * 3, [1.5] * 3]


def test_a_run_that_cannot_be_drawn_removes_this_calls_figures_only(tmp_path, monkeypatch):
    _capture(monkeypatch, folder_plots, "_save")
    out = tmp_path / "figs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    good, empty = _run(tmp_path / "good", {}, {}), _run(tmp_path / "empty", {}, {}, updates=0)
    with pytest.raises(InputError, match="empty/updates.csv: holds no update; nothing to plot"):
        folder_plots.plot_folders([good, empty], out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # good-iteration-time.png and .pdf removed
    bad = _run(tmp_path / "bad", {}, {})
    (bad / "updates.csv").write_text("update,time\n1,1.5\n")
    with pytest.raises(InputError, match=r"bad/updates.csv: not a run's updates table \(columns time, iteration_time"):
        folder_plots.plot_folders([bad], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_sweep_that_reached_its_target_gets_a_time_to_target_figure(tmp_path, monkeypatch):
    kept = _capture(monkeypatch, sweep_plots, "_save_outside")
    for i, (b, s) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        _run(
            tmp_path / "sw" / "runs" / f"r{i}",
            {"strategy": "backup", "backups": b, "seed": s},
            {"time_to_target": 10.0 + b + s},
        )
    written = folder_plots.plot_folders([tmp_path / "sw"], tmp_path / "figs")
    assert [p.name for p in written] == ["sw-iteration-time.png", "sw-time-to-target.png"]  # no final accuracy
    assert dict(kept)["sw-time-to-target"].axes[0].get_ylabel() == "simulated seconds to the target"
