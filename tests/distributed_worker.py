"""A search worker process for the multi-process tests: the real controller and storage,
with the fake evaluator and latency model. Usage:
    python -m tests.distributed_worker CONFIG_JSON WORKER_INDEX SLEEP_S LOG_PATH
"""

import json
import sys

from nas.config import parse_config
from nas.search.runner import run_experiment
from tests.fakes import FakeEvaluator, FakeLatency


def main() -> None:
    config = parse_config(json.loads(sys.argv[1]))
    worker, sleep_s, log_path = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    summary = run_experiment(config, progress=False, worker=worker, log=lambda line: None,
                             evaluator=FakeEvaluator(sleep_s=sleep_s, log_path=log_path), latency_model=FakeLatency())
    print(json.dumps({"completed": summary.completed, "evaluated": summary.evaluated}))


if __name__ == "__main__":
    main()
