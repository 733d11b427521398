"""Measured traces: formats, exact replay, bootstrap, clean errors on bad files."""

import gzip
import json

import numpy as np
import pytest
from conftest import raises_as_cli, run
from stragglersim.cli.main import main
from stragglersim.cli.options import worded
from stragglersim.core.assemble import check
from stragglersim.core.config import RunConfig
from stragglersim.io.errors import InputError
from stragglersim.latency import parse_latency
from stragglersim.latency.traces import Trace, read_trace

PAI = "traces/pai-mini-batch-time/job_3_norm.csv"


def write_trace(path, durations: np.ndarray, start=False):
    """A canonical trace from a (workers, steps) array of durations."""
    k, s = durations.shape
    w, st = np.repeat(np.arange(k), s), np.tile(np.arange(s), k)
    trace = Trace(w, st, durations.reshape(-1), np.arange(k * s, dtype=float) if start else None, "test")
    trace.write_csv(path)
    return path


def test_canonical_round_trip(tmp_path):
    d = np.random.default_rng(0).lognormal(size=(3, 7))
    for start in (False, True):
        t = read_trace(write_trace(tmp_path / f"t{start}.csv", d, start))
        assert t.n_workers == 3 and len(t.duration) == 21
        np.testing.assert_array_equal(np.stack(t.per_worker()), d)
        assert (t.start is not None) == start


def test_rows_in_any_order_and_columns_in_any_order(tmp_path):
    (tmp_path / "t.csv").write_text("duration,step,worker\n2.0,1,1\n1.0,0,1\n3.0,0,0\n")
    t = read_trace(tmp_path / "t.csv")
    assert [d.tolist() for d in t.per_worker()] == [[3.0], [1.0, 2.0]]


def test_pai_layout_with_a_time_scale():
    t = read_trace(PAI, "pai", time_scale=0.001)
    assert t.n_workers == 10  # job 3 numbers its workers from 1; they become 0..9
    raw = np.loadtxt(PAI, delimiter=",", skiprows=1, usecols=(1, 3, 4))
    first = raw[raw[:, 0] == raw[:, 0].min()]
    np.testing.assert_allclose(t.per_worker()[0], first[np.argsort(first[:, 1]), 2] * 0.001)


def chrome_events(pid, steps, nested=True):
    events = [{"ph": "M", "name": "process_name", "pid": pid}]
    for i, dur in enumerate(steps):
        ts = 1000.0 * i * 10
        events.append({"ph": "X", "name": f"ProfilerStep#{i}", "pid": pid, "tid": 1, "ts": ts, "dur": dur})
        if nested:  # an inner span of the same step must not replace the step's own
            events.append({"ph": "X", "name": "aten::mm", "pid": pid, "tid": 1, "ts": ts + 1, "dur": dur / 3})
    return events


def test_chrome_pytorch_profiler_gzipped_and_several_files(tmp_path):
    (tmp_path / "w0.json").write_text(json.dumps({"traceEvents": chrome_events(7, [1000, 3000])}))
    with gzip.open(tmp_path / "w1.json.gz", "wt") as f:
        json.dump(chrome_events(9, [2000, 2500]), f)
    out = tmp_path / "trace.csv"
    assert (
        main(
            ["import", str(tmp_path / "w0.json"), str(tmp_path / "w1.json.gz"), "--format", "chrome", "--out", str(out)]
        )
        == 0
    )
    t = read_trace(out)
    assert [d.tolist() for d in t.per_worker()] == [[0.001, 0.003], [0.002, 0.0025]]
    assert t.start is not None and t.start[1] == pytest.approx(0.01)


def test_chrome_jax_step_trace_annotations(tmp_path):
    """jax.profiler.StepTraceAnnotation events carry args.step_num; the outermost span counts."""
    events = []
    for step, dur in enumerate([500.0, 700.0]):
        events.append(
            {
                "ph": "X",
                "name": "train",
                "pid": 1,
                "tid": 2,
                "ts": step * 1000.0,
                "dur": dur,
                "args": {"step_num": str(step)},
            }
        )
        events.append(
            {
                "ph": "X",
                "name": "jit_step",
                "pid": 1,
                "tid": 2,
                "ts": step * 1000.0 + 5,
                "dur": dur - 50,
                "args": {"step_num": str(step)},
            }
        )
    (tmp_path / "perfetto_trace.json").write_text(json.dumps(events))
    t = read_trace(tmp_path / "perfetto_trace.json", "chrome")
    assert t.per_worker()[0].tolist() == [0.0005, 0.0007]


