"""The configuration reference (docs/configuration.md), generated from the config dataclasses
so that every key's type, default and allowed range are the code's own; a test checks that the
page is up to date. Regenerate it with ``python -m nas.config_reference > docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from nas import config as c

# One line per key: what it does. The test fails when a key has none, or a line has no key.
HELP = {
    "name": "the experiment's name: the run folder is runs/NAME and the study is NAME",
    "description": "free text, shown in the report",
    "space": "section: the search space",
    "latency": "section: how networks are priced",
    "dataset": "section: the data candidates are trained and scored on",
    "evaluator": "section: how a candidate is scored",
    "objective": "section: what the search optimises",
    "sampler": "section: how candidates are proposed",
    "space.name": "search space (`nas spaces` lists them)",
    "space.options": "keyword options of the space (see its module in search_spaces/)",
    "latency.table": "a shipped table's name (`nas latency tables`) or the path of a table CSV or model JSON",
    "latency.missing": "ops the table lacks: error, nearest entry, interpolate, or estimate from the table's "
                       "own entries (flagged in the output)",
    "latency.input": "deployment shape HxWxC the networks are rebuilt at and priced (default: the training input)",
    "dataset.name": "fashion-mnist, mnist, idx, cifar10, cifar100, cifar100-coarse (its 20 superclasses), "
                    "folder (your own images) or synthetic",
    "dataset.path": "folder holding the data files (default: the system's, or NAS_DATA); for folder: the "
                    "folder holding train/CLASS/*, test/CLASS/* and optionally val/CLASS/*",
    "dataset.val_fraction": "share of the training split held out to score candidates (ignored when a folder "
                            "has its own val/)",
    "dataset.input": "folder: HxWxC the images are resized and converted to (C 1 grey, 3 RGB), e.g. 64x64x3",
    "dataset.augment": "random crop after 4 pixels of zero padding and horizontal flip while training; default "
                       "on for cifar10, cifar100, cifar100-coarse and folder, off for the others (train options "
                       "crop_padding and flip, when given instead, set it)",
    "dataset.cache": "folder: where the decoded images are kept (default: RUN/data_cache)",
    "evaluator.kind": "train (short training), proxy (zero-cost proxies) or tiny (for tests)",
    "evaluator.options": "the evaluator's options (below for train)",
    "evaluator.schedule": "train only: successive halving, candidates judged at each rung and only the best share "
                          "trained on (docs/search.md); null: every candidate gets the full budget",
    "evaluator.schedule.rungs": "strictly increasing budgets where candidates are judged: whole epochs, or shares "
                                "of the training split (at most 1) with unit fraction",
    "evaluator.schedule.keep": "share of the trials that reached a rung that train on to the next",
    "evaluator.schedule.unit": "epochs (rungs replace the epochs option) or fraction (one pass over each rung's "
                               "new share of the data; rungs replace the fraction option)",
    "objective.kind": "pareto (accuracy vs latency), mnas (MnasNet reward) or netadapt (shrink a network)",
    "objective.max_latency_ms": "pareto: networks predicted slower are never trained",
    "objective.target_ms": "mnas: the latency target T",
    "objective.mode": "mnas: soft (alpha = beta = -0.07) or hard (alpha = 0, beta = -1)",
    "objective.alpha": "mnas: reward exponent when latency <= T (overrides mode)",
    "objective.beta": "mnas: reward exponent when latency > T (overrides mode)",
    "objective.extra": "pareto: further objectives to minimise (macs, params)",
    "objective.max_macs": "networks with more multiply-accumulates are never trained",
    "objective.max_params": "networks with more parameters are never trained",
    "objective.netadapt": "netadapt: the section below",
    "objective.netadapt.start": "the network to shrink: a reference name or spec file, a member of the space",
    "objective.netadapt.budget_ms": "stop once the network is predicted at most this fast",
    "objective.netadapt.initial_reduction": "first iteration's latency cut, as a share of the start latency",
    "objective.netadapt.decay": "each iteration's cut is the previous one's times this",
    "objective.netadapt.max_iterations": "at most this many iterations",
    "sampler.kind": "nsga2, nsga3, tpe, random, or auto (nsga2 for pareto, tpe otherwise)",
    "sampler.population_size": "NSGA-II/III population",
    "sampler.n_startup_trials": "TPE: random trials before the model",
    "sampler.candidates": "NSGA-II: children proposed per trial, of which a surrogate keeps the most promising "
                          "(1: plain NSGA-II; default 4)",
    "trials": "completed trials to reach (distinct architectures; all workers together)",
    "timeout_s": "stop starting trials after this many seconds",
    "seed": "the sampler's seed (worker k adds 1000 k) and the evaluator's",
    "storage": "Optuna storage URL (default: sqlite:///RUN/study.db); postgresql://... for many workers",
    "study": "study name (default: the experiment's name)",
    "output": "run folder (default: runs/NAME)",
    "baselines": "reference networks or spec files trained and priced the same way, for comparison",
    "heartbeat_interval_s": "a running trial records a heartbeat this often",
    "grace_period_s": "a trial silent this long is a dead worker's: failed and retried",
}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        return _type_name(args[0]) + " or null" if len(args) == 1 else " or ".join(map(_type_name, args))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "mapping"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(tp, str(tp))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return "null" if f.default is None else f"`{f.default!r}`" if f.default != "" else '`""`'
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return f"`{value!r}`" if not dataclasses.is_dataclass(value) else "(section)"
    return "**required**"


def config_keys(cls=c.ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, allowed range) of every key, sections depth first."""
    rows, sections = [], []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        allowed = f.metadata.get("range")
        rows.append((prefix + f.name, _type_name(tp), _default(f), str(allowed) if allowed else ""))
        inner = [a for a in (typing.get_args(tp) or (tp,)) if dataclasses.is_dataclass(a)]
        if inner:
            sections.append((inner[0], prefix + f.name + "."))
    for section, section_prefix in sections:
        rows += config_keys(section, section_prefix)
    return rows


def train_options() -> list[tuple[str, str, str]]:
    """(option, type, default) of ``evaluator: {kind: train, options: ...}``."""
    from nas.train import Budget

    hints = typing.get_type_hints(Budget)
    return [(f.name, _type_name(hints[f.name]), _default(f)) for f in dataclasses.fields(Budget)]


def reference_markdown() -> str:
    lines = ["# Configuration reference", "",
             "Every key of an experiment config (YAML, or `nas.config.parse_config` from Python), generated "
             "from the code by `python -m nas.config_reference` (a test checks this page is current). "
             "Numbers must be finite and inside the allowed range (`(` excludes the end, `[` includes it); "
             "an unknown key, a wrong type or a value out of range is an error naming the key, the value "
             "and what was expected, before any work starts. `space: hybrid` is short for "
             "`space: {name: hybrid}`, and likewise for dataset, evaluator, objective, sampler and latency.",
             "", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for key, type_name, default, allowed in config_keys():
        lines.append(f"| `{key}` | {type_name} | {default} | {allowed} | {HELP[key]} |")
    lines += ["", "## Options of the `train` evaluator", "",
              "`evaluator: {kind: train, options: {...}}`; each is checked (finite, in range) when the "
              "evaluator is made, before any training (nas/train.py `Budget`). `seed` defaults to the "
              "experiment's.", "", "| option | type | default |", "|---|---|---|"]
    for name, type_name, default in train_options():
        lines.append(f"| `{name}` | {type_name} | {default} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
