import math

import pytest
import torch
from torch import nn

from nas.data import load_dataset
from nas.space import get_reference
from nas.spec import ArchSpec, SpecError
from nas.train import Budget, augment, build_network, has_normalisation, lr_factor, train

TINY = "28x28x1>10|conv_k3_s2_c8_bn_relu|conv_k3_s2_c16_bn_relu|gap,fc"
FAST = dict(batch_size=32, lr=0.2, threads=1)


@pytest.fixture(scope="module")
def toy():
    return load_dataset("synthetic")


def test_tiny_network_learns_the_toy_problem(toy):
    result = train(ArchSpec.from_string(TINY), toy, Budget(epochs=3, **FAST))
    assert result.status == "ok" and result.reason == ""
    assert result.accuracy > 0.6  # chance is 0.1
    assert result.epochs_done == 3 and result.steps == 3 * (540 // 32)
    assert result.images_per_s > 0 and result.train_time_s > 0
    assert result.val_loss < 2.0 and result.test_accuracy is None
    assert isinstance(result.model, nn.Module)


def test_training_is_deterministic_under_a_seed(toy):
    spec = ArchSpec.from_string(TINY)
    budget = Budget(epochs=1, crop_padding=2, flip=True, label_smoothing=0.1, **FAST)
    a, b = train(spec, toy, budget), train(spec, toy, budget)
    assert (a.accuracy, a.val_loss, a.train_loss) == (b.accuracy, b.val_loss, b.train_loss)
    c = train(spec, toy, Budget(epochs=1, crop_padding=2, flip=True, label_smoothing=0.1, seed=1, **FAST))
    assert c.train_loss != a.train_loss


def test_huge_learning_rate_diverges_without_raising(toy):
    result = train(ArchSpec.from_string(TINY), toy, Budget(epochs=2, batch_size=32, lr=1e8, threads=1))
    assert result.status == "diverged"
    assert "loss became nan" in result.reason or "loss became inf" in result.reason
    assert result.accuracy == 0.0 and result.val_loss is None
    assert result.steps < 2 * (540 // 32)


def test_max_seconds_stops_with_timeout(toy):
    result = train(ArchSpec.from_string(TINY), toy, Budget(epochs=50, max_seconds=0.05, **FAST))
    assert result.status == "timeout" and "max_seconds" in result.reason
    assert 0 < result.epochs_done < 50
    assert 0 <= result.accuracy <= 1


def test_fraction_uses_a_fixed_subset(toy):
    result = train(ArchSpec.from_string(TINY), toy, Budget(epochs=2, fraction=0.25, **FAST))
    assert result.steps == 2 * (round(540 * 0.25) // 32)


def test_test_split_only_when_asked_and_adamw_cosine(toy):
    budget = Budget(epochs=2, optimizer="adamw", lr=0.01, schedule="cosine", batch_size=32, threads=1)
    result = train(ArchSpec.from_string(TINY), toy, budget, test=True, eval_each_epoch=True)
    assert 0 <= result.test_accuracy <= 1 and result.test_loss > 0
    assert [h["epoch"] for h in result.history] == [1, 2] and "val_accuracy" in result.history[0]


def test_bf16_and_memory_formats_train(toy):
    spec = ArchSpec.from_string(TINY)
    for options in (dict(bf16=True), dict(channels_last=True), dict(channels_last=False)):
        assert train(spec, toy, Budget(epochs=1, **FAST, **options)).status == "ok"


def test_spec_for_another_shape_is_an_error(toy):
    spec = ArchSpec.from_string("32x32x3>10|conv_k3_s2_c8_bn_relu|gap,fc")
    with pytest.raises(SpecError, match="32x32x3.*synthetic is 28x28x1"):
        train(spec, toy, Budget())


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be >= 1"), ("fraction", 0.0, "fraction must be > 0"),
    ("fraction", 1.5, "<= 1"), ("optimizer", "sgd", "optimizer must be one of"),
    ("schedule", "step", "schedule must be one of"), ("lr", -1.0, "lr must be > 0"),
    ("batch_size", 2.5, "batch_size must be an integer"), ("flip", "yes", "flip must be true or false"),
])
def test_budget_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        Budget(**{field: value})


def test_budget_key_ignores_speed_only_fields():
    assert Budget(threads=1, channels_last=True).key == Budget(threads=2).key
    assert Budget(epochs=2).key != Budget().key
    assert "lr=auto:0.1," in Budget().key and "lr=0.05," in Budget(lr=0.05).key


def test_default_lr_is_lower_without_normalisation():
    assert Budget().peak_lr() == 0.1 and Budget(batch_size=256).peak_lr() == 0.2
    assert Budget().peak_lr(normalised=False) == pytest.approx(0.02)
    assert Budget(lr=0.3).peak_lr(normalised=False) == 0.3
    bare = build_network(ArchSpec.from_string("28x28x1>10|conv_k3_s2_c8_bias_relu|gap,fc"))
    assert not has_normalisation(bare) and has_normalisation(build_network(ArchSpec.from_string(TINY)))


def test_schedules_rise_and_fall():
    budget = Budget(schedule="onecycle")
    factors = [lr_factor(budget, step, 100) for step in range(101)]
    assert factors[0] == pytest.approx(1 / 25) and max(factors) == pytest.approx(1.0)
    assert factors.index(max(factors)) == 25 and factors[100] < 1e-3
    cosine = Budget(schedule="cosine")
    assert lr_factor(cosine, 0, 100) == 1.0 and lr_factor(cosine, 50, 100) == pytest.approx(0.5)


def test_augment_crops_windows_of_the_padded_batch_and_flips():
    gen = torch.Generator().manual_seed(0)
    images = torch.arange(1, 26, dtype=torch.uint8).view(1, 1, 5, 5).repeat(64, 1, 1, 1)
    out = augment(images, gen, padding=2, flip=False)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = nn.functional.pad(images[0], (2, 2, 2, 2))
    windows = {padded[:, y:y + 5, x:x + 5].flatten().tolist().__str__() for y in range(5) for x in range(5)}
    assert all(str(o.flatten().tolist()) in windows for o in out)
    assert len({str(o.flatten().tolist()) for o in out}) > 5  # really random
    flipped = augment(images, gen, padding=0, flip=True)
    n_flipped = sum(torch.equal(f, images[0].flip(2)) for f in flipped)
    assert 10 < n_flipped < 54 and all(torch.equal(f, images[0]) or torch.equal(f, images[0].flip(2))
                                       for f in flipped)


def test_weight_init_follows_torchvision():
    model = build_network(get_reference("mobilenet_v2_0.35"), seed=0)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
                and m.out_channels >= 64)
    expected = math.sqrt(2 / conv.out_channels)  # kaiming normal, fan-out
    assert float(conv.weight.detach().std()) == pytest.approx(expected, rel=0.2)
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    linear = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert float(linear.weight.detach().std()) == pytest.approx(0.01, rel=0.2) and torch.all(linear.bias == 0)
    again = build_network(get_reference("mobilenet_v2_0.35"), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize("name", ["mobilenet_v2_0.35", "mobilenet_v2_0.5", "shufflenet_v2_x0.5",
                                  "squeezenet1_1", "mobilenet_v1_0.25"])
def test_references_train_with_the_same_budget(toy, name):
    budget = Budget(epochs=1, fraction=0.2, batch_size=32, threads=1)
    result = train(get_reference(name, toy.input_shape, toy.classes), toy, budget)
    assert result.status == "ok" and math.isfinite(result.val_loss) and result.steps == 3
