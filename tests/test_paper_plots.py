"""Figures a paper can use: axes named by what was varied (P for async, N and B for sync), log axes
for worker counts, legends without constants, --figsize column|page, the trade-off frontier with
seed intervals on both axes, and diverged points marked rather than drawn at chance accuracy.

Sweeps are made by hand (config.toml and summary.json per run); figures are read back from
Matplotlib (saving is replaced, as in test_plots, except where the file's size is the point)."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from scipy import stats
from stragglersim.cli.main import main
from stragglersim.io.errors import InputError
from stragglersim.plots.figures import _pyplot
from stragglersim.studies import folder_plots, frontier, sweep_plots
from stragglersim.studies.aggregation import collect
from stragglersim.studies.frontier import plot_frontier
from stragglersim.studies.sweep_plots import plot_sweep

SEEDS = (0, 1, 2)


def capture(monkeypatch, module, name) -> list:
    """Replace ``module.name`` (a save function) by one that keeps the figure and writes placeholders."""
    kept = []

    def keep(fig, path, *args, **kwargs):
        kept.append((Path(path).name, fig))
        for suffix in (".png", ".pdf"):
            Path(path).with_suffix(suffix).write_bytes(b"placeholder")

    monkeypatch.setattr(module, name, keep)
    return kept


@pytest.fixture(autouse=True)
def close_figures():
    """The figures ``capture`` kept open for reading, closed after each test."""
    yield
    _pyplot().close("all")


def run(folder: Path, name: str, config: dict, summary: dict) -> None:
    """One run folder of a sweep by hand: ``runs/NAME/config.toml`` and ``summary.json``."""
    path = folder / "runs" / name
    path.mkdir(parents=True)
    path.joinpath("config.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
    path.joinpath("summary.json").write_text(json.dumps({**config, **summary}))


def timing(p: int, seed: int) -> dict:
    """A run's timing: ``updates`` updates in ``sim_time`` seconds, different for every seed."""
    updates = 40
    return {"updates": updates, "sim_time": updates * (1.0 + 0.1 * seed) / p, "time_per_update": (1.0 + 0.1 * seed) / p}


def async_sweep(folder: Path, workers=(1, 4, 16, 64), quality=True, diverging=()) -> Path:
    """async at P workers, three seeds; stale and batch cosines falling with P; ``diverging``:
    (P, seed) pairs that diverged (chance accuracy, garbage cosines, as an older run would hold)."""
    for p in workers:
        for s in SEEDS:
            gone = (p, s) in diverging
            summary = timing(p, s) | {"total_workers": p, "final_test_accuracy": 0.097 if gone else 0.9 - 0.01 * p}
            if quality:
                summary |= {"stale_cosine_mean": -0.5 if gone else 1.0 - 0.01 * p - 0.002 * s}
                summary |= {"batch_cosine_mean": -0.5 if gone else 0.3 - 0.002 * p + 0.001 * s}
            summary |= {"diverged": gone or None}
            config = {"strategy": "async", "workers": p, "seed": s, "param_bytes": 38440.0, "lr": 0.1}
            run(folder, f"async-P{p}-s{s}", config, summary)
    return folder


def test_an_async_sweep_is_drawn_against_p_workers_on_a_log2_axis(tmp_path, monkeypatch):
    kept = capture(monkeypatch, sweep_plots, "_save_outside")
    plot_sweep({"a": collect([async_sweep(tmp_path / "a")])}, tmp_path / "fig")
    ((_, fig),) = kept
    (ax,) = fig.axes
    assert ax.get_xlabel() == "P, workers"  # not "N, gradients averaged per update"
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16", "64"]  # the integers, not 2^k
    assert list(ax.get_xticks()) == [1, 4, 16, 64]
    assert fig.legends == []  # one line: nothing varies but P, so no legend at all
    assert "P=" not in fig._suptitle.get_text()  # P is the x axis, not a constant


def test_a_sync_sweep_is_drawn_against_n_and_a_narrow_range_stays_linear(tmp_path, monkeypatch):
    kept = capture(monkeypatch, sweep_plots, "_save_outside")
    for n in (2, 4, 8):
        for s in SEEDS:
            run(tmp_path / "s", f"sync-N{n}-s{s}", {"strategy": "sync", "workers": n, "seed": s}, timing(n, s))
    plot_sweep({"s": collect([tmp_path / "s"])}, tmp_path / "fig")
    ((_, fig),) = kept
    (ax,) = fig.axes
    assert ax.get_xlabel() == "N, gradients averaged per update"
    assert ax.get_xscale() == "linear"  # 2 to 8: a factor of 4, not more than 8


