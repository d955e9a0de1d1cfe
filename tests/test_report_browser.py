"""The HTML report as a reader sees it: opened in a real headless Chromium at laptop widths.

A tiny search (a fake evaluator, a shipped latency table) writes a report whose Pareto
specs are a few hundred characters long; the browser must lay it out without a horizontal
scroll bar, with every spec folded and with every one opened, and the page must say which
device and runtime its latencies are for.
"""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from nas.config import parse_config
from nas.experiment import run_experiment
from nas.latency import load_latency_model
from nas.latency.deployment import pricing_summary, profiled_on_this_machine
from nas.report import latency_axis, latency_target
from tests import browser
from tests.fakes import FakeEvaluator, FakeLatency

TABLE = "mobilenet_v1-28x28x1-ort-xeon2c"  # shipped, made by `nas latency profile` (device xeon2c)
LAPTOP_WIDTHS = (1400, 1280)


def table_device() -> str:
    """How the report names TABLE's device here: "this host" only on a machine like the one
    that profiled it."""
    here = profiled_on_this_machine(load_latency_model(TABLE).provenance)
    return "xeon2c (this host)" if here else "xeon2c (profiled on another machine)"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = browser.find_chromium()
    if path is None:
        pytest.skip(f"no Chromium-family browser on PATH (looked for {', '.join(browser.BROWSERS)}); "
                    "`apt-get install chromium` to look at the report in a browser")
    return path


@pytest.fixture(scope="module")
def run_folder(chromium, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser") / "run"
    config = parse_config({"name": "browser", "space": "mobilenet_v1", "latency": TABLE, "trials": 8, "seed": 1,
                           "output": str(folder), "sampler": {"kind": "nsga2", "population_size": 4}})
    run_experiment(config, progress=False, evaluator=FakeEvaluator(), log=lambda line: None)
    return folder


@pytest.fixture(scope="module")
def layout_at(chromium, run_folder):
    """The report's layout at a window width, measured once per width (a browser start each)."""
    seen: dict[int, dict] = {}

    def at(width: int) -> dict:
        if width not in seen:
            seen[width] = browser.measure(chromium, run_folder / "report.html", width)
        return seen[width]

    return at


@pytest.mark.parametrize("width", LAPTOP_WIDTHS)
def test_long_specs_never_push_the_page_sideways(run_folder, layout_at, width):
    front = pd.read_csv(run_folder / "pareto.csv")
    assert front["spec_string"].str.len().max() > 200  # wider than a laptop window when left unbroken
    layout = layout_at(width)
    for state in ("closed", "opened"):  # every <details> folded, then every one opened
        seen = layout[state]
        assert seen["inner"] == width
        assert seen["scroll"] <= seen["client"], f"{width} px, details {state}: the page scrolls sideways ({seen})"


def test_title_and_latency_headers_name_the_device_and_runtime(layout_at):
    layout = layout_at(1400)
    for text in (layout["title"], layout["h1"]):
        assert table_device() in text and "onnxruntime" in text, text
    latency_headers = [h for h in layout["headers"] if h.startswith("latency (ms)")]
    assert latency_headers and all(table_device() in h and "onnxruntime" in h for h in latency_headers)


def test_screenshot_at_laptop_width_shows_the_page(chromium, run_folder, layout_at, tmp_path):
    height = layout_at(1400)["closed"]["height"]
    png = browser.screenshot(chromium, run_folder / "report.html", tmp_path / "report.png", 1400, height)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1400, height)
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colors) > 100  # text, plots and tables, not a blank or single-colour page
    assert png.stat().st_size > 50_000


def test_latency_target_names_the_table_device_and_runtime():
    profiled = load_latency_model(TABLE)
    assert latency_target(pricing_summary(profiled, TABLE, None)) == f"{table_device()}, onnxruntime"
    phone = load_latency_model("pixel1-proxylessnas")
    assert latency_target(pricing_summary(phone, "pixel1-proxylessnas", "224x224x3")) == \
        "Google Pixel 1, TensorFlow Lite"
    assert latency_axis(latency_target(pricing_summary(phone, "pixel1-proxylessnas", None))) == \
        "predicted latency (ms) on Google Pixel 1, TensorFlow Lite"
    unnamed = pricing_summary(FakeLatency(), "fake.csv", None)  # a model without provenance
    assert latency_target(unnamed) == "" and latency_axis("") == "predicted latency (ms)"


def test_a_profiled_table_is_this_hosts_only_on_a_machine_like_the_one_that_measured_it(monkeypatch):
    import nas.latency.runner as runner

    profiled = load_latency_model(TABLE)
    monkeypatch.setattr(runner, "cpu_model", lambda: profiled.provenance["cpu_model"])
    monkeypatch.setattr("platform.machine", lambda: profiled.provenance["machine"])
    assert latency_target(pricing_summary(profiled, TABLE, None)) == "xeon2c (this host), onnxruntime"
    monkeypatch.setattr(runner, "cpu_model", lambda: "Some Other CPU")
    assert latency_target(pricing_summary(profiled, TABLE, None)) == \
        "xeon2c (profiled on another machine), onnxruntime"
    phone = load_latency_model("pixel1-proxylessnas")  # measured by others: never this host's
    assert "another machine" not in latency_target(pricing_summary(phone, "pixel1-proxylessnas", None))
