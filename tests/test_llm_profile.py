"""Per-rank PyTorch profiler traces -> the op-level table: a table written as the traces the profiler
would write reads back as itself, ranks come from the files, and bad files are one-line errors."""

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from stragglersim.cli.main import main
from stragglersim.io.errors import InputError
from stragglersim.llm import trace as llm_trace
from stragglersim.llm.profile import COLUMNS, convert_profiles
from stragglersim.llm.profile_write import write_profile

ST = Path(__file__).resolve().parents[1] / "traces" / "llm-whatif" / "trace-ST.parquet"
KEY = ["dp_rank", "stage", "step", "optype", "seq_id"]
STAGE_OPS = {  # a 1F1B schedule of two micro-batches on two stages
    0: ["params-all-gather", "forward-compute", "forward-send", "forward-compute", "forward-send", "backward-recv"]
    + ["backward-compute", "backward-recv", "backward-compute", "gc", "embedding-grads-all-reduce"]
    + ["grads-reduce-scatter", "optimizer-clip-main-grad", "optimizer"],
    1: ["params-all-gather", "forward-recv", "forward-compute", "backward-compute", "backward-send", "forward-recv"]
    + ["forward-compute", "backward-compute", "backward-send", "gc", "embedding-grads-all-reduce"]
    + ["grads-reduce-scatter", "optimizer-clip-main-grad", "optimizer"],
}


