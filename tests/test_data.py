import gzip
import pickle

import numpy as np
import pytest
import torch

from nas import data
from nas.data import DataError, load_dataset, read_idx, split_indices, write_idx


def fake_idx_folder(folder, n_train=50, n_test=20, shape=(6, 5), gz=True, classes=4):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, *shape), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, classes, n, dtype=np.uint8))
    return folder


def test_idx_round_trip_plain_and_gzipped(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, array)
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_idx_folder_loads_with_split_and_stats(tmp_path):
    dataset = load_dataset("idx", fake_idx_folder(tmp_path / "d"), val_fraction=0.2)
    assert dataset.input_shape == (6, 5, 1)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (40, 10, 20)
    assert dataset.train.images.dtype == torch.uint8 and dataset.train.images.shape == (40, 1, 6, 5)
    assert dataset.train.labels.dtype == torch.int64
    assert dataset.classes == 4
    x = dataset.normalize(dataset.train.images)
    assert x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 0.05


def test_uncompressed_files_and_nas_data_env(tmp_path, monkeypatch):
    folder = fake_idx_folder(tmp_path / "plain", gz=False)
    monkeypatch.setenv("NAS_DATA", str(folder))
    dataset = load_dataset("fashion-mnist")
    assert dataset.source == str(folder) and len(dataset.test) == 20


def test_missing_dataset_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("NAS_DATA", raising=False)
    monkeypatch.setattr(data, "DEFAULT_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    folder = fake_idx_folder(tmp_path / "partial")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("fashion-mnist", folder)
    with pytest.raises(DataError, match="needs a folder"):
        load_dataset("cifar10")


def test_truncated_idx_names_the_file(tmp_path):
    folder = fake_idx_folder(tmp_path / "d", gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        load_dataset("idx", folder)


def test_corrupt_gzip_and_bad_magic_name_the_file(tmp_path):
    folder = fake_idx_folder(tmp_path / "d")
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("idx", folder)
    path.write_bytes(gzip.compress(b"\x08\x08\x08\x03rubbish"))
    with pytest.raises(DataError, match="not an IDX file"):
        load_dataset("idx", folder)


def test_label_count_must_match(tmp_path):
    folder = fake_idx_folder(tmp_path / "d")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(49, dtype=np.uint8))
    with pytest.raises(DataError, match="expected 50 labels"):
        load_dataset("idx", folder)


def test_split_is_seeded_disjoint_and_complete():
    train_a, val_a = split_indices(1000, 0.1, seed=3)
    train_b, val_b = split_indices(1000, 0.1, seed=3)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert len(val_a) == 100 and len(train_a) == 900
    assert set(val_a.tolist()).isdisjoint(train_a.tolist())
    assert sorted(val_a.tolist() + train_a.tolist()) == list(range(1000))
    assert not torch.equal(split_indices(1000, 0.1, seed=4)[1], val_a)
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(10, 1.5, 0)


def test_synthetic_is_deterministic_and_shaped():
    a = load_dataset("synthetic", train=100, test=10, shape=(8, 9, 3), classes=5, seed=1)
    b = load_dataset("synthetic", train=100, test=10, shape=(8, 9, 3), classes=5, seed=1)
    assert a.input_shape == (8, 9, 3) and a.classes == 5
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)


def write_cifar(folder, n=6):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": b"x"}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    return folder


def test_cifar_batches_load(tmp_path):
    dataset = load_dataset("cifar10", write_cifar(tmp_path / "c"), val_fraction=0.2)
    assert dataset.input_shape == (32, 32, 3)
    assert len(dataset.train) + len(dataset.val) == 30 and len(dataset.test) == 6


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_refuses_arbitrary_classes(tmp_path, capsys):
    folder = write_cifar(tmp_path / "c")
    with open(folder / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": Evil(), b"labels": []}, handle)
    with pytest.raises(DataError, match="data_batch_3.*refusing to load builtins.print"):
        load_dataset("cifar10", folder)
    assert "pwned" not in capsys.readouterr().out


def test_real_fashion_mnist_labels_when_installed():
    path = data.DEFAULT_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not path.is_file():
        pytest.skip("dataset-fashion-mnist is not installed")
    labels = read_idx(path)
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10
