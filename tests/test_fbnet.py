import json

import numpy as np
import pytest

from nas.archs import load_arch
from nas.cli import main
from nas.latency import load_latency_model
from nas.ops import count_macs, count_params, resolve
from nas.space import get_space
from nas.spec import ArchSpec, Conv, FBNetBlock, SpecError
from search_spaces.fbnet import LAYERS, OP_NAMES

ALL_K3_E1 = [0] * 22
ALL_SKIP = [8] * 22


@pytest.fixture(scope="module")
def space():
    return get_space("fbnet", (32, 32, 3), 100)


def test_skeleton_follows_hw_nas_bench(space):
    ops = resolve(space.from_indices(ALL_K3_E1))
    blocks = [op for op in ops if op.type == "fbnet"]
    assert len(blocks) == LAYERS == 22
    # widths 16/24/32/64/112/184/352 with CIFAR strides 1,1,2,2,1,2,1 (32 -> 32 -> 16 -> 8 -> 8 -> 4 -> 4)
    firsts = [blocks[i] for i in (0, 1, 5, 9, 13, 17, 21)]
    assert [op.output[2] for op in firsts] == [16, 24, 32, 64, 112, 184, 352]
    assert [op.stride for op in firsts] == [1, 1, 2, 2, 1, 2, 1]
    assert [op.output[0] for op in firsts] == [32, 32, 16, 8, 8, 4, 4]
    assert ops[0].type == "conv" and ops[0].output == (32, 32, 16) and ops[0].stride == 1
    assert ops[-3].output == (4, 4, 1504) and ops[-1].output == (1, 1, 100)


def test_imagenet_setting_has_its_strides_and_head():
    space = get_space("fbnet", (224, 224, 3), 1000)
    ops = resolve(space.from_indices(ALL_K3_E1))
    assert ops[0].stride == 2 and ops[-3].output == (7, 7, 1984)


def test_skip_is_identity_or_a_1x1_conv_where_the_shape_changes(space):
    ops = resolve(space.from_indices(ALL_SKIP))
    # stage 1 (16 -> 16) vanishes; stages 2-7 start with a 1x1 conv to their width and stride
    convs = [op for op in ops[1:-3] if op.type == "conv"]
    assert [(op.kernel, op.stride, op.output[2]) for op in convs] == [
        (1, 1, 24), (1, 2, 32), (1, 2, 64), (1, 1, 112), (1, 2, 184), (1, 1, 352)]
    assert not any(op.type == "fbnet" for op in ops)


def test_op_choices_map_to_kernel_expansion_groups(space):
    spec = space.from_indices([1] + [0] * 21)  # layer 0: k3_e1_g2
    block = spec.stages[0][0]
    assert isinstance(block, FBNetBlock) and (block.kernel, block.expand, block.groups) == (3, 1, 2)
    spec = space.from_indices([0, 7] + [0] * 20)  # layer 1: k5_e6, stage 2's first layer
    first = spec.stages[1][0]
    assert (first.kernel, first.expand, first.groups, first.out) == (5, 6, 1, 24)
    assert OP_NAMES[8] == "skip"


def test_encoding_round_trip_puts_a_stages_skips_last(space):
    rng = np.random.default_rng(0)
    for _ in range(20):
        indices = [int(v) for v in rng.integers(0, 9, 22)]
        spec = space.from_indices(indices)
        assert space.contains(spec)
        canonical = space.to_indices(spec)
        assert space.from_indices(canonical) == spec
        assert ArchSpec.from_string(spec.to_string()) == spec
    # skips inside a stage are interchangeable: the same network
    a = space.from_indices([0, 0, 8, 3, 3] + [0] * 17)
    b = space.from_indices([0, 0, 3, 3, 8] + [0] * 17)
    assert a == b and space.to_indices(a) == [0, 0, 3, 3, 8] + [0] * 17


@pytest.mark.parametrize("bad", ["[0, 1]", "[9" + ",0" * 21 + "]", "[true" + ",0" * 21 + "]", "not json"])
def test_bad_encodings_are_refused_with_the_expected_form(space, bad):
    with pytest.raises(SpecError, match="22 op indices"):
        space.from_text("fbnet:" + bad)


def test_grouped_block_needs_even_channels():
    with pytest.raises(SpecError, match="divisible by groups"):
        FBNetBlock(3, 1, 1, 25, groups=2)


def test_params_and_macs_match_the_built_model(space):
    from nas.build import build_model

    spec = space.from_indices([1, 5, 2, 3, 4, 8, 6, 7, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 5])
    ops = resolve(spec)
    model = build_model(ops)
    assert count_params(ops) == sum(p.numel() for p in model.parameters())
    import torch

    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    # k3_e1 (expansion 1 keeps its first 1x1 conv): 16x16 1x1 + 16 3x3 depthwise + 16x16 1x1, per pixel
    first = resolve(space.from_indices(ALL_K3_E1))[1]
    assert count_macs([first]) == (16 * 16 + 9 * 16 + 16 * 16) * 32 * 32


def test_arch_show_takes_the_encoding(capsys):
    assert main(["arch", "show", "fbnet:" + json.dumps(ALL_K3_E1), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spec"]["classes"] == 100 and out["spec"]["input"] == [32, 32, 3]
    assert load_arch("fbnet:" + json.dumps(ALL_SKIP)).classes == 100


def test_search_samples_members_of_the_space(space):
    for seed in range(5):
        assert space.contains(space.sample(seed))


@pytest.mark.parametrize("device", ["raspi4", "pixel3"])
def test_shipped_tables_price_every_network_as_hw_nas_bench_sums_it(device, space):
    """The raspi4/pixel3 columns of the HELP FBNet file are HW-NAS-Bench's own sums: the
    shipped table (relative to the all-skip network) must reproduce them."""
    table = load_latency_model(f"{device}-fbnet")
    assert table.provenance["relative"]["offset_ms"] == pytest.approx(table.composition.offset_ms)
    assert table.predict(resolve(space.from_indices(ALL_SKIP))) == pytest.approx(table.composition.offset_ms)
    assert min(e["median"] for e in table.entries.values()) >= 0


@pytest.mark.parametrize("device", ["raspi4", "pixel3"])
def test_shipped_fbnet_tables_rederive_from_the_shared_files(arm_data, device, space):
    import pandas as pd

    from nas.latency.hwnasbench import FBNET_LUT, fbnet_table

    derived = fbnet_table(arm_data / FBNET_LUT, device)
    shipped = load_latency_model(f"{device}-fbnet")
    assert set(derived.entries) == set(shipped.entries)
    for key, entry in derived.entries.items():
        assert shipped.entries[key]["median"] == pytest.approx(entry["median"], rel=1e-5, abs=1e-6)
    assert shipped.composition.offset_ms == pytest.approx(derived.composition.offset_ms, rel=1e-9)
    frame = pd.read_csv(arm_data / "fbnet" / "fbnet_latency_help_devices.csv", nrows=300)
    predicted = [shipped.predict(resolve(space.from_text(text))) for text in frame["arch"]]
    np.testing.assert_allclose(predicted, frame[f"{device}_ms"], rtol=1e-5)


def test_skip_convs_and_fixed_ops_are_priced_inside_the_offset():
    table = load_latency_model("raspi4-fbnet")
    fixed = [op for op in table.ops.values() if op.type in ("conv", "gap", "fc")]
    assert fixed and all(table.entries[op.key]["median"] == 0 for op in fixed)
    assert any(isinstance(b, Conv) for b in get_space("fbnet", (32, 32, 3), 100).from_indices(ALL_SKIP).stages[1])
