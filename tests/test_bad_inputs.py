"""Bad inputs end as one clear line: exit code 2, no traceback, the message names the bad
value or file and what was expected; nothing is written where the user did not ask.

The command line runs in-process (``nas.cli.main``) in a scratch folder; the broader sweep of
classes lives in benchmarks/bad_inputs.py. Each case here is a regression test for one fix.
"""

from __future__ import annotations

import errno
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import main as cli_main
from nas.evaluate import EvaluatorError, ResultCache, make_evaluator
from nas.experiment import run_experiment
from nas.export.check import CheckError, check_folder
from nas.space import get_reference
from nas.train import Budget, build_network
from tests.fakes import FakeEvaluator, FakeLatency
from tests.test_search import make_config

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "latency_tables" / "mobilenet_v1-28x28x1-ort-xeon2c.csv"


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``nas ARGV``; argparse's own refusals exit 2 too."""
    try:
        code = cli_main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_clear(code: int, output: str, *names: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    for name in names:
        assert name.lower() in output.lower(), f"{name!r} not named in: {output}"


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    config = make_config(tmp_path_factory.mktemp("search"), space="hybrid", trials=5,
                         dataset={"name": "synthetic"})
    run_experiment(config, progress=False, evaluator=FakeEvaluator(), latency_model=FakeLatency(),
                   log=lambda line: None)
    return config.output_dir()


# ---------------------------------------------------------------------------------------
# issue 20, bug 6: the export's choice is checked against the run before anything is written


@pytest.mark.parametrize("choice, names", [
    (["--pareto-index", "-1"], ["--pareto-index -1", "0.."]),
    (["--pareto-index", "99"], ["--pareto-index 99", "0.."]),
    (["--trial", "99"], ["unknown trial 99", "trials 0..4"]),
    (["--trial", "-1"], ["unknown trial -1", "trials 0..4"]),
])
def test_export_refuses_a_choice_outside_the_run(run_folder, scratch, capsys, choice, names):
    code, output = run_cli(capsys, "export", run_folder, *choice, "-o", "out")
    assert_clear(code, output, *names)
    assert not (scratch / "out").exists()


def test_export_refuses_bad_weights_before_creating_the_output_folder(run_folder, scratch, capsys):
    (scratch / "junk.pt").write_bytes(b"not a checkpoint")
    code, output = run_cli(capsys, "export", run_folder, "--trial", "0", "--weights", "junk.pt", "-o", "out")
    assert_clear(code, output, "junk.pt", "state_dict")
    assert not (scratch / "out").exists()


# ---------------------------------------------------------------------------------------
# the command line's own error handling


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(scratch, capsys, monkeypatch):
    import nas.cli.arch

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(nas.cli.arch, "cmd_list", broken)
    code, output = run_cli(capsys, "arch", "list")
    assert code == 1 and "Traceback" not in output
    assert output.strip().splitlines() == [output.strip()]  # one line
    assert "internal error (ZeroDivisionError: division by zero)" in output and "--debug" in output
    with pytest.raises(ZeroDivisionError):
        cli_main(["arch", "list", "--debug"])
    monkeypatch.setenv("NAS_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli_main(["arch", "list"])


def test_a_full_disk_names_the_file(scratch, capsys, monkeypatch):
    import nas.cli.arch

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/t/trials.csv")

    monkeypatch.setattr(nas.cli.arch, "cmd_list", full)
    code, output = run_cli(capsys, "arch", "list")
    assert_clear(code, output, "no space left", "runs/t/trials.csv")


# ---------------------------------------------------------------------------------------
# numbers: ranges on the command line and in evaluator options


@pytest.mark.parametrize("argv, names", [
    (["arch", "sample", "mobilenet_v1", "--seed", "-1"], ["--seed", "-1"]),
    (["arch", "sample", "mobilenet_v1", "--input", "100000x100000x3"], ["100000x100000x3", "8192"]),
    (["arch", "sample", "mobilenet_v1", "--classes", "1000000000000"], ["classes", "1000000000000"]),
    (["latency", "profile", "--arch", "mobilenet_v1_0.25", "-o", "p.csv", "--max-minutes", "nan"],
     ["--max-minutes", "nan"]),
    (["latency", "profile", "--arch", "mobilenet_v1_0.25", "-o", "p.csv", "--cpu", "999"], ["--cpu 999", "range"]),
])
def test_numbers_out_of_range_on_the_command_line(scratch, capsys, argv, names):
    assert_clear(*run_cli(capsys, *argv), *names)
    assert not (scratch / "p.csv").exists()


@pytest.mark.parametrize("kind, options, message", [
    ("tiny", {"batch_size": 10**12}, "batch_size must be an integer >= 1 and <= 4096, got 1000000000000"),
    ("proxy", {"batches": 10**12}, "batches must be an integer >= 1 and <= 1000"),
    ("proxy", {"seed": -1}, "seed must be an integer >= 0"),
    ("train", {"epochs": 10**9}, "epochs must be >= 1 and <= 10000, got 1000000000"),
    ("train", {"batch_size": 10**9}, "batch_size must be >= 1 and <= 65536"),
    ("train", {"max_seconds": float("inf")}, "max_seconds must be a number, got inf"),
    ("tiny", {"val_fraction": float("nan")}, "val_fraction must be a number in (0, 1), got nan"),
    ("tiny", {"split_seed": -3}, "split_seed must be an integer in [0, 4294967295], got -3"),
])
def test_evaluator_options_have_finite_ranges(kind, options, message):
    with pytest.raises(EvaluatorError) as error:
        make_evaluator(kind, **options)
    assert message in str(error.value)


def test_budget_seed_must_fit_the_generators():
    with pytest.raises(ValueError, match=r"seed must be >= 0 and <= 4294967295, got 4294967296"):
        Budget(seed=2**32)


# ---------------------------------------------------------------------------------------
# files the tool loads


def spec_json() -> dict:
    return json.loads(get_reference("mobilenet_v1_0.25", (28, 28, 1), 10).to_json())


@pytest.mark.parametrize("change, names", [
    (lambda s: s["stages"][0][0].update(out=10**12), ["out must be <= 16384", "1000000000000"]),
    (lambda s: s.update(input=[10**6, 10**6, 3]), ["1000000x1000000x3", "too large"]),
    (lambda s: s.update(classes=10**6), ["classes must be <= 100000"]),
    (lambda s: s["stages"].append([s["stages"][0][0]] * 2000), ["blocks", "at most 1000"]),
])
def test_absurd_spec_files_are_refused(scratch, capsys, change, names):
    spec = spec_json()
    change(spec)
    (scratch / "a.json").write_text(json.dumps(spec))
    code, output = run_cli(capsys, "arch", "show", "a.json")
    assert_clear(code, output, *names)


def test_a_spec_file_with_a_key_given_twice_is_refused(scratch, capsys):
    text = json.dumps(spec_json()).replace('"classes": 10', '"classes": 10, "classes": 100', 1)
    (scratch / "a.json").write_text(text)
    code, output = run_cli(capsys, "arch", "show", "a.json")
    assert_clear(code, output, "a.json", "duplicate key 'classes'")
    (scratch / "d.json").mkdir()
    assert_clear(*run_cli(capsys, "arch", "show", "d.json"), "d.json", "is a folder")


def copy_table(folder: Path) -> Path:
    shutil.copyfile(TABLE, folder / "t.csv")
    shutil.copyfile(TABLE.with_suffix(".json"), folder / "t.json")
    return folder / "t.csv"


def test_latency_table_damage_is_named(scratch, capsys):
    from nas.latency import load_latency_model
    from nas.latency.errors import LatencyTableError

    table = copy_table(scratch)
    side = json.loads(table.with_suffix(".json").read_text())
    table.with_suffix(".json").write_text(json.dumps({**side, "composition": {**side["composition"],
                                                                              "overhead_ms": -1.0}}))
    with pytest.raises(LatencyTableError, match=r"t.json: composition overhead_ms .* >= 0; got -1.0"):
        load_latency_model(table)
    text = json.dumps(side).replace('"batch": 1,', '"batch": 1, "batch": 4,', 1)
    table.with_suffix(".json").write_text(text)
    with pytest.raises(LatencyTableError, match=r"t.json is not valid JSON: duplicate key 'batch'"):
        load_latency_model(table)
    table.with_suffix(".json").write_text(json.dumps(side))
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("n")] = "1e30"
    table.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    with pytest.raises(LatencyTableError, match=r"t.csv line 2: n must be a positive integer .*got '1e30'"):
        load_latency_model(table)
    (scratch / "folder.csv").mkdir()
    with pytest.raises(LatencyTableError, match=r"folder.csv is a folder"):
        load_latency_model(scratch / "folder.csv")


PROXYLESS = ("Conv-input:224x224x3-output:112x112x32:\n  count: 982\n  mean: 4.08\n  var: 0.25\n"
             "Logits-input:7x7x1280-output:1000:\n  count: 982\n  mean: 0.31\n  var: 0.05\n")


@pytest.mark.parametrize("text, names", [
    (PROXYLESS + "Conv-input:224x224x3-output:112x112x32:\n  count: 1\n  mean: 9.0\n  var: 0.1\n",
     ["in.yaml", "duplicate key 'Conv-input:224x224x3-output:112x112x32'"]),
    (PROXYLESS.replace("count: 982", "count: 1e400", 1), ["in.yaml", "count must be", "1e400"]),
    ("!!python/object/apply:os.system ['touch PWNED']\n", ["in.yaml", "python/object/apply:os.system"]),
])
def test_imported_tables_refuse_duplicates_absurd_counts_and_tags(scratch, capsys, text, names):
    (scratch / "in.yaml").write_text(text)
    code, output = run_cli(capsys, "latency", "import", "in.yaml", "--format", "proxylessnas", "-o", "out.csv")
    assert_clear(code, output, *names)
    assert not (scratch / "out.csv").exists() and not (scratch / "PWNED").exists()


class Hostile:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('code ran')",))


def checkpoints(folder: Path) -> dict[str, Path]:
    files = {"empty": b"", "junk": b"\x00\xff" * 64, "pickle": pickle.dumps({"w": Hostile()})}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.pt"
        paths[name].write_bytes(content)
    torch.save({"w": Hostile()}, folder / "torch-hostile.pt")
    torch.save(torch.zeros(3), folder / "tensor.pt")
    paths["torch-hostile"], paths["tensor"] = folder / "torch-hostile.pt", folder / "tensor.pt"
    return paths


@pytest.mark.parametrize("name, names", [
    ("empty", ["not a PyTorch state_dict"]),
    ("junk", ["not a PyTorch state_dict"]),
    ("pickle", ["not a PyTorch state_dict", "unsafe"]),
    ("torch-hostile", ["not a PyTorch state_dict"]),
    ("tensor", ["holds a Tensor, not a state_dict"]),
])
def test_train_init_refuses_damaged_and_hostile_checkpoints(scratch, capsys, name, names):
    path = checkpoints(scratch)[name]
    (scratch / "w").mkdir()
    path.rename(scratch / "w" / "weights.pt")
    code, output = run_cli(capsys, "train", "mobilenet_v1_0.25", "--dataset", "synthetic", "--init", "w")
    assert_clear(code, output, "w/weights.pt", *names)
    assert not (scratch / "PWNED").exists()  # the pickle's code never ran


def test_train_save_is_checked_before_training(scratch, capsys):
    (scratch / "file.txt").write_text("keep me")
    code, output = run_cli(capsys, "train", "mobilenet_v1_0.25", "--dataset", "synthetic", "--save", "file.txt")
    assert_clear(code, output, "--save folder 'file.txt' is not writable: it is a file, not a folder")
    assert "epoch" not in output and (scratch / "file.txt").read_text() == "keep me"


def test_damaged_cache_records_are_skipped_with_a_warning(tmp_path):
    good = {"arch_id": "a", "budget_key": "k", "metrics": {"naswot": 1.0}}
    lines = [json.dumps(good), json.dumps({**good, "arch_id": "b", "metrics": "high"}), "[1, 2]",
             json.dumps({**good, "arch_id": "c", "metrics": {"naswot": float("nan")}}),
             json.dumps({**good, "arch_id": "d", "metrics": {"accuracy": float("nan"), "status": "diverged"}})]
    (tmp_path / "cache.jsonl").write_text("\n".join(lines) + "\n")
    cache = ResultCache(tmp_path / "cache.jsonl")
    with pytest.warns(UserWarning, match="cache.jsonl: skipping an unreadable cache line") as warned:
        assert cache.get("a", "k") == {"naswot": 1.0}
    assert len(warned) == 3
    assert cache.get("b", "k") is None and cache.get("c", "k") is None
    assert cache.get("d", "k")["status"] == "diverged"  # a diverged training is a result, NaN and all


# ---------------------------------------------------------------------------------------
# exported cards and measured-network files


def export_folder(folder: Path, card: dict, sample: dict | None = None) -> str:
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps(card))
    sample = sample or {"input": np.zeros((2, 1, 8, 8), np.float32), "logits": np.zeros((2, 10), np.float32),
                        "labels": np.zeros(2, np.int64)}
    np.savez(folder / "sample.npz", **sample)
    return str(folder)


GOOD_CARD = {"formats": {"fp32": {"file": "model.onnx"}}, "checks": {"fp32_parity": {"tolerance": 1e-4}}}


def test_export_check_refuses_a_card_with_a_key_given_twice(tmp_path):
    folder = export_folder(tmp_path / "x", GOOD_CARD)
    (tmp_path / "x" / "card.json").write_text(json.dumps(GOOD_CARD).replace('{"formats"', '{"formats": {}, "formats"'))
    with pytest.raises(CheckError, match="card.json is not valid JSON: duplicate key 'formats'"):
        check_folder(folder)


@pytest.mark.parametrize("card, sample, message", [
    ({}, None, "card.json: expected an object with a 'formats' object"),
    ({"formats": [1, 2]}, None, "card.json: expected an object with a 'formats' object"),
    ({**GOOD_CARD, "formats": {"fp32": {"file": "../../outside.onnx"}}}, None,
     "formats.fp32.file must be a file name inside the export folder, got '../../outside.onnx'"),
    ({"formats": GOOD_CARD["formats"]}, None, "lacks checks.fp32_parity.tolerance"),
    ({**GOOD_CARD, "checks": {"fp32_parity": {"tolerance": float("nan")}}}, None, "tolerance must be a finite"),
    (GOOD_CARD, {"input": np.array([{"a": 1}], dtype=object), "logits": np.zeros((1, 10)), "labels": np.zeros(1)},
     "sample.npz is not a readable array archive"),
    (GOOD_CARD, {"input": np.zeros(2)}, "sample.npz lacks the array(s) ['logits', 'labels']"),
])
def test_export_check_refuses_damaged_cards_and_samples(tmp_path, card, sample, message):
    folder = export_folder(tmp_path / "x", card, sample)
    with pytest.raises(CheckError, match=re.escape(message)):
        check_folder(folder)


