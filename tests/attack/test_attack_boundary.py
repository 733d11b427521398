"""Attacks on the boundary with the file system: hostile --out paths, full disks, FIFOs and devices
as inputs, deeply nested SPEC and TOML, non-finite results, PDF timestamps. Each ends in exit 2
(input) or 1 (environment) and one line on stderr naming the path, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from stragglersim.cli.main import main
from stragglersim.io.errors import InputError

RUN = ["--timing-only", "--steps", "3", "--workers", "2"]
ROOT = os.geteuid() == 0


def cli(capsys, *argv) -> tuple[int, str]:
    """Exit status and stderr of ``stragglersim ARGV`` run in this process."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return status, err


def assert_one_line(err: str, *words: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("a file\n")
    return tmp_path


LONG = "x" * 300
HOSTILE_OUT = [  # (--out, extra, words of the message)
    ("/proc/x", [], ["/proc/x", "kernel file system"]),
    ("/sys/x", [], ["/sys/x", "kernel file system"]),
    ("file/sub", [], ["file/sub", "is a file"]),
    (LONG, [], ["longer than"]),
    (f"new/{LONG}/run", [], ["longer than"]),
    ("/", ["--overwrite"], ["--out /", "root folder"]),
]


@pytest.mark.parametrize(
    ("out", "extra", "words"), HOSTILE_OUT, ids=["proc", "sys", "file-sub", "long", "long-mid", "root"]
)
def test_hostile_out_of_simulate(capsys, here, out, extra, words):
    """--out /proc/x, FILE/sub, a 300-character name, / --overwrite -> exit 2, one line, nothing simulated"""
    status, err = cli(capsys, "simulate", *RUN, "--out", out, *extra)
    assert status == 2
    assert_one_line(err, *words)


COMMANDS = {  # every command that writes, with the least arguments its parser takes
    "simulate": ["simulate", *RUN],
    "replay": ["replay", "trace.csv", *RUN],
    "sweep": ["sweep", *RUN],
    "fit": ["fit", "trace.csv"],
    "validate": ["validate", "trace.csv", "--workers", "2"],
    "measure": ["measure", "--workers", "1", "--steps", "1"],
    "import": ["import", "trace.csv"],
    "reproduce": ["reproduce", "--quick"],
    "timeline": ["timeline", "run"],
    "aggregate": ["aggregate", "run"],
    "compare": ["compare", "run"],
    "plot": ["plot", "run"],
    "compare-backups": ["compare-backups", "--workers", "2"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("out", ["/proc/x", "file/sub"])
def test_every_writing_command_checks_out_first(capsys, here, command, out):
    """--out /proc/x or FILE/sub in every command that writes -> exit 2 before any work, one line"""
    status, err = cli(capsys, *COMMANDS[command], "--out", out)
    assert status == 2
    assert_one_line(err, f"stragglersim {command}: error: --out {out}")


@pytest.mark.skipif(ROOT, reason="root may write in a chmod 0o500 folder")
def test_out_in_unwritable_folder(capsys, here):
    """--out in a folder without write permission (chmod 0o500) -> exit 2 before simulating, one line"""
    locked = here / "locked"
    locked.mkdir(mode=0o500)
    status, err = cli(capsys, "simulate", *RUN, "--out", locked / "run")
    assert status == 2
    assert_one_line(err, "cannot write in", str(locked))


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")


def _umount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True)


def test_out_on_read_only_file_system(capsys, here):
    """--out on a read-only file system -> exit 2 before simulating, one line naming the folder"""
    ro = here / "ro"
    _mount_tmpfs(ro, "size=100k,ro")
    try:
        status, err = cli(capsys, "simulate", *RUN, "--out", ro / "run")
    finally:
        _umount(ro)
    assert status == 2
    assert_one_line(err, "cannot write in", str(ro))


def stragglersim(*argv, limit_bytes: int | None = None, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """``python -m stragglersim ARGV`` in a child; with ``limit_bytes`` every file it writes is capped
    (RLIMIT_FSIZE, SIGXFSZ ignored: a write past it fails with EFBIG, as on a full disk)."""

    def cap():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = dict(os.environ)
    if limit_bytes:  # coverage.py measuring children could not save its data under the cap: run it unmeasured
        env.pop("COVERAGE_PROCESS_CONFIG", None)
        # nor could JAX write the shared compilation cache's entries (a warning, and a torn entry left for the
        # others) unless an earlier test happened to write them first: the capped child keeps no cache
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "stragglersim", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
        preexec_fn=cap if limit_bytes else None,
    )


def test_disk_full_in_simulate(here):
    """simulate overflowing a 200 KiB tmpfs -> exit 1, one line 'disk full' naming the path, DIR left empty"""
    disk = here / "disk"
    _mount_tmpfs(disk, "size=200k")
    try:
        done = stragglersim("simulate", "--timing-only", "--steps", "4000", "--workers", "4", "--out", disk / "run")
        left = sorted(p.name for p in disk.iterdir())
    finally:
        _umount(disk)
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "disk full", str(disk))
    assert left == []


def test_file_size_limit_in_simulate(here):
    """simulate under a 64 KiB file size limit (EFBIG, a full disk anywhere) -> exit 1, one line, nothing left"""
    done = stragglersim(
        "simulate", "--timing-only", "--steps", "4000", "--workers", "4", "--out", "run", cwd=here, limit_bytes=65536
    )
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "disk full", "run")
    assert sorted(p.name for p in here.iterdir()) == ["file"]


