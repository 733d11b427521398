"""Crash-safe files and one writer per folder: kills at any moment, concurrent writers and readers."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import fixed_by_seed
from stragglersim.cli.main import main
from stragglersim.cli.options import worded
from stragglersim.io.errors import InputError
from stragglersim.io.results import write_results
from stragglersim.io.storage import FolderLock, recover

CLI = [sys.executable, "-m", "stragglersim"]
TRAIN = ["simulate", "--quiet", "--strategy", "backup", "--workers", "2", "--backups", "1", "--eval-every", "2"]
TRAIN += ["--checkpoint-every", "2", "--steps", "24"]
TIMING = ["simulate", "--quiet", "--timing-only", "--workers", "4", "--steps", "20000"]


def dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def folder(path: Path, **files) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name.replace("_", ".")).write_text(text)
    return path


def contents(path: Path) -> dict:
    """Every file under ``path`` as {relative path: bytes}."""
    return {p.relative_to(path).as_posix(): fixed_by_seed(p) for p in sorted(path.rglob("*")) if p.is_file()}


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def whole(path: Path) -> bool:
    return (path / "b").exists()


def test_recover_puts_the_new_copy_in_when_killed_between_the_two_renames(tmp_path):
    """SIGKILL between the renames of a replacement (old aside, new written) -> recover puts the new copy in place."""
    pid = dead_pid()
    folder(tmp_path / f".ck.old-{pid}", a="old", b="old")
    folder(tmp_path / f".ck.tmp-{pid}", a="new", b="new")
    recover(tmp_path / "ck")
    assert contents(tmp_path / "ck") == {"a": b"new", "b": b"new"} and hidden(tmp_path) == []


def test_recover_takes_a_complete_new_copy_and_drops_an_incomplete_one(tmp_path):
    """SIGKILL while writing the first copy -> a complete copy (caller's predicate) is taken, a partial one removed."""
    folder(tmp_path / f".ck.tmp-{dead_pid()}", a="new", b="new")
    recover(tmp_path / "ck", complete=whole)
    assert contents(tmp_path / "ck") == {"a": b"new", "b": b"new"} and hidden(tmp_path) == []
    folder(tmp_path / f".part.tmp-{dead_pid()}", a="new")
    recover(tmp_path / "part", complete=whole)
    assert not (tmp_path / "part").exists() and hidden(tmp_path) == []
    folder(tmp_path / f".res.tmp-{dead_pid()}", a="half-written results")  # no predicate: never taken alone
    recover(tmp_path / "res")
    assert not (tmp_path / "res").exists() and hidden(tmp_path) == []


def test_recover_brings_the_old_copy_back_and_replaces_a_half_deleted_folder(tmp_path):
    """Folder moved aside with no new copy, or half deleted beside a complete one -> the old copy back / the new one."""
    folder(tmp_path / f".ck.old-{dead_pid()}", a="old", b="old")
    recover(tmp_path / "ck", complete=whole)
    assert contents(tmp_path / "ck") == {"a": b"old", "b": b"old"} and hidden(tmp_path) == []
    folder(tmp_path / "cut", a="old")  # the old code's rmtree, killed half-way
    folder(tmp_path / f".cut.tmp-{dead_pid()}", a="new", b="new")
    recover(tmp_path / "cut", complete=whole)
    assert contents(tmp_path / "cut") == {"a": b"new", "b": b"new"} and hidden(tmp_path) == []


def test_recover_removes_a_dead_process_temporaries_and_keeps_a_live_one(tmp_path):
    """Stale .NAME.tmp-PID / .old-PID of a gone process -> removed; a live process's temporaries -> kept."""
    folder(tmp_path / "ck", a="current", b="current")
    dead = dead_pid()
    folder(tmp_path / f".ck.tmp-{dead}", a="stale")
    folder(tmp_path / f".ck.old-{dead}", a="stale")
    (tmp_path / f".ck.tmp-{dead}-3").write_text("stale file")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder(tmp_path / f".ck.tmp-{live.pid}", a="in flight")
        recover(tmp_path / "ck", complete=whole)
        assert hidden(tmp_path) == [f".ck.tmp-{live.pid}"]
        assert contents(tmp_path / "ck") == {"a": b"current", "b": b"current"}
    finally:
        live.kill()
        live.wait()


def test_folder_lock_refuses_a_second_process_naming_the_holder_and_leaves_no_file(tmp_path):
    """A second writer of a folder -> InputError naming the folder and the holder's PID; released -> no lock file."""
    out = tmp_path / "new" / "deeper" / "out"
    holder = subprocess.Popen(
        [*CLI[:1], "-c", f"from stragglersim.io.storage import FolderLock\nwith FolderLock({str(out)!r}): input()"],
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not (out.parent / ".out.lock").exists():
            time.sleep(0.02)
        with pytest.raises(InputError) as refused:
            with FolderLock(out):
                pass
        assert worded(refused.value) == (
            f"--out {out}: another stragglersim process (PID {holder.pid}) is writing it; "
            "wait for it or give another folder"
        )
    finally:
        holder.communicate("\n", timeout=30)
    assert not (tmp_path / "new").exists()  # the folders it created, empty, are gone again
    with FolderLock(out), FolderLock(out):  # the same process again: no deadlock
        out.mkdir()
    assert hidden(out.parent) == []


def test_concurrent_results_csv_writers_and_a_reader_never_meet_a_partial_file(tmp_path):
    """Two writers rewrite results.csv in a loop while a reader reads it -> the reader only sees whole files."""
    path = tmp_path / "results.csv"
    tables = {k: [{"run": f"r{i}", "value": k * 1000 + i} for i in range(2000)] for k in (1, 2)}
    write_results(tables[1], path)
    expected = {path.read_text()}
    write_results(tables[2], path)
    expected.add(path.read_text())
    stop, seen, errors = threading.Event(), set(), []

    def writer(rows):
        try:
            while not stop.is_set():
                write_results(rows, path)
        except Exception as err:  # a lost temporary: another writer renamed it away
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(t,)) for t in tables.values()]
    for t in threads:
        t.start()
    deadline = time.time() + 1.0
    while time.time() < deadline and not errors:
        seen.add(path.read_text())
    stop.set()
    for t in threads:
        t.join()
    assert not errors and seen <= expected
    assert hidden(tmp_path) == []


