"""Datasets, none downloaded at run time.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images), the default.
- ``mnist1d``: MNIST-1D (Greydanus 2020) generated locally with the ``mnist1d`` package and
  cached under ``$STRAGGLERSIM_CACHE`` (default ``~/.cache/stragglersim``).
- ``teacher-student``: regression on the outputs of a fixed random teacher network, any size.
- ``mnist`` / ``cifar10``: real loaders for files the user supplies (``--data-path``): MNIST as
  IDX files (optionally gzipped) or a Keras-style ``.npz``; CIFAR-10 as the python pickle batches.

Every split is fixed (it does not depend on the run seed), so runs with different seeds see
the same test set. Pixels are scaled to [0, 1]; images are (H, W, C).
"""

from __future__ import annotations

import gzip
import os
import pickle
import random
import struct
import threading
from pathlib import Path

import numpy as np

from ..io.boundary import check_input_file
from ..io.errors import InputError, named
from .catalog import DATASETS
from .interface import Dataset

_GENERATING = threading.Lock()

SPLIT_SEED = 20160401  # fixed: the train/test split is a property of the dataset, not of a run


VALIDATION_SEED = 20161010  # fixed: every run and seed of a study holds out the same validation set


def validation_split(dataset: Dataset, fraction: float) -> Dataset:
    """``dataset`` with ``fraction`` of its training set (at least one example, a fixed random
    choice) held out: training uses the rest, and the held-out examples stand in for the test
    set, which is never read (tuning selects on them; the test set reports the winner).

    Raises:
        InputError: too few training examples to hold some out and keep some.
    """
    n = len(dataset.x_train)
    held = max(1, round(n * fraction))
    if held >= n:
        raise InputError(
            f"{named('validation_split')} {fraction}: holds out {held} of the {n} training examples of {dataset.name}, "
            f"leaving none to train on; give a smaller fraction"
        )
    order = np.random.default_rng(VALIDATION_SEED).permutation(n)
    keep, val = np.sort(order[held:]), np.sort(order[:held])
    if dataset.task == "classification":
        missing = sorted(set(np.unique(dataset.y_train).tolist()) - set(np.unique(dataset.y_train[keep]).tolist()))
        if missing:
            raise InputError(
                f"{named('validation_split')} {fraction}: the {n - held} training examples left hold no "
                f"example of class {missing[0]} of {dataset.name}; give a smaller fraction"
            )
    return Dataset(
        dataset.x_train[keep],
        dataset.y_train[keep],
        dataset.x_train[val],
        dataset.y_train[val],
        dataset.task,
        f"{dataset.name} (validation split {fraction:g})",
        dataset.metadata,
    )


