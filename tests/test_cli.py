"""The command line as a user meets it: outputs, one-line errors with exit status 2."""

import csv
import json
import subprocess
import sys

import pytest
from stragglersim.cli import main
from stragglersim.config import RunConfig


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
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


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
    import stragglersim.results as results

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
        "import sys; from stragglersim.cli import main; "
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
