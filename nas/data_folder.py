"""Your own images: a folder of class folders, decoded with Pillow into in-memory uint8 arrays.

Layout (the usual one, as torchvision's ImageFolder reads it)::

    DIR/train/<class>/<image>   required
    DIR/test/<class>/<image>    required, the same classes
    DIR/val/<class>/<image>     optional: the validation split (else one is held out of train)

Class names are the sorted folder names of ``train``; images may sit in subfolders of a class
folder; hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are skipped, every other
file must be an image Pillow can read. Each image is turned upright by its EXIF orientation tag
(photos), converted to grey (C=1) or RGB (C=3), 16-bit grey scaled to 8 bits, and resized to HxW
(bilinear, the aspect ratio is not kept).

Decoding thousands of files takes a while, so the decoded arrays can be kept in a cache folder
the caller names (a search uses its run folder): one ``.npz`` file per folder and shape, found
again by a fingerprint of every file's path, size and modification time, so an edited folder is
decoded afresh (and its stale file removed).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from nas.folders import written_whole

SPLITS = ("train", "test", "val")  # val is optional
CHANNEL_MODES = {1: "L", 3: "RGB"}
CACHE_VERSION = "3"  # bump when the decoding changes, so old caches are not read
Arrays = tuple[np.ndarray, np.ndarray]  # images (N, C, H, W) uint8, labels (N,) int64


class FolderError(ValueError):
    """The image folder is malformed; the message names the folder or file at fault."""


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _list_split(root: Path, split: str) -> dict[str, list[str]]:
    """{class name: sorted image files} of one split folder."""
    folder = root / split
    if not folder.is_dir():
        raise FolderError(f"image folder {root} has no {split}/ folder; expected {split}/<class>/<image> "
                          f"(train/ and test/ are required, val/ is optional)")
    classes: dict[str, list[str]] = {}
    for entry in sorted(folder.iterdir()):
        if not _visible(entry):
            continue
        if not entry.is_dir():
            raise FolderError(f"{entry} is not inside a class folder; expected {split}/<class>/<image>")
        files = []  # as strings: a large folder has many, and pathlib's objects are slow to make
        for current, dirs, names in os.walk(entry):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files += [os.path.join(current, name) for name in sorted(names) if not name.startswith(".")]
        if not files:
            raise FolderError(f"class folder {entry} holds no images (an empty class)")
        classes[entry.name] = files
    if not classes:
        raise FolderError(f"{folder} holds no class folders; expected {split}/<class>/<image>")
    return classes


def list_image_folder(root: str | Path) -> dict[str, dict[str, list[str]]]:
    """{split: {class: files}} for the splits present, with every split's classes checked
    against train's."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    splits = {split: _list_split(root, split) for split in SPLITS if split != "val" or (root / split).exists()}
    names = list(splits["train"])
    if len(names) < 2:
        raise FolderError(f"{root / 'train'} has {len(names)} class folder(s) ({', '.join(names)}); "
                          "a classifier needs at least 2")
    for split, classes in splits.items():
        missing, extra = sorted(set(names) - set(classes)), sorted(set(classes) - set(names))
        if missing or extra:
            parts = ([f"missing from {split}/: {', '.join(missing)}"] if missing else []) + \
                    ([f"only in {split}/: {', '.join(extra)}"] if extra else [])
            raise FolderError(f"image folder {root}: the classes of train/ and {split}/ differ ({'; '.join(parts)})")
    return splits


def fingerprint(root: Path, splits: dict[str, dict[str, list[str]]], shape: tuple[int, int, int]) -> str:
    """A hash of the shape and every file's path (relative to ``root``), size and modification
    time."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{'x'.join(map(str, shape))}".encode())
    prefix = len(str(root)) + 1
    for classes in splits.values():
        for files in classes.values():
            for path in files:
                stat = os.stat(path)
                digest.update(f"|{path[prefix:]}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _eight_bit(image):
    """16-bit grey images (PNG, TIFF) scaled to 0..255: Pillow's own conversion clips them, so
    every pixel above 255 would turn white."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        pixels = np.asarray(image, dtype=np.float64) / 257
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))  # 2-D uint8: mode L
    return image


