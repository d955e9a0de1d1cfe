import json
import math
import warnings

import pytest

from nas.latency import LatencyTableError, MissingOpsError, load_latency_model
from nas.latency.table import Composition, EstimatedLatencyWarning, LatencyTable
from nas.latency.tableio import sidecar_path
from nas.ops import resolve
from nas.space import get_space

PROVENANCE = {"device": "test", "cpu_model": "cpu", "machine": "x86_64", "runtime": "onnxruntime",
              "runtime_version": "1", "execution_provider": "CPUExecutionProvider", "threads": 1, "batch": 1,
              "dtype": "float32", "input": "28x28x1", "classes": 10, "spaces": ["mobilenet_v1"],
              "date": "2026-01-01T00:00:00+00:00", "opset": 17}


def _stats(ms: float) -> dict:
    return {"n": 10, "median": ms, "mean": ms, "std": 0.001, "p10": ms * 0.9, "p90": ms * 1.1}


@pytest.fixture()
def network():
    return resolve(get_space("mobilenet_v1").sample(0))


@pytest.fixture()
def table(network):
    ops = {op.key: op for op in network}
    entries = {key: _stats(0.01 * (i + 1)) for i, key in enumerate(ops)}
    return LatencyTable(entries, ops, dict(PROVENANCE), Composition(overhead_ms=0.002))


def test_predict_adds_overhead_once_and_breakdown_sums_to_it(table, network):
    ms = [table.entries[op.key]["median"] for op in network]
    expected = 0.002 + sum(m - 0.002 for m in ms)
    assert table.predict(network) == pytest.approx(expected)
    rows = table.breakdown(network)
    assert [r["key"] for r in rows] == [op.key for op in network]
    assert sum(r["share_ms"] for r in rows) + 0.002 == pytest.approx(expected)
    assert not any(r["estimated"] for r in rows)


def test_fitted_terms_scale_the_sum(table, network):
    table.composition = Composition(overhead_ms=0.002, scale=1.2, offset_ms=0.05)
    ms = [table.entries[op.key]["median"] for op in network]
    assert table.predict(network) == pytest.approx(0.002 + 0.05 + 1.2 * sum(m - 0.002 for m in ms))


def test_round_trip(tmp_path, table, network):
    path = tmp_path / "t.csv"
    table.save(path)
    loaded = LatencyTable.from_file(path)
    assert loaded.entries.keys() == table.entries.keys()
    for key, entry in table.entries.items():
        assert loaded.entries[key]["median"] == pytest.approx(entry["median"], rel=1e-5)
        assert loaded.ops[key] == table.ops[key]
    assert loaded.predict(network) == pytest.approx(table.predict(network), rel=1e-5)
    side = json.loads(sidecar_path(path).read_text())
    assert side["kind"] == "table" and side["rows"] == len(table) and side["input"] == "28x28x1"
    assert side["composition"]["overhead_ms"] == 0.002
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["key", "type", "input", "output"] and header[-6:] == ["n", "median", "mean", "std",
                                                                                "p10", "p90"]


def test_missing_ops_error_lists_keys_and_the_profile_command(tmp_path, table, network):
    table.save(tmp_path / "t.csv")
    other = resolve(get_space("mobilenet_v1").sample(5))
    lacking = table.missing(other)
    assert lacking
    with pytest.raises(MissingOpsError) as info:
        table.predict(other)
    assert isinstance(info.value, ValueError)
    assert info.value.keys == lacking
    message = str(info.value)
    assert all(key in message for key in lacking)
    assert f"nas latency profile --space mobilenet_v1 --input 28x28x1 --classes 10 -o {tmp_path / 't.csv'}" in message


@pytest.mark.parametrize("policy", ["nearest", "interpolate"])
def test_missing_policies_estimate_and_say_so(table, policy):
    other = resolve(get_space("mobilenet_v1").sample(5))
    lacking = set(table.missing(other))
    with pytest.warns(EstimatedLatencyWarning, match=policy):
        ms = table.predict(other, missing=policy)
    assert math.isfinite(ms) and ms > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = table.breakdown(other, missing=policy)
    assert {r["key"] for r in rows if r["estimated"]} == lacking


def test_nearest_policy_picks_the_closest_same_type_op(table):
    # the same op with one more output channel is closest to the measured op itself
    import dataclasses

    measured = next(op for op in table.ops.values() if op.type == "ds")
    twin = dataclasses.replace(measured, output=(*measured.output[:2], measured.output[2] + 8))
    with pytest.warns(EstimatedLatencyWarning):
        ms, estimated = table.op_ms([twin], "nearest")
    assert estimated == [twin.key]
    candidates = [e["median"] for k, e in table.entries.items() if table.ops[k].type == "ds"]
    assert ms[0] in candidates


