"""Pareto fronts and hypervolumes of points (pure numpy): the report's filtered tables, the
sampler's candidates, the benchmarks. The front of a study itself is Optuna's
(``study.best_trials``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_minimisation(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return values * signs


def nondominated_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n x k) that no other row dominates."""
    points = _as_minimisation(np.asarray(values, dtype=float), directions)
    n = len(points)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        others = points[np.arange(n) != i]
        dominated = np.any(np.all(others <= points[i], axis=1) & np.any(others < points[i], axis=1))
        mask[i] = not dominated
    return mask


def front_2d(points: np.ndarray) -> np.ndarray:
    """The non-dominated rows of ``points`` (n x 2, both minimised), found with one sort."""
    ordered = points[np.lexsort((points[:, 1], points[:, 0]))]
    running_min = np.minimum.accumulate(ordered[:, 1])
    keep = np.r_[True, ordered[1:, 1] < running_min[:-1]]
    return ordered[keep]


def hypervolume_2d(points: np.ndarray, reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (n x 2, both minimised) and bounded by ``reference``."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[np.all(pts < np.asarray(reference), axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.argsort(pts[:, 0])]
    area, best_y = 0.0, reference[1]
    for x, y in pts:
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def added_hypervolumes_2d(front: np.ndarray, points: np.ndarray, reference: tuple[float, float]) -> np.ndarray:
    """For each of ``points`` (m x 2, both minimised) alone, how much it would add to the
    hypervolume of ``front`` (non-dominated and sorted, as :func:`front_2d` returns it): the
    area within ``reference`` that it dominates and the front does not. All at once, no loop."""
    front = front[np.all(front < np.asarray(reference), axis=1)]
    # The front's staircase: over [lefts[k], rights[k]) it dominates everything above levels[k].
    lefts = np.r_[-np.inf, front[:, 0]]
    rights = np.r_[front[:, 0], reference[0]]
    levels = np.r_[reference[1], front[:, 1]]
    x, y = points[:, :1], points[:, 1:]
    widths = np.clip(rights - np.maximum(lefts, x), 0.0, None)
    heights = np.clip(levels - y, 0.0, None)
    return (widths * heights).sum(axis=1)


def accuracy_latency_hypervolume(accuracy: Sequence[float], latency_ms: Sequence[float],
                                 max_latency_ms: float) -> float:
    """Hypervolume of (error = 1 - accuracy, latency / max_latency_ms) against (1, 1): the
    share of the unit square that the networks dominate, 0..1."""
    if not len(accuracy):
        return 0.0
    points = np.column_stack([1.0 - np.asarray(accuracy, float), np.asarray(latency_ms, float) / max_latency_ms])
    return hypervolume_2d(points, (1.0, 1.0))
