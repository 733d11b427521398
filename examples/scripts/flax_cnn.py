"""Your own Flax CNN on your own NumPy arrays: sync with backup workers against async SGD, each tuned.

    pip install 'stragglersim[flax]'
    python examples/scripts/flax_cnn.py                 # about 10 minutes on 2 CPU cores
    python examples/scripts/flax_cnn.py --quick         # a smoke test: a minute

Both strategies run on the same latency draws (the straggler model fitted to the shipped trace) for
the same simulated time; each gets the learning rate that scores best on a held-out validation split,
then runs again on the test set with every seed. The model, the data and the optimizer are this
file's: stragglersim imports them by their paths (``flax_cnn:model`` ...), so the sweep's worker
processes build them too. Replace ``arrays()`` with your own loading (``np.load("mine.npz")``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import optax
import stragglersim
from flax import nnx

HERE = Path(__file__).stem  # this module's name: the runs import model, arrays and optimizer from it


class CNN(nnx.Module):
    """Two 3x3 convolutions (the second with stride 2) and a dense read-out."""

    def __init__(self, in_channels: int, height: int, width: int, classes: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(in_channels, 16, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, kernel_size=(3, 3), strides=(2, 2), rngs=rngs)
        self.out = nnx.Linear(32 * -(-height // 2) * -(-width // 2), classes, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.conv1(x))
        h = nnx.relu(self.conv2(h))
        return self.out(h.reshape(h.shape[0], -1))


def model(shape: stragglersim.DataShape) -> stragglersim.Model:
    """The model factory: stragglersim calls it with the dataset's shapes."""
    height, width, channels = shape.input_shape
    return stragglersim.from_flax(
        lambda rngs: CNN(channels, height, width, shape.out_dim, rngs=rngs),
        loss="cross_entropy",
        example_input=np.zeros((2, *shape.input_shape), np.float32),
        name="flax-cnn",
    )


def arrays() -> stragglersim.Dataset:
    """Your own arrays: here scikit-learn's 8x8 digits as (n, 8, 8, 1) floats in [0, 1], 20% held out."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int32)
    test = np.random.default_rng(0).permutation(len(x)) < len(x) // 5
    return stragglersim.Dataset(x[~test], y[~test], x[test], y[test], name="my-digits")


def optimizer(learning_rate) -> optax.GradientTransformation:
    """Any optax transformation; stragglersim gives the learning rate (tuned, and scaled if asked)."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(learning_rate, momentum=0.9))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("flax-cnn-study"), help="the study's folder")
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer seeds, rates and seconds")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: the CPU count)")
    args = parser.parse_args(argv)
    rates = [0.01, 0.05] if args.quick else [0.003, 0.01, 0.03, 0.1]
    common = dict(
        model=f"{HERE}:model",
        dataset=f"{HERE}:arrays",
        optimizer=f"{HERE}:optimizer",
        latency="straggler:base=exponential(rate=1),p=0.05,factor=5",  # 5% of computations take 5x
        batch_size=32,
        until=15 if args.quick else 120,  # simulated seconds: the same budget for both
        eval_every="3s" if args.quick else "10s",
        seeds=[0] if args.quick else [0, 1, 2],
        jobs=args.jobs,
        progress=True,
    )
    print(f"\n{'strategy':10} {'lr':>6}  test accuracy at the budget (mean over seeds, 95% interval)")
    for strategy, extra in (("backup", {"workers": 7, "backups": 1}), ("async", {"workers": 8})):  # 8 workers
        tuned = stragglersim.tune(
            args.out / strategy, tune={"lr": rates}, strategy=strategy, overwrite=True, **extra, **common
        )
        row = stragglersim.aggregate(args.out / strategy).iloc[0]  # the winner's runs on the test set
        low, high = row["accuracy_at_budget_ci_low"], row["accuracy_at_budget_ci_high"]
        interval = f" [{low:.3f}, {high:.3f}]" if row["n_seeds"] > 1 else " (one seed: no interval)"
        print(f"{strategy:10} {tuned['lr'].iloc[0]:6g}  {row['accuracy_at_budget_mean']:.3f}{interval}")
    print(f"\nevery run is under {args.out}/ (candidates/ on the validation split, final/ on the test set)")


if __name__ == "__main__":
    main()
