"""The image-folder dataset: layout, conversion, resizing, caching and the errors for bad folders."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from nas import data_folder
from nas.data import DataError, load_dataset

COLORS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "emu": (30, 30, 200)}


def write_image(path, color, size=(12, 9), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)


def image_folder(root, splits=("train", "test"), per_class=3, classes=COLORS):
    """Solid-colour images of varied sizes and formats, one colour per class."""
    for split in splits:
        for name, color in classes.items():
            for i in range(per_class):
                suffix = ("png", "jpg", "bmp")[i % 3]
                write_image(root / split / name / f"{i}.{suffix}", color, size=(10 + 3 * i, 7 + i))
    return root


def test_folder_loads_resized_rgb_with_sorted_classes(tmp_path):
    dataset = load_dataset("folder", image_folder(tmp_path / "imgs", per_class=4), input="8x6x3", val_fraction=0.25)
    assert dataset.input_shape == (8, 6, 3) and dataset.classes == 3
    assert dataset.class_names == ("cat", "dog", "emu")
    assert len(dataset.train) + len(dataset.val) == 12 and len(dataset.test) == 12
    for split in (dataset.train, dataset.val, dataset.test):
        for image, label in zip(split.images, split.labels, strict=True):
            expected = torch.tensor(COLORS[dataset.class_names[label]], dtype=torch.float32)
            # PNG and BMP keep the colour exactly; JPEG is within a few levels
            assert (image.float().mean((1, 2)) - expected).abs().max() < 6


def test_folder_converts_to_grey(tmp_path):
    root = image_folder(tmp_path / "imgs", classes={"dark": (10, 10, 10), "light": (240, 240, 240)})
    dataset = load_dataset("folder", root, input="5x5x1")
    assert dataset.input_shape == (5, 5, 1)
    means = {dataset.class_names[int(label)]: float(image.float().mean())
             for image, label in zip(dataset.test.images, dataset.test.labels, strict=True)}
    assert means["dark"] < 20 < 230 < means["light"]


def test_palette_grey_and_alpha_images_are_converted(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=1)
    write_image(root / "train" / "cat" / "grey.png", 128, mode="L")
    write_image(root / "train" / "cat" / "alpha.png", (1, 2, 3, 4), mode="RGBA")
    write_image(root / "train" / "dog" / "palette.gif", 5, mode="P")
    dataset = load_dataset("folder", root, input="4x4x3")
    assert len(dataset.train) + len(dataset.val) == 6
    assert dataset.train.images.shape[1:] == (3, 4, 4)


def test_own_val_folder_replaces_the_held_out_split(tmp_path):
    root = image_folder(tmp_path / "imgs", splits=("train", "test", "val"), per_class=2)
    dataset = load_dataset("folder", root, input="4x4x3")
    assert len(dataset.train) == 6 and len(dataset.val) == 6 and len(dataset.test) == 6
    assert sorted(dataset.val.labels.tolist()) == [0, 0, 1, 1, 2, 2]


def test_hidden_files_and_nested_folders(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=1)
    (root / "train" / ".DS_Store").write_bytes(b"\0junk")
    (root / "train" / "cat" / ".thumbs").write_text("junk")
    write_image(root / "train" / "cat" / "more" / "deep.png", COLORS["cat"])
    dataset = load_dataset("folder", root, input="4x4x3", val_fraction=0.25)
    assert len(dataset.train) + len(dataset.val) == 4


@pytest.mark.parametrize("split", ["train", "test"])
def test_missing_split_folder_is_named(tmp_path, split):
    root = image_folder(tmp_path / "imgs", splits=[s for s in ("train", "test") if s != split])
    with pytest.raises(DataError, match=f"has no {split}/ folder"):
        load_dataset("folder", root, input="4x4x3")


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset("folder", tmp_path / "nowhere", input="4x4x3")


def test_empty_class_is_named(tmp_path):
    root = image_folder(tmp_path / "imgs")
    (root / "test" / "fox").mkdir()
    (root / "train" / "fox").mkdir()
    with pytest.raises(DataError, match=r"class folder .*fox holds no images"):
        load_dataset("folder", root, input="4x4x3")


def test_class_mismatch_names_the_classes(tmp_path):
    root = image_folder(tmp_path / "imgs")
    write_image(root / "test" / "fox" / "0.png", (1, 1, 1))
    os.rename(root / "test" / "emu", root / "test" / "gnu")
    with pytest.raises(DataError, match=r"classes of train/ and test/ differ \(missing from test/: emu; "
                                        r"only in test/: fox, gnu\)"):
        load_dataset("folder", root, input="4x4x3")


def test_val_classes_must_match_train(tmp_path):
    root = image_folder(tmp_path / "imgs", splits=("train", "test", "val"), per_class=1)
    os.rename(root / "val" / "dog", root / "val" / "doge")
    with pytest.raises(DataError, match=r"classes of train/ and val/ differ \(missing from val/: dog; only in "
                                        r"val/: doge\)"):
        load_dataset("folder", root, input="4x4x3")


def test_single_class_is_refused(tmp_path):
    root = image_folder(tmp_path / "imgs", classes={"cat": (1, 2, 3)})
    with pytest.raises(DataError, match="1 class folder.*cat.*at least 2"):
        load_dataset("folder", root, input="4x4x3")


def test_stray_file_outside_a_class_folder_is_named(tmp_path):
    root = image_folder(tmp_path / "imgs")
    write_image(root / "train" / "loose.png", (0, 0, 0))
    with pytest.raises(DataError, match=r"loose.png is not inside a class folder"):
        load_dataset("folder", root, input="4x4x3")


def test_non_image_file_is_named(tmp_path):
    root = image_folder(tmp_path / "imgs")
    (root / "train" / "dog" / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"dog/notes.png is not an image"):
        load_dataset("folder", root, input="4x4x3")


def test_truncated_image_is_named(tmp_path):
    root = image_folder(tmp_path / "imgs")
    path = root / "test" / "emu" / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cannot decode image .*emu/big.png"):
        load_dataset("folder", root, input="4x4x3")


@pytest.mark.parametrize("shape, message", [
    ("4x4x2", "C 1 \\(grey\\) or 3 \\(RGB\\), got 4x4x2"),
    ("4x4", "input must look like HxWxC.*got '4x4'"),
    ("0x4x3", "input must look like HxWxC"),
    (None, "needs an input shape HxWxC"),
])
def test_bad_input_shape(tmp_path, shape, message):
    with pytest.raises(DataError, match=message):
        load_dataset("folder", image_folder(tmp_path / "imgs", per_class=1), input=shape)


def test_input_applies_to_the_folder_dataset_only(tmp_path):
    with pytest.raises(DataError, match="folder dataset only, not 'cifar10'"):
        load_dataset("cifar10", tmp_path, input="32x32x3")


def test_cache_is_reused_and_refreshed_when_the_folder_changes(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "imgs", per_class=2)
    cache = tmp_path / "run" / "data_cache"
    first = load_dataset("folder", root, input="6x6x3", cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"

    def no_decoding(path, shape):
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(data_folder, "decode_image", no_decoding)
    again = load_dataset("folder", root, input="6x6x3", cache_dir=cache)
    assert torch.equal(first.train.images, again.train.images) and torch.equal(first.test.labels, again.test.labels)
    assert again.class_names == first.class_names
    monkeypatch.undo()

    write_image(root / "train" / "dog" / "new.png", COLORS["dog"])
    changed = load_dataset("folder", root, input="6x6x3", cache_dir=cache)
    assert len(changed.train) + len(changed.val) == 7
    other_shape = load_dataset("folder", root, input="5x5x1", cache_dir=cache)
    assert other_shape.input_shape == (5, 5, 1)
    assert len(list(cache.iterdir())) == 2  # one file per folder and shape: the stale one is gone


def test_nothing_is_written_into_the_image_folder(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=1)
    before = sorted(root.rglob("*"))
    load_dataset("folder", root, input="4x4x3", cache_dir=tmp_path / "cache")
    load_dataset("folder", root, input="4x4x3")
    assert sorted(root.rglob("*")) == before


def test_unreadable_cache_is_decoded_again(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=1)
    cache = tmp_path / "cache"
    load_dataset("folder", root, input="4x4x3", cache_dir=cache)
    (stored,) = cache.iterdir()
    stored.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable data cache"):
        dataset = load_dataset("folder", root, input="4x4x3", cache_dir=cache)
    assert dataset.classes == 3


def test_nas_train_on_an_image_folder(tmp_path, capsys):
    from nas.cli import main

    root = image_folder(tmp_path / "imgs", per_class=4)
    args = ["train", "mobilenet_v1_0.25", "--dataset", "folder", "--data", str(root), "--batch-size", "4",
            "--threads", "1", "--json"]
    assert main([*args, "--input", "12x12x1"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["dataset"] == f"folder@{root}:12x12x1:val0.1:split0" and record["status"] == "ok"
    assert main(args) != 0
    assert "needs an input shape HxWxC" in capsys.readouterr().err
    assert main([*args[:3], "synthetic", "--input", "12x12x1"]) != 0
    assert "--input applies to --dataset folder only" in capsys.readouterr().err


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=1)
    levels = np.array([[0, 257 * 100], [257 * 200, 65535]], dtype=np.uint16)
    path = root / "test" / "cat" / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")
    dataset = load_dataset("folder", root, input="2x2x1")
    pixels = [image.flatten().tolist() for image in dataset.test.images]
    assert [0, 100, 200, 255] in pixels, pixels


def test_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    """A camera stores a portrait photo as a landscape with an orientation tag; the dataset must
    see it as a viewer shows it, or every such training image is on its side."""
    root = image_folder(tmp_path / "imgs", per_class=1)
    stored = Image.new("RGB", (8, 4), (0, 0, 0))  # as the sensor saw it: the left half white
    stored.paste((255, 255, 255), (0, 0, 4, 4))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to view
    path = root / "test" / "cat" / "photo.jpg"
    stored.save(path, exif=exif, quality=100)
    dataset = load_dataset("folder", root, input="8x4x1")  # upright it is 4 wide, 8 tall
    photo = next(image[0].float() for image in dataset.test.images if image.float().std() > 50)
    # turned clockwise, the sensor's left half becomes the top half
    assert photo[:4].mean() > 200 and photo[4:].mean() < 55, photo


def test_a_folder_too_big_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "imgs", per_class=2)  # 12 images
    monkeypatch.setattr(data_folder, "available_memory_bytes", lambda: 12 * 64 * 64 * 3 - 1)
    monkeypatch.setattr(data_folder, "decode_image", lambda *a: pytest.fail("decoded a folder that cannot fit"))
    with pytest.raises(DataError, match=r"imgs: 12 images at 64x64x3 need 0.1 MB of memory once decoded, and "
                                        r"0.1 MB is available; choose a smaller input \(about 45x45x3 fits"):
        load_dataset("folder", root, input="64x64x3")


def test_a_folder_taking_most_of_the_memory_is_loaded_with_a_warning(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "imgs", per_class=2)
    monkeypatch.setattr(data_folder, "available_memory_bytes", lambda: 12 * 8 * 8 * 3 + 1)
    with pytest.warns(UserWarning, match="more than half of it"):
        dataset = load_dataset("folder", root, input="8x8x3")
    assert len(dataset.test) == 6
