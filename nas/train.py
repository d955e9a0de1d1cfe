"""Budgeted training of a spec on an in-memory dataset.

``train(spec, dataset, budget)`` builds the network, trains it for the budget and returns a
:class:`TrainResult` with the validation accuracy. Training never raises for a network that
merely trains badly: a non-finite loss ends it with ``status="diverged"`` and a reason, and
``budget.max_seconds`` ends it with ``status="timeout"`` (the partly trained model is still
evaluated). Results are deterministic for a given seed and thread count.

Speed on CPU comes from keeping everything in tensors: batches are gathered from the uint8
images by index, augmented as whole batches (random crop with zero padding, horizontal flip)
and normalised on the fly; evaluation runs under ``torch.inference_mode`` with large batches.
No DataLoader: for data already in memory, its workers only add copies and processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from nas.blocks import ShuffleUnit
from nas.build import build_model
from nas.data import Dataset, Split
from nas.ops import resolve
from nas.spec import ArchSpec, SpecError

OPTIMIZERS = ("sgd-nesterov", "adamw")
SCHEDULES = ("cosine", "onecycle")
STATUSES = ("ok", "diverged", "timeout")
NO_NORM_LR_SCALE = 0.2  # default-lr factor for networks without normalisation layers


@dataclass(frozen=True)
class Budget:
    """What one training run may spend and how it trains.

    ``fraction`` trains on a fixed, seeded subset of the train split (the same subset every
    epoch). ``lr``/``weight_decay`` of None pick the optimizer's default (SGD: 0.1 per 128
    images of batch and 5e-4; AdamW: 2e-3 and 0.05; the default lr is 5x lower for networks
    without normalisation layers, see :meth:`peak_lr`). Weight decay skips biases and norms.
    ``crop_padding``/``flip`` are the light augmentation (random crop after zero padding,
    horizontal flip). ``bf16`` trains under bfloat16 autocast (twice as fast for dense
    convolutions on CPUs with AMX, slower for depthwise ones; evaluation stays float32).
    ``channels_last`` None picks the memory format by measurement (see
    :func:`prefers_channels_last`). ``threads`` (None = one per core), ``channels_last`` and
    ``eval_batch_size`` change speed, not results, and are not part of :meth:`key`.
    """

    epochs: int = 1
    fraction: float = 1.0
    batch_size: int = 128
    optimizer: str = "sgd-nesterov"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    schedule: str = "onecycle"
    warmup: float | None = None  # share of steps rising to the peak lr (None: 0.25 onecycle, 0 cosine)
    label_smoothing: float = 0.0
    crop_padding: int = 0
    flip: bool = False
    seed: int = 0
    max_seconds: float | None = None
    bf16: bool = False
    channels_last: bool | None = None
    threads: int | None = None
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        # upper limits far beyond any sensible budget: a typo (1e12 epochs) is refused at once
        # instead of training until killed
        _check_number("epochs", self.epochs, integer=True, minimum=1, maximum=MAX_EPOCHS)
        _check_number("fraction", self.fraction, minimum=0, exclusive=True, maximum=1)
        _check_number("batch_size", self.batch_size, integer=True, minimum=1, maximum=MAX_BATCH)
        _check_number("momentum", self.momentum, minimum=0, maximum=1)
        if self.warmup is not None:
            _check_number("warmup", self.warmup, minimum=0, maximum=0.9)
        _check_number("label_smoothing", self.label_smoothing, minimum=0, maximum=0.9)
        _check_number("crop_padding", self.crop_padding, integer=True, minimum=0, maximum=MAX_CROP_PADDING)
        _check_number("seed", self.seed, integer=True, minimum=0, maximum=MAX_SEED)
        _check_number("eval_batch_size", self.eval_batch_size, integer=True, minimum=1, maximum=MAX_BATCH)
        limits = {"lr": None, "weight_decay": None, "max_seconds": MAX_SECONDS, "threads": 1024}
        for name, maximum in limits.items():
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value, integer=name == "threads", minimum=0, exclusive=name != "weight_decay",
                              maximum=maximum)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        for name in ("flip", "bf16", "channels_last"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "channels_last" and value is None):
                raise ValueError(f"budget {name} must be true or false, got {value!r}")

    def peak_lr(self, normalised: bool = True) -> float:
        """``lr`` if given, else the optimizer's default, five times lower for a network without
        normalisation layers (SqueezeNet 1.1 diverges within an epoch at SGD 0.1)."""
        if self.lr is not None:
            return self.lr
        default = 0.1 * self.batch_size / 128 if self.optimizer == "sgd-nesterov" else 2e-3
        return default if normalised else default * NO_NORM_LR_SCALE

    @property
    def warmup_fraction(self) -> float:
        if self.warmup is not None:
            return self.warmup
        return 0.25 if self.schedule == "onecycle" else 0.0

    @property
    def decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 5e-4 if self.optimizer == "sgd-nesterov" else 0.05

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def key(self) -> str:
        """A stable string of every field that changes the result (defaults resolved)."""
        skip = {"threads", "eval_batch_size", "channels_last", "lr", "weight_decay", "warmup"}
        parts = [f"{k}={v}" for k, v in self.to_dict().items() if k not in skip]
        lr = f"lr={self.lr:g}" if self.lr is not None else f"lr=auto:{self.peak_lr():g}"
        return ",".join(parts + [lr, f"wd={self.decay:g}", f"warmup={self.warmup_fraction:g}"])


MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_CROP_PADDING = 1_024
MAX_SEED = 2**32 - 1  # numpy's and torch's generators take seeds below 2**32
MAX_SECONDS = 365 * 86_400.0


def _check_number(name: str, value: Any, *, integer: bool = False, minimum: float | None = None,
                  maximum: float | None = None, exclusive: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise ValueError(f"budget {name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    low_bad = value <= minimum if exclusive else value < minimum
    if (minimum is not None and low_bad) or (maximum is not None and value > maximum):
        low = f"{'>' if exclusive else '>='} {minimum}" if minimum is not None else ""
        high = f"<= {maximum}" if maximum is not None else ""
        raise ValueError(f"budget {name} must be {' and '.join(x for x in (low, high) if x)}, got {value!r}")


@dataclass
class TrainResult:
    """Outcome of one training run. ``accuracy`` is validation accuracy in [0, 1]; losses are
    mean cross-entropy (None when diverged). ``model`` is the trained network (not serialised)."""

    accuracy: float
    val_loss: float | None
    train_loss: float | None
    train_accuracy: float | None
    train_time_s: float
    images_per_s: float
    epochs_done: float
    steps: int
    status: str
    reason: str = ""
    test_accuracy: float | None = None
    test_loss: float | None = None
    history: list[dict] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}


# --------------------------------------------------------------------------------------
# model construction


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal (fan-out) convs, unit/zero norms, small
    normal linear layers, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


def build_network(spec: ArchSpec, seed: int = 0) -> nn.Module:
    """The spec's model with torchvision-style initialisation drawn from ``seed``."""
    model = build_model(resolve(spec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        init_weights(model)
    return model


def prefers_channels_last(model: nn.Module) -> bool:
    """Measured on 2 Xeon cores (see README): channels-last trains MobileNetV2 about 1.9x,
    SqueezeNet 1.5x and MobileNetV1 1.2x faster, but ShuffleNetV2 2x slower (its channel
    shuffle and split force layout copies)."""
    return not any(isinstance(m, ShuffleUnit) for m in model.modules())


def check_compatible(spec: ArchSpec, dataset: Dataset) -> None:
    if spec.input != dataset.input_shape or spec.classes != dataset.classes:
        shape = "x".join(map(str, dataset.input_shape))
        raise SpecError(f"spec is for input {'x'.join(map(str, spec.input))} with {spec.classes} classes, "
                        f"but {dataset.name} is {shape} with {dataset.classes} classes")


# --------------------------------------------------------------------------------------
# batches


def augment(images: torch.Tensor, generator: torch.Generator, padding: int, flip: bool) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, for a whole uint8 batch."""
    n, c, h, w = images.shape
    if padding:
        padded = F.pad(images, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (n, 1, 1, 1), generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n, 1, 1, 1), generator=generator)
        rows = (dy + torch.arange(h).view(1, 1, h, 1)).expand(n, c, h, w)
        cols = (dx + torch.arange(w).view(1, 1, 1, w)).expand(n, c, h, w)
        images = _crop(padded, rows, cols)
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        images = torch.where(mask.view(n, 1, 1, 1), images.flip(3), images)
    return images


def _crop(padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    n, c, h, w = rows.shape
    picked_rows = padded.gather(2, rows[..., :1].expand(n, c, h, padded.shape[3]))
    return picked_rows.gather(3, cols)


class _Normalizer:
    def __init__(self, dataset: Dataset, channels_last: bool):
        self.mean = torch.tensor(dataset.mean, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.inv_std = 1 / (torch.tensor(dataset.std, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) * self.inv_std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (None: one per core), restoring the old count."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def evaluate_model(model: nn.Module, split: Split, dataset: Dataset, *, batch_size: int = 1000,
                   channels_last: bool = False) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``split``."""
    normalize = _Normalizer(dataset, channels_last)
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            logits = model(normalize(split.images[start:start + batch_size]))
            labels = split.labels[start:start + batch_size]
            loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
    model.train(was_training)
    n = max(1, len(split))
    return correct / n, loss_sum / n


# --------------------------------------------------------------------------------------
# optimisation


def make_optimizer(model: nn.Module, budget: Budget) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": budget.decay}, {"params": no_decay, "weight_decay": 0.0}]
    lr = budget.peak_lr(has_normalisation(model))
    if budget.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=budget.momentum, nesterov=budget.momentum > 0)


def has_normalisation(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) for m in model.modules())


