import json
import math

import pytest

import nas.evaluate
from nas.data import load_dataset
from nas.evaluate import EvaluatorError, ResultCache, make_evaluator
from nas.space import get_space
from nas.spec import ArchSpec, SpecError
from nas.train import Budget

TINY = "28x28x1>10|conv_k3_s2_c8_bn_relu|conv_k3_s2_c16_bn_relu|gap,fc"
OTHER = "28x28x1>10|conv_k3_s2_c8_bn_relu|conv_k3_s2_c24_bn_relu|gap,fc"
FAST = dict(epochs=1, batch_size=32, lr=0.2, threads=1)


@pytest.fixture(scope="module")
def toy():
    return load_dataset("synthetic")


class CountingTrain:
    """Wraps nas.evaluate.train to count real trainings."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.real = nas.evaluate.train
        monkeypatch.setattr(nas.evaluate, "train", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


def test_train_evaluator_metrics_and_contract(toy):
    evaluator = make_evaluator("train", dataset=toy, **FAST)
    metrics = evaluator.evaluate(ArchSpec.from_string(TINY))
    assert evaluator.objective == "accuracy" and 0 <= metrics["accuracy"] <= 1
    assert {"val_loss", "train_time_s", "images_per_s", "status", "reason", "params", "macs"} <= set(metrics)
    assert metrics["status"] == "ok" and metrics["params"] > 0
    assert evaluator.budget_key.startswith("train|synthetic") and "epochs=1" in evaluator.budget_key
    assert evaluator.input_shape == (28, 28, 1) and evaluator.classes == 10
    json.dumps(metrics)  # serialisable as it is


def test_repeated_architecture_is_not_trained_again(toy, monkeypatch):
    counter = CountingTrain(monkeypatch)
    evaluator = make_evaluator("train", dataset=toy, **FAST)
    spec = ArchSpec.from_string(TINY)
    first = evaluator.evaluate(spec)
    assert evaluator.evaluate(ArchSpec.from_string(TINY)) == first
    assert counter.calls == 1 and (evaluator.hits, evaluator.misses) == (1, 1)
    evaluator.evaluate(ArchSpec.from_string(OTHER))
    assert counter.calls == 2


def test_disk_cache_survives_the_process_and_separates_budgets(toy, tmp_path, monkeypatch):
    path = tmp_path / "cache.jsonl"
    counter = CountingTrain(monkeypatch)
    spec = ArchSpec.from_string(TINY)
    first = make_evaluator("train", dataset=toy, cache_path=path, **FAST).evaluate(spec)
    again = make_evaluator("train", dataset=toy, cache_path=path, **FAST).evaluate(spec)
    assert again == first and counter.calls == 1
    longer = make_evaluator("train", dataset=toy, cache_path=path, **{**FAST, "epochs": 2})
    longer.evaluate(spec)
    assert counter.calls == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["arch_id"] == spec.arch_id and lines[0]["spec"] == spec.to_string()


def test_cache_skips_broken_lines_and_never_glues_onto_them(tmp_path):
    path = tmp_path / "cache.jsonl"
    good = {"arch_id": "a", "budget_key": "k", "metrics": {"accuracy": 0.5}}
    path.write_text(json.dumps(good) + "\nnot json\n" + '{"arch_id": "b", "budg')  # killed mid-write
    cache = ResultCache(path)
    with pytest.warns(UserWarning, match="unreadable cache line"):
        assert cache.get("a", "k") == {"accuracy": 0.5}
    cache.put("c", "k", {"accuracy": 0.7})
    with pytest.warns(UserWarning):  # the broken lines are still there, still skipped
        assert ResultCache(path).get("c", "k") == {"accuracy": 0.7}
    assert path.read_text().startswith(json.dumps(good))  # nothing was lost


def test_cache_sees_lines_other_processes_append(tmp_path):
    path = tmp_path / "cache.jsonl"
    mine, theirs = ResultCache(path), ResultCache(path)
    assert mine.get("x", "k") is None
    theirs.put("x", "k", {"accuracy": 0.9})
    assert mine.get("x", "k") == {"accuracy": 0.9}


def test_diverged_training_is_a_result_not_an_exception(toy):
    evaluator = make_evaluator("train", dataset=toy, epochs=1, batch_size=32, lr=1e8, threads=1)
    metrics = evaluator.evaluate(ArchSpec.from_string(TINY))
    assert metrics["status"] == "diverged" and metrics["accuracy"] == 0.0 and "loss became" in metrics["reason"]


def test_proxy_evaluator(toy):
    evaluator = make_evaluator("proxy", dataset=toy, batch_size=16, batches=2, threads=1)
    metrics = evaluator.evaluate(ArchSpec.from_string(TINY))
    assert evaluator.objective == "synflow"
    assert {"synflow", "naswot", "jacob_cov", "grad_norm", "snip", "proxy_time_s"} <= set(metrics)
    assert all(math.isfinite(metrics[name]) for name in ("synflow", "naswot", "grad_norm"))
    again = make_evaluator("proxy", dataset=toy, batch_size=16, batches=2, threads=1)
    assert again.evaluate(ArchSpec.from_string(TINY))["naswot"] == metrics["naswot"]
    chosen = make_evaluator("proxy", dataset=toy, proxies=["naswot", "grad_norm"], objective="grad_norm")
    assert chosen.objective == "grad_norm" and chosen.budget_key != evaluator.budget_key


def test_tiny_evaluator_takes_any_shape_and_is_deterministic():
    evaluator = make_evaluator("tiny")
    specs = [get_space(name, shape, classes).sample(seed)
             for name, shape, classes, seed in (("mobilenet_v1", (28, 28, 1), 10, 0),
                                                ("hybrid", (32, 32, 3), 100, 1))]
    scores = [evaluator.evaluate(spec) for spec in specs]
    assert all(math.isfinite(s["naswot"]) and math.isfinite(s["synflow"]) for s in scores)
    assert make_evaluator("tiny").evaluate(specs[1])["naswot"] == scores[1]["naswot"]
    assert evaluator.objective == "naswot" and evaluator.input_shape == (28, 28, 1)
    assert make_evaluator("tiny", dataset="cifar10").input_shape == (32, 32, 3)


def test_no_data_is_read_until_the_first_evaluation(tmp_path):
    evaluator = make_evaluator("train", dataset="idx", data_path=tmp_path / "missing", epochs=1)
    assert "idx@" in evaluator.budget_key
    with pytest.raises(FileNotFoundError, match="missing"):
        evaluator.evaluate(ArchSpec.from_string(TINY))


def test_spec_for_another_input_is_misuse(toy):
    spec = ArchSpec.from_string("32x32x3>10|conv_k3_s2_c8_bn_relu|gap,fc")
    with pytest.raises(SpecError, match="32x32x3"):
        make_evaluator("proxy", dataset=toy).evaluate(spec)


@pytest.mark.parametrize("kind, options, message", [
    ("trian", {}, "unknown evaluator kind 'trian' (did you mean 'train'?)"),
    ("train", {"epoch": 2}, "unknown option 'epoch' for a 'train' evaluator (did you mean 'epochs'?)"),
    ("train", {"epochs": 0}, "epochs must be >= 1"),
    ("train", {"dataset": "fashion_mnist"}, "unknown dataset 'fashion_mnist' (did you mean 'fashion-mnist'?)"),
    ("train", {"budget": Budget(), "epochs": 2}, "either budget=Budget"),
    ("proxy", {"proxies": ["synflow", "zen"]}, "unknown proxy 'zen'"),
    ("proxy", {"objective": "accuracy"}, "objective 'accuracy' must be one of the computed proxies"),
    ("proxy", {"batch_size": 0}, "batch_size must be an integer >= 1"),
    ("tiny", {"epochs": 1}, "unknown option 'epochs' for a 'tiny' evaluator"),
])
def test_factory_errors_name_the_bad_value(kind, options, message):
    with pytest.raises(EvaluatorError) as info:
        make_evaluator(kind, **options)
    assert message in str(info.value)
