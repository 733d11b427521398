"""Flax (NNX and Linen) and Equinox modules as stragglersim Models, in one call (the [flax] and
[equinox] extras), and the example that compares strategies on a user's Flax CNN."""

import importlib.util
import sys
import warnings
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
import stragglersim
from flax import linen, nnx

ROOT = Path(__file__).resolve().parents[1]
X = np.zeros((2, 8, 8, 1), np.float32)


class NnxNet(nnx.Module):
    def __init__(self, *, rngs):
        self.conv = nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs)
        self.out = nnx.Linear(8 * 8 * 4, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.conv(x)).reshape(x.shape[0], -1))


class LinenNet(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(10)(linen.relu(linen.Dense(32)(x.reshape(x.shape[0], -1))))


MODELS = {
    "nnx": lambda: stragglersim.from_flax(lambda rngs: NnxNet(rngs=rngs), loss="cross_entropy", example_input=X),
    "linen": lambda: stragglersim.from_flax(LinenNet(), loss="cross_entropy", example_input=X),
    "equinox": lambda: stragglersim.from_equinox(
        lambda key: eqx.nn.MLP(64, 10, 32, 1, key=key),
        loss="cross_entropy",
        example_input=X.reshape(2, 64),
    ),
}


@pytest.mark.parametrize("library", MODELS)
def test_a_module_becomes_a_model_that_trains_under_backup_workers_and_async(library):
    model = MODELS[library]()
    a, b = (model.init(jax.random.key(seed)) for seed in (0, 1))
    leaves = jax.tree_util.tree_leaves
    assert any(not np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))  # each seed its own
    dataset = None
    if library == "equinox":  # an MLP of Equinox takes a flat example
        from stragglersim.models.datasets import load_digits

        d = load_digits()
        flat = [a.reshape(len(a), -1) for a in (d.x_train, d.x_test)]
        dataset = stragglersim.Dataset(flat[0], d.y_train, flat[1], d.y_test, name="flat-digits")
    for strategy in ({"strategy": "backup", "workers": 3, "backups": 1}, {"strategy": "async", "workers": 3}):
        run = stragglersim.simulate(
            model=model, dataset=dataset or "digits", lr=0.1, steps=60, eval_every="20", **strategy
        )
        accuracy = run.metrics["test_accuracy"]
        assert accuracy.iloc[-1] > accuracy.iloc[0] + 0.2, (library, strategy, list(accuracy))


def test_built_modules_and_unknown_losses_are_refused_in_one_line():
    with pytest.raises(stragglersim.InputError, match="give a function rngs -> module"):
        stragglersim.from_flax(NnxNet(rngs=nnx.Rngs(0)), loss="cross_entropy", example_input=X)
    with pytest.raises(stragglersim.InputError, match="give a function key -> module"):
        stragglersim.from_equinox(eqx.nn.Linear(2, 2, key=jax.random.key(0)), loss="mse", example_input=X)
    with pytest.raises(stragglersim.InputError, match="loss 'hinge': give 'cross_entropy', 'mse'"):
        stragglersim.from_flax(LinenNet(), loss="hinge", example_input=X)
    with pytest.raises(stragglersim.InputError, match="building the module raised "):
        stragglersim.from_flax(
            lambda rngs: (_ for _ in ()).throw(RuntimeError("out of memory")), loss="mse", example_input=X
        )
    with pytest.raises(stragglersim.InputError, match=r"the module fails on example_input of shape \(2, 5\)"):
        stragglersim.from_flax(lambda rngs: NnxNet(rngs=rngs), loss="cross_entropy", example_input=np.zeros((2, 5)))


@pytest.mark.slow
def test_the_flax_cnn_example_compares_tuned_strategies(tmp_path, monkeypatch, capsys):
    """examples/scripts/flax_cnn.py --quick: both strategies tuned and reported (its workers import it by path)."""
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "scripts"))
    spec = importlib.util.spec_from_file_location("flax_cnn", ROOT / "examples" / "scripts" / "flax_cnn.py")
    example = importlib.util.module_from_spec(spec)
    sys.modules["flax_cnn"] = example
    spec.loader.exec_module(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a winner at the edge of the quick grid of two rates
        example.main(["--quick", "--jobs", "1", "--out", str(tmp_path / "study")])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["backup"], ["async"])}
    assert set(rows) == {"backup", "async"}
    assert all(0.3 < float(row[2]) <= 1 for row in rows.values())
    assert (tmp_path / "study" / "backup" / "final").is_dir() and (tmp_path / "study" / "async" / "tuned.csv").is_file()


def test_nnx_dropout_and_batchnorm_run_in_evaluation_mode_and_mse_wants_one_output():
    class Regular(nnx.Module):
        def __init__(self, *, rngs):
            self.dense = nnx.Linear(64, 10, rngs=rngs)
            self.drop, self.norm = nnx.Dropout(0.5, rngs=rngs), nnx.BatchNorm(10, rngs=rngs)

        def __call__(self, x):
            return self.norm(self.drop(self.dense(x.reshape(len(x), -1))))

    model = stragglersim.from_flax(lambda rngs: Regular(rngs=rngs), loss="cross_entropy", example_input=X)
    params, x = model.init(jax.random.key(0)), np.random.default_rng(1).random((4, 8, 8, 1), np.float32)
    assert np.array_equal(model.predict(params, x), model.predict(params, x))  # no dropout: deterministic
    by_hand = x.reshape(4, -1) @ params["dense"]["kernel"] + params["dense"]["bias"]  # initial statistics: 0 and 1
    assert np.allclose(model.predict(params, x), by_hand / np.sqrt(1 + 1e-5), atol=1e-5)
    regression = stragglersim.from_flax(lambda rngs: Regular(rngs=rngs), loss="mse", example_input=X)
    with pytest.raises(ValueError, match="loss 'mse' takes one output per example, the module gives 10"):
        regression.loss(params, x, np.zeros(4, np.float32))  # where the run checks it: one line naming --model


def test_the_mse_and_a_loss_of_one_s_own_on_a_regression():
    """from_equinox with "mse" and from_flax with a function: the same linear model, the same loss."""
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5], np.float32)
    eqx_model = stragglersim.from_equinox(lambda key: eqx.nn.Linear(3, 1, key=key), loss="mse", example_input=x[:2])
    flax_model = stragglersim.from_flax(
        LinearNet(), loss=lambda out, target: ((out[:, 0] - target) ** 2).mean(), example_input=x[:2]
    )
    for model in (eqx_model, flax_model):
        params = model.init(jax.random.key(0))
        by_hand = ((np.asarray(model.predict(params, x))[:, 0] - y) ** 2).mean()
        assert float(model.loss(params, x, y)) == pytest.approx(by_hand, rel=1e-5)


class LinearNet(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(1)(x)