def test_replay_is_exact_under_cancel(tmp_path):
    """Iteration k takes the N-th smallest of the workers' k-th durations."""
    d = np.random.default_rng(1).gamma(2.0, size=(6, 50))
    path = write_trace(tmp_path / "t.csv", d)
    config, log = run(
        strategy="backup",
        workers=4,
        backups=2,
        semantics="cancel",
        latency=f"trace:{path}",
        steps=None,
        timing_only=True,
    )
    expected = np.sort(d, axis=0)[3]  # 4th smallest of 6, per step
    assert len(log.updates) == 50 and log.exhausted
    np.testing.assert_allclose(log.iteration_times(), expected, rtol=1e-12)
    assert log.summary(config)["mean_iteration_time"] == pytest.approx(expected.mean(), rel=1e-12)


def test_replay_with_fixed_steps_and_speed_factors(tmp_path):
    d = np.full((2, 10), 2.0)
    path = write_trace(tmp_path / "t.csv", d)
    _, log = run(strategy="sync", workers=2, latency=f"trace:{path}", speed_factors="1,3", steps=4)
    assert [u.time for u in log.updates] == [6.0, 12.0, 18.0, 24.0] and not log.exhausted


def test_empirical_bootstrap_pooled_and_per_worker(tmp_path):
    d = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    path = write_trace(tmp_path / "t.csv", d)
    pooled = parse_latency(f"empirical:{path}")
    assert pooled.mean == pytest.approx(11.0) and set(pooled.sample(np.random.default_rng(0), 200)) == set(d.ravel())
    assert pooled.var == pytest.approx(np.var(d))  # of the recorded sample: population variance
    np.testing.assert_array_equal(pooled.cdf([0.5, 2.0, 2.5, 30.0]), [0.0, 2 / 6, 2 / 6, 1.0])
    _, log = run(strategy="sync", workers=2, latency=f"empirical-per-worker:{path}", steps=50)
    for g in log.gradients:
        assert g.end - g.start in set(d[g.worker])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "t.csv: empty trace file"),
        ("worker,step\n0,0\n", "t.csv:1: missing column 'duration'"),
        ("worker,step,duration\n", "t.csv: no data rows after the header"),
        ("worker,step,duration\n0,0,1.0\n0,1,abc\n", "t.csv:3: could not convert string 'abc' to float64"),
        ("worker,step,duration\n0,0,1.0\n0,1,-2\n", "t.csv:3: duration must be a finite number > 0, got -2"),
        ("worker,step,duration\n0,0,0\n", "t.csv:2: duration must be a finite number > 0, got 0"),
        ("worker,step,duration\n0,0,1\n0,1,nan\n", "t.csv:3: duration must be a finite number > 0, got nan"),
        ("worker,step,duration\n0,0,1\n0,1,inf\n", "t.csv:3: duration must be a finite number > 0, got inf"),
        ("worker,step,duration\n0,0,1\n1,0,1\n0,0,2\n", "t.csv:4: duplicate (worker 0, step 0), first seen at line 2"),
        ("worker,step,duration\n0,0,1\n0,1\n", "t.csv:3: wrong number of fields (the header has 3)"),
        ("worker,step,duration\n0.5,0,1\n", "t.csv:2: worker must be an integer >= 0, got 0.5"),
        ("worker,step,duration\n0,0,1\n\n0,-1,1\n", "t.csv:4: step must be an integer >= 0, got -1"),
        ("worker,step,duration,start\n0,0,1,0\n0,1,1,inf\n", "t.csv:3: start must be a finite number, got inf"),
    ],
)
def test_bad_canonical_traces(tmp_path, capsys, content, message):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(InputError) as err:
        read_trace(tmp_path / "t.csv")
    assert message in worded(err.value)
    rc = main(["replay", str(tmp_path / "t.csv"), "--timing-only", "--workers", "1", "--out", str(tmp_path / "r")])
    printed = capsys.readouterr().err
    assert rc == 2 and message in printed and printed.count("\n") == 1 and "Traceback" not in printed
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"traceEvents": [', "malformed JSON at line 1 column"),
        ('{"events": 3}', "expected a JSON list of trace events"),
        ('[{"ph": "X", "name": "ProfilerStep#1", "ts": 0}]', "record 0 (ProfilerStep#1): needs numeric 'ts' and 'dur'"),
        ('[{"ph": "X", "name": "ProfilerStep#1", "ts": 0, "dur": -5}]', "record 0 (ProfilerStep#1): duration must be"),
        ('[{"ph": "X", "name": "other", "ts": 0, "dur": 5}]', "no step events"),
        ('[{"ph": "X", "name": "t", "ts": 0, "dur": 5, "args": {"step_num": "one"}}]', "step_num is not an integer"),
    ],
)
def test_bad_chrome_traces(tmp_path, capsys, content, message):
    (tmp_path / "t.json").write_text(content)
    rc = main(["import", str(tmp_path / "t.json"), "--format", "chrome", "--out", str(tmp_path / "o.csv")])
    printed = capsys.readouterr().err
    assert rc == 2 and message in printed and str(tmp_path / "t.json") in printed and printed.count("\n") == 1
    assert not (tmp_path / "o.csv").exists()


