"""Gradient quality separated into its causes (issue 28): stale_cosine is exactly 1 where nothing
is stale, and equals an independent recomputation (plain jax.grad, float64 NumPy cosines, the
run's own event log replayed) where gradients are stale; measuring leaves training unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import stragglersim
from stragglersim.core.assemble import assemble
from stragglersim.core.config import RunConfig
from stragglersim.core.data import WorkerBatches
from stragglersim.core.streams import Stream, stream
from stragglersim.training.quality import FIELDS
from stragglersim.training.trainer import train

SMALL = dict(dataset="digits", hidden="32", batch_size=16, eval_every="1000")


def rows(result) -> np.ndarray:
    """The quality columns of training.csv's rows, one row per update."""
    return np.array([row[4:8] for row in result.steps], dtype=float)


@pytest.mark.parametrize(
    "options",
    [
        dict(strategy="sync", workers=4),
        dict(strategy="backup", workers=4, backups=2),  # tf: late gradients dropped, never applied stale
        dict(strategy="backup", workers=3, backups=1, semantics="drop"),
        dict(strategy="backup", workers=3, backups=2, semantics="cancel"),
        dict(strategy="sync", workers=1),  # one worker
    ],
)
def test_stale_cosine_is_exactly_one_for_every_update_of_sync_and_backup(options):
    _, log, result = train(RunConfig(**options, **SMALL, steps=25, quality_every=1, seed=4))
    q = rows(result)
    assert len(q) == 25 == len(log.updates)
    assert (q[:, 0] == 1.0).all() and (q[:, 1] == 0.0).all()
    assert np.isfinite(q[:, 2:]).all() and (np.abs(q[:, 2]) <= 1).all() and (q[:, 3] > 0).all()
    assert result.summary["stale_cosine_mean"] == 1.0 and result.summary["stale_cosine_below0"] == 0.0


def _replay(config: RunConfig, log):
    """Quality rows recomputed from the event log alone: every gradient at the version it read
    (plain jax.grad of the model's loss on its worker's mini-batch), plain SGD, float64 cosines."""
    inputs = assemble(config, training=True)
    model, data = inputs.model, inputs.dataset
    batches = WorkerBatches(
        len(data.x_train), config.batch_size, config.total_workers, config.data_partition, config.seed
    )
    n = min(config.reference_batch, len(data.x_train))
    reference = stream(config.seed, Stream.QUALITY).choice(len(data.x_train), n, replace=False)
    grad = jax.jit(jax.grad(model.loss))

    def gradient(params, idx):
        return grad(params, jnp.asarray(data.x_train[idx]), jnp.asarray(data.y_train[idx]))

    def flat(tree):
        return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in jax.tree_util.tree_leaves(tree)])

    def measure(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), np.linalg.norm(a - b) / np.linalg.norm(b)

    versions = {0: inputs.params}
    out = []
    for u in log.updates:
        now = versions[u.index - 1]
        scales = [1 / g.staleness if config.staleness_lr and g.staleness else 1.0 for g in u.gradients]
        idxs = [batches.indices(g.worker, g.index) for g in u.gradients]
        read = [versions[g.version] for g in u.gradients]
        applied = sum(s * flat(gradient(p, i)) for s, p, i in zip(scales, read, idxs, strict=True)) / len(idxs)
        fresh = sum(s * flat(gradient(now, i)) for s, i in zip(scales, idxs, strict=True)) / len(idxs)
        stale = any(g.version != u.index - 1 for g in u.gradients)
        batch = measure(applied, flat(gradient(now, reference)))
        out.append([*(measure(applied, fresh) if stale else (1.0, 0.0)), *batch])
        step = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(now),
            np.split(applied, np.cumsum([a.size for a in jax.tree_util.tree_leaves(now)])[:-1]),
        )
        versions[u.index] = jax.tree_util.tree_map(
            lambda p, g: p - config.lr * g.reshape(p.shape).astype(p.dtype), now, step
        )
    return np.array(out)


@pytest.mark.parametrize(
    "options",
    [
        dict(strategy="async", workers=6),  # the ring's scan
        dict(strategy="async", workers=5, staleness_lr=True),  # scaled by 1/staleness
        dict(strategy="softsync", workers=6, softsync_n=2),  # several gradients of mixed versions
        dict(strategy="async", workers=6, staleness_cutoff=2),  # stale beyond 2: dropped,
    ],
)
def test_quality_of_stale_updates_equals_an_independent_recomputation(options):
    config = RunConfig(**options, **SMALL, steps=30, quality_every=1, seed=7, lr=0.2)
    resolved, log, result = train(config)
    got, want = rows(result), _replay(resolved, log)
    assert got.shape == want.shape == (30, 4)
    stale = want[:, 0] != 1.0
    assert stale.sum() >= 10  # the case is really about staleness
    assert (got[~stale, :2] == [1.0, 0.0]).all()  # fresh updates: exactly 1 and 0
    np.testing.assert_allclose(got[:, 0], want[:, 0], atol=2e-3)
    np.testing.assert_allclose(got[:, 2], want[:, 2], atol=2e-3)
    np.testing.assert_allclose(got[stale, 1], want[stale, 1], rtol=5e-3, atol=1e-4)
    np.testing.assert_allclose(got[:, 3], want[:, 3], rtol=5e-3)
    assert want[stale, 0].min() < 0.999  # staleness costs something here


