import json
import zipfile

import pytest

from nas.cli import main
from nas.latency.table import Composition, LatencyTable
from nas.ops import resolve
from nas.space import get_reference


def _table(tmp_path, ops, input_shape="28x28x1"):
    entries = {op.key: {"n": 5, "median": 0.1, "mean": 0.1, "std": 0.0, "p10": 0.1, "p90": 0.1} for op in ops}
    prov = {"device": "t", "cpu_model": "c", "machine": "m", "runtime": "onnxruntime", "runtime_version": "1",
            "execution_provider": "CPU", "threads": 1, "batch": 1, "dtype": "float32", "input": input_shape,
            "classes": 10, "spaces": ["mobilenet_v1"], "date": "2026-01-01"}
    table = LatencyTable(entries, {op.key: op for op in ops}, prov, Composition(overhead_ms=0.01))
    path = tmp_path / "t.csv"
    table.save(path)
    return path


def test_predict_prints_ms_and_json_breakdown(tmp_path, capsys):
    ops = resolve(get_reference("mobilenet_v1_0.25"))
    path = _table(tmp_path, ops)
    assert main(["latency", "predict", "mobilenet_v1_0.25", "--table", str(path)]) == 0
    expected = 0.01 + len(ops) * (0.1 - 0.01)
    assert capsys.readouterr().out.startswith(f"{expected:.4f} ms")
    assert main(["latency", "predict", "mobilenet_v1_0.25", "--table", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["latency_ms"] == pytest.approx(expected)
    assert len(data["ops"]) == len(ops) and data["estimated_ops"] == 0 and data["estimated_keys"] == []


def test_predict_missing_ops_names_keys_and_command(tmp_path, capsys):
    ops = resolve(get_reference("mobilenet_v1_0.25"))
    dropped = ops[2]
    assert dropped.type == "ds"
    path = _table(tmp_path, [op for op in ops if op != dropped])
    assert main(["latency", "predict", "mobilenet_v1_0.25", "--table", str(path)]) == 2
    err = capsys.readouterr().err
    assert dropped.key in err
    assert f"nas latency profile --arch 'mobilenet_v1_0.25' --input 28x28x1 --classes 10 -o {path}" in err
    assert main(["latency", "predict", "mobilenet_v1_0.25", "--table", str(path), "--missing", "nearest"]) == 0
    out = capsys.readouterr().out
    assert f"1 of {len(ops)} ops were estimated by the 'nearest' policy" in out


def test_predict_other_input_shape_is_an_error(tmp_path, capsys):
    ops = resolve(get_reference("mobilenet_v1_0.25"))
    path = _table(tmp_path, ops)
    spec = get_reference("mobilenet_v1_0.25", (32, 32, 3), 10)
    arch = tmp_path / "arch.json"
    arch.write_text(spec.to_json())
    assert main(["latency", "predict", str(arch), "--table", str(path)]) == 2
    assert "measured for input 28x28x1, not 32x32x3" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["latency", "profile", "-o", "x.csv"], "give --space S"),
    (["latency", "profile", "--space", "nope", "-o", "x.csv"], "unknown search space 'nope'"),
    (["latency", "predict", "mobilenet_v1_0.25", "--table", "missing.csv"], "does not exist"),
    (["latency", "import", "missing.yaml", "--format", "proxylessnas", "-o", "x.csv"], "does not exist"),
    (["latency", "validate", "--space", "mobilenet_v1", "--table", "missing.csv"], "does not exist"),
])
def test_cli_errors(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_validate_refuses_a_table_that_does_not_cover_the_space(tmp_path, capsys):
    ops = resolve(get_reference("mobilenet_v1_0.25"))
    path = _table(tmp_path, ops)
    assert main(["latency", "validate", "--space", "mobilenet_v1", "--table", str(path), "--n", "2"]) == 2
    assert "nas latency profile --space mobilenet_v1" in capsys.readouterr().err


def test_bundle_cli(tmp_path, capsys):
    out = tmp_path / "ops.zip"
    assert main(["latency", "bundle", "--arch", "mobilenet_v1_0.25", "--input", "8x8x1", "-o", str(out),
                 "--no-progress"]) == 0
    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["provenance"]["input"] == "8x8x1" and manifest["provenance"]["opset"] == 17
    assert "python runner.py ops.zip" in capsys.readouterr().out