def load_dataset(name: str, *, path: str | None = None, size: int | None = None) -> Dataset:
    """Load dataset ``name``.

    Args:
        name: one of ``DATASETS``.
        path: the file or folder for ``mnist`` and ``cifar10``.
        size: number of examples (train + test) for the generated datasets.

    Raises:
        InputError: unknown name, missing path, unreadable or malformed files.
    """
    if name not in DATASETS:
        raise InputError(f"--dataset: unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if name in ("mnist", "cifar10"):
        if not path:
            raise InputError(f"--dataset {name} reads files you supply: give --data-path")
        return load_mnist(Path(path)) if name == "mnist" else load_cifar10(Path(path))
    if name == "digits":
        return load_digits()
    if name == "mnist1d":
        return load_mnist1d(size or 20_000)
    return teacher_student(size or 20_000)


def _split(name: str, task: str, x: np.ndarray, y: np.ndarray, test_fraction: float = 0.2) -> Dataset:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    return Dataset(x[train], y[train], x[test], y[test], task, name)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits: 1,437 training and 360 test images, 10 classes."""
    # here, not at import: only the digits need scikit-learn (0.8 s to import); runs on other data skip it
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    return _split("digits", "classification", x, bunch.target.astype(np.int32))


def load_mnist1d(size: int) -> Dataset:
    """MNIST-1D with ``size`` examples (80% train), as (1, 40, 1) signals; generated once, then cached."""
    cache = Path(os.environ.get("STRAGGLERSIM_CACHE", Path.home() / ".cache" / "stragglersim"))
    file = cache / f"mnist1d-{size}.npz"
    with _GENERATING:  # mnist1d draws from the global generators: one thread at a time
        if not file.exists():
            _generate_mnist1d(size, file)
    with np.load(file) as d:
        shape = (1, d["x"].shape[1], 1)
        x, x_test = d["x"].astype(np.float32), d["x_test"].astype(np.float32)
        return Dataset(
            x.reshape(-1, *shape),
            d["y"].astype(np.int32),
            x_test.reshape(-1, *shape),
            d["y_test"].astype(np.int32),
            "classification",
            "mnist1d",
        )


def _generate_mnist1d(size: int, file: Path) -> None:
    """Generate MNIST-1D with ``size`` examples into ``file`` (written under a temporary name)."""
    # here, not at import: only generating the cached file needs mnist1d (0.9 s to import)
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = size
    # mnist1d seeds the global generators; leave the caller's global state as it was.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}.npz")
    np.savez(tmp, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
    tmp.replace(file)


def teacher_student(size: int, dim: int = 32, hidden: int = 64, noise: float = 0.1) -> Dataset:
    """Regression: y = teacher(x) + N(0, noise²), x ~ N(0, I_dim), teacher a fixed random tanh network."""
    rng = np.random.default_rng(SPLIT_SEED)
    w1 = rng.normal(size=(dim, hidden)) / np.sqrt(dim)
    w2 = rng.normal(size=(hidden,)) / np.sqrt(hidden)
    x = rng.normal(size=(size, dim))
    y = np.tanh(x @ w1) @ w2 + noise * rng.normal(size=size)
    return _split("teacher-student", "regression", x.astype(np.float32), y.astype(np.float32))


# --- MNIST -------------------------------------------------------------------------------

_IDX = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def load_mnist(path: Path) -> Dataset:
    """MNIST from a Keras-style ``.npz`` (x_train, y_train, x_test, y_test) or a folder of the
    four IDX files (each optionally ``.gz``)."""
    if not path.is_dir():
        check_input_file(path, "--data-path ")  # a FIFO would block, a device never end
    if path.is_file() and path.suffix == ".npz":
        try:
            with np.load(path) as d:
                missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in d]
                if missing:
                    raise InputError(f"{path}: missing array {missing[0]!r} (need x_train, y_train, x_test, y_test)")
                arrays = [d[k] for k in ("x_train", "y_train", "x_test", "y_test")]
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: not a readable .npz file: {err}") from None
    elif path.is_dir():
        arrays = [_read_idx(_find(path, _IDX[k])) for k in ("train_x", "train_y", "test_x", "test_y")]
    else:
        raise InputError(f"--data-path {path}: expected an .npz file or a folder with the MNIST IDX files")
    xtr, ytr, xte, yte = arrays
    for x, y, which in ((xtr, ytr, "training"), (xte, yte, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise InputError(f"{path}: {which} images must be (n, H, W) and labels (n,), got {x.shape} and {y.shape}")
    return Dataset(_pixels(xtr), ytr.astype(np.int32), _pixels(xte), yte.astype(np.int32), "classification", "mnist")


def _pixels(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0)[..., None]


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise InputError(f"--data-path {folder}: missing {stem} (or {stem}.gz)")


def _read_idx(file: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (LeCun's MNIST format): magic 0x0000 08 NDIM, sizes, data."""
    opener = gzip.open if file.suffix == ".gz" else open
    check_input_file(file, "--data-path ")  # a FIFO would block, a device never end
    try:
        with opener(file, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise InputError(f"{file}: cannot read: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError(f"{file}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise InputError(f"{file}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise InputError(f"{file}: header says {shape} = {int(np.prod(shape))} bytes of data, found {data.size}")
    return data.reshape(shape)


# --- CIFAR-10 ----------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: a batch file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_cifar10(path: Path) -> Dataset:
    """CIFAR-10 from the python batches: ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``
    in ``path`` or in ``path/cifar-10-batches-py``. Training uses every ``data_batch_*`` found."""
    if (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    if not path.is_dir():
        raise InputError(f"--data-path {path}: expected the folder of CIFAR-10 python batches")
    train_files = sorted(path.glob("data_batch_*"))
    if not train_files:
        raise InputError(f"--data-path {path}: no data_batch_* files")
    if not (path / "test_batch").exists():
        raise InputError(f"--data-path {path}: missing test_batch")
    train = [_read_cifar_batch(f) for f in train_files]
    xte, yte = _read_cifar_batch(path / "test_batch")
    xtr = np.concatenate([x for x, _ in train])
    ytr = np.concatenate([y for _, y in train])
    return Dataset(xtr, ytr, xte, yte, "classification", "cifar10")


def _read_cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    check_input_file(file, "--data-path ")
    try:
        with open(file, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise InputError(f"{file}: not a CIFAR-10 python batch: {err}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise InputError(f"{file}: not a CIFAR-10 python batch: expected a dict with b'data' and b'labels'")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise InputError(f"{file}: data must be (n, 3072) with n labels, got {data.shape} and {len(labels)} labels")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return x, labels.astype(np.int32)
