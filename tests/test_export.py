"""Export: choosing from a run, ONNX with folded batch norm, int8/fp16, parity, the card, the
torch-free check and the errors. Kept fast: synthetic data, one-epoch retraining on 600
images, a short latency protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nas.cli import main as cli_main
from nas.config import parse_config
from nas.data import load_dataset
from nas.experiment import run_experiment
from nas.export import ExportError, ExportOptions, export_network
from nas.export.pipeline import FORMAT_FILES, OUTPUT_FILES, prepare_output
from nas.export.quantize import Int8Options, convert_fp16, quantize_int8
from nas.export.retrain import full_training_set, load_weights, retrain_budget
from nas.export.selection import select_architecture
from nas.export.to_onnx import export_onnx, randomize_batchnorm
from nas.export.verify import unfolded_batchnorms
from nas.latency.runner import Protocol
from nas.report import open_run, pareto_frame, trials_frame
from nas.space import get_reference, get_space, list_references, list_spaces
from nas.train import build_network
from tests.fakes import FakeEvaluator, FakeLatency
from tests.test_search import make_config

FAST = Protocol(warmup=1, repeats=4, rounds=2, retries=0)
QUICK = ExportOptions(calibration_images=32, parity_images=24, sample_images=8, protocol=FAST)
ROOT = Path(__file__).resolve().parents[1]


def make_run(folder: Path, **changes) -> Path:
    config = make_config(folder, space="hybrid", trials=6, dataset={"name": "synthetic"}, **changes)
    run_experiment(config, progress=False, evaluator=FakeEvaluator(), latency_model=FakeLatency(),
                   log=lambda line: None)
    return config.output_dir()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


@pytest.fixture(scope="module")
def exported(run_folder, synthetic, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "fast"
    export_network(run_folder, out, pareto_index=0, retrain_epochs=1, dataset=synthetic, options=QUICK,
               progress=False, log=lambda line: None)
    return out


def onnx_outputs(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def random_network(spec):
    torch.manual_seed(0)
    model = build_network(spec)
    randomize_batchnorm(model)  # non-trivial statistics, so folding is exercised
    return model.eval()


def check_parity(model, spec, path, batch: int = 3) -> None:
    proto = export_onnx(model, spec.input, path, dynamic_batch=True)
    # a batch norm after a sum (NAS-Bench-201's final BN+ReLU) has no conv to fold into and stays
    assert unfolded_batchnorms(proto) == []
    bns = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert sum(n.op_type == "BatchNormalization" for n in proto.graph.node) < max(1, bns)  # folding happened
    h, w, c = spec.input
    x = np.random.default_rng(0).standard_normal((batch, c, h, w)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = onnx_outputs(path, x)
    assert got.shape == (batch, spec.classes)
    # 1e-4 for logits up to 10 (trained networks); float32 error grows with the magnitude, and a
    # random NAS-Bench-201 network, whose cells sum unnormalised paths, reaches 1e6
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max() / 10)


# ---------------------------------------------------------------------------------------
# ONNX export with folded batch norm: every reference network and every space


@pytest.mark.parametrize("name", list_references())
def test_reference_networks_export_folded_and_match_pytorch(name, tmp_path):
    spec = get_reference(name, (28, 28, 1), 10)
    model = random_network(spec)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) or name.startswith("squeezenet")
    check_parity(model, spec, tmp_path / "m.onnx")


@pytest.mark.parametrize("space", list_spaces())
def test_random_specs_of_every_space_export_and_match(space, tmp_path):
    spec = get_space(space, (28, 28, 1), 10).sample(3)
    check_parity(random_network(spec), spec, tmp_path / "m.onnx")


def test_folding_changes_nothing_the_network_computes(tmp_path):
    """The folded ONNX graph has one Conv per Conv2d and the same outputs as unfolded PyTorch,
    for batch-norm statistics far from the identity."""
    spec = get_reference("mobilenet_v2_0.35", (28, 28, 1), 10)
    model = random_network(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.01, 9.0)
                m.running_mean.uniform_(-3, 3)
    proto = export_onnx(model, spec.input, tmp_path / "m.onnx")
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == convs
    check_parity(model, spec, tmp_path / "m.onnx")


# ---------------------------------------------------------------------------------------
# int8 and fp16


@pytest.mark.parametrize("scheme, zero_point_type", [("s8s8", onnx.TensorProto.INT8),
                                                     ("u8s8", onnx.TensorProto.UINT8)])
def test_quantized_models_run(scheme, zero_point_type, tmp_path, synthetic):
    spec = get_reference("mobilenet_v1_0.25", (28, 28, 1), 10)
    model = random_network(spec)
    export_onnx(model, spec.input, tmp_path / "m.onnx", dynamic_batch=True)
    calibration = synthetic.normalize(synthetic.train.images[:16]).numpy()
    quantize_int8(tmp_path / "m.onnx", tmp_path / "q.onnx", calibration, Int8Options(scheme=scheme))
    convert_fp16(tmp_path / "m.onnx", tmp_path / "h.onnx")
    q, h = onnx.load(tmp_path / "q.onnx"), onnx.load(tmp_path / "h.onnx")
    quantize_nodes = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert quantize_nodes and any(n.op_type == "DequantizeLinear" for n in q.graph.node)
    inits = {i.name: i for i in q.graph.initializer}
    assert inits[quantize_nodes[0].input[2]].data_type == zero_point_type  # activations: s8 or u8
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in h.graph.initializer)
    assert h.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    x = synthetic.normalize(synthetic.test.images[:5]).numpy()
    reference = onnx_outputs(tmp_path / "m.onnx", x)
    for path in (tmp_path / "q.onnx", tmp_path / "h.onnx"):
        out = onnx_outputs(path, x)
        assert out.shape == (5, 10) and np.isfinite(out).all()
        assert np.abs(out - reference).max() < 0.5 * np.abs(reference).max() + 1e-3  # close, not exact


def test_quantize_rejects_empty_calibration(tmp_path):
    spec = get_reference("mobilenet_v1_0.25", (28, 28, 1), 10)
    export_onnx(random_network(spec), spec.input, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="calibration images"):
        quantize_int8(tmp_path / "m.onnx", tmp_path / "q.onnx", np.zeros((0, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="int8 scheme"):
        Int8Options(scheme="u8u8")


# ---------------------------------------------------------------------------------------
# the export of a run


def test_export_writes_every_file_and_an_honest_card(exported, run_folder):
    for name in ("arch.json", "model.pt", *FORMAT_FILES.values(), "card.json", "README.md", "sample.npz",
                 "export_check.py"):
        assert (exported / name).is_file(), name
    card = json.loads((exported / "card.json").read_text())
    front = pareto_frame(trials_frame(open_run(run_folder)))
    assert card["source"]["trial"] == int(front.iloc[0]["number"])
    assert card["arch"]["arch_id"] == front.iloc[0]["arch_id"]
    assert json.loads((exported / "arch.json").read_text())["input"] == [28, 28, 1]
    # the fake table cannot be loaded again, so the prediction is the one the search recorded
    assert card["formats"]["fp32"]["predicted_latency_ms"] == pytest.approx(front.iloc[0]["latency_ms"])
    assert "recorded by the search" in card["predicted"]["source"]
    checks = card["checks"]
    assert checks["fp32_parity"]["passed"] and checks["fp32_parity"]["max_abs_diff"] <= 1e-4
    assert checks["batchnorm_nodes"] == checks["batchnorm_nodes_after_conv"] == 0 and checks["dynamic_batch"]
    assert card["int8"] == {"format": "QDQ", "scheme": "S8S8", "calibration": "minmax", "per_channel": True}
    for name in ("fp32", "int8", "fp16"):
        entry = card["formats"][name]
        assert entry["size_bytes"] == (exported / entry["file"]).stat().st_size
        assert entry["latency_ms"]["median"] > 0 and entry["latency_ms"]["n"] >= 4
        assert 0 <= entry["test_accuracy"] <= 1 and entry["max_abs_diff"] >= 0
    assert card["formats"]["int8"]["size_bytes"] < card["formats"]["fp32"]["size_bytes"]
    assert card["formats"]["int8"]["runtime_ops"].get("QLinearConv", 0) > 0
    for name in ("int8", "fp16"):  # a slower reduced-precision format is called out in plain words
        slower = card["formats"][name]["latency_ms"]["median"] > card["formats"]["fp32"]["latency_ms"]["median"]
        assert slower == any(note.startswith(f"{name} is SLOWER than fp32") for note in card["notes"])
    readme = (exported / "README.md").read_text()
    assert "ONNX int8 (QDQ)" in readme and card["arch"]["spec_string"] in readme


def test_saved_weights_reproduce_the_exported_logits(exported):
    spec = json.loads((exported / "arch.json").read_text())
    from nas.spec import ArchSpec

    model = load_weights(ArchSpec.from_dict(spec), exported / "model.pt")
    with np.load(exported / "sample.npz") as sample:
        x, logits = sample["input"], sample["logits"]
    with torch.no_grad():
        assert np.abs(model(torch.from_numpy(x)).numpy() - logits).max() <= 1e-5
    assert np.abs(onnx_outputs(exported / "model.onnx", x) - logits).max() <= 1e-4


FAKE_TORCH = "raise ImportError('torch must not be needed to run an export')\n"


def test_export_folder_runs_with_onnxruntime_alone(exported, tmp_path):
    """The check imports neither torch nor project code beyond itself: a 'torch' that fails
    on import is first on the path."""
    (tmp_path / "torch.py").write_text(FAKE_TORCH)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    module = subprocess.run([sys.executable, "-m", "nas.export.check", str(exported)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert module.returncode == 0, module.stderr
    assert "all 3 formats load and run with onnxruntime alone" in module.stdout
    copy = subprocess.run([sys.executable, str(exported / "export_check.py"), str(exported)],
                          env={**env, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert copy.returncode == 0, copy.stderr
    assert "fp32  ok" in copy.stdout and "int8  ok" in copy.stdout and "fp16  ok" in copy.stdout
    # the module's former name, which the READMEs of earlier exports print, still checks the folder
    former = subprocess.run([sys.executable, "-m", "nas.export_check", str(exported)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert former.returncode == 0, former.stderr
    assert "all 3 formats load" in former.stdout and "nas.export.check" in former.stderr


def test_export_check_imports_no_heavy_dependency():
    """Importing the checker (and so the packages nas and nas.export above it) loads none of
    the heavy libraries: `python -m nas.export.check` starts fast and works where only
    onnxruntime runs well."""
    probe = ("import sys, nas.export.check; "
             "print(sorted(m for m in ('torch', 'optuna', 'pandas', 'matplotlib', 'onnx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_export_check_fails_on_a_damaged_folder(exported, tmp_path):
    from nas.export.check import CheckError, check_folder

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("card.json", "sample.npz", "model.onnx"):
        (damaged / name).write_bytes((exported / name).read_bytes())
    with pytest.raises(CheckError, match="model.int8.onnx is missing"):
        check_folder(str(damaged))
    with pytest.raises(CheckError, match="not an export folder"):
        check_folder(str(tmp_path))


# ---------------------------------------------------------------------------------------
# choosing the architecture


def test_selection_by_trial_index_and_latency(run_folder):
    front = pareto_frame(trials_frame(open_run(run_folder)))
    assert select_architecture(run_folder, trial=2).trial == 2
    last = len(front) - 1
    assert select_architecture(run_folder, pareto_index=last).trial == int(front.iloc[last]["number"])
    limit = float(front["latency_ms"].iloc[len(front) // 2])
    chosen = select_architecture(run_folder, max_latency_ms=limit)
    fast = front[front["latency_ms"] <= limit]
    assert chosen.predicted_ms <= limit and chosen.score == pytest.approx(fast["score"].max())


@pytest.mark.parametrize("kwargs, message", [
    ({"trial": 99}, "unknown trial 99: the run has trials 0..5"),
    ({"pareto_index": 50}, "--pareto-index 50 is out of range"),
    ({"max_latency_ms": 1e-6}, "no Pareto network is predicted at or under 1e-06 ms; the fastest takes"),
    ({}, "exactly one of --trial N, --pareto-index K or --max-latency MS"),
    ({"trial": 1, "pareto_index": 0}, "got trial, pareto_index"),
])
def test_selection_errors_name_the_bad_value(run_folder, kwargs, message):
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(".", r"\.").replace("+", r"\+")):
        select_architecture(run_folder, **kwargs)


def test_missing_run_folder_and_empty_front(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        select_architecture(tmp_path / "nowhere", pareto_index=0)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ExportError, match="has no config.yaml"):
        select_architecture(tmp_path / "plain", pareto_index=0)
    (tmp_path / "plain" / "config.yaml").write_text("name: x\nspace: hybrid\nlatency: {table: t.csv}\ntrails: 3\n")
    typo = r"not a valid experiment config: unknown key trails \(did you mean 'trials'\?\)"
    with pytest.raises(ExportError, match=typo):
        select_architecture(tmp_path / "plain", pareto_index=0)
    # a latency limit nothing meets: every trial is infeasible and none is evaluated
    empty = make_run(tmp_path / "empty", objective={"max_latency_ms": 1e-9})
    with pytest.raises(ExportError, match="Pareto front of .* is empty"):
        select_architecture(empty, max_latency_ms=5.0)


# ---------------------------------------------------------------------------------------
# output folder, weights and retraining settings


def test_output_folder_errors_lose_nothing(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        prepare_output(blocker)
    with pytest.raises(ExportError, match="is not writable"):
        prepare_output(blocker / "sub")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "card.json").write_text("{}")
    with pytest.raises(ExportError, match="already holds an export .*card.json.*--overwrite"):
        prepare_output(earlier)
    assert (earlier / "card.json").read_text() == "{}" and blocker.read_text() == "keep me"
    assert prepare_output(earlier, overwrite=True) == earlier
    interrupted = tmp_path / "interrupted"  # killed before its card was written
    interrupted.mkdir()
    (interrupted / "model.onnx").write_bytes(b"half")
    with pytest.raises(ExportError, match=r"an interrupted export \(no card.json\) \(model.onnx\)"):
        prepare_output(interrupted)


def test_weights_that_do_not_fit_are_refused(run_folder, tmp_path):
    other = build_network(get_reference("mobilenet_v1_0.25", (28, 28, 1), 10))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for path, message in ((tmp_path / "other.pt", "does not fit architecture"),
                          (tmp_path / "junk.pt", "is not a PyTorch state_dict"),
                          (tmp_path / "missing.pt", "does not exist")):
        with pytest.raises(ExportError, match=message):
            export_network(run_folder, tmp_path / "out", trial=0, weights=path, options=QUICK, log=lambda line: None)
    with pytest.raises(ExportError, match="not both"):
        export_network(run_folder, tmp_path / "out", trial=0, weights=tmp_path / "other.pt", retrain_epochs=1)


def test_retraining_uses_the_whole_training_set_and_the_search_settings(synthetic):
    full = full_training_set(synthetic)
    assert len(full.train) == len(synthetic.train) + len(synthetic.val)
    assert full.test is synthetic.test and full.mean == synthetic.mean
    def run_config(**fields):
        return parse_config({"name": "t", "space": "hybrid", "latency": {"table": "t.csv"}, "trials": 1, **fields})

    config = run_config(seed=4, evaluator={"kind": "train", "options": {"epochs": 1, "fraction": 0.2, "lr": 0.05,
                                                                        "batch_size": 64, "max_seconds": 9}})
    budget = retrain_budget(config, 7)
    assert (budget.epochs, budget.fraction, budget.lr, budget.batch_size, budget.max_seconds, budget.seed) == \
        (7, 1.0, 0.05, 64, None, 4)
    assert retrain_budget(config, 7, seed=9).seed == 9
    assert retrain_budget(run_config(evaluator={"kind": "proxy", "options": {"batches": 2}}), 3).epochs == 3
    with pytest.raises(ExportError, match="positive integer"):
        retrain_budget(config, 0)


# ---------------------------------------------------------------------------------------
# the command line


def test_cli_exports_with_given_weights(run_folder, tmp_path, capsys):
    selection = select_architecture(run_folder, trial=1)
    torch.save(build_network(selection.spec).state_dict(), tmp_path / "w.pt")
    code = cli_main(["export", str(run_folder), "--trial", "1", "--weights", str(tmp_path / "w.pt"),
                     "-o", str(tmp_path / "out"), "--repeats", "4", "--warmup", "1", "--parity-images", "8",
                     "--calibration-images", "16", "--int8-scheme", "u8s8"])
    out = capsys.readouterr().out
    assert code == 0, out
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    assert card["weights"]["origin"] == "loaded" and card["int8"]["scheme"] == "U8S8"
    assert "int8" in out
    wrote = next(line for line in out.splitlines() if line.startswith("wrote "))
    assert all(name in wrote and (tmp_path / "out" / name).is_file() for name in OUTPUT_FILES)


@pytest.mark.parametrize("args, message", [
    (["--trial", "99"], "error: unknown trial 99"),
    (["--pareto-index", "9"], "error: --pareto-index 9 is out of range"),
    (["--max-latency", "0.000001"], "error: no Pareto network is predicted"),
])
def test_cli_bad_choices_exit_2(run_folder, tmp_path, capsys, args, message):
    assert cli_main(["export", str(run_folder), *args, "-o", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_cli_missing_run_folder(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "none"), "--trial", "0", "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
