"""The claim studies (``reproduce --only staleness-depth|sync-vs-async|tradeoff-map``): tuned cells, the
verdicts the report draws from intervals, the map's winners and ties, and the studies end to end at toy
scale."""

import json
import math
from dataclasses import replace

import pytest
from stragglersim.core.config import RunConfig
from stragglersim.io.errors import InputError
from stragglersim.studies import claim_report, claims
from stragglersim.studies.cells import Cell, run_cells


def _row(strategy, time, low, high, reached=3, seeds=3, depth=3, workers=16):
    return {
        "strategy": strategy,
        "depth": depth,
        "workers": workers,
        "time_to_target": time,
        "time_to_target_low": low,
        "time_to_target_high": high,
        "reached": reached,
        "seeds": seeds,
    }


def test_the_map_names_the_faster_strategy_its_margin_and_ties():
    apart = claims.map_cells([_row("async", 2.0, 1.8, 2.2), _row("sync + backups", 1.0, 0.9, 1.1)])
    assert apart == [
        {"depth": 3, "optimizer": "sgd", "workers": 16, "winner": "sync + backups", "speedup": 2.0, "tie": False}
    ]
    rows = [_row("async", 2.0, 1.8, 2.2), {**_row("async", 1.0, 0.9, 1.1), "optimizer": "momentum 0.9"}]
    by_optimizer = claims.map_cells(rows)  # one cell per optimizer: momentum's async has no runner-up
    assert [(c["optimizer"], c["winner"], c["speedup"]) for c in by_optimizer] == [
        ("sgd", "async", None),
        ("momentum 0.9", "async", None),
    ]
    overlap = claims.map_cells([_row("async", 1.2, 1.0, 1.4), _row("sync + backups", 1.0, 0.9, 1.1)])
    assert (
        overlap[0]["winner"] == "sync + backups" and overlap[0]["tie"] and overlap[0]["speedup"] == pytest.approx(1.2)
    )


def test_a_strategy_that_missed_the_target_on_a_seed_cannot_win_a_cell():
    """The faster mean of two seeds that reached it loses to a slower strategy whose every seed did."""
    cells = claims.map_cells([_row("async", 0.5, 0.4, 0.6, reached=2), _row("sync + backups", 1.0, 0.9, 1.1)])
    assert cells[0] == {
        "depth": 3,
        "optimizer": "sgd",
        "workers": 16,
        "winner": "sync + backups",
        "speedup": None,
        "tie": False,
    }
    none = claims.map_cells(
        [_row("async", None, None, None, reached=0), _row("sync + backups", 1.0, 0.9, 1.1, reached=1)]
    )
    assert none[0]["winner"] is None


def test_one_seed_has_no_interval_and_is_never_apart():
    """One seed: no interval, so no difference is claimed (a tie), however far the means are."""
    cells = claims.map_cells(
        [
            _row("async", 5.0, None, None, reached=1, seeds=1),
            _row("sync + backups", 1.0, None, None, reached=1, seeds=1),
        ]
    )
    assert cells[0]["winner"] == "sync + backups" and cells[0]["tie"]


def _c2(accuracy, low, high, time, t_low, t_high, reached=3):
    return {
        "accuracy": accuracy,
        "accuracy_low": low,
        "accuracy_high": high,
        **{
            k: v
            for k, v in _row("x", time, t_low, t_high, reached).items()
            if k.startswith(("time", "reached", "seeds"))
        },
    }


@pytest.mark.parametrize(
    ("sync", "other", "holds", "words"),
    [
        (_c2(0.8, 0.78, 0.82, 1.0, 0.9, 1.1), _c2(0.7, 0.68, 0.72, 2.0, 1.9, 2.1), True, "2.00x sooner"),
        (_c2(0.8, 0.7, 0.9, 1.0, 0.5, 1.5), _c2(0.78, 0.7, 0.86, 1.1, 0.6, 1.6), False, "ties"),
        (_c2(0.8, 0.78, 0.82, 2.0, 1.9, 2.1), _c2(0.7, 0.68, 0.72, 1.0, 0.9, 1.1), False, "async reaches"),
        (_c2(0.8, 0.78, 0.82, None, None, None, reached=1), _c2(0.8, 0.78, 0.82, 1.0, 0.9, 1.1), False, "only async"),
        (_c2(0.8, 0.78, 0.82, 1.0, 0.9, 1.1, reached=3), _c2(0.8, 0.78, 0.82, None, None, None, 0), True, "only sync"),
    ],
)
def test_c2_holds_only_where_sync_is_ahead_beyond_the_intervals_and_behind_nowhere(sync, other, holds, words):
    verdict, held = claim_report._c2_verdict(sync, other)
    assert held is holds and words in verdict


def test_backups_and_budgets_from_their_rules():
    assert claims.backups_for(52, (0.04, 0.08)) == [2, 4]
    assert claims.backups_for(104, (0.04, 0.08)) == [4, 8]
    assert claims.backups_for(4, (0.04, 0.9)) == [1, 3]  # at least 1, below P
    # async with P workers computes P gradients per mean computation time: G x E[X] / P
    assert claims.budget_seconds("exponential:rate=4", 8, 1000) == pytest.approx(1000 * 0.25 / 8)


def _tiny(**fields):
    return RunConfig(model="logreg", dataset="digits", steps=25, eval_every="5", seed=0, **fields)


