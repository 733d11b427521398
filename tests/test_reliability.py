"""Interruption, config files, numerical trouble: no lost results, no silent nonsense."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import fixed_by_seed, interrupted_at_checkpoint, same_result_file
from stragglersim.cli.main import main


def sweep_args(out):
    return [
        sys.executable,
        "-m",
        "stragglersim",
        "sweep",
        "--timing-only",
        "--quiet",
        "--strategy",
        "backup",
        "--semantics",
        "tf",
        "--workers",
        "3-6",
        "--backups",
        "0-2",
        "--steps",
        "400",
        "--jobs",
        "1",
        "--out",
        str(out),
    ]


def test_a_sweep_killed_with_sigkill_resumes_to_the_same_results(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(sweep_args(killed), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "runs").glob("*/summary.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((killed / "runs").glob("*/summary.json")))
    assert 3 <= done_before < 12, "the sweep should be killed part-way"
    assert not (killed / "results.csv").exists()
    subprocess.run(sweep_args(killed), check=True)
    clean = tmp_path / "clean"
    subprocess.run(sweep_args(clean), check=True)
    assert fixed_by_seed(killed / "results.csv") == fixed_by_seed(clean / "results.csv")
    assert not list((killed / "runs").glob(".*"))  # no half-written leftovers


def test_ctrl_c_stops_a_parallel_sweep_at_once_and_the_same_command_resumes(tmp_path):
    """^C (SIGINT to the process group) starts no queued run: the sweep ends within seconds, not
    after running the whole queue."""
    out = tmp_path / "sw"
    argv = [sys.executable, "-m", "stragglersim", "sweep", "--timing-only", "--quiet", "--workers", "8"]
    argv += ["--backups", "0-5", "--seeds", "0-1", "--steps", "3000", "--jobs", "2", "--out", str(out)]
    # a shell's background job starts with SIGINT ignored, and Python keeps it so: give the sweep ^C back
    restore = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", restore, *argv], start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "runs").glob("*/summary.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    done = len(list((out / "runs").glob("*/summary.json")))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted; complete runs are kept" in err
    # at most the runs in flight (2) and the calls already handed to the workers (3) finish; the queue does not
    assert len(list((out / "runs").glob("*/summary.json"))) <= done + 5 < 12
    subprocess.run(argv, check=True)
    assert len(list((out / "runs").glob("*/summary.json"))) == 12


def test_config_file_with_flags_overriding(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('strategy = "async"\nworkers = 5\nsteps = 40\ntiming_only = true\nseed = 3\n')
    assert main(["simulate", "--config", str(config), "--steps", "60", "--quiet", "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert (summary["strategy"], summary["workers"], summary["updates"], summary["seed"]) == ("async", 5, 60, 3)
    # the saved config.toml reproduces the run
    assert (
        main(["simulate", "--config", str(tmp_path / "a" / "config.toml"), "--quiet", "--out", str(tmp_path / "b")])
        == 0
    )
    assert (tmp_path / "a" / "updates.csv").read_bytes() == (tmp_path / "b" / "updates.csv").read_bytes()
    config.write_text("workerz = 5\n")
    assert main(["simulate", "--config", str(config), "--out", str(tmp_path / "c")]) == 2
    assert "unknown field 'workerz'" in capsys.readouterr().err


def test_divergence_stops_with_a_clear_message_and_keeps_the_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "simulate",
            "--quiet",
            "--strategy",
            "sync",
            "--workers",
            "4",
            "--steps",
            "200",
            "--lr",
            "10",
            "--dataset",
            "teacher-student",
            "--dataset-size",
            "2000",
            "--eval-every",
            "10",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0 and "diverged: the training loss became " in err and err.count("\n") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] is True and summary["updates"] < 200
    assert f"at update {summary['diverged_at']}:" in summary["diverged_reason"]
    assert len((out / "metrics.csv").read_text().splitlines()) >= 3


@pytest.mark.parametrize(
    "strategy",
    [
        ["--strategy", "async", "--workers", "6", "--eval-every", "20", "--checkpoint-every", "60"],
        ["--strategy", "backup", "--workers", "4", "--backups", "2", "--eval-every", "20", "--checkpoint-every", "60"],
        ["--strategy", "sync", "--workers", "4", "--eval-every", "10s", "--checkpoint-every", "30s"],
    ],
)
def test_a_training_run_resumes_from_its_checkpoint_to_identical_files(tmp_path, monkeypatch, strategy):
    """Crash right after the second checkpoint, resume, and get the uninterrupted run's files."""
    import stragglersim.training.checkpoint as checkpoint

    args = ["simulate", "--quiet", *strategy, "--steps", "300"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert not (tmp_path / "whole.checkpoint").exists()  # removed once the run is complete
    saved = checkpoint.save
    calls = []

    def crash_after_second(*a, **kw):
        saved(*a, **kw)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(checkpoint, "save", crash_after_second)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    assert not (tmp_path / "cut").exists() and (tmp_path / "cut.checkpoint" / "state.json").exists()
    monkeypatch.setattr(checkpoint, "save", saved)
    assert (
        main(["simulate", "--quiet", "--resume", str(tmp_path / "cut.checkpoint"), "--out", str(tmp_path / "cut")]) == 0
    )
    for name in ("metrics.csv", "training.csv", "gradients.csv", "updates.csv"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert not (tmp_path / "cut.checkpoint").exists()  # the resumed run is complete: its checkpoint goes too


def test_bad_checkpoint_options(tmp_path, capsys):
    assert main(["simulate", "--eval-every", "20", "--checkpoint-every", "30", "--out", str(tmp_path / "x")]) == 2
    assert "--checkpoint-every '30': a multiple of --eval-every" in capsys.readouterr().err
    assert main(["simulate", "--resume", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err


def test_resume_with_more_steps_extends_the_run_and_other_changed_options_are_refused(tmp_path, monkeypatch, capsys):
    """``--resume CKPT --steps K`` goes on to K updates, with the files of a run asked for K from
    the start; an option the checkpoint fixes, given with another value, is a one-line error."""

    args = ["simulate", "--quiet", "--strategy", "backup", "--workers", "2", "--backups", "1", "--eval-every", "2"]
    args += ["--checkpoint-every", "2"]
    assert main([*args, "--steps", "40", "--out", str(tmp_path / "whole")]) == 0
    with interrupted_at_checkpoint(monkeypatch):
        assert main([*args, "--steps", "20", "--out", str(tmp_path / "cut")]) == 130
    capsys.readouterr()
    resume = ["simulate", "--quiet", "--resume", str(tmp_path / "cut.checkpoint"), "--out", str(tmp_path / "cut")]
    refusals = {
        (
            "--workers",
            "3",
        ): "--workers 3: not with --resume (the checkpoint's run has workers = 2; only --steps may change)",
        ("--timing-only",): "--timing-only: not with --resume (the checkpoint's run has timing_only = False;",
        ("--no-stop-at-target",): "--no-stop-at-target: not with --resume",
        ("--config", str(tmp_path / "whole" / "config.toml")): "config.toml: not with --resume (the checkpoint holds",
        ("--steps", "3"): "--steps 3: the checkpoint is at update 4; give at least that",
    }
    for extra, message in refusals.items():
        assert main([*resume, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main([*resume, "--workers", "2", "--steps", "40"]) == 0  # the checkpoint's own value is fine
    for name in ("metrics.csv", "training.csv", "gradients.csv", "updates.csv", "summary.json"):
        assert same_result_file(tmp_path / "cut" / name, tmp_path / "whole" / name), name
    assert "steps = 40" in (tmp_path / "cut" / "config.toml").read_text()
