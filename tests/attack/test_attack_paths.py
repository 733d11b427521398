"""Paths and stops a reviewer tried after the first battery: links as --out, runs inside a sweep
folder, a training run stopped or resumed with its checkpoint."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stragglersim.cli.main import main

RUN = ["simulate", "--timing-only", "--steps", "50", "--workers", "2", "--quiet"]
TRAIN = ["simulate", "--quiet", "--workers", "2", "--eval-every", "2", "--checkpoint-every", "2"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_out_a_symbolic_link_is_refused_before_any_work(capsys, here):
    """--out a link to a folder -> exit 2, one line naming the target; the link and its folder untouched"""
    (here / "real").mkdir()
    (here / "link").symlink_to("real")
    assert main([*RUN, "--out", "link", "--overwrite"]) == 2
    assert "is a symbolic link (to" in one_line(capsys)
    assert (here / "link").is_symlink() and list((here / "real").iterdir()) == [] and hidden(here) == []


@pytest.mark.parametrize("out", ["loop1", "loop1/sub"])
def test_out_through_a_symbolic_link_loop_is_one_line(capsys, here, out):
    """--out a link loop (or below one) -> exit 2, one line, no RuntimeError traceback"""
    (here / "loop1").symlink_to("loop2")
    (here / "loop2").symlink_to("loop1")
    assert main([*RUN, "--out", out]) == 2
    assert "loop1" in one_line(capsys)


def test_a_run_inside_a_sweep_folder_is_refused(capsys, here):
    """simulate --out SWEEP/runs/x (a run the sweep's tables would count) -> exit 2, one line naming the sweep"""
    assert main(["sweep", "--timing-only", "--steps", "30", "--workers", "2", "--seeds", "0,1", "--out", "sw"]) == 0
    capsys.readouterr()
    assert main([*RUN, "--out", "sw/runs/x"]) == 2
    assert "inside the sweep folder" in one_line(capsys)
    assert sorted(p.name for p in (here / "sw" / "runs").iterdir()) == sorted(
        p.name for p in (here / "sw" / "runs").iterdir() if p.name.startswith("backup")
    )


def catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_sigterm_of_a_checkpointing_run_names_the_checkpoint_and_the_resume(here):
    """SIGTERM of a training run with a checkpoint -> exit 143 (no crash), one line giving the resume command"""
    argv = [sys.executable, "-m", "stragglersim", *TRAIN, "--steps", "100000", "--out", "k"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, cwd=here)
    try:
        deadline = time.monotonic() + 120
        while not (here / "k.checkpoint" / "state.json").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        assert catches_sigterm(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == [
        "stragglersim simulate: stopped by SIGTERM; the checkpoint k.checkpoint is kept; "
        "`stragglersim simulate --resume k.checkpoint --out k` continues"
    ]
    assert not (here / "k").exists() and (here / "k.checkpoint" / "state.json").exists()
