"""Hostile values: each is refused before any work with one line naming the option (exit 2), and
the legitimate big runs are not refused by the memory estimate (``stragglersim.limits``)."""

import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace

import pytest
from stragglersim import limits
from stragglersim.assemble import check
from stragglersim.cli import main
from stragglersim.config import RunConfig

LIMIT_S = 60  # a refusal takes well under a second; a run that never ends is stopped here
RUN = ["simulate", "--out", "{out}"]
TIMING = [*RUN, "--timing-only", "--steps", "5"]
HOSTILE = [  # (command line, the option the message must name)
    ([*RUN, "--steps", "10", "--checkpoint-every", "infs", "--eval-every", "1s"], "--checkpoint-every"),
    ([*RUN, "--steps", "10", "--checkpoint-every", "1e308s", "--eval-every", "1e-308s"], "--checkpoint-every"),
    ([*RUN, "--steps", "10", "--eval-every", "1e-300s"], "--eval-every"),
    ([*RUN, "--steps", "10", "--eval-every", "1e-6s"], "--eval-every"),
    ([*TIMING, "--fail-slow", "normal=1e-300,slow=1,factor=2"], "--fail-slow"),
    ([*TIMING, "--fail-slow", "normal=1e-4,slow=1e-4,factor=2"], "--fail-slow"),
    ([*TIMING, "--fail-slow", "normal=1,slow=1,factor=1e300"], "--fail-slow"),
    ([*TIMING, "--failures", "rate=1e300,downtime=1"], "--failures"),
    ([*TIMING, "--failures", "rate=50,downtime=1", "--latency", "constant:value=1"], "--failures"),
    ([*TIMING, "--failures", "rate=1,downtime=1e300"], "--failures"),
    ([*TIMING, "--latency", "constant:value=1e308"], "--latency"),
    ([*TIMING, "--latency", "exponential:rate=1e-300"], "--latency"),
    ([*TIMING, "--comm-latency", "1e308"], "--comm-latency"),
    ([*TIMING, "--param-bytes", "1e300", "--bandwidth", "1e-300"], "--param-bytes"),
    ([*RUN, "--timing-only", "--steps", "1000000000000"], "--steps 1000000000000"),
    ([*RUN, "--steps", "1000000000000"], "--steps 1000000000000"),
    ([*RUN, "--steps", "5", "--batch-size", "1000000000"], "--batch-size 1000000000"),
    ([*RUN, "--steps", "5", "--hidden", "100000000"], "--hidden 100000000"),
    ([*RUN, "--steps", "5", "--dataset", "teacher-student", "--dataset-size", "100000000000"], "--dataset-size"),
    ([*RUN, "--timing-only", "--steps", "100", "--workers", "10000000"], "--workers 10000000"),
    (["sweep", "--out", "{out}", "--timing-only", "--steps", "3", "--seeds", "0-100000000"], "--seeds"),
    (["sweep", "--out", "{out}", "--timing-only", "--steps", "3", "--seeds", "0-999", "--workers", "1-2000"], "runs"),
    (["sweep", "--out", "{out}", "--timing-only", "--steps", "3", "--strategy", ","], "--strategy"),
    (["predict", "--latency", "constant:value=1e308", "--workers", "4"], "--latency"),
    (["predict", "--latency", "exponential:rate=1e-308", "--workers", "4", "--backups", "2"], "--latency"),
    (["predict", "--latency", "exponential:rate=1", "--workers", "10000000000000"], "--workers"),
]


@contextmanager
def _deadline(seconds: int):
    """Stop the call (TimeoutError) if it runs past ``seconds``: the attack was a run without end."""

    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(("argv", "named"), HOSTILE, ids=[" ".join(a) for a, _ in HOSTILE])
