"""stragglersim tune: selection on a validation split (never the test split), checked against a
recomputation from the candidates' results.csv; the winners' test runs; its errors; the API."""

import contextlib
import io
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stragglersim
from stragglersim.cli.main import main
from stragglersim.core import components
from stragglersim.core.config import RunConfig
from stragglersim.io.errors import InputError, RunsFailed
from stragglersim.models.interface import Dataset
from stragglersim.studies.aggregation import collect, tuned_final
from stragglersim.studies.grids import Grid, Union
from stragglersim.studies.selection import Choice, choose, table
from stragglersim.studies.tuning import Tuning, _warnings

# One configuration, two candidates (lr 10000 diverges on both seeds; 0.3 wins, at the edge), two seeds.
RUN = {"strategy": "sync", "workers": 2, "steps": 20, "eval_every": "10", "divergence_loss": 50.0}
TARGET = {"target_accuracy": 0.5, "stop_at_target": False}
ARGS = [
    *("--strategy sync --workers 2 --steps 20 --eval-every 10 --divergence-loss 50 --seeds 0,1 --jobs 1").split(),
    *("--target-accuracy 0.5 --no-stop-at-target --tune lr=0.3,10000 --select-by accuracy_at_budget").split(),
]
METRICS = ("accuracy_at_budget", "loss_at_budget", "time_to_target")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tuning by the command line: its folder and what it printed on stdout and stderr."""
    out = tmp_path_factory.mktemp("tune") / "study"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(["tune", *ARGS, "--out", str(out)]) == 0
    return out, stdout.getvalue(), stderr.getvalue()


def recomputed(results: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Each configuration's winner, independently: a diverged or missing value is the worst, the mean
    over seeds per candidate, the best per configuration (the first of equals)."""
    lower = metric != "accuracy_at_budget"
    ok = ~results["diverged"].astype(bool) & results[metric].notna()
    scored = results.assign(score=results[metric].where(ok, math.inf if lower else -math.inf))
    means = scored.groupby([*by, "lr"], sort=True)["score"].mean().reset_index()
    best = means.groupby(by)["score"].transform("min" if lower else "max")
    return means[means["score"] == best].groupby(by).head(1).set_index(by)


def test_the_winner_is_the_best_mean_over_seeds_on_the_validation_split(tuned):
    out, stdout, stderr = tuned
    candidates = pd.read_csv(out / "candidates" / "results.csv")
    assert set(candidates["evaluated_on"]) == {"validation"} and len(candidates) == 4
    assert candidates.groupby("lr")["diverged"].sum().to_dict() == {0.3: 0, 10000.0: 2}
    table = pd.read_csv(out / "tuned.csv")
    expected = recomputed(candidates.assign(one=1), "accuracy_at_budget", ["one"])
    assert table["lr"].tolist() == expected["lr"].tolist() == [0.3]
    assert table["accuracy_at_budget[lr=0.3]"][0] == pytest.approx(expected["score"].iloc[0])
    assert table["accuracy_at_budget[lr=10000]"].isna().all()  # -inf: a diverged seed, written empty
    assert table["diverged[lr=0.3]"][0] == 0 and table["diverged[lr=10000]"][0] == 2
    assert table["at_edge"].tolist() == [True]  # 0.3 is the smallest candidate
    assert "stragglersim tune: warning: strategy=sync: lr=0.3 is the smallest candidate of lr; widen the grid" in stderr
    assert "lr=0.3 (at the edge of the candidates)" in stdout


def test_each_metric_selects_as_a_recomputation_from_results_csv(tuned):
    out, _, _ = tuned
    runs = collect([out / "candidates"])  # the library's inputs: each run's config.toml and summary.json
    configs = [RunConfig(**r.config) for r in runs]
    results = pd.read_csv(out / "candidates" / "results.csv").assign(one=1)  # the recomputation's
    for metric in METRICS:
        (choice,) = choose(configs, [r.summary for r in runs], [{"lr": 0.3}, {"lr": 10000.0}], metric)
        expected = recomputed(results, metric, ["one"])
        assert choice.candidates[choice.winner]["lr"] == expected["lr"].iloc[0], metric
        assert choice.means[choice.winner] == pytest.approx(expected["score"].iloc[0]), metric


def _config(workers: int, lr: float, seed: int) -> RunConfig:
    return RunConfig(strategy="sync", workers=workers, lr=lr, seed=seed, validation_split=0.1, **TARGET)


