"""The user's own model, dataset and optimizer (issue 30): by import path on the command line, as
objects through the API; the built-in's numbers exactly for a user MLP built the same way; sweeps in
worker processes; a changed source file refused on resume; every bad input one line."""

import shutil
from pathlib import Path

import numpy as np
import optax
import own_components as own
import pandas as pd
import pytest
import stragglersim
from conftest import interrupted_at_checkpoint
from stragglersim.cli.main import main

OWN = ["--model", "own_components:mlp", "--dataset", "own_components:digits", "--optimizer", "own_components:sgd"]
RUN = ["simulate", "--quiet", "--steps", "40", "--eval-every", "10"]
TABLES = ("metrics.csv", "training.csv", "updates.csv", "gradients.csv")


@pytest.mark.parametrize(
    "strategy",
    [
        ["--strategy", "backup", "--workers", "4", "--backups", "1"],
        ["--strategy", "async", "--workers", "4"],
        ["--strategy", "async", "--workers", "4", "--staleness-lr"],  # a gradient of staleness t scaled by 1/t
    ],
)
def test_a_user_mlp_by_import_path_gives_the_builtin_numbers_exactly(tmp_path, strategy):
    """The fused sync step (backup) and the stale path (async) serve the user's model as the built-in."""
    assert main([*RUN, *strategy, *OWN, "--out", str(tmp_path / "own")]) == 0
    assert main([*RUN, *strategy, "--out", str(tmp_path / "builtin")]) == 0
    for name in TABLES:
        assert (tmp_path / "own" / name).read_bytes() == (tmp_path / "builtin" / name).read_bytes(), name
    config = (tmp_path / "own" / "config.toml").read_text()
    assert 'model = "own_components:mlp"' in config and 'optimizer = "own_components:sgd"' in config
    digest = __import__("hashlib").sha256(Path(own.__file__).read_bytes()).hexdigest()
    assert f'sources = "model=sha256:{digest};dataset=sha256:{digest};optimizer=sha256:{digest}"' in config


def test_a_two_process_sweep_imports_them_in_its_workers(tmp_path):
    argv = ["sweep", "--quiet", "--steps", "20", "--workers", "4", "--backups", "0,1", "--eval-every", "10", *OWN]
    assert main([*argv, "--jobs", "2", "--out", str(tmp_path / "sweep")]) == 0
    results = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert sorted(results["backups"]) == [0, 1] and (results["final_test_accuracy"] > 0.2).all()
    assert (results["model"] == "own_components:mlp").all()


def _changing_copy(tmp_path, monkeypatch) -> tuple[Path, str]:
    """A copy of own_components under a name of its own (a module of this test alone), importable."""
    name = f"mine_{tmp_path.name.replace('-', '_')}"
    file = tmp_path / "src" / f"{name}.py"
    file.parent.mkdir()
    shutil.copy(own.__file__, file)
    monkeypatch.syspath_prepend(str(file.parent))
    return file, name


def test_resuming_with_a_changed_source_file_is_refused(tmp_path, monkeypatch, capsys):
    file, name = _changing_copy(tmp_path, monkeypatch)
    args = [*RUN, "--model", f"{name}:mlp", "--optimizer", f"{name}:clipped_momentum", "--checkpoint-every", "10"]
    args += ["--out", str(tmp_path / "cut")]
    with interrupted_at_checkpoint(monkeypatch):
        assert main(args) == 130
    original = file.read_text()
    file.write_text(original + "\n# edited\n")
    capsys.readouterr()
    resume = ["simulate", "--quiet", "--resume", str(tmp_path / "cut.checkpoint"), "--out", str(tmp_path / "cut")]
    assert main(resume) == 2
    err = capsys.readouterr().err
    assert f"--model {name}:mlp: its source file {file.resolve()} has changed since" in err and err.count("\n") == 1
    file.write_text(original)
    assert main(resume) == 0
    assert main([*args[:-2], "--out", str(tmp_path / "whole")]) == 0  # the resumed run is the uninterrupted one
    for table in TABLES:
        assert (tmp_path / "cut" / table).read_bytes() == (tmp_path / "whole" / table).read_bytes(), table

    sweep = ["sweep", "--quiet", "--steps", "10", "--workers", "2", "--model", f"{name}:mlp", "--jobs", "1"]
    assert main([*sweep, "--out", str(tmp_path / "sweep")]) == 0
    file.write_text(original + "\n# edited\n")
    assert main([*sweep, "--out", str(tmp_path / "sweep")]) == 2
    assert "has changed since" in capsys.readouterr().err


