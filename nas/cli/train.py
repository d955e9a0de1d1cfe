"""``nas train``: train one architecture on a dataset with a budget and report its accuracy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nas.archs import load_arch
from nas.cli import UserError, describe_os_error
from nas.cli.arch import positive_int
from nas.data import DATASETS, DataError, load_dataset
from nas.folders import unwritable_reason
from nas.ops import count_macs, count_params, resolve
from nas.train import OPTIMIZERS, SCHEDULES, Budget, build_network, train


def fraction_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an architecture with a budget; report validation accuracy",
                              description="Train ARCH (a reference name, spec JSON file or spec string) on a "
                                          "dataset. References are built for the dataset's input shape.")
    p.add_argument("arch", help="reference name (see `nas arch list`), spec JSON file, or spec string")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    data.add_argument("--data", metavar="PATH", help="dataset folder (default: $NAS_DATA, else the Debian "
                                                     "package's folder for fashion-mnist)")
    data.add_argument("--val-fraction", type=fraction_arg, default=0.1, help="held-out share of the training set")
    data.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split")
    data.add_argument("--input", metavar="HxWxC", help="--dataset folder: the shape images are resized and "
                                                       "converted to (C 1 grey, 3 RGB), e.g. 64x64x3")
    budget = p.add_argument_group("budget")
    budget.add_argument("--epochs", type=positive_int, default=1)
    budget.add_argument("--fraction", type=fraction_arg, default=1.0, help="share of the train split to use")
    budget.add_argument("--batch-size", type=positive_int, default=128)
    budget.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd-nesterov")
    budget.add_argument("--lr", type=float, help="peak learning rate (default: 0.1 per 128 images for SGD, "
                                                 "2e-3 for AdamW)")
    budget.add_argument("--weight-decay", type=float, help="default: 5e-4 for SGD, 0.05 for AdamW")
    budget.add_argument("--schedule", choices=SCHEDULES, default="onecycle")
    budget.add_argument("--warmup", type=float, help="share of steps warming up (default: 0.25 for onecycle, "
                                                     "0 for cosine)")
    budget.add_argument("--label-smoothing", type=float, default=0.0)
    budget.add_argument("--crop-padding", type=int, default=0, help="random-crop augmentation padding, pixels")
    budget.add_argument("--flip", action="store_true", help="random horizontal flips")
    budget.add_argument("--seed", type=int, default=0)
    budget.add_argument("--max-seconds", type=float, help="stop training after this long (status timeout)")
    budget.add_argument("--bf16", action="store_true", help="bfloat16 autocast (fast for dense convolutions)")
    budget.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                        help="memory format (auto: channels-last unless the network has shuffle units)")
    budget.add_argument("--threads", type=positive_int, help="torch threads (default: one per core)")
    out = p.add_argument_group("output")
    out.add_argument("--test", action="store_true", help="also report test-set accuracy (final reports only)")
    out.add_argument("--eval-each-epoch", action="store_true", help="report validation accuracy after each epoch")
    out.add_argument("--init", metavar="DIR", help="start from the weights a previous --save wrote to DIR")
    out.add_argument("--save", metavar="DIR", help="write weights.pt (state_dict), spec.json and result.json")
    out.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_train)


def budget_from_args(args) -> Budget:
    channels_last = {"auto": None, "on": True, "off": False}[args.channels_last]
    try:
        return Budget(epochs=args.epochs, fraction=args.fraction, batch_size=args.batch_size,
                      optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule,
                      warmup=args.warmup, label_smoothing=args.label_smoothing, crop_padding=args.crop_padding,
                      flip=args.flip, seed=args.seed, max_seconds=args.max_seconds, bf16=args.bf16,
                      channels_last=channels_last, threads=args.threads)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _initial_state(folder: str | None, spec) -> dict | None:
    if folder is None:
        return None
    path = Path(folder) / "weights.pt"
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"--init {folder}: no weights.pt there ({path} {what}; write one with --save)")
    try:
        # weights_only: a checkpoint is data; one that would run code when unpickled is refused
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged or hostile file
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"--init {path} is not a PyTorch state_dict (a damaged, truncated or unsafe file: "
                        f"{reason})") from None
    if not isinstance(state, dict):
        raise UserError(f"--init {path} holds a {type(state).__name__}, not a state_dict (a dict of tensors)")
    try:
        build_network(spec).load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])[:300]
        raise UserError(f"--init {path} does not fit this architecture: {detail or exc}") from None
    return state


def _check_save_folder(folder: str | None) -> None:
    """Before training: the --save folder can be written (else training would be lost)."""
    if folder is None:
        return
    reason = unwritable_reason(Path(folder))
    if reason:
        raise UserError(f"--save folder {folder!r} is not writable: {reason}")


def _save(folder: str, spec, result, record: dict) -> None:
    """weights.pt, spec.json and result.json, each written whole (a temporary file renamed),
    so that a full disk or a kill never leaves a truncated file that --init would trust."""
    out = Path(folder)
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    writers = {"weights.pt": lambda path: torch.save(state, path),
               "spec.json": lambda path: path.write_text(spec.to_json(indent=2) + "\n"),
               "result.json": lambda path: path.write_text(json.dumps(record, indent=2) + "\n")}
    for name, write in writers.items():
        partial = out / f".{name}.partial"
        try:
            write(partial)
            partial.replace(out / name)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
            partial.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                reason = describe_os_error(exc)
            else:
                reason = f"the write stopped part-way, is the disk full? ({str(exc).splitlines()[0][:120]})"
            raise UserError(f"could not write {out / name}: {reason}") from None


def cmd_train(args) -> int:
    budget = budget_from_args(args)
    _check_save_folder(args.save)
    if args.val_fraction >= 1:
        raise UserError(f"--val-fraction must be below 1, got {args.val_fraction}")
    try:
        folder = {"input": args.input} if args.dataset == "folder" else {}
        if args.input and not folder:
            raise UserError(f"--input applies to --dataset folder only, got --dataset {args.dataset}")
        dataset = load_dataset(args.dataset, args.data, val_fraction=args.val_fraction, split_seed=args.split_seed,
                               **folder)
    except DataError as exc:
        raise UserError(str(exc)) from None
    spec = load_arch(args.arch, dataset.input_shape, dataset.classes)
    ops = resolve(spec)
    initial = _initial_state(args.init, spec)
    if not args.json:
        print(f"{args.arch}: arch_id {spec.arch_id}, {count_params(ops):,} params, {count_macs(ops) / 1e6:.2f} M MACs")
        print(f"{dataset.name}: {len(dataset.train)} train / {len(dataset.val)} val / {len(dataset.test)} test, "
              f"input {'x'.join(map(str, dataset.input_shape))}")
    result = train(spec, dataset, budget, progress=True, test=args.test, eval_each_epoch=args.eval_each_epoch,
                   initial_state=initial, on_epoch=None if args.json else _print_epoch)
    record = {"arch": args.arch, "arch_id": spec.arch_id, "spec": spec.to_string(), "params": count_params(ops),
              "macs": count_macs(ops), "dataset": dataset.key, "budget": budget.to_dict(), **result.to_dict()}
    if args.save:
        _save(args.save, spec, result, record)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        _print_result(result, args.save)
    return 0 if result.status != "diverged" else 1


def _print_epoch(summary: dict) -> None:
    if "val_accuracy" in summary:
        print(f"  epoch {summary['epoch']}: train loss {summary['train_loss']:.4f}, "
              f"val accuracy {summary['val_accuracy']:.2%}", flush=True)


def _print_result(result, save: str | None) -> None:
    print(f"status {result.status}{': ' + result.reason if result.reason else ''}")
    print(f"validation accuracy {result.accuracy:.2%}" +
          (f"  (loss {result.val_loss:.4f})" if result.val_loss is not None else ""))
    if result.test_accuracy is not None:
        print(f"test accuracy {result.test_accuracy:.2%}  (loss {result.test_loss:.4f})")
    print(f"trained {result.epochs_done:g} epochs in {result.train_time_s:.1f} s ({result.images_per_s:.0f} images/s)")
    if save:
        print(f"saved {save}/weights.pt, spec.json, result.json")
