"""Budgets (--until, --budget-gradients), the end of a run (last three and best evaluations), time
to target interpolated, divergence, the validation split and the wall clock (issue 28)."""

import json

import numpy as np
import pytest
import stragglersim
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.models.datasets import load_dataset, validation_split
from stragglersim.strategies import names

SMALL = dict(dataset="digits", hidden="32", batch_size=16)
OPTIONS = {  # one configuration per strategy, as the registry names them
    "sync": dict(workers=4),
    "backup": dict(workers=4, backups=2),
    "async": dict(workers=4),
    "softsync": dict(workers=6, softsync_n=2),
    "k-sync": dict(workers=5, k=2),
    "k-batch-sync": dict(workers=5, k=2),
    "k-async": dict(workers=5, k=2),
    "k-batch-async": dict(workers=5, k=2),
    "ssp": dict(workers=4, ssp_bound=2),
    "deadline": dict(workers=4, deadline=1.5),
    "adaptive-backup": dict(workers=6),
}


def unbudgeted(strategy: str, steps: int = 400):
    return Simulation(RunConfig(strategy=strategy, **OPTIONS[strategy], steps=steps, timing_only=True)).run()


@pytest.mark.parametrize("strategy", names())
def test_until_keeps_exactly_the_updates_up_to_that_time_for_every_strategy(strategy):
    assert strategy in OPTIONS, "a new strategy: give it options here"
    whole = unbudgeted(strategy)
    until = whole.updates[len(whole.updates) // 2].time * 0.999  # between two updates
    run = stragglersim.simulate(strategy=strategy, **OPTIONS[strategy], until=until, timing_only=True)
    want = [u.time for u in whole.updates if u.time <= until]
    assert run.updates["time"].tolist() == want and run.config.steps is None
    assert run.summary["end_time"] == until and run.summary["budget_spent"] == "until"


@pytest.mark.parametrize("strategy", names())
def test_budget_gradients_ends_at_the_update_that_reaches_it(strategy):
    whole = unbudgeted(strategy)
    applied = np.cumsum([len(u.gradients) for u in whole.updates])
    budget = int(applied[len(applied) // 3]) - 1  # inside an update of several gradients where there are
    run = stragglersim.simulate(strategy=strategy, **OPTIONS[strategy], budget_gradients=budget, timing_only=True)
    last = int(np.searchsorted(applied, budget)) + 1  # the first update whose running total reaches it
    assert run.summary["updates"] == last and run.summary["gradients_applied"] == applied[last - 1] >= budget
    assert applied[last - 2] < budget and run.summary["budget_spent"] == "gradients"
    assert run.summary["end_time"] == whole.updates[last - 1].time


def test_steps_caps_a_budget_and_says_the_budget_was_not_spent():
    run = stragglersim.simulate(strategy="async", workers=4, steps=10, until=1e6, timing_only=True)
    assert run.summary["updates"] == 10 and run.summary["budget_spent"] is None
    assert run.summary["end_time"] == run.summary["sim_time"]


def test_a_training_run_with_until_is_evaluated_at_that_time_and_reports_its_end():
    run = stragglersim.simulate(strategy="async", workers=4, **SMALL, until=30.0, seed=3)
    metrics = run.metrics
    assert metrics["sim_time"].iloc[-1] == 30.0 and run.summary["end_time"] == 30.0
    assert np.allclose(np.diff(metrics["sim_time"]), 1.5)  # auto: every until/20 seconds
    assert run.summary["accuracy_at_budget"] == metrics["test_accuracy"].iloc[-1]
    assert run.summary["loss_at_budget"] == metrics["test_loss"].iloc[-1]
    assert run.summary["mean_last3_accuracy"] == pytest.approx(metrics["test_accuracy"].iloc[-3:].mean())
    assert run.summary["mean_last3_loss"] == pytest.approx(metrics["test_loss"].iloc[-3:].mean())
    best = metrics["test_accuracy"].idxmax()
    assert run.summary["best_accuracy"] == metrics["test_accuracy"].max()
    assert run.summary["best_accuracy_time"] == metrics["sim_time"][best]
    assert run.summary["best_loss"] == metrics["test_loss"].min()
    assert (run.training["sim_time"] <= 30.0).all() and run.summary["updates"] == len(run.training)


def test_time_to_target_is_interpolated_between_evaluations_and_the_run_goes_on_without_stopping():
    common = dict(strategy="sync", workers=4, **SMALL, steps=120, eval_every="10", target_accuracy=0.6, seed=1)
    going = stragglersim.simulate(**common, stop_at_target=False)
    stopped = stragglersim.simulate(**common)
    m = going.metrics
    at = int(np.argmax(m["test_accuracy"].to_numpy() >= 0.6))
    assert at > 0 and going.summary["time_to_target"] == m["sim_time"][at]
    (t0, t1), (a0, a1) = m["sim_time"][at - 1 : at + 1], m["test_accuracy"][at - 1 : at + 1]
    assert going.summary["time_to_target_interpolated"] == pytest.approx(t0 + (0.6 - a0) / (a1 - a0) * (t1 - t0))
    assert t0 < going.summary["time_to_target_interpolated"] <= t1
    assert going.summary["updates"] == 120 and not going.summary["stopped_at_target"]
    assert m["update"].tolist() == list(range(0, 121, 10))  # evaluated to the end, the target reached or not
    assert stopped.summary["stopped_at_target"] and stopped.summary["updates"] == m["update"][at]
    for key in ("time_to_target", "time_to_target_interpolated", "updates_to_target_interpolated"):
        assert stopped.summary[key] == going.summary[key]


def test_a_loss_target_is_interpolated_the_other_way():
    run = stragglersim.simulate(strategy="sync", workers=4, **SMALL, steps=80, eval_every="10", target_loss=1.0)
    m = run.metrics
    at = int(np.argmax(m["test_loss"].to_numpy() <= 1.0))
    (t0, t1), (l0, l1) = m["sim_time"][at - 1 : at + 1], m["test_loss"][at - 1 : at + 1]
    assert run.summary["time_to_target_interpolated"] == pytest.approx(t0 + (l0 - 1.0) / (l0 - l1) * (t1 - t0))


def test_divergence_stops_the_run_at_the_first_bad_loss_and_exits_0(tmp_path, capsys):
    argv = ["simulate", "--quiet", "--strategy", "async", "--workers", "4", "--steps", "300", "--lr", "30"]
    argv += ["--divergence-loss", "20", "--eval-every", "100", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    losses = np.loadtxt(tmp_path / "r" / "training.csv", delimiter=",", skiprows=1, usecols=3)
    first = int(np.argmax(~np.isfinite(losses) | (losses > 20))) + 1
    assert summary["diverged"] is True and summary["diverged_at"] == first
    assert summary["updates"] < 300 and summary["updates"] - first < 128  # stopped within two chunks
    assert f"diverged: {summary['diverged_reason']}" in err and "above the divergence bound 20" in err


def test_the_validation_split_is_fixed_disjoint_and_replaces_the_test_set():
    data = load_dataset("digits")
    a, b = validation_split(data, 0.2), validation_split(data, 0.2)
    assert np.array_equal(a.x_test, b.x_test) and len(a.x_test) == round(0.2 * len(data.x_train))
    assert len(a.x_train) + len(a.x_test) == len(data.x_train)
    assert {r.tobytes() for r in a.x_test} <= {r.tobytes() for r in data.x_train}  # carved from the training set
    both = np.concatenate([a.x_train, a.x_test])  # and split between the two: together, the training set again
    assert sorted(r.tobytes() for r in both) == sorted(r.tobytes() for r in data.x_train)
    run = stragglersim.simulate(strategy="sync", workers=2, **SMALL, steps=20, validation_split=0.2)
    assert run.summary["evaluated_on"] == "validation"
    with pytest.raises(stragglersim.InputError, match="validation_split 0.9999: holds out"):
        stragglersim.simulate(strategy="sync", workers=2, steps=5, validation_split=0.9999)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(until=0), "until must be a finite number > 0"),
        (dict(budget_gradients=0), "budget_gradients must be an integer >= 1"),
        (dict(quality_every=0), "quality_every must be an integer >= 1"),
        (dict(quality_every=2, timing_only=True), "quality_every: a timing_only run computes no gradients"),
        (dict(divergence_loss=-1.0), "divergence_loss must be a finite number > 0"),
        (dict(validation_split=1.0), "validation_split is a fraction in (0, 1)"),
        (dict(steps=None), "steps is needed unless"),
    ],
)
def test_bad_budgets_name_the_field(options, message):
    with pytest.raises(stragglersim.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stragglersim.simulate(**options)


def test_the_wall_clock_is_recorded_per_run(tmp_path):
    run = stragglersim.simulate(steps=50, timing_only=True)
    assert run.summary["wall_seconds"] > 0
    assert run.summary["updates_per_wall_second"] == pytest.approx(50 / run.summary["wall_seconds"])


def test_a_target_met_by_the_initial_parameters_is_reached_at_time_zero():
    run = stragglersim.simulate(strategy="sync", workers=2, **SMALL, steps=20, target_accuracy=0.01)
    assert run.summary["time_to_target"] == run.summary["time_to_target_interpolated"] == 0.0
    assert run.summary["updates_to_target_interpolated"] == 0.0 and run.summary["updates"] == 0


def test_until_with_evaluations_counted_in_updates_ends_with_one_at_that_time():
    run = stragglersim.simulate(strategy="async", workers=4, **SMALL, until=20.0, eval_every="25")
    times = run.metrics["sim_time"].tolist()
    assert (
        times[-1] == 20.0 and all(t < 20.0 for t in times[:-1]) and run.metrics["update"].iloc[-1] == len(run.training)
    )


def test_divergence_found_at_an_evaluation_on_the_simulated_clock_stops_before_the_next_update():
    options = dict(steps=300, lr=1e4, eval_every="2s", divergence_loss=50.0)
    run = stragglersim.simulate(strategy="async", workers=4, **SMALL, **options)
    losses = run.training["train_loss"].to_numpy()
    first = int(np.argmax(~np.isfinite(losses) | (losses > 50))) + 1
    assert run.summary["diverged"] and run.summary["diverged_at"] == first
    assert run.summary["updates"] < 300 and run.summary["updates"] - first < 128


def test_parameters_that_overflow_in_one_update_diverge_at_that_evaluation():
    run = stragglersim.simulate(strategy="sync", workers=2, **SMALL, steps=5, lr=1e30, eval_every="1")
    assert run.summary["diverged"] and run.summary["diverged_at"] == 1 and run.summary["updates"] == 1
    assert np.isfinite(run.training["train_loss"]).all()  # the loss before the update was finite
    assert "by update 1" in run.summary["diverged_reason"]


def test_a_budget_spreads_the_automatic_evaluations_over_itself(tmp_path, capsys):
    run = stragglersim.simulate(strategy="sync", workers=4, **SMALL, budget_gradients=202)
    assert run.metrics["update"].tolist() == list(range(0, 52, 3))  # 51 updates of 4 gradients: every 3rd (about 20)
    assert run.summary["mean_last3_accuracy"] == pytest.approx(run.metrics["test_accuracy"].iloc[-3:].mean())
    assert main(["simulate", "--timing-only", "--until", "0.01", "--out", str(tmp_path / "none")]) == 0
    assert "0 updates in 0 s simulated: no update" in capsys.readouterr().out  # a budget spent before any update


def test_a_validation_split_that_leaves_a_class_without_training_examples_is_refused():
    with pytest.raises(stragglersim.InputError, match="training examples left hold no example of class"):
        stragglersim.simulate(strategy="sync", workers=2, steps=5, validation_split=0.999)


def test_a_regression_dataset_takes_a_validation_split_too():
    options = dict(dataset="teacher-student", dataset_size=400, workers=2, steps=10, lr=0.01)
    run = stragglersim.simulate(**options, validation_split=0.25)
    assert run.summary["evaluated_on"] == "validation" and run.summary["final_test_accuracy"] is None
    assert np.isfinite(run.summary["final_test_loss"])
