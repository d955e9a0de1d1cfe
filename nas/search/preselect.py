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


class PreselectingNSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGA-II that proposes ``candidates`` children per trial and keeps the one with the
    largest predicted hypervolume improvement (score predicted one residual standard
    deviation up, so that uncertain children get their chance). Children that repeat an
    evaluated architecture or break a constraint are passed over while another remains.
    The surrogate ranks only with two objectives (score, latency) and while it is trusted
    (:attr:`Surrogate.trusted`); otherwise the children keep NSGA-II's order and the first
    that passes is taken without making the rest."""

    def __init__(self, *, describe: Describe, candidates: int = DEFAULT_CANDIDATES, seed: int | None = None,
                 **kwargs: Any):
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        super().__init__(seed=seed, **kwargs)
        self._describe = describe
        self._candidates = candidates
        # Children repeat one another and their parents as the population converges, and the
        # chosen one is described again for the fit once evaluated: looking up is cheaper.
        self._described: dict[tuple, Candidate] = {}
        self._features: dict[int, tuple[float, ...]] = {}  # of evaluated trials, by trial id
        self._intersection: dict[str, BaseDistribution] | None = None
        self._intersected: set[int] = set()  # ids of the completed trials in the intersection
        self._stored_parents: tuple[int, set[int]] | None = None  # a generation, its parents' trial ids

    # NSGA-II's two reads of the study per trial, taken from the trial's cached read of it
    # (one database query per trial instead of three) and without Optuna's deep copy of
    # every distribution: the same answers, a millisecond less per trial on SQLite.

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """NSGA-II's: the distributions every completed trial used, by name (single-valued
        ones are left to independent sampling, as there)."""
        for done in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True):
            if done._trial_id in self._intersected:
                continue
            self._intersected.add(done._trial_id)
            if self._intersection is None:
                self._intersection = dict(done.distributions)
            else:
                self._intersection = {name: d for name, d in self._intersection.items()
                                      if done.distributions.get(name) == d}
        return {name: d for name, d in sorted((self._intersection or {}).items()) if not d.single()}

    def get_parent_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        """NSGA-II's: the parents it stored for this generation, else chosen and stored now."""
        if generation == 0:
            return []
        if self._stored_parents is None or self._stored_parents[0] != generation:
            stored = study._storage.get_study_system_attrs(study._study_id).get(
                self._get_parent_cache_key_prefix() + str(generation))
            if stored is None:
                return super().get_parent_population(study, generation)
            # Kept: a generation's parents are stored by the first worker to need them and then
            # read by all (should two workers choose them at once, the choice read first stays here).
            self._stored_parents = (generation, set(stored))
        ids = self._stored_parents[1]
        return [t for t in study._get_trials(deepcopy=False, use_cache=True) if t._trial_id in ids]

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        generation = self.get_trial_generation(study, trial)
        parents = self.get_parent_population(study, generation)
        if not parents:
            return {}  # the first generation: random, as in NSGA-II

        def next_child() -> dict[str, Any]:
            return self._complete(study, trial, search_space,
                                  self._child_generation_strategy(study, search_space, parents))

        # the trial's cached read of the study, which NSGA-II's own steps share
        evaluated = [t for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
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
        if trial._trial_id not in self._features:
            self._features[trial._trial_id] = self.describe(trial.params).features
        return self._features[trial._trial_id]

    def _complete(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution],
                  params: dict[str, Any]) -> dict[str, Any]:
        """A child with every parameter: NSGA-II leaves out those its mutation redraws (they
        would be drawn at random after it); they are drawn here the same way, so that the
        child can be described."""
        for name, distribution in search_space.items():
            if name not in params:
                params[name] = self._random_sampler.sample_independent(study, trial, name, distribution)
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


# Generations and parent populations are stored under NSGA-II's own keys (Optuna derives them
# from the class name), so a study can go on with plain NSGA-II (candidates: 1) and back.
PreselectingNSGAIISampler._GENERATION_KEY = optuna.samplers.NSGAIISampler._get_generation_key()
PreselectingNSGAIISampler._PARENT_CACHE_KEY_PREFIX = optuna.samplers.NSGAIISampler._get_parent_cache_key_prefix()