def start(args, out, **env):
    return subprocess.Popen(
        [*CLI, *args, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1", **env},  # a hung child shows its stacks on SIGABRT
    )


def stuck(proc: subprocess.Popen) -> str:
    """The stacks of a child that should have ended by now (faulthandler prints them on SIGABRT)."""
    proc.send_signal(signal.SIGABRT)
    _, err = proc.communicate(timeout=60)
    return err


def two_writers(out: Path, first: list, second: list) -> tuple[list, str]:
    """Start two writers of ``out`` together; return the winner's arguments and the loser's stderr."""
    procs = [start(first, out), start(second, out)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, err) for p, _, err in results]
    (winner,) = [args for args, (p, _, _) in zip((first, second), results, strict=True) if p.returncode == 0]
    ((loser, err),) = [(p, err) for p, _, err in results if p.returncode == 2]
    assert err.count("\n") == 1 and err.startswith("stragglersim simulate: error: --out ")
    other = procs[0] if procs[1] is loser else procs[1]
    assert f"(PID {other.pid}) is writing it" in err or "directory is not empty" in err, err
    return winner, err


def test_two_simulate_runs_into_one_folder_one_wins_the_other_exits_2(tmp_path):
    """Two simulate runs into one --out at once -> one exits 0, the other 2 with one line; the winner's files only."""
    out = tmp_path / "out"
    winner, _ = two_writers(out, [*TIMING, "--seed", "1"], [*TIMING, "--seed", "2"])
    assert main([*winner, "--out", str(tmp_path / "alone")]) == 0
    assert contents(out) == contents(tmp_path / "alone")
    assert hidden(tmp_path) == []


def test_sigkill_between_the_renames_of_overwrite_leaves_the_new_results_in_place(tmp_path, capsys):
    """SIGKILL between the two renames of --overwrite -> the next command finds the new results in place."""
    out = tmp_path / "out"
    assert main([*TIMING, "--seed", "1", "--out", str(out)]) == 0
    proc = start([*TIMING, "--seed", "2", "--overwrite"], out, STRAGGLERSIM_TEST_PAUSE_IN_REPLACE="30")
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline and not list(tmp_path.glob(".out.old-*")):
        time.sleep(0.01)
    proc.kill()
    proc.communicate()
    assert not out.exists() and len(hidden(tmp_path)) == 3  # old aside, new written, the lock file
    assert main([*TIMING, "--seed", "3", "--out", str(out)]) == 2
    assert "directory is not empty" in capsys.readouterr().err
    assert main([*TIMING, "--seed", "2", "--out", str(tmp_path / "alone")]) == 0
    assert contents(out) == contents(tmp_path / "alone") and hidden(tmp_path) == []


