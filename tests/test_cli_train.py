import json

import pytest
import torch

from nas import data
from nas.archs import load_arch
from nas.cli import main
from nas.train import build_network

TINY = "28x28x1>10|conv_k3_s2_c8_bn_relu|conv_k3_s2_c16_bn_relu|gap,fc"
FAST = ["--dataset", "synthetic", "--epochs", "2", "--batch-size", "32", "--lr", "0.2", "--threads", "1"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_save_and_reload(capsys, tmp_path):
    code, out, _ = run(capsys, "train", TINY, *FAST, "--test", "--save", str(tmp_path / "run"), "--json")
    record = json.loads(out)
    assert code == 0 and record["status"] == "ok"
    assert 0 <= record["accuracy"] <= 1 and 0 <= record["test_accuracy"] <= 1
    assert record["budget"]["epochs"] == 2 and record["dataset"].startswith("synthetic")
    spec = load_arch(str(tmp_path / "run" / "spec.json"))
    assert spec.arch_id == record["arch_id"]
    model = build_network(spec)
    model.load_state_dict(torch.load(tmp_path / "run" / "weights.pt", weights_only=True))
    assert json.loads((tmp_path / "run" / "result.json").read_text())["accuracy"] == record["accuracy"]
    # fine-tune from the saved weights: starts far better than from scratch
    code, out, _ = run(capsys, "train", str(tmp_path / "run" / "spec.json"), *FAST, "--init",
                       str(tmp_path / "run"), "--json")
    assert code == 0 and json.loads(out)["history"][0]["train_accuracy"] > 0.5


def test_text_report_for_a_reference_built_for_the_dataset(capsys):
    code, out, _ = run(capsys, "train", "mobilenet_v1_0.25", "--dataset", "synthetic", "--fraction", "0.2",
                       "--batch-size", "32", "--threads", "1", "--eval-each-epoch")
    assert code == 0
    assert "validation accuracy" in out and "images/s" in out and "epoch 1:" in out and "status ok" in out


def test_divergence_exits_1_with_the_reason(capsys):
    code, out, _ = run(capsys, "train", TINY, "--dataset", "synthetic", "--lr", "1e8", "--batch-size", "32")
    assert code == 1 and "status diverged: loss became" in out


@pytest.mark.parametrize("argv, message", [
    (["32x32x3>10|conv_k3_s2_c8_bn_relu|gap,fc"], "is a spec for input (32, 32, 3), not (28, 28, 1)"),
    (["mobilenetv2"], "did you mean"),
    ([TINY, "--lr", "-1"], "lr must be > 0"),
    ([TINY, "--init", "/nonexistent"], "no weights.pt there"),
])
def test_errors(capsys, argv, message):
    code, _, err = run(capsys, "train", *argv[:1], "--dataset", "synthetic", *argv[1:])
    assert code == 2 and message in err


def test_missing_dataset_says_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("NAS_DATA", raising=False)
    monkeypatch.setattr(data, "DEFAULT_FASHION_MNIST", tmp_path / "nowhere")
    code, _, err = run(capsys, "train", TINY)
    assert code == 2 and "apt-get install dataset-fashion-mnist" in err


def test_init_from_another_architecture_is_refused(capsys, tmp_path):
    run(capsys, "train", TINY, *FAST, "--save", str(tmp_path / "run"), "--json")
    other = TINY.replace("c16", "c24")
    code, _, err = run(capsys, "train", other, "--dataset", "synthetic", "--init", str(tmp_path / "run"))
    assert code == 2 and "does not fit this architecture" in err


def test_bad_fraction_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", TINY, "--fraction", "1.5"])
    assert info.value.code == 2 and "expected a number in (0, 1]" in capsys.readouterr().err