def test_file_size_limit_in_sweep(here):
    """sweep under a 1,200-byte file size limit (runs and failures.txt fail) -> exit 1, one line, no failures.txt"""
    sweep = ["sweep", "--timing-only", "--steps", "300", "--workers", "4", "--seeds", "0-1", "--jobs", "1"]
    done = stragglersim(*sweep, "--quiet", "--out", "sw", cwd=here, limit_bytes=1200)
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "sw/failures.txt", "disk full")
    assert not (here / "sw" / "failures.txt").exists()
    assert [p.name for p in (here / "sw").rglob(".*")] == []


def test_results_csv_is_a_folder(capsys, here):
    """sweep whose results.csv is a folder -> exit 2, one line naming results.csv, no temporary left"""
    assert cli(capsys, "sweep", *RUN, "--jobs", "1", "--quiet", "--out", "sw")[0] == 0
    (here / "sw" / "results.csv").unlink()
    (here / "sw" / "results.csv").mkdir()
    status, err = cli(capsys, "sweep", *RUN, "--jobs", "1", "--quiet", "--out", "sw")
    assert status == 2
    assert_one_line(err, "results.csv", "is a folder")
    assert not [p for p in (here / "sw").iterdir() if p.name.startswith(".")]


def nested_spec(depth: int) -> str:
    inner = "constant(value=1)"
    for _ in range(depth):
        inner = f"straggler(base={inner},p=0.1,factor=2)"
    return f"straggler:base={inner},p=0.1,factor=2"


def test_spec_nested_2000_deep(capsys, here):
    """--latency nested 2,000 deep -> exit 2, one line naming --latency and the limit (no RecursionError)"""
    status, err = cli(capsys, "simulate", *RUN, "--latency", nested_spec(2000), "--out", "run")
    assert status == 2
    assert_one_line(err, "--latency", "at most 32")


def test_spec_nested_within_limit_is_read(capsys, here):
    """--latency nested 20 deep (a legitimate composition) -> simulated, exit 0"""
    assert cli(capsys, "simulate", *RUN, "--latency", nested_spec(20), "--out", "run", "--quiet")[0] == 0