def lr_factor(budget: Budget, step: int, total_steps: int) -> float:
    """The learning rate at ``step`` as a fraction of the peak. ``onecycle``: a cosine rise
    from 1/25 of the peak over the warm-up, then a cosine fall to 1/1e4 of the peak (momentum
    is not cycled). ``cosine``: a linear warm-up, then a cosine fall to zero."""
    warm = round(budget.warmup_fraction * total_steps)
    if budget.schedule == "onecycle":
        low, floor = 1 / 25, 1e-4
        if step < warm:
            return low + (1 - low) * 0.5 * (1 - math.cos(math.pi * step / warm))
        progress = (step - warm) / max(1, total_steps - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total_steps - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_schedule(optimizer: torch.optim.Optimizer, budget: Budget, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(budget, step, max(1, total_steps)))


def training_subset(dataset: Dataset, budget: Budget) -> Split:
    """The fixed, seeded subset of the train split that this budget trains on."""
    if budget.fraction >= 1:
        return dataset.train
    n = max(1, round(len(dataset.train) * budget.fraction))
    order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(budget.seed + 7919))
    return dataset.train.subset(order[:n].sort().values)


def training_slice(dataset: Dataset, budget: Budget, start: float, end: float) -> Split:
    """The images between shares ``start`` and ``end`` of the seeded order that
    :func:`training_subset` draws from: the subset of fraction ``end`` less that of ``start``,
    so that training on the slices in turn sees each image of the larger subset once."""
    n = len(dataset.train)
    first, last = round(n * start), round(n * end)
    if last <= first:
        raise ValueError(f"training shares {start:g} and {end:g} select the same images of a training split of "
                         f"{n}; give rungs further apart")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(budget.seed + 7919))
    return dataset.train.subset(order[first:last].sort().values)


