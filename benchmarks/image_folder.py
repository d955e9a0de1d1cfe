"""Benchmark: reading an image folder (nas/data_folder.py) the first time and from its cache.

Generates a folder of JPEG photos-like images (smooth colour gradients with noise, sizes that
vary around --size) with --classes classes and --per-class images per class in train/ and a
quarter as many in test/, then loads it as ``dataset: {name: folder, input: ...}`` does: once
decoding every file (and writing the cache), once from the cache, and once more after one file
changed (decoded again: the cache is keyed by every file's path, size and modification time).

    python benchmarks/image_folder.py --per-class 500 --classes 10 --input 32x32x3

Prints JSON: images, seconds to decode, images per second, seconds from the cache, the cache's
size in bytes, and whether the changed folder was decoded again. Everything is written in a
temporary folder (or --work) and removed afterwards unless --work is given.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nas.data import load_dataset


def make_folder(root: Path, classes: int, per_class: int, size: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    count = 0
    for split, n in (("train", per_class), ("test", max(1, per_class // 4))):
        for k in range(classes):
            folder = root / split / f"class_{k:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (int(v) for v in rng.integers(size * 3 // 4, size * 5 // 4 + 1, 2))
                ys, xs = np.mgrid[0:h, 0:w]
                base = rng.integers(0, 256, 3)
                slope = rng.normal(0, 1.5, (3, 2))
                pixels = base[:, None, None] + slope[:, 0, None, None] * ys + slope[:, 1, None, None] * xs
                pixels = pixels.transpose(1, 2, 0) + rng.normal(0, 12, (h, w, 3))
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                image.save(folder / f"{i:05d}.jpg", quality=90)
                count += 1
    return count


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--size", type=int, default=96, help="typical side of the generated images, pixels")
    parser.add_argument("--input", default="32x32x3", help="HxWxC the images are loaded at")
    parser.add_argument("--work", type=Path, help="keep the generated folder and cache here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        root, cache = work / "images", work / "cache"
        images = make_folder(root, args.classes, args.per_class, args.size) if not root.exists() else None
        first, decode_s = timed(lambda: load_dataset("folder", root, input=args.input, cache_dir=cache))
        again, cached_s = timed(lambda: load_dataset("folder", root, input=args.input, cache_dir=cache))
        changed = next((root / "train").rglob("*.jpg"))
        os.utime(changed, ns=(time.time_ns(), time.time_ns()))
        _, changed_s = timed(lambda: load_dataset("folder", root, input=args.input, cache_dir=cache))
        total = len(first.train) + len(first.val) + len(first.test)
        print(json.dumps({
            "images": total, "generated": images, "classes": first.classes, "input": args.input,
            "source_size_px": args.size, "decode_s": round(decode_s, 3),
            "decode_images_per_s": round(total / decode_s, 1), "cached_s": round(cached_s, 3),
            "cache_speedup": round(decode_s / cached_s, 1),
            "cache_bytes": sum(p.stat().st_size for p in cache.iterdir()),
            "identical_from_cache": bool((first.train.images == again.train.images).all()),
            "after_one_file_changed_s": round(changed_s, 3),
            "decoded_again_after_a_change": changed_s > 0.5 * decode_s,
            "cache_files": len(list(cache.iterdir())),  # 1: the stale file of the unchanged folder is removed
        }, indent=2))


if __name__ == "__main__":
    main()
