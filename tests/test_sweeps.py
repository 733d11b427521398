"""Sweep folders: what a sweep refuses, which runs it does again, and how it counts them."""

import io
import json
import os
import shutil

import pytest
from conftest import raises_as_cli, seeded
from stragglersim.core.config import RunConfig
from stragglersim.io.progress import NullProgress, RunCounter, progress_bar
from stragglersim.studies.completeness import expected_tables, read_summary, run_complete
from stragglersim.studies.grids import Grid
from stragglersim.studies.sweeps import run_sweep

ONE = {"strategy": "sync", "workers": 2, "steps": 5, "timing_only": True}


def one_run(tmp_path):
    """A sweep folder of one complete run: (folder, the run's config, the run's folder)."""
    out = tmp_path / "sw"
    (row,) = run_sweep(Grid.from_mapping(ONE, source="t"), out, jobs=1)
    return out, RunConfig(**ONE), out / "runs" / row["run"]


def test_a_sweep_refuses_a_file_as_its_folder_and_a_folder_of_other_files(tmp_path):
    grid = Grid.from_mapping(ONE, source="t")
    (tmp_path / "file").write_text("not a folder\n")
    with raises_as_cli(r"--out .*file: exists and is not a directory"):
        run_sweep(grid, tmp_path / "file", jobs=1)
    with raises_as_cli(r"--extend adds runs to the sweep, --overwrite starts it again: give one"):
        run_sweep(grid, tmp_path / "sw", extend=True, overwrite=True)
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "notes.txt").write_text("mine\n")
    with raises_as_cli(r"not empty and records no sweep grid; pass --overwrite or another --out"):
        run_sweep(grid, tmp_path / "sw", jobs=1)
    assert len(run_sweep(grid, tmp_path / "sw", jobs=1, extend=True)) == 1  # --extend: the grid is added
    written = {"grid.toml", "runs", "results.csv", "aggregate.csv"}
    assert {p.name for p in (tmp_path / "sw").iterdir()} == {"notes.txt", *written}


def test_a_run_folder_replaced_by_a_file_or_a_dangling_link_is_named_and_run_again(tmp_path):
    out, _, run = one_run(tmp_path)
    summary = seeded(json.loads((run / "summary.json").read_text()))
    for replace in (run.write_text, run.symlink_to):
        shutil.rmtree(run)
        replace("gone")  # a file holding "gone", or a link to the missing ./gone
        said = []
        run_sweep(Grid.from_mapping(ONE, source="t"), out, jobs=1, log=said.append)
        assert said == [f"run {run.name}: no run folder; running it again"]
        assert (
            run.is_dir() and not run.is_symlink() and seeded(json.loads((run / "summary.json").read_text())) == summary
        )


def test_an_incomplete_run_folder_says_what_is_wrong(tmp_path):
    _, config, run = one_run(tmp_path)
    assert run_complete(run, config) is None
    (run / "summary.json").write_text("[1, 2]")
    assert run_complete(run, config) == "summary.json holds no summary"
    with raises_as_cli(r"summary.json: holds no summary \(a JSON object\); the run is incomplete"):
        read_summary(run)
    (run / "summary.json").write_text("{not json")
    with raises_as_cli(r"summary.json: cannot read: .*; the run is incomplete"):
        read_summary(run)
    (run / "summary.json").write_text("{}")
    config_toml = (run / "config.toml").read_text()
    (run / "config.toml").write_text("steps = \n")
    assert run_complete(run, config).startswith("config.toml cannot be read (")
    (run / "config.toml").write_text(config_toml)
    updates = (run / "updates.csv").read_text()
    (run / "updates.csv").write_text("time,update" + updates[updates.index("\n") :])
    assert run_complete(run, config) == "updates.csv has the wrong header"
    (run / "summary.json").unlink()
    with raises_as_cli(r"summary.json: missing; the run is incomplete \(a sweep runs it again\)"):
        read_summary(run)
    training = RunConfig(log_gradients="none")
    assert expected_tables(training) == ["updates.csv", "metrics.csv", "training.csv"]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_counts_are_a_bar(monkeypatch):
    stream = Terminal()
    counter = RunCounter(desc="sweep", stream=stream)
    counter.start(3)
    counter.update(running=2)
    counter.update(finished=2, failed=1, running=0)
    counter.close()
    shown = stream.getvalue()
    assert "sweep: 100%" in shown and "3/3" in shown and "running 0, failed 1" in shown
    monkeypatch.setattr("sys.stderr", Terminal())
    bar = progress_bar(10, desc="simulate")
    assert type(bar).__name__ == "tqdm" and bar.total == 10 and bar.unit == "update"
    bar.close()
    assert isinstance(progress_bar(10, desc="simulate", quiet=True), NullProgress)


@pytest.mark.slow  # a pool of two spawned processes: seconds
def test_a_run_failing_in_a_worker_process_is_reported_and_the_others_kept(tmp_path):
    from stragglersim.io.errors import RunsFailed

    (tmp_path / "t.csv").write_text("worker,step,duration\n0,0,1\n1,0,10\n")  # used up before the first update
    trace = f"trace:{tmp_path / 't.csv'}"
    used_up = RunConfig(strategy="k-batch-sync", workers=2, k=2, latency=trace, timing_only=True)
    with pytest.raises(RunsFailed, match=r"1 of 2 runs failed, e\.g\. \S+: \S*InputError: latency trace:"):
        run_sweep([RunConfig(**ONE), used_up], tmp_path / "sw", jobs=2)
    assert "the trace was used up before the first update" in (tmp_path / "sw" / "failures.txt").read_text()
    assert len(list((tmp_path / "sw" / "runs").glob("*/summary.json"))) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STRAGGLERSIM_CACHE": "/c"}, "/c/jax"),
        ({"STRAGGLERSIM_CACHE": "/c", "JAX_COMPILATION_CACHE_DIR": "/mine"}, "/mine"),  # the user's own
        ({"STRAGGLERSIM_CACHE": "/c", "STRAGGLERSIM_COMPILE_CACHE": "off"}, None),
    ],
)
def test_pool_workers_share_compilations_through_the_persistent_cache(monkeypatch, env, expected):
    from stragglersim.studies import pool

    for name in ("STRAGGLERSIM_CACHE", "JAX_COMPILATION_CACHE_DIR", "STRAGGLERSIM_COMPILE_CACHE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pool.share_compilations()
    assert os.environ.get("JAX_COMPILATION_CACHE_DIR") == expected