def test_a_trace_used_up_before_the_first_update_is_an_input_error(tmp_path):
    """k-batch-sync with K = 2: worker 0 asks for its second duration before worker 1's first ends."""
    from stragglersim.training.runner import execute

    (tmp_path / "t.csv").write_text("worker,step,duration\n0,0,1\n1,0,10\n")
    config = RunConfig(strategy="k-batch-sync", workers=2, k=2, latency=f"trace:{tmp_path / 't.csv'}", timing_only=True)
    with raises_as_cli(r"--latency trace:.*t.csv: the trace was used up before the first update"):
        execute(config)


def test_errors_for_missing_files_and_too_few_workers(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.csv"), "--timing-only", "--out", str(tmp_path / "r")]) == 2
    assert "nope.csv: cannot read trace: No such file or directory" in capsys.readouterr().err
    path = write_trace(tmp_path / "t.csv", np.ones((3, 4)))
    with raises_as_cli(r"the trace has 3 workers but the run needs 5 \(N \+ B\)"):
        check(RunConfig(strategy="backup", workers=4, backups=1, latency=f"trace:{path}"))
    assert main(["import", PAI, "--format", "pai", "--time-scale", "-1", "--out", str(tmp_path / "x.csv")]) == 2
    assert "--time-scale must be a finite number > 0" in capsys.readouterr().err
    assert main(["import", PAI, "--format", "xml", "--out", str(tmp_path / "x.csv")]) == 2
    assert "unknown trace format 'xml'" in capsys.readouterr().err


def test_a_pai_file_without_its_columns_and_a_long_line_are_named(tmp_path):
    (tmp_path / "p.csv").write_text(",worker,gpu,time\n0,0,20,1\n")
    with raises_as_cli(r"p.csv:1: missing column 'batch_time_norm' \(PAI layout: ,worker,gpu"):
        read_trace(tmp_path / "p.csv", "pai")
    # a line a little over 1 MiB that ends in the next block read: refused at its end, line 2
    (tmp_path / "t.csv").write_text("worker,step,duration\n" + "1" * ((1 << 20) + 100) + "\n0,1,1\n")
    with raises_as_cli(r"t.csv:2: a line longer than 1,048,576 bytes"):
        read_trace(tmp_path / "t.csv")


def test_pai_exact_repeats_are_read_once_but_conflicts_are_errors(tmp_path):
    t = read_trace("traces/pai-mini-batch-time/job_2_norm.csv", "pai", 0.001)  # repeats one row verbatim
    assert t.n_workers == 10
    (tmp_path / "p.csv").write_text(",worker,gpu,time,batch_time_norm\n0,0,20,1,500\n1,0,20,1,500\n2,0,20,1,600\n")
    with raises_as_cli(r"p.csv:4: duplicate \(worker 0, step 1\), first seen at line 2"):
        read_trace(tmp_path / "p.csv", "pai")


def test_measure_records_real_concurrent_jax_steps(tmp_path, capsys):
    out = tmp_path / "measured.csv"
    assert main(["measure", "--workers", "2", "--steps", "15", "--model", "logreg", "--out", str(out)]) == 0
    t = read_trace(out)
    assert t.n_workers == 2 and len(t.duration) == 30 and t.start is not None
    assert (t.duration > 0).all() and (t.duration < 5).all()
    assert "2 workers x 15 steps of logreg on digits" in capsys.readouterr().out
    assert main(["measure", "--workers", "2", "--steps", "15", "--out", str(out)]) == 2  # exists: refuses
    assert "pass --overwrite" in capsys.readouterr().err


def test_measure_shuts_down_children_never_started_from_any_thread():
    """An interrupted start leaves Process objects never started: they are dropped, not joined;
    off the main thread (where no signal handler may be set) SIGTERM is left as it is."""
    import multiprocessing as mp
    import signal
    import threading

    from stragglersim.training.measure import _shut_down

    before = signal.getsignal(signal.SIGTERM)
    procs = [mp.get_context("spawn").Process(target=print)]
    _shut_down(procs, wait=0)
    assert procs == [] and signal.getsignal(signal.SIGTERM) is before
    procs, errors = [mp.get_context("spawn").Process(target=print)], []

    def off_main():
        try:
            _shut_down(procs, wait=0)
        except Exception as err:  # ValueError: signal only works in main thread
            errors.append(err)

    thread = threading.Thread(target=off_main)
    thread.start()
    thread.join()
    assert errors == [] and procs == []


def test_measure_kills_a_child_that_outlives_sigterm():
    from stragglersim.training.measure import _shut_down

    class Stubborn:  # started, and deaf to SIGTERM
        pid, signals = 1, []

        def join(self, timeout=None):
            pass

        def is_alive(self):
            return "kill" not in self.signals

        def terminate(self):
            self.signals.append("term")

        def kill(self):
            self.signals.append("kill")

    child = Stubborn()
    _shut_down([child], wait=0)
    assert child.signals == ["term", "kill"]


def test_the_readme_paths_name_the_shipped_traces_from_any_folder_but_a_users_file_comes_first(
    tmp_path, monkeypatch, capsys
):
    """``traces/NAME`` works outside a checkout (the installed package data); a file of that name
    in the working folder, and any other relative path, is the user's own."""
    from stragglersim.latency.traces import shipped_trace

    monkeypatch.chdir(tmp_path)
    assert shipped_trace("pai-mini-batch-time/LICENSE").is_file()
    assert read_trace(PAI, "pai", 0.001).n_workers == 10
    write_trace(tmp_path / "mine.csv", np.full((2, 5), 0.5))
    write_trace(tmp_path / "traces" / "measured-cpu-4x-cnn-digits.csv", np.full((3, 4), 2.0))
    assert read_trace("traces/measured-cpu-4x-cnn-digits.csv").duration.tolist() == [2.0] * 12
    args = ["simulate", "--timing-only", "--workers", "2", "--latency", "trace:mine.csv", "--out", "run"]
    assert main(args) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["sim_time"] == 2.5
    assert main(["replay", "traces/nothing.csv", "--workers", "2", "--timing-only", "--out", "r2"]) == 2
    assert "traces/nothing.csv: cannot read trace" in capsys.readouterr().err


def test_replay_stream_gives_a_workers_durations_in_order_then_is_used_up(tmp_path):
    from stragglersim.io.errors import TraceExhausted

    path = write_trace(tmp_path / "t.csv", np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]))
    draw = parse_latency(f"trace:{path}").stream_for(1, None, 2.0)
    assert [draw(), draw(), draw()] == [20.0, 40.0, 60.0] and draw.drawn == 3
    with pytest.raises(TraceExhausted, match="worker's trace used up after 3 computations"):
        draw()


