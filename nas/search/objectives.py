"""Objectives: what a trial's measured metrics become for Optuna (values, directions and
constraints). Pure functions of numbers; no Optuna, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: nas.config imports the search's schedule when it validates
    from nas.config import ObjectiveConfig


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, alpha: float, beta: float) -> float:
    """MnasNet's reward ACC * (LAT / T) ** w, with w = alpha when LAT <= T and beta otherwise.

    Soft (alpha = beta = -0.07) trades about 5% of accuracy for 2x latency either way; hard
    (alpha = 0, beta = -1) ignores latency under the target and penalises it sharply above.
    """
    if latency_ms <= 0 or target_ms <= 0:
        raise ValueError(f"latency and target must be > 0 ms, got {latency_ms} and {target_ms}")
    exponent = alpha if latency_ms <= target_ms else beta
    return accuracy * (latency_ms / target_ms) ** exponent


@dataclass(frozen=True)
class Measured:
    """What a trial knows about its network. ``score`` is the evaluator's objective metric
    (validation accuracy, or a proxy score); None when it was not evaluated."""

    latency_ms: float
    macs: int
    params: int
    score: float | None = None


class Objective:
    """Turns :class:`Measured` into Optuna values and constraint violations."""

    def __init__(self, config: ObjectiveConfig, score_name: str = "accuracy"):
        self.config = config
        self.score_name = score_name

    @property
    def names(self) -> list[str]:
        """Metric names of the study's values, in order."""
        if self.config.kind == "mnas":
            return ["reward"]
        if self.config.kind == "netadapt":
            return [self.score_name]
        return [self.score_name, "latency_ms", *self.config.extra]

    @property
    def directions(self) -> list[str]:
        if self.config.kind in ("mnas", "netadapt"):
            return ["maximize"]
        return ["maximize", "minimize", *(["minimize"] * len(self.config.extra))]

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    def named_constraints(self, m: Measured) -> dict[str, float]:
        """Violation amounts (<= 0 is feasible), one per configured limit, normalised so that
        1.0 means twice the limit."""
        limits = {"latency_ms": (m.latency_ms, self.config.max_latency_ms), "macs": (m.macs, self.config.max_macs),
                  "params": (m.params, self.config.max_params)}
        return {name: value / limit - 1.0 for name, (value, limit) in limits.items() if limit is not None}

    def constraints(self, m: Measured) -> list[float]:
        return list(self.named_constraints(m).values())

    def feasible(self, m: Measured) -> bool:
        return all(c <= 0 for c in self.constraints(m))

    def values(self, m: Measured) -> list[float]:
        """The study's values for an evaluated network."""
        if m.score is None or not math.isfinite(m.score):
            raise ValueError(f"cannot score a network without a finite {self.score_name}: {m.score!r}")
        if self.config.kind == "mnas":
            alpha, beta = self.config.exponents
            return [mnas_reward(m.score, m.latency_ms, self.config.target_ms, alpha, beta)]
        if self.config.kind == "netadapt":
            return [m.score]
        extra = {"macs": float(m.macs), "params": float(m.params)}
        return [m.score, m.latency_ms, *(extra[name] for name in self.config.extra)]

    def unevaluated_values(self, m: Measured) -> list[float]:
        """Values recorded for an infeasible network that was never trained: the worst score
        (0) with its real costs. Constrained samplers rank infeasible trials by violation
        alone, so the placeholder score never steers the search; reports leave them off
        the Pareto front."""
        return self.values(Measured(m.latency_ms, m.macs, m.params, score=0.0))