def segment_seed(seed: int, segment: int) -> int:
    """The seed of a network's ``segment``-th training call (the budget's own for the first)."""
    return seed if segment == 0 else (seed + 104_729 * segment) % (MAX_SEED + 1)


# --------------------------------------------------------------------------------------
# the loop


@dataclass
class _Progress:
    """Running totals of one training run."""

    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    status: str = "ok"
    reason: str = ""
    history: list[dict] = field(default_factory=list)


def _run_epoch(model, data: Split, budget: Budget, parts, run: _Progress, epoch: int, progress: bool) -> dict:
    """One pass over ``data``; stops early (setting ``run.status``) on divergence or timeout."""
    optimizer, schedule, criterion, normalize, generator, batch = parts
    steps = len(data) // batch
    order = torch.randperm(len(data), generator=generator)
    loss_sum, correct, count = 0.0, 0, 0
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{budget.epochs}", unit="batch",
               disable=None if progress else True,  # None: shown on a terminal only
               leave=True, dynamic_ncols=True)
    start = time.perf_counter()
    for step in bar:
        index = order[step * batch:(step + 1) * batch]
        images = augment(data.images[index], generator, budget.crop_padding, budget.flip)
        labels = data.labels[index]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=budget.bf16):
            logits = model(normalize(images))
            loss = criterion(logits, labels)
        value = loss.item()
        if not math.isfinite(value):
            run.status = "diverged"
            run.reason = (f"loss became {value} at epoch {epoch + 1}, step {step + 1} "
                          f"(lr {optimizer.param_groups[0]['lr']:.3g})")
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        run.steps += 1
        loss_sum += value * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        count += len(labels)
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}")
        if budget.max_seconds is not None and run.seconds + time.perf_counter() - start > budget.max_seconds:
            run.status = "timeout"
            run.reason = f"stopped after {budget.max_seconds:g} s (max_seconds) at epoch {epoch + 1}, step {step + 1}"
            break
    bar.close()
    seconds = time.perf_counter() - start
    run.seconds += seconds
    run.images += count
    return {"epoch": epoch + 1, "train_loss": loss_sum / count if count else None,
            "train_accuracy": correct / count if count else None, "seconds": seconds}


