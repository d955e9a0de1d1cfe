"""Reference networks against their published parameter counts and MACs."""

import json

import pytest

from nas.ops import count_macs, count_params, resolve
from nas.space import get_reference

IMAGENET = (224, 224, 3)

# torchvision's parameter counts (exact) and the papers' MACs (approximate)
PUBLISHED = {
    "mobilenet_v1_1.0": (4_231_976, 569e6),
    "mobilenet_v2_1.0": (3_504_872, 300e6),
    "shufflenet_v2_x0.5": (1_366_792, 41e6),
    "shufflenet_v2_x1.0": (2_278_604, 146e6),
    "squeezenet1_0": (1_248_424, 819e6),
    "squeezenet1_1": (1_235_496, 349e6),
    "proxyless_mobile": (None, None),
}


@pytest.mark.parametrize("name", [n for n, (p, _) in PUBLISHED.items() if p])
def test_published_parameter_counts_and_macs(name):
    params, macs = PUBLISHED[name]
    ops = resolve(get_reference(name, IMAGENET, 1000))
    assert count_params(ops) == params
    assert abs(count_macs(ops) - macs) / macs < 0.02


def test_mobilenet_v2_width_variants():
    # torchvision's mobilenet_v2(width_mult=w) parameter counts
    assert count_params(resolve(get_reference("mobilenet_v2_0.5", IMAGENET, 1000))) == 1_968_680
    assert count_params(resolve(get_reference("mobilenet_v2_0.35", IMAGENET, 1000))) == 1_677_128


def test_proxyless_mobile_matches_released_config(arm_data):
    config = json.loads((arm_data / "proxylessnas_pixel1" / "proxyless_mobile.config.json").read_text())
    expected = [(b["mobile_inverted_conv"]["kernel_size"], b["mobile_inverted_conv"]["expand_ratio"],
                 b["mobile_inverted_conv"]["out_channels"], b["mobile_inverted_conv"]["stride"])
                for b in config["blocks"] if b["mobile_inverted_conv"]["name"] != "ZeroLayer"]
    spec = get_reference("proxyless_mobile", IMAGENET, 1000)
    blocks = [spec.stem[1], *(b for stage in spec.stages for b in stage)]
    assert [(b.kernel, b.expand, b.out, b.stride) for b in blocks] == expected
    assert spec.stem[0].out == config["first_conv"]["out_channels"]
    assert spec.head[0].out == config["feature_mix_layer"]["out_channels"]
    # ProxylessNAS reports 4.1M parameters and 320M MACs for this network
    ops = resolve(spec)
    assert abs(count_params(ops) - 4.1e6) / 4.1e6 < 0.01
    assert abs(count_macs(ops) - 320e6) / 320e6 < 0.02
