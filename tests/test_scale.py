"""``scale``: the 1F1B layout against the trace's own dependency model, the fit against the known
parameters of a synthetic job it did not make, the prediction against measured slowdowns, the
mitigations' invariants, and the command's files and one-line errors."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stragglersim.cli import main as cli
from stragglersim.llm import model as llm_model
from stragglersim.llm import trace as llm_trace
from stragglersim.llm import whatif
from stragglersim.llm.replay import replay
from stragglersim.llm.scale import fit, schedule, study, synth, validation

SHIPPED = Path(__file__).resolve().parent.parent / "traces" / "llm-whatif"


def shipped(name: str) -> llm_trace.OpTrace:
    return llm_trace.load(SHIPPED / f"trace-{name}.parquet", llm_trace.read_meta(SHIPPED / f"meta-{name}.yaml"))


@pytest.fixture(scope="module")
def ar():
    trace = shipped("AR")
    return trace, fit.fit(trace, study.own_times(trace))


@pytest.fixture(scope="module")
def st():
    return shipped("ST")


def test_the_1f1b_layout_of_the_traces_own_shape_is_its_dependency_model(ar):
    trace, _ = ar
    slots, source = schedule.megatron(trace.slots, 4, 4, 32, trace.path)
    assert sorted(source) == list(range(len(trace.slots)))  # every trace op once
    frame = synth._frame(trace, slots, trace.meta, 1, 1)
    built, own = llm_model.build(frame), llm_model.build(trace)
    for i, deps in enumerate(built.deps):
        assert sorted(source[deps]) == sorted(own.deps[source[i]]), slots.iloc[i].tolist()
    assert sorted(tuple(sorted(source[list(g.members)])) for g in built.groups) == sorted(
        tuple(sorted(g.members)) for g in own.groups
    )


@pytest.mark.parametrize(("pp", "m"), [(1, 3), (2, 1), (4, 2), (4, 4), (5, 7), (8, 8)])
def test_1f1b_runs_every_micro_batch_once_each_way_in_order(pp, m):
    for stage in range(pp):
        order = schedule.one_f_one_b(stage, pp, m)
        assert Counter(order) == Counter([("forward", k) for k in range(m)] + [("backward", k) for k in range(m)])
        for k in range(m):
            assert order.index(("forward", k)) < order.index(("backward", k))
        forwards = [k for kind, k in order if kind == "forward"]
        assert forwards == sorted(forwards)
        in_flight = max(sum(1 for kind, _ in order[: i + 1] if kind == "forward") - sum(
            1 for kind, _ in order[: i + 1] if kind == "backward") for i in range(len(order)))  # fmt: skip
        assert in_flight == min(pp - stage, m)  # 1F1B holds at most P - s micro-batches' activations


def test_a_deeper_pipeline_takes_the_first_last_and_middle_stages_ops(ar):
    trace, _ = ar
    slots, source = schedule.megatron(trace.slots, 4, 6, 3, trace.path)
    assert [schedule.source_stage(s, 6, 4) for s in range(6)] == [0, 1, 2, 1, 2, 3]
    embedding = slots[slots.optype == "embedding-grads-all-reduce"]
    assert sorted(embedding.stage) == [0, 5]  # only the first and last stage
    for stage in range(6):
        mine = slots[slots.stage == stage]
        assert (mine.optype == "forward-compute").sum() == 3
        assert (mine.optype == "forward-recv").sum() == (3 if stage else 0)
        assert (mine.optype == "backward-send").sum() == (3 if stage else 0)
    # a micro-batch beyond the trace's count is drawn like its last; here all are within
    fc = slots.index[(slots.optype == "forward-compute") & (slots.stage == 3)]
    assert [trace.slots.seq_id[source[i]] for i in fc] == [0, 1, 2]
    assert set(trace.slots.stage[source[fc]]) == {1}
    model = llm_model.build(synth._frame(trace, slots, replace(trace.meta, pp_size=6), 1, 1))
    assert len(model.groups) > 0
    assert [schedule.source_stage(s, 3, 2) for s in range(3)] == [0, 0, 1]
    assert schedule.source_stage(0, 1, 4) == 0


def test_a_trace_without_pipeline_ops_cannot_be_laid_out_deeper(ar):
    trace, _ = ar
    single = trace.slots[(trace.slots.stage == 0) & ~trace.slots.optype.str.contains("send|recv")]
    single = single.reset_index(drop=True)
    with pytest.raises(llm_trace.InputError, match="no forward-send ops to lay out a 2-stage pipeline"):
        schedule.megatron(single, 1, 2, 4, trace.path)


def test_the_fit_finds_the_ar_jobs_slowed_worker_and_nothing_else(ar):
    _, job = ar
    report = job.report
    assert [(w["stage"], w["dp_rank"]) for w in report["slow_workers"]] == [(0, 0)]  # the artifact's slowed GPU
    assert report["slow_workers"][0]["factors"]["forward-compute"] == pytest.approx(2.5, abs=0.05)
    assert report["slow_share"] == 1 / 16
    lo, hi = report["slow_share_interval"]
    assert lo < 1 / 16 < hi < 0.3
    assert all(k["episodes"] == 0 for k in report["op_types"])
    assert report["drawn_from_measured"] == sorted(
        {"gc", *(o for o in llm_trace.COMMUNICATION if o in set(job.trace.slots.optype))}
    )


def test_the_fit_recovers_the_known_parameters_of_a_synthetic_job(ar):
    """A job drawn from the AR model with 6% slow workers, 32 DP ranks: the fit (a separate path from
    the draw) recovers the share, the factor, the healthy spread and the noise within their intervals."""
    trace, job = ar
    lay = synth.layout(job, 4, 8)
    truth = validation.ground_truth(job, lay, 32, 20, 0.06, np.random.default_rng([32, 1]))
    refit = fit.fit(truth, study.own_times(truth))
    r = refit.report
    lo, hi = r["slow_share_interval"]
    assert lo <= 0.06 <= hi and len(r["slow_workers"]) >= 2
    for worker in r["slow_workers"]:
        assert worker["factors"]["forward-compute"] == pytest.approx(2.50, rel=0.02)
    for optype, sd in job.sigma_worker.items():
        lo, hi = r["healthy_workers"][optype]["sigma_interval"]
        assert lo * 0.9 <= sd <= hi * 1.1, optype
    for key in r["op_types"]:
        if key["optype"] != "forward-compute":
            continue
        true = job.keys[("forward-compute", schedule.source_stage(key["stage"], 4, 4))]
        assert key["noise"]["ks"] < 0.05  # lognormal, or a gamma of the same shape: at sd 2% they cannot be told apart
        assert key["noise_sd"] == pytest.approx(true.report["noise_sd"], rel=0.1)
        # with 8 slots a step's own effect and the noise are hard to tell apart: their sum is what is identified
        total = key["step_sd"] ** 2 + key["step_worker_sd"] ** 2 + key["noise_sd"] ** 2
        assert total == pytest.approx(
            true.sigma_step**2 + true.sigma_step_worker**2 + true.report["noise_sd"] ** 2, rel=0.15
        )


def test_planted_episodes_are_found_with_their_rate_and_length(ar):
    """Episodes of x1.5 starting at 4% of worker-steps and lasting 3 steps on average, on one op type."""
    trace, job = ar
    key = ("backward-compute", 1)
    planted = replace(job.keys[key], episode_start=0.04, episode_length=3.0, episodes=1, magnitudes=np.log([1.5]))
    lay = synth.layout(job, 4, 4)
    truth = validation.ground_truth(replace(job, keys={**job.keys, key: planted}), lay, 32, 40, 0.0,
                                    np.random.default_rng(3))  # fmt: skip
    found = {(k["optype"], k["stage"]): k for k in fit.fit(truth, study.own_times(truth)).report["op_types"]}
    mine = found[key]
    lo, hi = mine["episode_start_interval"]
    assert lo <= 0.04 <= hi
    assert mine["episode_length_steps"] == pytest.approx(3.0, rel=0.35)
    assert mine["episode_factor_median"] == pytest.approx(1.5, rel=0.03)
    assert sum(k["episodes"] for k in found.values()) == mine["episodes"]  # none elsewhere


def test_the_prediction_at_the_traced_size_brackets_the_measured_slowdown(ar, st):
    for trace in (ar[0], st):
        result = study.run(trace, study.ScaleConfig(dp=(trace.meta.dp_size,), draws=20))
        check = result["check"]
        assert check["inside"], check
        assert result["measured"]["slowdown"] == pytest.approx(whatif.analyse(trace)[0]["slowdown"], rel=1e-12)
    assert abs(check["error"]) < 0.02  # ST: stage imbalance, no straggler to be unlucky about


def test_leaving_ranks_out_of_the_ar_job_predicts_it_only_while_the_slow_rank_is_fitted(ar):
    trace, _ = ar
    with_slow = study.run(trace, study.ScaleConfig(dp=(4,), draws=20, fit_ranks=(0, 1)))
    assert with_slow["check"]["inside"] and with_slow["fit"]["dp_ranks"] == [0, 1]
    assert with_slow["fit"]["slow_share"] == 1 / 8
    without = study.run(trace, study.ScaleConfig(dp=(4,), draws=5, fit_ranks=(1, 2, 3)))["check"]
    assert not without["inside"] and without["error"] < -0.2  # the slowed GPU is on DP rank 0: unseen


def test_predictions_from_part_of_a_synthetic_job_recover_its_slowdown(ar):
    """Fit DP ranks 0-7 of a DP 32 job with no slow worker; predict DP 32 within 1% (the interval over draws
    is not always wide enough to hold the truth: benchmarks/scale_validation.py counts how often)."""
    _, job = ar
    lay = synth.layout(job, 4, 8)
    for k in range(3):
        truth = validation.ground_truth(job, lay, 32, 20, 0.0, np.random.default_rng([32, k]))
        check = study.run(truth, study.ScaleConfig(dp=(32,), draws=10, fit_ranks=tuple(range(8))))["check"]
        assert abs(check["error"]) < 0.01, check
        assert check["measured_slowdown"] > 1.05  # the largest of 128 workers' noise: a slowdown to predict


def test_mitigations_never_slow_a_job_and_replacing_the_only_slow_worker_removes_it(ar):
    _, job = ar
    lay = synth.layout(job, 4, 8)
    config = study.ScaleConfig(dp=(6,), draws=1, backups=5)
    for k in range(6):
        row = study._draw(job, lay, 6, k, config)
        times = [row["backups"][b]["step_time"] for b in sorted(row["backups"])]
        assert all(a >= b - 1e-9 for a, b in zip(times, times[1:], strict=False)), times  # more backups: never later
        assert row["drop_slowest"]["step_time"] <= times[0] + 1e-9
    drawn = synth.draw(job, lay, 4, 10, np.random.default_rng(0), share=1 / 16)
    stage = drawn.trace.slots["stage"].to_numpy()
    largest = np.stack([drawn.factor[stage == s].max(axis=0) for s in range(4)], axis=1)  # [dp, stage]
    slow = [tuple(int(i) for i in w) for w in np.argwhere(largest > np.log(1.5))]
    assert np.all(drawn.cost[largest > np.log(1.5)] > 1.0)  # a slow worker loses seconds a step
    assert np.all(np.abs(drawn.cost[largest <= np.log(1.5)]) < 0.2)
    if slow:  # the draw's slow workers replaced: no persistent factor beyond the healthy spread remains
        replaced = drawn.replaced(slow)
        healthy = synth.draw(job, lay, 4, 10, np.random.default_rng(0), share=0.0)
        assert replay(drawn.trace, lay.model, replaced).step_times.mean() == pytest.approx(
            replay(healthy.trace, lay.model, healthy.durations).step_times.mean(), rel=0.02
        )


def test_slowdown_grows_with_size_when_workers_can_be_slow(ar):
    trace, _ = ar
    result = study.run(trace, study.ScaleConfig(dp=(4, 64), draws=6, steps=4, microbatches=4))
    small, large = result["sizes"]
    assert large["gpus"] == 64 * 4 * 4 and large["workers"] == 256
    assert large["slowdown"]["mean"] > small["slowdown"]["mean"] > 1.0
    assert large["drop_slowest"]["workers"] == 3  # 1% of 256, rounded up
    assert "check" not in result  # another micro-batch count: not the traced job


def test_same_seed_same_numbers_and_another_seed_other_draws(st):
    config = study.ScaleConfig(dp=(2, 8), draws=3, steps=5)
    a, b = study.run(st, config), study.run(st, config)
    assert a == b
    c = study.run(st, replace(config, seed=1))
    assert c["sizes"][1]["slowdown"]["draws"] != a["sizes"][1]["slowdown"]["draws"]


def test_scale_command_writes_its_results_and_figure(tmp_path):
    out = tmp_path / "s"
    argv = ["scale", str(SHIPPED / "trace-ST.parquet"), "--dp", "2,8", "--draws", "3", "--steps", "4"]
    assert cli.main([*argv, "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "scale.json").read_text())
    assert [s["gpus"] for s in result["sizes"]] == [8, 32]
    assert result["config"]["dp"] == [2, 8] and result["config"]["draws"] == 3
    assert (out / "scale.png").stat().st_size > 10_000 and (out / "scale.pdf").exists()
    table = pd.read_csv(out / "fit.csv")
    assert len(table) == len(result["fit"]["op_types"]) and {"worker_sd", "step_ks_p", "noise_ks"} <= set(table)
    assert sorted(set(table.optype)) == ["backward-compute", "forward-compute", "optimizer"]
    assert cli.main([*argv, "--out", str(out), "--quiet", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dp", "0"], "--dp must be positive DP sizes"),
        (["--dp", "x"], "--dp 'x': expected integers"),
        (["--dp", "2", "--fit-ranks", "0-1"], "--fit-ranks '0-1': expected dp=RANKS"),
        (["--dp", "2", "--fit-ranks", "dp=0-2"], "--fit-ranks: DP rank 2 is outside 0..1"),
        (["--dp", "2", "--draws", "0"], "--draws must be at least 1"),
        (["--dp", "2", "--drop-share", "1"], r"--drop-share must be in \[0, 1\)"),
        (["--dp", "2", "--seed", "-1"], "--seed must be at least 0 .got -1."),
        (["--dp", "2,8,2"], "--dp must be DP sizes given once each .got 2,8,2."),
        (["--dp", "2", "--fit-ranks", "dp=1,1"], "--fit-ranks dp=1,1: a DP rank given twice"),
        (["--dp", "2", "--fit-ranks", "dp=x"], "--fit-ranks 'dp=x': expected integers"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, extra, message):
    status = cli.main(["scale", str(SHIPPED / "trace-ST.parquet"), *extra, "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()


def test_a_plain_pytorch_trace_scales_in_dp_only(tmp_path, capsys):
    source = Path(__file__).resolve().parent.parent / "traces" / "pytorch" / "ddp-slow1"
    trace = tmp_path / "trace-ddp.parquet"
    assert cli.main(["import-ops", str(source), "--dp", "4", "--pp", "1", "--out", str(trace)]) == 0
    capsys.readouterr()
    assert cli.main(["scale", str(trace), "--dp", "4,16", "--draws", "3", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "persistently slow worker" in out and "B=3" in out
    result = json.loads((tmp_path / "s" / "scale.json").read_text())
    assert result["fit"]["slow_workers"][0]["dp_rank"] == 1  # the rank that slept
    assert result["backups_apply"]
    status = cli.main(["scale", str(trace), "--dp", "4", "--pp", "2", "--out", str(tmp_path / "t"), "--quiet"])
    assert status == 2
    assert "keeps its own pipeline" in capsys.readouterr().err


def test_a_job_without_gradient_collectives_says_backups_do_not_apply(tmp_path, st, capsys):
    frame = llm_trace.read_ops(SHIPPED / "trace-ST.parquet")
    frame = frame[frame.optype != "grads-reduce-scatter"]
    frame.to_csv(tmp_path / "trace-nogc.csv", index=False)
    argv = ["scale", str(tmp_path / "trace-nogc.csv"), "--meta", str(SHIPPED / "meta-ST.yaml"), "--dp", "2,4"]
    assert cli.main([*argv, "--draws", "2", "--steps", "3", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "backup replicas do not apply" in out and "B=1" not in out
    result = json.loads((tmp_path / "s" / "scale.json").read_text())
    assert [b["backups"] for b in result["sizes"][1]["backups"]] == [0]


def test_one_fitted_rank_has_no_worker_spread_to_see(st):
    job = fit.fit(study.restricted(st, (0,)), study.own_times(study.restricted(st, (0,))))
    for worker in job.report["healthy_workers"].values():  # what little the stages' factors differ is sampling
        assert worker["sigma"] == 0.0 and worker["workers"] == 4
    assert job.report["slow_workers"] == [] and job.report["workers"] == 4
    assert all(k["step_worker_ks_normal"] is None for k in job.report["op_types"])


def test_a_stage_without_compute_cannot_be_laid_out(ar):
    trace, _ = ar
    slots = trace.slots[~((trace.slots.stage == 3) & trace.slots.optype.str.endswith("compute"))]
    with pytest.raises(llm_trace.InputError, match="stage 3 has no forward or backward compute"):
        schedule.megatron(slots.reset_index(drop=True), 4, 4, 2, trace.path)


def test_a_missing_trace_is_a_one_line_error(tmp_path, capsys):
    status = cli.main(["scale", str(tmp_path / "nope.parquet"), "--dp", "2", "--out", str(tmp_path / "o")])
    assert status == 2 and "nope.parquet: no such file" in capsys.readouterr().err


def test_a_size_beyond_the_machines_memory_is_refused_before_any_draw(tmp_path, capsys, monkeypatch):
    from stragglersim.io import memory

    monkeypatch.setattr(memory, "machine_memory", lambda: 2 * 10**9)
    argv = ["scale", str(SHIPPED / "trace-ST.parquet"), "--dp", "2,5000", "--out", str(tmp_path / "o"), "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--dp 5000 with --steps 20: a synthetic job of 10,600,000 ops needs about 2.22 GB" in err
    assert "this machine has 2 GB" in err and not (tmp_path / "o").exists()


def test_a_folder_of_profiler_traces_is_pointed_to_import_ops(tmp_path, capsys):
    source = Path(__file__).resolve().parent.parent / "traces" / "pytorch" / "ddp-slow1"
    assert cli.main(["scale", str(source), "--dp", "4", "--out", str(tmp_path / "o")]) == 2
    assert "a folder; scale reads an op-level table" in capsys.readouterr().err


def test_the_summary_says_what_its_numbers_rest_on(st, ar):
    from stragglersim.llm.scale.report import summary_lines

    few = study.run(st, study.ScaleConfig(dp=(8, 2), draws=3, steps=3, fit_ranks=(1,)))
    text = "\n".join(summary_lines(few))
    assert "too few draws to check (--draws 10 or more)" in text and "one DP rank fitted" in text
    assert text.splitlines()[2].split() == ["GPUs", "DP", "S", "(95%", "of", "draws)", "step", "s", "B=1", "B=2",
                                            "B=3", "B=4", "-1%", "slowest"]  # fmt: skip
    assert text.splitlines()[4].split()[-2] == "-"  # DP 2 has no B=2: the column is kept for DP 8
    short = replace(st, steps=st.steps[:3], start=st.start[:, :3], duration=st.duration[:, :3])
    assert "3 steps fitted: too few" in "\n".join(summary_lines(study.run(short, study.ScaleConfig(dp=(2,), draws=2))))
    deeper = study.run(ar[0], study.ScaleConfig(dp=(2,), pp=8, microbatches=8, draws=2, steps=2, drop_share=0.005))
    text = "\n".join(summary_lines(deeper))
    assert "note: PP 8 splits the traced model (4 stages) over 8 stages" in text and "-0.5% slowest" in text


def test_too_few_values_or_no_spread_give_no_normality_test():
    assert fit._ks_normal(np.array([0.1, -0.1]), 1.0) is None
    assert fit._ks_normal(np.array([0.1, -0.1, 0.0]), 0.0) is None
    assert fit._ks_normal(np.array([0.1, -0.1, 0.0]), 0.1)["p_value"] > 0.5


def test_a_deeper_pipeline_splits_the_same_model_over_its_stages(ar):
    """PP 8 instead of the traced 4: each stage computes half as long; all stages together, as long."""
    _, job = ar
    totals = {}
    for pp in (4, 8):
        lay = synth.layout(job, pp, 8)
        drawn = synth.draw(job, lay, 2, 5, np.random.default_rng(0), share=0.0)
        compute = lay.slots["optype"].isin(llm_trace.COMPUTE).to_numpy()
        totals[pp] = drawn.durations.duration[compute].sum(axis=0).mean()
        p2p = lay.slots["optype"].isin(llm_trace.P2P).to_numpy()
        assert np.median(drawn.durations.transfer[p2p]) == pytest.approx(np.median(job.own[
            job.trace.slots["optype"].isin(llm_trace.P2P).to_numpy()]), rel=0.2)  # fmt: skip
    assert totals[8] == pytest.approx(totals[4], rel=0.05)
