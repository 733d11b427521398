"""An independent reference trainer: float64 NumPy rebuilds whole runs from their files.

For every strategy family, a run of logistic regression on the bundled digits is written to a
folder as the command line writes it. The reference then reads only ``gradients.csv``,
``config.toml``-level facts it is given, the training set, the initial parameters and the
documented data-stream rule (README, "Training"), and recomputes the parameter trajectory:
update k averages the gradients applied in it, each the mean mini-batch gradient at the
parameters of the version its worker read (divided by its staleness with --staleness-lr),
and SGD (or momentum) applies the mean with the learning rate scaled for the number of
gradients averaged. It checks every update's loss and example count (``training.csv``), every
evaluation (``metrics.csv``) and the final parameters.

Evaluation is sparse (every 100 of 150 updates), so the trainer's deferred paths are the ones
checked: sync updates fused 64 at a time in one scan, stale updates in chunks padded to a power
of two that read versions written earlier in the same chunk from a ring that has to grow.
"""

import csv
import math

import jax
import numpy as np
import pytest
from stragglersim.core.config import RunConfig
from stragglersim.core.streams import Stream
from stragglersim.io.results import write_run
from stragglersim.models.datasets import load_dataset
from stragglersim.models.zoo import build_model
from stragglersim.training.runner import execute

STEPS, EVERY, BATCH, LR = 150, 100, 16, 0.1

CASES = {
    "sync": dict(strategy="sync", workers=4),
    "backup-tf-with-failures": dict(strategy="backup", workers=4, backups=2, semantics="tf", fail_at="1@3-8"),
    "backup-drop": dict(strategy="backup", workers=4, backups=2, semantics="drop"),
    "backup-cancel-sharded": dict(
        strategy="backup", workers=4, backups=2, semantics="cancel", data_partition="sharded"
    ),
    "async": dict(strategy="async", workers=8),
    "async-cutoff": dict(strategy="async", workers=8, staleness_cutoff=4),
    "async-staleness-lr-momentum": dict(strategy="async", workers=6, staleness_lr=True, optimizer="momentum", lr=0.05),
    "softsync": dict(strategy="softsync", workers=8, softsync_n=2),
    "k-sync": dict(strategy="k-sync", workers=6, k=4),
    "k-batch-sync": dict(strategy="k-batch-sync", workers=6, k=4),
    "k-async": dict(strategy="k-async", workers=6, k=3),
    "k-batch-async-staleness-lr": dict(strategy="k-batch-async", workers=6, k=3, staleness_lr=True),
    "ssp": dict(strategy="ssp", workers=6, ssp_bound=2),
    "deadline-linear-lr": dict(strategy="deadline", workers=6, deadline=0.8, lr_scaling="linear", lr=0.03),
    "adaptive-backup-sqrt-lr": dict(strategy="adaptive-backup", workers=6, adapt_every=10, lr_scaling="sqrt"),
}


# --- the reference: plain float64 NumPy -------------------------------------------------------


def rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class Batches:
    """The documented data-stream rule: which examples worker w's d-th gradient uses."""

    def __init__(self, seed: int, n_train: int, n_workers: int, partition: str):
        self.seed, self.n_train = seed, n_train
        self.shards = None
        if partition == "sharded":
            order = rng(seed, 3).permutation(n_train)
            self.shards = [order[w::n_workers] for w in range(n_workers)]

    def __call__(self, w: int, d: int) -> np.ndarray:
        if self.shards is None:
            return rng(self.seed, 2, w, d // 64).integers(0, self.n_train, size=(64, BATCH), dtype=np.int32)[d % 64]
        shard = self.shards[w]
        positions = d * BATCH + np.arange(BATCH)
        sweep = [(p // len(shard), p % len(shard)) for p in positions]  # (epoch, offset)
        return np.array([shard[rng(self.seed, 2, w, epoch).permutation(len(shard))[at]] for epoch, at in sweep])


def loss_and_grad(w, b, x, y):
    """Mean softmax cross-entropy of a linear model and its gradient (float64)."""
    logits = x @ w + b
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    n = len(y)
    loss = -logp[np.arange(n), y].mean()
    delta = np.exp(logp)
    delta[np.arange(n), y] -= 1.0
    delta /= n
    return loss, x.T @ delta, delta.sum(axis=0)


def evaluate(w, b, x, y):
    logits = x @ w + b
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean(), float((logits.argmax(axis=1) == y).mean())


def rebuild(rows, x, y, w0, b0, batches, *, lr, scaling, staleness_lr, momentum):
    """The trajectory: versions[k] = (w, b) after update k; per-update (loss, gradients, examples)."""
    applied: dict[int, list[dict]] = {}
    for r in rows:
        if r["fate"] == "applied":
            applied.setdefault(int(r["update"]), []).append(r)
    versions = [(w0, b0)]
    trace = (np.zeros_like(w0), np.zeros_like(b0))
    per_update = []
    for k in range(1, len(applied) + 1):
        group = applied[k]
        m = len(group)
        gw, gb, loss = np.zeros_like(w0), np.zeros_like(b0), 0.0
        for r in group:
            version, staleness = int(r["version"]), int(r["staleness"])
            assert staleness == k - 1 - version
            w, b = versions[version]
            idx = batches(int(r["worker"]), int(r["index"]))
            value, dw, db = loss_and_grad(w, b, x[idx], y[idx])
            scale = 1.0 / staleness if staleness_lr and staleness > 0 else 1.0
            gw, gb, loss = gw + scale * dw / m, gb + scale * db / m, loss + value / m
        rate = lr * {"none": 1.0, "linear": m, "sqrt": math.sqrt(m)}[scaling]
        if momentum:
            trace = (gw + momentum * trace[0], gb + momentum * trace[1])
            gw, gb = trace
        w, b = versions[-1]
        versions.append((w - rate * gw, b - rate * gb))
        per_update.append((loss, m, m * BATCH))
    return versions, per_update


# --- the runs ----------------------------------------------------------------------------------


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def digits():
    dataset = load_dataset("digits")
    flat = lambda a: a.reshape(len(a), -1).astype(np.float64)  # noqa: E731
    return dataset, flat(dataset.x_train), dataset.y_train, flat(dataset.x_test), dataset.y_test


@pytest.mark.parametrize("case", CASES)
def test_reference_rebuilds_every_update(case, digits, tmp_path):
    dataset, x, y, x_test, y_test = digits
    options = {"optimizer": "sgd", "lr": LR, **CASES[case]}
    config = RunConfig(model="logreg", batch_size=BATCH, steps=STEPS, eval_every=str(EVERY), seed=7, **options)
    result = execute(config)
    out = tmp_path / "run"
    write_run(out, result.config, result.log, result.summary, tables=result.tables)

    model = build_model("logreg", dataset)
    init = model.init(jax.random.fold_in(jax.random.key(config.seed), Stream.INIT))
    w0, b0 = (np.asarray(init["out"][k], np.float64) for k in ("w", "b"))
    rows = read_csv(out / "gradients.csv")
    batches = Batches(config.seed, len(x), config.total_workers, config.data_partition)
    versions, per_update = rebuild(
        rows,
        x,
        y,
        w0,
        b0,
        batches,
        lr=config.lr,
        scaling=config.lr_scaling,
        staleness_lr=config.staleness_lr,
        momentum=config.momentum if config.optimizer == "momentum" else 0.0,
    )

    steps = read_csv(out / "training.csv")
    assert len(steps) == len(per_update) == STEPS
    for row, (loss, _, samples) in zip(steps, per_update, strict=True):
        assert int(row["samples"]) == samples, (case, row["update"])
        assert float(row["train_loss"]) == pytest.approx(loss, rel=2e-4, abs=2e-5), (case, row["update"])
    updates = read_csv(out / "updates.csv")
    assert [int(u["gradients"]) for u in updates] == [m for _, m, _ in per_update]

    metrics = read_csv(out / "metrics.csv")
    assert [int(r["update"]) for r in metrics] == [0, EVERY, STEPS]
    previous = 0
    for r in metrics:
        u = int(r["update"])
        test_loss, accuracy = evaluate(*versions[u], x_test, y_test)
        assert float(r["test_loss"]) == pytest.approx(test_loss, rel=2e-4), (case, u)
        assert float(r["test_accuracy"]) == pytest.approx(accuracy, abs=1.5 / len(y_test)), (case, u)
        if u:
            train = np.mean([loss for loss, _, _ in per_update[previous:u]])
            assert float(r["train_loss"]) == pytest.approx(train, rel=2e-4), (case, u)
        previous = u

    w, b = versions[-1]
    np.testing.assert_allclose(result.params["out"]["w"], w, rtol=1e-3, atol=5e-5)
    np.testing.assert_allclose(result.params["out"]["b"], b, rtol=1e-3, atol=5e-5)
    assert np.abs(w - w0).max() > 0.05  # it moved: a run that did nothing would not pass

    counts = [m for _, m, _ in per_update]
    assert result.summary["gradients_per_update"] == pytest.approx(np.mean(counts))
    assert result.summary["effective_batch_size"] == pytest.approx(np.mean(counts) * BATCH)
    stale = [int(r["staleness"]) for r in rows if r["fate"] == "applied"]
    if config.strategy == "async" and config.staleness_cutoff is None:
        assert max(stale) >= 8  # more versions in flight than the ring's first 8 slots: it grew
    if case.startswith("deadline"):
        assert min(counts) < max(counts)  # a varying count, scaled update by update
