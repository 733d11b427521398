"""The command line as a user meets it: outputs, one-line errors with exit status 2."""

import csv
import json
import subprocess
import sys

import pytest
from conftest import same_result_file
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig


def simulate(out, *extra):
    return main(["simulate", "--timing-only", "--quiet", "--out", str(out), *extra])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_simulate_writes_every_result_file(tmp_out):
    assert (
        simulate(tmp_out, "--strategy", "backup", "--workers", "4", "--backups", "2", "--steps", "30", "--seed", "3")
        == 0
    )
    files = ["columns.md", "config.toml", "gradients.csv", "summary.json", "updates.csv"]
    assert sorted(p.name for p in tmp_out.iterdir()) == files
    summary = json.loads((tmp_out / "summary.json").read_text())
    assert summary["updates"] == 30 and summary["workers"] == 4 and summary["backups"] == 2 and summary["seed"] == 3
    assert summary["semantics"] == "tf"
    updates = read_csv(tmp_out / "updates.csv")
    gradients = read_csv(tmp_out / "gradients.csv")
    assert len(updates) == 30 and float(updates[-1]["time"]) == summary["sim_time"]
    assert sum(r["fate"] == "applied" for r in gradients) == summary["gradients_applied"] == 120
    assert RunConfig.load(tmp_out / "config.toml").backups == 2


def test_same_seed_gives_identical_files(tmp_path):
    args = (
        "--strategy",
        "async",
        "--workers",
        "5",
        "--steps",
        "100",
        "--seed",
        "8",
        "--latency",
        "gamma:shape=2,scale=1",
    )
    simulate(tmp_path / "a", *args)
    simulate(tmp_path / "b", *args)
    for name in ("summary.json", "updates.csv", "gradients.csv", "config.toml"):
        assert same_result_file(tmp_path / "a" / name, tmp_path / "b" / name), name


