"""``nas verify``: retrain networks of a search run's Pareto front and its baselines from
scratch, several seeds each, and test them on the test split the search never saw.

A search scores each candidate after a short training on part of the data; two machines can
disagree on that score by as much as the wins a report claims. Verification answers whether a
win survives full training::

    result = verify_run("runs/quickstart", picks=3, epochs=1, seeds=2)
    result["dominating"]   # picks faster than a baseline at at-least its mean test accuracy

Finished trainings are cached in the run folder (``verify_cache.jsonl``, one line per
architecture, seed and budget), so a killed verification resumes where it stopped. The last
verdict is written to ``verify.json`` and shown in ``report.html`` (section "Verified").
"""

from __future__ import annotations

from typing import Any

from nas.verify.settings import CACHE_FILE, DEFAULTS, LIMITS, RESULT_FILE, VerifyError

__all__ = ["CACHE_FILE", "DEFAULTS", "LIMITS", "RESULT_FILE", "VerifyError", "verify_run"]


def __getattr__(name: str) -> Any:
    # the training side (torch) is imported on first use, so that the command line's help
    # and the report read the settings without it
    if name == "verify_run":
        from nas.verify.run import verify_run

        return verify_run
    raise AttributeError(f"module 'nas.verify' has no attribute {name!r}")