def test_infinite_scores_and_ties_follow_the_documented_rule():
    """A seed that missed the target or diverged is +inf (a candidate with one loses to any that
    always reached it, however slow); equal means, infinite ones too, go to the candidate listed first."""
    rows = [  # workers, lr, seed, time_to_target, diverged
        (1, 0.1, 0, 5.0, False), (1, 0.1, 1, None, False), (1, 1.0, 0, 50.0, False), (1, 1.0, 1, 60.0, False),
        (2, 0.1, 0, None, True), (2, 0.1, 1, 1.0, False), (2, 1.0, 0, None, False), (2, 1.0, 1, 2.0, False),
        (4, 0.1, 0, 3.0, False), (4, 0.1, 1, 3.0, False), (4, 1.0, 0, 2.0, False), (4, 1.0, 1, 4.0, False),
    ]  # fmt: skip
    configs = [_config(w, lr, s) for w, lr, s, _, _ in rows]
    summaries = [{"time_to_target": t, "diverged": d} for *_, t, d in rows]
    choices = choose(configs, summaries, [{"lr": 0.1}, {"lr": 1.0}], "time_to_target")
    assert [c.candidates[c.winner]["lr"] for c in choices] == [1.0, 0.1, 0.1]
    frame = pd.DataFrame(rows, columns=["workers", "lr", "seed", "time_to_target", "diverged"])
    expected = recomputed(frame, "time_to_target", ["workers"])
    assert expected["lr"].tolist() == [1.0, 0.1, 0.1]
    assert [c.edges for c in choices] == [["lr"]] * 3


