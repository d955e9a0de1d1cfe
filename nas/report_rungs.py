"""The report's view of successive halving (nas/search/halving.py): the trials grouped by the
rung they reached, for the Pareto plot's markers, and a table of how many reached each rung.
A run without a schedule has no rung records, and then nothing here changes the report."""

from __future__ import annotations

import html

import pandas as pd

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def has_rungs(frame: pd.DataFrame) -> bool:
    return "rung" in frame and frame["rung"].notna().any()


def rung_label(rung: int, budget, unit: str | None, top: bool) -> str:
    amount = f"{budget:g} epoch{'s' if budget != 1 else ''}" if unit != "fraction" else f"{budget:g} of the data"
    return f"rung {rung} ({amount}){', top' if top else ', stopped there'}"


def rung_groups(done: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str]]:
    """(legend label, trials, marker) per rung reached; one group of all trials labelled
    "trials" when the run has no rungs."""
    if not has_rungs(done):
        return [("trials", done, "o")]
    top = int(done["rung"].max())
    groups = []
    for index, (rung, trials) in enumerate(done.dropna(subset=["rung"]).groupby("rung")):
        unit = trials["rung_unit"].iloc[0] if "rung_unit" in trials else None
        label = rung_label(int(rung), trials["rung_budget"].iloc[0], unit, int(rung) == top)
        groups.append((label, trials, MARKERS[index % len(MARKERS)]))
    return groups


def rungs_section(frame: pd.DataFrame) -> str:
    """The report's "Successive halving" section: per rung, its budget, how many trials reached
    it and how many stopped there; empty without rungs."""
    done = frame[(frame["state"] == "COMPLETE")]
    if not has_rungs(done):
        return ""
    done = done.dropna(subset=["rung"])
    rows = []
    for rung in range(1, int(done["rung"].max()) + 1):
        reached = done[done["rung"] >= rung]
        at = done[done["rung"] == rung]
        budget = f"{at['rung_budget'].iloc[0]:g}" if len(at) else ""
        stopped = int((at["stopped"] == True).sum()) if "stopped" in at else 0  # noqa: E712
        rows.append(f"<tr><td class='num'>{rung}</td><td class='num'>{html.escape(budget)}</td>"
                    f"<td class='num'>{len(reached)}</td><td class='num'>{stopped}</td></tr>")
    return ("<h2>Successive halving</h2><p>Every trial trained to rung 1; at each rung only the best share "
            "of the trials that had reached it went on (non-dominated sorting, then crowding distance). "
            "A stopped trial's score is its last rung's, and the plot marks each trial by the rung it "
            "reached.</p><table><tr><th>rung</th><th>budget</th><th>trials that reached it</th>"
            "<th>stopped there</th></tr>" + "".join(rows) + "</table>")