def decode_image(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image as uint8 (C, H, W), converted and resized to ``shape`` (HxWxC)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    h, w, c = shape
    try:
        with Image.open(path) as image:
            # JPEG: decode at a reduced scale when that is enough; square, since the EXIF
            # orientation below may turn the image a quarter
            image.draft(CHANNEL_MODES[c], (max(w, h), max(w, h)))
            # phone and camera photos are stored as the sensor saw them, with a tag saying how
            # to turn them upright: apply it, as every viewer does
            image = ImageOps.exif_transpose(image)
            image = _eight_bit(image).convert(CHANNEL_MODES[c])
            if image.size != (w, h):
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise FolderError(f"{path} is not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise FolderError(f"cannot decode image {path}: {exc}") from None
    return pixels[None] if c == 1 else pixels.transpose(2, 0, 1)


def decode_split(classes: dict[str, list[str]], names: list[str], shape: tuple[int, int, int]) -> Arrays:
    h, w, c = shape
    count = sum(len(files) for files in classes.values())
    images = np.empty((count, c, h, w), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    i = 0
    for label, name in enumerate(names):
        for path in classes[name]:
            images[i] = decode_image(path, shape)
            labels[i] = label
            i += 1
    return images, labels


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        warnings.warn(f"ignoring the unreadable data cache {path} ({exc}); decoding the images again", stacklevel=3)
        return None


def load_image_folder(root: str | Path, shape: tuple[int, int, int],
                      cache_dir: str | Path | None = None) -> tuple[dict[str, Arrays], list[str]]:
    """({split: (images (N, C, H, W) uint8, labels (N,) int64)}, class names) of the image
    folder ``root`` at ``shape`` (HxWxC, C 1 or 3); decoded arrays are read from and written to
    ``cache_dir`` when given. Raises FileNotFoundError or FolderError naming the fault."""
    if len(shape) != 3 or shape[2] not in CHANNEL_MODES:
        raise FolderError(f"the input shape of an image folder must be HxWxC with C 1 (grey) or 3 (RGB), "
                          f"got {'x'.join(map(str, shape))}")
    root = Path(root)
    splits = list_image_folder(root)
    check_memory(root, sum(len(files) for classes in splits.values() for files in classes.values()), shape)
    names = list(splits["train"])
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{_cache_stem(root, shape)}-{fingerprint(root, splits, shape)}.npz"
        stored = _read_cache(cache) if cache.is_file() else None
        if stored is not None and stored["classes"].tolist() == names:
            return {split: (stored[f"{split}_images"], stored[f"{split}_labels"]) for split in splits}, names
    arrays = {split: decode_split(classes, names, shape) for split, classes in splits.items()}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        payload = {f"{split}_{part}": array for split, pair in arrays.items()
                   for part, array in zip(("images", "labels"), pair, strict=True)}
        with written_whole(cache) as temporary:  # workers decoding together each write whole files
            np.savez(temporary, classes=np.array(names), **payload)
        for stale in cache.parent.glob(f"{_cache_stem(root, shape)}-*.npz"):  # this folder before an edit
            if stale != cache:
                stale.unlink(missing_ok=True)
    return arrays, names


def available_memory_bytes() -> int | None:
    """Memory a new allocation can get without swapping (Linux's MemAvailable, else the
    physical memory); None where neither is known."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def check_memory(root: Path, images: int, shape: tuple[int, int, int]) -> None:
    """The decoded folder is held in memory whole (training draws random batches from it):
    refuse, before decoding for minutes, a folder that cannot fit, and warn when it would take
    more than half of what is free."""
    h, w, c = shape
    needed, available = images * h * w * c, available_memory_bytes()
    if available is None or needed <= available // 2:
        return
    side = max(8, int(min(h, w) * (available / 2 / needed) ** 0.5))  # a square input that fits in half
    advice = f"a smaller input (about {side}x{side}x{c} fits in half of it) or fewer images"
    message = (f"image folder {root}: {images:,} images at {h}x{w}x{c} need {_size(needed)} of memory once decoded, "
               f"and {_size(available)} is available")
    if needed > available:
        raise FolderError(f"{message}; choose {advice}")
    warnings.warn(f"{message}: more than half of it; training and other processes need the rest ({advice})",
                  stacklevel=3)


def _cache_stem(root: Path, shape: tuple[int, int, int]) -> str:
    """The cache files of one folder at one shape share this name; their fingerprints differ."""
    key = f"{root.resolve()}|{'x'.join(map(str, shape))}"
    return f"folder-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
