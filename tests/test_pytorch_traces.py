"""What-if analysis of plain PyTorch profiler traces, on real traces of real jobs.

The traces in ``traces/pytorch`` were made by ``traces/pytorch/make_traces.py`` (torch, gloo, 4 processes
on the CPU): DDP, DP with an explicit all-reduce, FSDP and DP 2 x PP 2, each with rank 1 sleeping 30 ms
in every step's forward pass (``-slow1``) and with no straggler (``-none``). Nothing in them was
relabelled. The oracle is the measured effect: the mean ``ProfilerStep`` duration with the straggler
over the one without.
"""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from stragglersim.cli.main import main
from stragglersim.io.errors import InputError
from stragglersim.llm import trace as llm_trace
from stragglersim.llm import whatif
from stragglersim.llm.profile import convert_profiles
from stragglersim.llm.profile_write import write_meta, write_profile, write_table
from test_llm_profile import same, table

TRACES = Path(__file__).resolve().parents[1] / "traces" / "pytorch"
LAYOUT = {"ddp": (4, 1), "allreduce": (4, 1), "fsdp": (4, 1), "dp2pp2": (2, 2)}  # (dp, pp)


def files(job: str) -> list[Path]:
    return sorted((TRACES / job).glob("rank*.json.gz"))


def step_time(job: str) -> float:
    """The mean ProfilerStep duration over every rank and step (microseconds)."""
    durations = [
        ev["dur"]
        for path in files(job)
        for ev in json.load(gzip.open(path))["traceEvents"]
        if ev.get("name", "").startswith("ProfilerStep#")
    ]
    return float(np.mean(durations))


_ANALYSED: dict[str, dict] = {}


def analysed(job: str, tmp_path_factory) -> dict:
    """whatif's results of a shipped job (import-ops' table and meta, read back as whatif reads them)."""
    if job not in _ANALYSED:
        dp, pp = LAYOUT[job.split("-")[0]]
        out = tmp_path_factory.mktemp(job)
        found = convert_profiles(files(job), dp_size=dp, pp_size=pp)
        write_table(found, out / "trace.parquet")
        write_meta(out / "meta.yaml", dp_size=dp, pp_size=pp, schedule=found.attrs["schedule"])
        trace = llm_trace.load(out / "trace.parquet", llm_trace.read_meta(out / "meta.yaml"))
        _ANALYSED[job] = whatif.analyse(trace)[0]
    return _ANALYSED[job]


@pytest.mark.parametrize("job", ["ddp", "allreduce", "dp2pp2"])
def test_the_slowed_rank_and_stage_are_named_first_with_s_of_the_measured_size(job, tmp_path_factory):
    r = analysed(f"{job}-slow1", tmp_path_factory)
    assert max(r["by_dp_rank"], key=r["by_dp_rank"].get) == "1"  # rank 1 = DP rank 1, stage 0
    assert max(r["by_stage"], key=r["by_stage"].get) == "0"
    assert (r["top_workers"][0]["dp_rank"], r["top_workers"][0]["stage"]) == (1, 0)
    effect = step_time(f"{job}-slow1") / step_time(f"{job}-none")
    assert r["slowdown"] == pytest.approx(effect, rel=0.25)
    calm = analysed(f"{job}-none", tmp_path_factory)
    assert calm["slowdown"] < r["slowdown"] - 0.1


def test_the_iteration_time_is_each_ranks_step_and_the_span_is_beside_it(tmp_path_factory):
    r = analysed("ddp-slow1", tmp_path_factory)
    times = r["step_time"]
    assert np.mean(times["measured"]) == pytest.approx(step_time("ddp-slow1") * 1e-6, rel=0.02)
    assert np.mean(times["span"]) > np.mean(times["measured"])
    assert r["replay_error"]["mean"] < 0.15


def test_a_ddp_replica_dropped_by_a_backup_skips_its_buckets(tmp_path_factory):
    r = analysed("ddp-slow1", tmp_path_factory)
    assert r["backups_apply"]
    b0, b1 = r["backups"][:2]
    assert b1["samples_dropped"] == 0.25 and b1["mean_step_time"] < 0.85 * b0["mean_step_time"]


