"""Hostile values: each is refused before any work with one line naming the option (exit 2), and
the legitimate big runs are not refused by the memory estimate (``stragglersim.core.limits``)."""

import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace

import pytest
from stragglersim.cli.main import main
from stragglersim.cli.options import worded
from stragglersim.core import limits
from stragglersim.core.assemble import check
from stragglersim.core.config import RunConfig
from stragglersim.io import memory

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
    message = r"workers 10000000 steps 100: needs about \d+ GB .*this machine has 24 GB"  # the library names fields
    with pytest.raises(ValueError, match=message) as refused:
        limits.check_memory(config, memory=int(24 * GB))
    assert worded(refused.value).startswith("--workers 10000000 --steps 100: needs about")  # the CLI, flags


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
        "import re, sys\nfrom stragglersim.cli.main import main\nstatus = main(sys.argv[1:])\n"
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


def _sparse(path, head: bytes, size: int):
    """A file of ``size`` bytes that holds ``head`` and then zeros, without taking the disk (truncate)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


@pytest.mark.parametrize("command", [["fit", "{trace}", "--out", "{out}"], ["import", "{trace}", "--out", "{out}.csv"]])
def test_a_trace_larger_than_memory_is_refused_unread(command, tmp_path, monkeypatch, capsys):
    """8 GB trace on a 24 GB machine -> exit 2 at once, 'needs about 36 GB ... (this machine has 24 GB)'"""
    monkeypatch.setattr(memory, "machine_memory", lambda: int(24 * GB))
    trace = _sparse(tmp_path / "huge.csv", b"worker,step,duration,start\n", 8 << 30)
    argv = [a.replace("{trace}", str(trace)).replace("{out}", str(tmp_path / "f7")) for a in command]
    with _deadline(10):
        status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{trace}: reading a trace of 8.59 GB needs about 38.8 GB" in err and "this machine has 24 GB" in err


@pytest.mark.parametrize(("head", "line"), [(b"", 1), (b"worker,step,duration,start\n", 2)])
def test_a_trace_without_line_breaks_is_refused_at_its_first_long_line(head, line, tmp_path, monkeypatch, capsys):
    """1 GB CSV without line breaks (fit, --latency trace:FILE) -> exit 2 within seconds, 'FILE:LINE: a line longer'"""
    monkeypatch.setattr(memory, "machine_memory", lambda: int(64 * GB))  # the size would pass: the line must not
    trace = _sparse(tmp_path / "flat.csv", head, 1 << 30)
    for argv in (["fit", str(trace), "--out", str(tmp_path / "f")], [*TIMING, "--latency", f"trace:{trace}"]):
        with _deadline(10):
            status = main([a.replace("{out}", str(tmp_path / "o")) for a in argv])
        err = capsys.readouterr().err
        assert status == 2 and f"{trace}:{line}: a line longer than 1,048,576 bytes" in err, err


def test_a_gzipped_trace_is_decompressed_no_further_than_memory_allows(tmp_path, monkeypatch, capsys):
    """gzip of 20 MB (a bomb) on a machine that can read 10 MB of it -> exit 2, 'needs at least' the estimate"""
    import gzip

    budget = 10e6
    monkeypatch.setattr(memory, "machine_memory", lambda: int(memory.BASE + budget * memory.TRACE_BYTES["chrome"]))
    trace = tmp_path / "bomb.json.gz"
    trace.write_bytes(gzip.compress(b"[" + b" " * 20_000_000 + b"]"))
    status = main(["import", str(trace), "--format", "chrome", "--out", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err
    assert status == 2 and f"{trace}: reading a trace of 0.01 GB needs at least" in err, err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--workers", "100000", "--steps", "5"], "--workers 100000: more than"),
        (["--workers", "2", "--steps", "5", "--batch-size", "1000000000"], "--batch-size 1000000000: needs about"),
        (["--workers", "2", "--steps", "1000000000"], "--steps 1000000000 --batch-size 32: needs about"),
    ],
)
def test_measure_refuses_before_a_process_starts(args, named, tmp_path, monkeypatch, capsys):
    """measure --workers 100000, --batch-size 1e9, --steps 1e9 -> exit 2, one line, no process started"""
    import stragglersim.training.measure

    def started(*args, **kwargs):
        pytest.fail("measure started its processes")

    monkeypatch.setattr(stragglersim.training.measure, "measure", started)
    status = main(["measure", *args, "--out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and named in err, err
    assert "contention" in err if "more than" in named else "this machine has" in err


def test_a_second_sigterm_while_measure_shuts_down_ends_every_child(monkeypatch):
    """SIGTERM, and another while measure joins its children -> every child ended, one Stopped, none ignored"""
    import os
    import threading

    import stragglersim.training.measure
    from stragglersim.cli.main import _stop
    from stragglersim.io.errors import Stopped

    ended = []

    class Child:  # a started process that runs until ended; joining it brings a second SIGTERM
        def __init__(self, target, args):
            self.pid, self.rank = None, args[0]

        def start(self):
            self.pid = 1

        def join(self, timeout=None):
            os.kill(os.getpid(), signal.SIGTERM)

        def is_alive(self):
            return self.rank not in ended

        def terminate(self):
            ended.append(self.rank)

    class Results:
        def get(self, timeout):
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(5)  # the handler raises Stopped here
            pytest.fail("SIGTERM did not stop measure")

    class Context:
        Process, Queue = Child, Results

        def Barrier(self, n):  # noqa: N802 (multiprocessing's name)
            return None

    monkeypatch.setattr(stragglersim.training.measure.mp, "get_context", lambda method: Context())
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with pytest.raises(Stopped):
            stragglersim.training.measure.measure(3, 1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ended == [0, 1, 2]


def test_a_latency_whose_largest_draw_passes_the_clock_is_refused(capsys):
    """pareto alpha=0.01 over 200 x 16 -> exit 2 naming --latency (tail too heavy); alpha=1.5, sigma=2 -> accepted"""
    argv = ["simulate", "--timing-only", "--steps", "200", "--latency", "pareto:alpha=0.01,scale=1", "--out", "x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--latency pareto:alpha=0.01,scale=1: the tail is too heavy for a run of 200 updates of 16 workers" in err
    for latency in ("pareto:alpha=1.5,scale=1", "lognormal:mu=0,sigma=2"):  # 100 workers x 10,000 steps
        check(RunConfig(strategy="sync", workers=100, steps=10_000, timing_only=True, latency=latency))


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["simulate", "--timing-only", "--steps", "5", "--quiet", "--latency", "lognormal:mu=0,sigma=50"], 0),
        (["predict", "--workers", "4", "--latency", "lognormal:mu=700,sigma=10"], 2),
        (["simulate", "--steps", "5", "--lr", "1e300"], 2),
    ],
)
def test_overflowing_moments_print_no_runtime_warning(args, status, tmp_path):
    """lognormal sigma=50, lognormal mu=700 (predict), --lr 1e300 -> no RuntimeWarning: nothing or one line"""
    out = ["--out", str(tmp_path / "o")] if args[0] == "simulate" else []
    done = subprocess.run([sys.executable, "-m", "stragglersim", *args, *out], capture_output=True, text=True)
    assert done.returncode == status, done.stderr
    assert len(done.stderr.splitlines()) == status // 2 and "Warning" not in done.stderr, done.stderr


def test_a_checkpoint_period_of_zero_says_it_must_be_positive(tmp_path, capsys):
    """--checkpoint-every 0 --steps 10 -> exit 2, '--checkpoint-every '0': must be a finite number > 0'"""
    assert main(["simulate", "--steps", "10", "--checkpoint-every", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint-every '0': must be a finite number > 0" in capsys.readouterr().err


def test_periods_of_an_async_run_count_its_updates_as_p_per_computation():
    """async, 4 workers, 100 updates of about 1/4 s -> --eval-every 1e-9s is 2.5e10 evaluations: refused"""
    config = RunConfig(strategy="async", workers=4, steps=100, eval_every="1e-9s")
    with pytest.raises(ValueError, match=r"eval_every 1e-9s: about 2\.5e\+10 evaluations in a run of about 25 simu"):
        check(config)
    check(replace(config, eval_every="0.5s"))


def test_a_straggler_mixture_that_never_straggles_is_not_refused_for_its_factor():
    """straggler p=0 factor=1e300 -> accepted (no draw is ever slowed); p=1e-9 -> refused"""
    latency = "straggler:base=exponential(rate=1),p={p},factor=1e300"
    check(RunConfig(workers=4, steps=10, timing_only=True, latency=latency.format(p=0)))
    with pytest.raises(ValueError, match="beyond what the simulated clock holds"):
        check(RunConfig(workers=4, steps=10, timing_only=True, latency=latency.format(p=1e-9)))
