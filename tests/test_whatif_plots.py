"""What-if figures and Perfetto timelines: the heatmap shows the hot worker as the hottest cell on a
scale from 1, the step-time figure keeps its legend off the data, the backup figure counts replicas
in whole numbers, and the timeline has one named process per worker with steps laid end to end."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from stragglersim.llm.figures import (
    backups_figure,
    heatmap_figure,
    plot_whatif,
    step_times_figure,
    write_timeline,
)

HOT = (1, 2)  # DP rank 1, stage 2


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def result(score=None, steps=(16, 17, 20, 31)):
    n = len(steps)
    if score is None:
        score = [[1.0, 1.01, 1.0], [1.0, 1.0, 1.6]]
    return {
        "dp_size": 2,
        "pp_size": 3,
        "trace": "toy.parquet",
        "steps": list(steps),
        "step_time": {
            "measured": [3.2] * n,
            "replayed": [3.21] * n,
            "no_delay": [3.1] * n,
            "ideal": [2.0] * n,
        },
        "slowdown": 1.55,
        "launch_slowdown": 1.03,
        "M_S": 0.9,
        "M_W": None,  # strictjson writes a non-finite M as null: drawn as n/a
        "worker_score": score,
        "backups": [
            {"backups": 0, "mean_step_time": 3.2, "samples_dropped": 0.0},
            {"backups": 1, "mean_step_time": 2.1, "samples_dropped": 0.5, "ideal_mean_step_time": 2.0},
        ],
    }


def test_plot_whatif_writes_three_figures_as_png_and_pdf(tmp_path):
    written = plot_whatif(result(), tmp_path)
    stems = ["whatif-heatmap", "whatif-step-times", "whatif-backups"]
    assert written == [tmp_path / f"{s}.{ext}" for s in stems for ext in ("png", "pdf")]
    for path in written:
        assert path.stat().st_size > 5_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temporaries


def test_the_hot_worker_is_the_extreme_colour_and_every_cell_is_annotated():
    fig = heatmap_figure(result())
    ax = fig.axes[0]
    (image,) = ax.images
    data = np.asarray(image.get_array())
    assert data.shape == (2, 3)  # DP ranks are rows, stages columns
    assert np.unravel_index(np.argmax(data), data.shape) == HOT
    colours = image.to_rgba(data)
    assert np.allclose(colours[HOT], image.cmap(1.0))  # the top of the scale
    assert all(image.norm(v) < 0.05 for (i, v) in np.ndenumerate(data) if i != HOT)
    assert image.norm.vmin == 1.0 and image.norm.vmax == pytest.approx(1.6)
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["1.00", "1.01", "1.00", "1.00", "1.00", "1.60"])
    assert "toy.parquet" in ax.get_title() and "1.55" in ax.get_title()
    assert fig.axes[1].get_ylabel() == "worker score = min(DP rank S, stage S)"


def test_a_uniform_heatmap_is_one_colour_not_noise():
    fig = heatmap_figure(result(score=[[1.0, 1.0001, 1.0], [0.9999, 1.0, 1.0]]))
    (image,) = fig.axes[0].images
    assert image.norm.vmax == 1.05
    colours = image.to_rgba(np.asarray(image.get_array()))
    assert np.ptp(colours.reshape(-1, 4), axis=0).max() < 0.01  # every cell the same colour


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_step_times_name_few_steps_start_at_zero_and_keep_the_legend_off_the_data():
    fig = step_times_figure(result())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "17", "20", "31"]
    assert ax.get_ylim()[0] == 0
    assert {line.get_label() for line in ax.get_lines()} >= {"measured", "no launch delay"}
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert not _overlap(legend, ax.get_window_extent(renderer))
    (box,) = [t for t in ax.texts if "S = 1.55" in t.get_text()]
    assert "M_S = 0.90" in box.get_text() and "M_W = n/a" in box.get_text()
    assert not _overlap(box.get_window_extent(renderer), ax.get_window_extent(renderer))
    assert not _overlap(box.get_window_extent(renderer), legend)


def test_many_steps_are_numbered_by_index():
    fig = step_times_figure(result(steps=range(100, 140)))
    ax = fig.axes[0]
    assert "step index" in ax.get_xlabel() and "100 to 139" in ax.get_xlabel()
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_backups_are_counted_in_whole_numbers_with_both_durations():
    fig = backups_figure(result())
    left, right = fig.axes
    for ax in (left, right):
        fig.canvas.draw()
        shown = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert shown == [0, 1]
    measured, ideal = left.get_lines()
    assert list(measured.get_ydata()) == [3.2, 2.1]
    assert np.isnan(ideal.get_ydata()[0]) and ideal.get_ydata()[1] == 2.0  # missing at B = 0: a gap
    assert left.get_ylim()[0] == 0
    assert list(right.get_lines()[0].get_ydata()) == [0.0, 0.5]


def ops_table() -> pd.DataFrame:
    """Two workers (DP 0 and 1 of stage 0) and one of stage 1, two steps, each replayed from 0."""
    rows = []
    for step, length in ((5, 2.0), (7, 3.0)):
        for d, s in ((1, 0), (0, 0), (0, 1)):
            rows += [
                (d, s, step, "forward-compute", 0, 0.0, 0.5),
                (d, s, step, "forward-send", 0, 0.5, 0.6),
                (d, s, step, "grads-reduce-scatter", 0, 0.6, length - 0.25 * d),
                (d, s, step, "layernorm-grads-all-reduce", 0, length - 0.25 * d, length - 0.25 * d),
            ]
    frame = pd.DataFrame(rows, columns=["dp_rank", "stage", "step", "optype", "seq_id", "start", "end"])
    frame["optype"] = frame["optype"].astype("category")  # as read from the parquet traces
    return frame.sample(frac=1.0, random_state=0)  # any row order


@pytest.mark.parametrize("name", ["replay.json", "replay.json.gz"])
def test_the_timeline_has_a_named_process_per_worker_and_steps_end_to_end(tmp_path, name):
    ops = ops_table()
    path = tmp_path / name
    count = write_timeline(ops, path, title="toy: ideal replay")
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
    assert "\n" not in text and ", " not in text  # compact
    document = json.loads(text)
    events = document["traceEvents"]
    assert len(events) == count and document["metadata"]["title"] == "toy: ideal replay"
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    order = {e["pid"]: e["args"]["sort_index"] for e in events if e["name"] == "process_sort_index"}
    assert sorted(names.values(), key=lambda n: order[{v: k for k, v in names.items()}[n]]) == [
        "DP 0 stage 0",
        "DP 0 stage 1",
        "DP 1 stage 0",
    ]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    ops_events = [e for e in events if e["ph"] == "X"]
    assert len(ops_events) == len(ops)
    stream = {e["name"]: threads[e["pid"], e["tid"]] for e in ops_events}
    assert stream == {
        "forward-compute": "compute",
        "forward-send": "pipeline send/recv",
        "grads-reduce-scatter": "data-parallel",
        "layernorm-grads-all-reduce": "compute",
    }
    first = [e for e in ops_events if e["args"]["step"] == 5]
    second = [e for e in ops_events if e["args"]["step"] == 7]
    assert max(e["ts"] + e["dur"] for e in first) == pytest.approx(2.0e6)
    assert min(e["ts"] for e in second) > 2.0e6  # step 7 starts after step 5 ends
    worker = {pid: (int(n.split()[1]), int(n.split()[3])) for pid, n in names.items()}  # "DP d stage s"
    measured = {(r.dp_rank, r.stage, r.step, r.optype): (r.end - r.start) * 1e6 for r in ops.itertuples()}
    for e in ops_events:
        assert e["dur"] == pytest.approx(measured[(*worker[e["pid"]], e["args"]["step"], e["name"])])  # microseconds
        assert e["args"]["seq_id"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # written atomically: no temporary left


def test_a_heatmap_of_more_than_400_workers_leaves_its_cells_unannotated():
    big = {**result(score=np.ones((21, 20)).tolist()), "dp_size": 21, "pp_size": 20}
    fig = heatmap_figure(big)
    ax = fig.axes[0]
    assert np.asarray(ax.images[0].get_array()).shape == (21, 20)
    assert len(ax.texts) == 0  # 420 numbers would not fit their cells
    assert {t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()} == {6}


def test_a_result_without_the_ideal_series_draws_the_others():
    partial = result()
    del partial["step_time"]["ideal"]
    partial["backups"] = [{k: v for k, v in row.items() if not k.startswith("ideal_")} for row in partial["backups"]]
    ax = step_times_figure(partial).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["measured", "replayed (own durations)", "no launch delay"]
    left, right = backups_figure(partial).axes
    assert [line.get_label() for line in left.get_lines()] == ["measured durations"]
    assert [line.get_label() for line in right.get_lines()] == ["measured durations"]


def test_a_timeline_of_an_op_table_without_end_times_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"op table lacks columns \['end'\]"):
        write_timeline(ops_table().drop(columns="end"), tmp_path / "t.json", title="t")
    assert not any(tmp_path.iterdir())