def test_hostile_value_is_refused_in_one_line(argv, named, tmp_path, capsys):
    """hostile value (inf, 1e308, 1e-300 s periods, huge sizes, absurd fault rates) -> exit 2, one line naming it"""
    argv = [a.replace("{out}", str(tmp_path / "out")) for a in argv]
    with _deadline(LIMIT_S):
        status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert named in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--eval-every", "1e-300s", "--steps", "10"],
        ["--timing-only", "--steps", "5", "--fail-slow", "normal=1e-300,slow=1e-300,factor=2"],
        ["--timing-only", "--steps", "5", "--failures", "rate=1e300,downtime=1"],
    ],
)
def test_runs_without_end_exit_at_once_from_the_shell(args, tmp_path):
    """--eval-every 1e-300s, --fail-slow normal=1e-300, --failures rate=1e300 -> exit 2 within seconds, no traceback"""
    argv = [sys.executable, "-m", "stragglersim", "simulate", "--out", str(tmp_path / "o"), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)}: still running after {LIMIT_S} s")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("stragglersim simulate: error: --"), done.stderr


GB = 1e9
LEGITIMATE = [  # big runs that must not be refused on an 8 GB machine (issue 19's among them)
    RunConfig(strategy="sync", workers=10_000, steps=1_000, timing_only=True),
    RunConfig(strategy="sync", workers=10_000, steps=1_000, timing_only=True, log_gradients="none"),
    RunConfig(workers=30_000, steps=100, timing_only=True),
    RunConfig(strategy="async", workers=30_000, steps=100, timing_only=True),
    RunConfig(strategy="sync", workers=100_000, steps=1_000, timing_only=True, log_gradients="none"),
    RunConfig(workers=16, steps=10_000, hidden="1024,1024"),
    RunConfig(workers=16, steps=1_000, dataset="teacher-student", dataset_size=1_000_000),
]


@pytest.mark.parametrize("config", LEGITIMATE, ids=lambda c: f"{c.strategy}-{c.workers}x{c.steps}-{c.log_gradients}")
def test_legitimate_big_runs_are_not_refused(config, monkeypatch):
    """10,000 x 1,000 fast path, 30,000 x 100 engine, 100,000 x 1,000 fast path -> accepted on 8 GB"""
    monkeypatch.setattr(limits, "machine_memory", lambda: int(8 * GB))
    check(config)  # validation, the clock, the faults and the memory estimate
    assert sum(limits.memory_parts(config).values()) < 8 * GB


def test_the_refusal_says_the_estimate_and_the_machine():
    """--workers 10000000 --steps 100 on 24 GB -> 'needs about N GB of memory ... (this machine has 24 GB)'"""
    config = RunConfig(workers=10_000_000, steps=100, timing_only=True)
    message = r"--workers 10000000 --steps 100: needs about \d+ GB .*this machine has 24 GB"
    with pytest.raises(ValueError, match=message):
        limits.check_memory(config, memory=int(24 * GB))


def test_short_periods_that_can_finish_are_kept():
    """--eval-every 1s and 0.01s, fail-slow of 10 s episodes, failures once a minute -> accepted"""
    base = RunConfig(steps=200)
    for config in (
        replace(base, eval_every="1s", checkpoint_every="5s"),
        replace(base, eval_every="0.01s"),
        replace(base, timing_only=True, fail_slow="normal=10,slow=10,factor=3"),
        replace(base, timing_only=True, failures="rate=0.0167,downtime=5"),
    ):
        check(config)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["--strategy", "sync", "--workers", "1000", "--steps", "1000"],
        ["--workers", "3000", "--steps", "300"],
        ["--strategy", "sync", "--workers", "20000", "--steps", "300", "--log-gradients", "none"],
    ],
)
def test_the_estimate_is_within_a_factor_two_of_the_peak_memory(args, tmp_path):
    """measured peak RSS of a run -> the estimate is within a factor of 2 of it"""
    code = (
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec (pytest's, with JAX)
        "import re, sys\nfrom stragglersim.cli import main\nstatus = main(sys.argv[1:])\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())\n"
        "print(int(hwm[1]) * 1024)\nsys.exit(status)"
    )
    argv = ["simulate", "--timing-only", "--quiet", "--out", str(tmp_path / "o"), *args]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.split()[-1])
    fields = dict(zip(args[::2], args[1::2], strict=True))
    config = RunConfig(
        strategy=fields.get("--strategy", "backup"),
        workers=int(fields["--workers"]),
        steps=int(fields["--steps"]),
        timing_only=True,
        log_gradients=fields.get("--log-gradients", "all"),
    )
    estimate = sum(limits.memory_parts(config).values())
    assert peak / 2 < estimate < peak * 2, f"estimate {estimate / GB:.3g} GB, measured {peak / GB:.3g} GB"
