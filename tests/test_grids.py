"""Experiment grids: any option a list, N + B held at P, seeds aggregated, a folder records its grid."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import raises_as_cli
from scipy import stats
from stragglersim.cli.main import main
from stragglersim.io.results import read_csv
from stragglersim.studies.grids import Grid, run_name, varied

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STUDY = ["--strategy", "backup", "--total-workers", "20", "--backups", "0,2,4", "--semantics", "tf,drop,cancel"]
STUDY += ["--seeds", "0,1,2", "--latency", "exponential:rate=1", "--steps", "500", "--timing-only", "--quiet"]


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*.*")}


def _status(argv: list[str]) -> int:
    """The exit status of the command line (a usage error exits from argparse)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def test_the_papers_study_runs_every_combination_and_aggregates_seeds_with_t_intervals(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["sweep", *STUDY, "--out", str(out)]) == 0
    assert len(list((out / "runs").iterdir())) == 27
    rows = read_csv(out / "results.csv")
    assert len(rows) == 27
    assert {(int(r["workers"]), int(r["backups"])) for r in rows} == {(20, 0), (18, 2), (16, 4)}  # N = P - B
    assert {r["semantics"] for r in rows} == {"tf", "drop", "cancel"}
    table = read_csv(out / "aggregate.csv")
    assert len(table) == 9
    for point in table:
        assert point["n_seeds"] == "3" and point["seeds"] == "0 1 2"
        same = [
            float(r["time_per_update"])
            for r in rows
            if (r["backups"], r["semantics"]) == (point["backups"], point["semantics"])
        ]
        low, high = stats.t.interval(0.95, len(same) - 1, loc=np.mean(same), scale=stats.sem(same))
        assert float(point["time_per_update_mean"]) == pytest.approx(np.mean(same), rel=1e-12)
        assert float(point["time_per_update_std"]) == pytest.approx(np.std(same, ddof=1), rel=1e-9)
        assert (float(point["time_per_update_ci_low"]), float(point["time_per_update_ci_high"])) == pytest.approx(
            (low, high), rel=1e-9
        )
    # another grid into the same folder: refused, one line, nothing lost or changed
    before = _files(out)
    capsys.readouterr()
    assert main(["sweep", *STUDY[:4], "--backups", "0,2", "--steps", "500", "--timing-only", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another grid" in err and "--extend" in err and "--overwrite" in err
    assert _files(out) == before
    # the same grid again: complete runs are skipped, nothing changes
    assert main(["sweep", *STUDY, "--out", str(out)]) == 0
    assert _files(out) == before
    # --extend adds runs; the results cover every run of the folder
    more = [*STUDY[:4], "--backups", "0", "--semantics", "tf", "--seeds", "3", "--steps", "500", "--timing-only"]
    assert main(["sweep", *more, "--quiet", "--out", str(out), "--extend"]) == 0
    assert len(read_csv(out / "results.csv")) == 28
    tf0 = [r for r in read_csv(out / "aggregate.csv") if (r["backups"], r["semantics"]) == ("0", "tf")]
    assert tf0[0]["n_seeds"] == "4"
    assert Grid.load(out / "grid.toml").configs().__len__() == 28  # the record reruns the folder's grids
    # --overwrite starts again
    assert main(["sweep", *more, "--quiet", "--out", str(out), "--overwrite"]) == 0
    assert len(list((out / "runs").iterdir())) == 1 and len(read_csv(out / "results.csv")) == 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--workers", "4", "--workers", "5"], "--workers given twice"),
        (["--strategy", "async", "--semantics", "tf,drop"], "--semantics tf,drop: applies to --strategy backup"),
        (["--lr", "0.1,0.2"], "--lr 0.1,0.2: --timing-only runs do not train"),
        (["--total-workers", "8"], "--total-workers P: give --backups"),
        (["--total-workers", "8", "--workers", "4", "--backups", "0,1"], "not both"),
        (["--total-workers", "4", "--backups", "0,4"], "--backups 4 leaves no room"),
        (["--strategy", "backup", "--k", "2"], "--k 2: applies to --strategy k-sync"),
        (["--strategy", "sync", "--backups", "2"], "the sweep is empty"),
        (["--seeds", "0,,1"], "an empty value"),
        (["--lr", "0.1,fast"], "'fast' is not a number"),
        (["--strategy", "backup,backup"], "listed twice"),
        (["--strategy", ","], "an empty value"),
        (["--strategy", "sync", "--backups", "0,1"], "--backups 0,1: only --strategy backup takes backup workers"),
        (["--strategy", "async", "--total-workers", "10", "--backups", "0,2"], "only --strategy backup takes"),
        (["--backups", "5-3"], "the range 5-3 goes down"),
    ],
)
def test_a_grid_that_would_ignore_or_repeat_an_option_is_a_one_line_error(tmp_path, capsys, argv, words):
    out = tmp_path / "sw"
    assert _status(["sweep", *argv, "--steps", "5", "--timing-only", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not out.exists()


def test_an_option_given_twice_to_a_single_run_is_an_error(tmp_path, capsys):
    argv = ["simulate", "--latency", "exponential:rate=1", "--latency", "exponential:rate=2", "--out", str(tmp_path)]
    assert _status([*argv, "--steps", "5", "--timing-only"]) == 2
    assert "--latency given twice" in capsys.readouterr().err


def test_any_option_is_an_axis_and_applies_to_the_strategies_that_take_it():
    grid = Grid.from_mapping(
        {
            "strategy": ["sync", "backup", "async"],
            "workers": 4,
            "backups": [0, 1],
            "semantics": ["tf", "drop"],
            "staleness_cutoff": ["none", 2],
            "latency": ["exponential:rate=1", "pareto:alpha=3,scale=1"],
            "seeds": "0-1",
            "timing_only": True,
        },
        source="test",
    )
    configs = grid.configs()
    per_seed = {}
    for c in configs:
        per_seed[c.strategy] = per_seed.get(c.strategy, 0) + (c.seed == 0)
    assert per_seed == {"sync": 2, "backup": 2 * 2 * 2, "async": 2 * 2}  # x latency; cutoff for async only
    assert all(c.semantics is None and c.staleness_cutoff is None for c in configs if c.strategy == "sync")
    names = [run_name(c, varied(configs)) for c in configs]
    assert len(set(names)) == len(names)
    assert any("pareto-alpha-3-scale-1" in n for n in names) and any("-cut2-" in n for n in names)


def test_the_shipped_example_grids_parse_and_flags_override_their_keys(tmp_path):
    assert len(Grid.load(EXAMPLES / "backup-study.toml").configs()) == 5 * 3 * 5
    strategies = Grid.load(EXAMPLES / "strategies-study.toml").configs()
    assert {c.strategy for c in strategies} == {"sync", "backup", "async", "softsync"}
    out = tmp_path / "ex"
    argv = ["sweep", "--grid", str(EXAMPLES / "backup-study.toml"), "--backups", "0,2", "--semantics", "cancel"]
    assert main([*argv, "--seeds", "0", "--steps", "20", "--quiet", "--out", str(out)]) == 0
    rows = read_csv(out / "results.csv")
    assert sorted((r["workers"], r["backups"], r["semantics"], r["updates"]) for r in rows) == [
        ("18", "2", "cancel", "20"),
        ("20", "0", "cancel", "20"),
    ]


def test_bad_grid_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    for text, words in [
        ("strategy = 'backup'\nbakups = [0, 1]\n", "unknown option 'bakups'"),
        ("backups = [0, 'x']\n", "expected integers"),
        ("lr = ['fast']\n", "lr = 'fast': expected a number"),
        ("backups = [\n", "not valid TOML"),
    ]:
        bad.write_text(text)
        with raises_as_cli(words):
            Grid.load(bad).configs()


def test_the_python_api_takes_lists_for_any_option(tmp_path):
    import stragglersim

    table = stragglersim.sweep(
        tmp_path / "api",
        strategy="backup",
        total_workers=6,
        backups=[0, 2],
        semantics=["tf", "cancel"],
        seeds=[0, 1],
        steps=30,
        timing_only=True,
        jobs=1,
    )
    assert len(table) == 8 and set(table["workers"]) == {6, 4}
    assert len(read_csv(tmp_path / "api" / "aggregate.csv")) == 4


def test_unset_values_survive_the_record_so_the_same_command_resumes(tmp_path, capsys):
    """``--staleness-cutoff none,2``: async without and with a cutoff; grid.toml keeps the "none"."""
    argv = ["sweep", "--strategy", "sync,async", "--staleness-cutoff", "none,2", "--workers", "3", "--steps", "10"]
    argv += ["--timing-only", "--quiet", "--jobs", "1", "--out", str(tmp_path / "sw")]
    assert main(argv) == 0
    assert len(read_csv(tmp_path / "sw" / "results.csv")) == 3
    assert main(argv) == 0  # the same grid again: resumed, not refused
    assert len(Grid.load(tmp_path / "sw" / "grid.toml").configs()) == 3
    table = read_csv(tmp_path / "sw" / "aggregate.csv")
    assert len(table) == 3 and all(r.get("semantics", "") == "" for r in table)  # no semantics but backup's


def test_a_grid_file_with_seed_and_seeds_is_refused(tmp_path):
    both = tmp_path / "both.toml"
    both.write_text("seed = 3\nseeds = [1, 2]\n")
    with raises_as_cli("seed and seeds: give one"):
        Grid.load(both)
    both.write_text("backup = [0, 1]\n")
    with raises_as_cli("did you mean 'backups'"):
        Grid.load(both)


def test_grid_errors_name_the_option_and_the_run(tmp_path):
    from stragglersim.studies.grids import Union, grid_from_options, parse_int_list, parse_values

    with raises_as_cli(r"--total-workers ',': no values"):
        parse_int_list(",", "--total-workers")
    with raises_as_cli(r"grid: unknown option 'nope'"):
        Grid({"nope": [1]})
    with raises_as_cli(r"--checkpoint-every: checkpoints belong to single runs"):
        Grid({"checkpoint_every": [10]})
    with raises_as_cli(r"--k must be .*got 5 \(in the grid's run --strategy k-sync --workers 2 "):
        Grid.from_mapping({"strategy": "k-sync", "workers": 2, "k": 5, "timing_only": True}, source="t").configs()
    (tmp_path / "g.toml").write_text("workers = 2\n[[grid]]\nworkers = 3\n")
    with raises_as_cli(r"g.toml: either flat keys or \[\[grid\]\] tables, not both"):
        Grid.load(tmp_path / "g.toml")
    with raises_as_cli(r"a sweep folder's record \(grid.toml\); give no other grid options"):
        Union([Grid({"workers": [2]})]).merged(Grid({"workers": [3]}))
    record = Union([Grid({"workers": [2]})])
    assert record.merged(Grid()) is record
    # a SPEC holds commas itself: one value; the trace options are one value each, kept when not the default
    assert parse_values("latency", "lognormal:mu=0,sigma=1") == ["lognormal:mu=0,sigma=1"]
    options = {"trace_format": "pai", "time_scale": 0.001, "latency": "trace:t.csv", "timing_only": True}
    assert grid_from_options(options).axes == {
        "latency": ["trace:t.csv"],
        "timing_only": [True],
        "trace_format": ["pai"],
        "time_scale": [0.001],
    }
    assert grid_from_options({"trace_format": "csv", "time_scale": 1.0}).axes == {}


def test_results_csv_leaves_non_finite_and_missing_values_empty(tmp_path):
    from stragglersim.io.results import write_results

    rows = [
        {"workers": 4, "time_to_target": None, "mean_staleness": float("inf"), "ratio": "nan", "updates": 7},
        {"workers": 8, "time_to_target": 2.5, "mean_staleness": float("nan"), "ratio": 0.5, "updates": 9, "extra": 1},
    ]
    write_results(rows, tmp_path / "results.csv")
    back = read_csv(tmp_path / "results.csv")
    assert back[0] == {
        "workers": "4",
        "time_to_target": "",
        "mean_staleness": "",
        "ratio": "",
        "updates": "7",
        "extra": "",
    }
    assert back[1]["time_to_target"] == "2.5" and back[1]["mean_staleness"] == "" and back[1]["extra"] == "1"
