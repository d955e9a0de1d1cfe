"""A search worker process for the multi-process tests: the real controller and storage,
with the fake evaluator and latency model. Usage:
    python -m tests.distributed_worker CONFIG_JSON WORKER_INDEX SLEEP_S LOG_PATH
With ``NAS_TEST_KILL_AT`` set, the worker stops at that point and waits to be killed
(:mod:`tests.kill_points`).
"""

import json
import sys

from nas.config import parse_config
from nas.experiment import run_experiment
from tests import kill_points
from tests.fakes import FakeEvaluator, FakeLatency


def main() -> None:
    config = parse_config(json.loads(sys.argv[1]))
    worker, sleep_s, log_path = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    evaluator = kill_points.install(FakeEvaluator(sleep_s=sleep_s, log_path=log_path), config.output_dir())
    summary = run_experiment(config, progress=False, worker=worker, log=lambda line: None,
                             evaluator=evaluator, latency_model=FakeLatency())
    print(json.dumps({"completed": summary.completed, "evaluated": summary.evaluated}))


if __name__ == "__main__":
    main()
