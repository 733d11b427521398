"""Seeds aggregated per configuration: the intervals against SciPy, one seed, grouping, missing metrics,
diverged runs counted and never averaged in."""

import json
import math

import numpy as np
import pytest
import stragglersim
from scipy import stats
from stragglersim.io.errors import InputError
from stragglersim.studies.aggregation import aggregate, collect, metric_names, varying, write_aggregate
from stragglersim.studies.comparison import aggregate_folders, paired

SEEDS = (0, 1, 2, 3, 4, 10)  # 10: seeds sort as numbers, not as text


def make_run(folder, *, backups, seed, steps=100):
    run = stragglersim.simulate(strategy="backup", workers=4, backups=backups, steps=steps, timing_only=True, seed=seed)
    return run.save(folder / f"b{backups}-s{seed}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder of run folders: backup (tf) N=4 with B = 0 and B = 2, six seeds each."""
    folder = tmp_path_factory.mktemp("runs")
    for b in (2, 0):  # written out of order: the rows come sorted anyway
        for s in SEEDS:
            make_run(folder, backups=b, seed=s)
    return folder


def summaries(folder, backups):
    return [json.loads((folder / f"b{backups}-s{s}" / "summary.json").read_text()) for s in SEEDS]


def test_intervals_are_student_t_over_seeds(runs):
    rows = aggregate(collect([runs]))
    assert [(r["strategy"], r["backups"], r["n_seeds"]) for r in rows] == [("backup", 0, 6), ("backup", 2, 6)]
    for row in rows:
        assert row["seeds"] == "0 1 2 3 4 10"
        for metric in ("time_per_update", "time_per_gradient", "samples_per_second", "std_iteration_time"):
            values = np.array([s[metric] for s in summaries(runs, row["backups"])])
            mean, sem = values.mean(), values.std(ddof=1) / math.sqrt(len(values))
            low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
            assert row[f"{metric}_mean"] == pytest.approx(mean, rel=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
            assert (row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]) == pytest.approx((low, high), rel=1e-12)
            assert low < mean < high


def test_one_seed_leaves_std_and_interval_empty(tmp_path):
    make_run(tmp_path, backups=1, seed=5)
    (row,) = aggregate(collect([tmp_path]))
    assert row["n_seeds"] == 1 and row["seeds"] == "5"
    assert row["time_per_update_mean"] > 0
    assert row["time_per_update_std"] is None and row["time_per_update_ci_low"] is None
    write_aggregate([row], tmp_path / "aggregate.csv")
    header, cells = (line.split(",") for line in (tmp_path / "aggregate.csv").read_text().splitlines())
    table = dict(zip(header, cells, strict=True))
    assert table["time_per_update_std"] == table["time_per_update_ci_low"] == table["time_per_update_ci_high"] == ""
    assert float(table["time_per_update_mean"]) == row["time_per_update_mean"]


def test_points_group_by_configuration_without_seed_and_labels_name_what_varies(runs, tmp_path):
    records = collect([runs])
    assert varying(records) == ["strategy", "backups"]
    assert len({r.point for r in records}) == 2
    # a run folder, a folder of runs and a sweep folder (its runs/) read alike; a run given twice counts once
    sweep = tmp_path / "sweep"
    make_run(sweep / "runs", backups=0, seed=7)
    mixed = collect([runs, runs / "b0-s0", sweep])
    assert len(mixed) == len(records) + 1
    assert [r["n_seeds"] for r in aggregate(mixed)] == [7, 6]
    assert "seed" not in varying(mixed) and "workers" not in metric_names(mixed)


def test_the_same_configuration_and_seed_in_two_folders_is_an_error(runs, tmp_path):
    make_run(tmp_path, backups=0, seed=1)
    with pytest.raises(InputError, match="the same configuration and seed"):
        aggregate(collect([runs, tmp_path]))


def test_a_metric_some_runs_lack_is_averaged_over_those_that_have_it_with_an_n_column(tmp_path):
    reached = {0: 12.5, 1: None, 2: 14.5}  # seed 1 never reached its target
    for seed, time in reached.items():
        path = make_run(tmp_path / "a", backups=0, seed=seed)
        summary = json.loads((path / "summary.json").read_text())
        summary |= {"time_to_target": time, "target_accuracy": 0.9, "batch_size": 32, "lr": 0.1}
        (path / "summary.json").write_text(json.dumps(summary))
        make_run(tmp_path / "b", backups=1, seed=seed)  # no time_to_target at all
    rows = aggregate(collect([tmp_path / "a", tmp_path / "b"]))
    assert [r["time_to_target_n"] for r in rows] == [2, 0]
    assert rows[0]["time_to_target_mean"] == 13.5 and rows[0]["time_to_target_std"] == pytest.approx(math.sqrt(2))
    assert rows[1]["time_to_target_mean"] is None and rows[1]["time_to_target_ci_low"] is None
    assert "time_per_update_n" not in rows[0]  # every run has it
    records = collect([tmp_path / "a"])
    assert not {"target_accuracy", "batch_size", "lr", "seed", "backups"} & set(metric_names(records))
    write_aggregate(rows, tmp_path / "aggregate.csv")
    header = (tmp_path / "aggregate.csv").read_text().splitlines()[0].split(",")
    assert header.index("time_to_target_n") == header.index("time_to_target_ci_high") + 1


def test_a_folder_without_runs_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no run"):
        collect([tmp_path / "empty"])
    with pytest.raises(InputError, match="no such folder"):
        collect([tmp_path / "missing"])


def test_a_run_with_an_unreadable_file_is_an_error_naming_that_file(tmp_path):
    """A sweep has many runs: the error names the broken file itself, and a missing file names the run."""
    run = make_run(tmp_path, backups=0, seed=0, steps=5)
    (run / "summary.json").write_text("{not json")
    with pytest.raises(InputError) as err:
        collect([tmp_path])
    assert str(err.value).startswith(f"{run / 'summary.json'}: cannot read")
    (run / "summary.json").write_text("{}")
    (run / "config.toml").unlink()
    with pytest.raises(InputError) as err:
        collect([run])
    assert str(err.value) == f"{run}: not a complete run folder (no config.toml)"


def test_a_folder_of_runs_skips_what_is_not_a_complete_run(tmp_path):
    """A sweep's runs/ holds runs still being written (no summary.json yet) and stray files: only
    complete runs are collected."""
    make_run(tmp_path, backups=0, seed=0, steps=5)
    (tmp_path / "half-written").mkdir()
    (tmp_path / "half-written" / "config.toml").write_text("strategy = 'sync'\n")
    (tmp_path / "notes.txt").write_text("a stray file\n")
    assert [r.path.name for r in collect([tmp_path])] == ["b0-s0"]


# ---------------------------------------------------------------- diverged runs, by hand


def hand_run(folder, name, *, lr, seed, accuracy, time, diverged):
    """A run folder by hand: config.toml and summary.json (``diverged`` as given: a key left out with MISSING)."""
    run = folder / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text(f'strategy = "sync"\nworkers = 4\nlr = {lr}\nseed = {seed}\n')
    summary = {"strategy": "sync", "workers": 4, "seed": seed, "time_per_update": time}
    summary |= {"final_test_accuracy": accuracy, "final_test_loss": 2.3 if accuracy < 0.2 else 0.4}
    if diverged != "MISSING":
        summary |= {"diverged": diverged, "diverged_at": 7 if diverged else None}
    (run / "summary.json").write_text(json.dumps(summary))


# lr: [(seed, accuracy, seconds per update, diverged)]; a diverged run's accuracy is chance (0.097)
DIVERGING = {
    0.01: [(0, 0.80, 1.0, None), (1, 0.82, 1.2, False), (2, 0.86, 1.1, "MISSING")],
    0.1: [(0, 0.90, 1.0, None), (1, 0.097, 1.3, True), (2, 0.94, 1.5, None)],
    1.0: [(0, 0.097, 1.1, "loss nan at update 3"), (1, 0.097, 1.2, True), (2, 0.1, 1.6, True)],  # older: a string
}


@pytest.fixture
def diverging(tmp_path):
    for lr, runs in DIVERGING.items():
        for seed, accuracy, time, diverged in runs:
            hand_run(tmp_path, f"lr{lr}-s{seed}", lr=lr, seed=seed, accuracy=accuracy, time=time, diverged=diverged)
    return tmp_path


def test_diverged_seeds_are_counted_and_their_accuracy_never_averaged_in(diverging):
    rows = {r["lr"]: r for r in aggregate(collect([diverging]))}
    assert [rows[lr]["diverged_runs"] for lr in (0.01, 0.1, 1.0)] == [0, 1, 3]
    assert list(rows[0.1])[:4] == ["strategy", "lr", "n_seeds", "diverged_runs"]  # beside the seed count
    ok = np.array([0.90, 0.94])  # seed 1 diverged: left out
    low, high = stats.t.interval(0.95, 1, loc=ok.mean(), scale=stats.sem(ok))
    got = rows[0.1]
    assert (got["final_test_accuracy_mean"], got["final_test_accuracy_n"]) == (pytest.approx(0.92), 2)
    assert (got["final_test_accuracy_ci_low"], got["final_test_accuracy_ci_high"]) == pytest.approx((low, high))
    assert got["time_per_update_mean"] == pytest.approx(3.8 / 3)  # timing of a diverged run stands
    every = rows[1.0]  # every seed diverged: no accuracy at all, not chance
    assert [every[f"final_test_accuracy_{s}"] for s in ("mean", "std", "ci_low", "ci_high", "n")] == [None] * 4 + [0]
    assert every["final_test_loss_mean"] is None and every["time_per_update_mean"] == pytest.approx(1.3)
    assert rows[0.01]["final_test_accuracy_mean"] == pytest.approx(2.48 / 3)  # null, false and no key: not diverged
    assert "diverged_at_mean" not in got  # an update index, not a metric


def test_aggregate_csv_and_table_show_the_diverged_column(diverging, tmp_path):
    report = aggregate_folders([diverging], out=tmp_path / "agg.csv")
    header = next(line for line in report.lines if "n_seeds" in line).split()
    assert header[header.index("n_seeds") + 1] == "diverged"
    assert "a diverged run's training metrics (accuracy, loss, quality) are left out of the means" in report.text()
    table = (tmp_path / "agg.csv").read_text().splitlines()
    assert table[0].startswith("strategy,lr,n_seeds,diverged_runs,seeds,")
    assert [line.split(",")[3] for line in table[1:]] == ["0", "1", "3"]


def test_a_seed_where_either_side_diverged_is_left_out_of_the_pairs_and_counted(diverging):
    rows, _ = paired(collect([diverging]), baseline="lr=0.1", metrics=["final_test_accuracy", "time_per_update"])
    acc = {r["lr"]: r for r in rows if r["metric"] == "final_test_accuracy"}
    # lr=0.01 against lr=0.1: the baseline's seed 1 diverged, so seeds 0 and 2 pair
    d = np.array([0.80 - 0.90, 0.86 - 0.94])
    low, high = stats.t.interval(0.95, 1, loc=d.mean(), scale=stats.sem(d))
    one = acc[0.01]
    assert (one["n_pairs"], one["diverged_pairs"], one["diverged_runs"]) == (2, 1, 0)
    assert one["diff"] == pytest.approx(d.mean()) and (one["diff_ci_low"], one["diff_ci_high"]) == pytest.approx(
        (low, high)
    )
    assert one["mean"] == pytest.approx(2.48 / 3) and one["note"] == "1 of the common seeds diverged"
    every = acc[1.0]
    assert (every["n_pairs"], every["diverged_pairs"], every["diff"], every["mean"]) == (0, 3, None, None)
    assert every["note"] == "3 of the common seeds diverged: no pair"
    timing = next(r for r in rows if r["metric"] == "time_per_update" and r["lr"] == 1.0)
    assert (timing["n_pairs"], timing["diverged_pairs"]) == (3, 0)  # timing pairs every seed