def test_prints_a_summary(tmp_out, capsys):
    main(["simulate", "--timing-only", "--strategy", "sync", "--workers", "3", "--steps", "10", "--out", str(tmp_out)])
    out = capsys.readouterr().out
    assert "sync N=3 B=0" in out and "mean iteration time" in out and str(tmp_out / "summary.json") in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latency", "exponential:rat=1"], "unknown parameter 'rat'"),
        (["--latency", "exponential:rate="], "malformed parameter"),
        (["--strategy", "gossip"], "unknown strategy 'gossip'"),
        (["--workers", "0"], "--workers must be an integer >= 1, got 0"),
        (["--backups", "-1"], "--backups must be an integer >= 0, got -1"),
        (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
        (["--speed-factors", "1,2"], "2 factors given"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_out, capsys, args, message):
    assert simulate(tmp_out, *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not tmp_out.exists()


def test_argparse_errors_are_one_line_too(tmp_out, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--workers", "many", "--out", str(tmp_out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid int value: 'many'" in err


def test_refuses_to_overwrite_results_unless_asked(tmp_out, capsys):
    assert simulate(tmp_out, "--steps", "5") == 0
    before = (tmp_out / "summary.json").read_text()
    assert simulate(tmp_out, "--steps", "6") == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (tmp_out / "summary.json").read_text() == before
    assert simulate(tmp_out, "--steps", "6", "--overwrite") == 0
    assert json.loads((tmp_out / "summary.json").read_text())["updates"] == 6


def test_failed_write_leaves_nothing_behind(tmp_out, monkeypatch, capsys):
    import stragglersim.io.results as results

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(results, "_write_csv", broken)
    assert simulate(tmp_out, "--steps", "5") == 1  # the environment's fault: exit 1, one line
    assert capsys.readouterr().err.strip().endswith("disk full")
    assert not tmp_out.exists()
    assert list(tmp_out.parent.iterdir()) == []


def test_console_entry_points_and_no_jax_import(tmp_path):
    """``python -m stragglersim`` works, exits 2 on bad input without a traceback, and a
    timing-only run never imports JAX."""
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "stragglersim",
            "simulate",
            "--timing-only",
            "--latency",
            "nope:x=1",
            "--out",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "unknown latency family 'nope'" in bad.stderr
    code = (
        "import sys; from stragglersim.cli.main import main; "
        f"rc = main(['simulate', '--timing-only', '--quiet', '--steps', '20', '--out', {str(tmp_path / 'ok')!r}]); "
        "assert rc == 0; assert not any(m == 'jax' or m.startswith('jax.') for m in sys.modules), 'jax imported'"
    )
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_out_refuses_the_current_folder_those_above_it_and_the_folders_of_inputs(tmp_path, monkeypatch, capsys):
    """Results replace their folder as a whole, so --out may not be a folder the user stands in or
    reads from: one line, exit status 2, and nothing touched (no OSError traceback)."""
    work = tmp_path / "project" / "work"
    (work / "traces").mkdir(parents=True)
    trace = work / "traces" / "t.csv"
    trace.write_text(
        "worker,step,duration\n" + "".join(f"{w},{s},{1 + (w * s) % 3}\n" for w in range(3) for s in range(20))
    )
    monkeypatch.chdir(work)
    timing = ["--timing-only", "--quiet", "--workers", "2", "--steps", "5", "--overwrite"]
    here, inputs = "is the current folder or one above it", "holds the input traces/t.csv"
    refused = [
        (".", here, ["simulate", *timing]),
        ("", here, ["simulate", *timing]),
        (str(tmp_path / "project"), here, ["simulate", *timing]),
        ("traces", inputs, ["replay", "traces/t.csv", *timing]),
        ("traces", inputs, ["simulate", *timing, "--latency", "trace:traces/t.csv"]),
        (str(work / "traces"), inputs, ["fit", "traces/t.csv", "--overwrite"]),
        (".", here, ["sweep", "--timing-only", "--workers", "2", "--steps", "5"]),
        ("..", here, ["reproduce", "--quick", "--overwrite"]),
    ]
    for out, message, argv in refused:
        assert main([*argv, "--out", out]) == 2, (out, argv)
        err = capsys.readouterr().err
        assert f"--out {out or '.'}: {message}" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in work.rglob("*")) == ["t.csv", "traces"]  # nothing written, nothing removed
    assert main(["simulate", *timing, "--out", "runs/a"]) == 0
    assert main(["compare", "runs", "--out", "runs", "--overwrite"]) == 2
    assert "--out runs: holds the input runs" in capsys.readouterr().err


def test_overwrite_never_deletes_a_folder_that_is_not_earlier_results(tmp_path, capsys):
    """--overwrite replaces a run folder, not a repository or a user's documents; file outputs never
    replace a file of their inputs."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "thesis.tex").write_text("years of work")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("mine")
    run = ["simulate", "--timing-only", "--steps", "5", "--quiet", "--overwrite", "--out"]
    for folder in (repo, docs):
        assert main([*run, str(folder)]) == 2
        assert "not stragglersim results" in capsys.readouterr().err
    assert (repo / "thesis.tex").read_text() == "years of work" and (repo / ".git").is_dir()
    assert (docs / "notes.txt").read_text() == "mine"
    assert main([*run, str(tmp_path / "r")]) == 0 and main([*run, str(tmp_path / "r")]) == 0  # results: replaced
    before = (tmp_path / "r" / "updates.csv").read_text()
    out = str(tmp_path / "r" / "updates.csv")
    assert main(["timeline", str(tmp_path / "r"), "--out", out, "--overwrite"]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert (tmp_path / "r" / "updates.csv").read_text() == before
    (tmp_path / "r" / "updates.csv").write_text("")
    assert main(["plot", str(tmp_path / "r"), "--out", str(tmp_path / "figs")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_runs_failed_and_sigterm_give_their_exit_status_and_one_line(tmp_path, monkeypatch, capsys):
    import signal

    from stragglersim.cli import commands
    from stragglersim.io.errors import RunsFailed, Stopped

    def failed(args):
        """run a sweep"""
        raise RunsFailed("1 of 4 runs failed, e.g. sync-N4-B0-s0: RuntimeError: boom (see failures.txt)")

    def stopped(args):
        """simulate one run"""
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(commands, "cmd_sweep", failed)
    monkeypatch.setattr(commands, "cmd_simulate", stopped)
    assert main(["sweep", "--timing-only", "--out", str(tmp_path / "sw")]) == 1
    assert capsys.readouterr().err == "stragglersim sweep: error: 1 of 4 runs failed, e.g. sync-N4-B0-s0: " + (
        "RuntimeError: boom (see failures.txt)\n"
    )
    assert simulate(tmp_path / "run") == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "stragglersim simulate: stopped by SIGTERM; nothing was written\n"


def test_a_full_disk_with_a_checkpoint_kept_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    import errno

    from stragglersim.cli import commands

    out = tmp_path / "run"

    def disk_full(args):
        """simulate one run"""
        (tmp_path / "run.checkpoint").mkdir()
        (tmp_path / "run.checkpoint" / "state.json").write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "metrics.csv"))

    monkeypatch.setattr(commands, "cmd_simulate", disk_full)
    assert simulate(out) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"stragglersim simulate: error: {out / 'metrics.csv'}: no space left on the device (disk full)",
        f"stragglersim simulate: the checkpoint {out}.checkpoint is kept; "
        f"`stragglersim simulate --resume {out}.checkpoint --out {out}` continues",
    ]


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    from stragglersim.cli import commands

    def bug(args):
        """simulate one run"""
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(commands, "cmd_simulate", bug)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        simulate(tmp_path / "run")


def test_main_runs_off_the_main_thread(tmp_path):
    """A thread (a notebook's, a server's) cannot set a signal handler: main then leaves SIGTERM alone."""
    import threading

    status = []
    thread = threading.Thread(target=lambda: status.append(simulate(tmp_path / "run", "--steps", "5")))
    thread.start()
    thread.join()
    assert status == [0] and (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "--latency", "exponential:rate=1", "--workers", "0"], "--workers must be >= 1 and --backups >= 0"),
        (["measure", "--workers", "2", "--steps", "0"], "--workers, --steps and --batch-size must be integers >= 1"),
        (["measure", "--workers", "2", "--steps", "3", "--model", "resnet"], "--model: unknown model 'resnet'"),
        (["measure", "--workers", "2", "--steps", "3", "--dataset", "mnist"], "measure uses a bundled or generated"),
    ],
)
def test_predict_and_measure_refuse_bad_sizes_before_any_work(tmp_path, capsys, argv, message):
    if argv[0] == "measure":
        argv = [*argv, "--out", str(tmp_path / "t.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "t.csv").exists()


def test_the_printed_account_of_a_training_run(tmp_path):
    import stragglersim
    from stragglersim.studies.reports import describe_run

    s = stragglersim.simulate(strategy="async", workers=3, steps=5, timing_only=True).summary
    assert f"  staleness: mean {s['mean_staleness']:.4g}, max {s['max_staleness']}" in describe_run(s, tmp_path)
    trained = {**s, "model": "mlp", "dataset": "digits", "device": "cpu", "final_test_loss": 0.25}
    trained |= {"final_test_accuracy": 0.9, "gradients_per_update": 2.5, "effective_batch_size": 80.0}
    trained |= {"target_accuracy": 0.8, "target_loss": None, "updates_to_target": 4, "time_to_target": 12.5}
    lines = describe_run(trained, tmp_path).splitlines()
    assert lines[-4:] == [
        "  mlp on digits (cpu): test loss 0.25, test accuracy 0.9000",
        "  gradients averaged per update: mean 2.5 (effective batch 80 examples)",
        "  target: reached after 4 updates, 12.5 s simulated",
        f"  results: {tmp_path / 'summary.json'}",
    ]
    unreached = {**trained, "final_test_accuracy": None, "time_to_target": None, "gradients_per_update": 3}
    assert describe_run(unreached, tmp_path).splitlines()[-3:-1] == [
        "  mlp on digits (cpu): test loss 0.25",
        "  target: not reached",
    ]
    untargeted = {**trained, "target_accuracy": None, "target_loss": None}  # no target: no target line
    assert describe_run(untargeted, tmp_path).splitlines()[-2:] == [
        "  gradients averaged per update: mean 2.5 (effective batch 80 examples)",
        f"  results: {tmp_path / 'summary.json'}",
    ]
