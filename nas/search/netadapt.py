"""NetAdapt-style progressive shrinking toward a latency budget.

Start from a reference network (a member of the space). Iteration ``i`` sets the target
``max(budget, current - initial_reduction * start_latency * decay ** (i - 1))``. For every
stage it proposes the least shrunk version of that stage that meets the target by the table:
greedily, each step lowers one of the stage's parameters by one notch (fewer channels, lower
expansion, smaller kernel, fewer layers, squeeze-excite off); a step that alone reaches the
target and keeps the most latency wins, otherwise the step that saves the most is taken and
the search goes on. Every proposal is trained with the evaluator's short budget (from
scratch: NetAdapt fine-tunes inherited weights, which these heterogeneous blocks do not
allow cheaply) as a trial of the same study, and the most accurate proposal becomes the
next network. The trajectory is stored in the study's ``netadapt_trajectory`` attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nas.archs import load_arch
from nas.config import NetAdaptConfig
from nas.latency.deployment import price
from nas.search.controller import Controller, RunSummary
from nas.space import SearchSpace
from nas.spec import SpecError

Params = dict[str, Any]


def shrink_moves(name: str, value: Any, choices: tuple) -> list[Any]:
    """The next smaller value of one parameter, as a list (empty when it cannot shrink)."""
    if isinstance(value, bool):
        if name.endswith("skip"):
            return [True] if not value else []
        return [False] if value else []  # se, bypass: off is cheaper or equal
    if isinstance(value, (int, float)):
        smaller = [c for c in choices if not isinstance(c, bool) and c < value]
        return [max(smaller)] if smaller else []
    return []  # categorical (e.g. a block family): no order to shrink along


def shrink_stage(space: SearchSpace, params: Params, stage: int, target_ms: float,
                 latency: Callable[[Params], float]) -> Params | None:
    """The least shrunk parameters, changing only ``stage``, whose latency meets the target."""
    prefix = f"s{stage + 1}."
    choices = space.parameters()
    current, current_ms = dict(params), latency(params)
    while current_ms > target_ms:
        steps = []
        for name in (n for n in choices if n.startswith(prefix)):
            for value in shrink_moves(name, current[name], choices[name]):
                candidate = {**current, name: value}
                try:
                    ms = latency(candidate)
                except SpecError:
                    continue
                if ms < current_ms:
                    steps.append((ms, candidate))
        if not steps:
            return None
        meeting = [step for step in steps if step[0] <= target_ms]
        current_ms, current = max(meeting, key=lambda s: s[0]) if meeting else min(steps, key=lambda s: s[0])
    return current


def run_netadapt(controller: Controller, config: NetAdaptConfig) -> RunSummary:
    space, study = controller.space, controller.study
    start = load_arch(config.start, space.input_shape, space.classes)
    if not space.contains(start):
        raise SpecError(f"netadapt.start {config.start!r} is not a member of space {space.name!r}")

    def latency(p: Params) -> float:
        return price(controller.latency_model, space.decode(p))

    summary = RunSummary()
    params = space.encode(start)
    first = run_trial(controller, params, {"netadapt_iteration": 0}, summary)
    start_ms = current_ms = latency(params)
    trajectory = [{"iteration": 0, "trial": first.number, "latency_ms": current_ms,
                   "score": first.user_attrs.get("score"), "stage": None, "target_ms": None}]
    for iteration in range(1, config.max_iterations + 1):
        if current_ms <= config.budget_ms:
            break
        reduction = config.initial_reduction * start_ms * config.decay ** (iteration - 1)
        target = max(config.budget_ms, current_ms - reduction)
        proposals = []
        for stage in range(space.num_stages):
            shrunk = shrink_stage(space, params, stage, target, latency)
            if shrunk is not None:
                trial = run_trial(controller, shrunk, {"netadapt_iteration": iteration, "netadapt_stage": stage},
                                  summary)
                if "score" in trial.user_attrs:
                    proposals.append((trial.user_attrs["score"], stage, shrunk, trial))
        if not proposals:
            summary.notes.append(f"iteration {iteration}: no stage can meet {target:.3f} ms; stopped")
            break
        score, stage, params, trial = max(proposals, key=lambda p: p[0])
        current_ms = latency(params)
        trajectory.append({"iteration": iteration, "trial": trial.number, "latency_ms": current_ms,
                           "score": score, "stage": stage, "target_ms": target})
        study.set_user_attr("netadapt_trajectory", trajectory)
        controller.log(f"netadapt iteration {iteration}: target {target:.3f} ms -> stage {stage + 1}, "
                       f"{current_ms:.3f} ms, {controller.evaluator.objective} {score:.4f}")
    study.set_user_attr("netadapt_trajectory", trajectory)
    summary.completed = controller.completed_count()
    return summary


def run_trial(controller: Controller, params: Params, attrs: dict, summary: RunSummary):
    """Evaluate exactly ``params`` as the next trial and return it (frozen)."""
    controller.study.enqueue_trial(params, user_attrs=attrs)
    number = controller.step(summary)
    return controller.study.get_trials(deepcopy=False)[number]
