"""The Python API: ``stragglersim.simulate`` gives what ``stragglersim simulate`` writes."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import stragglersim
from conftest import seeded
from stragglersim.cli.main import main
from stragglersim.io.errors import InputError
from stragglersim.studies.theory import harmonic

OPTIONS = dict(
    strategy="backup", workers=8, backups=2, latency="exponential:rate=1", steps=200, timing_only=True, seed=0
)
ARGS = (
    "simulate --quiet --strategy backup --workers 8 --backups 2 --latency exponential:rate=1 --steps 200 "
    "--timing-only --seed 0"
).split()


def _files(directory):
    """The folder's files, byte for byte (a summary.json as the seed fixes it: without its wall clock)."""
    return {
        p.name: seeded(json.loads(p.read_text())) if p.name == "summary.json" else p.read_bytes()
        for p in sorted(directory.iterdir())
    }


def test_simulate_equals_the_cli_run_and_save_load_round_trips(tmp_path):
    assert main([*ARGS, "--out", str(tmp_path / "cli")]) == 0
    run = stragglersim.simulate(**OPTIONS)
    assert seeded(run.summary) == seeded(json.loads((tmp_path / "cli" / "summary.json").read_text()))
    pd.testing.assert_frame_equal(run.updates, pd.read_csv(tmp_path / "cli" / "updates.csv"))
    pd.testing.assert_frame_equal(run.gradients, pd.read_csv(tmp_path / "cli" / "gradients.csv"))
    assert run.metrics is None and run.training is None and run.params is None
    assert run.config.workers == 8 and run.config.semantics == "tf"

    run.save(tmp_path / "api")
    assert _files(tmp_path / "api") == _files(tmp_path / "cli")  # the same files, byte for byte
    with pytest.raises(InputError, match="not empty"):
        run.save(tmp_path / "api")

    back = stragglersim.load_run(tmp_path / "api")
    assert back.summary == run.summary and back.config == run.config
    pd.testing.assert_frame_equal(back.updates, run.updates)
    pd.testing.assert_frame_equal(back.gradients, run.gradients)
    back.save(tmp_path / "again")
    assert _files(tmp_path / "again") == _files(tmp_path / "cli")


def test_a_run_without_gradient_records_and_the_fast_path():
    run = stragglersim.simulate(**{**OPTIONS, "semantics": "cancel", "log_gradients": "none"})
    assert run.gradients is None
    assert len(run.updates) == 200 and run.updates["update"].tolist() == list(range(1, 201))
    full = stragglersim.simulate(**{**OPTIONS, "semantics": "cancel"})
    pd.testing.assert_frame_equal(run.updates, full.updates)


def test_training_run_metrics_match_the_cli(tmp_path):
    run = stragglersim.simulate(steps=30)
    assert main(["simulate", "--quiet", "--steps", "30", "--out", str(tmp_path / "cli")]) == 0
    pd.testing.assert_frame_equal(run.metrics, pd.read_csv(tmp_path / "cli" / "metrics.csv"))
    pd.testing.assert_frame_equal(run.training, pd.read_csv(tmp_path / "cli" / "training.csv"))
    assert seeded(run.summary) == seeded(json.loads((tmp_path / "cli" / "summary.json").read_text()))
    assert run.params is not None and run.summary["dataset"] == "digits"
    back = stragglersim.load_run(run.save(tmp_path / "api"))
    pd.testing.assert_frame_equal(back.metrics, run.metrics)
    assert _files(tmp_path / "api") == _files(tmp_path / "cli")


def test_bad_options_and_folders_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="unknown option 'worker'; did you mean 'workers'"):
        stragglersim.simulate(worker=8)
    with pytest.raises(InputError, match="^backups must be an integer >= 0"):  # the API names fields, not flags
        stragglersim.simulate(backups=-1, timing_only=True)
    with pytest.raises(InputError, match="no such run folder"):
        stragglersim.load_run(tmp_path / "nothing")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "results.csv").write_text("run\n")
    with pytest.raises(InputError, match=r"not a run folder .*a sweep folder") as err:
        stragglersim.load_run(tmp_path / "sweep")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="seeds="):
        stragglersim.sweep(tmp_path / "s", seed=1)