def test_the_api_takes_the_objects_themselves_and_an_optax_transformation(tmp_path):
    data = own.digits()
    options = dict(workers=4, backups=1, steps=30, eval_every="10")
    run = stragglersim.simulate(model=own.mlp(data.shape), dataset=data, optimizer=optax.adam(1e-3), **options)
    builtin = stragglersim.simulate(optimizer="adam", lr=1e-3, **options)
    assert run.config.model.startswith("python-object:") and run.config.optimizer.startswith("python-object:")
    assert np.allclose(run.training["train_loss"], builtin.training["train_loss"], rtol=1e-5)
    importable = stragglersim.simulate(model=own.mlp, dataset=own.digits, optimizer=own.sgd, **options)
    assert (importable.config.model, importable.config.optimizer) == ("own_components:mlp", "own_components:sgd")
    with pytest.raises(stragglersim.InputError, match=r"cannot be sent to worker processes; define it in a module"):
        stragglersim.sweep(tmp_path / "s", model=own.mlp(data.shape), backups=[0, 1], steps=5, jobs=2)
    assert not (tmp_path / "s" / "grid.toml").exists()  # refused before anything is written: the fix works there
    assert len(stragglersim.sweep(tmp_path / "s", model=own.mlp(data.shape), backups=[0, 1], steps=5, jobs=1)) == 2
    table = stragglersim.sweep(tmp_path / "here", optimizer=optax.adam(1e-3), backups=[0, 1], steps=5, jobs=1)
    assert len(table) == 2 and table["optimizer"].str.startswith("python-object:").all()  # one value, not a list
    other = stragglersim.sweep(tmp_path / "here", optimizer=optax.sgd(5.0), backups=[0, 1], steps=5, jobs=1, extend=1)
    assert len(other) == 4 and other["optimizer"].nunique() == 2  # another object: its own runs, never the first's


def test_the_lr_rules_reach_a_user_optimizer_through_its_injected_rate(tmp_path, capsys):
    """--lr-scaling linear with a varying count per update (deadline), --lr-schedule exponential: the
    user's sgd factory follows the built-in sgd; a transformation with its rate inside refuses them."""
    base = ["--strategy", "deadline", "--workers", "4", "--deadline", "1.0", "--lr", "0.02", "--lr-scaling", "linear"]
    base += ["--lr-schedule", "exponential", "--lr-decay-steps", "10"]
    assert main([*RUN, *base, "--optimizer", "own_components:sgd", "--out", str(tmp_path / "own")]) == 0
    assert main([*RUN, *base, "--out", str(tmp_path / "builtin")]) == 0
    assert main([*RUN, *base[:-6], "--optimizer", "own_components:sgd", "--out", str(tmp_path / "plain")]) == 0
    own_loss, builtin_loss, plain_loss = (
        pd.read_csv(tmp_path / name / "training.csv")["train_loss"] for name in ("own", "builtin", "plain")
    )
    assert np.allclose(own_loss, builtin_loss, rtol=1e-5) and not np.allclose(own_loss, plain_loss, rtol=1e-3)
    capsys.readouterr()
    assert (
        main([*RUN, "--optimizer", "own_components:ADAM", "--lr-scaling", "linear", "--out", str(tmp_path / "x")]) == 2
    )
    err = capsys.readouterr().err
    assert "--lr-scaling linear: cannot apply to --optimizer own_components:ADAM, whose learning rate is fixed" in err
    assert main([*RUN, "--optimizer", "own_components:clipped_momentum", "--out", str(tmp_path / "chain")]) == 0
    tune = ["tune", "--optimizer", "own_components:ADAM", "--tune", "lr=0.01,0.1", "--out", str(tmp_path / "t")]
    assert main(tune) == 2
    assert "--tune lr: --optimizer own_components:ADAM has its learning rate inside it" in capsys.readouterr().err