def test_tuned_cells_pick_the_best_validation_score_and_run_the_winner_on_every_seed(tmp_path):
    """A rate that cannot learn (1e-6) loses to one that can; the winner runs on the test set with each seed;
    a lone candidate runs without a validation run; a second call resumes every run."""
    learning = Cell({"cell": "a"}, (_tiny(lr=1e-6), _tiny(lr=0.5)))
    alone = Cell({"cell": "b"}, (_tiny(lr=0.1, strategy="async", workers=2),))
    out = run_cells([learning, alone], tmp_path, select_by="accuracy_at_budget", tune_seeds=(0,), seeds=(0, 1), jobs=1)
    assert out[0].winner.lr == 0.5 and out[0].scores[1] > out[0].scores[0]
    assert [s["seed"] for s in out[0].finals] == [0, 1] and all(s["evaluated_on"] == "test" for s in out[0].finals)
    assert out[1].winner.lr == 0.1 and out[1].scores == []
    assert len(list((tmp_path / "candidates" / "runs").iterdir())) == 2  # the lone candidate never ran there
    again = run_cells(
        [learning, alone], tmp_path, select_by="accuracy_at_budget", tune_seeds=(0,), seeds=(0, 1), jobs=1
    )
    assert [t.finals for t in again] == [t.finals for t in out]
    assert (tmp_path / "cells.csv").read_text().count("\n") == 3


def test_a_diverged_candidate_scores_worst_and_a_diverged_final_is_left_out_of_the_means(tmp_path):
    blowing = Cell({"cell": "a"}, (_tiny(lr=1e6, divergence_loss=1e3), _tiny(lr=0.5)))
    (out,) = run_cells([blowing], tmp_path, select_by="loss_at_budget", tune_seeds=(0,), seeds=(0,), jobs=1)
    assert out.scores[0] == math.inf and out.winner.lr == 0.5
    (forced,) = run_cells(
        [Cell({"cell": "b"}, (_tiny(lr=1e6, divergence_loss=1e3),))],
        tmp_path / "b",
        select_by="loss_at_budget",
        tune_seeds=(0,),
        seeds=(0, 1),
        jobs=1,
    )
    assert forced.diverged == 2 and forced.values("final_test_accuracy") == []


def test_reproduce_refuses_an_unknown_study(tmp_path):
    from stragglersim.studies.reproduce import reproduce

    with pytest.raises(InputError, match="only 'c3': one of paper, staleness-depth"):
        reproduce(tmp_path / "out", only="c3")
    assert not (tmp_path / "out").exists()


TOY = replace(  # one depth: the fewest compilations that run every part of every study
    claims.QUICK_CLAIMS,
    width=8,
    depths=(1,),
    dataset_size=600,
    c1_workers=(1, 4),
    c1_gradients=120,
    c2_totals=(6,),
    c2_depths=(1,),
    c2_gradients=200,
    map_workers=(2, 6),
    map_depths=(1,),
    map_targets=(0.3,),
    map_momentum_depths=(1,),
    map_gradients=200,
    backup_fractions=(0.2,),
)


@pytest.mark.parametrize(
    ("study", "heading", "figures"),
    [
        ("staleness-depth", "## C1", ("staleness-depth",)),
        ("sync-vs-async", "## C2", ("sync-vs-async", "sync-vs-async-mechanisms")),
        ("tradeoff-map", "## The map", ("tradeoff-map",)),
    ],
)
def test_each_claim_study_end_to_end_at_toy_scale(tmp_path, study, heading, figures):
    """A claim study into a folder holding another's facts: its figures, and a report with both sections;
    a second call resumes its data (nothing reruns: the same facts)."""
    from stragglersim.studies.reproduce import reproduce

    other = tmp_path / "facts" / "paper.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps(PAPER_FACTS))
    reproduce(tmp_path, only=study, claim_scale=TOY, jobs=1, overwrite=True, log=lambda m: None)
    report = (tmp_path / "report.md").read_text()
    assert heading in report and "## The paper's experiments" in report and "nothing tuned" in report
    for figure in figures:
        assert (tmp_path / f"{figure}.png").stat().st_size > 10_000
    facts = tmp_path / "data" / study / "facts.json"
    before = facts.read_text()
    reproduce(tmp_path, only=study, claim_scale=TOY, jobs=1, overwrite=True, log=lambda m: None)
    assert facts.read_text() == before
    if study == "sync-vs-async":
        c2 = (tmp_path / "data" / study / "cells.csv").read_text()
        assert all(m in c2 for m in ("PS service, load 2", "momentum 0.9", "budget x2"))


PAPER_FACTS = {  # what the paper's experiments leave in facts/paper.json, for the report to carry along
    "fit": {"spec": "exponential:rate=1", "ks": 0.01},
    "optimum": {"backups": 2, "time": 1.0, "estimated_backups": 2},
    "compare": {"backup": 1.0, "async": 0.5},
    "total": 8,
    "target": 0.9,
    "study_target": 0.93,
    "compare_workers": 8,
    "convex_below_bound": 1.0,
    "quick": True,
    "seconds": 1.0,
}


@pytest.mark.slow
def test_c1_direction_at_depth_six(tmp_path):
    """A reduced C1 study (depth 6 alone, P = 1 and 128, a third of the gradients, two rates, three seeds): 128
    async workers end below one beyond the intervals, as in the full study."""
    scale = replace(
        claims.ClaimScale(),
        depths=(6,),
        dataset_size=8000,
        c1_workers=(1, 128),
        c1_gradients=2000,
        async_lrs=(0.003, 0.1),  # the full study's winners at P = 128 and P = 1
        quality_every=None,
    )
    latency = "straggler:base=lognormal(mu=-5.942721304,sigma=0.4242954742),p=0.003317560555,factor=11.15130029"
    facts = claims.staleness_depth(tmp_path, scale, latency, jobs=1, quiet=True, log=lambda m: None)  # one compile
    one, many = facts["rows"]
    assert (one["workers"], many["workers"]) == (1, 128)
    assert many["accuracy_high"] < one["accuracy_low"], facts["rows"]
    assert facts["drops"][0]["separated"] and facts["drops"][0]["drop"] > 0.1
