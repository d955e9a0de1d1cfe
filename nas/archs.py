"""Turn what a user types for an architecture into an ArchSpec: a reference network's name,
a spec file (JSON, as written by ``nas arch sample --json`` or ``nas train --save``), or a
spec string."""

from __future__ import annotations

from pathlib import Path

from nas.space import FASHION_MNIST, Shape, get_reference, list_references
from nas.spec import ArchSpec, SpecError, parse_shape
from nas.strict_parse import loads_json

MAX_SPEC_FILE_BYTES = 1_000_000  # a spec of the largest allowed network is well under 100 kB


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a spec string too long to be a file name
        return False


def load_arch(text: str, input_shape: Shape | None = None, classes: int | None = None) -> ArchSpec:
    """Load ``text`` (reference name, spec file path or spec string).

    A reference is built for ``input_shape`` and ``classes`` (default 28x28x1, 10 classes). A
    file or string carries its own shape; if ``input_shape``/``classes`` are given and differ,
    that is an error rather than a silent rebuild.
    """
    if text in list_references():
        return get_reference(text, input_shape or FASHION_MNIST, classes or 10)
    path = Path(text)
    if text.strip().startswith("|") and "~" in text and not _is_file(path):
        # a NAS-Bench-201 arch string, built at CIFAR's 32x32x3 unless a shape is given
        from nas.space import get_space

        nb201 = get_space("nasbench201", tuple(input_shape or (32, 32, 3)), classes or 10)
        return nb201.from_arch_str(text)
    if text.strip().startswith("fbnet:") and not _is_file(path):
        # HW-NAS-Bench's FBNet encoding: 22 op indices, built at CIFAR-100's 32x32x3 unless given
        from nas.space import get_space

        return get_space("fbnet", tuple(input_shape or (32, 32, 3)), classes or 100).from_text(text)
    if "|" in text and not _is_file(path):
        spec = ArchSpec.from_string(text)
    elif path.suffix == ".json" or _is_file(path):
        if path.is_dir():
            raise SpecError(f"arch file {text!r} is a folder; expected a spec JSON file")
        if not path.is_file():
            raise SpecError(f"arch file {text!r} does not exist")
        if path.stat().st_size > MAX_SPEC_FILE_BYTES:
            raise SpecError(f"arch file {text!r} is {path.stat().st_size:,} bytes; a spec file is at most "
                            f"{MAX_SPEC_FILE_BYTES:,}")
        try:
            data = loads_json(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:  # not JSON, not UTF-8, or a key given twice
            raise SpecError(f"arch file {text!r} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "spec" in data and isinstance(data["spec"], dict):
            data = data["spec"]  # a record that wraps the spec (e.g. an exported card)
        try:
            spec = ArchSpec.from_dict(data)
        except SpecError as exc:
            raise SpecError(f"arch file {text!r} is not a valid spec: {exc}") from None
    else:
        from nas.space import closest

        raise SpecError(f"{text!r} is neither a reference network{closest(text, list_references())}, "
                        f"a spec file nor a spec string; references: {', '.join(list_references())}")
    if input_shape is not None and spec.input != tuple(input_shape):
        raise SpecError(f"{text!r} is a spec for input {spec.input}, not {tuple(input_shape)}")
    if classes is not None and spec.classes != classes:
        raise SpecError(f"{text!r} is a spec for {spec.classes} classes, not {classes}")
    return spec


def load_arch_for_table(text: str, provenance: dict) -> ArchSpec:
    """``text`` as a latency table prices it: a reference network is built at the table's input
    shape and class count (from its provenance); a file or spec string carries its own."""
    if text not in list_references():
        return load_arch(text)
    shape = parse_shape(provenance["input"], "the table's input") if provenance.get("input") else None
    return load_arch(text, shape, provenance.get("classes"))