def test_fsdp_on_gloo_reads_and_names_the_slowed_rank(tmp_path_factory):
    r = analysed("fsdp-slow1", tmp_path_factory)
    assert max(r["by_dp_rank"], key=r["by_dp_rank"].get) == "1"
    assert r["slowdown"] > analysed("fsdp-none", tmp_path_factory)["slowdown"]


def test_files_of_two_runs_are_refused_naming_them():
    mixed = files("ddp-slow1")[:2] + files("ddp-none")[2:]
    with pytest.raises(InputError, match="not one run") as err:
        convert_profiles(mixed, dp_size=4, pp_size=1)
    assert "\n" not in str(err.value) and "ddp-" in str(err.value)
    assert "trust_clocks" in str(err.value)


def test_another_process_group_layout_is_refused(tmp_path):
    copies = _copies(tmp_path, "dp2pp2-slow1")
    doc = json.load(gzip.open(copies[3]))
    doc["distributedInfo"]["pg_config"][1]["ranks"] = [1, 3]
    copies[3].write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(InputError, match="process group 2 holds ranks"):
        convert_profiles(copies, dp_size=2, pp_size=2)


def test_a_trace_without_step_markers_says_schedule_and_the_fix(tmp_path):
    copies = _copies(tmp_path, "ddp-none")
    doc = json.load(gzip.open(copies[0]))
    doc["traceEvents"] = [ev for ev in doc["traceEvents"] if not ev.get("name", "").startswith("ProfilerStep")]
    copies[0].write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(InputError, match=r"only with a schedule=.*prof\.step\(\)") as err:
        convert_profiles(copies, dp_size=4, pp_size=1)
    assert "\n" not in str(err.value)


def test_a_named_step_range_reads_as_the_profiler_steps(tmp_path):
    copies = _copies(tmp_path, "allreduce-slow1")
    for path in copies:
        doc = json.load(gzip.open(path))
        for ev in doc["traceEvents"]:
            if ev.get("name", "").startswith("ProfilerStep#"):
                ev["name"] = "train_step"
        path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    want = convert_profiles(files("allreduce-slow1"), dp_size=4, pp_size=1)
    got = convert_profiles(copies, dp_size=4, pp_size=1, step_range="train_step")
    assert sorted(got["step"].unique()) == list(range(10))
    np.testing.assert_allclose(got["duration"], want["duration"])
    with pytest.raises(InputError, match="no range named 'step'"):
        convert_profiles(copies, dp_size=4, pp_size=1, step_range="step")


def test_megatron_names_on_a_cpu_trace_are_read_from_host_ranges(tmp_path):
    want = table()
    written = write_profile(want, tmp_path, dp_size=2, pp_size=2)
    for path in written:
        doc = json.loads(path.read_text())
        doc["traceEvents"] = [
            {**ev, "cat": "user_annotation"} for ev in doc["traceEvents"] if ev["cat"] == "gpu_user_annotation"
        ] + [ev for ev in doc["traceEvents"] if ev["cat"] == "user_annotation"]
        path.write_text(json.dumps(doc))
    same(convert_profiles(written, dp_size=2, pp_size=2), want)


