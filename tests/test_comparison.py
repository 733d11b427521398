"""`stragglersim aggregate` and `compare`, and why pairing by seed matters."""

import csv
import json
import math

import numpy as np
import pytest
import stragglersim
from scipy import stats
from stragglersim.cli.main import main

SEEDS = range(6)


def simulate(out, backups, seed, semantics="tf"):
    args = ["--strategy", "backup", "--semantics", semantics, "--workers", "4", "--backups", str(backups)]
    assert (
        main(["simulate", "--timing-only", "--quiet", "--steps", "100", "--seed", str(seed), *args, "--out", out]) == 0
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep-like folder: DIR/runs/NAME for backup (tf) N=4, B = 0 and B = 2, seeds 0-5."""
    folder = tmp_path_factory.mktemp("sweep")
    for b in (0, 2):
        for s in SEEDS:
            simulate(str(folder / "runs" / f"b{b}-s{s}"), b, s)
    return folder


def per_seed(folder, backups, metric):
    return np.array(
        [json.loads((folder / "runs" / f"b{backups}-s{s}" / "summary.json").read_text())[metric] for s in SEEDS]
    )


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_aggregate_prints_a_table_and_writes_the_sweeps_aggregate_csv(sweep, capsys, tmp_path):
    assert main(["aggregate", str(sweep)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("12 runs, 2 configurations")
    assert lines[1].split() == [
        "strategy",
        "backups",
        "n_seeds",
        "time_per_update",
        "time_per_gradient",
        "samples_per_second",
    ]
    mean = per_seed(sweep, 2, "time_per_update").mean()
    values = per_seed(sweep, 2, "time_per_update")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    assert lines[3].split()[:6] == ["backup", "2", "6", f"{mean:.4g}", "±", f"{half:.2g}"]  # the half-width, > 0
    rows = read_csv(sweep / "aggregate.csv")
    assert [(r["backups"], r["n_seeds"]) for r in rows] == [("0", "6"), ("2", "6")]
    assert float(rows[1]["time_per_update_mean"]) == pytest.approx(mean, rel=1e-12)
    assert main(["aggregate", str(sweep)]) == 0  # the sweep's own aggregate.csv is derived: replaced
    # an explicit --out is not replaced without --overwrite
    target = tmp_path / "agg.csv"
    target.write_text("mine\n")
    assert main(["aggregate", str(sweep), "--out", str(target)]) == 2
    assert target.read_text() == "mine\n"
    assert main(["aggregate", str(sweep), "--out", str(target), "--overwrite"]) == 0
    assert read_csv(target) == rows


def test_a_folder_without_runs_exits_2_with_one_line(tmp_path, capsys):
    for command in ("aggregate", "compare"):
        assert main([command, str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds no run" in err


def test_compare_prints_paired_differences_and_writes_csv_and_forest_plot(sweep, capsys, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", str(sweep / "runs"), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "baseline: strategy=backup backups=0 (the first point; choose another with --baseline KEY=VALUE)"
    block = lines[lines.index("time_per_update (s)") + 1 :][:3]
    assert block[1].split() == ["backup", "0", "6/6", f"{per_seed(sweep, 0, 'time_per_update').mean():.4g}", "baseline"]
    diff = (per_seed(sweep, 2, "time_per_update") - per_seed(sweep, 0, "time_per_update")).mean()
    assert block[2].split()[3:5] == [f"{per_seed(sweep, 2, 'time_per_update').mean():.4g}", f"{diff:.4g}"]
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.pdf", "compare.png"]
    assert lines[-1] == f"results: {out / 'compare.csv'}, {out / 'compare.png'}"  # where they are
    rows = read_csv(out / "compare.csv")
    assert [(r["backups"], r["metric"]) for r in rows][:3] == [
        ("0", "time_per_update"),
        ("0", "time_per_gradient"),
        ("0", "samples_per_second"),
    ]
    assert len(rows) == 6 and rows[0]["note"] == "baseline" and float(rows[3]["diff"]) == pytest.approx(diff, rel=1e-12)
    assert main(["compare", str(sweep), "--out", str(out)]) == 2  # not replaced without --overwrite
    # another baseline, one metric of the user's choice
    assert main(["compare", str(sweep), "--baseline", "semantics=tf,backups=2", "--metric", "gradients_dropped"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "baseline: strategy=backup backups=2 (--baseline)" and lines[2] == "gradients_dropped"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "backups=1",
            "--baseline backups=1: matches no point; the points: strategy=backup backups=0; strategy=backup backups=2",
        ),
        ("strategy=backup", "--baseline strategy=backup: matches 2 points; the points: "),
        ("colour=red", "--baseline colour: not a configuration field"),
        ("backups", "--baseline backups: give KEY=VALUE"),
        ("backups=two", "--baseline backups=two: matches no point; the points: strategy=backup backups=0;"),
    ],
)
def test_a_bad_baseline_exits_2_with_one_line_naming_the_points(sweep, capsys, option, message):
    assert main(["compare", str(sweep), "--baseline", option]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err


def test_an_unknown_metric_exits_2(sweep, capsys):
    assert main(["compare", str(sweep), "--metric", "speed"]) == 2
    assert "--metric speed: no such numeric metric" in capsys.readouterr().err


def test_pairing_by_seed_narrows_the_interval_and_is_the_mean_of_per_seed_differences(sweep):
    """Common random numbers: B = 2 and B = 0 of one seed share their draws, so their difference
    varies far less from seed to seed than either does."""
    table = stragglersim.compare(sweep, baseline="backups=0", metrics=["time_per_update"])
    row = table[(table.backups == 2)].iloc[0]
    b2, b0 = per_seed(sweep, 2, "time_per_update"), per_seed(sweep, 0, "time_per_update")
    d = b2 - b0
    assert row["n_pairs"] == 6 and row["diff"] == pytest.approx(d.mean(), rel=1e-12)
    assert row["ratio"] == pytest.approx(b2.mean() / b0.mean(), rel=1e-12)
    paired = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(len(d)))
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx(paired, rel=1e-12)
    unpaired = stats.ttest_ind(b2, b0, equal_var=False).confidence_interval(0.95)  # Welch: the two points' intervals
    paired_width, unpaired_width = paired[1] - paired[0], unpaired.high - unpaired.low
    assert paired_width < 0.75 * unpaired_width, (paired_width, unpaired_width)
    assert row["diff_ci_high"] < 0  # two backups are faster, and the paired interval says so


def test_a_configuration_without_a_common_seed_says_so(sweep, tmp_path, capsys):
    simulate(str(tmp_path / "cancel-s9"), 1, 9, semantics="cancel")
    assert main(["compare", str(sweep), str(tmp_path), "--metric", "time_per_update"]) == 0
    out = capsys.readouterr().out
    assert "no common seed with the baseline" in out
    table = stragglersim.compare(sweep, tmp_path, metrics="time_per_update")
    lonely = table[table.semantics == "cancel"].iloc[0]
    assert lonely["n_pairs"] == 0 and math.isnan(lonely["diff"]) and lonely["mean"] > 0


def test_the_api_returns_the_csv_tables_and_keeps_its_names(sweep, tmp_path):
    import stragglersim.studies.aggregation  # noqa: F401  the submodules must not shadow the functions
    import stragglersim.studies.compare_backups  # noqa: F401

    frame = stragglersim.aggregate(sweep)
    assert list(frame.backups) == [0, 2] and list(frame.n_seeds) == [6, 6]
    main(["aggregate", str(sweep), "--out", str(tmp_path / "a.csv")])
    assert frame.time_per_update_ci_low.tolist() == [
        float(r["time_per_update_ci_low"]) for r in read_csv(tmp_path / "a.csv")
    ]
    table = stragglersim.compare(sweep, baseline={"backups": 2})
    assert table.loc[table.backups == 2, "note"].eq("baseline").all()
    assert set(table.metric) == {"time_per_update", "time_per_gradient", "samples_per_second"}


def test_a_baseline_value_may_hold_commas():
    from stragglersim.studies.comparison import parse_baseline

    wanted = parse_baseline("latency=shifted-exponential:shift=1,rate=2,backups=0,semantics=drop")
    assert wanted == {"latency": "shifted-exponential:shift=1,rate=2", "backups": "0", "semantics": "drop"}


def test_aggregate_of_one_run_folder_writes_no_file_and_says_why(sweep, capsys):
    run = sweep / "runs" / "b0-s0"
    assert main(["aggregate", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1 runs, 1 configurations")
    assert lines[-2:] == [
        "  a configuration with one seed has no interval: run more seeds",
        "  aggregate.csv not written: several folders or a run folder; give --out FILE",
    ]
    assert not (run / "aggregate.csv").exists()


def test_a_run_folder_without_its_config_exits_2(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text("{}")
    assert main(["aggregate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'r'}: not a complete run folder (no config.toml)" in err