@pytest.mark.parametrize("option", ["--config", "--grid"])
def test_toml_nested_5000_deep(capsys, here, option):
    """--config / --grid TOML nested 5,000 deep -> exit 2, one line naming the file and the limit"""
    (here / "deep.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    command = "sweep" if option == "--grid" else "simulate"
    status, err = cli(capsys, command, *RUN, option, "deep.toml", "--out", "run")
    assert status == 2
    assert_one_line(err, "deep.toml", "at most 64")


def _unblock_later(fifo: Path) -> None:
    """If a reader ever blocks on ``fifo``, a writer comes after 10 s so that the test fails, not hangs."""

    def write():
        with open(fifo, "w"):
            pass

    timer = threading.Timer(10, write)
    timer.daemon = True
    timer.start()


@pytest.mark.parametrize("given", ["replay", "--config", "--grid", "--latency"])
def test_fifo_as_input(capsys, here, given):
    """a FIFO as trace, --config or --grid -> exit 2 at once, one line 'is not a regular file (a FIFO)'"""
    fifo = here / "fifo"
    os.mkfifo(fifo)
    _unblock_later(fifo)
    argv = {
        "replay": ["replay", fifo, *RUN],
        "--config": ["simulate", *RUN, "--config", fifo],
        "--grid": ["sweep", *RUN, "--grid", fifo],
        "--latency": ["simulate", *RUN, "--latency", f"trace:{fifo}"],
    }[given]
    status, err = cli(capsys, *argv, "--out", "run")
    assert status == 2
    assert_one_line(err, str(fifo), "not a regular file (a FIFO)")


def test_dev_zero_as_trace(capsys, here):
    """a trace of /dev/zero -> exit 2 at once, one line 'not a regular file (a character device)'"""
    status, err = cli(capsys, "replay", "/dev/zero", *RUN, "--out", "run")
    assert status == 2
    assert_one_line(err, "/dev/zero", "character device")


def test_fifo_as_data_path(here):
    """--data-path FIFO (mnist) -> InputError 'not a regular file' before opening"""
    from stragglersim.models.datasets import load_dataset

    fifo = here / "mnist.npz"
    os.mkfifo(fifo)
    _unblock_later(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_dataset("mnist", path=str(fifo))


def _refuse_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_summary_is_strict_json_for_overflowing_times(capsys, here):
    """constant:value=1e308 (times overflow) -> refused in one line, or strict summary.json, no inf/nan cell"""
    status, err = cli(capsys, "simulate", *RUN, "--latency", "constant:value=1e308", "--out", "run", "--quiet")
    if status == 2:  # refused up front as a value that cannot finish: also a clean answer
        assert_one_line(err, "--latency")
        return
    assert status == 0
    summary = json.loads((here / "run" / "summary.json").read_text(), parse_constant=_refuse_constant)
    assert summary["sim_time"] is None and "sim_time" in summary["non_finite"]
    for table in ("updates.csv", "gradients.csv"):
        cells = {c for line in (here / "run" / table).read_text().splitlines() for c in line.split(",")}
        assert not cells & {"inf", "-inf", "nan"}, table


def test_every_json_writer_is_strict(here):
    """write_json / --json of non-finite numbers -> strict JSON, null with the reason under non_finite"""
    from stragglersim.io.results import write_json
    from stragglersim.studies.reports import Report, to_json

    data = {"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": -float("inf")}, "e": 2.5}
    write_json(here / "x.json", data)
    for text in ((here / "x.json").read_text(), to_json(Report(data, []))):
        parsed = json.loads(text, parse_constant=_refuse_constant)
        assert parsed["a"] is None and parsed["b"] == [1.0, None] and parsed["e"] == 2.5
        assert set(parsed["non_finite"]) == {"a", "b[1]", "c.d"}


def test_pdfs_are_byte_reproducible(capsys, here, monkeypatch):
    """plot of the same run at two different times -> byte-identical PDFs (no creation date)"""
    assert cli(capsys, "simulate", *RUN, "--out", "run", "--quiet")[0] == 0
    for epoch, out in (("1000000000", "a"), ("2000000000", "b")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)  # what matplotlib takes as the creation date
        assert cli(capsys, "plot", "run", "--out", out)[0] == 0
    pdfs = sorted(p.name for p in (here / "a").glob("*.pdf"))
    assert pdfs
    for name in pdfs:
        assert (here / "a" / name).read_bytes() == (here / "b" / name).read_bytes(), name


RAISED = [  # what a command raised -> (exit status, words of the line)
    (OSError(errno.ENOSPC, "No space left on device", "out/x.csv"), 1, ["out/x.csv", "disk full"]),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "out/x.csv"), 1, ["out/x.csv", "disk full"]),
    (PermissionError(errno.EACCES, "Permission denied", "out/x"), 1, ["out/x", "permission denied"]),
    (OSError(errno.EROFS, "Read-only file system", "out/x"), 1, ["out/x", "read-only"]),
    (OSError(errno.ENAMETOOLONG, "File name too long", "out/xx"), 2, ["out/xx", "name too long"]),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "f/sub"), 2, ["f/sub", "not a folder"]),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "sw/results.csv"), 2, ["sw/results.csv", "is a folder"]),
    (MemoryError(), 1, ["out of memory"]),
    (RecursionError("maximum recursion depth exceeded"), 2, ["nested too deeply"]),
    (json.JSONDecodeError("Expecting value", "{", 1), 2, ["corrupt", "JSONDecodeError"]),
    (zipfile.BadZipFile("File is not a zip file"), 2, ["corrupt", "BadZipFile"]),
    (EOFError("Ran out of input"), 2, ["corrupt", "EOFError"]),
]


