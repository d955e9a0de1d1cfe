"""Public ARM tables: the import maps their keys onto our ops, checked against sums computed
by hand from the YAML (read from NAS_ARM_DATA via the arm_data fixture)."""

import pytest
import yaml

from nas.cli import main
from nas.latency.errors import LatencyTableError
from nas.latency.importers import import_table, parse_public_key
from nas.latency.table import LatencyTable
from nas.ops import resolve
from nas.space import get_space
from nas.spec import InvertedResidual


@pytest.fixture(scope="module")
def pixel1(arm_data):
    path = arm_data / "proxylessnas_pixel1" / "mobile_trim.yaml"
    assert path.is_file(), f"{path} is missing"
    return path


def _hand_sum(spec, table: dict) -> float:
    """The ProxylessNAS rule, written out independently: Conv + Conv_1 + Logits + one
    expanded_conv entry per block, keyed by hand from the spec's blocks."""
    total = table["Conv-input:224x224x3-output:112x112x32"]["mean"]
    total += table["Conv_1-input:7x7x320-output:7x7x1280"]["mean"]
    total += table["Logits-input:7x7x1280-output:1000"]["mean"]
    size, channels = 112, 32
    blocks = [b for section in (spec.stem, *spec.stages) for b in section if isinstance(b, InvertedResidual)]
    for b in blocks:
        out = size // b.stride
        skip = int(b.stride == 1 and channels == b.out)
        key = (f"expanded_conv-input:{size}x{size}x{channels}-output:{out}x{out}x{b.out}-expand:{b.expand}-"
               f"kernel:{b.kernel}-stride:{b.stride}-idskip:{skip}")
        total += table[key]["mean"]
        size, channels = out, b.out
    return total


def test_proxylessnas_import_matches_hand_sums(pixel1):
    raw = yaml.safe_load(pixel1.read_text())
    table = import_table(pixel1, "proxylessnas")
    space = get_space("proxylessnas", (224, 224, 3), 1000)
    for seed in range(20):
        spec = space.sample(seed)
        assert table.predict(resolve(spec)) == pytest.approx(_hand_sum(spec, raw), rel=1e-9)


def test_every_proxylessnas_network_gets_a_pixel1_latency(pixel1):
    table = import_table(pixel1, "proxylessnas")
    space = get_space("proxylessnas", (224, 224, 3), 1000)
    assert table.missing(space.reachable_ops()) == []
    assert table.provenance["origin"]["format"] == "proxylessnas"
    assert table.provenance["device"] == "Google Pixel 1" and table.provenance["input"] == "224x224x3"


def test_proxylessnas_import_round_trips_through_the_cli(pixel1, tmp_path, capsys):
    out = tmp_path / "pixel1.csv"
    assert main(["latency", "import", str(pixel1), "--format", "proxylessnas", "-o", str(out)]) == 0
    loaded = LatencyTable.from_file(out)
    assert loaded.provenance["origin"]["file"] == "mobile_trim.yaml"
    spec = get_space("proxylessnas", (224, 224, 3), 1000).sample(3)
    raw = yaml.safe_load(pixel1.read_text())
    assert loaded.predict(resolve(spec)) == pytest.approx(_hand_sum(spec, raw), rel=1e-5)


@pytest.mark.parametrize("resolution", [160, 176, 192, 208, 224])
def test_ofa_import_keeps_every_entry(arm_data, resolution):
    path = arm_data / "ofa_note10" / f"{resolution}_lookup_table.yaml"
    raw = yaml.safe_load(path.read_text())
    table = import_table(path, "ofa")
    assert len(table) == len(raw)
    assert table.provenance["input"] == f"{resolution}x{resolution}x3"
    # the whole-network rule: Conv + blocks + Conv_1 + AvgPool2D + Conv_2 + Logits
    fixed = [k for k in raw if not k.startswith("expanded_conv")]
    blocks = [k for k in raw if k.startswith("expanded_conv")][:5]
    hand = sum(raw[k]["mean"] for k in fixed + blocks)
    ours = [op for op in table.ops.values() if op.type != "ir"]
    chosen = [table.ops[k] for k in table.ops if table.ops[k].type == "ir"]
    by_key = {(op.input, op.output, op.kernel, op.mid, op.se, op.act): op for op in chosen}
    picked = []
    for key in blocks:
        _, inp, out, o = parse_public_key(key, "test")
        picked.append(by_key[(inp, out, o["kernel"], o["expand"], bool(o["se"]), "hswish" if o["hs"] else "relu")])
    assert table.composition.total(table.entries[op.key]["median"] for op in ours + picked) == pytest.approx(hand)


@pytest.mark.parametrize("text, message", [
    ("a: [1, 2", "not valid YAML"),
    ("[1, 2]", "not a latency table"),
    ("Conv-input:224x224x3-output:112x112x32: {count: 1}", "expected count/mean"),
    ("Weird-thing: {count: 1, mean: 1.0, var: 0.1}", "unrecognised key"),
    ("Conv-input:224x224x3-output:112x112x32: {count: 1, mean: .nan, var: 0.1}", "invalid statistics"),
    ("expanded_conv-input:7x7x192-output:7x7x192-expand:3-kernel:3-stride:1-idskip:0: {count: 1, mean: 1.0}",
     "idskip:0 contradicts"),
])
def test_bad_public_tables(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(LatencyTableError, match=message):
        import_table(path, "proxylessnas")


def _ofa_hand_sum(spec, raw: dict, r: int) -> float:
    """OFA's rule written out: Conv + blocks + Conv_1 + AvgPool2D + Conv_2 + Logits, with
    each block's key formatted by hand (expand = hidden channels, se/hs flags)."""
    size, channels = r // 2, 24
    total = raw[f"Conv-input:{r}x{r}x3-output:{size}x{size}x24"]["mean"]
    blocks = [b for section in (spec.stem, *spec.stages) for b in section if isinstance(b, InvertedResidual)]
    for b in blocks:
        out = (size + 1) // 2 if b.stride == 2 else size
        skip = int(b.stride == 1 and channels == b.out)
        total += raw[f"expanded_conv-input:{size}x{size}x{channels}-output:{out}x{out}x{b.out}-"
                     f"expand:{int(channels * b.expand)}-kernel:{b.kernel}-stride:{b.stride}-idskip:{skip}-"
                     f"se:{int(b.se)}-hs:{int(b.act == 'hswish')}"]["mean"]
        size, channels = out, b.out
    total += raw[f"Conv_1-input:{size}x{size}x192-output:{size}x{size}x1152"]["mean"]
    total += raw[f"AvgPool2D-input:{size}x{size}x1152-output:1x1x1152"]["mean"]
    total += raw["Conv_2-input:1x1x1152-output:1x1x1536"]["mean"]
    return total + raw["Logits-input:1x1x1536-output:1000"]["mean"]


@pytest.mark.parametrize("resolution", [160, 224])
def test_every_ofa_network_gets_a_note10_latency_matching_hand_sums(arm_data, resolution):
    path = arm_data / "ofa_note10" / f"{resolution}_lookup_table.yaml"
    raw = yaml.safe_load(path.read_text())
    table = import_table(path, "ofa")
    space = get_space("ofa_mobilenet_v3", (resolution, resolution, 3), 1000)
    assert table.missing(space.reachable_ops()) == []
    for seed in range(10):
        spec = space.sample(seed)
        assert table.predict(resolve(spec)) == pytest.approx(_ofa_hand_sum(spec, raw, resolution), rel=1e-9)
