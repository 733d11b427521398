"""Help and error messages as a user meets them (issue 16, item 5)."""

import pytest
from stragglersim.cli.main import build_parser, main

PAI = "traces/pai-mini-batch-time/job_1_norm.csv"
MEASURED = "traces/measured-cpu-4x-cnn-digits.csv"


def exit_status(argv) -> int:
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def test_bare_command_prints_usage(capsys):
    assert exit_status([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: stragglersim") and "simulate" in err and "give a command" in err


@pytest.mark.parametrize("flag", ["--worker", "--step", "--time"])
def test_an_abbreviated_long_option_is_refused(tmp_path, capsys, flag):
    argv = ["simulate", "--timing-only", "--quiet", flag, "4", "--steps", "3", "--out", str(tmp_path / "r")]
    assert exit_status(argv) == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_config_given_with_an_equals_sign_is_read(tmp_path):
    (tmp_path / "run.toml").write_text('strategy = "sync"\nworkers = 2\nsteps = 4\ntiming_only = true\n')
    assert main(["simulate", f"--config={tmp_path / 'run.toml'}", "--quiet", "--out", str(tmp_path / "r")]) == 0
    assert '"updates": 4' in (tmp_path / "r" / "summary.json").read_text()


def help_of(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return sub.format_help()


def test_help_texts():
    plot = help_of("plot")
    assert "RUN_OR_SWEEP [RUN_OR_SWEEP ...]" in plot and "--out DIR" in plot and "DIR DIR" not in plot
    assert "layout of SRC" in help_of("import") and "TRACE" not in help_of("import")
    assert "One track per worker" in help_of("timeline")  # a description, not the help line again
    measure = help_of("measure")
    assert "file to write" in measure and "replace the file" in measure
    assert "Ts simulated seconds" in help_of("simulate")
    for command in ("simulate", "predict", "validate"):
        text = " ".join(help_of(command).split("--backups")[-1].split())
        assert text.split("--")[0].strip().endswith("(default: 0)"), command


def test_a_pai_file_read_as_csv_gets_a_hint(tmp_path, capsys):
    argv = ["replay", PAI, "--workers", "3", "--timing-only", "--quiet", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("missing column 'step' (it looks like a PAI file: pass --format pai)") and "\n" not in err


def test_replay_names_its_positional_trace(tmp_path, capsys):
    assert main(["replay", MEASURED, "--workers", "8", "--timing-only", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"error: TRACE {MEASURED}: the trace has 4 workers" in err and "--latency" not in err


def test_checkpoints_with_timing_only_are_refused_by_name(tmp_path, capsys):
    argv = ["simulate", "--timing-only", "--checkpoint-every", "5s", "--steps", "5", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--checkpoint-every 5s: a --timing-only run keeps no checkpoints" in err and "--eval-every" not in err


def test_import_writes_short_numbers(tmp_path):
    out = tmp_path / "t.csv"
    assert main(["import", PAI, "--format", "pai", "--time-scale", "0.001", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[:2] == ["worker,step,duration", "0,1,0.476"]
    assert max(len(line.split(",")[2]) for line in lines[1:]) <= 6  # normalised 0-1000 at 0.001 s: 3 decimals
