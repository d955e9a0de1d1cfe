"""A trial whose evaluation raises is failed with a one-line reason, in the study, the report
and the run's log, and the search goes on."""

import pandas as pd
from optuna.trial import TrialState

from nas.experiment import run_experiment
from nas.report import open_run
from tests.fakes import FakeEvaluator, FakeLatency
from tests.test_search import make_config

MULTI_LINE_ERROR = "CUDA out of memory.\nTried to allocate 2.00 GiB\n    (GPU 0; 7.79 GiB total capacity)"


class RaisesOnSecondCall(FakeEvaluator):
    def evaluate(self, spec):
        if len(self.calls) == 1:
            self.calls.append(spec.arch_id)
            raise RuntimeError(MULTI_LINE_ERROR)
        return super().evaluate(spec)


def test_a_trial_that_raises_is_failed_with_a_one_line_reason_and_the_search_goes_on(tmp_path):
    lines = []
    evaluator = RaisesOnSecondCall()
    summary = run_experiment(make_config(tmp_path, trials=4), progress=False, evaluator=evaluator,
                             latency_model=FakeLatency(), log=lines.append)
    study = open_run(tmp_path / "run")
    assert summary.completed == 4 and summary.failed == 1  # the search went on to its budget
    [failed] = study.get_trials(states=(TrialState.FAIL,))
    assert failed.user_attrs["arch_id"] == evaluator.calls[1]
    reason = failed.user_attrs["reason"]
    assert reason.startswith("RuntimeError: CUDA out of memory.") and "\n" not in reason, reason
    table = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert table.loc[table["number"] == failed.number, "reason"].item() == reason
    logged = [line for line in lines if f"trial {failed.number}" in line]
    assert len(logged) == 1 and "\n" not in logged[0] and "Traceback" not in logged[0], logged