def table(dp=2, pp=2, steps=(3, 4), tp=1, spacing=1.0) -> pd.DataFrame:
    """A hand-made op table: every op a distinct duration, 1 ms gaps, steps ``spacing`` seconds apart (or
    back to back); ids counted as the schema says."""
    rows = []
    for dp_rank in range(dp):
        for stage in range(pp):
            t = 0.0002 * (dp_rank + stage)  # rank (0, 0) starts the first step at 0
            for step in steps:
                t = max(t, spacing * (step - steps[0]))
                seen = Counter()
                for i, optype in enumerate(STAGE_OPS[stage % 2]):
                    duration = 0.0 if optype == "gc" else 0.01 + 0.001 * i + 0.0001 * dp_rank
                    compute = optype.endswith("-compute")
                    comm = optype in ("params-all-gather", "grads-reduce-scatter")
                    rows.append(
                        (dp_rank, stage, tp * (dp_rank + dp * stage), step, optype, t, duration, seen[optype])
                        + (0 if compute or comm else -1, stage if compute else -1)
                        + (seen[optype] if compute else 0 if optype == "gc" else -1,)
                    )
                    seen[optype] += 1
                    t += duration + 0.001
    return pd.DataFrame(rows, columns=list(COLUMNS))


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal rows after sorting, times to 1e-9 s."""
    assert list(got.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in got.dtypes.items() if c not in ("optype",)} == {
        c: "float64" if c in ("start_ts", "duration") else "int64" for c in COLUMNS if c != "optype"
    }
    got, want = (t.sort_values(KEY, ignore_index=True) for t in (got, want))
    assert len(got) == len(want)
    for column in COLUMNS:
        if column in ("start_ts", "duration"):
            np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-9, err_msg=column)
        else:
            assert got[column].astype(str).tolist() == want[column].astype(str).tolist(), column


def events_of(path: Path) -> list[dict]:
    return json.loads(path.read_text())["traceEvents"]


def rewrite(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_round_trip_gives_back_the_table_with_a_bare_reduce_scatter_kernel(tmp_path):
    want = table()
    files = write_profile(want, tmp_path, dp_size=2, pp_size=2, kernels=["grads-reduce-scatter"])
    assert sorted(p.name for p in files) == ["rank0.json", "rank1.json", "rank2.json", "rank3.json"]
    events = events_of(tmp_path / "rank0.json")
    assert not [e for e in events if e["name"] == "grads-reduce-scatter"]  # the classifier names it
    assert [e["name"] for e in events if "ReduceScatter" in e["name"] and e["cat"] == "kernel"]
    assert [e for e in events if "SendRecv" in e["name"]]  # NCCL kernels inside send/recv ranges are theirs
    got = convert_profiles(files, dp_size=2, pp_size=2)
    same(got, want)
    assert got["start_ts"].min() == 0.0
    first = got[(got.dp_rank == 0) & (got.stage == 1) & (got.step == 3) & (got.optype == "forward-compute")]
    assert first[["seq_id", "mb_id", "mc", "gmc"]].values.tolist() == [[0, 0, 0, 1], [1, 1, 0, 1]]


def test_an_op_that_outlives_its_step_window_stays_in_its_step(tmp_path):
    """GPU work runs behind its host launches: an op after its ProfilerStep window still belongs to it."""
    want = table()
    files = write_profile(want, tmp_path, dp_size=2, pp_size=2)

    def shorten(doc):
        for e in doc["traceEvents"]:
            if e["name"].startswith("ProfilerStep#"):
                e["dur"] /= 2

    for path in files:
        rewrite(path, shorten)
    same(convert_profiles(files, dp_size=2, pp_size=2), want)


def test_an_op_before_the_first_step_is_left_out(tmp_path):
    """It belongs to a step the profiler did not record (its warm-up)."""
    want = table()
    files = write_profile(want, tmp_path, dp_size=2, pp_size=2)
    early = {"ph": "X", "cat": "gpu_user_annotation", "name": "optimizer", "pid": 0, "tid": 7, "ts": -500.0, "dur": 9.0}
    rewrite(tmp_path / "rank0.json", lambda doc: doc["traceEvents"].append(early))
    same(convert_profiles(files, dp_size=2, pp_size=2), want)


@pytest.mark.parametrize("name", ["trace_rank-{r}.json", "rank{r}.pt.trace.json.gz", "worker_{r}.json"])
def test_the_rank_comes_from_the_file_name_without_distributed_info(tmp_path, name):
    want = table()
    renamed = []
    for path in write_profile(want, tmp_path / "w", dp_size=2, pp_size=2):
        doc = json.loads(path.read_text())
        rank = doc.pop("distributedInfo")["rank"]
        new = tmp_path / name.format(r=rank)
        data = json.dumps(doc).encode()
        new.write_bytes(gzip.compress(data) if new.suffix == ".gz" else data)
        renamed.append(new)
    same(convert_profiles(renamed, dp_size=2, pp_size=2), want)


def test_distributed_info_wins_over_the_file_name(tmp_path):
    want = table()
    files = write_profile(want, tmp_path / "w", dp_size=2, pp_size=2)
    misleading = [path.rename(tmp_path / f"rank{3 - i}.json") for i, path in enumerate(sorted(files))]
    same(convert_profiles(misleading, dp_size=2, pp_size=2), want)


def test_with_tensor_parallelism_the_other_ranks_files_are_ignored(tmp_path):
    want = table(tp=2)
    files = write_profile(want, tmp_path, dp_size=2, pp_size=2, tp_size=2)
    assert sorted(p.name for p in files) == ["rank0.json", "rank2.json", "rank4.json", "rank6.json"]
    others = []
    for path in files:  # tp_rank 1 of each: other times, ops that would change the table
        doc = json.loads(path.read_text())
        doc["distributedInfo"]["rank"] += 1
        for e in doc["traceEvents"]:
            e["ts"] += 123.0
        other = tmp_path / f"rank{doc['distributedInfo']['rank']}.json"
        other.write_text(json.dumps(doc))
        others.append(other)
    same(convert_profiles(files + others, dp_size=2, pp_size=2, tp_size=2), want)


def test_a_fused_send_recv_range_is_two_ops(tmp_path):
    """Megatron's send_forward_recv_backward is one range: a forward-send and a backward-recv, same times."""
    want = table()
    files = write_profile(want, tmp_path, dp_size=2, pp_size=2)
    fused = want[(want["rank"] == 0) & (want.optype == "forward-send")].iloc[-1]

    def fuse(doc):  # the second forward-send of each step (of both ranks of stage 0: they run the same ops)
        for second in [e for e in doc["traceEvents"] if e["name"] == "forward-send"][1::2]:
            second["name"] = "forward-send-backward-recv"

    for name in ("rank0.json", "rank1.json"):
        rewrite(tmp_path / name, fuse)
    got = convert_profiles(files, dp_size=2, pp_size=2)
    at = np.isclose(got.start_ts, fused.start_ts, rtol=0, atol=1e-9)
    extra = got[(got["rank"] == 0) & (got.step == fused.step) & at]
    assert sorted(extra.optype) == ["backward-recv", "forward-send"]
    assert extra.duration.tolist() == pytest.approx([fused.duration] * 2, abs=1e-9)
    assert len(got) == len(want) + 4
    recvs = got[(got["rank"] == 0) & (got.step == fused.step) & (got.optype == "backward-recv")]
    assert recvs.seq_id.tolist() == [0, 1, 2] and recvs.start_ts.is_monotonic_increasing


