"""Shipped ARM tables: re-derived from the shared public files, listed and loaded by name,
and pricing reference networks with every estimated op flagged."""

import json
import shlex

import numpy as np
import pytest

from nas.cli import main
from nas.latency import LatencyTableError, MissingOpsError, load_latency_model
from nas.latency.estimator import COLUMNS, KernelEstimator, kernel_features
from nas.latency.registry import list_tables, resolve_table, tables_dir
from nas.latency.table import LatencyTable
from nas.latency.tableio import sidecar_path
from nas.ops import OpInstance, resolve
from nas.space import get_space

MINE = ["pixel1-proxylessnas", *(f"note10-ofa-{r}" for r in (160, 176, 192, 208, 224))]


@pytest.mark.parametrize("name", MINE)
def test_shipped_table_is_rederived_by_its_recorded_command(arm_data, name, tmp_path, monkeypatch):
    shipped = tables_dir() / f"{name}.csv"
    provenance = json.loads(sidecar_path(shipped).read_text())
    for field in ("device", "runtime", "threads", "input", "rederive"):
        assert field in provenance
    assert provenance["origin"]["licence"] and provenance["origin"]["project"]
    command = shlex.split(provenance["rederive"].replace("$NAS_ARM_DATA", str(arm_data)))
    assert command[:3] == ["nas", "latency", "import"]
    out = tmp_path / f"{name}.csv"
    command[command.index("-o") + 1] = str(out)
    monkeypatch.setenv("NAS_ARM_DATA", str(arm_data))
    assert main(command[1:]) == 0
    derived, ours = LatencyTable.from_file(out), LatencyTable.from_file(shipped)
    assert derived.ops == ours.ops  # compared as loaded: a new op field adds a CSV column, not a change
    assert derived.entries == ours.entries
    again = json.loads(sidecar_path(out).read_text())
    again.pop("date"), provenance.pop("date")
    again["rederive"] = again["rederive"].replace(str(out), f"latency_tables/{name}.csv")
    assert again == provenance