def test_constant_legend_entries_go_to_the_caption_and_derived_ones_are_dropped(tmp_path, monkeypatch):
    """backup with N = 20 - B (P = 20 for every run) and two models (param_bytes follows the model):
    the legend names only the model; P = 20 is in the caption; N + B = P is the x axis's B."""
    kept = capture(monkeypatch, sweep_plots, "_save_outside")
    for hidden, size in (("64", 20000.0), ("128", 38440.0)):
        for b in (0, 1, 2, 3):
            for s in SEEDS:
                config = {"strategy": "backup", "workers": 20 - b, "backups": b, "seed": s}
                config |= {"hidden": hidden, "param_bytes": size, "semantics": "tf"}
                run(tmp_path / "b", f"h{hidden}-B{b}-s{s}", config, timing(20, s) | {"total_workers": 20})
    plot_sweep({"b": collect([tmp_path / "b"])}, tmp_path / "fig")
    ((_, fig),) = kept
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["hidden=128", "hidden=64"]
    assert legend.get_title().get_text() == "hidden"
    assert fig.axes[0].get_xlabel() == "backup workers B"
    assert fig._suptitle.get_text().splitlines()[1] == "backup, tf, P=20, exponential:rate=1, 1000 updates"


@pytest.mark.parametrize(("figsize", "width", "points"), [("column", 3.4, 8.0), ("page", 7.0, 9.0)])
def test_figsize_sets_the_width_in_inches_and_readable_text(tmp_path, monkeypatch, figsize, width, points):
    kept = capture(monkeypatch, sweep_plots, "_save_outside")
    records = collect([async_sweep(tmp_path / "a", diverging={(64, 0)})])
    plot_sweep({"a": records}, tmp_path / "fig", metric="final_test_accuracy", figsize=figsize)
    ((_, fig),) = kept
    ax = fig.axes[0]
    assert fig.get_size_inches()[0] == pytest.approx(width)
    assert ax.xaxis.label.get_fontsize() == points and ax.yaxis.label.get_fontsize() == points
    assert {t.get_fontsize() for t in ax.get_xticklabels()} == {points - 1}
    assert fig._suptitle.get_fontsize() == points
    (legend,) = fig.legends  # the × of the diverged seed, inside the figure's width
    assert {t.get_fontsize() for t in legend.get_texts()} == {points - 1}


def test_the_default_size_is_unchanged(tmp_path, monkeypatch):
    kept = capture(monkeypatch, sweep_plots, "_save_outside")
    plot_sweep({"a": collect([async_sweep(tmp_path / "a")])}, tmp_path / "fig")
    ((_, fig),) = kept
    assert tuple(fig.get_size_inches()) == pytest.approx((4.6, 3.6))
    assert fig._suptitle.get_fontsize() == 10


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_plot_figsize_column_writes_3_4_inch_figures_and_a_frontier(tmp_path, capsys):
    async_sweep(tmp_path / "a", workers=(1, 16))
    assert main(["plot", str(tmp_path / "a"), "--out", str(tmp_path / "figs"), "--figsize", "column"]) == 0
    written = capsys.readouterr().out.split()
    assert [Path(p).name for p in written] == ["a-iteration-time.png", "a-final-test-accuracy.png", "a-frontier.png"]
    for path in written:
        assert png_size(Path(path))[0] == round(3.4 * 120)  # 120 dpi: exactly a column wide
    with pytest.raises(SystemExit) as usage:
        main(["plot", str(tmp_path / "a"), "--out", str(tmp_path / "f2"), "--figsize", "poster"])
    assert usage.value.code == 2
    assert "invalid choice: 'poster'" in capsys.readouterr().err
    with pytest.raises(InputError, match="^figsize poster: give column or page$"):
        plot_sweep({"a": collect([tmp_path / "a"])}, tmp_path / "x", figsize="poster")


def student(values) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return values.mean(), low, high


def errorbars(ax) -> dict:
    """Each errorbar of ``ax`` by its centre: (x segment ends, y segment ends)."""
    found = {}
    for container in ax.containers:
        assert isinstance(container, ErrorbarContainer)
        xbars, ybars = container.lines[2]
        ((x0, y), (x1, _)) = xbars.get_segments()[0]
        ((x, y0), (_, y1)) = ybars.get_segments()[0]
        found[(round(x, 12), round(y, 12))] = ((x0, x1), (y0, y1))
    return found