@pytest.mark.parametrize(
    ("raised", "status", "words"), RAISED, ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None
)
def test_errors_at_the_boundary(capsys, monkeypatch, raised, status, words):
    """OSError (disk full, permission, bad path), MemoryError, RecursionError, corrupt file -> exit 1 or 2, one line"""
    from stragglersim.cli import commands

    def cmd(args):
        """predict, raising"""
        raise raised

    monkeypatch.setattr(commands, "cmd_predict", cmd)
    code, err = cli(capsys, "predict", "--latency", "constant:value=1", "--workers", "2")
    assert code == status
    assert_one_line(err, "stragglersim predict: error:", *words)


def test_file_size_limit_in_a_training_checkpoint(here):
    """a checkpoint write of a training run past a 16 KiB file size limit -> exit 1, one line, nothing left"""
    train = ["simulate", "--quiet", "--workers", "2", "--eval-every", "2", "--checkpoint-every", "2", "--steps", "6"]
    done = stragglersim(*train, "--out", "run", cwd=here, limit_bytes=16384)
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "disk full", "run.checkpoint")
    assert sorted(p.name for p in here.iterdir()) == ["file"]


def test_a_write_error_without_a_file_name_names_the_file_being_written(tmp_path):
    """A full disk fails in ``f.write``, whose OSError holds no name: the line names the open file
    of the innermost frame, or the frame's ``path``; with neither, 'a file'. Other errors: None."""
    from stragglersim.io.boundary import explain

    def write(target):
        with open(target, "w") as f:
            f.write("x")
            raise OSError(errno.ENOSPC, "No space left on device")

    def save(path):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    for call, argument, named in ((write, tmp_path / "r.csv", tmp_path / "r.csv"), (save, tmp_path / "s.json", None)):
        try:
            call(argument)
        except OSError as err:
            status, line = explain(err)
        assert status == 1 and line.startswith(f"{named or argument}: ") and "(disk full)" in line
    unnamed = OSError(errno.ENOSPC, "No space left on device")  # raised nowhere: no frame to look in
    assert explain(unnamed) == (1, "a file: no space left on the device (disk full)")
    assert explain(ValueError("a bug")) is None


def test_a_path_longer_than_the_file_system_allows_is_refused_before_any_work(tmp_path):
    from stragglersim.io.boundary import check_out_writable

    out = tmp_path.joinpath(*["d" * 200] * 21)  # every name fits, the whole path (4,200 bytes) does not
    with pytest.raises(InputError, match="the path is longer than the file system allows"):
        check_out_writable(out)


def test_a_missing_input_file_is_left_to_its_reader(tmp_path):
    from stragglersim.io.boundary import check_input_file

    assert check_input_file(tmp_path / "missing.csv", "--config ") is None  # the reader says it is missing
    with pytest.raises(InputError, match=r"is not a regular file \(a folder\)"):
        check_input_file(tmp_path, "--config ")
