"""The verification's verdict: per network the mean and spread of the test accuracy over
seeds, how well the search's score ranked the networks, and which picks beat which
baselines."""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy import stats

from nas.verify.select import Candidate


def network_entry(candidate: Candidate, seeds: list[int], results: dict[tuple[str, int], dict]) -> dict[str, Any]:
    """One network's line of the verdict. A pick carries its trial number; a baseline its
    name (and its trial number when it was searched as a member of the space)."""
    runs = [results[(candidate.arch_id, seed)] for seed in seeds]
    accuracies = [float(run["test_acc"]) for run in runs]
    entry: dict[str, Any] = {"arch_id": candidate.arch_id, "latency_ms": candidate.latency_ms,
                             "search_score": candidate.search_score, "test_acc_mean": statistics.fmean(accuracies),
                             "test_acc_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                             "test_acc_per_seed": accuracies, "seeds": list(seeds)}
    if candidate.role == "baseline":
        entry["name"] = candidate.name
    if candidate.trial is not None:
        entry["trial"] = candidate.trial
    diverged = sum(run.get("status") == "diverged" for run in runs)
    if diverged:
        entry["diverged_seeds"] = diverged  # each counted as accuracy 0, as the search counts it
    entry["spec_string"] = candidate.spec.to_string()
    return entry


def kendall_tau(entries: list[dict]) -> float | None:
    """Kendall's tau-b between the search's score and the mean test accuracy over the verified
    networks; None with fewer than two networks or when either side is constant."""
    pairs = [(e["search_score"], e["test_acc_mean"]) for e in entries if e["search_score"] is not None]
    if len(pairs) < 2:
        return None
    search, final = zip(*pairs)
    tau = stats.kendalltau(search, final).statistic
    return float(tau) if math.isfinite(tau) else None


def dominating(picks: list[dict], baselines: list[dict]) -> list[dict]:
    """Every (pick, baseline) pair where the pick is predicted faster and its mean test
    accuracy is at least the baseline's."""
    found = []
    for pick in picks:
        for base in baselines:
            if pick["arch_id"] == base["arch_id"] or pick["latency_ms"] is None or base["latency_ms"] is None:
                continue
            if pick["latency_ms"] < base["latency_ms"] and pick["test_acc_mean"] >= base["test_acc_mean"]:
                found.append({"pick": pick["arch_id"], "pick_trial": pick.get("trial"), "baseline": base["name"],
                              "speedup": base["latency_ms"] / pick["latency_ms"],
                              "acc_delta": pick["test_acc_mean"] - base["test_acc_mean"]})
    return sorted(found, key=lambda d: -d["speedup"])


def summarize(picks: list[Candidate], baselines: list[Candidate], seeds: list[int],
              results: dict[tuple[str, int], dict]) -> dict[str, Any]:
    pick_entries = [network_entry(c, seeds, results) for c in picks]
    base_entries = [network_entry(c, seeds, results) for c in baselines]
    unique = {e["arch_id"]: e for e in pick_entries + base_entries}
    return {"picks": pick_entries, "baselines": base_entries,
            "kendall_tau_search_vs_final": kendall_tau(list(unique.values())),
            "dominating": dominating(pick_entries, base_entries)}