def test_the_frontier_has_seed_intervals_on_both_axes_and_marks_diverged_points(tmp_path, monkeypatch):
    kept = capture(monkeypatch, frontier, "save_figure")
    records = collect([async_sweep(tmp_path / "a", workers=(1, 4, 16), diverging={(16, 2)})])
    rows = plot_frontier(records, tmp_path / "frontier")
    ((_, fig),) = kept
    stale, batch = fig.axes
    assert stale.get_xlabel() == "simulated seconds per update"
    assert stale.get_ylabel() == "stale cosine (staleness alone)"
    assert batch.get_ylabel() == "batch cosine (sampling and staleness)"
    for ax, key in ((stale, "stale_cosine_mean"), (batch, "batch_cosine_mean")):
        bars = errorbars(ax)
        assert len(bars) == 3  # one point per configuration
        for p in (1, 4, 16):
            files = sorted((tmp_path / "a" / "runs").glob(f"async-P{p}-s*/summary.json"))
            runs = [json.loads(f.read_text()) for f in files]
            t_mean, t_low, t_high = student([r["sim_time"] / r["updates"] for r in runs])  # every seed: timing stands
            q_mean, q_low, q_high = student([r[key] for r in runs if not r["diverged"]])  # the diverged seed left out
            (x0, x1), (y0, y1) = bars[(round(t_mean, 12), round(q_mean, 12))]
            assert (x0, x1) == pytest.approx((t_low, t_high), rel=1e-12)
            assert (y0, y1) == pytest.approx((q_low, q_high), rel=1e-12)
        marks = [line for line in ax.get_lines() if line.get_marker() == "x"]
        assert len(marks) == 1  # P = 16: one seed of three diverged
        assert [t.get_text() for t in ax.texts if "/" in t.get_text()] == ["1/3"]
        assert [t.get_text() for t in ax.texts if "=" in t.get_text()] == ["P=1", "P=4", "P=16"]
    assert stale.get_xscale() == "log"  # 1/16 to 1.2 seconds: more than a factor of 8
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["mean over seeds", fig.legends[0].texts[1].get_text()]
    assert fig.legends[0].texts[1].get_text().startswith("diverged")
    assert [r["diverged"] for r in rows] == [0, 0, 1] and rows[2]["stale_cosine_mean_n"] == 2


def test_a_sweep_without_quality_has_no_frontier_and_older_runs_use_mean_cosine(tmp_path, monkeypatch):
    capture(monkeypatch, folder_plots, "plot_sweep")
    kept = capture(monkeypatch, frontier, "save_figure")
    written = folder_plots.plot_folders([async_sweep(tmp_path / "a", workers=(1, 4), quality=False)], tmp_path / "f")
    assert [p.name for p in written] == ["a-iteration-time.png", "a-final-test-accuracy.png"] and kept == []
    for i, p in enumerate((1, 4)):
        for s in SEEDS:
            summary = timing(p, s) | {"mean_cosine": 0.9 - 0.1 * p}
            run(tmp_path / "old", f"r{i}-{s}", {"strategy": "async", "workers": p, "seed": s}, summary)
    written = folder_plots.plot_folders([tmp_path / "old"], tmp_path / "g")
    assert [p.name for p in written] == ["old-iteration-time.png", "old-frontier.png"]
    ((_, fig),) = kept
    (ax,) = fig.axes
    assert ax.get_ylabel() == "cosine with a large-batch gradient"
    assert sorted(ax.get_lines()[0].get_ydata()) == pytest.approx([0.5, 0.8])


def test_a_configuration_whose_seeds_all_diverged_is_an_x_not_chance_accuracy(tmp_path, monkeypatch):
    kept = capture(monkeypatch, sweep_plots, "_save_outside")
    folder = async_sweep(tmp_path / "a", workers=(1, 4, 16), diverging={(16, s) for s in SEEDS} | {(4, 0)})
    rows = plot_sweep({"a": collect([folder])}, tmp_path / "fig", metric="final_test_accuracy")
    ((_, fig),) = kept
    (ax,) = fig.axes
    (line,) = [line for line in ax.get_lines() if line.get_marker() == "o"]  # the means, not bars nor ×
    assert list(line.get_xdata()) == [1, 4] and list(line.get_ydata()) == pytest.approx([0.89, 0.86])  # no 0.097
    marks = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert sorted(m.get_xdata()[0] for m in marks) == [4, 16]
    assert sorted(t.get_text() for t in ax.texts) == ["1/3", "3/3"]
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1].startswith("diverged")
    every = next(r for r in rows if r["x"] == 16)
    assert (every["mean"], every["diverged"], every["n_seeds"]) == (None, 3, 3)
    kept.clear()
    plot_sweep({"a": collect([folder])}, tmp_path / "t")  # seconds per update: a diverged run's timing stands
    ((_, fig),) = kept
    assert not [line for line in fig.axes[0].get_lines() if line.get_marker() == "x"]
