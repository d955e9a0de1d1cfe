"""Reports of a search: pandas tables, matplotlib plots and one self-contained HTML page.

Everything is read back from the Optuna study (a run folder's SQLite file or any storage URL),
so a report made from the storage matches what the workers recorded.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from matplotlib.figure import Figure  # figures drawn straight to files: no pyplot, no global backend

from nas.folders import written_whole
from nas.report_rungs import rung_groups, rungs_section
from nas.search.pareto import accuracy_latency_hypervolume, nondominated_mask
from nas.search.study import make_storage, redact, trial_record

TRIAL_COLUMNS = ["number", "state", "score", "latency_ms", "macs", "params", "feasible", "baseline", "duplicate_of",
                 "arch_id", "spec_string", "train_time_s", "eval_s", "status", "reason"]
PARETO_COLUMNS = ["number", "score", "latency_ms", "macs", "params", "arch_id", "spec_string"]


class ReportError(ValueError):
    """A run folder or study that cannot be reported (the message says what is missing)."""


def open_run(folder: str | Path | None = None, storage: str | None = None, study: str | None = None) -> optuna.Study:
    """Load the study of a run folder (its config.yaml names the storage and study) or of
    ``storage`` + ``study``."""
    if folder is not None:
        folder = Path(folder)
        config_path = folder / "config.yaml"
        if not config_path.is_file():
            raise ReportError(f"{str(folder)!r} is not a run folder: it has no config.yaml (run `nas search` first)")
        config = yaml.safe_load(config_path.read_text())
        study = study or config.get("study") or config["name"]
        stored = config.get("storage")
        if storage is None and stored and "***" in stored:
            raise ReportError(f"the run's storage {stored} needs a password: pass --storage URL")
        storage = storage or stored or f"sqlite:///{folder / 'study.db'}"
    if storage is None or study is None:
        raise ReportError("give a run folder, or both --storage and --study")
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        # opening it would create an empty database: a report never writes into a storage
        raise ReportError(f"no study database at {storage[len('sqlite:///'):]!r}: the search never started "
                          f"there (run `nas search` first)")
    try:
        return optuna.load_study(study_name=study, storage=make_storage(storage))
    except KeyError:
        raise ReportError(f"no study named {study!r} in {redact(storage)}") from None


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, with the recorded measurements and the spec."""
    rows = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    frame = pd.DataFrame(rows)
    for column in TRIAL_COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = [c for c in frame.columns if c not in TRIAL_COLUMNS and c not in ("search_params", "constraints")]
    return frame[TRIAL_COLUMNS + extra]


def evaluated(frame: pd.DataFrame) -> pd.DataFrame:
    """Completed trials that were actually evaluated (feasible, with a score)."""
    mask = (frame["state"] == "COMPLETE") & frame["score"].notna() & (frame["feasible"] != False)  # noqa: E712
    return frame[mask]