def test_sweep_returns_results_csv(tmp_path):
    table = stragglersim.sweep(
        tmp_path / "sweep",
        strategy=["sync", "backup"],
        workers=4,
        backups=[0, 1],
        seeds=range(2),
        steps=20,
        timing_only=True,
        jobs=1,
    )
    assert len(table) == 6  # sync: B = 0 only
    pd.testing.assert_frame_equal(table, pd.read_csv(tmp_path / "sweep" / "results.csv"))
    one = table[(table.strategy == "backup") & (table.backups == 1) & (table.seed == 1)].iloc[0]
    run = stragglersim.load_run(tmp_path / "sweep" / "runs" / one["run"])
    assert run.summary["sim_time"] == one["sim_time"]


def test_predict_is_the_theory_table():
    table = stragglersim.predict("exponential:rate=2", 4, backups=[0, 2, 2])
    assert table["backups"].tolist() == [0, 2]
    want = [(harmonic(4) - harmonic(0)) / 2, (harmonic(6) - harmonic(2)) / 2]
    assert table["mean_iteration_time"].tolist() == pytest.approx(want, rel=1e-12)
    with pytest.raises(InputError, match="workers must be"):
        stragglersim.predict("exponential:rate=2", 0)


def test_import_is_light_and_timing_only_never_imports_jax():
    code = (
        "import sys, stragglersim; heavy = ('jax', 'pandas', 'simpy', 'scipy', 'matplotlib'); "
        "assert not [m for m in sys.modules if m.split('.')[0] in heavy], sorted(sys.modules); "
        "stragglersim.simulate(steps=20, timing_only=True, strategy='async', workers=3).summary; "
        "assert 'jax' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # No submodule shares a name with an API function (Python would bind the module over it).
    code = (
        "import stragglersim, stragglersim.studies.sweeps, stragglersim.cli.main, stragglersim.studies.reproduce; "
        "assert stragglersim.sweep is stragglersim.api.sweep and stragglersim.simulate is stragglersim.api.simulate; "
        "assert stragglersim.predict is stragglersim.api.predict and stragglersim.load_run is stragglersim.api.load_run"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_numpy_values_and_numbers_for_text_options_are_taken_as_the_command_line_would(tmp_path):
    import numpy as np
    from stragglersim.io.errors import InputError

    plain = stragglersim.simulate(workers=4, steps=20, timing_only=True, eval_every="5").summary
    numpy = stragglersim.simulate(workers=np.int64(4), steps=np.int64(20), timing_only=True, eval_every=5).summary
    assert seeded(numpy) == seeded(plain)
    table = stragglersim.predict("exponential:rate=1", workers=np.int64(4), backups=np.arange(3))
    assert list(table["backups"]) == [0, 1, 2]
    with pytest.raises(InputError, match="strategy: no values"):
        stragglersim.sweep(tmp_path / "s", strategy=[], timing_only=True)


def test_a_grid_file_with_keywords_that_win(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('strategy = "sync"\nworkers = [2, 3]\nsteps = 50\ntiming_only = true\nseeds = [0, 1]\n')
    table = stragglersim.sweep(tmp_path / "sweep", grid=grid, workers=4, steps=5, jobs=1)
    assert len(table) == 2 and set(table.workers) == {4} and set(table.updates) == {5} and set(table.seed) == {0, 1}


def test_run_folders_that_are_not_whole_and_calls_without_folders(tmp_path):
    with pytest.raises(InputError, match="keeps no checkpoints; use `stragglersim simulate --out DIR`"):
        stragglersim.simulate(steps=100, checkpoint_every="50")
    with pytest.raises(InputError, match="aggregate: give at least one run or sweep folder"):
        stragglersim.aggregate()
    with pytest.raises(InputError, match="compare: give at least one run or sweep folder"):
        stragglersim.compare()
    run = stragglersim.simulate(strategy="backup", workers=4, backups=1, steps=5, timing_only=True)
    assert repr(run) == f"<Run backup N=4 B=1: 5 updates, {run.summary['sim_time']:.6g} s simulated>"
    folder = run.save(tmp_path / "run")
    (folder / "updates.csv").unlink()
    with pytest.raises(InputError, match=r"not a complete run folder \(no updates.csv\)"):
        stragglersim.load_run(folder)
    (folder / "summary.json").write_text('{"updates": 5,')  # cut short
    with pytest.raises(InputError, match=r"summary.json: cannot read: "):
        stragglersim.load_run(folder)
