"""The what-if analysis: the dependency model on a schedule computed by hand, the shipped traces
against the paper's findings, and one-line errors for bad traces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stragglersim.cli import main as cli
from stragglersim.llm import model as llm_model
from stragglersim.llm import trace as llm_trace
from stragglersim.llm import whatif
from stragglersim.llm.replay import ideal, measured, no_delay, replay

SHIPPED = Path(__file__).resolve().parent.parent / "traces" / "llm-whatif"

# One step of DP 2 x PP 2 with one micro-batch, every op starting exactly when what it waits for
# ends (no launch delay). DP rank 1's stage-0 forward takes 4 s instead of 2 s.
#   stage 0: params-all-gather 0-1 | forward 1-3 (DP 1: 1-5) | send | recv of the backward |
#            backward 7-10 (DP 1: 9-12) | gc | reduce-scatter: ready 10 and 12, ends 12+1 = 13
#   stage 1: params-all-gather 0-1 | recv: peer starts 3 (5), +0.5 -> 3.5 (5.5) | forward 1 s |
#            backward 2 s -> 6.5 (8.5) | send, peer ends 7 (9) | gc | reduce-scatter ends 8.5+1
#   clip: everyone's latest start 13, +0.5; optimizer 13.5-14.5. The step takes 14.5 s.
HAND = [  # dp, stage, optype, start, end (DP 1 where it differs: start1, end1)
    (0, "params-all-gather", 0, 1, 0, 1),
    (0, "forward-compute", 1, 3, 1, 5),
    (0, "forward-send", 3, 3.5, 5, 5.5),
    (0, "backward-recv", 3, 7, 5, 9),
    (0, "backward-compute", 7, 10, 9, 12),
    (0, "gc", 10, 10, 12, 12),
    (0, "grads-reduce-scatter", 10, 13, 12, 13),
    (0, "optimizer-clip-main-grad", 13, 13.5, 13, 13.5),
    (0, "optimizer", 13.5, 14.5, 13.5, 14.5),
    (1, "params-all-gather", 0, 1, 0, 1),
    (1, "forward-recv", 0, 3.5, 0, 5.5),
    (1, "forward-compute", 3.5, 4.5, 5.5, 6.5),
    (1, "backward-compute", 4.5, 6.5, 6.5, 8.5),
    (1, "backward-send", 6.5, 7, 8.5, 9),
    (1, "gc", 6.5, 6.5, 8.5, 8.5),
    (1, "grads-reduce-scatter", 6.5, 9.5, 8.5, 9.5),
    (1, "optimizer-clip-main-grad", 9.5, 13.5, 9.5, 13.5),
    (1, "optimizer", 13.5, 14.5, 13.5, 14.5),
]


def hand_table() -> pd.DataFrame:
    rows = []
    for stage, optype, s0, e0, s1, e1 in HAND:
        for dp, (start, end) in enumerate(((s0, e0), (s1, e1))):
            compute = optype.endswith("compute")
            rows.append(
                {
                    "dp_rank": dp,
                    "stage": stage,
                    "rank": 2 * stage + dp,
                    "step": 7,
                    "optype": optype,
                    "start_ts": 100.0 + start,
                    "duration": end - start,
                    "seq_id": 0,
                    "mc": 0 if compute else -1,
                    "gmc": stage if compute else -1,
                    "mb_id": 0 if compute or optype == "gc" else -1,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def hand(tmp_path):
    path = tmp_path / "trace-hand.csv"
    hand_table().to_csv(path, index=False)
    (tmp_path / "meta-hand.yaml").write_text("dp_size: 2\npp_size: 2\ntp_size: 1\nworld_size: 4\n")
    trace = llm_trace.load(path, llm_trace.read_meta(tmp_path / "meta-hand.yaml"))
    return trace, llm_model.build(trace)


def test_hand_schedule_has_no_launch_delay_and_replays_exactly(hand):
    trace, model = hand
    base, skew = measured(trace, model)
    assert np.abs(base.launch).max() < 1e-12, "the model's dependencies are the hand schedule's"
    assert skew == {"launch_delays_set_to_0": 0, "transfer_times_set_to_0": 0}
    transfer = dict(zip(trace.slots.optype + "@" + trace.slots.stage.astype(str), base.transfer[:, 0, 1], strict=True))
    assert transfer["grads-reduce-scatter@0"] == 1.0 and transfer["forward-recv@1"] == 0.5
    assert replay(trace, model, base).step_times.tolist() == [14.5] == trace.step_times().tolist()


def test_hand_schedule_ideal_and_backups(hand):
    """Ideal: forward 2 s (mean of 2, 4, 1, 1), backward 2.5 s: 1+2 | recv 3.5 | 5.5 | 8 | 8.5 | 11 |
    scatter 12 | clip 12.5 | optimizer 13.5. One backup: each stage's scatter goes with DP rank 0
    (ready 10 and 6.5), clip at 11 + 0.5, optimizer ends 12.5; DP rank 1 is dropped on both stages."""
    trace, model = hand
    base = no_delay(measured(trace, model)[0])
    assert replay(trace, model, ideal(trace, base)).step_times.tolist() == [13.5]
    one = replay(trace, model, base, backups=1)
    assert one.update.tolist() == [12.5] and one.dropped == 0.5
    zero = replay(trace, model, base, backups=0)
    assert zero.update.tolist() == [14.5] and zero.dropped == 0.0


def test_hand_schedule_attribution(hand):
    trace, _ = hand
    result, _ = whatif.analyse(trace)
    assert result["slowdown"] == pytest.approx(14.5 / 13.5)
    assert max(result["by_dp_rank"], key=result["by_dp_rank"].get) == "1"
    assert result["replay_error"]["max"] == 0.0


@pytest.fixture(scope="module")
def shipped():
    out = {}
    for name in ("AR", "ST"):
        trace = llm_trace.load(SHIPPED / f"trace-{name}.parquet", llm_trace.read_meta(SHIPPED / f"meta-{name}.yaml"))
        out[name] = whatif.analyse(trace)[0]
    return out


def test_ar_slowdown_is_one_worker(shipped):
    """AR: S about 1.97 (the paper's 1.973), all of it DP rank 0's stage 0 (M_W close to 1)."""
    r = shipped["AR"]
    assert r["slowdown"] == pytest.approx(1.97, abs=0.02)
    assert r["top_workers"] == [{"dp_rank": 0, "stage": 0, "rank": 0}]
    assert r["M_W"] == pytest.approx(1.0, abs=0.05)
    assert abs(r["M_S"]) < 0.05, "the last stage explains nothing"
    score = np.array(r["worker_score"])
    assert score[0, 0] == pytest.approx(1.97, abs=0.03) and np.delete(score.ravel(), 0).max() < 1.05
    assert r["replay_error"]["max"] < 0.01


def test_st_slowdown_is_the_last_stage(shipped):
    """ST: S about 1.18 (the paper's 1.179), the last stage's (M_S about 1.2: restoring it beats ideal)."""
    r = shipped["ST"]
    assert r["slowdown"] == pytest.approx(1.18, abs=0.02)
    assert max(r["by_stage"], key=r["by_stage"].get) == "3"
    assert r["M_S"] == pytest.approx(1.2, abs=0.05)
    assert r["replay_error"]["max"] < 0.01


def test_ar_one_backup_replica_removes_the_straggler(shipped):
    """One backup replica drops DP rank 0's gradients (a quarter) and halves the step; on ideal durations
    (all replicas alike) backups drop nothing and change nothing."""
    b = shipped["AR"]["backups"]
    assert [x["backups"] for x in b] == [0, 1, 2, 3]
    assert b[0]["mean_step_time"] == pytest.approx(shipped["AR"]["t_ori"])
    assert b[1]["mean_step_time"] < 0.55 * b[0]["mean_step_time"] and b[1]["samples_dropped"] == 0.25
    assert all(x["ideal_samples_dropped"] == 0 and x["ideal_mean_step_time"] == b[0]["ideal_mean_step_time"] for x in b)
    st = shipped["ST"]["backups"]  # a slow stage slows every replica: a backup buys little
    assert st[1]["mean_step_time"] > 0.95 * st[0]["mean_step_time"]


def _table_error(tmp_path, capsys, edit, meta="dp_size: 2\npp_size: 2\n") -> str:
    table = hand_table()
    table = edit(table)
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    (tmp_path / "m.yaml").write_bytes(meta if isinstance(meta, bytes) else meta.encode())
    assert cli.main(["whatif", str(path), "--meta", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    return err


@pytest.mark.parametrize(
    "edit, meta, expected",
    [
        (lambda t: t.drop(columns="seq_id"), None, "missing column(s) seq_id"),
        (lambda t: t.assign(optype=t.optype.replace("gc", "garbage")), None, "line 12: unknown optype 'garbage'"),
        (lambda t: t.drop(index=3), None, "DP rank 1, stage 0 has no forward-compute"),
        (lambda t: t.drop(index=2), None, "step 7 on DP rank 0, stage 0 has no forward-compute seq_id 0"),
        (lambda t: t.assign(dp_rank=t.dp_rank.astype(float).where(t.index != 0, 0.5)), None, "line 2: dp_rank 0.5 is"),
        (lambda t: t.drop(index=[4, 5]), None, "stage 0 has 0 forward-send ops but stage 1 has 1 forward-recv"),
        (lambda t: t.assign(duration=t.duration.astype(object).where(t.index != 2, "x")), None, "line 4: duration"),
        (lambda t: t, "dp_size: 1\npp_size: 2\n", "dp_rank 1 is outside 0..0"),
        (lambda t: t, "dp_size: 2\npp_size: 2\nworld_size: 8\n", "world_size 8 is not"),
        (lambda t: t, "dp_size: 2\npp_size: 2\nvpp_size: 2\n", "vpp_size 2"),
        (lambda t: t.iloc[:0], None, "t.csv: no ops"),
        (lambda t: pd.concat([t, t.loc[[2]]]), None, "step 7 DP rank 0 stage 0 has forward-compute seq_id 0 twice"),
        (
            lambda t: t.assign(seq_id=t.seq_id.where(t.index != 3, 1)),
            None,
            "line 5: forward-compute seq_id 1 on stage 0 (step 7, DP rank 1) is not in the schedule of step 7, DP rank",
        ),
        (  # DP rank 1's forward-send replaced by a second forward-compute: as many rows as DP rank 0
            lambda t: pd.concat([t.drop(index=5), t.loc[[3]]]),
            None,
            "a second forward-compute seq_id 0 in step 7 on DP rank 1, stage 0",
        ),
        (lambda t: t.assign(rank=t["rank"].where(t.index != 0, 9)), None, "DP rank 0, stage 0 was recorded on two"),
        (lambda t: t, "dp_size: 3\npp_size: 2\n", "no ops of DP rank 2, stage 0 (the meta says dp_size 3, pp_size 2)"),
        (lambda t: t[~((t.stage == 1) & t.optype.str.endswith("-compute"))], None, "stage 1 has no forward or"),
        (
            lambda t: pd.concat([t, t.loc[[4, 5]].assign(seq_id=1, start_ts=t.start_ts + 0.25)]),
            None,
            "stage 0 has 2 forward-send ops for 1 forward-compute ops (one each, or none)",
        ),
        (
            lambda t: pd.concat([t, t.loc[[2, 3]].assign(optype="forward-recv")]),
            None,
            "stage 0 has forward-recv ops but no stage sends to it",
        ),
        (  # stage 0 records its backward before its forward: each waits for the other through stage 1
            lambda t: t.assign(start_ts=t.start_ts.where((t.stage != 0) | (t.optype != "forward-compute"), 120.0)),
            None,
            "the ops cannot be ordered (a dependency cycle through",
        ),
    ],
)
def test_bad_trace_is_one_line(tmp_path, capsys, edit, meta, expected):
    assert expected in _table_error(tmp_path, capsys, edit, meta or "dp_size: 2\npp_size: 2\n")


@pytest.mark.parametrize(
    "meta, expected",
    [
        ("dp_size: [2\n", "not valid YAML"),
        ("pp_size: 2\n", "dp_size must be a positive integer (got None)"),
        ("dp_size: two\npp_size: 2\n", "dp_size must be a positive integer (got 'two')"),
        ("- 1\n- 2\n", "expected a mapping"),
        (b"dp_size: \xff\xfe\n", "not a text (UTF-8) file"),
    ],
)
def test_bad_meta_is_one_line(tmp_path, capsys, meta, expected):
    err = _table_error(tmp_path, capsys, lambda t: t, meta)
    assert f"{tmp_path / 'm.yaml'}: " in err and expected in err


def test_a_missing_trace_or_meta_is_one_line(tmp_path, capsys):
    hand_table().to_csv(tmp_path / "trace-x.csv", index=False)
    out = str(tmp_path / "o")
    for argv, expected in [
        ([str(tmp_path / "trace-none.csv")], f"{tmp_path / 'trace-none.csv'}: no such file"),
        ([str(tmp_path / "trace-x.csv")], "trace-x.csv: give --meta META.yaml (no meta-x.yaml beside the trace)"),
        ([str(tmp_path / "trace-x.csv"), "--meta", str(tmp_path / "m.yaml")], f"--meta {tmp_path / 'm.yaml'}: no such"),
    ]:
        assert cli.main(["whatif", *argv, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace-x.csv"]


def test_a_folder_of_profiler_traces_given_to_whatif_is_pointed_to_import_ops(tmp_path, capsys):
    (tmp_path / "prof").mkdir()
    assert cli.main(["whatif", str(tmp_path / "prof"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "prof: a folder; whatif reads an op-level table" in err
    assert "convert profiler traces with import-ops first" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["d.csv", "d.parquet"])
def test_a_folder_given_to_read_ops_is_the_os_error_never_an_empty_table(tmp_path, name):
    """pyarrow would read a folder as an empty parquet dataset; the OS error is passed on instead."""
    (tmp_path / name).mkdir()
    with pytest.raises(OSError, match="directory"):
        llm_trace.read_ops(tmp_path / name)


def test_corrupt_parquet_is_one_line(tmp_path, capsys):
    (tmp_path / "trace-x.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "meta-x.yaml").write_text("dp_size: 2\npp_size: 2\n")
    assert cli.main(["whatif", str(tmp_path / "trace-x.parquet"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "trace-x.parquet: not a readable parquet table" in err and len(err.strip().splitlines()) == 1


def test_whatif_command_writes_its_folder_and_a_canonical_replica_trace(tmp_path, capsys):
    """`whatif` on the shipped ST trace (its meta found beside it): whatif.json with the issue's keys,
    figures, timelines, and replicas.csv that `simulate --latency trace:` replays."""
    out = tmp_path / "st"
    assert cli.main(["whatif", str(SHIPPED / "trace-ST.parquet"), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "slowdown S = 1.18" in printed and "M_S = 1.21" in printed
    result = json.loads((out / "whatif.json").read_text())
    for key in ("slowdown", "launch_slowdown", "M_S", "M_W", "by_optype", "by_dp_rank", "by_stage", "per_step"):
        assert key in result
    assert [sorted(b) for b in result["backups"]][0] == sorted(
        ["backups", "mean_step_time", "samples_dropped", "ideal_mean_step_time", "ideal_samples_dropped"]
    )
    for name in ("whatif-heatmap", "whatif-step-times", "whatif-backups"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file()
    assert (out / "timeline-original.json.gz").is_file() and (out / "timeline-ideal.json.gz").is_file()
    replicas = pd.read_csv(out / "replicas.csv")
    assert list(replicas.columns) == ["worker", "step", "duration"] and len(replicas) == 2 * 32
    assert replicas.duration.between(1.0, 3.0).all()
    run = tmp_path / "run"
    argv = ["simulate", "--timing-only", "--strategy", "backup", "--workers", "1", "--backups", "1", "--steps", "5"]
    assert cli.main([*argv, "--latency", f"trace:{out / 'replicas.csv'}", "--out", str(run), "--quiet"]) == 0
    assert json.loads((run / "summary.json").read_text())["updates"] == 5
    assert cli.main(["whatif", str(SHIPPED / "trace-ST.parquet"), "--out", str(out), "--quiet"]) == 2, "no overwrite"
    (out / "replicas.csv").unlink()
    again = ["whatif", str(SHIPPED / "trace-ST.parquet"), "--out", str(out), "--quiet", "--overwrite"]
    assert cli.main(again) == 0 and (out / "replicas.csv").is_file(), "--overwrite replaces its own results"


def test_profiler_traces_give_the_same_analysis(tmp_path, capsys):
    """The ST job as per-rank PyTorch profiler traces -> import-ops -> whatif: the same slowdown."""
    from stragglersim.llm.profile_write import write_profile

    table = pd.read_parquet(SHIPPED / "trace-ST.parquet")
    table = table[table.step.isin(sorted(table.step.unique())[:6])].copy()
    table["start_ts"] += 10.0 * table.step.rank(method="dense")  # the artifact's steps each start at 0
    files = write_profile(table, tmp_path / "prof", dp_size=2, pp_size=4, kernels=("grads-reduce-scatter",))
    ops = tmp_path / "trace-st6.parquet"
    assert cli.main(["import-ops", *map(str, files), "--dp", "2", "--pp", "4", "--out", str(ops)]) == 0
    meta = llm_trace.read_meta(SHIPPED / "meta-ST.yaml")
    table.to_csv(tmp_path / "direct.csv", index=False)
    a = whatif.analyse(llm_trace.load(ops, meta))[0]
    b = whatif.analyse(llm_trace.load(tmp_path / "direct.csv", meta))[0]
    assert a["slowdown"] == pytest.approx(b["slowdown"], rel=1e-6) and a["M_S"] == pytest.approx(b["M_S"], rel=1e-5)


def test_a_trace_too_large_for_memory_is_refused_unread(monkeypatch):
    from stragglersim.io import memory

    monkeypatch.setattr(memory, "machine_memory", lambda: 50_000_000)
    with pytest.raises(llm_trace.InputError, match=r"analysing 117,216 ops needs about .* \(this machine has"):
        llm_trace.read_ops(SHIPPED / "trace-AR.parquet")


def test_clock_skew_between_ranks_is_pointed_out(tmp_path, capsys):
    """Stage 1's clock 5 s ahead: negative launch delays and transfer times are set to 0 and said so."""
    table = hand_table()
    table.loc[table.stage == 1, "start_ts"] += 5.0
    table.to_csv(tmp_path / "trace-skew.csv", index=False)
    (tmp_path / "meta-skew.yaml").write_text("dp_size: 2\npp_size: 2\n")
    assert cli.main(["whatif", str(tmp_path / "trace-skew.csv"), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "were below -10 ms and were set to 0: do the ranks' clocks agree?" in out