def _files(tmp_path: Path) -> list[Path]:
    return write_profile(table(), tmp_path, dp_size=2, pp_size=2)


def _add_event(event: dict):
    return lambda doc: doc["traceEvents"].append(event)


def _first_range(change):
    def apply(doc):
        change(next(e for e in doc["traceEvents"] if e["cat"] == "gpu_user_annotation"))

    return apply


EXTRA_STEP = {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#9", "pid": 1, "tid": 1, "ts": 5e6, "dur": 10.0}
P2P = {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_SendRecv(x)", "pid": 0, "tid": 7, "ts": 10_500.0, "dur": 5.0}
BROKEN = {  # what is done to rank1.json -> a word of the message
    "invalid JSON": (lambda p: p.write_text('{"traceEvents": ['), "malformed JSON"),
    "truncated gzip": (lambda p: p.write_bytes(gzip.compress(p.read_bytes())[:-10]), "cannot read trace"),
    "no event list": (lambda p: p.write_text('{"events": []}'), "traceEvents"),
    "no step": (
        lambda p: rewrite(p, lambda d: d.update(traceEvents=[e for e in d["traceEvents"] if "#" not in e["name"]])),
        "ProfilerStep#N",
    ),
    "no ops": (
        lambda p: rewrite(p, lambda d: d.update(traceEvents=[e for e in d["traceEvents"] if "#" in e["name"]])),
        "no ops",
    ),
    "no ts": (lambda p: rewrite(p, _first_range(lambda e: e.pop("ts"))), "'ts' and 'dur'"),
    "negative dur": (lambda p: rewrite(p, _first_range(lambda e: e.update(dur=-1.0))), "negative duration"),
    "world size": (lambda p: rewrite(p, lambda d: d["distributedInfo"].update(world_size=8)), "world_size"),
    "rank outside": (lambda p: rewrite(p, lambda d: d["distributedInfo"].update(rank=4)), "outside a job"),
    "same rank": (lambda p: rewrite(p, lambda d: d["distributedInfo"].update(rank=0)), "rank 0 again"),
    "p2p outside": (lambda p: rewrite(p, _add_event(P2P)), "direction is unknown"),
    "no rank": (lambda p: rewrite(p, lambda d: d.pop("distributedInfo")) or p.rename(p.with_name("x.json")), "no rank"),
    "rank a string": (lambda p: rewrite(p, lambda d: d["distributedInfo"].update(rank="1")), "got '1'"),
    "infinite ts": (lambda p: rewrite(p, _first_range(lambda e: e.update(ts="inf"))), "must be finite"),
    "extra step": (
        lambda p: rewrite(p, _add_event(EXTRA_STEP)),
        "3 and 2 profiled steps: files of one run profile the same steps",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_bad_file_is_a_one_line_error_naming_it(tmp_path, case):
    files = _files(tmp_path)
    spoil, word = BROKEN[case]
    spoil(tmp_path / "rank1.json")
    files = [p if p.exists() else tmp_path / "x.json" for p in files]
    with pytest.raises(InputError) as err:
        convert_profiles(files, dp_size=2, pp_size=2)
    message = str(err.value)
    assert "\n" not in message and word in message, message
    assert ("x.json" if case == "no rank" else "rank1.json") in message, message
    if case == "p2p outside":
        assert "SendRecv" in message and "10500.0" in message


def test_bad_sizes_and_a_missing_file_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match=r"^--pp must be an integer >= 1, got 0$"):
        convert_profiles([], dp_size=2, pp_size=0)
    with pytest.raises(InputError, match=r"^--dp must be an integer >= 1, got True$"):
        convert_profiles([], dp_size=True, pp_size=1)
    missing = tmp_path / "rank0.json"
    with pytest.raises(InputError, match=f"^{re.escape(str(missing))}: cannot read trace: No such file or directory$"):
        convert_profiles([missing], dp_size=1, pp_size=1)


def _skipped(doc):  # not complete events with a name: metadata, an instant, a number, a nameless range
    doc["traceEvents"] += [5, {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "GPU 0"}}]
    doc["traceEvents"] += [{"ph": "i", "cat": "user_annotation", "name": "ProfilerStep#9", "ts": 5.0, "s": "t"}]
    doc["traceEvents"] += [{"ph": "X", "cat": "user_annotation", "name": 7, "ts": 0.0, "dur": 1.0}]


def _nested_host_steps(doc):  # a shorter ProfilerStep inside each (a cpu_op): the outermost span counts
    steps = [e for e in doc["traceEvents"] if e["name"].startswith("ProfilerStep#")]
    doc["traceEvents"] += [{**e, "cat": "cpu_op", "ts": e["ts"] + e["dur"] / 2, "dur": e["dur"] / 4} for e in steps]


def _split_gpu_steps(doc):  # each GPU-side step as two ranges on two streams, the later one first
    for e in [e for e in doc["traceEvents"] if e["cat"] == "gpu_user_annotation" and "#" in e["name"]]:
        half = e["dur"] / 2
        doc["traceEvents"].remove(e)
        doc["traceEvents"] += [{**e, "tid": 8, "ts": e["ts"] + half, "dur": half}, {**e, "dur": half}]


def _gpu_gc(doc):  # gc also as a GPU range: that one counts, the host range (another duration) is ignored
    for e in [e for e in doc["traceEvents"] if e["name"] == "gc"]:
        doc["traceEvents"].append({**e, "cat": "gpu_user_annotation", "pid": 0, "tid": 7})
        e["dur"] = 999.0


def _broadcast(doc):  # an NCCL kernel of no classified collective, outside every range: not an op
    doc["traceEvents"].append({**P2P, "name": "ncclDevKernel_Broadcast_RING_LL(x)"})


@pytest.mark.parametrize(
    "change, gpu_steps",
    [(_skipped, False), (_nested_host_steps, False), (_split_gpu_steps, True), (_gpu_gc, False), (_broadcast, False)],
)
def test_events_that_are_not_ops_or_repeat_a_step_leave_the_table_as_it_was(tmp_path, change, gpu_steps):
    want = table(dp=1, pp=1)
    files = write_profile(want, tmp_path, dp_size=1, pp_size=1, gpu_steps=gpu_steps)
    rewrite(files[0], change)
    same(convert_profiles(files, dp_size=1, pp_size=1), want)


def test_write_profile_refuses_an_unknown_bare_kernel_and_steps_that_interleave(tmp_path):
    with pytest.raises(ValueError, match=r"no bare kernel for \['optimizer'\]; choose from"):
        write_profile(table(), tmp_path / "a", dp_size=2, pp_size=2, kernels=["optimizer", "params-all-gather"])
    mixed = table()
    mixed.loc[mixed.step == 4, "start_ts"] -= 0.95  # step 4 begins inside step 3
    with pytest.raises(ValueError, match=r"^rank 0: steps interleave in time"):
        write_profile(mixed, tmp_path / "b", dp_size=2, pp_size=2)
    assert not (tmp_path / "a").exists() and not any((tmp_path / "b").iterdir())


def test_a_missing_representative_is_an_error_naming_its_rank(tmp_path):
    files = _files(tmp_path)
    with pytest.raises(InputError, match=r"no trace of rank 2 \(dp_rank 0, stage 1"):
        convert_profiles([p for p in files if p.name != "rank2.json"], dp_size=2, pp_size=2)


def test_the_command_writes_parquet_and_csv_and_the_meta_beside(tmp_path, capsys):
    want = table()
    files = [str(p) for p in write_profile(want, tmp_path / "in", dp_size=2, pp_size=2, kernels=["params-all-gather"])]
    for out, read, meta in [
        (tmp_path / "ops.parquet", pd.read_parquet, tmp_path / "meta-ops.yaml"),
        (tmp_path / "trace-x.csv", pd.read_csv, tmp_path / "meta-x.yaml"),
    ]:
        assert main(["import-ops", *files, "--dp", "2", "--pp", "2", "--out", str(out)]) == 0
        line = capsys.readouterr().out
        assert line == f"{out}: {len(want)} ops, 2 steps, 2 DP ranks x 2 stages from 4 files; meta {meta}\n"
        same(read(out), want)
        name = meta.stem.removeprefix("meta-")
        sizes = {"dp_size": 2, "pp_size": 2, "tp_size": 1, "dsp_size": 1, "vpp_size": 1, "world_size": 4}
        assert yaml.safe_load(meta.read_text()) == {"trial_name": name, **sizes}
        assert llm_trace.read_meta(meta).world_size == 4
    assert main(["import-ops", *files, "--dp", "2", "--pp", "2", "--out", str(out)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err


def test_an_existing_meta_file_is_refused_before_anything_is_written(tmp_path, capsys):
    files = [str(p) for p in _files(tmp_path / "in")]
    (tmp_path / "meta-ops.yaml").write_text("trial_name: mine\n")
    out = tmp_path / "ops.csv"
    assert main(["import-ops", *files, "--dp", "2", "--pp", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "meta-ops.yaml exists" in err and "--overwrite" in err, err
    assert not out.exists() and (tmp_path / "meta-ops.yaml").read_text() == "trial_name: mine\n"
    assert main(["import-ops", *files, "--dp", "2", "--pp", "2", "--out", str(out), "--overwrite"]) == 0
    assert out.exists() and yaml.safe_load((tmp_path / "meta-ops.yaml").read_text())["trial_name"] == "ops"


@pytest.mark.parametrize("out", ["newdir/", "old"])
def test_a_folder_as_out_is_a_one_line_error(tmp_path, capsys, monkeypatch, out):
    files = [str(p) for p in _files(tmp_path / "in")]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old").mkdir()
    assert main(["import-ops", *files, "--dp", "2", "--pp", "2", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "old"] and not any((tmp_path / "old").iterdir())


def test_counts_have_thousands_separators_and_one_step_is_singular(tmp_path, capsys):
    want = table(dp=1, pp=1, steps=(3,))
    want = pd.concat([want] * 80, ignore_index=True)  # 1,120 ops in one step: the same ops, later
    want["start_ts"] = np.arange(len(want)) * 0.002
    files = [str(p) for p in write_profile(want, tmp_path / "in", dp_size=1, pp_size=1)]
    out = tmp_path / "ops.csv"
    assert main(["import-ops", *files, "--dp", "1", "--pp", "1", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{out}: 1,120 ops, 1 step, 1 DP rank x 1 stage from 1 file; meta "), line


def test_the_command_turns_a_bad_file_into_exit_2_with_one_line(tmp_path, capsys):
    files = [str(p) for p in _files(tmp_path / "in")]
    Path(files[1]).write_text("not json")
    out = tmp_path / "ops.csv"
    assert main(["import-ops", *files, "--dp", "2", "--pp", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and files[1] in err and "malformed JSON" in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_first_two_steps_of_the_st_trace_round_trip(tmp_path):
    """A realistic 1F1B schedule (DP 2 x PP 4, sends and receives that share a span)."""
    st = pd.read_parquet(ST)
    first = sorted(st["step"].unique())[:2]
    want = st[st["step"].isin(first)].astype({"optype": str, "start_ts": float, "duration": float})
    want = want.astype({c: np.int64 for c in COLUMNS if c not in ("optype", "start_ts", "duration")})
    want["start_ts"] += np.where(want["step"] == first[1], 3.0, 0.0)  # ST's steps each start at 0: lay them end to end
    files = write_profile(want, tmp_path, dp_size=2, pp_size=4, kernels=["grads-reduce-scatter", "params-all-gather"])
    same(convert_profiles(files, dp_size=2, pp_size=4), want[list(COLUMNS)])


LAG = 0.05  # s the GPU runs behind the host: more than the last two ops of a step, steps back to back


def _lagging(tmp_path: Path, **how) -> tuple[pd.DataFrame, list[Path]]:
    """Three steps back to back, host windows 1 ms apart, the GPU LAG behind: the host window of the next
    step begins before the GPU has run this step's clip and optimizer."""
    want = table(steps=(5, 6, 7), spacing=0.0)
    files = write_profile(want, tmp_path, dp_size=2, pp_size=2, lag=LAG, **how)
    host = [e for e in events_of(files[0]) if e["cat"] == "user_annotation" and "#" in e["name"]]
    assert host[1]["ts"] - (host[0]["ts"] + host[0]["dur"]) == pytest.approx(1000.0)  # us
    late = want[(want["rank"] == 0) & (want.step == 5) & (want.optype == "optimizer")].start_ts.iloc[0]
    assert late > host[1]["ts"] * 1e-6  # the start-time rule would put it in step 6
    return want.assign(start_ts=want.start_ts + np.where(want.optype == "gc", 0.0, LAG)), files


@pytest.mark.parametrize("how", [{"gpu_steps": True}, {"correlation": True}, {"gpu_steps": True, "correlation": True}])
def test_a_gpu_that_lags_the_host_keeps_its_ops_in_their_steps(tmp_path, how):
    """GPU-side ProfilerStep ranges place GPU ops; without them, the launch that shares an op's correlation id
    does; times are from the earliest host step start."""
    want, files = _lagging(tmp_path, **how)
    same(convert_profiles(files, dp_size=2, pp_size=2), want)


def test_a_lag_with_nothing_to_place_the_gpu_ops_by_is_refused_naming_the_steps(tmp_path):
    """Neither GPU-side steps nor correlation ids: step 5's optimizer lands in 6, 6's in 7; refused."""
    _, files = _lagging(tmp_path)
    with pytest.raises(InputError) as err:
        convert_profiles(files, dp_size=2, pp_size=2)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'rank0.json'}: "), message
    assert "step 7 has 2 optimizer ops, step 5 has 0: GPU work may have been assigned" in message
    assert "the GPU lags the host" in message


def test_a_rank_whose_ops_differ_from_its_stage_is_refused(tmp_path):
    files = _files(tmp_path)

    def drop_one(doc):
        first = next(e for e in doc["traceEvents"] if e["name"] == "forward-compute")
        doc["traceEvents"] = [e for e in doc["traceEvents"] if e is not first]
        doc["traceEvents"] += [{**first, "ts": first["ts"] + 1e6}]  # moved to step 4: steps of rank1 differ

    rewrite(tmp_path / "rank1.json", drop_one)
    with pytest.raises(InputError, match=r"rank1\.json: step 4 has 3 forward-compute ops, step 3 has 1"):
        convert_profiles(files, dp_size=2, pp_size=2)
    files = _files(tmp_path)

    def drop_both(doc):
        doc["traceEvents"] = [e for e in doc["traceEvents"] if e["name"] != "gc"]

    rewrite(tmp_path / "rank3.json", drop_both)
    with pytest.raises(InputError, match=r"rank3\.json: step 3 has 0 gc ops, .*rank2\.json's step 3 has 1"):
        convert_profiles(files, dp_size=2, pp_size=2)
