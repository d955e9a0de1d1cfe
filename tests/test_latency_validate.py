import json

import numpy as np
import pytest

from nas.latency import runner
from nas.latency.profile import profile, table_provenance
from nas.latency.table import LatencyTable
from nas.latency.validate import fit_composition, fit_linear, flops_baseline, metrics, plot, sample_networks, validate
from nas.space import get_space

FAST = runner.Protocol(warmup=1, repeats=4, rounds=2, retries=0, cpu=None)


def test_metrics_by_hand():
    m = metrics([1.0, 2.15, 2.9, 4.5], [1.0, 2.0, 3.0, 4.0])
    assert m["within_5pct"] == 0.5 and m["within_10pct"] == 0.75  # errors 0, +7.5%, -3.3%, +12.5%
    assert m["mape_pct"] == pytest.approx((0 + 7.5 + 10 / 3 + 12.5) / 4)
    assert m["kendall_tau"] == pytest.approx(1.0) and m["spearman"] == pytest.approx(1.0)


def test_fit_linear_recovers_a_line():
    x = np.array([1.0, 2.0, 5.0, 9.0])
    a, b = fit_linear(x, 3 * x + 0.5)
    assert (a, b) == (pytest.approx(3.0), pytest.approx(0.5))


def test_sample_networks_is_deterministic_and_distinct():
    space = get_space("mobilenet_v1")
    first = sample_networks(space, 5, seed=1)
    assert [s for s, _, _ in first] == [s for s, _, _ in sample_networks(space, 5, seed=1)]
    assert len({spec.arch_id for _, spec, _ in first}) == 5


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    space = get_space("mobilenet_v1", (8, 8, 1), 10)
    ops = {op for seed in (0, 100_000) for _, _, net in sample_networks(space, 4, seed) for op in net}
    path = tmp_path_factory.mktemp("v") / "t.csv"
    prov = table_provenance(FAST, "onnxruntime", (8, 8, 1), 10, ["mobilenet_v1"], device="test")
    profile(ops, path, prov, FAST, progress=False)
    return LatencyTable.from_file(path), space


def test_validate_then_compose_then_baseline_on_the_same_networks(small_table, tmp_path):
    table, space = small_table
    report = validate(table, space, 4, 0, FAST, progress=False)
    assert report["n"] == 4 and len(report["networks"]) == 4
    for key in ("table_prediction", "flops_baseline"):
        assert 0 <= report[key]["within_10pct"] <= 1 and report[key]["mape_pct"] >= 0
    assert "cross-fitted" in report["flops_baseline"]["fitted"]
    json.dumps(report)  # a JSON record
    plot(report, str(tmp_path / "fit.png"))
    assert (tmp_path / "fit.png").stat().st_size > 1000

    nets = [ops for _, _, ops in sample_networks(space, 4, 100_000)]
    measured = [table.predict(ops) * 1.3 + 0.01 for ops in nets]  # a known systematic gap
    comp = fit_composition(table, nets, measured, {"space": "mobilenet_v1"})
    table.composition = comp
    assert [table.predict(ops) for ops in nets] == pytest.approx(measured, rel=1e-6)
    assert comp.fitted["after"]["within_5pct"] == 1.0 and len(comp.fitted["macs"]) == 4
    table.save(tmp_path / "t.csv")
    reloaded = LatencyTable.from_file(tmp_path / "t.csv")
    assert reloaded.composition.scale == pytest.approx(comp.scale)
    _, how = flops_baseline(reloaded, [1, 2], [1.0, 2.0])
    assert "composition networks" in how


def test_compose_keeps_the_weight_term_only_when_it_helps(small_table):
    from nas.latency.table import Composition, weight_mb

    table, space = small_table
    table.composition = Composition(overhead_ms=table.composition.overhead_ms)
    nets = [ops for seed in (0, 100_000) for _, _, ops in sample_networks(space, 4, seed)]
    plain = [table.predict(ops) for ops in nets]
    with_weights = [p * 1.1 + 40.0 * weight_mb(ops) for p, ops in zip(plain, nets)]
    comp = fit_composition(table, nets, with_weights, {})
    assert comp.fitted["terms"] == "scale+offset+per_mb" and comp.per_mb_ms == pytest.approx(40.0, rel=1e-3)
    comp = fit_composition(table, nets, [p * 1.1 for p in plain], {})
    assert comp.scale == pytest.approx(1.1, rel=1e-3)
