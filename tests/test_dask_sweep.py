"""Sweeps on a real Dask cluster: a scheduler and two workers on loopback, in their own processes."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import fixed_by_seed, grid, raises_as_cli, same_result_file, seeded
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig
from stragglersim.io.errors import RunsFailed
from stragglersim.io.progress import RunCounter
from stragglersim.studies.sweeps import run_sweep

pytest.importorskip("distributed")


def dask(*args, log: Path) -> subprocess.Popen:
    """``python -m dask ARGS`` in a session of its own, its output in ``log``."""
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args], stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def cluster(tmp_path):
    """A ``dask scheduler`` on 127.0.0.1 and two one-thread ``dask worker`` processes (no nanny,
    so killing a worker's process loses it). Yields (address, worker processes)."""
    from distributed import Client

    file = tmp_path / "scheduler.json"
    procs = [
        dask(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(file),
            log=tmp_path / "scheduler.log",
        )
    ]
    try:
        deadline, address = time.time() + 60, ""
        while time.time() < deadline:  # the scheduler writes its file in place: it can be read half-written
            try:
                address = json.loads(file.read_text())["address"]
                break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                time.sleep(0.1)
        assert address.startswith("tcp://127.0.0.1:")
        workers = [
            dask(
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--local-directory",
                str(tmp_path / f"w{i}"),
                "--no-dashboard",
                "--name",
                f"w{i}",
                log=tmp_path / f"w{i}.log",
            )
            for i in range(2)
        ]
        procs += workers
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for proc in procs:
            kill(proc)


def sweep(out, *options):
    return [sys.executable, "-m", "stragglersim", "sweep", "--quiet", "--out", str(out), *options]


TRAINING = [
    "--strategy",
    "sync,async",
    "--workers",
    "3",
    "--steps",
    "40",
    "--eval-every",
    "20",
]
TIMING = [
    "--timing-only",
    "--strategy",
    "backup",
    "--semantics",
    "tf",
    "--workers",
    "4-7",
    "--backups",
    "0-1",
    "--steps",
    "6000",
]


@pytest.mark.slow  # training on Dask, by default: test_dask_workers_import_a_user_model_by_its_path (local:1)
def test_a_sweep_through_a_dask_scheduler_gives_the_local_results(cluster, tmp_path):
    address, _ = cluster
    subprocess.run(sweep(tmp_path / "dask", *TRAINING, "--scheduler", address), check=True)
    subprocess.run(sweep(tmp_path / "local", *TRAINING, "--jobs", "2"), check=True)
    results = fixed_by_seed(tmp_path / "dask" / "results.csv")
    assert results == fixed_by_seed(tmp_path / "local" / "results.csv")
    assert len(results) == 1 + 2  # sync and async: real JAX training runs
    for run in (tmp_path / "local" / "runs").iterdir():  # every file of every run, byte for byte
        for file in run.iterdir():
            assert same_result_file(file, tmp_path / "dask" / "runs" / run.name / file.name), file
    # resume through the cluster: a lost run and a half-written leftover
    runs = tmp_path / "dask" / "runs"
    lost = sorted(runs.iterdir())[1]
    lost.rename(runs / f".{lost.name}.tmp-99999")
    again = [a for a in sweep(tmp_path / "dask", *TRAINING, "--scheduler", address) if a != "--quiet"]
    done = subprocess.run(again, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "1 of 2 runs are complete already; 1 to run" in done.stderr
    assert "sweep: 1 of 1 finished, 0 running, 0 failed" in done.stderr
    assert fixed_by_seed(tmp_path / "dask" / "results.csv") == results
    assert not list(runs.glob(".*"))


def test_a_dask_worker_killed_mid_sweep_costs_only_its_runs(cluster, tmp_path):
    from distributed import Client

    address, workers = cluster
    out = tmp_path / "dask"
    proc = subprocess.Popen(sweep(out, *TIMING, "--scheduler", address), start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((out / "runs").glob("*/summary.json")):
            time.sleep(0.05)
        kill(workers[0])  # the other worker is busy too: its run and all queued ones are still to do
        finished_when_killed = len(list((out / "runs").glob("*/summary.json")))
        assert 1 <= finished_when_killed < 8, "the worker should be killed mid-sweep"
        assert proc.wait(timeout=300) == 0
    finally:
        kill(proc)
    with Client(address, timeout=30) as client:  # the scheduler saw the loss: w1 did the rest
        assert [w["name"] for w in client.scheduler_info()["workers"].values()] == ["w1"]
    assert main(["sweep", "--quiet", "--out", str(tmp_path / "local"), *TIMING, "--jobs", "2"]) == 0
    assert fixed_by_seed(out / "results.csv") == fixed_by_seed(tmp_path / "local" / "results.csv")
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 8


def test_a_local_dask_cluster_gives_the_local_results_and_failures(tmp_path):
    configs = grid(
        RunConfig(strategy="backup", steps=300, timing_only=True),
        strategies=["backup"],
        workers=[3, 4],
        backups=[0, 1],
        seeds=[0],
    )
    (tmp_path / "t.csv").write_text("worker,step,duration\n0,0,1\n1,0,10\n")  # used up before the first update
    trace = f"trace:{tmp_path / 't.csv'}"
    used_up = RunConfig(strategy="k-batch-sync", workers=2, k=2, latency=trace, timing_only=True)
    messages = []
    for folder, options in (("dask", {"scheduler": "local:2", "log": messages.append}), ("local", {"jobs": 1})):
        with pytest.raises(RunsFailed, match=r"1 of 5 runs failed, e\.g\. \S+: \S*InputError: latency trace:"):
            run_sweep([*configs, used_up], tmp_path / folder, **options)
        assert "the trace was used up before the first update" in (tmp_path / folder / "failures.txt").read_text()
    assert messages[0].startswith("Dask scheduler tcp://127.0.0.1:") and "2 workers, 2 threads" in messages[0]
    dask = run_sweep(configs, tmp_path / "dask", scheduler="local:2")  # every run is complete: no cluster starts
    assert [seeded(r) for r in dask] == [seeded(r) for r in run_sweep(configs, tmp_path / "local", jobs=1)]


def test_scheduler_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    base = ["sweep", "--timing-only", "--quiet", "--steps", "20", "--out", str(tmp_path / "s")]
    assert main([*base, "--jobs", "1"]) == 0  # a complete sweep: the scheduler is checked all the same
    results = fixed_by_seed(tmp_path / "s" / "results.csv")
    assert main([*base, "--scheduler", "not an address"]) == 2
    assert "--scheduler not an address: expected tcp://HOST:PORT" in capsys.readouterr().err
    assert main([*base, "--scheduler", "local:0"]) == 2
    assert "local:K needs K >= 1" in capsys.readouterr().err
    assert main([*base, "--scheduler", "local:2", "--jobs", "2"]) == 2
    assert "--jobs: local processes only" in capsys.readouterr().err
    assert main([*base, "--jobs", "0"]) == 2
    assert "--jobs 0: must be at least 1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    assert main([*base, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "needs Dask distributed: install the cluster extra (pip install '.[cluster]'" in capsys.readouterr().err
    assert fixed_by_seed(tmp_path / "s" / "results.csv") == results


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    from stragglersim.studies.dask_sweep import connect

    with raises_as_cli(r"--scheduler tcp://127.0.0.1:9: no Dask scheduler answered within 1 s"):
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass


def test_failed_runs_are_reported_the_rest_kept_and_retried_by_the_same_command(tmp_path, monkeypatch):
    import stragglersim.studies.sweeps as sweep_module

    configs = grid(
        RunConfig(steps=50, timing_only=True), strategies=["sync"], workers=[2, 3, 4], backups=[0], seeds=[0]
    )
    real = sweep_module._run

    def flaky(config, out):
        if config.workers == 3:
            raise RuntimeError("out of memory")
        return real(config, out)

    monkeypatch.setattr(sweep_module, "_run", flaky)
    lines = []
    counter = RunCounter(every=0.0, stream=Stream(lines))
    with pytest.raises(
        sweep_module.RunsFailed, match=r"1 of 3 runs failed, e.g. sync-N3-B0-.*RuntimeError: out of memory"
    ):
        run_sweep(configs, tmp_path, jobs=1, counter=counter)
    assert lines[-1] == "sweep: 2 of 3 finished, 0 running, 1 failed"
    assert "RuntimeError: out of memory" in (tmp_path / "failures.txt").read_text()
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 2 and not (tmp_path / "results.csv").exists()
    monkeypatch.setattr(sweep_module, "_run", real)
    assert len(run_sweep(configs, tmp_path, jobs=1)) == 3
    assert not (tmp_path / "failures.txt").exists()


class Stream:
    """A non-terminal stream that keeps the lines written to it."""

    def __init__(self, lines):
        self.lines = lines

    def isatty(self):
        return False

    def write(self, text):
        self.lines += [line for line in text.splitlines() if line]

    def flush(self):
        pass


def test_workers_with_another_stragglersim_version_are_refused(monkeypatch):
    import stragglersim.studies.dask_sweep as dask_sweep

    monkeypatch.setattr(dask_sweep, "__version__", "0.0.0-client")
    with raises_as_cli(r"worker tcp://127.0.0.1:\d+ has stragglersim .*, this client 0.0.0-client"):
        with dask_sweep.connect("local:1"):
            pass


def test_a_file_a_worker_sends_from_outside_its_run_folder_is_refused_and_nothing_written(tmp_path):
    from stragglersim.studies.dask_sweep import write_files

    for name in ("../escape.csv", "/etc/escape.csv"):
        with pytest.raises(ValueError, match=f"a worker sent a file outside its run folder: {name}"):
            write_files(tmp_path / "run", {"summary.json": b"{}", name: b"x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    write_files(tmp_path / "run", {"summary.json": b"{}", "sub/x.csv": b"a\n"})
    assert (tmp_path / "run" / "sub" / "x.csv").read_bytes() == b"a\n"


def test_dask_workers_import_a_user_model_by_its_path(tmp_path):
    """The run's config carries only the import path; each worker process imports the module itself."""
    config = RunConfig(strategy="backup", workers=2, backups=1, steps=20, eval_every="10", seed=0)
    own = replace(config, model="own_components:mlp", dataset="own_components:digits", optimizer="own_components:sgd")
    [dask] = run_sweep([own], tmp_path / "dask", scheduler="local:1")
    [builtin] = run_sweep([config], tmp_path / "builtin", jobs=1)
    assert {k: v for k, v in seeded(dask).items() if k not in ("model", "dataset", "optimizer", "run")} == {
        k: v for k, v in seeded(builtin).items() if k not in ("model", "dataset", "optimizer", "run")
    }
