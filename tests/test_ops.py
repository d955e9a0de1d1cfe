import pytest

from nas.ops import count_macs, count_params, make_divisible, op_from_fields, pool_output, resolve
from nas.spec import ArchSpec, Conv, Fire, GlobalPool, InvertedResidual, Linear, MaxPool, ShuffleUnit


def small(stages, stem=None, head=None) -> ArchSpec:
    return ArchSpec((32, 32, 3), 10, stem or (Conv(3, 1, 16),), stages,
                    head or (GlobalPool(), Linear()))


def test_resolve_computes_shapes_and_options():
    spec = small(((InvertedResidual(5, 2, 6, 24, se=True), InvertedResidual(3, 1, 3, 24)),))
    stem, ir1, ir2, gap, fc = resolve(spec)
    assert stem.output == (32, 32, 16)
    assert (ir1.input, ir1.output, ir1.mid, ir1.residual, ir1.se) == ((32, 32, 16), (16, 16, 24), 96, False, True)
    assert (ir2.mid, ir2.residual) == (72, True)
    assert gap.output == (1, 1, 24) and fc.output == (1, 1, 10)


def test_expansion_one_keeps_input_width():
    (_, ir, *_) = resolve(small(((InvertedResidual(3, 1, 1, 16),),)))
    assert ir.mid == 16 and ir.residual


def test_shuffle_unit_forms():
    spec = small(((ShuffleUnit(3, 1, 32), ShuffleUnit(3, 1, 32), ShuffleUnit(3, 2, 64)),))
    _, widen, keep, down, *_ = resolve(spec)
    assert widen.output == (32, 32, 32) and widen.mid == 16
    assert keep.input == keep.output
    assert down.output == (16, 16, 64)


def test_maxpool_ceil_mode_matches_pytorch():
    import torch

    for size in range(3, 40):
        for ceil in (False, True):
            for pad in (0, 1):
                expected = torch.nn.MaxPool2d(3, 2, pad, ceil_mode=ceil)(torch.zeros(1, 1, size, size)).shape[-1]
                assert pool_output(size, 3, 2, pad, ceil) == expected, (size, ceil, pad)


def test_valid_conv_has_no_padding():
    spec = small((), stem=(Conv(7, 2, 8, valid=True),))
    assert resolve(spec)[0].output == (13, 13, 8)


def test_op_keys_are_unique_and_stable():
    spec = small(((InvertedResidual(5, 2, 6, 24, se=True),),))
    key = resolve(spec)[1].key
    assert key == "ir-input:32x32x16-output:16x16x24-kernel:5-stride:2-expand:6-mid:96-se:1-act:relu6"
    keys = [op.key for op in resolve(spec)]
    assert len(set(keys)) == len(keys)


def test_op_fields_round_trip():
    spec = small(((InvertedResidual(5, 2, 4.5, 24, se=True), Fire(8, 12, 12, bypass=True)),),
                 stem=(Conv(3, 1, 16), MaxPool(3, 1, pad=1, ceil=True)))
    for op in resolve(spec):
        assert op_from_fields(op.fields()) == op


def test_counts_match_hand_computation():
    spec = small(((InvertedResidual(3, 1, 6, 16),),))
    conv = 3 * 3 * 3 * 16 + 2 * 16
    ir = (16 * 96 + 2 * 96) + (9 * 96 + 2 * 96) + (96 * 16 + 2 * 16)
    fc = 16 * 10 + 10
    assert count_params(resolve(spec)) == conv + ir + fc
    macs = 27 * 16 * 1024 + (16 * 96 + 9 * 96 + 96 * 16) * 1024 + 160
    assert count_macs(resolve(spec)) == macs


@pytest.mark.parametrize("value, expected", [(32 * 0.35, 16), (16 * 0.35, 8), (1280, 1280), (24 * 0.75, 24),
                                             (40 * 0.75, 32), (96 * 1.25, 120)])
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected
