"""Profiling, the stand-alone runner on a bundle, and the import of its output (tiny ops, few
repeats: these check behaviour, not speed)."""

import json
import zipfile

import pytest

from nas.latency import runner
from nas.latency.bundle import write_bundle
from nas.latency.importers import import_table
from nas.latency.profile import profile, table_provenance
from nas.latency.table import LatencyTable
from nas.ops import OpInstance, resolve
from nas.space import get_space

FAST = runner.Protocol(warmup=1, repeats=4, rounds=2, retries=1, max_spread=10.0, cpu=None)


@pytest.fixture(scope="module")
def tiny_ops():
    ops = resolve(get_space("mobilenet_v1", (8, 8, 1), 10).sample(0))
    return sorted(set(ops), key=lambda o: o.key)


def _provenance(runtime="onnxruntime"):
    return table_provenance(FAST, runtime, (8, 8, 1), 10, ["mobilenet_v1"], device="test-box")


def test_measure_summarises_every_call():
    calls = {"a": lambda: None, "b": lambda: sum(range(100))}
    done = []
    results = runner.measure(calls, FAST, on_done=done.append)
    assert sorted(done) == ["a", "b"]
    for stats in results.values():
        assert stats["n"] == 4 and stats["p10"] <= stats["median"] <= stats["p90"]
        assert stats["attempts"] == 1


def test_unsteady_models_are_measured_again():
    import itertools

    slow = itertools.cycle([0, 0, 0, 0, 1, 1, 1, 1])  # the second round is slower

    def call():
        if next(slow):
            sum(range(20000))

    strict = runner.Protocol(warmup=0, repeats=4, rounds=2, retries=2, max_spread=0.01)
    stats = runner.measure({"x": call}, strict)["x"]
    assert stats["attempts"] > 1


def test_overhead_model_is_a_valid_onnx_model():
    import onnx

    model = onnx.load_from_string(runner.OVERHEAD_MODEL)
    onnx.checker.check_model(model)
    stats = runner.measure_overhead(FAST)
    assert 0 < stats["median"] < 1.0


def test_profile_writes_a_table_and_resumes(tmp_path, tiny_ops):
    out = tmp_path / "t.csv"
    table, measured, left = profile(tiny_ops, out, _provenance(), FAST, limit=3, progress=False)
    assert measured == 3 and left == len(tiny_ops) - 3
    loaded = LatencyTable.from_file(out)
    assert len(loaded) == 3
    assert loaded.provenance["device"] == "test-box" and loaded.provenance["input"] == "8x8x1"
    assert loaded.composition.overhead_ms > 0
    first = dict(loaded.entries)
    table, measured, left = profile(tiny_ops, out, _provenance(), FAST, progress=False)
    assert measured == len(tiny_ops) - 3 and left == 0
    loaded = LatencyTable.from_file(out)
    assert all(loaded.entries[k]["median"] == pytest.approx(v["median"], rel=1e-5) for k, v in first.items())
    _, measured, _ = profile(tiny_ops, out, _provenance(), FAST, progress=False)
    assert measured == 0  # nothing left: nothing measured again
    assert loaded.predict(resolve(get_space("mobilenet_v1", (8, 8, 1), 10).sample(0))) > 0


def test_profile_refuses_to_mix_conditions(tmp_path, tiny_ops):
    out = tmp_path / "t.csv"
    profile(tiny_ops[:1], out, _provenance(), FAST, progress=False)
    other = {**_provenance(), "threads": 2}
    with pytest.raises(ValueError, match="threads"):
        profile(tiny_ops, out, other, FAST, progress=False)


def test_torch_runtime(tmp_path, tiny_ops):
    out = tmp_path / "torch.csv"
    table, measured, _ = profile(tiny_ops[:2], out, _provenance("torch"), FAST, runtime="torch", progress=False)
    assert measured == 2 and LatencyTable.from_file(out).provenance["runtime"] == "torch"


def test_runner_on_a_bundle_then_import(tmp_path, tiny_ops):
    bundle = tmp_path / "ops.zip"
    n = write_bundle(tiny_ops, bundle, {"input": "8x8x1", "classes": 10, "spaces": ["mobilenet_v1"],
                                        "git_revision": "abc"}, progress=False)
    assert n == len(tiny_ops)
    with zipfile.ZipFile(bundle) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert len([f for f in z.namelist() if f.endswith(".onnx")]) == n
    assert {e["key"] for e in manifest["ops"]} == {op.key for op in tiny_ops}
    out = tmp_path / "device.csv"
    assert runner.main([str(bundle), "-o", str(out), "--warmup", "1", "--repeats", "4", "--rounds", "2",
                        "--chunk", "3", "--device", "pi"]) == 0
    table = import_table(out, "runner")
    assert set(table.entries) == {op.key for op in tiny_ops}
    assert table.provenance["device"] == "pi" and table.provenance["origin"]["format"] == "runner"
    assert table.provenance["git_revision"] == "abc" and table.composition.overhead_ms > 0
    table.save(tmp_path / "imported.csv")
    assert len(LatencyTable.from_file(tmp_path / "imported.csv")) == n
    # a second run resumes: every op is already there, so nothing is measured again
    before = out.read_text()
    runner.main([str(bundle), "-o", str(out), "--repeats", "4", "--rounds", "2"])
    assert out.read_text() == before


def test_runner_rejects_what_is_not_a_bundle(tmp_path, capsys):
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    assert runner.main([str(bad), "-o", str(tmp_path / "x.csv")]) == 2
    assert "not a latency bundle" in capsys.readouterr().err
    assert runner.main([str(bad), "-o", str(tmp_path / "x.csv"), "--repeats", "0"]) == 2


def test_runner_is_self_contained():
    """runner.py must run on a device with only numpy and onnxruntime: no project imports,
    no torch, onnx, pandas or tqdm at module level or inside."""
    import ast
    from pathlib import Path

    source = Path(runner.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    allowed = {"__future__", "argparse", "base64", "csv", "datetime", "json", "math", "os", "platform", "random",
               "sys", "time", "zipfile", "numpy", "onnxruntime"}
    assert imported <= allowed, imported - allowed


def test_import_runner_rejects_a_csv_without_sidecar(tmp_path):
    path = tmp_path / "device.csv"
    path.write_text("key,type\n")
    with pytest.raises(ValueError, match="no .*device.json beside it"):
        import_table(path, "runner")


def test_onnx_export_folds_and_checks(tmp_path):
    import onnx

    from nas.build import build_op
    from nas.export.to_onnx import export_onnx

    op = OpInstance("conv", (8, 8, 3), (8, 8, 4), kernel=3, act="relu", bn=True, pad=1)
    model = export_onnx(build_op(op), op.input, tmp_path / "m.onnx")
    assert {n.op_type for n in model.graph.node} <= {"Conv", "Relu"}
    assert onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    dynamic = export_onnx(build_op(op), op.input, dynamic_batch=True)
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_preempted_calls_are_timed_again():
    class AlwaysPreempted:
        def __init__(self):
            self.value, self.discarded = 0, 0

        def wait_ns(self):
            self.value += 1
            return self.value

    class NeverPreempted(AlwaysPreempted):
        def wait_ns(self):
            return 0

    guard = AlwaysPreempted()
    samples = runner.time_calls(lambda: None, 5, guard)
    assert guard.discarded == 19 and len(samples) == 1  # gives up after 4x the count, keeps the last
    quiet = NeverPreempted()
    assert len(runner.time_calls(lambda: None, 5, quiet)) == 5 and quiet.discarded == 0
    real = runner.PreemptionGuard()
    assert real.wait_ns() >= 0
    real.close()
