import pytest
import torch
from torch import nn

from nas.build import build_model, build_op
from nas.export.fold import fold_batchnorm, fold_conv_bn
from nas.export.to_onnx import randomize_batchnorm
from nas.ops import resolve
from nas.space import get_space


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) for m in model.modules())


def _random_bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    return bn.eval()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("groups", [1, 4])
def test_fold_conv_bn_matches_conv_then_bn(bias, groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=groups, bias=bias)
    bn = _random_bn(12)
    folded = fold_conv_bn(conv, bn)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        assert torch.allclose(folded(x), bn(conv(x)), atol=1e-5)
    assert folded.bias is not None and folded.stride == conv.stride and folded.groups == groups
    assert conv.bias is None or not torch.equal(conv.bias, folded.bias)  # the inputs are untouched


def test_fold_conv_bn_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="batch norm has 5 channels but the conv outputs 4"):
        fold_conv_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5))
    with pytest.raises(ValueError, match="needs \\(Conv2d, BatchNorm2d\\)"):
        fold_conv_bn(nn.Linear(3, 4), nn.BatchNorm2d(4))


@pytest.mark.parametrize("space", ["hybrid", "shufflenet_v2", "mobilenet_v2", "nasbench201"])
def test_fold_batchnorm_keeps_the_function_and_removes_every_bn(space):
    torch.manual_seed(1)
    ops = resolve(get_space(space, (16, 16, 3) if space == "nasbench201" else (16, 16, 1), 10).sample(3))
    model = build_model(ops)
    randomize_batchnorm(model)
    model.eval()
    before = count_batchnorms(model)
    folded = fold_batchnorm(model)
    # every BN after a conv is folded; NAS-Bench-201's final BN+ReLU follows no conv and stays
    assert count_batchnorms(folded) == (1 if space == "nasbench201" else 0) < before
    assert count_batchnorms(model) == before  # a copy: the original keeps its batch norms
    x = torch.randn(2, *reversed(ops[0].input[:2]), ops[0].input[2]).permute(0, 3, 2, 1).contiguous()
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-4, rtol=1e-4)


def test_fold_batchnorm_returns_eval_copy_of_a_single_op():
    op = resolve(get_space("mobilenet_v2").sample(0))[2]
    module = build_op(op).train()
    folded = fold_batchnorm(module)
    assert not folded.training and module.training
