"""Controller throughput with 1, 2 and 4 worker processes sharing one study, on SQLite,
Optuna's journal file and PostgreSQL, with the tiny evaluator. Prints JSON.

    python benchmarks/scale.py [--trials 48] [--workers 1 2 4] [--postgres URL]

Each point starts N real `nas search` processes on a fresh study and times them until all
have exited; trials/s = completed trials / that wall time. A worker's fixed cost (Python
and torch start-up, loading the table, writing the report) is measured on its own as
`startup_s` (a run whose trials are already complete) and reported beside it, together with
the throughput once that fixed cost is taken out. PostgreSQL comes from --postgres, from
NAS_TEST_POSTGRES_URL, or from tools/postgres-for-tests.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from default_tables import default_table

ROOT = Path(__file__).resolve().parents[1]
NAS = [sys.executable, "-m", "nas.cli"]


def postgres_url(given: str | None) -> str | None:
    if given or os.environ.get("NAS_TEST_POSTGRES_URL"):
        return given or os.environ["NAS_TEST_POSTGRES_URL"]
    script = ROOT / "tools" / "postgres-for-tests.sh"
    out = subprocess.run([str(script)], capture_output=True, text=True)
    return out.stdout.strip() or None


def write_config(folder: Path, table: str, trials: int) -> Path:
    config = {"name": "scale", "space": "hybrid", "dataset": "synthetic", "evaluator": {"kind": "tiny"},
              "latency": table, "trials": trials, "sampler": {"kind": "random"}, "heartbeat_interval_s": 2,
              "grace_period_s": 6}
    path = folder / "scale.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_workers(config: Path, storage: str, study: str, workers: int, folder: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    processes = [subprocess.Popen([*NAS, "search", str(config), "--storage", storage, "--study", study,
                                   "--worker", str(i), "--no-progress", "--output", str(folder / f"w{i}")],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for i in range(workers)]
    for p in processes:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed: {err[-2000:]}")
    return time.perf_counter() - start


def completed(storage: str, study: str) -> int:
    import optuna

    from nas.search.study import make_storage

    trials = optuna.load_study(study_name=study, storage=make_storage(storage)).get_trials(deepcopy=False)
    return sum(t.state.name == "COMPLETE" for t in trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--postgres")
    parser.add_argument("--table", help="hybrid 28x28x1 latency table (default: the one in latency_tables/)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    table = args.table or default_table("hybrid")
    pg = postgres_url(args.postgres)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, table, args.trials)
        storages = {"sqlite": lambda s: f"sqlite:///{folder / s}.db", "journal": lambda s: f"journal:{folder / s}.log"}
        if pg:
            storages["postgresql"] = lambda s: pg
        for name, make_url in storages.items():
            results[name] = {}
            for workers in args.workers:
                study = f"scale-{name}-{workers}-{uuid.uuid4().hex[:6]}"
                url = make_url(study)
                wall = run_workers(config, url, study, workers, folder / study)
                done = completed(url, study)
                startup = run_workers(config, url, study, 1, folder / f"{study}-again")  # nothing left to do
                busy = max(wall - startup, 1e-9)
                results[name][str(workers)] = {"trials": done, "wall_s": round(wall, 2),
                                               "trials_per_s": round(done / wall, 2),
                                               "startup_s": round(startup, 2),
                                               "trials_per_s_after_startup": round(done / busy, 2)}
    from nas.search.study import redact

    print(json.dumps({"trials_per_point": args.trials, "evaluator": "tiny", "space": "hybrid",
                      "postgresql": redact(pg) if pg else "not available", "results": results}, indent=2))


if __name__ == "__main__":
    main()
