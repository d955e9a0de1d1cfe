"""What defines a study's scores, stored with the study: a run resumed or joined with another
evaluator, dataset, space, input shape, latency model or objective would mix scores that cannot
be compared, so it is refused with the keys that differ.

The identity is a flat mapping of dotted keys to JSON values. The latency model enters by what
it predicts (its fingerprint: predictions for fixed members of the space), so a table moved to
another path is the same table, and a table re-measured in place is not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from nas.config import ExperimentConfig
from nas.latency.deployment import price
from nas.space import SearchSpace

STUDY_ATTR = "setup"
FINGERPRINT_MEMBERS = 16  # members of the space priced for the latency fingerprint
# The objective's keys that change what a trial's values mean (the MnasNet reward's target and
# exponents, the objectives themselves). Limits (max_latency_ms, max_macs, max_params) only
# decide which networks are trained, and each trial records its own feasibility and
# constraint values, so a resumed run may tighten or relax them; NetAdapt's schedule likewise.
SCORE_DEFINING_OBJECTIVE_KEYS = ("kind", "extra", "target_ms", "mode", "alpha", "beta")


def latency_fingerprint(latency_model, space: SearchSpace) -> str:
    """A short hash of the model's predictions for fixed members of the space (6 significant
    digits: reading the same table twice gives the same string)."""
    predictions = [f"{price(latency_model, space.sample(seed)):.6g}"
                   for seed in range(FINGERPRINT_MEMBERS)]
    return hashlib.sha256(",".join(predictions).encode()).hexdigest()[:16]


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(f"{prefix}.{key}", value[key], out)
    else:
        out[prefix] = value


def study_identity(config: ExperimentConfig, space: SearchSpace, evaluator, latency_model) -> dict[str, Any]:
    """The keys that define what a trial's values mean. Not in it: the trial budget, time
    limit, sampler, seed and the objective's limits (they change how the search proceeds, not
    what a score means); the evaluator's seed enters through its budget key, as in its result
    cache."""
    identity: dict[str, Any] = {
        "space.input_shape": "x".join(map(str, space.input_shape)),
        "space.classes": space.classes,
        "evaluator": getattr(evaluator, "budget_key", type(evaluator).__name__),
        "latency.table": config.latency.table,
        "latency.missing": config.latency.missing,
        "latency.input": config.latency.input,  # the deployment shape networks are priced at
        "latency.fingerprint": latency_fingerprint(latency_model, space),
    }
    _flatten("space", dataclasses.asdict(config.space), identity)
    objective = dataclasses.asdict(config.objective)
    _flatten("objective", {key: objective[key] for key in SCORE_DEFINING_OBJECTIVE_KEYS}, identity)
    return json.loads(json.dumps(identity))  # as stored: tuples become lists


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, stored value, current value) for each key that differs. A key only one side has
    differs too, except ``latency.table``: the latency model is judged by its fingerprint, so a
    table reached by another path or name is the same table."""
    keys = sorted(set(stored) | set(current))
    out = []
    for key in keys:
        if key == "latency.table" and stored.get("latency.fingerprint") == current.get("latency.fingerprint"):
            continue
        old, new = stored.get(key, "(absent)"), current.get(key, "(absent)")
        if old != new:
            out.append((key, old, new))
    return out


def stored_differences(user_attrs: dict[str, Any], identity: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """How ``identity`` differs from the one stored in a study's user attributes. A study
    stored before identities were is compared on what its stored config says (space and
    objective keys that both sides have)."""
    stored = user_attrs.get(STUDY_ATTR)
    if stored is not None:
        return differences(stored, identity)
    config = user_attrs.get("config") or {}
    legacy: dict[str, Any] = {}
    for section in ("space", "objective"):
        if isinstance(config.get(section), dict):
            _flatten(section, config[section], legacy)
    common = set(legacy) & set(identity)
    return differences({k: legacy[k] for k in common}, {k: identity[k] for k in common})


def describe_differences(diffs: list[tuple[str, Any, Any]]) -> str:
    return "\n".join(f"  {key}: {old!r} -> {new!r}" for key, old, new in diffs)