def test_check_input(table):
    table.check_input((28, 28, 1))
    with pytest.raises(ValueError, match="measured for input 28x28x1, not 224x224x3"):
        table.check_input((224, 224, 3))


def test_unknown_policy_is_rejected(table):
    with pytest.raises(ValueError, match="missing-op policy"):
        LatencyTable({}, {}, PROVENANCE, missing="guess")


# ---- files that must not load


def _saved(tmp_path, table):
    path = tmp_path / "t.csv"
    table.save(path)
    return path


def _edit_row(path, column: str, value: str, row: int = 1):
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("column, value, message", [
    ("median", "nan", "finite number"),
    ("median", "fast", "must be a number"),
    ("p90", "-1", "finite number >= 0"),
    ("n", "2.5", "positive integer"),
    ("kernel", "9", "does not match its fields"),
])
def test_bad_values_are_rejected_with_the_line(tmp_path, table, column, value, message):
    path = _saved(tmp_path, table)
    _edit_row(path, column, value)
    with pytest.raises(LatencyTableError, match=message) as info:
        LatencyTable.from_file(path)
    assert "line 2" in str(info.value)


def test_truncated_file(tmp_path, table):
    path = _saved(tmp_path, table)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(LatencyTableError, match="truncated|do not belong|rows"):
        LatencyTable.from_file(path)


def test_truncated_last_row(tmp_path, table):
    path = _saved(tmp_path, table)
    lines = path.read_text().splitlines()
    lines[-1] = ",".join(lines[-1].split(",")[:5])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LatencyTableError, match="truncated or corrupt"):
        LatencyTable.from_file(path)


def test_sidecar_of_another_table(tmp_path, table, network):
    path = _saved(tmp_path, table)
    other = LatencyTable({k: v for k, v in list(table.entries.items())[:-1]},
                         table.ops, dict(PROVENANCE), Composition())
    other_path = tmp_path / "other.csv"
    other.save(other_path)
    sidecar_path(path).write_text(sidecar_path(other_path).read_text())
    with pytest.raises(LatencyTableError, match="do not belong together"):
        LatencyTable.from_file(path)


@pytest.mark.parametrize("damage, message", [
    (lambda side: side.unlink(), "no provenance file"),
    (lambda side: side.write_text("{not json"), "not valid JSON"),
    (lambda side: side.write_text('{"format": "other"}'), "not a latency table provenance"),
])
def test_bad_sidecar(tmp_path, table, damage, message):
    path = _saved(tmp_path, table)
    damage(sidecar_path(path))
    with pytest.raises(LatencyTableError, match=message):
        LatencyTable.from_file(path)


def test_missing_required_provenance(tmp_path, table):
    path = _saved(tmp_path, table)
    side = json.loads(sidecar_path(path).read_text())
    del side["runtime"]
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(LatencyTableError, match="lacks required field"):
        LatencyTable.from_file(path)


def test_not_a_table(tmp_path, table):
    path = _saved(tmp_path, table)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(LatencyTableError, match="header lacks"):
        LatencyTable.from_file(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LatencyTableError):
        LatencyTable.from_file(path)
    with pytest.raises(LatencyTableError, match="does not exist"):
        LatencyTable.from_file(tmp_path / "nope.csv")


def test_duplicate_key(tmp_path, table):
    path = _saved(tmp_path, table)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(LatencyTableError, match="duplicate key|rows"):
        LatencyTable.from_file(path)


# ---- the public loader


def test_load_latency_model_dispatches_on_kind(tmp_path, table, network):
    path = _saved(tmp_path, table)
    model = load_latency_model(path)
    assert isinstance(model, LatencyTable)
    assert model.predict(network) == pytest.approx(table.predict(network), rel=1e-5)
    assert model.provenance["input"] == "28x28x1"
    assert load_latency_model(path, missing="nearest").missing_policy == "nearest"
    side = json.loads(sidecar_path(path).read_text())
    side["kind"] = "mystery"
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(LatencyTableError, match="unknown latency model kind 'mystery'"):
        load_latency_model(path)


def test_load_latency_model_reads_a_calibrated_model(tmp_path, table, network):
    from nas.latency.calibrate import calibrate

    nets = [resolve(get_space("mobilenet_v1").sample(s)) for s in range(12)]
    model = calibrate(nets, [1.0 + 0.1 * i for i in range(12)], provenance={"input": "28x28x1"})
    path = tmp_path / "cal.json"
    model.save(path)
    loaded = load_latency_model(path)
    assert loaded.predict(network) == pytest.approx(model.predict(network))
    loaded.check_input((28, 28, 1))
