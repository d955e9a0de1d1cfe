"""Bad inputs, by class: does every one get a clear error, and is nothing written outside the
folder the user named?

Each case runs the real command line (``python -m nas.cli ...``, or ``python -m
nas.export.check`` for export folders) in a subprocess, in its own scratch folder (the
working directory), after writing the case's files there. The scratch folder is
snapshotted before and after; every file created, changed or removed outside the paths the
case allows (its run or output folder) counts against it. Verdicts, first that applies:

- ``files_changed_outside_run``: the snapshot differs outside the allowed paths;
- ``traceback``: a Python traceback (or the CLI's "internal error" line) in the output,
  a timeout, or death by a signal;
- ``silently_accepted``: exit 0 on bad input;
- ``unclear_error``: non-zero exit without a traceback, but the message lacks what the case
  expects (the bad key or value, the file, what was expected);
- ``clear_error``: non-zero exit, no traceback, the message names what the case expects.

A few cases are not refusals but "handled" outcomes (a damaged cache line is skipped with a
warning; a trial that fails is recorded with a one-line reason and the search goes on): they
pass as ``clear_error`` when the output says so in one line and nothing is trusted.

The six bugs of issue 20 are cases too (class ``issue20``), so the checker fails on code that
has them: a resumed search that repeats architectures, a study reused with another setup, a
run name that escapes the runs folder, NaN limits, simultaneous PostgreSQL workers (only with
NAS_TEST_POSTGRES_URL; otherwise reported as skipped with the reason) and
``nas export --pareto-index -1``.

Usage::

    python benchmarks/bad_inputs.py [--out DIR] [--jobs 2] [--only SUBSTRING] [--launcher warm|exec]
    PYTHONPATH=OTHER_CHECKOUT python benchmarks/bad_inputs.py     # another checkout's package

By default each command is forked from a warm interpreter that has already imported the
package (``--launcher warm``: the same ``python -m`` entry point, without 4-8 s of imports per
command); ``--launcher exec`` starts a fresh interpreter for every command instead.

The last line printed is one JSON object; the per-case table is written to
``OUT/bad_inputs.csv`` and ``OUT/bad_inputs.md`` (OUT defaults to a new temporary folder,
never the repository).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import csv
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "latency_tables" / "mobilenet_v1-28x28x1-ort-xeon2c.csv"
V2_TABLE = ROOT / "latency_tables" / "mobilenet_v2-28x28x1-ort-xeon2c.csv"
CASE_TIMEOUT_S = 120
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|internal error", re.IGNORECASE)


def experiment(**changes) -> dict:
    """The cheapest real search: the 'tiny' evaluator (a zero-cost score on synthetic data),
    MobileNetV1 space, the shipped table, two trials."""
    config = {"name": "t", "space": {"name": "mobilenet_v1"}, "dataset": {"name": "synthetic"},
              "evaluator": {"kind": "tiny"}, "latency": {"table": str(TABLE)}, "objective": {"kind": "pareto"},
              "sampler": {"kind": "nsga2", "population_size": 4}, "trials": 2, "seed": 0}
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return config


DELETE = object()


def yaml_text(config: dict, raw: dict[str, str] | None = None) -> str:
    """``config`` as YAML; ``raw`` replaces the value of a dotted key with literal YAML text
    (for .nan, .inf, tags and other values a dump would quote or normalise)."""
    import yaml

    raw = raw or {}
    placeholders = {}
    for i, (dotted, text) in enumerate(raw.items()):
        token = f"__RAW_{i}__"
        placeholders[token] = text
        config = experiment_set(config, dotted, token)
    out = yaml.safe_dump(config, sort_keys=False, width=10_000)
    for token, text in placeholders.items():
        out = out.replace(token, text)
    return out


def experiment_set(config: dict, dotted: str, value) -> dict:
    config = json.loads(json.dumps(config))
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


# --------------------------------------------------------------------------------------
# cases


@dataclass
class Case:
    """One bad input. ``expect``: groups of alternatives; the output must contain one
    alternative of every group (case-insensitive). ``allowed``: paths (relative to the scratch
    folder) that the command may write. ``outcome``: "error" (must exit non-zero) or
    "handled" (may exit 0 if the output says what was wrong). ``check``: an extra verdict
    after the command (multi-step cases); ``commands``: several argv lists run in order (the
    last one is judged unless ``check`` decides)."""

    cls: str
    name: str
    input: str
    argv: list[str]
    expect: list[tuple[str, ...]] = field(default_factory=list)
    files: dict[str, bytes | str | Callable[[Path], None]] = field(default_factory=dict)
    allowed: tuple[str, ...] = ()
    outcome: str = "error"
    commands: list[list[str]] | None = None
    check: Callable[[Path, list[tuple[int, str]]], tuple[str, str] | None] | None = None
    skip: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    parallel: bool = False  # commands run at the same time instead of in order
    module: str = "nas.cli"
    timeout: int = CASE_TIMEOUT_S

    def __post_init__(self) -> None:
        # reading a run's SQLite study updates its write-ahead log and shared-memory files (and
        # checkpoints the log into study.db): SQLite's own bookkeeping inside the run folder
        for rel, content in self.files.items():
            if content is copy_template_run:
                self.allowed += tuple(f"{rel}/study.db{suffix}" for suffix in ("", "-wal", "-shm", "-journal"))


def alt(*values) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


VALUE_TEXT = {  # how a bad value is written in YAML, and how a message may name it
    "negative": ("-1", alt("-1")),
    "zero": ("0", alt("0")),
    "huge": ("1000000000000", alt("1000000000000", "1e+12", "1e12", "10^12")),
    "nan": (".nan", alt("nan")),
    "inf": (".inf", alt("inf")),
    "-inf": ("-.inf", alt("-inf")),
    "string": ("'abc'", alt("abc")),
    "bool": ("true", alt("true")),
    "fraction": ("2.5", alt("2.5")),
    "above_one": ("1.5", alt("1.5")),
    "one": ("1", alt("1")),
}

# (dotted key, base config changes, the bad values) -- only values that are invalid for the key
CONFIG_FIELDS = [
    ("trials", {}, ["negative", "zero", "huge", "nan", "inf", "string", "bool", "fraction"]),
    ("timeout_s", {}, ["negative", "zero", "nan", "inf", "string", "bool"]),
    ("seed", {}, ["nan", "inf", "string", "bool", "fraction"]),
    ("dataset.val_fraction", {}, ["negative", "zero", "one", "above_one", "nan", "inf", "string", "bool"]),
    ("objective.max_latency_ms", {}, ["negative", "zero", "nan", "inf", "-inf", "string", "bool"]),
    ("objective.target_ms", {"objective": {"kind": "mnas", "target_ms": 4.0}, "sampler": "tpe"},
     ["negative", "zero", "nan", "inf", "string", "bool"]),
    ("sampler.population_size", {}, ["negative", "zero", "huge", "nan", "string", "bool", "fraction"]),
    ("evaluator.options.batch_size", {}, ["negative", "zero", "huge", "nan", "string", "bool"]),
    ("evaluator.options.epochs", {"evaluator": {"kind": "train", "options": {"epochs": 1, "fraction": 0.05}}},
     ["negative", "zero", "huge", "nan", "inf", "string", "bool", "fraction"]),
    ("evaluator.options.fraction", {"evaluator": {"kind": "train", "options": {"epochs": 1, "fraction": 0.05}}},
     ["negative", "zero", "above_one", "nan", "inf", "string", "bool"]),
    ("evaluator.options.lr", {"evaluator": {"kind": "train", "options": {"epochs": 1, "fraction": 0.05}}},
     ["negative", "zero", "nan", "inf", "string", "bool"]),
    ("evaluator.options.max_seconds", {"evaluator": {"kind": "train", "options": {"epochs": 1, "fraction": 0.05}}},
     ["negative", "nan", "string"]),
    ("evaluator.options.batches", {"evaluator": {"kind": "proxy", "options": {"proxies": ["synflow"],
                                                                             "objective": "synflow"}}},
     ["negative", "zero", "huge", "nan", "bool"]),
]


def numeric_config_cases() -> list[Case]:
    cases = []
    for dotted, base, kinds in CONFIG_FIELDS:
        config = experiment()
        for key, value in base.items():
            config[key] = value
        for kind in kinds:
            text, names = VALUE_TEXT[kind]
            key = dotted.split(".")[-1]
            cases.append(Case("numeric_config", f"config-{dotted}-{kind}", f"{dotted}: {text}",
                              ["search", "exp.yaml", "--no-progress"], [alt(key), names],
                              files={"exp.yaml": yaml_text(config, {dotted: text})}, allowed=("runs/t",)))
    return cases


def numeric_cli_cases() -> list[Case]:
    exp = {"exp.yaml": yaml_text(experiment())}
    train = ["train", "mobilenet_v1_0.25", "--dataset", "synthetic", "--fraction", "0.05"]
    run = {"run": copy_template_run}
    rows = [
        # (command, flag, value, files, allowed)
        (["search", "exp.yaml", "--no-progress"], "--n-trials", "-1", exp, ("runs/t",)),
        (["search", "exp.yaml", "--no-progress"], "--n-trials", "0", exp, ("runs/t",)),
        (["search", "exp.yaml", "--no-progress"], "--n-trials", "nan", exp, ("runs/t",)),
        (["search", "exp.yaml", "--no-progress"], "--timeout", "nan", exp, ("runs/t",)),
        (["search", "exp.yaml", "--no-progress"], "--timeout", "-5", exp, ("runs/t",)),
        (["search", "exp.yaml", "--no-progress"], "--timeout", "inf", exp, ("runs/t",)),
        (["search", "exp.yaml", "--no-progress"], "--seed", "abc", exp, ("runs/t",)),
        (["search", "exp.yaml", "--no-progress"], "--worker", "-1", exp, ("runs/t",)),
        (train, "--epochs", "0", {}, ()),
        (train, "--epochs", "-1", {}, ()),
        (train, "--batch-size", "0", {}, ()),
        (train, "--lr", "nan", {}, ()),
        (train, "--lr", "-1", {}, ()),
        (train, "--lr", "inf", {}, ()),
        (train, "--val-fraction", "1", {}, ()),
        (train, "--val-fraction", "nan", {}, ()),
        (train, "--max-seconds", "-1", {}, ()),
        (train, "--max-seconds", "nan", {}, ()),
        (train, "--label-smoothing", "nan", {}, ()),
        (train, "--label-smoothing", "2", {}, ()),
        (train, "--weight-decay", "-1", {}, ()),
        (train, "--warmup", "1.5", {}, ()),
        (train, "--crop-padding", "-1", {}, ()),
        (train, "--threads", "0", {}, ()),
        (["arch", "sample", "mobilenet_v1"], "--classes", "0", {}, ()),
        (["arch", "sample", "mobilenet_v1"], "--classes", "1000000000000", {}, ()),
        (["arch", "sample", "mobilenet_v1"], "--input", "0x0x1", {}, ()),
        (["arch", "sample", "mobilenet_v1"], "--input", "100000x100000x3", {}, ()),
        (["arch", "sample", "mobilenet_v1"], "--seed", "-1", {}, ()),
        (["latency", "profile", "--arch", "mobilenet_v1_0.25", "--limit", "1", "-o", "p.csv"], "--repeats", "0", {},
         ("p.csv", "p.json")),
        (["latency", "profile", "--arch", "mobilenet_v1_0.25", "--limit", "1", "-o", "p.csv"], "--warmup", "-1", {},
         ("p.csv", "p.json")),
        (["latency", "profile", "--arch", "mobilenet_v1_0.25", "--limit", "1", "-o", "p.csv"], "--max-minutes",
         "nan", {}, ("p.csv", "p.json")),
        (["latency", "profile", "--arch", "mobilenet_v1_0.25", "--limit", "1", "-o", "p.csv"], "--max-minutes",
         "-1", {}, ("p.csv", "p.json")),
        (["latency", "profile", "--arch", "mobilenet_v1_0.25", "--limit", "1", "-o", "p.csv"], "--cpu", "999", {},
         ("p.csv", "p.json")),
        (["latency", "validate", "--space", "mobilenet_v1", "--table", str(TABLE)], "--n", "0", {}, ()),
        (["latency", "validate", "--space", "mobilenet_v1", "--table", str(TABLE)], "--n", "-1", {}, ()),
        (["export", "run", "--trial", "0", "-o", "out"], "--calibration-images", "0", run, ("out",)),
        (["export", "run", "--trial", "0", "-o", "out"], "--repeats", "0", run, ("out",)),
        (["export", "run", "--trial", "0", "-o", "out"], "--retrain-epochs", "-1", run, ("out",)),
        (["export", "run", "-o", "out"], "--max-latency", "nan", run, ("out",)),
        (["export", "run", "-o", "out"], "--max-latency", "-1", run, ("out",)),
        (["export", "run", "-o", "out"], "--max-latency", "inf", run, ("out",)),
        (["export", "run", "-o", "out"], "--trial", "1.5", run, ("out",)),
    ]
    cases = []
    for command, flag, value, files, allowed in rows:
        # the message may name the option (--n-trials, n_trials) or the setting it overrides (trials)
        keys = alt(flag, flag.lstrip("-").replace("-", "_"), flag.split("-")[-1])
        cases.append(Case("numeric_cli", f"cli-{command[0]}-{flag}-{value}", f"{flag} {value}",
                          [*command, flag, value], [keys, alt(value)], files=dict(files), allowed=allowed))
    return cases


# -- files the tool loads ------------------------------------------------------------------


def junk(n: int = 512) -> bytes:
    return hashlib.sha256(b"junk").digest() * (n // 32) + b"\x00\xff\xfe"


def folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def config_file_cases() -> list[Case]:
    good = yaml_text(experiment())
    search = ["search", "exp.yaml", "--no-progress"]
    rows = [
        ("missing", {}, [alt("exp.yaml"), alt("not exist", "no such", "not found", "missing")]),
        ("empty", {"exp.yaml": ""}, [alt("exp.yaml"), alt("empty", "mapping", "expected")]),
        ("truncated", {"exp.yaml": good[: len(good) // 2 - 7] + "{name: mob"}, [alt("exp.yaml"), alt("yaml")]),
        ("binary", {"exp.yaml": junk()}, [alt("exp.yaml")]),
        ("folder", {"exp.yaml": folder}, [alt("exp.yaml"), alt("folder", "directory")]),
        ("list-top-level", {"exp.yaml": "- 1\n- 2\n"}, [alt("exp.yaml"), alt("mapping")]),
        ("unknown-key", {"exp.yaml": good + "trails: 3\n"}, [alt("trails")]),
        ("duplicated-key", {"exp.yaml": good + "trials: 5\n"},
         [alt("trials"), alt("duplicate", "twice", "more than once")]),
        ("python-tag", {"exp.yaml": good.replace("seed: 0", "seed: !!python/object/apply:os.system ['touch PWNED']")},
         [alt("exp.yaml"), alt("python/object", "tag", "constructor")]),
        ("long-name", {"exp.yaml": yaml_text(experiment(name="n" * 5000))}, [alt("name"), alt("characters", "long")]),
        ("space-not-mapping", {"exp.yaml": yaml_text(experiment(space=5))}, [alt("space"), alt("5")]),
        ("unknown-space", {"exp.yaml": yaml_text(experiment(**{"space.name": "mobilenet_v9"}))}, [alt("mobilenet_v9")]),
        ("unknown-evaluator", {"exp.yaml": yaml_text(experiment(**{"evaluator.kind": "trian"}))}, [alt("trian")]),
        ("unknown-evaluator-option", {"exp.yaml": yaml_text(experiment(**{"evaluator.options": {"epoch": 1}}))},
         [alt("epoch")]),
        ("missing-space", {"exp.yaml": yaml_text(experiment(space=DELETE))}, [alt("space")]),
        ("table-missing", {"exp.yaml": yaml_text(experiment(**{"latency.table": "nowhere.csv"}))},
         [alt("nowhere.csv")]),
        ("table-folder", {"exp.yaml": yaml_text(experiment(**{"latency.table": "tables"})), "tables": folder},
         [alt("tables")]),
        ("table-junk", {"exp.yaml": yaml_text(experiment(**{"latency.table": "bad.csv"})), "bad.csv": junk()},
         [alt("bad.csv")]),
        ("deep-nesting", {"exp.yaml": good + "extra: " + "[" * 5000 + "]" * 5000 + "\n"},
         [alt("exp.yaml", "extra")]),
    ]
    return [Case("config_file", f"config-file-{name}", name, search, expect, files=files, allowed=("runs/t",))
            for name, files, expect in rows]


def table_text(mutate: Callable[[list[list[str]]], list[list[str]]] | None = None) -> str:
    rows = list(csv.reader(TABLE.read_text().splitlines()))
    if mutate:
        rows = mutate(rows)
    return "\n".join(",".join(row) for row in rows) + "\n"


def set_column(column: str, value: str, row: int = 1):
    def mutate(rows):
        rows[row][rows[0].index(column)] = value
        return rows
    return mutate


def sidecar() -> dict:
    return json.loads(TABLE.with_suffix(".json").read_text())


def latency_table_cases(good_spec: str) -> list[Case]:
    predict = ["latency", "predict", "arch.json", "--table", "t.csv"]
    side = TABLE.with_suffix(".json").read_text()
    good = table_text()
    header = good.splitlines()[0]
    dup_row = good.splitlines()[1]
    rows = [
        ("csv-missing", {"t.json": side}, [alt("t.csv")]),
        ("csv-empty", {"t.csv": "", "t.json": side}, [alt("t.csv"), alt("empty")]),
        ("csv-header-only", {"t.csv": header + "\n", "t.json": side}, [alt("t.csv", "missing")]),
        ("csv-truncated-row", {"t.csv": good[: len(good) // 2], "t.json": side}, [alt("t.csv"), alt("line", "row")]),
        ("csv-binary", {"t.csv": junk(), "t.json": side}, [alt("t.csv")]),
        ("csv-folder", {"t.csv": folder, "t.json": side}, [alt("t.csv"), alt("folder", "directory")]),
        ("csv-wrong-columns", {"t.csv": good.replace(",median,", ",med,", 1), "t.json": side},
         [alt("t.csv"), alt("median")]),
        ("csv-duplicated-key", {"t.csv": good + dup_row.replace(",60,", ",61,", 1) + "\n", "t.json": side},
         [alt("t.csv"), alt("duplicate", "twice", "more than once")]),
        ("csv-nan-median", {"t.csv": table_text(set_column("median", "nan")), "t.json": side},
         [alt("t.csv"), alt("nan"), alt("median")]),
        ("csv-inf-median", {"t.csv": table_text(set_column("median", "inf")), "t.json": side},
         [alt("t.csv"), alt("inf"), alt("median")]),
        ("csv-negative-median", {"t.csv": table_text(set_column("median", "-0.5")), "t.json": side},
         [alt("t.csv"), alt("-0.5"), alt("median")]),
        ("csv-text-median", {"t.csv": table_text(set_column("median", "fast")), "t.json": side},
         [alt("t.csv"), alt("fast"), alt("median")]),
        ("csv-huge-count", {"t.csv": table_text(set_column("n", "1e30")), "t.json": side},
         [alt("t.csv"), alt("1e30", "1e+30")]),
        ("csv-negative-count", {"t.csv": table_text(set_column("n", "-3")), "t.json": side},
         [alt("t.csv"), alt("-3")]),
        ("csv-huge-median", {"t.csv": table_text(set_column("median", "1e300")), "t.json": side},
         [alt("t.csv"), alt("1e300", "1e+300")]),
        ("json-missing", {"t.csv": good}, [alt("t.json")]),
        ("json-empty", {"t.csv": good, "t.json": ""}, [alt("t.json")]),
        ("json-binary", {"t.csv": good, "t.json": junk()}, [alt("t.json")]),
        ("json-truncated", {"t.csv": good, "t.json": side[: len(side) // 2]}, [alt("t.json")]),
        ("json-folder", {"t.csv": good, "t.json": folder}, [alt("t.json")]),
        ("json-list", {"t.csv": good, "t.json": "[1, 2]"}, [alt("t.json")]),
        ("json-missing-keys", {"t.csv": good, "t.json": json.dumps({"device": "x"})}, [alt("t.json")]),
        ("json-duplicated-key", {"t.csv": good, "t.json": side.replace('"batch": 1,', '"batch": 1, "batch": 4,', 1)},
         [alt("t.json"), alt("batch"), alt("duplicate", "twice", "more than once")]),
        ("json-nan-scale", {"t.csv": good, "t.json": json.dumps({**sidecar(), "composition": {
            **sidecar()["composition"], "scale": float("nan")}})}, [alt("t.json"), alt("scale"), alt("nan")]),
        ("json-negative-overhead", {"t.csv": good, "t.json": json.dumps({**sidecar(), "composition": {
            **sidecar()["composition"], "overhead_ms": -1.0}})}, [alt("t.json"), alt("overhead"), alt("-1")]),
        ("json-bad-input-shape", {"t.csv": good, "t.json": json.dumps({**sidecar(), "input": "28x28"})},
         [alt("t.json"), alt("28x28")]),
    ]
    return [Case("latency_table", f"table-{name}", name, predict, expect, files={"arch.json": good_spec, **files})
            for name, files, expect in rows]


def spec_cases(good_spec: str) -> list[Case]:
    data = json.loads(good_spec)

    def changed(path: list, value) -> str:
        copy = json.loads(good_spec)
        node = copy
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        return json.dumps(copy)

    first_block = ["stages", 0, 0]
    show = ["arch", "show", "a.json"]
    rows = [
        ("missing", {}, [alt("a.json")]),
        ("empty", {"a.json": ""}, [alt("a.json")]),
        ("truncated", {"a.json": good_spec[: len(good_spec) // 2]}, [alt("a.json")]),
        ("binary", {"a.json": junk()}, [alt("a.json")]),
        ("folder", {"a.json": folder}, [alt("a.json")]),
        ("list", {"a.json": "[1, 2, 3]"}, [alt("a.json")]),
        ("wrong-keys", {"a.json": json.dumps({"inputs": [28, 28, 1]})}, [alt("a.json")]),
        ("duplicated-key", {"a.json": good_spec.replace('"classes": 10', '"classes": 10, "classes": 100', 1)},
         [alt("classes"), alt("duplicate", "twice", "more than once")]),
        ("channels-huge", {"a.json": changed([*first_block, "out"], 10 ** 12)},
         [alt("out", "channels"), alt("1000000000000")]),
        ("channels-negative", {"a.json": changed([*first_block, "out"], -16)}, [alt("out", "channels"), alt("-16")]),
        ("kernel-bool", {"a.json": changed([*first_block, "kernel"], True)}, [alt("kernel"), alt("true")]),
        ("kernel-float", {"a.json": changed([*first_block, "kernel"], 2.5)}, [alt("kernel"), alt("2.5")]),
        ("classes-zero", {"a.json": changed(["classes"], 0)}, [alt("classes"), alt("0")]),
        ("input-negative", {"a.json": changed(["input"], [-28, 28, 1])}, [alt("input"), alt("-28")]),
        ("input-huge", {"a.json": changed(["input"], [10 ** 6, 10 ** 6, 3])}, [alt("input"), alt("1000000")]),
        ("dropout-nan", {"a.json": good_spec.replace('"type": "fc"', '"type": "dropout", "p": NaN}, {"type": "fc"',
                                                     1)}, [alt("p", "dropout"), alt("nan")]),
        ("many-blocks", {"a.json": changed(["stages", 0], [data["stages"][-1][-1]] * 100_000)},
         [alt("a.json", "blocks", "stage"), alt("100000", "too many", "at most")]),
    ]
    cases = [Case("spec_file", f"spec-{name}", name, show, expect, files=files) for name, files, expect in rows]
    cases += [Case("spec_file", "spec-string-bad-token", "a spec string with a bad token",
                   ["arch", "show", "28x28x1>10|conv_k3_s1_cX_bn_relu|gap,fc"], [alt("conv_k3_s1_cX")]),
              Case("spec_file", "spec-string-negative-channels", "a spec string with -16 channels",
                   ["arch", "show", "28x28x1>10|conv_k3_s1_c-16_bn_relu|gap,fc"], [alt("-16", "c-16")])]
    return cases


class Hostile:
    """A pickle that would write PWNED in the working folder when unpickled."""

    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('code ran')",))


def hostile_pickle() -> bytes:
    return pickle.dumps({"conv.weight": Hostile()})


def checkpoint_cases(template: Path) -> list[Case]:
    real = (template / "weights.pt").read_bytes()
    other = (template / "other.pt").read_bytes()
    tensor = (template / "tensor.pt").read_bytes()
    payloads = {
        "empty": b"", "truncated": real[: len(real) // 2], "binary": junk(), "wrong-keys": other,
        "not-a-dict": tensor, "hostile-pickle": hostile_pickle(),
        "hostile-torch-zip": (template / "hostile.pt").read_bytes(),
    }
    cases = []
    train = ["train", "mobilenet_v1_0.25", "--dataset", "synthetic", "--fraction", "0.05", "--init", "w"]
    cases.append(Case("checkpoint", "init-missing", "--init folder without weights.pt", train,
                      [alt("weights.pt")], files={"w": folder}))
    cases.append(Case("checkpoint", "init-folder", "weights.pt is a folder", train, [alt("weights.pt")],
                      files={"w/weights.pt": folder}))
    for name, payload in payloads.items():
        cases.append(Case("checkpoint", f"init-{name}", f"--init weights.pt: {name}", train, [alt("weights.pt")],
                          files={"w/weights.pt": payload}))
    export = ["export", "run", "--trial", "0", "-o", "out", "--weights", "m.pt"]
    cases.append(Case("checkpoint", "weights-missing", "--weights missing", export, [alt("m.pt")],
                      files={"run": copy_template_run}, allowed=("out",)))
    cases.append(Case("checkpoint", "weights-folder", "--weights is a folder", export, [alt("m.pt")],
                      files={"run": copy_template_run, "m.pt": folder}, allowed=("out",)))
    for name, payload in payloads.items():
        cases.append(Case("checkpoint", f"weights-{name}", f"--weights: {name}", export, [alt("m.pt")],
                          files={"run": copy_template_run, "m.pt": payload}, allowed=("out",)))
    return cases


def import_cases() -> list[Case]:
    proxyless = ("Conv-input:224x224x3-output:112x112x32:\n  count: 982\n  mean: 4.08\n  var: 0.25\n"
                 "Logits-input:7x7x1280-output:1000:\n  count: 982\n  mean: 0.31\n  var: 0.05\n")
    runner_header = "key,n,median,mean,std,p10,p90\n"
    side = json.dumps({**{k: v for k, v in sidecar().items() if k != "composition"}, "source": "runner"})
    imp = ["latency", "import", "in.yaml", "--format", "proxylessnas", "-o", "out.csv"]
    runner = ["latency", "import", "in.csv", "--format", "runner", "-o", "out.csv"]
    ok = ("out.csv", "out.json")
    rows = [
        ("yaml-missing", imp, {}, [alt("in.yaml")]),
        ("yaml-empty", imp, {"in.yaml": ""}, [alt("in.yaml")]),
        ("yaml-binary", imp, {"in.yaml": junk()}, [alt("in.yaml")]),
        ("yaml-folder", imp, {"in.yaml": folder}, [alt("in.yaml")]),
        ("yaml-truncated", imp, {"in.yaml": proxyless[:60]}, [alt("in.yaml")]),
        ("yaml-list", imp, {"in.yaml": "- 1\n"}, [alt("in.yaml")]),
        ("yaml-python-tag", imp, {"in.yaml": "!!python/object/apply:os.system ['touch PWNED']\n"},
         [alt("in.yaml"), alt("python/object", "tag", "constructor")]),
        ("yaml-nan-mean", imp, {"in.yaml": proxyless.replace("mean: 4.08", "mean: .nan")},
         [alt("in.yaml"), alt("nan")]),
        ("yaml-negative-mean", imp, {"in.yaml": proxyless.replace("mean: 4.08", "mean: -4.08")},
         [alt("in.yaml"), alt("-4.08")]),
        ("yaml-huge-count", imp, {"in.yaml": proxyless.replace("count: 982", "count: 1e400", 1)},
         [alt("in.yaml"), alt("count")]),
        ("yaml-text-mean", imp, {"in.yaml": proxyless.replace("mean: 4.08", "mean: fast")},
         [alt("in.yaml"), alt("fast")]),
        ("yaml-duplicated-key", imp, {"in.yaml": proxyless + proxyless.split("Logits")[0]},
         [alt("in.yaml"), alt("duplicate", "twice", "more than once")]),
        ("yaml-unknown-key", imp, {"in.yaml": proxyless + "Mystery-input:7x7x3-output:7x7x3:\n  mean: 1\n"},
         [alt("Mystery")]),
        ("yaml-entry-not-mapping", imp, {"in.yaml": proxyless.replace("  count: 982\n  mean: 4.08\n  var: 0.25",
                                                                      "  4.08", 1)}, [alt("in.yaml"), alt("4.08")]),
        ("runner-missing", runner, {}, [alt("in.csv")]),
        ("runner-empty", runner, {"in.csv": "", "in.json": side}, [alt("in.csv")]),
        ("runner-binary", runner, {"in.csv": junk(), "in.json": side}, [alt("in.csv")]),
        ("runner-wrong-columns", runner, {"in.csv": "name,ms\nx,1\n", "in.json": side}, [alt("in.csv")]),
        ("runner-nan", runner, {"in.csv": table_text(set_column("median", "nan")), "in.json": side},
         [alt("in.csv"), alt("nan"), alt("median")]),
        ("runner-negative", runner, {"in.csv": table_text(set_column("median", "-1")), "in.json": side},
         [alt("in.csv"), alt("-1"), alt("median")]),
        ("runner-no-sidecar", runner, {"in.csv": runner_header}, [alt("in.json")]),
    ]
    return [Case("imported_table", f"import-{name}", name, argv, expect, files=files, allowed=ok)
            for name, argv, files, expect in rows]


def cache_cases(template: Path) -> list[Case]:
    record = json.loads((template / "runs" / "t" / "eval_cache.jsonl").read_text().splitlines()[0])
    config = {"exp.yaml": yaml_text(experiment(trials=1))}
    search = ["search", "exp.yaml", "--no-progress"]

    def poisoned(metrics) -> str:
        return json.dumps({**record, "metrics": metrics}) + "\n"

    nan_line = poisoned({**record["metrics"], "naswot": float("nan")})
    warned = [alt("eval_cache.jsonl")]
    # a last line without its newline is what a process still appending leaves: it is never
    # trusted, and no warning is due (the outcome is judged by the exit code and the check)
    rows = [
        ("junk-line", "not json at all\n", "handled", warned),
        ("binary", junk(), "handled", []),
        ("truncated-line", poisoned(record["metrics"])[:40], "handled", []),
        ("nan-metrics", nan_line, "handled", []),
        ("metrics-not-a-dict", poisoned("high"), "handled", warned),
        ("record-not-an-object", "[1, 2, 3]\n", "handled", warned),
        ("folder", folder, "error", [alt("eval_cache.jsonl")]),
    ]
    cases = []
    for name, content, outcome, expect in rows:
        cases.append(Case("cached_results", f"cache-{name}", f"eval_cache.jsonl: {name}", search, expect,
                          files={**config, "runs/t/eval_cache.jsonl": content}, allowed=("runs/t",),
                          outcome=outcome, check=no_nan_score))
    return cases


def no_nan_score(scratch: Path, results) -> tuple[str, str] | None:
    """A damaged cache record must not become a trial's result: the one trial asked for
    completes with a finite score."""
    db = scratch / "runs" / "t" / "study.db"
    if not db.is_file() or results[-1][0] != 0:
        return None
    with contextlib.closing(sqlite3.connect(db)) as con:
        try:
            states = [s for (s,) in con.execute("select state from trials")]
            values = [v for (v,) in con.execute("select value from trial_values")]
        except sqlite3.Error as exc:
            return "unclear_error", f"the study cannot be read: {exc}"
    # the tiny evaluator never fails: a failed trial here is one that took the damaged record
    if "COMPLETE" not in states or "FAIL" in states or any(v is None or v != v for v in values):
        return "silently_accepted", f"a damaged cache record was trusted: trial states {states}, values {values}"
    return None


def card_cases(template: Path) -> list[Case]:
    card = json.dumps({"formats": {"fp32": {"file": "model.onnx"}}, "checks": {"fp32_parity": {"tolerance": 1e-4}}})
    sample = (template / "sample.npz").read_bytes()
    check = ["x"]
    rows = [
        ("folder-missing", {}, [alt("x")]),
        ("card-missing", {"x/sample.npz": sample}, [alt("card.json")]),
        ("card-empty", {"x/card.json": "", "x/sample.npz": sample}, [alt("card.json")]),
        ("card-binary", {"x/card.json": junk(), "x/sample.npz": sample}, [alt("card.json")]),
        ("card-truncated", {"x/card.json": card[:30], "x/sample.npz": sample}, [alt("card.json")]),
        ("card-folder", {"x/card.json": folder, "x/sample.npz": sample}, [alt("card.json")]),
        ("card-wrong-keys", {"x/card.json": "{}", "x/sample.npz": sample}, [alt("card.json"), alt("formats")]),
        ("card-duplicated-key", {"x/card.json": card.replace('{"formats"', '{"formats": {}, "formats"', 1),
                                 "x/sample.npz": sample}, [alt("card.json"), alt("duplicate")]),
        ("card-formats-list", {"x/card.json": json.dumps({"formats": [1, 2]}), "x/sample.npz": sample},
         [alt("card.json"), alt("formats")]),
        ("card-file-escapes", {"x/card.json": card.replace("model.onnx", "../../outside.onnx"),
                               "x/sample.npz": sample}, [alt("outside.onnx")]),
        ("onnx-junk", {"x/card.json": card, "x/sample.npz": sample, "x/model.onnx": junk()}, [alt("model.onnx")]),
        ("sample-junk", {"x/card.json": card, "x/sample.npz": junk()}, [alt("sample.npz")]),
        ("sample-pickled", {"x/card.json": card, "x/sample.npz": (template / "pickled.npz").read_bytes()},
         [alt("sample.npz")]),
    ]
    return [Case("exported_card", f"card-{name}", name, check, expect, files=files, module="nas.export.check")
            for name, files, expect in rows]


def run_folder_cases() -> list[Case]:
    rows = [
        (["pareto", "nowhere"], {}, [alt("nowhere")]),
        (["pareto", "file.txt"], {"file.txt": "hello"}, [alt("file.txt")]),
        (["pareto", "empty"], {"empty": folder}, [alt("empty")]),
        (["report", "run"], {"run": copy_template_run, "run/study.db": junk(4096)}, [alt("study.db", "run")]),
        (["pareto", "run"], {"run": copy_template_run, "run/study.db": ""}, [alt("study.db", "run")]),
        (["export", "run", "--trial", "0", "-o", "out"], {"run": copy_template_run, "run/config.yaml": junk()},
         [alt("config.yaml")]),
        (["export", "run", "--trial", "0", "-o", "out"], {"run": copy_template_run, "run/config.yaml": "- 1\n"},
         [alt("config.yaml")]),
    ]
    return [Case("run_folder", f"run-{i}-{'-'.join(argv[:2])}",
                 f"{argv[0]} on {list(files)[-1] if files else 'nothing'}", argv, expect, files=files, allowed=("out",))
            for i, (argv, files, expect) in enumerate(rows)]


def dataset_cases() -> list[Case]:
    train = ["train", "mobilenet_v1_0.25", "--fraction", "0.05"]
    rows = [
        ("fashion-missing", ["--dataset", "fashion-mnist", "--data", "nodata"], {}, [alt("nodata")]),
        ("fashion-empty-folder", ["--dataset", "fashion-mnist", "--data", "d"], {"d": folder}, [alt("d")]),
        ("fashion-junk", ["--dataset", "fashion-mnist", "--data", "d"],
         {f"d/{n}": junk() for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                      "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}, [alt("d/", "idx")]),
        ("cifar-hostile", ["--dataset", "cifar10", "--data", "c"],
         {f"c/{n}": hostile_pickle() for n in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                               "data_batch_5", "test_batch", "batches.meta")},
         [alt("refusing", "not part of", "cifar")]),
        ("idx-missing", ["--dataset", "idx", "--data", "nodata"], {}, [alt("nodata")]),
        ("cifar100-hostile", ["--dataset", "cifar100", "--data", "c"],
         {f"c/{n}": hostile_pickle() for n in ("train", "test", "meta")}, [alt("refusing", "not part of", "cifar")]),
        ("cifar100-no-meta", ["--dataset", "cifar100", "--data", "c"], {"c/train": junk(), "c/test": junk()},
         [alt("meta")]),
    ]
    cases = [Case("dataset", f"data-{name}", name, [*train, *extra], expect, files=files)
             for name, extra, files, expect in rows]
    return cases + image_folder_cases(train)


def png(color, size=(10, 7)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def image_tree(splits=("train", "test"), classes=("cat", "dog"), root="imgs") -> dict[str, bytes]:
    """A valid image folder of two solid-colour images per class and split."""
    return {f"{root}/{split}/{name}/{i}.png": png((40 * k, 200 - 40 * k, 90 + i))
            for split in splits for k, name in enumerate(classes) for i in range(2)}


def image_folder_cases(train: list[str]) -> list[Case]:
    """``--dataset folder`` on folders a user could plausibly hand over: each must be refused
    with the folder or file at fault named, before any training, writing nothing."""
    noise = png((1, 2, 3), size=(40, 40))
    good, data = image_tree(), ["--dataset", "folder", "--data", "imgs", "--input", "8x8x3"]
    mismatched = {**image_tree(splits=("train",)), **image_tree(splits=("test",), classes=("cat", "emu"))}
    rows = [
        ("missing", data, {}, [alt("imgs")]),
        ("no-input", data[:-2], good, [alt("input"), alt("HxWxC")]),
        ("two-channels", [*data[:-1], "8x8x2"], good, [alt("8x8x2")]),
        ("no-test-split", data, image_tree(splits=("train",)), [alt("test/")]),
        ("empty-class", data, {**good, "imgs/train/fox": folder, "imgs/test/fox": folder}, [alt("fox")]),
        ("single-class", data, image_tree(classes=("cat",)), [alt("cat"), alt("2")]),
        ("class-mismatch", data, mismatched,
         [alt("dog"), alt("emu")]),
        ("text-file", data, {**good, "imgs/train/dog/notes.png": "not an image"}, [alt("notes.png")]),
        ("truncated-image", data, {**good, "imgs/test/cat/big.png": noise[: len(noise) // 3]}, [alt("big.png")]),
        ("stray-file", data, {**good, "imgs/train/loose.png": png((0, 0, 0))}, [alt("loose.png")]),
    ]
    cases = [Case("dataset", f"folder-{name}", f"--dataset folder: {name}", [*train, *argv], expect, files=files)
             for name, argv, files, expect in rows]
    search = ["search", "exp.yaml", "--no-progress"]
    configs = [("path", {"name": "folder", "input": "8x8x3"}, [alt("path")]),
               ("input", {"name": "folder", "path": "imgs"}, [alt("input")]),
               ("input-elsewhere", {"name": "synthetic", "input": "8x8x3"}, [alt("input"), alt("folder")])]
    for name, dataset, expect in configs:
        cases.append(Case("dataset", f"folder-config-{name}", f"dataset: {dataset}", search, expect,
                          files={"exp.yaml": yaml_text(experiment(dataset=dataset)), **good}))
    return cases


def calibrate_cases() -> list[Case]:
    good = "arch,ms\n" + "".join(f"mobilenet_v1_{w},{1 + i}\n" for i, w in enumerate(("0.25", "0.5", "0.75", "1.0")))
    cal = ["latency", "calibrate", "m.csv", "-o", "cal.json", "--space", "mobilenet_v1", "--input", "28x28x1",
           "--table", str(TABLE), "--k", "2"]
    rows = [
        ("missing", {}, [alt("m.csv")]),
        ("empty", {"m.csv": ""}, [alt("m.csv")]),
        ("binary", {"m.csv": junk()}, [alt("m.csv")]),
        ("folder", {"m.csv": folder}, [alt("m.csv")]),
        ("wrong-columns", {"m.csv": good.replace("arch,ms", "name,time")}, [alt("m.csv"), alt("arch", "ms")]),
        ("nan-ms", {"m.csv": good.replace(",2\n", ",nan\n")}, [alt("m.csv"), alt("nan")]),
        ("negative-ms", {"m.csv": good.replace(",2\n", ",-2\n")}, [alt("m.csv"), alt("-2")]),
        ("duplicated-arch", {"m.csv": good + "mobilenet_v1_0.25,9\n"},
         [alt("m.csv"), alt("duplicate", "twice", "more than once")]),
    ]
    cases = [Case("calibration_data", f"calibrate-{name}", name, cal, expect, files=files,
                  allowed=("cal.json",)) for name, files, expect in rows]
    cases.append(Case("numeric_cli", "calibrate-k-zero", "--k 0", [*cal[:-1], "0"], [alt("k"), alt("0")],
                      files={"m.csv": good}, allowed=("cal.json",)))
    return cases


# -- paths the tool writes ----------------------------------------------------------------


def path_cases(mounts: dict[str, str | None]) -> list[Case]:
    exp = yaml_text(experiment())
    search = ["search", "exp.yaml", "--no-progress"]
    long = "x" * 300
    cases = []

    def name_case(label: str, name_yaml: str, expect):
        cases.append(Case("output_path", f"name-{label}", f"name: {name_yaml}", search, expect,
                          files={"exp.yaml": exp.replace("name: t", f"name: {name_yaml}", 1)}, allowed=("runs/t",)))

    name_case("dotdot", "'..'", [alt("name"), alt("..")])
    name_case("dotdot-x", "'../x'", [alt("name"), alt("../x")])
    name_case("slash", "'a/b'", [alt("name"), alt("a/b")])
    name_case("absolute", "'/tmp/nas-bad-inputs-absolute'", [alt("name"), alt("/tmp/nas-bad-inputs-absolute")])
    name_case("nul", '"a\\0b"', [alt("name"), alt("\\x00", "\\0", "nul")])
    name_case("long", long, [alt("name"), alt("300", "long")])
    name_case("empty", "''", [alt("name")])
    name_case("dot", "'.'", [alt("name"), alt("'.'")])
    name_case("hidden", "'.hidden'", [alt("name"), alt(".hidden")])
    name_case("number", "12", [alt("name"), alt("12")])
    for label, study in (("dotdot", "../x"), ("long", long), ("slash", "a/b")):
        cases.append(Case("output_path", f"study-{label}", f"--study {study[:20]}", [*search, "--study", study],
                          [alt("study"), alt(study[:20], str(len(study)))], files={"exp.yaml": exp},
                          allowed=("runs/t",)))
    writers = {
        "search": (search + ["--output", "{out}"], {"exp.yaml": exp}),
        "import": (["latency", "import", "in.yaml", "--format", "proxylessnas", "-o", "{out}/t.csv"],
                   {"in.yaml": "Conv-input:224x224x3-output:112x112x32:\n  count: 9\n  mean: 4.0\n  var: 0.2\n"
                               "Logits-input:7x7x1280-output:1000:\n  count: 9\n  mean: 0.3\n  var: 0.05\n"}),
        "report": (["report", "run", "-o", "{out}"], {"run": copy_template_run}),
        "export": (["export", "run", "--trial", "0", "--weights", "w.pt", "-o", "{out}"],
                   {"run": copy_template_run, "w.pt": copy_template_weights}),
        "bundle": (["latency", "bundle", "--arch", "mobilenet_v1_0.25", "-o", "{out}/b.zip"], {}),
        "profile": (["latency", "profile", "--arch", "mobilenet_v1_0.25", "--limit", "1", "-o", "{out}/p.csv"], {}),
        "train-save": (["train", "mobilenet_v1_0.25", "--dataset", "synthetic", "--fraction", "0.05",
                        "--save", "{out}"], {}),
    }
    for writer, (argv, files) in writers.items():
        under_file = [a.replace("{out}", "file.txt/sub") for a in argv]
        cases.append(Case("output_path", f"{writer}-under-file", "output under an existing file", under_file,
                          [alt("file.txt")], files={**files, "file.txt": "keep me"}))
        for kind in ("readonly", "full"):
            target = mounts.get(kind)
            argv_k = [a.replace("{out}", f"{target}/{writer}") for a in argv] if target else argv
            cases.append(Case("output_path", f"{writer}-{kind}",
                              "read-only folder" if kind == "readonly" else "full disk", argv_k,
                              [alt(str(target) if target else "-"),
                               alt("read-only", "no space", "not writable", "permission")], files=dict(files),
                              skip=None if target else f"cannot mount a {kind} tmpfs (needs root)"))
    cases.append(Case("output_path", "export-long-name", "-o with a 300-character folder name",
                      ["export", "run", "--trial", "0", "--weights", "w.pt", "-o", long],
                      [alt("long", "300", long[:20])],
                      files={"run": copy_template_run, "w.pt": copy_template_weights}, allowed=(long,)))
    cases.append(Case("output_path", "import-long-name", "-o with a 300-character file name",
                      ["latency", "import", "in.yaml", "--format", "proxylessnas", "-o", long + ".csv"],
                      [alt("long", "300", long[:20])], files={"in.yaml": writers["import"][1]["in.yaml"]}))
    return cases


# -- interrupted work and failing trials ----------------------------------------------------


def interrupted_cases(template: Path) -> list[Case]:
    exp = yaml_text(experiment())
    rows = [
        ("run-without-study", ["pareto", "run"], {"run": folder, "run/config.yaml": exp}, [alt("run")]),
        ("export-from-run-without-study", ["export", "run", "--trial", "0", "-o", "out"],
         {"run": folder, "run/config.yaml": exp}, [alt("run")]),
        ("half-written-table", ["latency", "predict", "mobilenet_v1_0.25", "--table", "t.csv"],
         {"t.csv": table_text()[:-40], "t.json": TABLE.with_suffix(".json").read_text()},
         [alt("t.csv"), alt("line", "row")]),
        ("export-without-card", ["x"], {"x/model.onnx": b"", "x/sample.npz": (template / "sample.npz").read_bytes()},
         [alt("card.json")]),
        ("export-over-half-export", ["export", "run", "--trial", "0", "--weights", "w.pt", "-o", "out"],
         {"run": copy_template_run, "w.pt": copy_template_weights, "out/model.onnx": b"half"},
         [alt("out"), alt("--overwrite")]),
    ]
    cases = []
    for name, argv, files, expect in rows:
        module = "nas.export.check" if argv == ["x"] else "nas.cli"
        cases.append(Case("interrupted", f"interrupted-{name}", name, argv, expect, files=files, module=module,
                          allowed=("out/model.onnx",)))
    return cases


def trial_failure_cases() -> list[Case]:
    diverge = experiment(evaluator={"kind": "train", "options": {"epochs": 1, "fraction": 0.05, "lr": 1e6}}, trials=1)
    missing_data = experiment(dataset={"name": "fashion-mnist", "path": "nodata"},
                              evaluator={"kind": "train", "options": {"epochs": 1, "fraction": 0.05}}, trials=1)
    return [
        Case("trial_failure", "trial-diverges", "a trial whose training diverges (lr 1e6)",
             ["search", "exp.yaml", "--no-progress"], [alt("diverged", "nan", "failed")],
             files={"exp.yaml": yaml_text(diverge)}, allowed=("runs/t",), outcome="handled", timeout=60),
        Case("trial_failure", "trial-data-missing", "a trial whose dataset folder does not exist",
             ["search", "exp.yaml", "--no-progress"], [alt("nodata")],
             files={"exp.yaml": yaml_text(missing_data)}, allowed=("runs/t",), outcome="handled"),
    ]


# -- the six bugs of issue 20 ------------------------------------------------------------


def distinct_after_resumes(scratch: Path, results) -> tuple[str, str] | None:
    if any(code != 0 for code, _ in results):
        return None  # judged as an error by the usual rules
    with contextlib.closing(sqlite3.connect(scratch / "runs" / "t" / "study.db")) as con:
        rows = con.execute("select t.trial_id, a.value_json from trials t join trial_user_attributes a "
                           "on a.trial_id = t.trial_id where t.state = 'COMPLETE' and a.key = 'arch_id'").fetchall()
    ids = [json.loads(v) for _, v in rows]
    if len(ids) != 9 or len(set(ids)) != 9:
        return "silently_accepted", f"{len(ids)} completed trials hold {len(set(ids))} distinct architectures"
    return "clear_error", "9 completed trials, 9 distinct architectures"


def same_study_everywhere(scratch: Path, results) -> tuple[str, str] | None:
    bad = [(code, out) for code, out in results if code != 0]
    if bad:
        code, out = bad[0]
        return ("traceback" if TRACEBACK.search(out) else "unclear_error"), \
            f"{len(bad)} of {len(results)} workers failed: {first_line(out)}"
    race_db = scratch / "race.db"
    if race_db.exists():  # the SQLite case: the shared file must be whole and hold the budget
        with contextlib.closing(sqlite3.connect(race_db)) as con:
            if con.execute("pragma integrity_check").fetchone()[0] != "ok":
                return "silently_accepted", "the shared SQLite file is corrupt"
            rows = con.execute("select a.value_json from trials t join trial_user_attributes a on a.trial_id = "
                               "t.trial_id where t.state = 'COMPLETE' and a.key = 'arch_id'").fetchall()
        ids = [json.loads(v) for (v,) in rows]
        if len(ids) < 3 or len(set(ids)) != len(ids):
            return "silently_accepted", f"{len(ids)} completed trials hold {len(set(ids))} distinct architectures"
    return "clear_error", "all simultaneous workers joined one study"


def issue_cases(postgres: str | None) -> list[Case]:
    exp = yaml_text(experiment())
    search = ["search", "exp.yaml", "--no-progress"]
    cases = [
        Case("issue20", "bug1-resume-duplicates", "nas search 3 -> 6 -> 9 trials: distinct architectures", search,
             files={"exp.yaml": exp}, allowed=("runs/t",), outcome="handled",
             commands=[[*search, "--n-trials", str(n)] for n in (3, 6, 9)], check=distinct_after_resumes),
        Case("issue20", "bug2-study-other-evaluator", "the same run folder with another evaluator", search,
             [alt("evaluator"), alt("--force-new")], allowed=("runs/t",),
             files={"exp.yaml": yaml_text(experiment(evaluator={"kind": "proxy", "options": {
                 "proxies": ["synflow"], "objective": "synflow"}})), "runs/t": copy_template_run}),
        Case("issue20", "bug2-study-other-space", "the same run folder with another space and table", search,
             [alt("space"), alt("--force-new")], allowed=("runs/t",),
             files={"exp.yaml": yaml_text(experiment(space={"name": "mobilenet_v2"}, latency={"table": str(V2_TABLE)})),
                    "runs/t": copy_template_run}),
        Case("issue20", "bug3-name-dotdot", "name: '..' (overwrote ./config.yaml)", search, [alt("name"), alt("..")],
             files={"exp.yaml": exp.replace("name: t", "name: '..'", 1), "config.yaml": "mine: keep\n"},
             allowed=("runs/t",)),
        Case("issue20", "bug4-nan-max-latency", "objective.max_latency_ms: .nan", search,
             [alt("max_latency_ms"), alt("nan")], allowed=("runs/t",),
             files={"exp.yaml": yaml_text(experiment(), {"objective.max_latency_ms": ".nan"})}),
        Case("issue20", "bug4-inf-target", "objective.target_ms: .inf (mnas)", search, [alt("target_ms"), alt("inf")],
             allowed=("runs/t",), files={"exp.yaml": yaml_text(experiment(objective={"kind": "mnas"}, sampler="tpe"),
                                                               {"objective.target_ms": ".inf"})}),
        Case("issue20", "bug4-nan-val-fraction", "dataset.val_fraction: .nan", search,
             [alt("val_fraction"), alt("nan")], allowed=("runs/t",),
             files={"exp.yaml": yaml_text(experiment(), {"dataset.val_fraction": ".nan"})}),
        Case("issue20", "bug6-pareto-index-minus-one", "nas export RUN --pareto-index -1",
             ["export", "run", "--pareto-index", "-1", "-o", "out"], [alt("-1"), alt("0..", "range")],
             files={"run": copy_template_run}, allowed=("out",)),
        Case("issue20", "bug6-pareto-index-past-end", "nas export RUN --pareto-index 99",
             ["export", "run", "--pareto-index", "99", "-o", "out"], [alt("99"), alt("0..", "range")],
             files={"run": copy_template_run}, allowed=("out",)),
        Case("issue20", "bug6-unknown-trial", "nas export RUN --trial 99",
             ["export", "run", "--trial", "99", "-o", "out"], [alt("99"), alt("0..", "trials")],
             files={"run": copy_template_run}, allowed=("out",)),
        Case("issue20", "bug6-negative-trial", "nas export RUN --trial -1",
             ["export", "run", "--trial", "-1", "-o", "out"], [alt("-1"), alt("0..", "trials")],
             files={"run": copy_template_run}, allowed=("out",)),
    ]
    def workers(url: str) -> list[list[str]]:
        return [[*search, "--storage", url, "--worker", str(i), "--n-trials", "3"] for i in range(4)]

    # a new database: the workers race to create Optuna's tables and the study
    cases.append(Case("issue20", "bug5-sqlite-simultaneous-workers", "4 workers start at once on a new SQLite file",
                      search, files={"exp.yaml": exp}, allowed=("runs/t", "race.db", "race.db-journal",
                                                                 "race.db-wal", "race.db-shm", "race.db.lock"),
                      outcome="handled", commands=workers("sqlite:///race.db"), parallel=True,
                      check=same_study_everywhere))
    cases.append(Case("issue20", "bug5-postgres-simultaneous-workers",
                      "4 workers start at once on a new PostgreSQL schema", search, files={"exp.yaml": exp},
                      allowed=("runs/t",), outcome="handled", commands=workers(postgres or ""), parallel=True,
                      check=same_study_everywhere,
                      skip=None if postgres else "NAS_TEST_POSTGRES_URL is not set (no PostgreSQL server)"))
    return cases


@contextlib.contextmanager
def fresh_postgres_schema(url: str | None):
    """``url`` pointed at a new, empty schema (dropped afterwards), so that the workers create
    Optuna's tables at the same moment, as on a new database; None without a server."""
    if not url:
        yield None
        return
    import uuid

    import sqlalchemy

    schema = f"bad_inputs_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


