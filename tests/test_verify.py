"""`nas verify`: which networks are retrained, the verdict (means, spread, Kendall tau, wins),
the cache that makes it resumable, bad input refused before any training, the CLI and the
report section. Training is a fast deterministic fake except in one test, which trains one
network for real on synthetic data."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from scipy import stats

from nas.cli import main as cli_main
from nas.data import load_dataset
from nas.experiment import run_experiment
from nas.report import open_run, pareto_frame, trials_frame
from nas.verify import CACHE_FILE, RESULT_FILE, VerifyError, verify_run
from nas.verify.jobs import TimeLeft, format_duration
from nas.verify.section import FRONT_PLOT, RANK_PLOT
from nas.verify.select import spread_indices
from tests.fakes import FakeEvaluator, FakeLatency
from tests.test_search import make_config

MEMBER, OUTSIDER = "mobilenet_v1_0.25", "squeezenet1_1"  # in and not in the mobilenet_v1 space


def make_run(folder: Path, **changes) -> Path:
    settings = {"trials": 10, "dataset": {"name": "synthetic"}, "baselines": [MEMBER, OUTSIDER], **changes}
    config = make_config(folder, **settings)
    run_experiment(config, progress=False, evaluator=FakeEvaluator(), latency_model=FakeLatency(),
                   log=lambda line: None)
    return config.output_dir()


class FakeTrainer:
    """Test accuracy a deterministic function of the architecture and the seed; records calls;
    raises KeyboardInterrupt (a kill) at call ``interrupt_at``."""

    def __init__(self, interrupt_at: int | None = None):
        self.calls: list[tuple[str, int, int]] = []
        self.interrupt_at = interrupt_at

    @staticmethod
    def accuracy(arch_id: str, seed: int) -> float:
        base = int(hashlib.sha256(arch_id.encode()).hexdigest()[:6], 16) / 0xFFFFFF
        return round(0.5 + 0.4 * base + 0.01 * seed, 6)

    def __call__(self, spec, dataset, budget, on_epoch=None):
        self.calls.append((spec.arch_id, budget.seed, budget.epochs))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        for epoch in range(budget.epochs):
            on_epoch({"epoch": epoch + 1})
        return {"test_acc": self.accuracy(spec.arch_id, budget.seed), "test_loss": 1.0, "status": "ok",
                "reason": "", "train_time_s": 0.0, "epochs_done": float(budget.epochs)}


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("search"))


@pytest.fixture
def run_folder(searched, tmp_path) -> Path:
    """A fresh copy of one searched run (its SQLite study, config and report) per test."""
    return Path(shutil.copytree(searched, tmp_path / "run"))


def verify(folder, trainer=None, report=False, **kwargs):
    """verify_run with the fake trainer; report.html is refreshed only where a test checks it
    (drawing its plots is most of a fake verification's time)."""
    return verify_run(folder, progress=False, trainer=trainer or FakeTrainer(), log=lambda line: None,
                      report=report, **kwargs)


def test_spread_keeps_the_fastest_and_the_most_accurate():
    assert spread_indices(10, 3) == [0, 4, 9] or spread_indices(10, 3) == [0, 5, 9]
    assert spread_indices(10, 2) == [0, 9]
    assert spread_indices(10, 1) == [0]
    assert spread_indices(3, 5) == [0, 1, 2]
    picked = spread_indices(40, 7)
    assert picked[0] == 0 and picked[-1] == 39 and len(picked) == 7
    gaps = [b - a for a, b in zip(picked, picked[1:])]
    assert max(gaps) - min(gaps) <= 1  # evenly spaced by rank


def test_verdict_covers_picks_and_baselines_with_honest_statistics(run_folder, synthetic):
    trainer = FakeTrainer()
    verdict = verify(run_folder, trainer, picks=3, epochs=2, seeds=3, dataset=synthetic)
    frame = trials_frame(open_run(run_folder))
    front = pareto_frame(frame[frame["baseline"].isna()])
    picks = verdict["picks"]
    assert len(picks) == min(3, len(front))
    assert picks[0]["arch_id"] == front.iloc[0]["arch_id"]  # the fastest
    assert picks[-1]["arch_id"] == front.iloc[-1]["arch_id"]  # the most accurate
    for pick in picks:
        row = front[front["arch_id"] == pick["arch_id"]].iloc[0]
        assert pick["trial"] == row["number"] and pick["latency_ms"] == row["latency_ms"]
        assert pick["search_score"] == row["score"]
    assert {b["name"] for b in verdict["baselines"]} == {MEMBER, OUTSIDER}
    outsider = next(b for b in verdict["baselines"] if b["name"] == OUTSIDER)
    assert outsider["latency_ms"] == open_run(run_folder).user_attrs["baselines"][OUTSIDER]["latency_ms"]
    for entry in picks + verdict["baselines"]:
        accs = [FakeTrainer.accuracy(entry["arch_id"], seed) for seed in range(3)]
        assert entry["test_acc_per_seed"] == accs
        assert entry["test_acc_mean"] == pytest.approx(sum(accs) / 3)
        assert entry["test_acc_std"] == pytest.approx(stats.tstd(accs))
    # every (network, seed) trained once, with the budget asked for
    networks = {e["arch_id"] for e in picks + verdict["baselines"]}
    assert sorted(trainer.calls) == sorted((a, s, 2) for a in networks for s in range(3))
    unique = {e["arch_id"]: e for e in picks + verdict["baselines"]}.values()
    tau = stats.kendalltau([e["search_score"] for e in unique], [e["test_acc_mean"] for e in unique]).statistic
    assert verdict["kendall_tau_search_vs_final"] == pytest.approx(tau)
    expected = {(p["arch_id"], b["name"]) for p in picks for b in verdict["baselines"]
                if p["latency_ms"] < b["latency_ms"] and p["test_acc_mean"] >= b["test_acc_mean"]}
    assert {(d["pick"], d["baseline"]) for d in verdict["dominating"]} == expected
    for win in verdict["dominating"]:
        pick = next(p for p in picks if p["arch_id"] == win["pick"])
        base = next(b for b in verdict["baselines"] if b["name"] == win["baseline"])
        assert win["speedup"] == pytest.approx(base["latency_ms"] / pick["latency_ms"]) and win["speedup"] > 1
        assert win["acc_delta"] == pytest.approx(pick["test_acc_mean"] - base["test_acc_mean"])
        assert win["acc_delta"] >= 0
    assert json.loads((run_folder / RESULT_FILE).read_text())["picks"] == picks


def test_a_win_is_faster_at_at_least_equal_mean_accuracy():
    from nas.verify.summary import dominating

    base = {"arch_id": "b", "name": "ref", "latency_ms": 2.0, "test_acc_mean": 0.9}
    pick = {"arch_id": "p", "trial": 4, "latency_ms": 0.5}
    (win,) = dominating([{**pick, "test_acc_mean": 0.9}], [base])  # equal accuracy counts
    assert win == {"pick": "p", "pick_trial": 4, "baseline": "ref", "speedup": 4.0, "acc_delta": 0.0}
    assert dominating([{**pick, "test_acc_mean": 0.9 - 1e-9}], [base]) == []  # a hair less does not
    assert dominating([{**pick, "latency_ms": 2.0, "test_acc_mean": 1.0}], [base]) == []  # equal speed is no win
    assert dominating([{**pick, "latency_ms": None, "test_acc_mean": 1.0}], [base]) == []  # unknown speed
    assert dominating([{**base, "trial": 0}], [base]) == []  # a network never beats itself
    wins = dominating([{**pick, "test_acc_mean": 0.95}, {**pick, "arch_id": "q", "latency_ms": 0.25,
                                                          "test_acc_mean": 0.92}], [base])
    assert [w["speedup"] for w in wins] == [8.0, 4.0]  # the largest speedup first


def test_killed_verification_resumes_without_repeating_finished_trainings(run_folder, synthetic):
    first = FakeTrainer(interrupt_at=4)
    with pytest.raises(KeyboardInterrupt):
        verify(run_folder, first, picks=2, epochs=1, seeds=2, dataset=synthetic)
    assert not (run_folder / RESULT_FILE).exists()
    lines = (run_folder / CACHE_FILE).read_text().splitlines()
    assert len(lines) == 3  # the three finished trainings, each one whole line
    second = FakeTrainer()
    verdict = verify(run_folder, second, picks=2, epochs=1, seeds=2, dataset=synthetic)
    finished = {(a, s) for a, s, _ in first.calls[:3]}
    assert second.calls[0] == first.calls[3]  # the killed training runs again first
    assert not finished & {(a, s) for a, s, _ in second.calls}
    total = len({e["arch_id"] for e in verdict["picks"] + verdict["baselines"]}) * 2
    assert len(finished) + len(second.calls) == total
    # a third run trains nothing; a longer budget or another seed is new work
    third = FakeTrainer()
    again = verify(run_folder, third, picks=2, epochs=1, seeds=2, dataset=synthetic)
    assert third.calls == []
    assert {k: v for k, v in again.items() if k != "settings"} == {k: v for k, v in verdict.items() if k != "settings"}
    longer = FakeTrainer()
    verify(run_folder, longer, picks=2, epochs=2, seeds=1, dataset=synthetic)
    assert len(longer.calls) == total // 2 and {e for _, _, e in longer.calls} == {2}


def test_a_line_cut_by_a_kill_is_skipped_and_that_training_redone(run_folder, synthetic):
    verify(run_folder, picks=1, epochs=1, seeds=1, dataset=synthetic)
    cache = run_folder / CACHE_FILE
    lines = cache.read_text().splitlines(keepends=True)
    cache.write_text("".join(lines[:-1]) + lines[-1][:25])  # the last record half written
    again = FakeTrainer()
    verify(run_folder, again, picks=1, epochs=1, seeds=1, dataset=synthetic)
    assert len(again.calls) == 1  # the cut record's training, done again
    after = cache.read_text().splitlines()
    assert after[len(lines) - 1] == lines[-1][:25]  # the cut line is kept, never deleted ...
    json.loads(after[-1])  # ... and the new record is a whole line of its own
    third = FakeTrainer()
    with pytest.warns(UserWarning, match="unreadable cache line"):
        verify(run_folder, third, picks=1, epochs=1, seeds=1, dataset=synthetic)
    assert third.calls == []


def test_a_baseline_on_the_front_trains_once(tmp_path, synthetic):
    # with a single trial, the member baseline is the whole searched study; picks come from
    # the searched networks, and a network that is both is trained once per seed
    folder = make_run(tmp_path, trials=3)
    trainer = FakeTrainer()
    verdict = verify(folder, trainer, picks=5, epochs=1, seeds=2, dataset=synthetic)
    assert MEMBER not in {p.get("name") for p in verdict["picks"]}
    assert len(trainer.calls) == len(set(trainer.calls))


@pytest.mark.parametrize("setting, value, shown", [
    ("picks", 0, "0"), ("picks", 101, "101"), ("epochs", -1, "-1"), ("epochs", "2.5", "'2.5'"),
    ("seeds", "nan", "'nan'"), ("epochs", "inf", "'inf'"), ("seeds", 51, "51"), ("picks", True, "True"),
    ("epochs", 2.5, "2.5"), ("seeds", "", "''")])
def test_settings_out_of_range_are_refused_before_training(run_folder, synthetic, setting, value, shown):
    trainer = FakeTrainer()
    with pytest.raises(VerifyError, match=rf"^--{setting} must be a whole number in \d+\.\.\d+, got {shown}$") as info:
        verify(run_folder, trainer, dataset=synthetic, **{setting: value})
    assert "\n" not in str(info.value)
    assert trainer.calls == [] and not (run_folder / CACHE_FILE).exists() and not (run_folder / RESULT_FILE).exists()


def test_folders_that_are_not_runs_are_refused(tmp_path, synthetic):
    with pytest.raises(VerifyError, match="run folder .*nope' does not exist"):
        verify(tmp_path / "nope", dataset=synthetic)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VerifyError, match="is not a run folder: it has no config.yaml"):
        verify(tmp_path / "empty", dataset=synthetic)
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_config_without_its_study_is_refused_and_no_empty_study_is_made(run_folder, synthetic):
    (run_folder / "study.db").unlink()
    with pytest.raises(VerifyError, match="is not a run folder: it has config.yaml but no study.db"):
        verify(run_folder, dataset=synthetic)
    assert not (run_folder / "study.db").exists()
    (run_folder / "config.yaml").write_text("name: [")
    with pytest.raises(VerifyError, match="config.yaml is not readable YAML") as info:
        verify(run_folder, dataset=synthetic)
    assert "\n" not in str(info.value)  # one line, as every error of the command line


