"""The front of a study is Optuna's (study.best_trials): on a constrained search with a
baseline and repeated architectures it is the front this project computed itself before
(non-dominated among the completed, feasible, evaluated trials), and the progress line counts it."""

from __future__ import annotations

import types

import numpy as np
from optuna.trial import TrialState

from nas.search.controller import Controller
from nas.search.objectives import Objective
from nas.search.pareto import nondominated_mask
from tests.test_search import make_config, run


def test_best_trials_is_the_front_of_the_feasible_evaluated_trials(tmp_path):
    config = make_config(tmp_path, objective={"kind": "pareto", "max_latency_ms": 1.9}, trials=12,
                         baselines=["mobilenet_v1_1.0"])
    _, _, study = run(config)
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    evaluated = [t for t in completed if t.user_attrs["feasible"] and "score" in t.user_attrs]
    assert len(evaluated) < len(completed), "the limit should leave some trials unevaluated"
    assert any(not t.user_attrs["feasible"] and "score" in t.user_attrs for t in completed), \
        "the baseline is trained although infeasible"
    directions = ["maximize" if d.name == "MAXIMIZE" else "minimize" for d in study.directions]
    mask = nondominated_mask(np.array([t.values for t in evaluated]), directions)
    expected = sorted(t.number for t, keep in zip(evaluated, mask) if keep)
    assert sorted(t.number for t in study.best_trials) == expected
    assert 1 < len(expected) < len(evaluated)
    best = max(evaluated, key=lambda t: t.values[0])
    controller = types.SimpleNamespace(study=study, objective=Objective(config.objective))
    line = Controller.status_line(controller)
    assert line.startswith(f"pareto {len(expected)}, best {best.values[0]:.4f}")