class Untouchable:
    """A test split that may be counted (a Dataset checks its length) but never read."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __getitem__(self, key):
        raise AssertionError("the test split was read")

    def __array__(self, *args, **kwargs):
        raise AssertionError("the test split was read")


class Untouched(Dataset):
    """A Dataset whose test split is not even checked where it is made (checking reads it)."""

    def __post_init__(self):
        pass


def test_selection_never_reads_the_test_split_and_the_final_runs_do(tuned, tmp_path, monkeypatch):
    real = components.load_dataset

    def untouchable(*args, **kwargs):
        d = real(*args, **kwargs)
        return Untouched(d.x_train, d.y_train, Untouchable(len(d.x_test)), Untouchable(len(d.y_test)), d.task, d.name)

    monkeypatch.setattr(components, "load_dataset", untouchable)
    out = tmp_path / "study"
    options = {**RUN, **TARGET, "seeds": [0, 1], "jobs": 1}
    with pytest.raises(RunsFailed, match="2 of 2 runs failed"):  # the final runs: they read it
        stragglersim.tune(out, tune={"lr": [0.3, 10000]}, select_by="accuracy_at_budget", **options)
    assert "the test split was read" in (out / "final" / "failures.txt").read_text()
    assert not (out / "tuned.csv").exists()
    poisoned = pd.read_csv(out / "candidates" / "results.csv").sort_values(["lr", "seed"], ignore_index=True)
    clean = pd.read_csv(tuned[0] / "candidates" / "results.csv").sort_values(["lr", "seed"], ignore_index=True)
    for metric in METRICS:  # the same selection as with the test split intact
        pd.testing.assert_series_equal(poisoned[metric], clean[metric])


def test_the_final_runs_are_evaluated_on_the_test_set_with_the_same_seeds(tuned):
    out, _, _ = tuned
    final = pd.read_csv(out / "final" / "results.csv")
    assert set(final["evaluated_on"]) == {"test"} and sorted(final["seed"]) == [0, 1]
    assert set(final["lr"]) == {0.3} and "validation_split" not in final or final["validation_split"].isna().all()
    table = pd.read_csv(out / "tuned.csv")
    assert table["test_n_seeds"][0] == 2 and table["test_diverged"][0] == 0
    assert table["test_accuracy_at_budget"][0] == pytest.approx(final["accuracy_at_budget"].mean())
    assert table["test_reached_target"][0] == final["time_to_target"].notna().sum()


def test_the_api_returns_the_table_of_the_command_line(tuned, tmp_path):
    options = {**RUN, **TARGET, "seeds": [0, 1], "jobs": 1}
    with pytest.warns(UserWarning, match="widen the grid"):
        table = stragglersim.tune(tmp_path / "api", tune={"lr": [0.3, 1e4]}, **options)
    pd.testing.assert_frame_equal(table, pd.read_csv(tuned[0] / "tuned.csv"))


def test_compare_and_plot_read_a_tuned_folder_as_its_final_runs(tuned, tmp_path, capsys):
    out, _, _ = tuned
    assert tuned_final(out) == out / "final"
    assert main(["compare", str(out), "--metric", "accuracy_at_budget"]) == 0
    assert "accuracy_at_budget" in capsys.readouterr().out
    assert main(["plot", str(out), "--out", str(tmp_path / "figures")]) == 0
    assert list((tmp_path / "figures").glob("*.png"))
    assert (
        main(["aggregate", str(out)]) == 0 and f"results: {out / 'final' / 'aggregate.csv'}" in capsys.readouterr().out
    )
    final = out / "final"  # the Python API reads the tuning folder as its final runs too
    assert stragglersim.aggregate(out).equals(stragglersim.aggregate(final))
    assert stragglersim.compare(out).equals(stragglersim.compare(final))
    half = tmp_path / "half"
    shutil.copytree(out, half, ignore=shutil.ignore_patterns("final"))
    assert main(["compare", str(half)]) == 2
    assert "final runs are not done" in capsys.readouterr().err


def test_the_same_command_resumes_and_another_tuning_is_refused(tuned, capsys):
    out, _, _ = tuned
    before = (out / "tuned.csv").read_text()
    assert main(["tune", *ARGS, "--out", str(out), "--quiet"]) == 0  # every run complete: nothing runs
    assert (out / "tuned.csv").read_text() == before
    capsys.readouterr()
    assert main(["tune", *ARGS[:-1], "loss_at_budget", "--out", str(out), "--quiet"]) == 2
    assert "holds another tuning" in capsys.readouterr().err


BASE = "--workers 2 --steps 20 --seeds 0,1".split()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tune", "lrr=0.1,1"], "--tune lrr: unknown option; did you mean 'lr'?"),
        (["--tune", "lr=0.1,fast"], "--tune 'lr=0.1,fast': 'fast' is not a number"),
        (["--tune", "lr=0.1,1", "--select-by", "time_to_target"], "needs a target, --target-accuracy or --target-loss"),
        (["--tune", "lr=0.1,1", "--lr", "0.5"], "--tune lr: also given as --lr 0.5; tune it or fix it, not both"),
        (["--tune", "lr=0.1,1", "--select-by", "accuracy"], "--select-by 'accuracy': one of time_to_target"),
        (["--tune", "seed=1,2"], "--tune seed: not an option to tune"),
        (["--tune", "lr=0.1,0.1"], "--tune lr: give its candidates, each once"),
        (["--tune", "lr=0.1,1", "--validation-split", "0.1,0.2"], "--validation-split 0.1,0.2: give one fraction"),
        (["--tune", "lr=0.1,1", "--target-accuracy", "0.5", "--stop-at-target"], "give --no-stop-at-target"),
        (["--tune", "lr"], "--tune 'lr': expected OPTION=V1,V2,... like lr=0.01,0.1"),
        (["--tune", "lr=0.1", "--tune", "lr=1"], "--tune lr: given twice"),
        (["--tune", "lr=0.1,"], "--tune 'lr=0.1,': an empty value in the list"),
        (["--tune", "stop_at_target=maybe"], "'maybe' is not true or false"),
        (["--tune", "batch_size=16-18,x"], "--tune batch_size 'x': expected integers"),
        (["--tune", "latency=x"], "--tune latency: not an option to tune"),
        (["--tune", "lr=0.1", "--timing-only"], "--timing-only: tuning compares trained runs"),
        (["--tune", "lr=0.1", "--extend"], "--extend: a tuning takes no other runs"),
        (
            ["--strategy", "sync,async", "--tune", "staleness_cutoff=1,2"],
            "--strategy sync does not take staleness_cutoff",
        ),
        (
            ["--strategy", "sync,async", "--tune", "staleness_cutoff=none,2"],
            "--tune staleness_cutoff=2: --strategy sync",
        ),
    ],
)
def test_bad_tuning_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "study"
    assert main(["tune", *BASE, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_validation_split_is_carved_from_the_training_set_only():
    """What tune relies on: the split's evaluation set is training examples, the same for every seed."""
    from stragglersim.models.datasets import load_dataset, validation_split

    d = load_dataset("digits")
    v = validation_split(d, 0.1)
    assert len(v.x_test) == round(0.1 * len(d.x_train)) and len(v.x_train) + len(v.x_test) == len(d.x_train)
    rows = {r.tobytes() for r in d.x_train}
    assert all(r.tobytes() in rows for r in np.asarray(v.x_test))


