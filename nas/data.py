"""Image-classification datasets held in memory as uint8 tensors.

Sources: Fashion-MNIST (or any MNIST-format IDX folder), the CIFAR-10 and CIFAR-100 python
folders (read by an unpickler that runs no code), a folder of your own images
(:mod:`nas.data_folder`) and a small generated dataset for tests. Every loader returns a :class:`Dataset` whose
training set is split once, with a fixed seed, into ``train`` and ``val``: a search only ever
sees validation accuracy; the test set is for final reports.

Images are stored as ``(N, C, H, W)`` uint8 and normalised on the fly by
:meth:`Dataset.normalize` with the per-channel mean and std of the training split. Shapes
reported to the rest of the project are HxWxC (``Dataset.input_shape``).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV = "NAS_DATA"
DATASETS = ("fashion-mnist", "mnist", "idx", "cifar10", "cifar100", "cifar100-coarse", "folder", "synthetic")
# (HxWxC, classes) of the datasets whose shape is fixed by their name (synthetic: its default)
DATASET_SHAPES = {"fashion-mnist": ((28, 28, 1), 10), "mnist": ((28, 28, 1), 10), "cifar10": ((32, 32, 3), 10),
                  "cifar100": ((32, 32, 3), 100), "cifar100-coarse": ((32, 32, 3), 20),
                  "synthetic": ((28, 28, 1), 10)}
INSTALL_HINT = ("install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or point "
                f"{DATA_ENV} (or --data) at a folder holding the four IDX files")


class DataError(ValueError):
    """A dataset is missing, malformed or truncated; the message names the file."""


@dataclass(frozen=True)
class Split:
    """Images ``(N, C, H, W)`` uint8 and labels ``(N,)`` int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


@dataclass(frozen=True)
class Dataset:
    """A named dataset: train / val (a seeded split of the training set) / test, all in memory."""

    name: str
    train: Split
    val: Split
    test: Split
    classes: int
    mean: tuple[float, ...]  # per channel, on the 0..1 scale, from the train split
    std: tuple[float, ...]
    source: str = ""  # where it was read from (for reports)
    split_seed: int = 0
    val_fraction: float = 0.1
    class_names: tuple[str, ...] = ()  # when the data names its classes (an image folder, CIFAR-100)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """HxWxC."""
        _, c, h, w = self.train.images.shape
        return (h, w, c)

    @property
    def key(self) -> str:
        """A stable description of what a model sees (for cache keys); an image folder is named by
        its path, as any folder could hold images of its shape."""
        name = f"{self.name}@{self.source}" if self.name == "folder" else self.name
        return f"{name}:{'x'.join(map(str, self.input_shape))}:val{self.val_fraction:g}:split{self.split_seed}"

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, C, H, W)`` -> float32, standardised per channel."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1) * 255
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1) * 255
        return (images.float() - mean) / std


# --------------------------------------------------------------------------------------
# IDX (MNIST format)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.name.endswith(".gz") else raw
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(f"cannot read {path}: {exc} (a corrupt or truncated file?)") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into an array of its declared shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: unsupported IDX type 0x{dtype_code:02x} with {ndim} dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: the header needs {header} bytes, the file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path} is {state}: shape {shape} needs {expected} bytes, the file has {len(data)}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx(folder: Path, part: str) -> Path:
    for stem in _IDX_NAMES[part]:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"{folder} has no {_IDX_NAMES[part][0]}[.gz]")


def _idx_split(folder: Path, prefix: str) -> Split:
    images_path, labels_path = _find_idx(folder, f"{prefix}_images"), _find_idx(folder, f"{prefix}_labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: expected {len(images)} labels for {images_path.name}, "
                        f"got shape {labels.shape}")
    tensor = torch.from_numpy(images.copy())
    tensor = tensor.unsqueeze(1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2).contiguous()
    return Split(tensor, torch.from_numpy(labels.astype(np.int64)))


