import math

import pytest
import torch

from nas.data import load_dataset
from nas.proxies import PROXIES, compute_proxies, naswot, synflow
from nas.space import get_reference
from nas.spec import ArchSpec
from nas.train import build_network

NARROW = "28x28x1>10|conv_k3_s2_c8_bn_relu6|ir_k3_s1_e3_c8_relu6|conv_k3_s2_c16_bn_hswish|gap,fc"
WIDE = "28x28x1>10|conv_k3_s2_c32_bn_relu6|ir_k3_s1_e3_c32_relu6|conv_k3_s2_c64_bn_hswish|gap,fc"


@pytest.fixture(scope="module")
def batch():
    dataset = load_dataset("synthetic", train=80, test=10)
    return dataset.normalize(dataset.train.images[:16]), dataset.train.labels[:16]


def model(text, seed=0):
    return build_network(ArchSpec.from_string(text), seed)


@pytest.mark.parametrize("name", PROXIES)
def test_every_proxy_is_finite_deterministic_and_leaves_the_model_alone(name, batch):
    net = model(NARROW)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first = compute_proxies((name,), net, *batch)[name]
    assert math.isfinite(first)
    assert compute_proxies((name,), net, *batch)[name] == pytest.approx(first, rel=1e-6)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("name", ["synflow", "grad_norm", "snip"])
def test_wider_network_scores_higher_on_magnitude_proxies(name, batch):
    # synflow, grad-norm and snip sum over parameters: a 4x wider net has far more of them
    assert compute_proxies((name,), model(WIDE), *batch)[name] > compute_proxies((name,), model(NARROW), *batch)[name]


def test_naswot_rewards_distinct_activation_patterns(batch):
    images, _ = batch
    net = model(NARROW)
    assert naswot(net, images) > naswot(net, images[:1].repeat(len(images), 1, 1, 1))
    assert math.isfinite(naswot(net, images[:1].repeat(len(images), 1, 1, 1)))  # the ridge keeps it finite


def test_synflow_treats_saturating_activations_as_relu():
    # with absolute weights the activations grow layer by layer; ReLU6 would clip them and
    # zero the gradients of every earlier layer if synflow did not linearise it
    relu = NARROW.replace("relu6", "relu").replace("hswish", "relu")
    assert synflow(model(NARROW), (28, 28, 1)) == pytest.approx(synflow(model(relu), (28, 28, 1)), rel=1e-9)
    assert math.isfinite(synflow(build_network(get_reference("mobilenet_v2_0.35")), (28, 28, 1)))


def test_several_proxies_at_once_and_unknown_names(batch):
    scores = compute_proxies(("snip", "grad_norm", "naswot"), model(NARROW), *batch)
    assert list(scores) == ["snip", "grad_norm", "naswot"]
    with pytest.raises(ValueError, match="unknown proxy 'zen'"):
        compute_proxies(("zen",), model(NARROW), *batch)
