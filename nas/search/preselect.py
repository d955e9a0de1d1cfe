"""NSGA-II with pre-selection: of several children that NSGA-II's own crossover and mutation
propose, the one a surrogate expects to improve the Pareto front most becomes the trial.

Only the accuracy (the evaluator's score) is expensive. A candidate's latency comes from the
lookup table and its MACs and parameters from the resolver, in microseconds, so those are
exact; a candidate that breaks a constraint or repeats an evaluated architecture is known
before anything is trained; and the same cheap statistics (log MACs, log parameters, log
latency) feed a ridge regression of the score, fitted on the trials evaluated so far. This is
the surrogate-assisted evolution of NSGANetV2 (Lu et al., 2020) in its simplest form: the
surrogate only chooses among NSGA-II's children, it never invents one, and the first
generation is random as in plain NSGA-II.

Cost is not always a good guide to accuracy (in some spaces and budgets larger networks train
worse), so the surrogate is trusted only while it ranks the evaluated trials well when each is
held out of the fit; otherwise NSGA-II's own order stands, only repeats and infeasible
children are passed over, and children are made only until one passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.config import DEFAULT_CANDIDATES
from nas.search.controller import LatencyModel, measure
from nas.search.objectives import Objective
from nas.search.pareto import added_hypervolumes_2d, front_2d
from nas.space import SearchSpace

# Below this many evaluated trials no regression is fitted: the children keep NSGA-II's order.
MIN_FITTED = 8
RIDGE = 1e-3  # on standardised features: keeps the fit defined when a feature is constant
SKILL_Z = 1.645  # the surrogate ranks children only when its held-out skill is this significant
MAX_DESCRIBED = 4096  # described children kept (about 8 KB each with their specs)


@dataclass(frozen=True)
class Candidate:
    """What is known about a proposed network before it is evaluated. ``free_values``: the
    study's values after the first (latency, then MACs or parameters when they are
    objectives). ``spec``: the network (anything with an ``arch_id``; an ArchSpec computes it
    when first asked, so only the children that are looked up pay for it)."""

    spec: Any
    features: tuple[float, ...]
    free_values: tuple[float, ...]
    feasible: bool


Describe = Callable[[dict[str, Any]], Candidate]


def architecture_describer(space: SearchSpace, latency_model: LatencyModel, objective: Objective) -> Describe:
    """Describes a parameter set of ``space`` by its network's predicted cost."""

    def describe(params: dict[str, Any]) -> Candidate:
        spec = space.decode(params)
        m = measure(spec, latency_model)
        features = (math.log(max(m.macs, 1)), math.log(max(m.params, 1)), math.log(max(m.latency_ms, 1e-6)))
        return Candidate(spec, features, tuple(objective.unevaluated_values(m)[1:]), objective.feasible(m))

    return describe