@pytest.mark.parametrize(
    "given, message",
    [
        (
            ["--model", "own_components:raises"],
            "--model own_components:raises: the factory raised RuntimeError: no GPU",
        ),
        (["--model", "own_components:wrong_inputs"], "its loss fails on a batch of digits (x float32[32, 8, 8, 1]"),
        (["--model", "own_components:per_example_loss"], "its loss returns shapes [(32,)] on (x float32[32, 8, 8, 1]"),
        (["--model", "own_components:nan_at_init"], "its loss is nan at the initial parameters (seed 0)"),
        (["--model", "own_components:huge"], "huge: needs about 275 GB of memory, 275 GB of it for the model"),
        (["--dataset", "own_components:tiny"], "--dataset own_components:tiny: 12 training examples, fewer than one"),
        (
            ["--dataset", "own_components:tiny", "--batch-size", "4", "--data-partition", "sharded", "--workers", "16"],
            "--data-partition sharded: 16 workers need at least 16 training examples to shard",
        ),
        (["--dataset", "own_components:not_a_dataset"], "returned a dict, not a stragglersim.Dataset"),
        (["--model", "nosuchmodule:f"], "--model nosuchmodule:f: no module named 'nosuchmodule' on the path"),
        (["--model", "own_components:nothing"], "--model own_components:nothing: module own_components has no"),
        (["--model", "own_components.mlp"], "unknown model 'own_components.mlp': give one of logreg, mlp"),
        (["--optimizer", "own_components:optimizer_raises"], "the factory raised ValueError: learning_rate must"),
        (["--optimizer", "own_components:returns_none"], "returned a NoneType, not an optax GradientTransformation"),
        (["--optimizer", "own_components:SEVEN"], "own_components:SEVEN: a int, not an optax transformation or a"),
        (["--optimizer", "math:sqrt"], "--optimizer math:sqrt: the factory raised TypeError"),
        (["--optimizer", "own_components:adam_fixed", "--lr-schedule", "exponential"], "--lr-schedule exponential: ca"),
        (["--dataset", "own_components:SEVEN"], "--dataset own_components:SEVEN: a int, not a Dataset or a loader"),
        (["--model", "own_components:SEVEN"], "--model own_components:SEVEN: a int, not a Model or a factory"),
        (["--model", "own_components:not_a_model"], "own_components:not_a_model: returned a dict, not a stragglersim"),
        (["--model", "own_components:init_not_a_function"], "init_not_a_function: its init is not a function"),
        (["--model", "own_components:integer_params"], "its init must return a pytree of float arrays"),
        (
            ["--model", "own_components:evaluate_one_value"],
            "its evaluate returns shapes [()] on (x float32[32, 8, 8, 1]",
        ),
        (["--model", "broken_module:f"], "--model broken_module:f: importing broken_module raised ZeroDivisionError"),
        (["--model", "own_components.nothing:f"], "no module named 'own_components.nothing' on the path or in"),
        (["--model", "broken_dependency:f"], "importing broken_dependency failed: ModuleNotFoundError: No module"),
        (["--model", "own_components:mlp:x"], "(an import path has one ':', between the module and the name)"),
        (["--model", "own_components:too_few_outputs"], "it gives 2 outputs per example, but the labels go up to 9"),
        (["--dataset", "own_components:float_labels"], "--dataset own_components:float_labels: dataset dataset: y_tr"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, given, message):
    assert main([*RUN, *given, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_dataset_object_by_path_a_fixed_optimizer_and_a_model_without_accuracy(tmp_path):
    argv = [*RUN, "--dataset", "own_components:TINY", "--batch-size", "4", "--optimizer", "own_components:adam_fixed"]
    assert main([*argv, "--model", "own_components:no_accuracy", "--out", str(tmp_path / "run")]) == 0
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert "test_accuracy" not in metrics or metrics["test_accuracy"].isna().all()


def test_objects_get_their_import_path_or_a_token_of_this_process(tmp_path, monkeypatch):
    from stragglersim.io import imports

    assert imports.option_value(own.mlp, "model") == "own_components:mlp"
    first, second = (lambda shape: None), (lambda shape: None)
    tokens = [imports.option_value(f, "model") for f in (first, second, first)]
    assert tokens[0] == tokens[2] != tokens[1] and all(t.startswith("python-object:lambda") for t in tokens)
    with pytest.raises(stragglersim.InputError, match="given to the Python API in another process"):
        imports.resolve("model", "python-object:never-registered")
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"here_{tmp_path.name.replace('-', '_')}.py").write_text("VALUE = 41\n")
    assert imports.resolve("model", f"here_{tmp_path.name.replace('-', '_')}:VALUE") == 41  # the working folder


def test_a_dataset_object_is_checked_where_it_is_made():
    x = np.zeros((6, 3), np.float32)
    with pytest.raises(stragglersim.InputError, match="labels of a classification must be integer|integer labels"):
        stragglersim.Dataset(x, np.full(6, 0.5), x, np.zeros(6))
    with pytest.raises(stragglersim.InputError, match="training inputs are"):
        stragglersim.Dataset(x, np.zeros(6, int), x[:, :2], np.zeros(6, int))
    with pytest.raises(stragglersim.InputError, match="x_train must hold numbers"):
        stragglersim.Dataset(np.array([["a"]] * 6), np.zeros(6, int), x, np.zeros(6, int))
    with pytest.raises(stragglersim.InputError, match="labels must be one per example"):
        stragglersim.Dataset(x, np.zeros((6, 2), int), x, np.zeros(6, int))
    with pytest.raises(stragglersim.InputError, match="empty training or test set"):
        stragglersim.Dataset(x[:0], np.zeros(0, int), x, np.zeros(6, int))
    with pytest.raises(stragglersim.InputError, match="unknown task"):
        stragglersim.Dataset(x, np.zeros(6), x, np.zeros(6), task="ranking")
    shape = stragglersim.Dataset(x, np.arange(6) % 3, x[:2], np.arange(2), name="d").shape
    assert shape == stragglersim.DataShape((3,), 3, "classification", 6, "d")


@pytest.mark.slow  # import paths on the command line, by default: test_a_user_mlp_by_import_path_...
def test_the_guide_s_module_runs_by_import_path_on_the_command_line(tmp_path, monkeypatch):
    """docs/own-model.md: its first Python block saved as mymodels.py, its command-line block as written."""
    from test_docs import ROOT, blocks, commands

    page = blocks(ROOT / "docs" / "own-model.md")
    module = next(b for b in page if b.lang == "python")
    shown = next(b for b in page if b.lang == "bash" and "mymodels:mlp" in b.code)
    monkeypatch.chdir(tmp_path)
    name = f"mymodels_{tmp_path.name.replace('-', '_')}"  # this test's own module
    (tmp_path / f"{name}.py").write_text(module.code)
    monkeypatch.syspath_prepend(str(tmp_path))
    for argv in commands(shown):
        argv = [a.replace("mymodels:", f"{name}:") for a in argv]
        argv = [*argv[:1], "--quiet", *argv[1:]]
        assert main(argv) == 0, argv
    summary = (tmp_path / "runs" / "mine" / "summary.json").read_text()
    assert f'"model": "{name}:mlp"' in summary and '"final_test_accuracy": 0.8' in summary
    assert len(pd.read_csv(tmp_path / "runs" / "mine-sweep" / "results.csv")) == 6