def pareto_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The accuracy-vs-latency Pareto front of the evaluated, distinct architectures."""
    done = evaluated(frame).drop_duplicates("arch_id")
    if done.empty:
        return done[PARETO_COLUMNS]
    mask = nondominated_mask(done[["score", "latency_ms"]].to_numpy(float), ["maximize", "minimize"])
    return done[mask].sort_values("latency_ms")[PARETO_COLUMNS].reset_index(drop=True)


def baselines_frame(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    rows = [{"name": name, **record} for name, record in study.user_attrs.get("baselines", {}).items()]
    for _, row in frame[frame["baseline"].notna() & (frame["state"] == "COMPLETE")].iterrows():
        rows.append({"name": row["baseline"], "arch_id": row["arch_id"], "score": row["score"],
                     "latency_ms": row["latency_ms"], "macs": row["macs"], "params": row["params"]})
    return pd.DataFrame(rows, columns=["name", "score", "latency_ms", "macs", "params", "arch_id"])


def hypervolume_history(frame: pd.DataFrame, reference_ms: float) -> pd.DataFrame:
    done = frame.sort_values("number")
    best: list[tuple[float, float]] = []
    rows = []
    for _, row in done.iterrows():
        ok = row["state"] == "COMPLETE" and pd.notna(row["score"]) and row["feasible"] is not False
        if ok:
            best.append((row["score"], row["latency_ms"]))
        acc, lat = zip(*best) if best else ((), ())
        rows.append({"number": row["number"], "hypervolume": accuracy_latency_hypervolume(acc, lat, reference_ms)})
    return pd.DataFrame(rows)


def score_name(study: optuna.Study) -> str:
    names = study.metric_names or ["score"]
    return names[0] if names[0] != "reward" else "accuracy"


def plot_pareto(frame: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, path: Path, label: str,
                limit_ms: float | None = None, latency_axis: str = "predicted latency (ms)") -> None:
    fig = Figure(figsize=(7.5, 5))
    ax = fig.subplots()
    done = evaluated(frame)
    for group, trials, marker in rung_groups(done):  # with successive halving, one marker per rung reached
        ax.scatter(trials["latency_ms"], trials["score"], s=18, alpha=0.6, label=group, marker=marker)
    infeasible = frame[(frame["feasible"] == False) & frame["latency_ms"].notna()]  # noqa: E712
    if not infeasible.empty:
        bottom = float(done["score"].min()) if not done.empty else 0.0
        ax.scatter(infeasible["latency_ms"], [bottom] * len(infeasible), marker="x", color="grey", s=22,
                   label="infeasible (not trained)")
    if not front.empty:
        ax.step(front["latency_ms"], front["score"], where="post", color="C3", lw=1.8, label="Pareto front")
        ax.scatter(front["latency_ms"], front["score"], color="C3", s=30, zorder=3)
    for _, row in baselines.dropna(subset=["score", "latency_ms"]).iterrows():
        ax.scatter([row["latency_ms"]], [row["score"]], marker="*", s=140, color="C2", zorder=4)
        ax.annotate(row["name"], (row["latency_ms"], row["score"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
    if limit_ms:
        ax.axvline(limit_ms, ls="--", lw=1, color="grey", label=f"latency limit {limit_ms:g} ms")
    ax.set_xlabel(latency_axis)
    ax.set_ylabel(f"validation {label}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_hypervolume(history: pd.DataFrame, path: Path, reference_ms: float) -> None:
    fig = Figure(figsize=(7.5, 3.5))
    ax = fig.subplots()
    ax.plot(history["number"], history["hypervolume"], color="C0")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume")
    ax.set_title(f"hypervolume of (1 - score, latency / {reference_ms:.3g} ms) against (1, 1)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_report(study: optuna.Study, folder: str | Path) -> dict[str, Path]:
    """Write trials.csv, pareto.csv, pareto.png, hypervolume.png and report.html into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    front = pareto_frame(frame)
    baselines = baselines_frame(study, frame)
    paths = {name: folder / name for name in ("trials.csv", "pareto.csv", "pareto.png", "hypervolume.png",
                                              "report.html")}
    with written_whole(paths["trials.csv"]) as path:
        frame.to_csv(path, index=False)
    with written_whole(paths["pareto.csv"]) as path:
        front.to_csv(path, index=False)
    latencies = pd.concat([frame["latency_ms"], baselines["latency_ms"]]).dropna()
    config = study.user_attrs.get("config", {})
    limit = (config.get("objective") or {}).get("max_latency_ms")
    reference_ms = float(limit or (latencies.max() if not latencies.empty else 1.0))
    label = score_name(study)
    with written_whole(paths["pareto.png"]) as path:
        target = latency_target(study.user_attrs.get("latency_pricing"))
        plot_pareto(frame, front, baselines, path, label, limit, latency_axis(target))
    history = hypervolume_history(frame, reference_ms)
    with written_whole(paths["hypervolume.png"]) as path:
        plot_hypervolume(history, path, reference_ms)
    with written_whole(paths["report.html"]) as path:
        path.write_text(render_html(study, frame, front, baselines, history, paths, label))
    return paths