class PreselectingNSGAIISampler(optuna.samplers.BaseSampler):
    """NSGA-II that proposes ``candidates`` children per trial and keeps the one with the
    largest predicted hypervolume improvement (score predicted one residual standard
    deviation up, so that uncertain children get their chance). Children that repeat an
    evaluated architecture or break a constraint are passed over while another remains.
    The surrogate ranks only with two objectives (score, latency) and while it is trusted
    (:attr:`Surrogate.trusted`); otherwise the children keep NSGA-II's order and the first
    that passes is taken without making the rest.

    Everything else is Optuna's own NSGA-II (:attr:`nsga2`, built with the keyword arguments
    given here), through its public methods: it makes each child, and it keeps the
    generations and parents in the study under its own keys, so that a study can go on with
    plain NSGA-II (``candidates: 1``) and back."""

    def __init__(self, *, describe: Describe, candidates: int = DEFAULT_CANDIDATES, seed: int | None = None,
                 **nsga2_options: Any):
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.nsga2 = optuna.samplers.NSGAIISampler(seed=seed, **nsga2_options)
        self._describe = describe
        self._candidates = candidates
        # Children repeat one another and their parents as the population converges, and the
        # chosen one is described again for the fit once evaluated: looking up is cheaper.
        self._described: dict[tuple, Candidate] = {}
        self._features: dict[int, tuple[float, ...]] = {}  # of evaluated trials, by trial number

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.nsga2.infer_relative_search_space(study, trial)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.nsga2.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.nsga2.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.nsga2.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.nsga2.reseed_rng()

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        first = self.nsga2.sample_relative(study, trial, search_space)
        if not first:
            return {}  # the first generation: random, as in NSGA-II
        made = 0

        def next_child() -> dict[str, Any]:  # NSGA-II's child: crossover and mutation of the parents
            nonlocal made, trial
            if made == 1:
                # NSGA-II has stored the trial's generation: read back, the trial carries it to
                # the next children, which then need not work it out (and store it) again.
                trial = next(t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                             if t.number == trial.number)
            child = first if made == 0 else self.nsga2.sample_relative(study, trial, search_space)
            made += 1
            return self._complete(study, trial, search_space, dict(child))

        evaluated = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                     if "score" in t.user_attrs and t.user_attrs.get("feasible", True)]
        return self._choose(next_child, evaluated, study.directions)

    def _choose(self, next_child: Callable[[], dict[str, Any]], evaluated: list[FrozenTrial],
                directions: list[StudyDirection]) -> dict[str, Any]:
        """Of up to ``candidates`` children from ``next_child``, the one :meth:`_pick` picks.
        Without a trusted surrogate NSGA-II's order decides, so children are made and
        described only until one is feasible and new."""
        surrogate = self._surrogate(evaluated, directions)
        seen = {t.user_attrs.get("arch_id") for t in evaluated}
        children, described = [], []
        for _ in range(self._candidates):
            children.append(next_child())
            described.append(self.describe(children[-1]))
            if surrogate is None and described[-1].feasible and described[-1].spec.arch_id not in seen:
                break
        return children[self._pick(described, evaluated, seen, surrogate, directions)]

    def describe(self, params: dict[str, Any]) -> Candidate:
        key = tuple(sorted(params.items()))
        if key not in self._described:
            if len(self._described) >= MAX_DESCRIBED:
                self._described.clear()
            self._described[key] = self._describe(params)
        return self._described[key]

    def _features_of(self, trial: FrozenTrial) -> tuple[float, ...]:
        if trial.number not in self._features:
            self._features[trial.number] = self.describe(trial.params).features
        return self._features[trial.number]

    def _complete(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution],
                  params: dict[str, Any]) -> dict[str, Any]:
        """A child with every parameter: NSGA-II leaves out those its mutation redraws (they
        would be drawn at random after it); they are drawn here the same way, so that the
        child can be described."""
        for name, distribution in search_space.items():
            if name not in params:
                params[name] = self.sample_independent(study, trial, name, distribution)
        return params

    def _surrogate(self, evaluated: list[FrozenTrial], directions: list[StudyDirection]) -> Surrogate | None:
        """The score's regression on the evaluated trials when it is trusted; None when there
        are too few of them, more than two objectives, or no significant skill."""
        if len(evaluated) < MIN_FITTED or len(directions) != 2:
            return None
        surrogate = Surrogate.fit(np.array([self._features_of(t) for t in evaluated]),
                                  np.array([t.values[0] for t in evaluated]))
        return surrogate if surrogate.trusted else None

    def _pick(self, described: list[Candidate], evaluated: list[FrozenTrial], seen: set[str],
              surrogate: Surrogate | None, directions: list[StudyDirection]) -> int:
        """The index of the child to try: the feasible one with the largest predicted gain
        whose architecture is not in ``seen`` (in NSGA-II's order instead without a
        surrogate); the best feasible one when all repeat; NSGA-II's first when none is
        feasible."""
        ranked = [i for i, c in enumerate(described) if c.feasible] or list(range(len(described)))
        if surrogate is not None and len(ranked) > 1:
            mean = surrogate.predict(np.array([described[i].features for i in ranked]))
            sign = 1.0 if directions[0] == StudyDirection.MAXIMIZE else -1.0
            proposed = np.column_stack([mean + sign * surrogate.residual,
                                        [described[i].free_values[0] for i in ranked]])
            gains = hypervolume_gains(np.array([t.values for t in evaluated]), proposed, directions)
            ranked = [ranked[j] for j in np.argsort(-gains, kind="stable")]
        return next((i for i in ranked if described[i].spec.arch_id not in seen), ranked[0])


@dataclass(frozen=True)
class Surrogate:
    """A ridge regression of the score on standardised features, with its residual standard
    deviation and its skill: the rank correlation between the scores and the leave-one-out
    predictions (each trial predicted by the fit without it)."""

    centre: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    residual: float
    skill: float
    fitted_on: int

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> Surrogate:
        centre, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        design = _design(x, centre, scale)
        penalty = RIDGE * len(x) * np.eye(design.shape[1])
        penalty[0, 0] = 0.0  # the intercept is not shrunk
        inverse = np.linalg.inv(design.T @ design + penalty)
        weights = inverse @ design.T @ y
        errors = y - design @ weights
        leverage = np.einsum("ij,jk,ik->i", design, inverse, design)  # the hat matrix's diagonal
        held_out = y - errors / np.maximum(1.0 - leverage, 1e-9)
        return cls(centre, scale, weights, float(np.std(errors)), rank_correlation(held_out, y), len(y))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _design(x, self.centre, self.scale) @ self.weights

    @property
    def trusted(self) -> bool:
        """Whether the skill is significantly above zero (one-sided 5%: under no relation the
        rank correlation of n pairs has standard deviation about 1 / sqrt(n - 1))."""
        return self.skill * math.sqrt(max(self.fitted_on - 1, 1)) > SKILL_Z


def _design(x: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), (x - centre) / scale])


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by order); 0 when either side is constant."""
    ra, rb = np.argsort(np.argsort(a)).astype(float), np.argsort(np.argsort(b)).astype(float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def hypervolume_gains(observed: np.ndarray, proposed: np.ndarray, directions: list[StudyDirection]) -> np.ndarray:
    """For each proposed point (2 objectives), how much it would add to the hypervolume of the
    observed ones, both objectives scaled by the observed range and the reference just beyond
    the worst observed. A point that would be dominated gets minus the shift that would make it
    non-dominated instead, so that the nearest to the front is preferred; one beyond the
    reference (worse on one objective than every observed network) gets 0."""
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    obs, new = observed * signs, proposed * signs
    lo, hi = obs.min(axis=0), obs.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    front, new = front_2d((obs - lo) / span), (new - lo) / span
    gains = added_hypervolumes_2d(front, new, (1.1, 1.1))
    dominators = np.all(front[None, :, :] <= new[:, None, :], axis=2)  # [proposed, front point]
    shifts = np.where(dominators, np.min(new[:, None, :] - front[None, :, :], axis=2), -np.inf).max(axis=1)
    # no gain and not dominated: beyond the reference, 0
    return np.where((gains > 0) | ~dominators.any(axis=1), gains, -shifts)