@pytest.mark.slow
def test_two_checkpointing_runs_into_one_folder_one_wins_the_other_exits_2(tmp_path):
    """Two checkpointing training runs into one --out at once -> one exits 0, the other 2; no 'Directory not empty'."""
    out = tmp_path / "out"
    winner, _ = two_writers(out, [*TRAIN, "--seed", "1"], [*TRAIN, "--seed", "2"])
    assert main([*winner, "--out", str(tmp_path / "alone")]) == 0
    assert contents(out) == contents(tmp_path / "alone")
    assert hidden(tmp_path) == [] and not (tmp_path / "out.checkpoint").exists()


SWEEP = ["sweep", "--timing-only", "--quiet", "--workers", "3-5", "--backups", "0-2", "--steps", "10000", "--jobs", "1"]


def test_a_second_sweep_into_a_busy_folder_exits_2_and_the_first_completes(tmp_path):
    """A second sweep into a folder a sweep is writing -> exits 2 naming its PID; the first's runs are untouched."""
    out = tmp_path / "sw"
    first = start(SWEEP, out)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / "runs").glob("*/summary.json")):
        time.sleep(0.02)
    second = start(SWEEP, out)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2 and err.count("\n") == 1, err
    assert f"--out {out}: another stragglersim process (PID {first.pid}) is writing it" in err
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 9  # every run written, none failed
    assert hidden(out / "runs") == [] and hidden(tmp_path) == []


def test_a_sweep_removes_only_the_temporaries_of_gone_processes(tmp_path):
    """A sweep starting beside another process's in-flight run folder -> leaves it alone; a dead one's goes."""
    out, sweep = tmp_path / "sw", [*SWEEP[:-3], "500", *SWEEP[-2:]]
    assert main([*sweep, "--out", str(out)]) == 0
    dead = dead_pid()
    folder(out / "runs" / f".w3-b0.tmp-{dead}", a="killed")
    (out / "runs" / ".w4-b1.lock").write_text(f"{dead}\n")  # a lock file a killed run left
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder(out / "runs" / f".w5-b0.tmp-{live.pid}", a="in flight")
        assert main([*sweep, "--out", str(out)]) == 0
        assert hidden(out / "runs") == [f".w5-b0.tmp-{live.pid}"]
    finally:
        live.kill()
        live.wait()


def finish(out: Path, ckpt: Path, kill=None) -> int | None:
    """Run (or resume) the training run into ``out``; with ``kill``, SIGKILL it that many seconds
    after its first checkpoint write began, or ("write") while a checkpoint is half replaced (old
    copy aside, new one not yet in). Returns the exit status, None if killed."""
    leftover = ckpt.exists() or list(ckpt.parent.glob(f".{ckpt.name}.old-*"))
    args = ["simulate", "--quiet", "--resume", str(ckpt)] if leftover else TRAIN
    proc = start(args, out, STRAGGLERSIM_TEST_PAUSE_IN_REPLACE="0.3" if kill is not None else "0")
    mine, aside, deadline = ckpt.with_name(f".{ckpt.name}.tmp-{proc.pid}"), [], None
    give_up = time.time() + 300  # the whole run takes seconds: a child this late is hung
    while kill is not None and proc.poll() is None:
        assert time.time() < give_up, stuck(proc)
        aside = list(ckpt.parent.glob(f".{ckpt.name}.old-{proc.pid}"))
        if kill == "write" and aside or deadline is not None and time.time() > deadline:
            proc.kill()
            proc.communicate()
            return None
        if deadline is None and kill != "write" and mine.exists():
            deadline = time.time() + kill
        time.sleep(0.005)
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        raise AssertionError(stuck(proc)) from None
    assert proc.returncode == 0, err
    return 0