def test_listing_names_every_table_with_its_device_and_shape(capsys):
    assert main(["latency", "tables", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    on_disk = {p.stem for p in tables_dir().glob("*.csv")}
    assert on_disk <= set(rows)
    pixel = rows["pixel1-proxylessnas"]
    assert (pixel["device"], pixel["runtime"], pixel["input"], pixel["entries"], pixel["space"]) == (
        "Google Pixel 1", "TensorFlow Lite", "224x224x3", 73, "proxylessnas")
    assert "ProxylessNAS" in pixel["source"]
    assert rows["note10-ofa-176"]["input"] == "176x176x3" and rows["note10-ofa-176"]["space"] == "ofa_mobilenet_v3"
    assert main(["latency", "tables"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["name", "device", "runtime"] and "pixel1-proxylessnas" in text


def test_names_resolve_from_any_folder_and_paths_still_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = load_latency_model("pixel1-proxylessnas")
    assert by_name.provenance["device"] == "Google Pixel 1" and by_name.missing_policy == "estimate"
    by_path = load_latency_model(str(tables_dir() / "pixel1-proxylessnas.csv"))
    assert by_path.entries == by_name.entries
    assert resolve_table("some/where.csv").as_posix() == "some/where.csv"


def test_unknown_or_unsafe_names_are_errors_listing_the_known_ones():
    with pytest.raises(LatencyTableError, match="unknown latency table 'pixel9'.*pixel1-proxylessnas"):
        load_latency_model("pixel9")
    with pytest.raises(LatencyTableError, match="latency table name"):
        resolve_table("-rf")


def test_env_names_another_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_LATENCY_TABLES", str(tmp_path))
    assert list_tables() == []
    with pytest.raises(LatencyTableError, match="unknown latency table 'pixel1-proxylessnas'.*none"):
        resolve_table("pixel1-proxylessnas")


@pytest.mark.parametrize("arch, estimated", [("mobilenet_v2_1.0", 12), ("proxyless_mobile", 3)])
def test_reference_networks_priced_on_the_pixel1_with_estimates_flagged(arch, estimated, capsys):
    assert main(["latency", "predict", arch, "--table", "pixel1-proxylessnas", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"latency_ms", "estimated_ops", "table", "ops"} <= set(data)
    assert data["table"] == "pixel1-proxylessnas" and data["device"] == "Google Pixel 1"
    flagged = [r for r in data["ops"] if r["estimated"]]
    assert data["estimated_ops"] == len(flagged) == estimated
    table = LatencyTable.from_file(tables_dir() / "pixel1-proxylessnas.csv")
    for row in data["ops"]:
        assert row["estimated"] == (row["key"] not in table.entries and row["type"] != "dropout")
        if row["type"] == "dropout":
            assert row["share_ms"] == 0  # a no-op costs nothing and is not an estimate
    assert data["latency_ms"] == pytest.approx(sum(r["share_ms"] for r in data["ops"]))
    assert 60 < data["latency_ms"] < 110  # published: 75 and 78 ms
    whole = data["whole_network"]  # the table sum scaled to published whole-network runs, itself left out
    assert arch not in whole["fitted_on"] and whole["fitted_on"] and whole["published_ms"] in (75.0, 78.0)
    assert whole["latency_ms"] == pytest.approx(whole["scale"] * data["latency_ms"])
    assert main(["latency", "predict", arch, "--table", "pixel1-proxylessnas"]) == 0
    text = capsys.readouterr().out
    assert f"{estimated} of " in text and "Google Pixel 1" in text and text.count("  ~ ") == estimated


def test_a_device_table_never_advises_profiling_this_machine(capsys):
    assert main(["latency", "predict", "mobilenet_v2_1.0", "--table", "pixel1-proxylessnas",
                 "--missing", "error"]) == 2
    err = capsys.readouterr().err
    assert "Google Pixel 1" in err and "--missing estimate" in err and "nas latency profile" not in err


def test_an_op_with_a_kernel_the_table_never_measured_is_an_error_naming_it():
    table = load_latency_model("pixel1-proxylessnas")
    maxpool = OpInstance("maxpool", (112, 112, 24), (56, 56, 24), kernel=3, stride=2, pad=1)
    with pytest.raises(MissingOpsError, match="no entry of this table contains a pool kernel"):
        table.predict([maxpool])


def test_estimator_recovers_kernel_costs_it_was_fitted_to():
    """On a table whose latencies are exactly linear in the kernel features, leaving an entry
    out and estimating it gives its value back."""
    space = get_space("proxylessnas", (224, 224, 3), 1000)
    ops = {op.key: op for op in space.reachable_ops() if op.type == "ir"}
    truth = np.zeros(len(COLUMNS))
    for i, name in enumerate(COLUMNS):
        truth[i] = 1e-8 * (1 + i % 5) if name.endswith("macs") else 1e-6 * (1 + i % 3)
    truth[COLUMNS.index("kernels")] = 0.05
    entries = {k: {"median": float(kernel_features(op) @ truth)} for k, op in ops.items()}
    held = next(iter(ops))
    rest = {k: v for k, v in ops.items() if k != held}
    model = KernelEstimator({k: entries[k] for k in rest}, rest)
    assert model.estimate(ops[held]) == pytest.approx(entries[held]["median"], rel=1e-3)


def test_every_pixel1_space_member_is_priced_without_estimates():
    table = load_latency_model("pixel1-proxylessnas")
    space = get_space("proxylessnas", (224, 224, 3), 1000)
    assert table.missing(space.reachable_ops()) == []
    assert table.predict(resolve(space.sample(0)), "error") > 0


# ---- searching for a phone: trained at 28x28x1, priced at the deployment shape


def test_search_prices_each_candidate_at_its_deployment_shape(tmp_path):
    from nas.config import parse_config
    from nas.experiment import run_experiment
    from nas.report import open_run
    from tests.fakes import FakeEvaluator

    config = parse_config({
        "name": "phone", "space": "proxylessnas", "trials": 3, "seed": 0, "output": str(tmp_path / "run"),
        "latency": {"table": "pixel1-proxylessnas", "input": "224x224x3", "missing": "estimate"},
        "sampler": {"kind": "random"}, "baselines": ["mobilenet_v2_0.35"]})
    run_experiment(config, progress=False, evaluator=FakeEvaluator(), log=lambda line: None)
    study = open_run(config.output_dir())
    table = load_latency_model("pixel1-proxylessnas")
    train, deploy = get_space("proxylessnas", (28, 28, 1), 10), get_space("proxylessnas", (224, 224, 3), 10)
    trials = [t for t in study.trials if t.values]
    assert len(trials) == 3
    for trial in trials:
        spec = train.decode(trial.params)
        assert spec.input == (28, 28, 1)
        at_224 = resolve(deploy.decode(trial.params))
        assert trial.values[1] == pytest.approx(table.predict(at_224))
        assert at_224[0].input == (224, 224, 3)
    from nas.space import get_reference

    baseline = study.user_attrs["baselines"]["mobilenet_v2_0.35"]
    assert baseline["latency_ms"] == pytest.approx(
        table.predict(resolve(get_reference("mobilenet_v2_0.35", (224, 224, 3), 10))))
    pricing = study.user_attrs["latency_pricing"]
    assert (pricing["device"], pricing["runtime"], pricing["shape"]) == ("Google Pixel 1", "TensorFlow Lite",
                                                                         "224x224x3")
    # the 10-class classifier is the one op of a space member the Pixel 1 table lacks
    assert pricing["networks_priced"] >= 4 and pricing["estimated_ops_min"] == 1
    assert pricing["estimated_ops_max"] > 1  # the baseline's widths are not in the table
    html = (config.output_dir() / "report.html").read_text()
    assert "Google Pixel 1" in html and "224x224x3" in html and "estimated" in html


def test_a_deployment_shape_the_table_was_not_measured_for_is_refused(tmp_path):
    from nas.config import parse_config
    from nas.experiment import run_experiment
    from nas.latency.errors import InputShapeError
    from tests.fakes import FakeEvaluator

    config = parse_config({"name": "phone", "space": "proxylessnas", "trials": 1, "output": str(tmp_path / "run"),
                           "latency": {"table": "pixel1-proxylessnas", "input": "192x192x3"}})
    with pytest.raises(InputShapeError, match="224x224x3, not 192x192x3"):
        run_experiment(config, progress=False, evaluator=FakeEvaluator(), log=lambda line: None)
    bad = parse_config({"name": "phone", "space": "proxylessnas", "trials": 1, "output": str(tmp_path / "run"),
                        "latency": {"table": "pixel1-proxylessnas", "input": "big"}})
    with pytest.raises(ValueError, match="latency.input"):
        run_experiment(bad, progress=False, evaluator=FakeEvaluator(), log=lambda line: None)


def test_an_exported_network_is_priced_as_its_search_priced_it():
    from nas.config import LatencyConfig
    from nas.latency.deployment import price_for_config

    train, deploy = get_space("proxylessnas", (28, 28, 1), 10), get_space("proxylessnas", (224, 224, 3), 10)
    spec = train.sample(5)
    latency = LatencyConfig(table="pixel1-proxylessnas", missing="estimate", input="224x224x3")
    ms, model = price_for_config(latency, "proxylessnas", {}, spec)
    table = load_latency_model("pixel1-proxylessnas")
    assert ms == pytest.approx(table.predict(resolve(deploy.decode(train.encode(spec)))))
    assert model.provenance["device"] == "Google Pixel 1"


def test_this_machine_never_validates_or_calibrates_a_device_table(capsys):
    for command in ("validate", "compose"):
        assert main(["latency", command, "--space", "proxylessnas", "--input", "224x224x3",
                     "--table", "pixel1-proxylessnas"]) == 2
        assert "measured on Google Pixel 1" in capsys.readouterr().err


def test_whole_network_scale_weighs_each_network_by_its_measured_share():
    from nas.latency.published import whole_network_scale

    published = {"a": 80.0, "b": 90.0, "c": 100.0}
    # c's sum is all estimate: it says nothing of how measured blocks differ from whole runs
    assert whole_network_scale({"a": (100.0, 0.5), "c": (50.0, 0.0)}, published) == pytest.approx(0.8)
    both = whole_network_scale({"a": (100.0, 0.25), "b": (100.0, 0.75)}, published)
    assert both == pytest.approx(0.8 ** 0.25 * 0.9 ** 0.75)
    assert whole_network_scale({"c": (50.0, 0.0)}, published) is None


def test_the_pixel1_correction_leaves_out_the_judged_network_and_weighs_the_others():
    from nas.latency.published import priced_sum, whole_network

    model = load_latency_model("pixel1-proxylessnas")
    v1 = priced_sum(model, "mobilenet_v1_1.0")
    assert v1["measured_share"] == 0.0 and v1["estimated_ops"] > 0  # every op estimated
    v2 = priced_sum(model, "mobilenet_v2_1.0")
    assert 0 < v2["measured_share"] < 1
    whole = whole_network(model, v2["raw_ms"], leave_out="mobilenet_v2_1.0")
    assert whole["fitted_on"] == ["proxyless_mobile"] and set(whole["weights"]) == {"proxyless_mobile"}
    proxyless = priced_sum(model, "proxyless_mobile")
    assert whole["scale"] == pytest.approx(78.0 / proxyless["raw_ms"])