def latency_target(pricing: dict | None) -> str:
    """The device and runtime a run's latencies are for, in a few words for titles, axes and
    headers ("xeon2c (this host), onnxruntime"); "" when the run did not record them (see
    nas.latency.deployment.pricing_summary)."""
    if not pricing or not (pricing.get("device") or pricing.get("runtime")):
        return ""
    from nas.latency.deployment import device_label

    return ", ".join(part for part in (device_label(pricing), pricing.get("runtime")) if part)


def pricing_paragraph(pricing: dict | None) -> str:
    """What the report says about its latencies: the run's pricing sentence, or that the
    table it used names no device (a model without provenance, as in tests)."""
    from nas.latency.deployment import pricing_sentence

    if pricing and not latency_target(pricing):
        return f"Latencies are predicted from {pricing.get('table')}, which names no device or runtime."
    return pricing_sentence(pricing)


def latency_axis(target: str) -> str:
    return f"predicted latency (ms) on {target}" if target else "predicted latency (ms)"


def _spec_code(spec: str) -> str:
    """A spec string that never widens the page: it may break after each block ("|")."""
    return f"<code class='spec'>{html.escape(spec).replace('|', '|<wbr>')}</code>"


def _folded_spec(spec: str, shown: int = 40) -> str:
    """A spec for a table cell: its first ``shown`` characters, the rest folded into a
    details element (a table row stays one line high until the reader opens it)."""
    if len(spec) <= shown:
        return _spec_code(spec)
    summary = f"<summary><code>{html.escape(spec[:shown])}&hellip;</code></summary>"
    return f"<details class='spec'>{summary}{_spec_code(spec)}</details>"


def _html_table(frame: pd.DataFrame, columns: list[tuple[str, str, Any]]) -> str:
    """``frame`` as an HTML table; ``columns`` are (header HTML, cell class, row -> cell HTML)."""
    head = "".join(f"<th class='{css}'>{header}</th>" for header, css, _ in columns)
    body = "".join("<tr>" + "".join(f"<td class='{css}'>{cell(row)}</td>" for _, css, cell in columns) + "</tr>"
                   for _, row in frame.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value, fmt: str) -> str:
    return "" if pd.isna(value) else format(value, fmt)


def _measure_columns(label: str, target: str) -> list[tuple[str, str, Any]]:
    """The columns a Pareto row and a baseline share: score, latency (naming its device), cost."""
    where = f"<br><small>{html.escape(target)}</small>" if target else ""
    return [(html.escape(label), "num", lambda r: _number(r["score"], ".4f")),
            (f"latency (ms){where}", "num", lambda r: _number(r["latency_ms"], ".3f")),
            ("MMACs", "num", lambda r: _number(r["macs"] / 1e6, ".2f")),
            ("params", "num", lambda r: _number(r["params"], ",.0f"))]


def pareto_table(front: pd.DataFrame, label: str, target: str) -> str:
    if front.empty:
        return "<p>No evaluated trials yet: the Pareto front is empty.</p>"
    return _html_table(front, [("trial", "num", lambda r: str(r["number"])), *_measure_columns(label, target),
                               ("arch_id", "id", lambda r: f"<code>{html.escape(r['arch_id'])}</code>"),
                               ("spec", "", lambda r: _folded_spec(r["spec_string"]))])


def baselines_table(baselines: pd.DataFrame, label: str, target: str) -> str:
    if baselines.empty:
        return "<p>None: the run's config lists no <code>baselines</code>.</p>"
    return _html_table(baselines, [("name", "", lambda r: html.escape(str(r["name"]))),
                                   *_measure_columns(label, target),
                                   ("arch_id", "id", lambda r: f"<code>{html.escape(str(r['arch_id']))}</code>")])


