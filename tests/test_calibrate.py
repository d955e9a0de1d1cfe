import json
import random

import numpy as np
import pytest

from nas.latency.calibrate import (
    CalibratedLatencyModel,
    CalibrationError,
    calibrate,
    fit_additive,
    is_calibrated_model_file,
)
from nas.latency.features import network_is_constant, op_parts
from nas.ops import resolve
from nas.space import get_space
from search_spaces.nasbench201 import format_arch_str

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
COST = {"skip_connect": 0.1, "nor_conv_1x1": 1.0, "nor_conv_3x3": 4.0, "avg_pool_3x3": 0.8}


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench201", (8, 8, 3), 10)


def synthetic_latency(genotype: tuple[str, ...]) -> float:
    """A device that is not additive: dead edges cost nothing unless summed with a zero, every
    live add costs 0.3 ms, and there is 2 ms of fixed overhead."""
    from nas.latency.features import _NB201_EDGES, _cell_flow

    fed, used = _cell_flow(genotype)
    if 3 not in fed:
        return 0.01
    ms = 2.0
    for e, name in enumerate(genotype):
        dst = _NB201_EDGES[e][0]
        zero_sum = any(genotype[k] == "none" for k, (d, _) in enumerate(_NB201_EDGES) if d == dst)
        if name != "none" and (dst in used or zero_sum):
            ms += COST[name]
    for j in (1, 2, 3):
        inputs = sum(1 for e, (d, _) in enumerate(_NB201_EDGES) if d == j and genotype[e] != "none")
        if j in used:
            ms += 0.3 * max(inputs - 1, 0)
    return ms


def sample(space, n: int, seed: int):
    rng = random.Random(seed)
    genotypes = [tuple(rng.choice(OPS) for _ in range(6)) for _ in range(n)]
    nets = [resolve(space.from_arch_str(format_arch_str(g))) for g in genotypes]
    return nets, np.array([synthetic_latency(g) for g in genotypes])


def test_calibration_recovers_a_non_additive_device(space):
    train, y_train = sample(space, 120, 0)
    test, y_test = sample(space, 400, 1)
    model = calibrate(train, y_train)
    additive = fit_additive(train, y_train)
    live = ~np.array([network_is_constant(ops) for ops in test])
    rel = np.abs(model.predict_many(test)[live] / y_test[live] - 1)
    rel_additive = np.abs(additive.predict_many(test)[live] / y_test[live] - 1)
    assert np.mean(rel <= 0.02) > 0.95  # noiseless: the context features describe it exactly
    assert np.mean(rel_additive <= 0.10) < 0.8  # while the plain sum cannot
    assert "context" in model.provenance["selected"]["groups"]


def test_a_plain_additive_device_keeps_a_simple_model(space):
    nets, _ = sample(space, 80, 2)
    cost = {"nor_conv_3x3": 3.0, "nor_conv_1x1": 1.0, "avg_pool_3x3": 0.5, "skip_connect": 0.05}
    y = np.array([1.0 + sum(cost.get(n, 0) for op in ops if op.type == "nb201" for n in op.ops) for ops in nets])
    model = calibrate(nets, y)
    live = ~np.array([network_is_constant(ops) for ops in nets])  # those get their own rule
    test, _ = sample(space, 200, 12)
    y_test = np.array([1.0 + sum(cost.get(n, 0) for op in ops if op.type == "nb201" for n in op.ops)
                       for ops in test])
    test_live = ~np.array([network_is_constant(ops) for ops in test])
    assert live.sum() > 60
    rel = np.abs(model.predict_many(test)[test_live] / y_test[test_live] - 1)
    assert np.median(rel) < 0.005 and np.mean(rel < 0.02) > 0.97


