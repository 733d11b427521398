"""The command line as a whole under random argument vectors: drawn from the parser's own
options (valid and invalid values, random subcommands), a call ends with exit status 0, 1 or 2,
never a traceback, and never leaves a partial output folder (``--out`` is complete or absent).

Runs stay tiny: every command that takes them gets ``--timing-only --steps 5 --quiet`` last, a
sweep ``--jobs 1``; ``reproduce`` and ``measure`` (minutes, real processes) are left out, as are
``--scheduler`` (a Dask cluster) and ``--jobs`` (processes).
"""

import argparse
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stragglersim.cli.main import build_parser, main

SKIPPED_COMMANDS = ("reproduce", "measure")
SKIPPED_OPTIONS = {"-h", "--help", "--version", "--scheduler", "--jobs", "--steps", "--out", "--timing-only", "--quiet"}
FORCED = {"--timing-only": [], "--steps": ["5"], "--quiet": []}  # appended where the command has them
VALUES = [  # valid and invalid values of every kind of option
    *("0", "1", "2", "3", "-1", "0.5", "1e9", "nan", "inf", "", "abc", "1,2", "0-2", "2-0", "5s", "20", "none"),
    *("auto", "all", "sync", "async", "backup", "k-sync", "adaptive-backup", "tf", "drop", "cancel", "csv", "pai"),
    *("chrome", "exponential:rate=1", "shifted-exponential:shift=1,rate=2", "gamma:shape=-1", "logreg", "mlp"),
    *("digits", "1:3", "0@1-2", "rate=0.1,downtime=1", "normal=5,slow=1,factor=3", "nnz", "strategy=sync"),
    *("trace:traces/measured-cpu-4x-cnn-digits.csv", "empirical:traces/measured-cpu-4x-cnn-digits.csv"),
]
PATHS = [  # for positionals and path options (relative to the repository root, where pytest runs)
    "traces/measured-cpu-4x-cnn-digits.csv",
    "traces/pai-mini-batch-time/job_1_norm.csv",
    "traces/README.md",
    "traces",
    "no/such/file.csv",
    "{run}",
    "{tmp}/run.toml",
    "{tmp}/bad.toml",
    "{tmp}/grid.toml",
    "{run}/updates.csv",
]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {name: p for name, p in commands.items() if name not in SKIPPED_COMMANDS}


COMMANDS = _subparsers()


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not set(a.option_strings) & SKIPPED_OPTIONS]


GOOD = {  # a valid value of the options without a usable default, and of the positionals
    "workers": "2",
    "latency": "exponential:rate=1",
    "trace": "traces/measured-cpu-4x-cnn-digits.csv",
    "sources": "traces/measured-cpu-4x-cnn-digits.csv",
    "run": "{run}",
    "dirs": "{run}",
}


def _value(draw, action: argparse.Action, pool: list[str]) -> str:
    """Half the time a valid value (the option's default, or GOOD's), else any of ``pool``."""
    default = action.default if action.default not in (None, "", [], False) else None
    good = GOOD.get(action.dest, None if default is None else str(default))
    if good is not None and draw(st.booleans()):
        return good
    return draw(st.sampled_from(pool))


RARELY = st.integers(0, 19).map(lambda i: i == 13)  # not an end of the range, which hypothesis favours


@st.composite
def argv(draw):
    """A subcommand, its positionals (paths), its required options and a random subset of the
    others, with valid or invalid values; rarely a required one left out."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    parser = COMMANDS[name]
    words = [name]
    for action in parser._actions:
        if not action.option_strings and not draw(RARELY):  # a positional (rarely missing)
            words += [_value(draw, action, PATHS) for _ in range(draw(st.integers(1, 2)))]
    options = _options(parser)
    chosen = draw(st.lists(st.sampled_from(options), max_size=5, unique_by=lambda a: a.dest)) if options else []
    chosen += [a for a in options if a.required and a not in chosen and not draw(RARELY)]
    for action in chosen:
        words.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            path_like = action.type is Path or action.dest in ("config", "resume", "grid")
            words.append(_value(draw, action, PATHS if path_like else VALUES))
    flags = {s for a in parser._actions for s in a.option_strings}
    for flag, value in FORCED.items():
        if flag in flags:
            words += [flag, *value]
    if "--out" in flags and not draw(RARELY):  # rarely left out: a usage error
        words += ["--out", "{out}"]
    if name == "sweep":
        words += ["--jobs", "1"]
    if name == "replay" and not {"--workers", "--backups"} & set(words):  # the shipped trace has 4 workers
        words += ["--workers", "3"]
    return words


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A finished run folder and a few TOML files for the vectors to point at."""
    tmp = tmp_path_factory.mktemp("fuzz-inputs")
    run = ["simulate", "--timing-only", "--quiet", "--workers", "2", "--steps", "4", "--out", str(tmp / "run")]
    assert main(run) == 0
    (tmp / "run.toml").write_text('strategy = "sync"\nworkers = 2\nsteps = 4\ntiming_only = true\n')
    (tmp / "bad.toml").write_text("workers = [\n")
    (tmp / "grid.toml").write_text('strategy = "backup"\nworkers = 2\nbackups = [0, 1]\nsteps = 4\n')
    return tmp


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=argv())
def test_random_command_lines_end_cleanly(words, inputs, tmp_path_factory):
    where = tmp_path_factory.mktemp("fuzz-out")
    out = where / "out"
    vector = [w.format(run=inputs / "run", tmp=inputs, out=out) for w in words]
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            status = main(vector)
        except SystemExit as stop:
            status = stop.code
    err = stderr.getvalue()
    assert status in (0, 1, 2), (vector, status, err)
    assert "Traceback" not in err, (vector, err)
    if status == 2:
        assert err.strip() and (err.count("\n") == 1 or err.startswith("usage:")), (vector, err)
    leftovers = [p.name for p in where.iterdir() if p.name.startswith(".")]
    assert not leftovers, (vector, leftovers)
    if status == 2:
        assert not out.exists(), (vector, sorted(p.name for p in out.iterdir()) if out.is_dir() else "a file")
    if out.is_dir() and vector[0] in ("simulate", "replay"):  # complete: every file of a run
        assert (out / "summary.json").exists() and (out / "config.toml").exists(), vector
    if out.is_dir() and vector[0] == "sweep":
        assert (out / "results.csv").exists(), vector