def kill_battery(tmp_path: Path, whole: Path, kills: list) -> int:
    """Kill a checkpointing run at each of ``kills`` (see ``finish``), resuming each time, until it
    completes; its files must equal ``whole``'s (an uninterrupted run). Returns how many kills hit
    the run (a later one may find it complete)."""
    out, ckpt = tmp_path / "cut", tmp_path / "cut.checkpoint"
    hits, exited = 0, False
    for when in kills:
        if out.exists():
            break  # killed after its results were in place: complete
        if exited := finish(out, ckpt, when) is not None:
            break
        hits += 1
    if not out.exists():
        exited = finish(out, ckpt) == 0
    if exited:  # a run killed at its very end leaves its lock file until the next command there
        assert hidden(tmp_path) == []  # no junk (the checkpoint a run resumed from is kept, as before)
    assert contents(out) == contents(whole)
    return hits


def test_sigkill_inside_the_checkpoint_write_and_anywhere_resumes_byte_identically(tmp_path):
    """SIGKILL inside the checkpoint write, then at a random time of the resumed run -> resume is byte-identical."""
    assert main([*TRAIN, "--out", str(tmp_path / "whole")]) == 0
    (tmp_path / "a").mkdir()
    assert kill_battery(tmp_path / "a", tmp_path / "whole", ["write", random.Random(17).uniform(0.0, 2.0)]) == 2


@pytest.mark.slow
def test_five_random_sigkills_of_a_checkpointing_run_all_resume_byte_identically(tmp_path):
    """5 random SIGKILLs of a checkpointing run (every 4th inside the checkpoint write) -> byte-identical resumes
    (20 took 3.5 minutes of CI's 15, 8 took 90 s; the default run's test kills twice, once inside the write)."""
    assert main([*TRAIN, "--out", str(tmp_path / "whole")]) == 0
    rng = random.Random(2024)
    kills = ["write" if i % 4 == 0 else rng.uniform(0.0, 4.0) for i in range(5)]
    hits = chain = 0
    while hits < len(kills):  # a chain ends when a kill comes after its run completed: start another
        chain += 1
        (tmp_path / f"chain{chain}").mkdir()
        got = kill_battery(tmp_path / f"chain{chain}", tmp_path / "whole", kills[hits:])
        if got == 0:  # a fresh run finished before its first kill (a fast machine): kill sooner next time
            assert kills[hits] != "write" and chain < 100, "a fresh run holds a dozen checkpoint writes"
            kills[hits] /= 2
        hits += got


def test_recover_leaves_a_held_lock_this_process_temporaries_and_missing_folders_alone(tmp_path):
    """recover_all of a folder that is not there -> nothing made; a lock a live writer holds and the
    temporaries of this very process -> kept; recover beside a missing folder -> nothing to do."""
    from stragglersim.io.storage import recover_all

    recover_all(tmp_path / "missing")
    recover(tmp_path / "absent" / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    mine = folder(tmp_path / f".mine.tmp-{os.getpid()}", a="being written")
    with FolderLock(tmp_path / "busy"):
        recover_all(tmp_path)  # flock on another open file of the held lock fails: it is kept
        assert hidden(tmp_path) == [".busy.lock", mine.name]
    assert hidden(tmp_path) == [mine.name] and not (tmp_path / "mine").exists()


def test_a_lock_file_its_last_holder_unlinks_before_our_flock_is_opened_afresh(tmp_path, monkeypatch):
    """The holder releases and unlinks .out.lock between our open and our flock: the lock we got is
    on a file no other writer sees, so FolderLock opens the new name and locks that instead."""
    import fcntl

    real, calls = fcntl.flock, []

    def flock(fd, op):
        if not calls:
            (tmp_path / ".out.lock").unlink()
        calls.append(op)
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with FolderLock(tmp_path / "out"):
        assert len(calls) == 2
        assert (tmp_path / ".out.lock").read_text() == f"{os.getpid()}\n"
    assert hidden(tmp_path) == []


def test_the_refusal_names_the_holders_pid_once_it_is_written_and_none_it_cannot_read(tmp_path, monkeypatch):
    from stragglersim.io import storage

    lock = tmp_path / ".out.lock"
    assert storage._holder(lock) == ""  # gone meanwhile
    lock.write_text("")  # the holder has created it but not yet written its PID
    monkeypatch.setattr(storage.time, "sleep", lambda seconds: lock.write_text("4242\n"))
    assert storage._holder(lock) == " (PID 4242)"
    lock.write_text("garbage")
    monkeypatch.setattr(storage.time, "sleep", lambda seconds: None)
    assert storage._holder(lock) == ""
