from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import create_trial

from nas.search.pareto import added_hypervolumes_2d, front_2d, hypervolume_2d, nondominated_mask
from nas.search.preselect import (
    Candidate,
    PreselectingNSGAIISampler,
    Surrogate,
    hypervolume_gains,
    rank_correlation,
)
from tests.test_search import make_config, run

MAX_MIN = [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]


def test_front_2d_is_the_non_dominated_set():
    points = np.random.default_rng(0).random((200, 2)).round(2)  # rounded: ties on both axes
    expected = points[nondominated_mask(points, ["minimize", "minimize"])]
    assert sorted(map(tuple, front_2d(points))) == sorted(set(map(tuple, expected)))


def test_added_hypervolumes_match_the_hypervolume_with_each_point_added():
    rng = np.random.default_rng(3)
    observed, proposed = rng.random((30, 2)).round(2), rng.random((200, 2)).round(2) * 1.2  # some beyond
    front, reference = front_2d(observed), (1.1, 1.1)
    base = hypervolume_2d(front, reference)
    expected = [hypervolume_2d(np.vstack([front, p]), reference) - base for p in proposed]
    assert np.allclose(added_hypervolumes_2d(front, proposed, reference), expected)


def test_surrogate_recovers_a_linear_relation_its_noise_and_its_skill():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = 2.0 + x @ np.array([1.0, -0.5, 0.0]) + rng.normal(scale=0.1, size=200)
    surrogate = Surrogate.fit(x, y)
    assert surrogate.predict(np.array([[1.0, 2.0, 3.0]]))[0] == pytest.approx(2.0, abs=0.05)
    assert surrogate.residual == pytest.approx(0.1, rel=0.2)
    assert surrogate.skill > 0.95 and surrogate.trusted
    # no relation: trusted about as often as the 5% test allows, by chance
    trusted = [Surrogate.fit(x[:30], rng.normal(size=30)).trusted for _ in range(400)]
    assert np.mean(trusted) < 0.1
    constant = Surrogate.fit(np.ones((5, 1)), np.arange(5.0))  # a constant feature: still defined
    assert constant.predict(np.ones((1, 1)))[0] == pytest.approx(2.0)
    assert not constant.trusted


def test_held_out_skill_matches_refitting_without_each_trial():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=12)
    surrogate = Surrogate.fit(x, y)
    refitted = [Surrogate.fit(np.delete(x, i, 0), np.delete(y, i)) for i in range(12)]
    # the shortcut uses the full sample's standardisation, so it matches refits only closely
    held_out = [fit.predict(x[i:i + 1])[0] for i, fit in enumerate(refitted)]
    assert surrogate.skill == pytest.approx(rank_correlation(np.array(held_out), y), abs=0.1)


def test_hypervolume_gains_prefer_points_that_extend_the_front():
    observed = np.array([[0.6, 1.0], [0.8, 2.0], [0.9, 4.0]])  # (accuracy, latency)
    proposed = np.array([[0.85, 1.5],    # between two front points: a gain
                         [0.95, 1.0],    # dominates the fastest: a larger gain
                         [0.79, 2.1],    # just behind the front
                         [0.5, 3.0]])    # far behind it
    gains = hypervolume_gains(observed, proposed, MAX_MIN)
    assert gains[1] > gains[0] > 0 > gains[2] > gains[3]
    flipped = hypervolume_gains(observed * [-1, 1], proposed * [-1, 1], [StudyDirection.MINIMIZE] * 2)
    assert np.allclose(flipped, gains)  # the direction of the first objective is honoured


def evaluated_trial(number, arch_id, macs, score, latency):
    trial = create_trial(values=[score, latency], params={"x": number},
                         distributions={"x": CategoricalDistribution(list(range(100)))},
                         user_attrs={"arch_id": arch_id, "score": score, "macs": macs})
    trial.number = number  # the sampler keeps an evaluated trial's features by its number
    return trial


def scored_trials(learnable: bool = True):
    """Evaluated trials x = 1, 4, ..., 37 with latency x and score log(x): a relation cost
    predicts; not ``learnable``, the score's sign alternates and the held-out ranks are wrong."""
    return [evaluated_trial(x, f"a{x % 50}", x, float(np.log(x) * (1 if learnable else (-1) ** x)), float(x))
            for x in range(1, 40, 3)]


def make_sampler(candidates):
    """A sampler whose 'networks' are described by two parameters: the surrogate's feature is
    log(x) and the latency is ``lat`` (x when not given); arch ids repeat every 50 x."""
    def describe(params):
        x = params["x"]
        return Candidate(SimpleNamespace(arch_id=f"a{x % 50}"), (float(np.log(x)),), (float(params.get("lat", x)),),
                         feasible=x < 90)

    return PreselectingNSGAIISampler(describe=describe, candidates=candidates, population_size=4, seed=0)