def test_replay_takes_a_config_file_but_not_its_latency(tmp_path, capsys):
    path = write_trace(tmp_path / "t.csv", np.full((2, 10), 2.0))
    RunConfig(strategy="sync", workers=2, steps=3, latency="exponential:rate=1", timing_only=True).save(
        tmp_path / "c.toml"
    )
    out = tmp_path / "r"
    assert main(["replay", str(path), "--config", str(tmp_path / "c.toml"), "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 3 and summary["sim_time"] == 6.0  # the trace's 2 s per computation
    assert RunConfig.load(out / "config.toml").latency == f"trace:{path}"
    argv = ["replay", str(path), "--workers", "2", "--resume", "x.checkpoint", "--out", str(tmp_path / "r2")]
    assert main(argv) == 2
    assert "--resume: resume a replay with simulate --resume CHECKPOINT" in capsys.readouterr().err


def test_read_trace_names_a_missing_file_and_a_folder(tmp_path):
    """The library call, not only the command: a missing trace or a folder is a one-line error naming it."""
    from stragglersim.latency.traces import read_trace

    with raises_as_cli(r"nowhere/t\.csv: cannot read trace: No such file or directory"):
        read_trace("/nowhere/t.csv")
    with raises_as_cli(rf"{tmp_path}: is a directory, not a trace file"):
        read_trace(tmp_path)
