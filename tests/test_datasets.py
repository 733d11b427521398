"""Dataset loaders, on small files the tests write in the real formats."""

import gzip
import pickle
import re
import struct

import numpy as np
import pytest
from stragglersim.io.errors import InputError
from stragglersim.models.datasets import load_dataset


def write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def fake_mnist(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = fake_mnist(rng, 50), fake_mnist(rng, 20)
    write_idx(tmp_path / "train-images-idx3-ubyte", xtr, gz)
    write_idx(tmp_path / "train-labels-idx1-ubyte", ytr, gz)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", xte, gz)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", yte, gz)
    d = load_dataset("mnist", path=str(tmp_path))
    assert d.x_train.shape == (50, 28, 28, 1) and d.x_test.shape == (20, 28, 28, 1)
    np.testing.assert_allclose(d.x_train[..., 0], xtr / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y_test, yte)


def test_mnist_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    (xtr, ytr), (xte, yte) = fake_mnist(rng, 30), fake_mnist(rng, 10)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d = load_dataset("mnist", path=str(tmp_path / "mnist.npz"))
    assert d.input_shape == (28, 28, 1) and d.out_dim == int(ytr.max()) + 1


def test_cifar10_from_python_batches(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = {}
    for name, n in (("data_batch_1", 12), ("data_batch_2", 8), ("test_batch", 5)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        images[name] = data
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(rng.integers(0, 10, size=n))}, f)
    d = load_dataset("cifar10", path=str(tmp_path))
    assert d.x_train.shape == (20, 32, 32, 3) and d.x_test.shape == (5, 32, 32, 3)
    # channel-major rows become HWC images: red plane first
    assert d.x_train[0, 0, 1, 0] == pytest.approx(images["data_batch_1"][0, 1] / 255.0)
    assert d.x_train[0, 0, 0, 2] == pytest.approx(images["data_batch_1"][0, 2048] / 255.0)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no data_batch_* files"),
        (lambda p: (p / "data_batch_1").write_bytes(b"not a pickle"), "not a CIFAR-10 python batch"),
        (lambda p: (p / "data_batch_1").write_bytes(pickle.dumps(Evil())), "refusing to load builtins.print"),
        (lambda p: (p / "data_batch_1").write_bytes(pickle.dumps({b"data": 1})), "expected a dict with b'data'"),
    ],
)
def test_cifar10_bad_files(tmp_path, setup, message):
    setup(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(InputError, match=re.escape(message)):
        load_dataset("cifar10", path=str(tmp_path))


def test_mnist_bad_files(tmp_path):
    with pytest.raises(InputError, match="give --data-path"):
        load_dataset("mnist")
    with pytest.raises(InputError, match="missing train-images-idx3-ubyte"):
        load_dataset("mnist", path=str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")
    with pytest.raises(InputError, match="truncated header"):
        load_dataset("mnist", path=str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x01\x02")
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x01")
    with pytest.raises(InputError, match="header says"):
        load_dataset("mnist", path=str(tmp_path))
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable .npz"):
        load_dataset("mnist", path=str(tmp_path / "x.npz"))


def test_generated_datasets_are_fixed_and_sized():
    a, b = load_dataset("teacher-student", size=500), load_dataset("teacher-student", size=500)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert len(a.x_train) + len(a.x_test) == 500 and a.task == "regression"
    m = load_dataset("mnist1d", size=1000)
    assert m.x_train.shape == (800, 1, 40, 1) and set(np.unique(m.y_train)) == set(range(10))
    np.testing.assert_array_equal(load_dataset("mnist1d", size=1000).x_test, m.x_test)  # from the cache
    d = load_dataset("digits")
    assert len(d.x_train) + len(d.x_test) == 1797 and d.x_train.max() <= 1.0


def test_dataset_checks_its_arrays():
    from stragglersim.models.datasets import Dataset

    x, y = np.zeros((3, 2), np.float32), np.zeros(3, np.int32)
    with pytest.raises(InputError, match="dataset d: inputs and labels differ in length"):
        Dataset(x, y[:2], x, y, "classification", "d")
    with pytest.raises(InputError, match="dataset d: empty training or test set"):
        Dataset(x, y, x[:0], y[:0], "classification", "d")
    with pytest.raises(InputError, match=r"unknown dataset 'imagenet' \(known: .*mnist"):
        load_dataset("imagenet")


def test_mnist_bad_shapes_and_formats(tmp_path):
    rng = np.random.default_rng(3)
    (xtr, ytr), (xte, yte) = fake_mnist(rng, 4), fake_mnist(rng, 2)
    np.savez(tmp_path / "partial.npz", x_train=xtr, y_train=ytr, x_test=xte)
    with pytest.raises(InputError, match="missing array 'y_test'"):
        load_dataset("mnist", path=str(tmp_path / "partial.npz"))
    np.savez(tmp_path / "flat.npz", x_train=xtr.reshape(4, -1), y_train=ytr, x_test=xte, y_test=yte)
    with pytest.raises(InputError, match=r"training images must be \(n, H, W\) and labels \(n,\), got \(4, 784\)"):
        load_dataset("mnist", path=str(tmp_path / "flat.npz"))
    (tmp_path / "mnist.csv").write_text("1,2\n")
    with pytest.raises(InputError, match="expected an .npz file or a folder"):
        load_dataset("mnist", path=str(tmp_path / "mnist.csv"))
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03")  # floats, not unsigned bytes
    with pytest.raises(InputError, match="bad magic number"):
        load_dataset("mnist", path=str(idx))
    (idx / "train-images-idx3-ubyte").unlink()
    (idx / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match=r"train-images-idx3-ubyte.gz: cannot read"):
        load_dataset("mnist", path=str(idx))


def test_cifar10_bad_folders_and_shapes(tmp_path):
    with pytest.raises(InputError, match="expected the folder of CIFAR-10 python batches"):
        load_dataset("cifar10", path=str(tmp_path / "nowhere"))
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(batch))
    with pytest.raises(InputError, match="missing test_batch"):
        load_dataset("cifar10", path=str(tmp_path))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(InputError, match=r"test_batch: data must be \(n, 3072\) with n labels, got \(2, 1024\)"):
        load_dataset("cifar10", path=str(tmp_path))