def load_idx_folder(folder: str | Path) -> tuple[Split, Split]:
    """(train, test) from an MNIST-format folder (``train-images-idx3-ubyte[.gz]`` and so on)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    return _idx_split(folder, "train"), _idx_split(folder, "test")


# --------------------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100 python folders


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR file holds: dicts, lists, bytes, numbers and numpy uint8
    arrays (numpy's array reconstructor, ndarray and dtype; ``_frombuffer`` is how protocol 5
    writes an array, ``_codecs.encode`` how Python 3 writes bytes at protocol 2). Any other
    global a crafted file might name (``os.system``, ``builtins.eval``, ...) is refused before
    it is looked up, so no code in the file runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR format "
                                     "(a crafted or foreign pickle?)")


def _read_cifar_pickle(path: Path) -> dict:
    """The dict a CIFAR python file holds, with its keys as str."""
    try:
        with path.open("rb") as handle:
            content = _CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as exc:
        raise DataError(f"cannot read CIFAR file {path}: {exc}") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a dict with data and labels, got {type(content).__name__}")
    return {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _read_cifar_batch(path: Path, label_key: str = "labels") -> Split:
    batch = _read_cifar_pickle(path)
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(v, int) for v in labels):
        raise DataError(f"{path}: {label_key!r} must be a list of {len(data)} class indices")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return Split(images, torch.tensor(labels, dtype=torch.int64))


def load_cifar10_folder(folder: str | Path) -> tuple[Split, Split]:
    """(train, test) from ``cifar-10-batches-py`` (data_batch_1..5 and test_batch)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    parts = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name} (expected the CIFAR-10 python batches)")
        parts.append(_read_cifar_batch(folder / name))
    train = Split(torch.cat([p.images for p in parts[:5]]), torch.cat([p.labels for p in parts[:5]]))
    return train, parts[5]


CIFAR100_LABELS = {"fine": 100, "coarse": 20}  # the 100 classes, or the 20 superclasses grouping them


def load_cifar100_folder(folder: str | Path, labels: str = "fine") -> tuple[Split, Split, tuple[str, ...]]:
    """(train, test, class names) from ``cifar-100-python`` (train, test and meta); ``labels``
    picks the 100 fine classes or the 20 coarse superclasses the files also carry."""
    if labels not in CIFAR100_LABELS:
        raise DataError(f"CIFAR-100 labels must be one of {list(CIFAR100_LABELS)}, got {labels!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    for name in ("train", "test", "meta"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name} (expected the CIFAR-100 python files train, test, meta)")
    train, test = (_read_cifar_batch(folder / name, f"{labels}_labels") for name in ("train", "test"))
    count, key = CIFAR100_LABELS[labels], f"{labels}_label_names"
    names = _read_cifar_pickle(folder / "meta").get(key)
    if not isinstance(names, list) or len(names) != count or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{folder / 'meta'}: {key!r} must be a list of {count} names")
    return train, test, tuple(n.decode("latin-1") if isinstance(n, bytes) else n for n in names)


# --------------------------------------------------------------------------------------
# generated data (tests only)


def synthetic_splits(train: int = 600, test: int = 200, shape: tuple[int, int, int] = (28, 28, 1),
                     classes: int = 10, seed: int = 0) -> tuple[Split, Split]:
    """A toy problem small networks learn in a few steps: class ``k`` is a grating at its own
    orientation and frequency, with a random phase per sample and pixel noise. For tests only."""
    h, w, c = shape
    gen = torch.Generator().manual_seed(seed)
    angles = torch.arange(classes) * math.pi / classes
    freqs = 0.5 + 0.5 * (torch.arange(classes) % 3)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")

    def make(n: int) -> Split:
        labels = torch.randint(0, classes, (n,), generator=gen)
        a, f = angles[labels].view(n, 1, 1, 1), freqs[labels].view(n, 1, 1, 1)
        phase = torch.rand(n, 1, 1, 1, generator=gen) * 2 * math.pi
        wave = torch.sin(f * (xs * torch.cos(a) + ys * torch.sin(a)) + phase)
        images = 0.5 + 0.35 * wave.expand(n, c, h, w) + 0.15 * torch.randn(n, c, h, w, generator=gen)
        return Split((images * 255).round().clamp(0, 255).to(torch.uint8), labels)

    return make(train), make(test)


# --------------------------------------------------------------------------------------
# split and assembly


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) index tensors: a seeded permutation, the first ``val_fraction`` for val."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(n * val_fraction))
    return order[n_val:].sort().values, order[:n_val].sort().values


def assemble(name: str, train: Split, test: Split, *, val_fraction: float = 0.1, split_seed: int = 0,
             source: str = "", classes: int | None = None, val: Split | None = None,
             class_names: tuple[str, ...] = ()) -> Dataset:
    """Split ``train`` into train/val (unless the data brings its own ``val``) and compute
    normalisation statistics."""
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(f"{name}: train images {tuple(train.images.shape[1:])} and test images "
                        f"{tuple(test.images.shape[1:])} differ in shape")
    classes = classes or int(max(train.labels.max(), test.labels.max())) + 1
    for split_name, split in (("train", train), ("test", test)):
        if len(split) and (split.labels.min() < 0 or split.labels.max() >= classes):
            raise DataError(f"{name}: {split_name} labels must lie in [0, {classes})")
    if val is None:
        train_idx, val_idx = split_indices(len(train), val_fraction, split_seed)
        fit, val = train.subset(train_idx), train.subset(val_idx)
    else:
        fit = train
    pixels = fit.images.transpose(0, 1).reshape(fit.images.shape[1], -1).double() / 255
    mean = tuple(pixels.mean(1).tolist())
    std = tuple(max(s, 1e-3) for s in pixels.std(1).tolist())
    return Dataset(name, fit, val, test, classes, mean, std, source, split_seed, val_fraction, class_names)