# --------------------------------------------------------------------------------------
# the template: one real tiny search run, weights and samples, made once


def copy_template_run(path: Path) -> None:
    shutil.copytree(TEMPLATE / "runs" / "t", path)


def copy_template_weights(path: Path) -> None:
    shutil.copyfile(TEMPLATE / "run-weights.pt", path)


TEMPLATE = Path()

_TEMPLATE_SCRIPT = r"""
import json, sys
import numpy as np, torch
from pathlib import Path
from nas.space import get_reference
from nas.spec import ArchSpec
from nas.train import build_network
out = Path(sys.argv[1])
ref = get_reference("mobilenet_v1_0.25", (28, 28, 1), 10)
torch.save(build_network(ref).state_dict(), out / "weights.pt")
torch.save(build_network(get_reference("mobilenet_v1_0.5", (28, 28, 1), 10)).state_dict(), out / "other.pt")
torch.save(torch.zeros(3), out / "tensor.pt")
class Hostile:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('code ran')",))
torch.save({"conv.weight": Hostile()}, out / "hostile.pt")
import sqlite3
con = sqlite3.connect(out / "runs" / "t" / "study.db")
spec = con.execute("select value_json from trial_user_attributes a join trials t on a.trial_id = t.trial_id "
                   "where t.number = 0 and a.key = 'spec'").fetchone()[0]
torch.save(build_network(ArchSpec.from_json(json.loads(spec))).state_dict(), out / "run-weights.pt")
np.savez(out / "sample.npz", input=np.zeros((2, 1, 28, 28), np.float32), logits=np.zeros((2, 10), np.float32),
         labels=np.zeros(2, np.int64))
np.savez(out / "pickled.npz", input=np.array([{"a": 1}], dtype=object), logits=np.zeros((2, 10), np.float32),
         labels=np.zeros(2, np.int64))
print(json.dumps({"spec": spec[:80]}))
"""


