"""System effects: failures and stalls, fail-slow episodes, the shared PS link, data-dependent cost."""

import json

import numpy as np
import pytest
from conftest import run
from stragglersim.cli.main import main
from stragglersim.cli.options import worded
from stragglersim.core.faults import Episodes, FailSlow, parse_fail_at
from stragglersim.io.errors import InputError

BACKUP = {"strategy": "backup", "workers": 4, "backups": 2, "latency": "exponential:rate=1", "timing_only": True}


@pytest.mark.parametrize("semantics", ["drop", "cancel", "tf"])
def test_backup_survives_b_failed_workers(semantics):
    config, log = run(semantics=semantics, steps=200, fail_at="4@5,5@5", **BACKUP)
    s = log.summary(config)
    assert s["updates"] == 200 and s["stalled"] is None
    assert not any(g.worker in (4, 5) and g.start > 5 for g in log.gradients)
    assert s["gradients_failed"] <= 2


@pytest.mark.parametrize("semantics", ["drop", "cancel"])
def test_b_plus_one_failed_workers_stall_with_a_clear_report(tmp_path, capsys, semantics):
    out = tmp_path / "run"
    rc = main(
        [
            "simulate",
            "--timing-only",
            "--strategy",
            "backup",
            "--workers",
            "4",
            "--backups",
            "2",
            "--semantics",
            semantics,
            "--fail-at",
            "0@1-2,2@5,3@5,4@5,5@5",  # worker 0 comes back; four never do
            "--steps",
            "200",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "stalled" in err and "4 of 6 workers are down and will not restart" in err
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["updates"] < 200 and summary["stalled"]


def test_tf_keeps_going_on_fewer_than_n_live_workers():
    """TF counts gradients, not workers: N + B tokens per step let the live workers contribute twice."""
    config, log = run(semantics="tf", steps=100, fail_at="3@5,4@5,5@5", **BACKUP)
    s = log.summary(config)
    assert s["updates"] == 100 and s["repeat_contributions"] > 0


def test_a_restarted_worker_computes_again():
    config, log = run(
        strategy="sync", workers=3, latency="constant:value=1", fail_at="1@2.5-6", steps=8, timing_only=True
    )
    failed = [g for g in log.gradients if g.fate == "failed"]
    assert [(g.worker, g.start, g.end) for g in failed] == [(1, 2.0, 2.5)]
    # the barrier waits for worker 1: it restarts at 6, computes until 7
    assert [u.time for u in log.updates] == [1.0, 2.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]


def test_random_failures_are_seeded_and_recover():
    kwargs = dict(
        strategy="async",
        workers=4,
        latency="exponential:rate=1",
        failures="rate=0.05,downtime=5",
        steps=400,
        timing_only=True,
        seed=3,
    )
    config, a = run(**kwargs)
    _, b = run(**kwargs)
    assert [g.fate for g in a.gradients] == [g.fate for g in b.gradients]
    assert a.summary(config)["gradients_failed"] > 0 and len(a.updates) == 400


def test_fail_slow_stretches_computations_piece_by_piece():
    episodes = Episodes(FailSlow(normal=1, slow=1, factor=4), rng=None)
    episodes.bounds = [0.0, 10.0, 20.0, 30.0]  # normal [0,10), slow [10,20), normal [20,30)
    assert episodes.stretch(2.0, 3.0) == pytest.approx(3.0)
    assert episodes.stretch(9.0, 2.0) == pytest.approx(1.0 + 4.0)  # 1 s normal, then 1 s of work at 1/4
    assert episodes.stretch(15.0, 2.0) == pytest.approx(5.0 + 0.75)  # 1.25 s of work in 5 s, then 0.75 s


def test_fail_slow_slows_about_the_slow_fraction_of_computations():
    """Episodes much longer than a computation, half the time slow: time runs 1 computation per
    second when normal and 1/3 when slow, so a quarter of the computations take 3 s: mean 1.5 s."""
    config, log = run(
        strategy="async",
        workers=4,
        latency="constant:value=1",
        fail_slow="normal=200,slow=200,factor=3",
        steps=20000,
        timing_only=True,
        seed=1,
    )
    durations = np.array([g.end - g.start for g in log.gradients if g.fate == "applied"])
    assert set(np.round(durations[(durations < 1.001) | (durations > 2.999)], 6)) <= {1.0, 3.0}
    assert durations.mean() == pytest.approx(1.5, rel=0.1)


def test_the_shared_ps_link_serialises_pushes():
    """Four workers finish at t=1 and each push holds the PS link 1 s: the update lands at t=5."""
    config, log = run(
        strategy="sync",
        workers=4,
        latency="constant:value=1",
        param_bytes=1e6,
        ps_bandwidth=1e6,
        steps=2,
        timing_only=True,
    )
    assert [u.time for u in log.updates] == [5.0, 10.0]
    _, small = run(
        strategy="sync",
        workers=2,
        latency="constant:value=1",
        param_bytes=1e6,
        ps_bandwidth=1e6,
        steps=2,
        timing_only=True,
    )
    assert [u.time for u in small.updates] == [3.0, 6.0]  # more workers slow the PS


def test_the_ps_link_with_cancel_releases_cancelled_pushes():
    _, log = run(
        strategy="backup",
        workers=2,
        backups=2,
        semantics="cancel",
        latency="constant:value=1",
        speed_factors="1,1,1,1",
        param_bytes=1e6,
        ps_bandwidth=2e6,
        steps=3,
        timing_only=True,
    )
    # 4 pushes queue at t=1, 0.5 s each: the 2nd completes at 2.0 and the other two are cancelled
    assert [u.time for u in log.updates] == [2.0, 4.0, 6.0]
    assert sum(g.fate == "cancelled" for g in log.gradients) == 6


def test_data_dependent_cost_makes_by_work_shards_imbalanced():
    config, log = run(
        strategy="async",
        workers=4,
        latency="constant:value=1",
        data_cost="nnz",
        data_partition="by-work",
        steps=400,
        timing_only=True,
    )
    mean = [
        np.mean([g.end - g.start for g in log.gradients if g.worker == w and g.fate == "applied"]) for w in range(4)
    ]
    assert mean == sorted(mean) and mean[3] > 1.2 * mean[0]
    _, shared = run(
        strategy="async", workers=4, latency="constant:value=1", data_cost="nnz", steps=400, timing_only=True
    )
    durations = [g.end - g.start for g in shared.gradients if g.fate == "applied"]
    assert np.mean(durations) == pytest.approx(1.0, rel=0.05) and np.std(durations) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fail_at": "16@1"}, "worker must be in [0, 15]"),
        ({"fail_at": "1@5-2"}, "need 0 <= DOWN < UP"),
        ({"fail_at": "1@x"}, "expected WORKER@DOWN[-UP]"),
        ({"fail_at": "1@1-5,1@3-6"}, "worker 1's down periods overlap"),
        ({"failures": "rate=0.1"}, "expected rate=...,downtime=..."),
        ({"fail_slow": "normal=10,slow=5,factor=0.5"}, "factor must be >= 1"),
        ({"ps_bandwidth": -1.0}, "--ps-bandwidth must be > 0"),
        ({"data_cost": "flops"}, "--data-cost: unknown 'flops'"),
        ({"data_partition": "by-work"}, "--data-partition by-work needs --data-cost nnz"),
        ({"fail_at": "1@1", "failures": "rate=1,downtime=1"}, "give one of them"),
    ],
)
def test_bad_fault_options(kwargs, message):
    from stragglersim.core.assemble import check
    from stragglersim.core.config import RunConfig

    with pytest.raises(InputError) as err:
        check(RunConfig(workers=16, **{"fail_at": "", **kwargs}))
    assert message in worded(err.value)


