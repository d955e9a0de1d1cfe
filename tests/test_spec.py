import json

import pytest

from nas.spec import (
    ArchSpec,
    Conv,
    DepthwiseSeparable,
    Dropout,
    Fire,
    GlobalPool,
    InvertedResidual,
    Linear,
    MaxPool,
    NB201Cell,
    ShuffleUnit,
    SpecError,
    block_from_string,
    parse_shape,
)


def tiny_spec(**overrides) -> ArchSpec:
    fields = dict(
        input=(28, 28, 1), classes=10,
        stem=(Conv(3, 1, 16, act="relu6"),),
        stages=((InvertedResidual(3, 2, 6, 24, se=True, act="hswish"), InvertedResidual(5, 1, 4.0, 24)),
                (DepthwiseSeparable(3, 2, 32), ShuffleUnit(5, 1, 32)),
                (Fire(8, 16, 16, bypass=True, bn=True),)),
        head=(Conv(1, 1, 64), GlobalPool(), Dropout(0.2), Linear()),
    )
    fields.update(overrides)
    return ArchSpec(**fields)


def test_specs_are_frozen_and_hashable():
    a, b = tiny_spec(), tiny_spec()
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.classes = 3


def test_integral_expansion_is_canonical():
    assert InvertedResidual(3, 1, 6.0, 24) == InvertedResidual(3, 1, 6, 24)
    assert tiny_spec().stages[0][1].expand == 4 and isinstance(tiny_spec().stages[0][1].expand, int)


def test_json_round_trip_is_exact():
    spec = tiny_spec()
    text = spec.to_json()
    assert ArchSpec.from_json(text) == spec
    assert ArchSpec.from_json(spec.to_json(indent=2)) == spec
    assert json.loads(text)["stages"][0][0] == {
        "type": "ir", "kernel": 3, "stride": 2, "expand": 6, "out": 24, "se": True, "act": "hswish"}


def test_arch_id_is_pinned():
    # A golden value: if this changes, every stored study and cache entry is orphaned.
    assert tiny_spec().arch_id == GOLDEN_ARCH_ID
    assert len(tiny_spec().arch_id) == 16


GOLDEN_ARCH_ID = "ce404408070dee9e"


def test_arch_id_differs_for_different_networks():
    other = tiny_spec(classes=11, head=(Conv(1, 1, 64), GlobalPool(), Dropout(0.2), Linear()))
    assert other.arch_id != tiny_spec().arch_id


def test_string_round_trip():
    spec = tiny_spec()
    text = spec.to_string()
    assert text.startswith("28x28x1>10|conv_k3_s1_c16_bn_relu6|ir_k3_s2_e6_c24_se_hswish,")
    assert "fire_sq8_e1x16_e3x16_bypass_bn" in text
    assert ArchSpec.from_string(text) == spec


def test_nb201_cell_string_round_trip():
    cell = NB201Cell(("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "skip_connect"))
    assert block_from_string(cell.to_string(), "x") == cell
    assert cell.to_string() == "nb201_oc3-skip-none-ap3-c1-skip"


@pytest.mark.parametrize("text, message", [
    ("28x28x1>10|conv_k3_s1_c16_bn_relu|ri_k3_s1_c16|gap,fc", "unknown block type 'ri'"),
    ("28x28x1>10|conv_k3_s1_c16_bn_relu|ir_k3_s1_e6_c16_zz|gap,fc", "unknown token 'zz'"),
    ("28x28x1>10|conv_k3_s1_c16_bn_relu|ir_k3_k5_s1_e6_c16|gap,fc", "given twice"),
    ("28x28x1>10|conv_k3_s1_c16_bn_relu|ir_k4_s1_e6_c16|gap,fc", "ir.kernel must be one of"),
    ("28x28x1>10|conv_k3_s1_c16_bn_relu|ir_k3_s1_c16|gap,fc", "missing field(s) ['expand']"),
    ("28x28x1|conv_k3_s1_c16_bn_relu|gap,fc", "header must look like"),
    ("28x28x1>10|conv_k3_s1_c16_bn_relu", "at least header|stem|head"),
])
def test_string_parser_is_strict(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace("|", r"\|")):
        ArchSpec.from_string(text)


@pytest.mark.parametrize("make, message", [
    (lambda: Conv(3, 3, 16), "conv.stride must be one of"),
    (lambda: Conv(3, 1, 0), "conv.out must be >= 1, got 0"),
    (lambda: Conv(3, 1, 16, act="gelu"), "conv.act must be one of .* got 'gelu'"),
    (lambda: InvertedResidual(3, 1, 0.5, 16), "ir.expand must be between 1 and 12, got 0.5"),
    (lambda: InvertedResidual(3, 1, "6", 16), "ir.expand must be a number, got '6'"),
    (lambda: ShuffleUnit(3, 1, 15), "shuffle.out must be even"),
    (lambda: Fire(8, 0, 0), "must be >= 1"),
    (lambda: Dropout(1.5), r"dropout.p must be a number in \[0, 1\), got 1.5"),
    (lambda: MaxPool(3, 2, pad=2), "maxpool.pad must be <= kernel // 2"),
    (lambda: Conv(3, 1, True), "conv.out must be an integer, got True"),
    (lambda: NB201Cell(("nor_conv_3x3",) * 5), "must list 6 edge ops"),
    (lambda: NB201Cell(("conv",) * 6), "unknown op 'conv'"),
])
def test_block_validation_names_field_and_value(make, message):
    with pytest.raises(SpecError, match=message):
        make()


@pytest.mark.parametrize("overrides, message", [
    (dict(input=(28, 28)), "input must be"),
    (dict(classes=0), "spec.classes must be >= 1, got 0"),
    (dict(head=()), "head must hold at least the classifier"),
    (dict(head=(Conv(1, 1, 64), Linear())), r"fc: needs a 1x1 input .* got 7x7x64"),
    (dict(head=(GlobalPool(),)), "must end with a 1x1x10 output"),
    (dict(stages=((ShuffleUnit(3, 1, 15 + 1),), (Fire(8, 16, 15, bypass=True),))), r"stages\[1\]\[0\]: fire: bypass"),
    (dict(stages=[(Conv(3, 1, 8),)]), "stages must be a tuple"),
    (dict(stem=(Conv(3, 1, 8), "conv")), r"stem\[1\] must be a block"),
])
def test_arch_validation_names_location(overrides, message):
    with pytest.raises(SpecError, match=message):
        tiny_spec(**overrides)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(extra=1), r"unknown spec field\(s\) \['extra'\]"),
    (lambda d: d.pop("head"), r"missing field\(s\) \['head'\]"),
    (lambda d: d["stages"][0][0].update(kernal=3), r"stages\[0\]\[0\]: unknown field\(s\) \['kernal'\]"),
    (lambda d: d["stages"][1][0].update(type="sep"), r"stages\[1\]\[0\]: unknown block type 'sep'"),
    (lambda d: d["stem"][0].update(stride="2"), r"stem\[0\]: conv.stride must be an integer, got '2'"),
])
def test_from_dict_errors(mutate, message):
    data = tiny_spec().to_dict()
    mutate(data)
    with pytest.raises(SpecError, match=message):
        ArchSpec.from_dict(data)


def test_from_json_rejects_garbage():
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{not json")
    with pytest.raises(SpecError, match="must be a JSON object"):
        ArchSpec.from_json("[1, 2]")


def test_parse_shape():
    assert parse_shape("224x224x3") == (224, 224, 3)
    for bad in ("28x28", "0x28x1", "axbxc", ""):
        with pytest.raises(SpecError, match="HxWxC"):
            parse_shape(bad)