def test_parts_of_a_cell_carry_their_graph_context(space):
    # node 2 feeds nothing (edge 3<-2 is none) and node 1 only feeds dead node 2
    spec = space.from_arch_str("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|")
    cell = resolve(spec)[1]
    parts = {p.kind: p.tags for p in op_parts(cell)}
    assert parts["nb201:nor_conv_1x1"] == ("dead",)
    assert parts["nb201:nor_conv_3x3"] == ("dead",)
    assert not network_is_constant(resolve(spec))
    # dead node 2 sums an explicit zero (edge 2<-1 is none): told apart from plain dead code
    spec = space.from_arch_str("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|none~2|")
    parts = {p.kind: p.tags for p in op_parts(resolve(spec)[1])}
    assert parts["nb201:avg_pool_3x3"] == ("dead_zero_sum", "zero_sum")
    assert parts["nb201:nor_conv_3x3"] == ("dead",)
    assert parts["nb201:skip_connect"] == ("zero_sum",)
    assert network_is_constant(resolve(space.from_arch_str(
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|")))


def test_removed_prior_moves_dead_parts_out_of_the_base(space):
    from nas.latency.features import Config, Featurizer

    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|"
    ops = resolve(space.from_arch_str(arch))
    runs = Featurizer(Config(("context",), ("dead",)), None).network(ops)
    removed = Featurizer(Config(("context",), ("dead",), removed=("dead",)), None).network(ops)
    cells = sum(op.type == "nb201" for op in ops)
    # prior "runs": dead convs count in the base and carry a context feature
    assert runs["count:nb201:nor_conv_3x3"] == cells and runs["ctx:nb201:nor_conv_3x3:dead"] == cells
    # prior "removed": the base does not count them; the context feature still says they are there
    assert removed["count:nb201:nor_conv_3x3"] == 0 and removed["ctx:nb201:nor_conv_3x3:dead"] == cells
    assert runs["count:nb201:skip_connect"] == 2 * cells  # edge 2<-0 (dead) and edge 3<-0 (live)
    assert removed["count:nb201:skip_connect"] == cells


def test_selection_picks_the_removed_prior_for_a_device_that_removes_dead_code(space):
    train, y_train = sample(space, 120, 0)  # the synthetic device drops plain dead code
    selected = calibrate(train, y_train).provenance["selected"]
    assert "dead" in selected["removed"] and set(selected["removed"]) <= set(selected["tags"])


def test_constant_networks_get_their_own_latency(space):
    nets, y = sample(space, 200, 3)
    model = calibrate(nets, y)
    constant = resolve(space.from_arch_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert model.predict(constant) == pytest.approx(0.01)
    assert model.breakdown(constant)["constant"]


def test_breakdown_adds_up(space):
    nets, y = sample(space, 100, 4)
    model = calibrate(nets, y)
    report = model.breakdown(nets[0])
    assert report["total_ms"] == pytest.approx(model.predict(nets[0]))
    assert report["total_ms"] == pytest.approx(report["network_ms"] + sum(r["ms"] for r in report["ops"]))
    assert len(report["ops"]) == len(nets[0])


def test_save_load_round_trip(space, tmp_path):
    nets, y = sample(space, 100, 5)
    model = calibrate(nets, y, provenance={"device": "synthetic"})
    path = model.save(tmp_path / "device.calib.json")
    assert is_calibrated_model_file(path)
    loaded = CalibratedLatencyModel.from_file(path)
    assert loaded.provenance["device"] == "synthetic"
    assert loaded.provenance["networks"] == 100
    assert np.allclose(loaded.predict_many(nets), model.predict_many(nets))


def test_calibrating_a_table(space):
    nets, y = sample(space, 100, 6)
    table = {op.key: 0.5 for ops in nets for op in ops}  # a flat, useless table
    model = calibrate(nets, y, table=table)
    assert model.provenance["selected"]["table"]
    rel = np.abs(model.predict_many(nets) / y - 1)
    assert np.median(rel) < 0.05  # the correction does the work
    with pytest.raises(CalibrationError, match="no entry for op"):
        model.predict(resolve(get_space("nasbench201", (16, 16, 3), 10).sample(0)))


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "something-else"}', "not a calibrated latency model"),
    ('{"format": "nas-calibrated-latency", "version": 99}', "version 99"),
    ('{"format": "nas-calibrated-latency", "version": 1}', "version 1; this code reads 2"),
    ('{"format": "nas-calibrated-latency", "version": 2, "config": {"groups": []}}', "corrupt or truncated"),
])
def test_corrupt_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        CalibratedLatencyModel.from_file(path)


def test_truncated_file_is_an_error(space, tmp_path):
    nets, y = sample(space, 60, 7)
    path = calibrate(nets, y).save(tmp_path / "m.json")
    path.write_text(path.read_text()[:200])
    with pytest.raises(CalibrationError, match="not valid JSON"):
        CalibratedLatencyModel.from_file(path)
    with pytest.raises(FileNotFoundError):
        CalibratedLatencyModel.from_file(tmp_path / "missing.json")


def test_bad_training_input(space):
    nets, y = sample(space, 30, 8)
    with pytest.raises(CalibrationError, match="30 networks but 29"):
        calibrate(nets, y[:-1])
    with pytest.raises(CalibrationError, match="positive milliseconds"):
        calibrate(nets, np.r_[y[:-1], -1.0])
    with pytest.raises(CalibrationError, match="at least 50 measured networks"):
        calibrate(nets, y, min_networks=50)
    with pytest.raises(CalibrationError, match="resolved ops"):
        calibrate([["conv"]] * 30, y)


def test_model_file_names_its_format(space, tmp_path):
    nets, y = sample(space, 40, 9)
    data = json.loads(calibrate(nets, y).save(tmp_path / "m.json").read_text())
    assert data["format"] == "nas-calibrated-latency" and data["table"] is None
    assert {"coef", "const_ms"} <= set(data["correction"])


def _measured_csv(space, tmp_path, n=40):
    nets_rng = random.Random(10)
    lines = ["arch,ms"]
    for _ in range(n):
        genotype = tuple(nets_rng.choice(OPS) for _ in range(6))
        lines.append(f"{format_arch_str(genotype)},{synthetic_latency(genotype)}")
    path = tmp_path / "measured.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_calibrate_writes_a_model(space, tmp_path, capsys):
    from nas.cli import main

    measured = _measured_csv(space, tmp_path)
    out = tmp_path / "model.json"
    assert main(["latency", "calibrate", str(measured), "--space", "nasbench201", "--input", "8x8x3",
                 "--device", "synthetic", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["networks"] == 40
    model = CalibratedLatencyModel.from_file(out)
    assert model.provenance["device"] == "synthetic" and model.provenance["input"] == "8x8x3"


@pytest.mark.parametrize("extra, message", [
    (["--k", "41"], "more networks than"),
    (["--space", "mobilenet_v2"], "is not in space 'mobilenet_v2'"),
    (["--ms-column", "latency"], "no column"),
])
def test_cli_calibrate_bad_input(space, tmp_path, capsys, extra, message):
    from nas.cli import main

    measured = _measured_csv(space, tmp_path)
    assert main(["latency", "calibrate", str(measured), "--input", "8x8x3", "-o", str(tmp_path / "m.json"),
                 *extra]) == 2
    assert message in capsys.readouterr().err


def test_load_latency_model_dispatches_to_calibrated_models(space, tmp_path):
    from nas.latency import load_latency_model

    nets, y = sample(space, 60, 13)
    model = calibrate(nets, y, provenance={"input": "8x8x3"})
    loaded = load_latency_model(model.save(tmp_path / "device.json"))
    assert isinstance(loaded, CalibratedLatencyModel)
    assert loaded.predict(nets[0]) == pytest.approx(model.predict(nets[0]))
    loaded.check_input((8, 8, 3))
    with pytest.raises(ValueError, match="calibrated for input 8x8x3"):
        loaded.check_input((28, 28, 1))
