"""How well do cheap estimates rank architectures? And how fast does training run?

Samples random networks from two search spaces at 28x28x1, and for each computes the
zero-cost proxies at initialisation, a short training (a fraction of an epoch) and a longer
training (the reference ranking), all validation accuracy on Fashion-MNIST. Reports Kendall
tau and Spearman rho of every proxy, of the short training and of params/MACs (baselines)
against the longer budget's validation accuracy. Then measures training throughput
(images/s) for three network sizes and the options that change it (memory format, bf16,
threads, batch size).

Every result goes through the evaluators' JSON-lines cache, so the script resumes where it
stopped: run it under the CPU lock in pieces with --max-minutes, e.g.

    python benchmarks/accuracy_proxies.py --max-minutes 13

until it prints ``"complete": true``. Prints JSON (and writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from scipy import stats

from nas.archs import load_arch
from nas.data import load_dataset
from nas.evaluate import make_evaluator
from nas.ops import count_macs, resolve
from nas.proxies import PROXIES
from nas.space import get_reference, get_space
from nas.train import Budget, train

SPACES = {"mobilenet_v2": {"width_mult": 0.5, "head_width": 640}, "hybrid": {}}
# the plain CNN that reached 93.2% test accuracy with `nas train` (README, "Training and accuracy")
PLAIN_CNN = ("28x28x1>10|conv_k3_s1_c32_bn_relu,conv_k3_s1_c32_bn_relu,maxpool_k2_s2|conv_k3_s1_c64_bn_relu,"
             "conv_k3_s1_c64_bn_relu,maxpool_k2_s2|conv_k3_s1_c128_bn_relu,conv_k3_s1_c128_bn_relu|gap,dropout_p0.2,fc")
# small / medium / large: 2.9 M, 6.8 M and 29 M MACs (depthwise, inverted residual, dense)
THROUGHPUT_NETS = {"mobilenet_v1_0.25": "mobilenet_v1_0.25", "mobilenet_v2_0.5": "mobilenet_v2_0.5",
                   "plain_cnn": PLAIN_CNN}
EPOCH_NETS = {name: name for name in ("mobilenet_v2_0.35", "shufflenet_v2_x0.5", "squeezenet1_1",
                                      "mobilenet_v1_0.5")}
THROUGHPUT_VARIANTS = {
    "default": {},  # channels-last unless shuffle units, float32, 2 threads, batch 128
    "channels-first": {"channels_last": False},
    "channels-last": {"channels_last": True},
    "bf16 autocast": {"bf16": True},
    "1 thread": {"threads": 1},
    "batch 64": {"batch_size": 64},
    "batch 256": {"batch_size": 256},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=int, default=30, help="random networks, split evenly over the spaces")
    p.add_argument("--short-fraction", type=float, default=0.1, help="short budget: 1 epoch on this share")
    p.add_argument("--short-batch", type=int, default=64,
                   help="short budget's batch size (64, the quickstart's: at 128 the 42 steps leave batch-norm "
                        "statistics unsettled and validation accuracy near chance for some networks)")
    p.add_argument("--long-fraction", type=float, default=0.3, help="long budget: --long-epochs on this share")
    p.add_argument("--long-epochs", type=int, default=2)
    p.add_argument("--proxy-batch", type=int, default=64)
    p.add_argument("--cache", default="runs/benchmarks/accuracy_proxies.jsonl")
    p.add_argument("--max-minutes", type=float, default=None, help="stop starting trainings after this long")
    p.add_argument("--throughput", choices=("yes", "no", "only"), default="yes")
    p.add_argument("--throughput-steps", type=int, default=30)
    p.add_argument("--out", help="also write the JSON here")
    return p.parse_args(argv)


def sample_networks(n: int) -> list[tuple[str, object]]:
    spaces = [(name, get_space(name, (28, 28, 1), 10, **options)) for name, options in SPACES.items()]
    seen, networks, seed = set(), [], 0
    while len(networks) < n:
        name, space = spaces[len(networks) % len(spaces)]
        spec = space.sample(1000 + seed)
        seed += 1
        if spec.arch_id not in seen:
            seen.add(spec.arch_id)
            networks.append((name, spec))
    return networks


def rank_correlations(xs: list[float], ys: list[float]) -> dict:
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and math.isfinite(x)]
    if len(pairs) < 3:
        return {"n": len(pairs), "kendall_tau": None, "spearman": None}
    a, b = zip(*pairs)
    return {"n": len(pairs), "kendall_tau": round(float(stats.kendalltau(a, b).statistic), 3),
            "spearman": round(float(stats.spearmanr(a, b).statistic), 3)}


def evaluate_networks(args, dataset, networks, deadline: float | None) -> tuple[list[dict], int]:
    cache = args.cache
    proxy = make_evaluator("proxy", dataset=dataset, batch_size=args.proxy_batch, cache_path=cache)
    short = make_evaluator("train", dataset=dataset, epochs=1, fraction=args.short_fraction,
                           batch_size=args.short_batch, cache_path=cache)
    long = make_evaluator("train", dataset=dataset, epochs=args.long_epochs, fraction=args.long_fraction,
                          cache_path=cache)
    rows, pending = [], 0
    for i, (space, spec) in enumerate(networks):
        cached = all(e.cache.get(spec.arch_id, e.budget_key) for e in (proxy, short, long))
        if not cached and deadline is not None and time.time() > deadline:
            pending += 1
            continue
        print(f"[{i + 1}/{len(networks)}] {space} {spec.arch_id}", file=sys.stderr, flush=True)
        p, s, lo = proxy.evaluate(spec), short.evaluate(spec), long.evaluate(spec)
        rows.append({"space": space, "arch_id": spec.arch_id, "params": p["params"], "macs": p["macs"],
                     **{name: p[name] for name in PROXIES}, "proxy_time_s": p["proxy_time_s"],
                     "short_accuracy": s["accuracy"], "short_status": s["status"], "short_time_s": s["train_time_s"],
                     "long_accuracy": lo["accuracy"], "long_status": lo["status"], "long_time_s": lo["train_time_s"],
                     "long_images_per_s": lo["images_per_s"]})
    return rows, pending


def seed_noise(args, dataset, networks, deadline: float | None) -> list[dict] | None:
    """Long-budget accuracy of the first network of each space under seeds 0, 1, 2: how much
    of the spread between architectures is training noise."""
    evaluators = [make_evaluator("train", dataset=dataset, epochs=args.long_epochs, fraction=args.long_fraction,
                                 seed=seed, cache_path=args.cache) for seed in (0, 1, 2)]
    firsts = {space: spec for space, spec in reversed(networks)}
    out = []
    for space, spec in firsts.items():
        missing = any(e.cache.get(spec.arch_id, e.budget_key) is None for e in evaluators)
        if missing and deadline is not None and time.time() > deadline:
            return None
        accuracies = [e.evaluate(spec)["accuracy"] for e in evaluators]
        out.append({"space": space, "arch_id": spec.arch_id, "accuracies": accuracies,
                    "std": round(statistics.stdev(accuracies), 4)})
    return out


def correlations(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["long_status"] == "ok"]
    estimators = list(PROXIES) + ["short_accuracy", "params", "macs"]
    groups = {"all": ok, **{space: [r for r in ok if r["space"] == space] for space in SPACES}}
    return {group: {name: rank_correlations([r[name] for r in members], [r["long_accuracy"] for r in members])
                    for name in estimators} for group, members in groups.items()}


def proxy_seconds(dataset, names=("mobilenet_v2_0.5", "mobilenet_v2_1.0"), batch=64) -> dict:
    """Seconds per proxy (median of 3) on reference networks, one batch."""
    from nas.proxies import compute_proxies
    from nas.train import build_network

    images, labels = dataset.normalize(dataset.train.images[:batch]), dataset.train.labels[:batch]
    out = {}
    for name in names:
        model = build_network(get_reference(name))
        out[name] = {}
        for proxy in PROXIES:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                compute_proxies((proxy,), model, images, labels)
                times.append(time.perf_counter() - start)
            out[name][proxy] = round(statistics.median(times), 3)
    return out


def _images_per_s(dataset, spec, steps: int, options: dict) -> float:
    batch = options.get("batch_size", 128)
    budget = Budget(**{"epochs": 1, "fraction": min(1.0, steps * batch / len(dataset.train)), **options})
    return train(spec, dataset, budget).images_per_s


def throughput(dataset, steps: int) -> dict:
    """Training images/s (first steps included): every variant for the three sizes, the
    default for the other references; interleaved, twice (the machine is shared), median."""
    runs = [(name, text, variant, options) for name, text in THROUGHPUT_NETS.items()
            for variant, options in THROUGHPUT_VARIANTS.items()]
    runs += [(name, text, "default", {}) for name, text in EPOCH_NETS.items()]
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(2):
        for name, text, variant, options in runs:
            spec = load_arch(text)
            samples.setdefault((name, variant), []).append(_images_per_s(dataset, spec, steps, options))
    out: dict[str, dict] = {}
    for (name, variant), values in samples.items():
        row = out.setdefault(name, {"macs": count_macs(resolve(load_arch(THROUGHPUT_NETS.get(name, name))))})
        row[variant] = round(statistics.median(values))
    for row in out.values():
        default = next(v for k, v in row.items() if k.startswith("default"))
        row["seconds_per_epoch"] = round(len(dataset.train) / default)
    return out


def environment() -> dict:
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  check=False).stdout.strip()
    except OSError:
        revision = ""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor(), "git": revision, "date": time.strftime("%Y-%m-%d %H:%M")}


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    deadline = start + 60 * args.max_minutes if args.max_minutes else None
    dataset = load_dataset("fashion-mnist")
    report = {"benchmark": "accuracy_proxies", "environment": environment(), "dataset": dataset.key,
              "budgets": {"short": f"1 epoch on {args.short_fraction:.0%} of the train split, "
                                   f"batch {args.short_batch}",
                          "long": f"{args.long_epochs} epochs on {args.long_fraction:.0%} of the train split",
                          "training": "SGD-Nesterov, one-cycle, default lr (0.1 per 128 images), batch 128 "
                                      "unless stated, no augmentation, seed 0",
                          "proxies": f"at initialisation, one batch of {args.proxy_batch}"},
              "spaces": SPACES}
    if args.throughput != "only":
        networks = sample_networks(args.networks)
        rows, pending = evaluate_networks(args, dataset, networks, deadline)
        noise = seed_noise(args, dataset, networks, deadline) if not pending else None
        long_accuracies = [r["long_accuracy"] for r in rows if r["long_status"] == "ok"]
        report.update(complete=pending == 0 and noise is not None, evaluated=len(rows), pending=pending,
                      diverged=sum(r["long_status"] != "ok" or r["short_status"] != "ok" for r in rows),
                      correlation_with_long_accuracy=correlations(rows),
                      long_accuracy={"min": min(long_accuracies, default=None),
                                     "max": max(long_accuracies, default=None),
                                     "std": round(statistics.stdev(long_accuracies), 4)
                                     if len(long_accuracies) > 1 else None},
                      long_accuracy_seed_noise=noise, networks=rows)
        if not report["complete"]:
            print(f"{pending} networks (and the seed-noise runs) left: run again to resume", file=sys.stderr)
    if args.throughput != "no" and (deadline is None or time.time() < deadline):
        report["proxy_seconds"] = proxy_seconds(dataset)
        report["training_images_per_s"] = throughput(dataset, args.throughput_steps)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