def test_the_commands_write_an_observed_meta_and_report_the_span(tmp_path, capsys):
    out = tmp_path / "trace-dp2pp2.parquet"
    sources = [str(p) for p in files("dp2pp2-slow1")]
    assert main(["import-ops", *sources, "--dp", "2", "--pp", "2", "--out", str(out)]) == 0
    assert yaml.safe_load((tmp_path / "meta-dp2pp2.yaml").read_text())["schedule"] == "observed"
    mixed = [*sources[:2], *(str(p) for p in files("dp2pp2-none")[2:])]
    assert main(["import-ops", *mixed, "--dp", "2", "--pp", "2", "--out", str(tmp_path / "x.csv")]) == 2
    assert "--trust-clocks" in capsys.readouterr().err
    assert main(["whatif", str(out), "--out", str(tmp_path / "wi"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "each rank's step" in printed and "DP 1 stage 0" in printed


def _copies(tmp_path: Path, job: str) -> list[Path]:
    return [Path(shutil.copy(p, tmp_path / p.name)) for p in files(job)]


def _ddp_like(folder: Path, forward=(10.0, 30.0), backward=10.0, transfer=2.0, optimizer=1.0, steps=3, **change):
    """Per-rank traces of a DDP-like job as the CPU profiler writes them (milliseconds): forward, backward
    ending in the launch of one bucket all-reduce that runs on a gloo thread until every rank's bucket is
    in, then a wait, then the optimizer 0.1 ms after the all-reduce ends."""
    paths = []
    ready = max(forward) + backward
    for rank, f in enumerate(forward):
        events = []
        for step in range(steps):
            t0 = 100.0 * step
            done = t0 + ready + transfer  # the all-reduce ends on every rank at once

            def ev(name, cat, start, dur, tid=1, t0=t0):
                return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": start * 1e3, "dur": dur * 1e3}

            end = done + 0.1 + optimizer
            events += [
                ev(f"ProfilerStep#{step + 2}", "user_annotation", t0, end - t0),
                ev("aten::linear", "cpu_op", t0, f),
                ev("autograd::engine::evaluate_function: AddmmBackward0", "cpu_op", t0 + f, backward - 0.5),
                ev(change.get("launch", "c10d::allreduce_"), "cpu_op", t0 + f + backward - 0.5, 0.5),
                ev("gloo:all_reduce", "user_annotation", t0 + f + backward, done - t0 - f - backward, tid=2),
                ev("Optimizer.step#SGD.step", "user_annotation", done + 0.1, optimizer),
                ev("aten::add_", "cpu_op", done + 0.1, optimizer),
            ]
            events += change.get("extra", lambda rank, step, ev: [])(rank, step, ev)
        doc = {"distributedInfo": {"backend": "gloo", "rank": rank, "world_size": len(forward)}, "traceEvents": events}
        path = folder / f"rank{rank}.json"
        path.write_text(json.dumps(doc))
        paths.append(path)
    return paths


def _analysed(paths, tmp_path, dp, pp=1) -> dict:
    found = convert_profiles(paths, dp_size=dp, pp_size=pp)
    write_table(found, tmp_path / "t.parquet")
    write_meta(tmp_path / "m.yaml", dp_size=dp, pp_size=pp, schedule=found.attrs["schedule"])
    return whatif.analyse(llm_trace.load(tmp_path / "t.parquet", llm_trace.read_meta(tmp_path / "m.yaml")))[0]


def test_an_overlapped_all_reduce_and_its_wait_replay_to_the_hand_computed_step(tmp_path):
    """Forward 10 and 30 ms, backward 10, all-reduce 2 after the last bucket is in, optimizer 1: with no
    delay the step is 30 + 10 + 2 + 1 = 43 ms, ideal (forward 20 on both) 33 ms; the wait is no compute."""
    r = _analysed(_ddp_like(tmp_path), tmp_path, dp=2)
    assert r["t_ori"] == pytest.approx(0.043) and r["t_ideal"] == pytest.approx(0.033)
    assert r["slowdown"] == pytest.approx(43 / 33)
    assert r["by_dp_rank"] == pytest.approx({"0": 1.0, "1": 43 / 33})
    assert r["step_time"]["measured"] == pytest.approx([0.0431] * 3) and r["replay_error"]["max"] < 1e-9
    assert r["backups"][1]["mean_step_time"] == pytest.approx(0.023)  # rank 0 alone: 10 + 10 + 2 + 1
    assert r["backups"][1]["samples_dropped"] == 0.5


def test_a_collective_with_no_recorded_execution_blocks_until_the_next_event(tmp_path):
    paths = _ddp_like(tmp_path)
    for path in paths:
        doc = json.loads(path.read_text())
        doc["traceEvents"] = [ev for ev in doc["traceEvents"] if ev["name"] != "gloo:all_reduce"]
        path.write_text(json.dumps(doc))
    found = convert_profiles(paths, dp_size=2, pp_size=1)
    reduce = found[found.optype == "separate-grads-all-reduce"]
    assert len(reduce) == 6  # launch to the optimizer's first event: 42 + 0.1 - 39.5 ms on rank 0
    np.testing.assert_allclose(sorted(reduce.duration.unique()), [0.0026, 0.0226], atol=1e-9)


def test_launches_without_their_executions_and_steps_that_differ_are_refused(tmp_path):
    twice = _ddp_like(tmp_path, extra=lambda rank, step, ev: [ev("c10d::allreduce_", "cpu_op", 100.0 * step + 35, 0)])
    with pytest.raises(InputError, match=r"launches 2 collective\(s\) but 1 ran"):
        convert_profiles(twice, dp_size=2, pp_size=1)
    odd = _without_optimizer(_ddp_like(tmp_path), rank=1, steps=range(3))
    with pytest.raises(InputError, match="rank1.json: step 2 runs .*the steps differ"):
        convert_profiles(odd, dp_size=2, pp_size=1)
    threads = _ddp_like(tmp_path, extra=lambda rank, step, ev: [ev("ProfilerStep#9", "user_annotation", 500, 1, 3)])
    with pytest.raises(InputError, match="the step ranges lie on 2 threads"):
        convert_profiles(threads, dp_size=2, pp_size=1)


def test_world_sizes_that_differ_and_a_folder_without_traces_are_refused(tmp_path):
    from stragglersim.llm.runs import check_same_run

    windows = {Path("a.json"): {1: (0.0, 1.0)}, Path("b.json"): {1: (0.0, 1.0)}}
    with pytest.raises(InputError, match="b.json and a.json: world sizes 8 and 4"):
        check_same_run(windows, {Path("a.json"): {"world_size": 4}, Path("b.json"): {"world_size": 8}})
    (tmp_path / "empty").mkdir()
    assert (
        main(["import-ops", str(tmp_path / "empty"), "--dp", "1", "--pp", "1", "--out", str(tmp_path / "o.csv")]) == 2
    )


def test_megatron_named_and_plain_ranks_other_steps_and_an_unknown_schedule_are_refused(tmp_path):
    plain = _ddp_like(tmp_path, steps=2)
    named = write_profile(table(dp=2, pp=1, steps=(2, 3)), tmp_path / "named", dp_size=2, pp_size=1)
    with pytest.raises(InputError, match="has Megatron-named op ranges but .*rank0.json has none"):
        convert_profiles([plain[0], named[1]], dp_size=2, pp_size=1, trust_clocks=True)
    doc = json.loads(plain[1].read_text())
    for ev in doc["traceEvents"]:
        ev["name"] = ev["name"].replace("ProfilerStep#3", "ProfilerStep#7")
    plain[1].write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"step\(s\) \[3, 7\] in only one of them"):
        convert_profiles(plain, dp_size=2, pp_size=1)
    meta = tmp_path / "meta.yaml"
    meta.write_text("dp_size: 2\npp_size: 1\nschedule: gpipe\n")
    with pytest.raises(InputError, match="schedule must be one of megatron, observed"):
        llm_trace.read_meta(meta)


def test_a_plain_gpu_trace_is_refused_saying_what_is_read(tmp_path):
    paths = _ddp_like(
        tmp_path, extra=lambda rank, step, ev: [ev("ncclDevKernel_AllReduce_Sum_f32_RING_LL", "kernel", 1, 1, 9)]
    )
    with pytest.raises(InputError, match="a GPU trace with no Megatron-named ranges: .*CPU side only"):
        convert_profiles(paths, dp_size=2, pp_size=1)


def test_an_all_reduce_before_backward_is_not_of_gradients_and_backups_ignore_it(tmp_path):
    def loss_all_reduce(rank, step, ev):  # launched inside the forward's event, run on another gloo thread
        return [
            ev("c10d::allreduce_", "cpu_op", 100.0 * step + 2, 0.1),
            ev("gloo:all_reduce", "user_annotation", 100.0 * step + 2.2, 0.3, 3),
        ]

    paths = _ddp_like(tmp_path, extra=loss_all_reduce)
    found = convert_profiles(paths, dp_size=2, pp_size=1)
    assert (found.optype == "dp-all-reduce").sum() == 6 and (found.optype == "separate-grads-all-reduce").sum() == 6
    r = _analysed(paths, tmp_path, dp=2)
    assert r["backups"][1]["mean_step_time"] == pytest.approx(0.023)  # the bucket decides, as without it


def test_a_pipeline_layout_given_to_a_job_without_sends_is_refused():
    with pytest.raises(InputError, match="stage 0 neither sends nor receives.*check --dp and --pp"):
        convert_profiles(files("ddp-slow1"), dp_size=2, pp_size=2)
    with pytest.raises(InputError, match="the steps differ .*check --dp and --pp"):
        convert_profiles(files("dp2pp2-slow1"), dp_size=4, pp_size=1)


def test_leading_warm_up_steps_that_differ_are_left_out_and_later_ones_refused(tmp_path, capsys):
    paths = _without_optimizer(_ddp_like(tmp_path, steps=4), rank=1, steps=[0])  # a warm-up: no optimizer step
    found = convert_profiles(paths, dp_size=2, pp_size=1)
    assert sorted(found.step.unique()) == [3, 4, 5] and found.attrs["left_out"] == [2]
    assert main(["import-ops", *map(str, paths), "--dp", "2", "--pp", "1", "--out", str(tmp_path / "t.csv")]) == 0
    assert "left out warm-up step(s) [2]" in capsys.readouterr().out

    later = _without_optimizer(_ddp_like(tmp_path, steps=4), rank=1, steps=[2])
    with pytest.raises(InputError, match="the steps differ"):
        convert_profiles(later, dp_size=2, pp_size=1)


def test_an_event_one_rank_adds_to_each_step_joins_the_event_before_it(tmp_path):
    def logging(rank, step, ev):  # rank 0 reads the loss (loss.item()) while it waits for the all-reduce
        return [ev("aten::item", "cpu_op", 100.0 * step + 20.05, 0.05)] if rank == 0 else []

    r = _analysed(_ddp_like(tmp_path, extra=logging), tmp_path, dp=2)
    assert r["t_ori"] == pytest.approx(0.043) and r["t_ideal"] == pytest.approx(0.03305)  # its 0.1 ms is compute

    def broadcast(rank, step, ev):
        t = 100.0 * step + 20.05
        return [ev("c10d::broadcast_", "cpu_op", t, 0.05), ev("gloo:broadcast", "user_annotation", t, 0.1, 3)] * (
            1 - rank
        )

    different = _ddp_like(tmp_path, extra=broadcast)
    with pytest.raises(InputError, match="the steps differ"):  # a collective of its own: not folded
        convert_profiles(different, dp_size=2, pp_size=1)


def _without_optimizer(paths: list[Path], rank: int, steps) -> list[Path]:
    """The traces with ``rank``'s Optimizer.step range left out of the given steps (100 ms apart)."""
    doc = json.loads(paths[rank].read_text())
    doc["traceEvents"] = [
        ev for ev in doc["traceEvents"] if not (ev["name"].startswith("Optimizer") and int(ev["ts"] // 1e5) in steps)
    ]
    paths[rank].write_text(json.dumps(doc))
    return paths


def test_a_warm_up_in_the_second_step_leaves_out_the_first_two_and_tp_is_refused(tmp_path):
    paths = _without_optimizer(_ddp_like(tmp_path, steps=5), rank=0, steps=[1])  # DDP rebuilds its buckets in step 1
    assert convert_profiles(paths, dp_size=2, pp_size=1).attrs["left_out"] == [2, 3]
    with pytest.raises(InputError, match="--tp and --cp must be 1"):
        convert_profiles(files("ddp-slow1"), dp_size=2, pp_size=1, tp_size=2)


def test_a_replica_dropped_at_the_first_bucket_is_not_waited_for_at_the_second(tmp_path):
    """Two buckets: one launched mid-backward, one at its end. With one backup the slow rank 1 is dropped
    at the first bucket, and the second goes on without it: rank 0's 10 + 10 + 2 + 1 = 23 ms, not 43."""

    def early_bucket(rank, step, ev):  # launched 5 ms into backward, inside its event, as DDP's hooks do
        t0, f = 100.0 * step, (10.0, 30.0)[rank]
        done = t0 + 30.0 + 5.1 + 2.0  # when the slow rank's bucket is in, plus the transfer
        return [
            ev("c10d::allreduce_", "cpu_op", t0 + f + 5, 0.1),
            ev("gloo:all_reduce", "user_annotation", t0 + f + 5.1, done - t0 - f - 5.1, 3),
        ]

    r = _analysed(_ddp_like(tmp_path, extra=early_bucket), tmp_path, dp=2)
    assert r["t_ori"] == pytest.approx(0.043)
    assert r["backups"][1]["mean_step_time"] == pytest.approx(0.023) and r["backups"][1]["samples_dropped"] == 0.5