def test_fail_at_parsing():
    assert parse_fail_at("3@10-20, 4@15,3@30", 5) == {
        3: [(10.0, 20.0), (30.0, float("inf"))],
        4: [(15.0, float("inf"))],
    }


def test_the_printed_summary_counts_failed_gradients(tmp_path, capsys):
    """Failed computations are a fate of their own: the printout names them and the fates add
    up to the computed total."""
    args = ["simulate", "--timing-only", "--strategy", "backup", "--workers", "4", "--backups", "2"]
    args += ["--fail-at", "1@2.5-6,2@3", "--steps", "50", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["gradients_failed"] >= 1
    parts = ("applied", "dropped", "cancelled", "failed")
    assert s["gradients_computed"] == sum(s[f"gradients_{p}"] for p in parts)
    counts = ", ".join(f"{s[f'gradients_{p}']} {p}" for p in parts)
    assert f"gradients: {s['gradients_computed']} computed, {counts};" in out


def test_a_cancelled_push_gives_up_its_place_on_the_link():
    """N=1 of 3, pushes hold the link 1 s each: at t=2 the update cancels the two pushes still
    queued, so the next round's first push has the link at once (t=3 -> 4). Pushes that kept
    their place would hold the link until t=4 and delay every later update."""
    _, log = run(
        strategy="backup",
        workers=1,
        backups=2,
        semantics="cancel",
        latency="constant:value=1",
        param_bytes=1e6,
        ps_bandwidth=1e6,
        steps=3,
        timing_only=True,
    )
    assert [u.time for u in log.updates] == [2.0, 4.0, 6.0]
    assert [g.fate for g in log.gradients[:3]] == ["applied", "cancelled", "cancelled"]
