"""The "Verified" section of a run's report.html: drawn from the run folder's verify.json
(written by ``nas verify``); empty when the run was never verified."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # figures drawn straight to files: no pyplot, no global backend
from matplotlib.ticker import MaxNLocator
from scipy import stats

from nas.folders import written_whole

FRONT_PLOT = "verified.png"
RANK_PLOT = "verified_ranks.png"


def _entries(verdict: dict) -> list[dict]:
    picks = [{**e, "role": "pick", "label": f"trial {e.get('trial')}"} for e in verdict.get("picks", [])]
    bases = [{**e, "role": "baseline", "label": e.get("name", e["arch_id"])} for e in verdict.get("baselines", [])]
    return picks + bases


def plot_front(entries: list[dict], path: Path, epochs: int | None,
               latency_label: str = "predicted latency (ms)") -> None:
    """Search score and verified test accuracy (mean, error bar = std over seeds) against the
    predicted latency, one dotted line joining the two points of each network."""
    fig = Figure(figsize=(7.5, 5))
    ax = fig.subplots()
    for role, color, marker in (("pick", "C3", "o"), ("baseline", "C2", "*")):
        shown = [e for e in entries if e["role"] == role and e["latency_ms"] is not None]
        if not shown:
            continue
        lat = [e["latency_ms"] for e in shown]
        ax.errorbar(lat, [e["test_acc_mean"] for e in shown], yerr=[e["test_acc_std"] for e in shown],
                    fmt=marker, color=color, ms=9 if marker == "*" else 6, capsize=4,
                    label=f"{role}s: test accuracy after {epochs or '?'} epoch{'' if epochs == 1 else 's'} "
                          "(mean +/- std over seeds)")
        scored = [e for e in shown if e["search_score"] is not None]
        ax.scatter([e["latency_ms"] for e in scored], [e["search_score"] for e in scored], facecolors="none",
                   edgecolors=color, marker=marker, s=60 if marker == "*" else 30,
                   label=f"{role}s: search score (short training, validation)")
        for e in scored:
            ax.plot([e["latency_ms"]] * 2, [e["search_score"], e["test_acc_mean"]], ls=":", lw=0.8, color=color)
        for e in shown:
            ax.annotate(e["label"], (e["latency_ms"], e["test_acc_mean"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        if role == "pick":  # the front as searched and as verified
            ordered = sorted(shown, key=lambda e: e["latency_ms"])
            ax.plot([e["latency_ms"] for e in ordered], [e["test_acc_mean"] for e in ordered], color=color, lw=1.2)
            searched = [e for e in ordered if e["search_score"] is not None]
            ax.plot([e["latency_ms"] for e in searched], [e["search_score"] for e in searched], color=color, lw=0.8,
                    ls="--")
    ax.set_xlabel(latency_label)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_ranks(entries: list[dict], path: Path, tau: float | None) -> None:
    """Rank by search score against rank by verified mean test accuracy (1 = best)."""
    unique = list({e["arch_id"]: e for e in entries if e["search_score"] is not None}.values())
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    if unique:
        search = stats.rankdata([-e["search_score"] for e in unique])
        final = stats.rankdata([-e["test_acc_mean"] for e in unique])
        for e, x, y in zip(unique, search, final, strict=True):
            pick = e["role"] == "pick"
            ax.scatter([x], [y], color="C3" if pick else "C2", marker="o" if pick else "*", s=40 if pick else 120)
            ax.annotate(e["label"], (x, y), textcoords="offset points", xytext=(5, 3), fontsize=8)
        n = len(unique)
        ax.plot([1, n], [1, n], ls="--", lw=0.8, color="grey")
        ax.set_xlim(0.5, n + 0.5)
        ax.set_ylim(n + 0.5, 0.5)  # rank 1 at the top: agreement lies on the diagonal
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    tau_text = "n/a" if tau is None else f"{tau:.2f}"
    ax.set_title(f"search rank vs verified rank (Kendall tau {tau_text})", fontsize=9)
    ax.set_xlabel("rank by search score (1 = best)")
    ax.set_ylabel("rank by verified test accuracy (1 = best)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _img(path: Path) -> str:
    return f'<img alt="{path.name}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _table(entries: list[dict]) -> str:
    rows = [{"network": e["label"], "role": e["role"], "latency_ms": e["latency_ms"],
             "search score": e["search_score"], "test acc mean": e["test_acc_mean"], "test acc std": e["test_acc_std"],
             "seeds": len(e.get("seeds", [])), "arch_id": e["arch_id"]} for e in entries]
    return pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="")


def _verdict_text(verdict: dict) -> str:
    wins = verdict.get("dominating") or []
    if not wins:
        return ("<p>No verified pick is faster than a baseline at at-least its mean test accuracy: the search's "
                "win over the baselines is <b>not</b> confirmed by this verification.</p>")
    items = "".join(f"<li>trial {html.escape(str(w.get('pick_trial')))} (<code>{html.escape(w['pick'])}</code>) is "
                    f"{w['speedup']:.2f}x faster than {html.escape(str(w['baseline']))} at "
                    f"{100 * w['acc_delta']:+.2f} points of mean test accuracy</li>" for w in wins)
    return f"<p>Verified wins (faster, at at-least equal mean test accuracy):</p><ul>{items}</ul>"


def verified_section(folder: str | Path, latency_label: str = "predicted latency (ms)") -> str:
    """The HTML of the section (writes its two plots into ``folder``); "" when ``folder`` has no
    verify.json, a one-paragraph note when it cannot be read. ``latency_label`` is the latency
    axis's label (the report's, which names the device and runtime)."""
    from nas.verify.settings import RESULT_FILE

    folder = Path(folder)
    source = folder / RESULT_FILE
    if not source.is_file():
        return ""
    try:
        verdict = json.loads(source.read_text())
        entries = _entries(verdict)
        settings = verdict.get("settings", {})
        tau = verdict.get("kendall_tau_search_vs_final")
        with written_whole(folder / FRONT_PLOT) as path:
            plot_front(entries, path, settings.get("epochs"), latency_label)
        with written_whole(folder / RANK_PLOT) as path:
            plot_ranks(entries, path, tau)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"<h2>Verified</h2><p>{html.escape(RESULT_FILE)} cannot be read: {html.escape(str(exc))}</p>"
    tau_text = "n/a" if tau is None else f"{tau:.3f}"
    counts = (f"{len(verdict.get('picks', []))} network(s) spread along the front "
              f"({settings.get('picks', '?')} asked) and {len(verdict.get('baselines', []))} baseline(s)")
    training = (f"{settings.get('seeds', '?')} seed(s) each, {settings.get('epochs', '?')} epoch(s) on "
                f"{settings.get('train_images', '?')} training images "
                f"({html.escape(str(settings.get('dataset', '?')))})")
    intro = (f"<p>Retrained from scratch: {counts}, {training}, tested on the {settings.get('test_images', '?')} "
             f"test images the search never saw ({html.escape(str(settings.get('date', '')))}). Kendall tau "
             f"between the search's score and the verified accuracy: {tau_text}.</p>")
    return "".join(["<h2>Verified</h2>", intro, _verdict_text(verdict), _img(folder / FRONT_PLOT),
                    _img(folder / RANK_PLOT), _table(entries)])