def test_a_dataset_of_another_shape_is_refused_before_training(run_folder):
    trainer = FakeTrainer()
    other = load_dataset("synthetic", train=40, test=20, shape=(32, 32, 3))
    with pytest.raises(VerifyError, match="is for input 28x28x1 with 10 classes, but synthetic is 32x32x3"):
        verify(run_folder, trainer, dataset=other)
    assert trainer.calls == []


def test_time_left_prices_untimed_networks_by_cost_and_timed_ones_by_their_time():
    from nas.archs import load_arch
    from nas.ops import count_macs, resolve
    from nas.train import Budget
    from nas.verify.jobs import Job
    from nas.verify.select import Candidate

    small, big = (Candidate("pick", n, load_arch(n), 1.0, 0.5) for n in ("mobilenet_v1_0.25", "mobilenet_v1_1.0"))
    jobs = [Job(small, 0, Budget(epochs=2)), Job(big, 0, Budget(epochs=2)), Job(small, 1, Budget(epochs=2))]
    left = TimeLeft(jobs)
    assert left.seconds_left() is None  # nothing timed: no guess
    left.advance(jobs[0], 1, 4.0)
    left.advance(jobs[0], 1, 6.0)  # the small network: 5 s per epoch
    weight = {c.name: count_macs(resolve(c.spec)) + TimeLeft.OVERHEAD_MACS for c in (small, big)}
    big_epoch = 5.0 * weight["mobilenet_v1_1.0"] / weight["mobilenet_v1_0.25"]
    assert left.seconds_left() == pytest.approx(2 * big_epoch + 2 * 5.0)
    assert big_epoch > 2 * 5.0  # a per-job average would have said 10 s for the big one
    left.advance(jobs[1], 1, 100.0)  # the big one is slower than priced: its own time counts now
    assert left.seconds_left() == pytest.approx(100.0 + 2 * 5.0)
    left.finish(jobs[1])  # diverged: no more epochs
    left.advance(jobs[1], 0, 2.0)  # its testing time still counts toward its per-epoch cost
    assert left.seconds_left() == pytest.approx(2 * 5.0)
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05" and format_duration(None) == "?"