GOOD_MEASURED = "arch,ms\n" + "".join(f"mobilenet_v1_{w},{1 + i}\n" for i, w in enumerate(("0.25", "0.5", "0.75")))


@pytest.mark.parametrize("content, names", [
    (GOOD_MEASURED.replace(",2\n", ",nan\n"), ["m.csv line 3", "finite latency > 0 ms", "nan"]),
    (GOOD_MEASURED.replace(",2\n", ",-2\n"), ["m.csv line 3", "-2"]),
    (GOOD_MEASURED + "mobilenet_v1_0.25,9\n", ["m.csv line 5", "more than once", "duplicate of line 2"]),
    (b"\xff\xfe\x00junk", ["m.csv is not a text CSV file"]),
])
def test_calibrate_refuses_bad_measurements(scratch, capsys, content, names):
    path = scratch / "m.csv"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    code, output = run_cli(capsys, "latency", "calibrate", "m.csv", "-o", "cal.json", "--input", "28x28x1")
    assert_clear(code, output, *names)
    assert not (scratch / "cal.json").exists()


def test_a_weights_file_for_another_network_is_refused(run_folder, scratch, capsys):
    other = build_network(get_reference("mobilenet_v1_0.25", (28, 28, 1), 10))
    torch.save(other.state_dict(), scratch / "other.pt")
    code, output = run_cli(capsys, "export", run_folder, "--trial", "0", "--weights", "other.pt", "-o", "out")
    assert_clear(code, output, "other.pt", "does not fit architecture")
    assert not (scratch / "out").exists()
