"""CIFAR-10 and CIFAR-100 python folders: loaded from generated files, never running pickled code."""

import os
import pickle

import numpy as np
import pytest

from nas.data import DATASET_SHAPES, DataError, load_dataset


def write_pickle(path, content, protocol=2):
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=protocol)


def write_cifar100(folder, n_train=40, n_test=10, protocol=2):
    """A tiny folder in the cifar-100-python format (train, test, meta; keys as bytes, as the
    original Python 2 pickles load with encoding='bytes')."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        write_pickle(folder / name, {
            b"filenames": [f"img_{i}.png".encode() for i in range(n)], b"batch_label": name.encode(),
            b"fine_labels": rng.integers(0, 100, n).tolist(), b"coarse_labels": rng.integers(0, 20, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}, protocol)
    write_pickle(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}, protocol)
    return folder


class RunsAShellCommand:
    """What a crafted file would do: call os.system when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar100_loads_fine_labels_and_names(tmp_path, protocol):
    folder = write_cifar100(tmp_path / "cifar-100-python", protocol=protocol)
    dataset = load_dataset("cifar100", folder, val_fraction=0.25)
    assert dataset.input_shape == (32, 32, 3) and dataset.classes == 100
    assert DATASET_SHAPES["cifar100"] == ((32, 32, 3), 100)
    assert len(dataset.train) == 30 and len(dataset.val) == 10 and len(dataset.test) == 10
    assert dataset.class_names[:2] == ("fine0", "fine1") and len(dataset.class_names) == 100
    with open(folder / "test", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    assert dataset.test.labels.tolist() == raw[b"fine_labels"]
    first = raw[b"data"][0].reshape(3, 32, 32)
    assert np.array_equal(dataset.test.images[0].numpy(), first)


@pytest.mark.parametrize("name", ["train", "test", "meta"])
def test_cifar100_refuses_a_pickle_that_would_run_a_command(tmp_path, name):
    folder = write_cifar100(tmp_path / "c")
    marker = tmp_path / "pwned"
    write_pickle(folder / name, {b"data": RunsAShellCommand(marker), b"fine_labels": []})
    with pytest.raises(DataError, match=rf"cannot read CIFAR file .*{name}: refusing to load "
                                        rf"(posix|os)\.system: not part of the CIFAR format"):
        load_dataset("cifar100", folder)
    assert not marker.exists()


def test_cifar10_refuses_a_pickle_that_would_run_a_command(tmp_path):
    from tests.test_data import write_cifar

    folder = write_cifar(tmp_path / "c")
    marker = tmp_path / "pwned"
    write_pickle(folder / "test_batch", {b"data": RunsAShellCommand(marker), b"labels": []})
    with pytest.raises(DataError, match=r"test_batch: refusing to load (posix|os)\.system"):
        load_dataset("cifar10", folder)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, "'fine_labels' must be a list of 2"),
    ({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}, r"'data' must be a uint8 array of shape"),
    ({b"data": np.zeros((2, 3072), np.float32), b"fine_labels": [0, 1]}, "'data' must be a uint8 array"),
    ([1, 2, 3], "expected a dict with data and labels, got list"),
])
def test_malformed_cifar100_files_are_named(tmp_path, content, message):
    folder = write_cifar100(tmp_path / "c")
    write_pickle(folder / "train", content)
    with pytest.raises(DataError, match=rf"train.*{message}"):
        load_dataset("cifar100", folder)


def test_cifar100_labels_out_of_range(tmp_path):
    folder = write_cifar100(tmp_path / "c")
    write_pickle(folder / "test", {b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [100]})
    with pytest.raises(DataError, match=r"test labels must lie in \[0, 100\)"):
        load_dataset("cifar100", folder)


def test_cifar100_truncated_and_missing_files(tmp_path):
    folder = write_cifar100(tmp_path / "c")
    (folder / "train").write_bytes((folder / "train").read_bytes()[:500])
    with pytest.raises(DataError, match=r"cannot read CIFAR file .*train"):
        load_dataset("cifar100", folder)
    (folder / "meta").unlink()
    with pytest.raises(FileNotFoundError, match="cifar100 not found: .* has no meta"):
        load_dataset("cifar100", folder)
    write_pickle(folder / "meta", {b"fine_label_names": [b"a"]})
    write_cifar100(tmp_path / "d")
    (folder / "train").write_bytes((tmp_path / "d" / "train").read_bytes())
    with pytest.raises(DataError, match="'fine_label_names' must be a list of 100 names"):
        load_dataset("cifar100", folder)


def test_cifar100_coarse_reads_the_twenty_superclasses(tmp_path):
    folder = write_cifar100(tmp_path / "cifar-100-python")
    dataset = load_dataset("cifar100-coarse", folder, val_fraction=0.25)
    assert dataset.input_shape == (32, 32, 3) and dataset.classes == 20
    assert dataset.class_names[:2] == ("coarse0", "coarse1") and len(dataset.class_names) == 20
    with open(folder / "test", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    assert dataset.test.labels.tolist() == raw[b"coarse_labels"]
    assert dataset.test.labels.tolist() != raw[b"fine_labels"]


def test_cifar100_labels_outside_the_classes_are_refused(tmp_path):
    folder = write_cifar100(tmp_path / "c")
    with open(folder / "train", "rb") as handle:
        content = pickle.load(handle, encoding="bytes")
    content[b"coarse_labels"][3] = 20
    write_pickle(folder / "train", content)
    with pytest.raises(DataError, match=r"train labels must lie in \[0, 20\)"):
        load_dataset("cifar100-coarse", folder)
    assert load_dataset("cifar100", folder).classes == 100  # the fine labels are intact