@pytest.mark.parametrize(
    "options",
    [
        dict(strategy="backup", workers=4, backups=1),  # the fused scan
        dict(strategy="async", workers=5),  # the ring's scan
        dict(strategy="softsync", workers=6, softsync_n=2),  # one update at a time
    ],
)
def test_every_kth_update_is_measured_and_measuring_changes_no_training_number(options):
    base = dict(**options, **SMALL, steps=40, seed=2)
    _, _, plain = train(RunConfig(**base))
    _, _, measured = train(RunConfig(**base, quality_every=3))
    q = rows(measured)
    updates = np.array([row[0] for row in measured.steps])
    assert (~np.isnan(q).any(axis=1) == (updates % 3 == 0)).all()  # 3, 6, ... 39 and nothing else
    assert measured.summary["quality_updates"] == 13 and measured.summary["quality_every"] == 3
    assert np.isnan(rows(plain)).all() and "stale_cosine_mean" not in plain.summary
    np.testing.assert_allclose([r[3] for r in measured.steps], [r[3] for r in plain.steps], rtol=1e-5)
    assert measured.metrics == plain.metrics or np.allclose(
        np.array(measured.metrics[1:], dtype=float)[:, 2:], np.array(plain.metrics[1:], dtype=float)[:, 2:], rtol=1e-5
    )


def test_summary_statistics_are_those_of_training_csv(tmp_path):
    run = stragglersim.simulate(strategy="async", workers=8, **SMALL, steps=60, quality_every=2, seed=1, lr=0.3)
    table = run.training
    for name in FIELDS:
        values = table[name].dropna().to_numpy()
        assert len(values) == 30
        assert run.summary[f"{name}_mean"] == pytest.approx(values.mean())
        assert run.summary[f"{name}_median"] == pytest.approx(np.median(values))
        assert run.summary[f"{name}_p10"] == pytest.approx(pd.Series(values).quantile(0.1))
        assert run.summary[f"{name}_below0"] == pytest.approx((values < 0).mean())


def test_reference_batch_zero_measures_staleness_alone():
    _, _, result = train(RunConfig(strategy="async", workers=4, **SMALL, steps=20, quality_every=1, reference_batch=0))
    q = rows(result)
    assert np.isfinite(q[:, :2]).all() and np.isnan(q[:, 2:]).all()
    assert result.summary["batch_cosine_mean"] is None and result.summary["stale_cosine_mean"] is not None


def test_averaging_more_gradients_brings_the_update_closer_to_the_large_batch_gradient():
    _, _, sync = train(RunConfig(strategy="sync", workers=8, steps=30, gradient_quality=True, seed=5))
    _, _, single = train(RunConfig(strategy="sync", workers=1, steps=30, gradient_quality=True, seed=5))
    assert sync.summary["batch_cosine_mean"] > single.summary["batch_cosine_mean"]
    assert sync.summary["batch_error_mean"] < single.summary["batch_error_mean"]
    assert sync.summary["stale_cosine_mean"] == single.summary["stale_cosine_mean"] == 1.0


@pytest.mark.parametrize(
    "strategy", [["--strategy", "async", "--workers", "4"], ["--strategy", "sync", "--workers", "3"]]
)
def test_a_run_measuring_quality_resumes_from_its_checkpoint_to_the_uninterrupted_files(
    strategy, tmp_path, monkeypatch
):
    from conftest import interrupted_at_checkpoint, same_result_file
    from stragglersim.cli.main import main

    args = ["simulate", "--quiet", *strategy, "--eval-every", "5", "--checkpoint-every", "10", "--quality-every", "3"]
    args += ["--steps", "40", "--hidden", "32"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    with interrupted_at_checkpoint(monkeypatch):
        assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    assert (
        main(["simulate", "--quiet", "--resume", str(tmp_path / "cut.checkpoint"), "--out", str(tmp_path / "cut")]) == 0
    )
    for name in ("metrics.csv", "training.csv", "summary.json"):
        assert same_result_file(tmp_path / "cut" / name, tmp_path / "whole" / name), name
    assert pd.read_csv(tmp_path / "cut" / "training.csv")["stale_cosine"].notna().sum() == 13