def resolve_root(root: str | Path | None, dataset: str) -> Path:
    """The folder to read: ``root`` if given, else $NAS_DATA, else (Fashion-MNIST only) the
    Debian package's folder."""
    if root:
        return Path(root)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    if dataset == "fashion-mnist":
        return DEFAULT_FASHION_MNIST
    raise DataError(f"dataset {dataset!r} needs a folder: pass --data PATH (root=...) or set {DATA_ENV}")


def load_dataset(name: str = "fashion-mnist", root: str | Path | None = None, *, val_fraction: float = 0.1,
                 split_seed: int = 0, input: tuple[int, int, int] | str | None = None,
                 cache_dir: str | Path | None = None, **synthetic_options) -> Dataset:
    """Load a dataset by name (one of :data:`DATASETS`).

    ``fashion-mnist``/``mnist``/``idx`` read an MNIST-format IDX folder (``root``, else
    $NAS_DATA, else /usr/share/datasets/fashion-mnist for fashion-mnist); ``cifar10`` and
    ``cifar100`` read the python folders (``cifar100-coarse``: CIFAR-100's folder with its 20
    superclasses as labels); ``folder`` reads an image folder
    (``root/train/<class>/*``, ``root/test/<class>/*``, optional ``root/val/``) resized and
    converted to ``input`` (HxWxC, C 1 or 3), keeping the decoded arrays in ``cache_dir`` when
    given; ``synthetic`` generates data (options: train, test, shape, classes, seed). Raises
    FileNotFoundError (with how to get the data) or DataError.
    """
    if name == "synthetic":
        train, test = synthetic_splits(**synthetic_options)
        return assemble(name, train, test, val_fraction=val_fraction, split_seed=split_seed, source="generated",
                        classes=synthetic_options.get("classes", 10))
    if synthetic_options:
        raise TypeError(f"options {sorted(synthetic_options)} apply only to the synthetic dataset")
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")
    if name != "folder" and (input is not None or cache_dir is not None):
        raise DataError(f"an input shape and a cache folder apply to the folder dataset only, not {name!r}")
    folder = resolve_root(root, name)
    if name == "folder":
        return load_folder_dataset(folder, input, cache_dir, val_fraction=val_fraction, split_seed=split_seed)
    class_names: tuple[str, ...] = ()
    try:
        if name == "cifar10":
            train, test = load_cifar10_folder(folder)
        elif name in ("cifar100", "cifar100-coarse"):
            train, test, class_names = load_cifar100_folder(folder, "coarse" if name == "cifar100-coarse" else "fine")
        else:
            train, test = load_idx_folder(folder)
    except FileNotFoundError as exc:
        hint = INSTALL_HINT if name == "fashion-mnist" else f"pass --data PATH or set {DATA_ENV}"
        raise FileNotFoundError(f"{name} not found: {exc}; {hint}") from None
    classes = DATASET_SHAPES[name][1] if name in DATASET_SHAPES else None
    return assemble(name, train, test, val_fraction=val_fraction, split_seed=split_seed, source=str(folder),
                    classes=classes, class_names=class_names)


def load_folder_dataset(root: Path, input: tuple[int, int, int] | str | None, cache_dir: str | Path | None, *,
                        val_fraction: float, split_seed: int) -> Dataset:
    """An image folder as a Dataset (see :mod:`nas.data_folder`); its own ``val/`` split, when
    present, replaces the one held out of train."""
    from nas.data_folder import FolderError, load_image_folder
    from nas.spec import SpecError, parse_shape

    if input is None:
        raise DataError(f"the folder dataset {root} needs an input shape HxWxC (C 1 for grey, 3 for RGB), "
                        "e.g. input: 64x64x3")
    try:
        shape = parse_shape(input, "input") if isinstance(input, str) else tuple(input)
        arrays, names = load_image_folder(root, shape, cache_dir)
    except (SpecError, FolderError) as exc:
        raise DataError(str(exc)) from None
    splits = {split: Split(torch.from_numpy(images), torch.from_numpy(labels))
              for split, (images, labels) in arrays.items()}
    return assemble("folder", splits["train"], splits["test"], val_fraction=val_fraction, split_seed=split_seed,
                    source=str(root), classes=len(names), val=splits.get("val"), class_names=tuple(names))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzipped if ``path`` ends in .gz (for tests and
    for exporting small datasets)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
            handle.write(payload)
        payload = buffer.getvalue()
    path.write_bytes(payload)