def test_report_gains_a_verified_section(run_folder, synthetic):
    before = (run_folder / "report.html").read_text()
    assert "<h2>Verified</h2>" not in before
    verify(run_folder, picks=2, epochs=1, seeds=2, dataset=synthetic, report=True)
    html = (run_folder / "report.html").read_text()
    assert "<h2>Verified</h2>" in html and f'alt="{FRONT_PLOT}"' in html and f'alt="{RANK_PLOT}"' in html
    assert (run_folder / FRONT_PLOT).stat().st_size > 1000 and (run_folder / RANK_PLOT).stat().st_size > 1000
    assert "Kendall tau" in html and OUTSIDER in html
    # a damaged verify.json does not break the report: the section says what is wrong
    (run_folder / RESULT_FILE).write_text("{not json")
    from nas.report import write_report

    write_report(open_run(run_folder), run_folder)
    html = (run_folder / "report.html").read_text()
    assert "<h2>Verified</h2><p>verify.json cannot be read" in html


def test_cli_prints_the_verdict_as_json(run_folder, monkeypatch, capsys):
    trainer = FakeTrainer()
    monkeypatch.setattr("nas.verify.jobs.train_and_test", trainer)
    assert cli_main(["verify", str(run_folder), "--picks", "2", "--epochs", "1", "--seeds", "2", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert set(verdict) >= {"picks", "baselines", "kendall_tau_search_vs_final", "dominating"}
    for entry in verdict["picks"] + verdict["baselines"]:
        assert set(entry) >= {"arch_id", "latency_ms", "search_score", "test_acc_mean", "test_acc_std"}
    assert len(trainer.calls) == 2 * len({e["arch_id"] for e in verdict["picks"] + verdict["baselines"]})
    assert cli_main(["verify", str(run_folder), "--picks", "2", "--epochs", "1", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "Kendall tau" in out and OUTSIDER in out


@pytest.mark.parametrize("args, message", [
    (["--picks", "0"], "error: --picks must be a whole number in 1..100, got '0'"),
    (["--epochs", "1e9"], "error: --epochs must be a whole number in 1..1000, got '1e9'"),
    (["--seeds", "two"], "error: --seeds must be a whole number in 1..50, got 'two'")])
def test_cli_bad_settings_exit_2_with_one_line(run_folder, capsys, args, message):
    assert cli_main(["verify", str(run_folder), *args]) == 2
    err = capsys.readouterr().err
    assert err.strip() == message


def test_real_training_on_synthetic_data(tmp_path):
    """One real training end to end: the fastest front network, one seed, one epoch on a small
    synthetic dataset of the run's shape, tested on its test split, with the run's training
    settings (one thread and contiguous tensors here: the cheapest start for a fresh network)."""
    settings = {"threads": 1, "channels_last": False, "batch_size": 64}
    folder = make_run(tmp_path, baselines=[], evaluator={"kind": "train", "options": settings})
    small = load_dataset("synthetic", train=160, test=64)
    verdict = verify_run(folder, picks=1, epochs=1, seeds=1, dataset=small, progress=False, report=False,
                         log=lambda line: None)
    (pick,) = verdict["picks"]
    assert verdict["baselines"] == [] and verdict["dominating"] == []
    assert pick["test_acc_per_seed"][0] in {k / 64 for k in range(65)}  # a share of the 64 test images
    assert pick["test_acc_std"] == 0.0
    assert verdict["kendall_tau_search_vs_final"] is None  # one network ranks nothing
    (line,) = (folder / CACHE_FILE).read_text().splitlines()
    record = json.loads(line)
    assert record["arch_id"] == pick["arch_id"] and record["metrics"]["status"] == "ok"
    assert record["metrics"]["epochs_done"] == 1.0 and record["metrics"]["seed"] == 0
    assert math.isclose(record["metrics"]["test_acc"], pick["test_acc_mean"])
    assert verdict["settings"]["train_images"] == 160 and verdict["settings"]["test_images"] == 64
    assert {k: verdict["settings"]["budget"][k] for k in settings} == settings  # the run's settings
    assert verdict["settings"]["budget"]["fraction"] == 1.0 and verdict["settings"]["budget"]["epochs"] == 1