def fit(model: nn.Module, dataset: Dataset, budget: Budget, *, progress: bool = False, test: bool = False,
        eval_each_epoch: bool = False, on_epoch: Callable[[dict], None] | None = None, segment: int = 0,
        data: Split | None = None) -> TrainResult:
    """Train ``model`` in place for ``budget`` on ``dataset.train`` and evaluate it on ``val``
    (and ``test`` when asked). ``on_epoch`` receives each epoch's summary.

    Successive halving trains a network on from rung to rung with one call per rung:
    ``segment`` (0 for the first) varies the shuffling and augmentation draws of the later
    calls, and ``data`` (default: the budget's subset) is the images a call trains on. Each
    call is its own learning-rate cycle over its own steps (a warm restart)."""
    channels_last = prefers_channels_last(model) if budget.channels_last is None else budget.channels_last
    seed = segment_seed(budget.seed, segment)
    with torch_threads(budget.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout masks
        data = training_subset(dataset, budget) if data is None else data
        batch = min(budget.batch_size, len(data))
        steps_per_epoch = len(data) // batch
        optimizer = make_optimizer(model, budget)
        parts = (optimizer, make_schedule(optimizer, budget, steps_per_epoch * budget.epochs),
                 nn.CrossEntropyLoss(label_smoothing=budget.label_smoothing),
                 _Normalizer(dataset, channels_last), torch.Generator().manual_seed(seed), batch)
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        model.train()
        run = _Progress()
        for epoch in range(budget.epochs):
            summary = _run_epoch(model, data, budget, parts, run, epoch, progress)
            if eval_each_epoch and run.status != "diverged":
                summary["val_accuracy"], summary["val_loss"] = _evaluate(model, dataset.val, dataset, budget)
            run.history.append(summary)
            if on_epoch is not None:
                on_epoch(summary)
            if run.status != "ok":
                break
        return _finish(model, dataset, budget, run, steps_per_epoch, test)


def _evaluate(model: nn.Module, split: Split, dataset: Dataset, budget: Budget) -> tuple[float, float]:
    channels_last = prefers_channels_last(model) if budget.channels_last is None else budget.channels_last
    return evaluate_model(model, split, dataset, batch_size=budget.eval_batch_size, channels_last=channels_last)


def _finish(model, dataset: Dataset, budget: Budget, run: _Progress, steps_per_epoch: int,
            test: bool) -> TrainResult:
    accuracy, val_loss = 0.0, None
    if run.status != "diverged":
        accuracy, val_loss = _evaluate(model, dataset.val, dataset, budget)
        if not math.isfinite(val_loss):
            run.status, run.reason = "diverged", f"validation loss is {val_loss} after training"
            accuracy, val_loss = 0.0, None
    test_accuracy = test_loss = None
    if test and run.status != "diverged":
        test_accuracy, test_loss = _evaluate(model, dataset.test, dataset, budget)
    last = run.history[-1] if run.history else {}
    return TrainResult(
        accuracy=accuracy, val_loss=val_loss, train_loss=last.get("train_loss"),
        train_accuracy=last.get("train_accuracy"), train_time_s=run.seconds,
        images_per_s=run.images / run.seconds if run.seconds > 0 else 0.0,
        epochs_done=run.steps / max(1, steps_per_epoch), steps=run.steps, status=run.status, reason=run.reason,
        test_accuracy=test_accuracy, test_loss=test_loss, history=run.history, model=model)


def train(spec: ArchSpec, dataset: Dataset, budget: Budget | None = None, *, progress: bool = False,
          test: bool = False, eval_each_epoch: bool = False, initial_state: dict | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Build ``spec`` (initialised from ``budget.seed``, or from ``initial_state``), train it for
    ``budget`` on ``dataset`` and return the result with the trained model attached.

    Raises SpecError if the spec's input shape or class count does not match the dataset;
    divergence and timeouts are reported in the result, not raised.
    """
    budget = budget or Budget()
    check_compatible(spec, dataset)
    model = build_network(spec, budget.seed)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    return fit(model, dataset, budget, progress=progress, test=test, eval_each_epoch=eval_each_epoch,
               on_epoch=on_epoch)