def make_template(folder: Path, env: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "exp.yaml").write_text(yaml_text(experiment()))
    result = subprocess.run([sys.executable, "-m", "nas.cli", "search", "exp.yaml", "--no-progress"], cwd=folder,
                            env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"the template search failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    result = subprocess.run([sys.executable, "-c", _TEMPLATE_SCRIPT, str(folder)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"making the template files failed:\n{result.stdout}\n{result.stderr}")


def good_spec_json(env: dict, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "nas.cli", "arch", "sample", "mobilenet_v1", "--seed", "1"],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"nas arch sample failed:\n{result.stderr}")
    return result.stdout


# --------------------------------------------------------------------------------------
# running and judging


def snapshot(folder: Path) -> dict[str, tuple]:
    state = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        try:
            if path.is_symlink() or not path.is_file():
                state[rel] = ("dir",) if path.is_dir() else ("other",)
            else:
                state[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            state[rel] = ("unreadable",)
    return state


def outside(before: dict, after: dict, allowed: tuple[str, ...]) -> list[str]:
    changed = [p for p in set(before) | set(after) if before.get(p) != after.get(p)]

    def permitted(rel: str) -> bool:
        return any(rel == a or rel.startswith(a.rstrip("/") + "/") or a.startswith(rel + "/") for a in allowed)

    return sorted(p for p in changed if not permitted(p))


def write_files(scratch: Path, files: dict) -> None:
    for rel, content in files.items():
        path = scratch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error") or "Error" in line]
    return (errors[-1] if errors else lines[-1] if lines else "")[:300]


def run_command(argv: list[str], module: str, scratch: Path, env: dict, timeout: int) -> tuple[int, str]:
    """``python -m MODULE ARGV`` in ``scratch``: through this thread's warm launcher (a fork of
    an interpreter that has already imported the package) or as a fresh process."""
    launcher = getattr(_LOCAL, "launcher", None)
    if launcher is not None:
        return launcher.run(argv, module, scratch, env, timeout)
    try:
        result = subprocess.run([sys.executable, "-m", module, *argv], cwd=scratch, env=env, capture_output=True,
                                text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return -signal.SIGKILL, out + f"\n[timed out after {timeout} s]"
    return result.returncode, result.stdout + result.stderr


# A process that imports the package and its heavy dependencies once, then forks one child per
# command: the child changes into the scratch folder, takes the case's environment, sends its
# output to a file and runs the module exactly as `python -m` would (runpy, run_name
# "__main__"), with the interpreter's own handling of an uncaught exception (a traceback on
# stderr, exit 1). This saves the 4-8 s of imports per command that would otherwise make the
# benchmark take a quarter of an hour on two cores.
_WARM_LAUNCHER = r"""
import importlib, json, os, runpy, signal, sys, time, traceback
for name in ("torch", "onnx", "onnxruntime", "optuna", "pandas", "matplotlib.pyplot", "nas.cli", "nas.export.pipeline",
             "nas.report", "nas.search.runner", "nas.latency", "nas.train", "nas.evaluate", "nas.data",
             "nas.export.check", "nas.latency.calibrate", "nas.latency.importers", "nas.latency.profile"):
    try:
        importlib.import_module(name)
    except Exception:
        pass
try:
    import nas.cli
    nas.cli.build_parser()
except Exception:
    pass
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0); os.dup2(fd, 1); os.dup2(fd, 2)
            os.chdir(request["cwd"])
            os.environ.clear(); os.environ.update(request["env"])
            sys.argv = [request["module"], *request["argv"]]
            code = 0
            try:
                runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, (int, type(None))):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
                code = 1
            try:
                sys.stdout.flush(); sys.stderr.flush()
            except Exception:
                pass
        finally:
            os._exit(locals().get("code", 1))
    deadline = time.monotonic() + request["timeout"]
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": -9, "timed_out": True}), flush=True)
        continue
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"code": code, "timed_out": False}), flush=True)
"""


PARALLEL_START_S = 30  # time for every worker to import the package before they start together
_AT_THE_SAME_TIME = r"""
import os, runpy, sys, time
import nas.cli
try:
    import nas.search.runner, nas.report
except Exception:
    pass
time.sleep(max(0.0, float(os.environ.pop("NAS_BENCH_START_AT")) - time.time()))
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


class WarmLauncher:
    def __init__(self, env: dict, folder: Path):
        self.folder = folder
        self.count = 0
        self.proc = subprocess.Popen([sys.executable, "-c", _WARM_LAUNCHER], cwd=folder, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the warm launcher did not start")

    def run(self, argv, module, scratch, env, timeout) -> tuple[int, str]:
        self.count += 1
        output = self.folder / f"output-{os.getpid()}-{id(self)}-{self.count}.txt"
        request = {"argv": argv, "module": module, "cwd": str(scratch), "env": env, "timeout": timeout,
                   "output": str(output)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        text = output.read_text(errors="replace")
        output.unlink()
        if reply["timed_out"]:
            text += f"\n[timed out after {timeout} s]"
        return reply["code"], text

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


_LOCAL = threading.local()


def judge(case: Case, code: int, output: str) -> tuple[str, str]:
    if TRACEBACK.search(output) or code < 0:
        return "traceback", first_line(output)
    lowered = output.lower()
    named = all(any(a.lower() in lowered for a in group) for group in case.expect)
    if code == 0:
        if case.outcome == "handled" and named:
            return "clear_error", first_line(output)
        return "silently_accepted", first_line(output)
    return ("clear_error" if named else "unclear_error"), first_line(output)


def run_case(case: Case, base: Path, env: dict) -> dict:
    scratch = base / case.name
    scratch.mkdir(parents=True)
    write_files(scratch, case.files)
    env = {**env, **case.env}
    before = snapshot(scratch)
    started = time.perf_counter()
    commands = case.commands or [case.argv]
    if case.parallel:
        # each worker imports the package first, then all start the command at the same instant
        start = {**env, "NAS_BENCH_START_AT": str(time.time() + PARALLEL_START_S)}
        procs = [subprocess.Popen([sys.executable, "-c", _AT_THE_SAME_TIME, case.module, *argv], cwd=scratch,
                                  env=start, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  errors="replace")
                 for argv in commands]
        results = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=case.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            results.append((proc.returncode, out))
    else:
        results = []
        for argv in commands:
            results.append(run_command(argv, case.module, scratch, env, case.timeout))
            if results[-1][0] != 0:
                break
    code, output = results[-1]
    verdict, message = judge(case, code, output)
    if case.check is not None and verdict not in ("traceback",):
        decided = case.check(scratch, results)
        if decided is not None:
            verdict, message = decided
    changed = outside(before, snapshot(scratch), case.allowed)
    if changed:
        verdict, message = "files_changed_outside_run", f"changed outside the run folder: {changed[:5]}; {message}"
    return {"class": case.cls, "case": case.name, "input": case.input,
            "command": " ".join(["python -m", case.module, *commands[-1]])[:400], "exit_code": code,
            "message": message, "verdict": verdict, "seconds": round(time.perf_counter() - started, 1)}


@contextlib.contextmanager
def special_mounts(base: Path):
    """A read-only and a full (16 KiB, already filled) tmpfs, when we may mount (root)."""
    mounts: dict[str, str | None] = {"readonly": None, "full": None}
    mounted = []
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        for kind, options in (("readonly", "ro,size=64k"), ("full", "size=16k")):
            target = base / f"mnt-{kind}"
            target.mkdir(parents=True)
            if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                              capture_output=True).returncode == 0:
                mounted.append(target)
                mounts[kind] = str(target)
                if kind == "full":
                    with contextlib.suppress(OSError), open(target / "filler", "wb") as handle:
                        while True:
                            handle.write(b"\0" * 4096)
                            handle.flush()
    try:
        yield mounts
    finally:
        for target in mounted:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def all_cases(template: Path, good_spec: str, mounts: dict, postgres: str | None) -> list[Case]:
    cases = (issue_cases(postgres) + numeric_config_cases() + numeric_cli_cases() + config_file_cases()
             + latency_table_cases(good_spec) + spec_cases(good_spec) + checkpoint_cases(template) + import_cases()
             + cache_cases(template) + card_cases(template) + run_folder_cases() + dataset_cases()
             + calibrate_cases() + path_cases(mounts) + interrupted_cases(template) + trial_failure_cases())
    names = Counter(case.name for case in cases)
    duplicated = [name for name, n in names.items() if n > 1]
    if duplicated:
        raise SystemExit(f"duplicated case names: {duplicated}")
    return cases


def summarise(rows: list[dict], skipped: list[dict], package: str, seconds: float) -> dict:
    verdicts = ("clear_error", "traceback", "silently_accepted", "unclear_error", "files_changed_outside_run")
    counts = Counter(row["verdict"] for row in rows)
    by_class: dict[str, dict] = {}
    for row in rows:
        entry = by_class.setdefault(row["class"], {"cases": 0, **{v: 0 for v in verdicts}})
        entry["cases"] += 1
        entry[row["verdict"]] += 1
    return {"cases": len(rows), **{v: counts.get(v, 0) for v in verdicts}, "by_class": by_class,
            "skipped": [{"case": s["case"], "reason": s["reason"]} for s in skipped],
            "failures": sorted(f"{row['verdict']}: {row['case']}" for row in rows if row["verdict"] != "clear_error"),
            "package": package, "seconds": round(seconds, 1)}


def write_tables(out: Path, rows: list[dict]) -> None:
    columns = ["class", "case", "input", "command", "exit_code", "message", "verdict", "seconds"]
    with open(out / "bad_inputs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [str(row[c]).replace("|", "\\|").replace("\n", " ") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "bad_inputs.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for the per-case table and the scratch folders (default: a new temp one)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at the same time (default 2)")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    parser.add_argument("--launcher", choices=("warm", "exec"), default="warm",
                        help="warm: fork each command from an interpreter that has imported the package (fast); "
                             "exec: a fresh `python -m` process per command (4-8 s more each)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nas-bad-inputs-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cases-", dir=out))
    env = {k: v for k, v in os.environ.items() if k not in ("NAS_DEBUG",)}
    env.update({"MPLCONFIGDIR": str(work / "mpl"), "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"})
    package = subprocess.run([sys.executable, "-c", "import nas, os; print(os.path.dirname(nas.__file__))"],
                             env=env, capture_output=True, text=True, cwd=work).stdout.strip()
    global TABLE, V2_TABLE  # the tables of the checkout under test (another one's, with PYTHONPATH)
    tables = Path(package).parent / "latency_tables"
    if (tables / TABLE.name).is_file() and (tables / V2_TABLE.name).is_file():
        TABLE, V2_TABLE = tables / TABLE.name, tables / V2_TABLE.name
    global TEMPLATE
    TEMPLATE = work / "template"
    make_template(TEMPLATE, env)
    good_spec = good_spec_json(env, work)
    with special_mounts(work) as mounts, fresh_postgres_schema(os.environ.get("NAS_TEST_POSTGRES_URL")) as postgres:
        cases = all_cases(TEMPLATE, good_spec, mounts, postgres)
        if args.only:
            cases = [c for c in cases if args.only in c.name]
        skipped = [{"case": c.name, "reason": c.skip} for c in cases if c.skip]
        runnable = [c for c in cases if not c.skip]
        rows = []
        launchers: list[WarmLauncher] = []

        def start_launcher() -> None:
            if args.launcher == "warm":
                _LOCAL.launcher = WarmLauncher(env, work)
                launchers.append(_LOCAL.launcher)

        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs), initializer=start_launcher) as pool:
            futures = {pool.submit(run_case, case, work / "scratch", env): case for case in runnable}
            for future in concurrent.futures.as_completed(futures):
                row = future.result()
                rows.append(row)
                print(f"{row['verdict']:26s} {row['seconds']:6.1f}s  {row['case']}: {row['message'][:150]}",
                      flush=True)
        for launcher in launchers:
            launcher.close()
    order = {case.name: i for i, case in enumerate(cases)}
    rows.sort(key=lambda row: order[row["case"]])
    write_tables(out, rows)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(rows, skipped, package, time.perf_counter() - started)
    print(f"per-case table: {out / 'bad_inputs.csv'} and {out / 'bad_inputs.md'}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
