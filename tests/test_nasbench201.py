import csv

import pytest
import torch

from nas.archs import load_arch
from nas.build import build_model
from nas.ops import count_macs, count_params, resolve
from nas.space import get_space
from nas.spec import ArchSpec, SpecError
from search_spaces.nasbench201 import format_arch_str, parse_arch_str

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench201", (32, 32, 3), 10)


def test_size_is_the_benchmark_size(space):
    assert space.size() == 15_625


@pytest.mark.parametrize("text", [BEST, ALL_NONE, ALL_CONV3])
def test_arch_string_round_trip(space, text):
    spec = space.from_arch_str(text)
    assert space.to_arch_str(spec) == text
    assert format_arch_str(parse_arch_str(text)) == text
    assert load_arch(text) == spec  # accepted wherever a spec string is
    assert ArchSpec.from_string(spec.to_string()) == spec


def test_edges_follow_the_string_order():
    assert parse_arch_str(BEST) == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect",
                                    "nor_conv_3x3", "skip_connect")


@pytest.mark.parametrize("text, params, macs", [
    # NAS-Bench-201's published CIFAR-10 extremes: 0.073306 M and 1.531546 M parameters,
    # 7.78305 and 220.11969 MFLOPs (theirs include the classifier's 10 bias additions)
    (ALL_NONE, 73_306, 7_783_040),
    (ALL_CONV3, 1_531_546, 220_119_680),
])
def test_parameter_and_mac_counts_match_the_benchmark(space, text, params, macs):
    ops = resolve(space.from_arch_str(text))
    assert count_params(ops) == params
    assert count_macs(ops) == macs
    assert sum(p.numel() for p in build_model(ops).parameters()) == params


def test_cifar100_classifier_count(space):
    ops = resolve(get_space("nasbench201", (32, 32, 3), 100).from_arch_str(ALL_NONE))
    assert count_params(ops) == 79_156  # published minimum for CIFAR-100


def test_skeleton(space):
    ops = resolve(space.from_arch_str(BEST))
    assert [op.type for op in ops] == (["conv"] + ["nb201"] * 5 + ["res"] + ["nb201"] * 5 + ["res"]
                                       + ["nb201"] * 5 + ["bnact", "gap", "fc"])
    assert [op.output for op in ops if op.type == "res"] == [(16, 16, 32), (8, 8, 64)]
    assert ops[0].act == "none" and ops[0].bn


def test_fashion_mnist_shape_builds():
    spec = load_arch(BEST, (28, 28, 1), 10)
    model = build_model(resolve(spec)).eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(2, 1, 28, 28)).shape) == (2, 10)


def test_a_cell_cut_off_from_its_input_outputs_zeros():
    spec = load_arch("|none~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|skip_connect~1|none~2|", (8, 8, 3), 10)
    cell = build_model(resolve(spec)).layers[1].eval()
    with torch.no_grad():
        assert torch.count_nonzero(cell(torch.randn(1, 16, 8, 8))) == 0


def test_cell_sums_its_edges():
    spec = load_arch("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
                     (8, 8, 3), 10)
    cell = build_model(resolve(spec)).layers[1].eval()
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(cell(x), 2 * x)  # node 2 = x + node 1 = 2x; node 3 = node 2


@pytest.mark.parametrize("bad, message", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "3 nodes"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS-Bench-201 op 'conv'"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must come from node 0"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 .* needs 2 edge"),
])
def test_bad_arch_strings_are_rejected(bad, message):
    with pytest.raises(SpecError, match=message):
        parse_arch_str(bad)
    with pytest.raises(SpecError):
        load_arch(bad)


def test_specs_outside_the_skeleton_are_rejected(space):
    spec = space.from_arch_str(BEST)
    stage = spec.stages[0]
    broken = ArchSpec(spec.input, spec.classes, spec.stem, (stage[:-1],), spec.head)
    with pytest.raises(SpecError, match="skeleton"):
        space.encode(broken)


def test_benchmark_strings_all_parse(arm_data):
    path = arm_data / "nasbench201" / "nb201_latency_raspi4_pixel3.csv"
    assert path.is_file(), f"{path} is missing"
    with path.open() as f:
        strings = [row["arch_str"] for row in csv.DictReader(f)]
    assert len(strings) == 15_625
    genotypes = {parse_arch_str(s) for s in strings}
    assert len(genotypes) == 15_625  # isomorphic cells stay distinct
    assert all(format_arch_str(parse_arch_str(s)) == s for s in strings[:500])