def test_an_output_folder_of_something_else_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    for out, message in (("file", "exists and is not a directory"), ("full", "not empty and records no tuning")):
        assert main(["tune", *BASE, "--tune", "lr=0.1,1", "--out", str(tmp_path / out)]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def test_overwrite_starts_another_tuning_in_the_folder(tuned, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(tuned[0], out)
    args = [*ARGS[:-1], "loss_at_budget", "--out", str(out), "--overwrite", "--quiet"]
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["tune", *args]) == 0
    assert 'select_by = "loss_at_budget"' in (out / "tune.toml").read_text()
    table = pd.read_csv(out / "tuned.csv")
    assert table["lr"].tolist() == [0.3] and "loss_at_budget[lr=10000]" in table


def test_the_options_parse_as_their_fields():
    tuning = Tuning.parse(["batch_size=16-18,32", "staleness_cutoff=none,2", "optimizer=sgd,adam"], "loss_at_budget")
    assert tuning.options == {
        "batch_size": [16, 17, 18, 32],
        "staleness_cutoff": [None, 2],
        "optimizer": ["sgd", "adam"],
    }
    assert tuning.validation_split == 0.1 and len(tuning.candidates()) == 16
    assert Tuning.parse(["lr=0.1"], "loss_at_budget", "0.25").validation_split == 0.25
    flags = Tuning.parse(["gradient_quality=true,false"], "loss_at_budget")
    assert flags.options == {"gradient_quality": [True, False]}
    assert Tuning.from_mapping({"lr": 0.1}, "time_to_target", None).options == {"lr": [0.1]}
    for bad, message in (([1], "a dict of option"), ({}, "give the options to tune"), ({"seed": [1]}, "not an option")):
        with pytest.raises(InputError, match=message):
            Tuning.from_mapping(bad, "time_to_target", 0.1)


def test_a_union_of_grids_gets_the_candidates_in_each():
    union = Union([Grid({"strategy": ["sync"], "steps": [5]}), Grid({"strategy": ["async"], "steps": [5]})])
    grid = Tuning({"lr": [0.1, 1.0]}, "accuracy_at_budget").selection_grid(union)
    configs = grid.configs()
    assert sorted((c.strategy, c.lr) for c in configs) == [("async", 0.1), ("async", 1.0), ("sync", 0.1), ("sync", 1.0)]
    assert {(c.validation_split, c.stop_at_target) for c in configs} == {(0.1, False)}
    with pytest.raises(InputError, match="also given as"):
        Tuning({"lr": [0.1, 1.0]}, "accuracy_at_budget").selection_grid(Union([Grid({"lr": [0.5]})]))


def test_the_table_counts_missed_targets_and_warns_without_a_finite_candidate():
    configs = [_config(1, lr, s) for lr in (0.1, 1.0) for s in (0, 1)]
    summaries = [{"time_to_target": None, "diverged": lr == 1.0} for lr in (0.1, 1.0) for s in (0, 1)]
    (choice,) = choose(configs, summaries, [{"lr": 0.1}, {"lr": 1.0}], "time_to_target")
    (row,) = table([choice], [[{"accuracy_at_budget": 0.5, "time_to_target": 3.0}, {"diverged": True}]])
    assert row["lr"] == 0.1 and row["missed[lr=0.1]"] == 2 and row["diverged[lr=1]"] == 2
    assert row["test_accuracy_at_budget"] == 0.5 and row["test_diverged"] == 1 and row["test_reached_target"] == 1
    lines = _warnings(choice, row)
    assert (
        lines[0]
        == "strategy=sync: no candidate has a finite time_to_target on every seed; lr=0.1 (listed first) is kept"
    )
    words = Choice(choice.base, [{"optimizer": "sgd"}, {"optimizer": "adam"}], choice.runs, "time_to_target")
    assert words.edges == []  # not numeric: no edge
    assert tuned_final(Path("no/such/folder")) == Path("no/such/folder")
