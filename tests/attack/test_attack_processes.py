"""Attacks on a sweep's processes and its run folders: killed parents, SIGTERM, corrupt runs, lost Dask workers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fixed_by_seed, seeded
from stragglersim.cli.main import main

PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not (PROC / "self" / "stat").exists(), reason="reads processes from /proc (Linux)")
GRID = ["--timing-only", "--quiet", "--workers", "8", "--backups", "0-5", "--steps", "4000"]


def sweep(out, *options):
    return [sys.executable, "-m", "stragglersim", "sweep", *GRID, "--out", str(out), *options]


def stat(pid: int) -> tuple[str, int] | None:
    """(state, parent PID) of a process, None when there is none (a zombie counts as gone)."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]))


def children(pid: int) -> list[int]:
    """The PIDs of the live processes whose parent is ``pid``."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (s := stat(int(entry.name))) is not None and s[1] == pid:
            found.append(int(entry.name))
    return found


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def start_sweep(out, *, jobs: int = 2) -> tuple[subprocess.Popen, list[int]]:
    """A parallel sweep, once its first run is written; returns it and its child processes (the
    pool's workers and multiprocessing's resource tracker)."""
    proc = subprocess.Popen(sweep(out, "--jobs", str(jobs)), start_new_session=True, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list((out / "runs").glob("*/summary.json")) or proc.poll() is not None)
    assert proc.poll() is None, "the sweep should still be running"
    started = children(proc.pid)
    assert len(started) >= jobs, started
    return proc, started


def gone(pids: list[int], timeout: float) -> list[int]:
    """The ``pids`` still alive after ``timeout`` seconds (killed at the end either way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(stat(p) for p in pids):
        time.sleep(0.05)
    alive = [p for p in pids if stat(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    return alive


@needs_proc
def test_sigkill_of_a_sweeps_parent_leaves_no_process_behind(tmp_path):
    """SIGKILL of a parallel sweep's parent -> its pool workers and resource tracker are gone within 5 s"""
    proc, started = start_sweep(tmp_path / "sw")
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as the OOM killer does
    proc.wait()
    proc.stderr.close()  # a worker left behind would hold it open: never wait for its end
    assert gone(started, timeout=5) == []


@needs_proc
def test_sigterm_stops_a_sweep_at_once_in_one_line(tmp_path):
    """SIGTERM of a parallel sweep -> exit 143 at once, one line, no process and no half-written run left"""
    out = tmp_path / "sw"
    proc, started = start_sweep(out)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        left = gone(started, timeout=5)
    assert proc.returncode == 143 and left == []
    assert err == "stragglersim sweep: stopped by SIGTERM; complete runs are kept; the same command resumes\n"
    assert not (out / "results.csv").exists() and not list((out / "runs").glob(".*"))
    assert len(list((out / "runs").glob("*/summary.json"))) < 6, "the queued runs should not run"


@pytest.mark.slow
@needs_proc
def test_a_sweep_stopped_by_sigterm_resumes_to_the_same_results(tmp_path):
    """SIGTERM of a parallel sweep, then the same command -> results.csv byte-identical to an uninterrupted sweep"""
    out = tmp_path / "sw"
    proc, started = start_sweep(out)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.communicate(timeout=60)
    finally:
        gone(started, timeout=5)
    assert proc.returncode == 143
    subprocess.run(sweep(out, "--jobs", "2"), check=True)
    subprocess.run(sweep(tmp_path / "clean", "--jobs", "1"), check=True)
    assert fixed_by_seed(out / "results.csv") == fixed_by_seed(tmp_path / "clean" / "results.csv")


def catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM installed (Linux's /proc/PID/status)."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@needs_proc
def test_sigterm_of_simulate_says_one_line_and_writes_nothing(tmp_path):
    """SIGTERM of simulate mid-run -> exit 143, one line, no output folder and no temporary folder"""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "stragglersim", "simulate", "--timing-only", "--workers", "50", "--steps", "10000000"]
    proc = subprocess.Popen([*argv, "--out", str(out)], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: proc.poll() is not None or catches_sigterm(proc.pid), timeout=30)
        time.sleep(0.5)  # simulating now (ten million steps take minutes)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert (proc.returncode, err) == (143, "stragglersim simulate: stopped by SIGTERM; nothing was written\n")
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_or_incomplete_run_in_a_sweep_is_named_and_run_again(tmp_path, capsys):
    """cut summary.json, no gradients.csv, edited config.toml, cut updates.csv -> named, rerun, same results"""
    argv = ["sweep", "--timing-only", "--workers", "4", "--backups", "0-3", "--steps", "200", "--jobs", "1"]
    out = tmp_path / "sw"
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    results = fixed_by_seed(out / "results.csv")
    runs = sorted((out / "runs").iterdir())
    (runs[0] / "summary.json").write_text((runs[0] / "summary.json").read_text()[:20])
    (runs[1] / "gradients.csv").unlink()
    config = runs[2] / "config.toml"
    config.write_text(config.read_text().replace("seed = 0", "seed = 7"))
    (runs[3] / "updates.csv").write_bytes((runs[3] / "updates.csv").read_bytes()[:-5])
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"run {runs[0].name}: summary.json is not valid JSON (" in err
    assert f"run {runs[1].name}: no gradients.csv; running it again" in err
    assert f"run {runs[2].name}: config.toml is not this run's configuration; running it again" in err
    assert f"run {runs[3].name}: updates.csv is cut short; running it again" in err
    assert "sweep: 4 of 4 finished" in err
    assert fixed_by_seed(out / "results.csv") == results


def test_aggregate_of_a_sweep_with_a_corrupt_summary_names_the_file(tmp_path, capsys):
    """a truncated summary.json read by aggregate -> exit 2, one line naming that file"""
    out = tmp_path / "sw"
    options = ["--timing-only", "--quiet", "--steps", "100", "--seeds", "0-1", "--jobs", "1"]
    assert main(["sweep", *options, "--out", str(out)]) == 0
    summary = sorted((out / "runs").iterdir())[1] / "summary.json"
    summary.write_text('{"mean_iteration_time": 0.')
    capsys.readouterr()
    assert main(["aggregate", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{summary}: cannot read" in err and "Traceback" not in err


def test_an_unreachable_scheduler_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """sweep --scheduler at an address where none listens -> exit 2, one line, no folder created"""
    pytest.importorskip("distributed")
    from stragglersim.studies import dask_sweep

    monkeypatch.setattr(dask_sweep, "TIMEOUT", 1.0, raising=False)  # how long a sweep waits for an answer
    out = tmp_path / "sw"
    argv = ["sweep", "--timing-only", "--quiet", "--steps", "20", "--out", str(out)]
    assert main([*argv, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stragglersim sweep: error: --scheduler tcp://127.0.0.1:1: no Dask scheduler answered")
    assert len(err.splitlines()) == 1 and not out.exists()


class KillOneWorker:
    """A run counter that, when the first run arrives, makes a worker busy with another run exit."""

    def __init__(self):
        self.killed = None

    def start(self, total):
        pass

    def update(self, *, finished=0, failed=0, running=None):
        if finished and self.killed is None:
            from distributed import default_client

            def exit_soon():  # nested: travels to the worker by value
                import os
                import threading

                threading.Timer(0.2, os._exit, args=(1,)).start()

            client = default_client()
            busy = [w for w, keys in client.processing().items() if keys]
            self.killed = busy[0]
            try:
                client.run(exit_soon, workers=[self.killed])
            except OSError:  # CommClosedError: on a loaded machine the worker may exit before its answer is sent
                pass

    def close(self):
        pass


@pytest.mark.slow
def test_a_lost_dask_worker_is_one_line_of_ours_and_no_dask_log(tmp_path, capfd):
    """a Dask worker exits mid-sweep (local:2) -> one line naming it, no Dask log line or traceback, same results"""
    pytest.importorskip("distributed")
    from conftest import grid
    from stragglersim.core.config import RunConfig
    from stragglersim.studies.sweeps import run_sweep

    base = RunConfig(strategy="backup", semantics="tf", steps=20000, timing_only=True)
    configs = grid(base, strategies=["backup"], workers=[8], backups=[0, 1, 2, 3], seeds=[0])
    messages, counter = [], KillOneWorker()
    dask = run_sweep(configs, tmp_path / "dask", scheduler="local:2", counter=counter, log=messages.append)
    assert counter.killed is not None
    assert [m for m in messages if "lost" in m] == [
        f"a Dask worker was lost ({counter.killed}): its runs in flight go to the other workers "
        "(a run that loses its worker again and again fails; the same command retries it)"
    ]
    err = capfd.readouterr().err
    assert "distributed" not in err and "Traceback" not in err and "WARNING" not in err, err
    assert [seeded(r) for r in dask] == [seeded(r) for r in run_sweep(configs, tmp_path / "local", jobs=1)]