# Laid out for a laptop window (tests/test_report_browser.py looks at it in Chromium): codes
# break anywhere rather than widen the page, except the short arch ids; numbers align right.
STYLE = "".join([
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}",
    "h1 small{display:block;font-size:55%;font-weight:normal;color:#555}",
    "table{border-collapse:collapse;font-size:13px;max-width:100%}",
    "td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top}th{background:#f3f3f3}th small{font-weight:normal}",
    "td.num,th.num{text-align:right}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}",
    "code{overflow-wrap:anywhere}td.id code{white-space:nowrap}",
    "details.spec summary{cursor:pointer}details.spec[open] summary{color:#777}",
    "img{max-width:100%;height:auto}pre{background:#f6f6f6;padding:8px;font-size:11px;overflow:auto}",
])


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{path.name}" src="data:image/png;base64,{data}">'


def render_html(study, frame, front, baselines, history, paths, label: str) -> str:
    config = study.user_attrs.get("config", {})
    counts = ", ".join(f"{n} {state.lower()}" for state, n in frame["state"].value_counts().items())
    target = latency_target(study.user_attrs.get("latency_pricing"))
    on_target = f" on {target}" if target else ""
    infeasible = int((frame["feasible"] == False).sum())  # noqa: E712
    duplicates = int(frame["duplicate_of"].notna().sum())
    specs = []
    for _, row in front.iterrows():
        spec = frame.loc[frame["number"] == row["number"], "spec"].iloc[0]
        specs.append(f"<details><summary>trial {row['number']}: {label} {row['score']:.4f}, "
                     f"{row['latency_ms']:.3f} ms, <code>{html.escape(row['arch_id'])}</code></summary>"
                     f"<p>{_spec_code(row['spec_string'])}</p>"
                     f"<pre>{html.escape(json.dumps(json.loads(spec), indent=1))}</pre></details>")
    trajectory = study.user_attrs.get("netadapt_trajectory")
    sections = [
        f"<h1>Search report: {html.escape(study.study_name)}"
        f"{f'<small>latency{html.escape(on_target)}</small>' if target else ''}</h1>",
        f"<p>{len(frame)} trials ({html.escape(counts or 'none yet')}); {infeasible} infeasible (not trained), "
        f"{duplicates} answered from an earlier trial of the same architecture. Final hypervolume "
        f"{history['hypervolume'].iloc[-1] if len(history) else 0:.4f}.</p>",
        f"<p>{html.escape(pricing_paragraph(study.user_attrs.get('latency_pricing')))}</p>",
        f"<h2>{html.escape(label.capitalize())} vs predicted latency{html.escape(on_target)}</h2>",
        _img(paths["pareto.png"]),
        "<h2>Hypervolume history</h2>", _img(paths["hypervolume.png"]),
        "<h2>Pareto front</h2>", pareto_table(front, label, target),
        "<h2>Reference baselines</h2>", baselines_table(baselines, label, target),
    ]
    sections.append(rungs_section(frame))  # successive halving: how far the trials trained
    if trajectory:
        sections += ["<h2>NetAdapt trajectory</h2>", pd.DataFrame(trajectory).to_html(index=False)]
    from nas.verify.section import verified_section  # `nas verify`'s results, when the run has them

    sections.append(verified_section(paths["report.html"].parent, latency_axis(target)))
    sections += ["<h2>Pareto architectures</h2>", *specs,
                 "<h2>Experiment config</h2>", f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>"]
    title = html.escape(f"{study.study_name}: latency{on_target}" if target else study.study_name)
    return (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")


def format_pareto(front: pd.DataFrame, label: str = "score") -> str:
    """The Pareto table for the terminal."""
    if front.empty:
        return "no evaluated trials yet: the Pareto front is empty"
    lines = [f"{'trial':>5} {label:>9} {'latency ms':>10} {'MMACs':>8} {'params':>9}  arch_id           spec"]
    for _, row in front.iterrows():
        lines.append(f"{row['number']:>5} {row['score']:>9.4f} {row['latency_ms']:>10.3f} {row['macs'] / 1e6:>8.2f} "
                     f"{int(row['params']):>9,}  {row['arch_id']}  {row['spec_string']}")
    return "\n".join(lines)


def summary(study: optuna.Study) -> dict[str, Any]:
    frame = trials_frame(study)
    return {"trials": len(frame), "evaluated": len(evaluated(frame)), "pareto": len(pareto_frame(frame))}
