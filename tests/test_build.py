import pytest
import torch

from nas.build import build_model
from nas.ops import count_params, resolve
from nas.space import get_reference, get_space, list_references, list_spaces
from nas.spec import ArchSpec, Conv, Fire, GlobalPool, InvertedResidual, Linear, NB201Cell, ResBlock, ShuffleUnit


def check_model(spec: ArchSpec) -> None:
    """One module per op, each producing its op's output shape; parameters equal the count."""
    ops = resolve(spec)
    model = build_model(ops).eval()
    assert len(model.layers) == len(ops)
    assert count_params(ops) == sum(p.numel() for p in model.parameters())
    h, w, c = spec.input
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        for op, layer in zip(ops, model.layers):
            x = layer(x)
            if op.type == "fc":
                assert tuple(x.shape) == (2, op.output[2])
            else:
                assert tuple(x.shape[1:]) == (op.output[2], op.output[0], op.output[1]), op.key
    assert tuple(model(torch.randn(2, c, h, w)).shape) == (2, spec.classes)


@pytest.mark.parametrize("space_name", list_spaces())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_members_of_every_space_build(space_name, seed):
    check_model(get_space(space_name).sample(seed))


@pytest.mark.parametrize("name", list_references())
def test_references_build_at_fashion_mnist_size(name):
    check_model(get_reference(name, (28, 28, 1), 10))


def test_every_block_kind_builds():
    spec = ArchSpec((16, 16, 3), 5, (Conv(3, 1, 16),), (
        (InvertedResidual(7, 2, 3, 24, se=True, act="hswish"), ShuffleUnit(5, 1, 24), ShuffleUnit(3, 2, 32)),
        (Fire(8, 16, 16, bypass=True, bn=True), Fire(8, 0, 32)),
        (NB201Cell(("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "skip_connect")),
         ResBlock(2, 48), ResBlock(1, 64)),
    ), (GlobalPool(), Linear()))
    check_model(spec)


def test_residual_blocks_add_their_input():
    spec = ArchSpec((8, 8, 16), 2, (), ((InvertedResidual(3, 1, 2, 16),),), (GlobalPool(), Linear()))
    model = build_model(resolve(spec)).eval()
    block = model.layers[0]
    for p in block.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(block(x), x)