def pick(sampler, children, evaluated):
    seen = {t.user_attrs["arch_id"] for t in evaluated}
    return sampler._pick(children, evaluated, seen, sampler._surrogate(evaluated, MAX_MIN), MAX_MIN)


def test_pick_skips_repeats_and_infeasible_children_and_follows_the_surrogate():
    sampler = make_sampler(4)
    evaluated = scored_trials()
    describe = sampler._describe
    # 10 repeats arch a10 (evaluated), 95 is infeasible: neither is chosen while others remain
    assert pick(sampler, [describe({"x": 10}), describe({"x": 95}), describe({"x": 2})], evaluated) == 2
    # the surrogate has learnt score = log(x): the child whose x predicts a high score at a low
    # latency wins over one on the observed curve and one predicted to be dominated
    children = [describe({"x": 21}), describe({"x": 5, "lat": 30}), describe({"x": 36, "lat": 6})]
    assert pick(sampler, children, evaluated) == 2
    assert pick(sampler, children[:2], evaluated) == 0
    # all infeasible: the least bad is still a child (NSGA-II's first)
    assert pick(sampler, [describe({"x": 95}), describe({"x": 96})], evaluated) == 0
    # where the score falls as x grows the surrogate's held-out ranks are wrong: not trusted,
    # NSGA-II's order stands
    misleading = scored_trials(learnable=False)
    assert sampler._surrogate(misleading, MAX_MIN) is None
    assert pick(sampler, children, misleading) == 0


def test_children_are_made_only_until_nsga2s_order_has_decided():
    sampler = make_sampler(4)
    trusted, misleading = scored_trials(), scored_trials(learnable=False)
    for evaluated, made, chosen in ((misleading, 3, 2), (trusted, 4, 36), (misleading[:3], 1, 10)):
        children = iter([{"x": 10}, {"x": 95}, {"x": 2}, {"x": 36, "lat": 6}])  # a repeat, infeasible, new, new
        calls = []

        def next_child(children=children, calls=calls):
            calls.append(1)
            return next(children)

        # without a trusted surrogate (misleading data, or too few trials to fit, among which
        # a10 is new) the first feasible new child is the choice and no more are made; with
        # one, all four are compared
        assert sampler._choose(next_child, evaluated, MAX_MIN)["x"] == chosen
        assert len(calls) == made


def test_search_with_preselection_runs_and_keeps_nsga2_generations(tmp_path):
    config = make_config(tmp_path, trials=6, sampler={"kind": "nsga2", "population_size": 3, "candidates": 1})
    summary, _, study = run(config)
    assert type(summary.study.sampler) is optuna.samplers.NSGAIISampler
    config = make_config(tmp_path, trials=14, sampler={"kind": "nsga2", "population_size": 3, "candidates": 6},
                         objective={"kind": "pareto", "max_latency_ms": 0.5})
    summary, evaluator, study = run(config)
    assert isinstance(summary.study.sampler, PreselectingNSGAIISampler)
    assert summary.completed == 14
    plain = optuna.samplers.NSGAIISampler(population_size=3)
    generations = [plain.get_trial_generation(study, t) for t in study.get_trials()]
    assert generations[:6] == [0, 0, 0, 1, 1, 1]  # the plain run's, read back by the resumed one
    assert max(generations) >= 3  # it went on from them
    assert len(evaluator.calls) == len(set(evaluator.calls))


def test_the_children_of_a_trial_come_from_its_generations_parents_and_it_stays_in_it(tmp_path):
    config = make_config(tmp_path, trials=9, sampler={"kind": "nsga2", "population_size": 3, "candidates": 1})
    _, _, study = run(config)
    # every child infeasible: all four are made (see _choose) before the least bad is taken
    sampler = PreselectingNSGAIISampler(
        describe=lambda params: Candidate(SimpleNamespace(arch_id=str(sorted(params.items()))), (0.0,), (0.0,),
                                          feasible=False),
        candidates=4, population_size=3, seed=1)
    asked = []  # per child NSGA-II made: [the trial's number, the generation whose parents it used]
    make_child, parents_of = sampler.nsga2.sample_relative, sampler.nsga2.get_parent_population

    def spied_child(study, trial, search_space):
        asked.append([trial.number, None])
        return make_child(study, trial, search_space)

    def spied_parents(study, generation):
        if asked[-1][1] is None:  # the first ask of the child (choosing parents asks for the generation before)
            asked[-1][1] = generation
        return parents_of(study, generation)

    sampler.nsga2.sample_relative, sampler.nsga2.get_parent_population = spied_child, spied_parents
    study.sampler = sampler
    trial = study.ask(fixed_distributions=study.get_trials()[0].distributions)  # sampled at the first suggest
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    generation = optuna.samplers.NSGAIISampler(population_size=3).get_trial_generation(study, running[0])
    assert generation >= 1
    assert asked == [[trial.number, generation]] * 4  # four children, all of the trial's generation
