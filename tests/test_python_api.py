"""The Python API (nas/api.py, exported by ``nas``): the examples of docs/python-api.md run as
written, and each function does what its command does."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import nas
from nas import api
from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "python-api.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.S | re.M)


@pytest.fixture(scope="module")
def guide_run(tmp_path_factory):
    """The guide's examples, run in order in one namespace, in a fresh folder holding a copy of
    experiments/ (as from a checkout's root); returns (folder, namespace, printed text)."""
    folder = tmp_path_factory.mktemp("guide")
    shutil.copytree(ROOT / "experiments", folder / "experiments")
    before = optuna.logging.get_verbosity()
    namespace: dict = {}
    printed: list[str] = []
    namespace["print"] = lambda *args, **kwargs: printed.append(" ".join(map(str, args)))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        optuna.logging.set_verbosity(optuna.logging.DEBUG)  # a caller's own choice, which search must keep
        try:
            for number, block in enumerate(python_blocks(GUIDE.read_text()), 1):
                exec(compile(block, f"{GUIDE.name} python block {number}", "exec"), namespace)
            assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
        finally:
            optuna.logging.set_verbosity(before)
    return folder, namespace, "\n".join(printed)


def test_the_guide_has_examples_for_each_job():
    code = "\n".join(python_blocks(GUIDE.read_text()))
    for call in ("nas.load_config(", "nas.change_config(", "nas.make_config(", "nas.run_search(", "nas.pareto_front(",
                 "nas.trials(", "nas.open_run(", "nas.price(", "nas.latency_tables(", "nas.export_network("):
        assert call in code, f"docs/python-api.md has no example of {call}...)"


def test_the_guides_examples_run_and_write_only_into_their_folder(guide_run):
    folder, namespace, printed = guide_run
    assert sorted(p.name for p in folder.iterdir()) == ["experiments", "exported", "runs"]
    assert (folder / "exported/fastest/card.json").is_file()
    assert sorted(p.name for p in (folder / "runs").iterdir()) == ["demo"]  # `small` is only built
    written = {p.name for p in (folder / "runs/demo").iterdir()}
    assert {"study.db", "config.yaml", "report.html", "pareto.csv"} <= written
    front = namespace["front"]
    assert len(front) >= 1 and list(front.columns) == ["number", "score", "latency_ms", "macs", "params", "arch_id",
                                                       "spec_string"]
    assert "change_config: trials must be in [1, 1000000], got 0" in printed


def test_pareto_front_is_what_nas_pareto_prints(guide_run, capsys):
    folder, namespace, _ = guide_run
    from nas.report import format_pareto

    assert main(["pareto", str(folder / "runs/demo")]) == 0
    assert capsys.readouterr().out.strip() == format_pareto(nas.pareto_front(folder / "runs/demo"), "naswot").strip()
    study = nas.open_run(folder / "runs/demo")
    assert nas.pareto_front(study).equals(nas.pareto_front(str(folder / "runs/demo")))
    assert len(nas.trials(study)) == len(study.trials)


def test_reading_a_run_does_not_import_the_search_controller(guide_run):
    folder, _, _ = guide_run
    code = ("import json, sys, nas; front = nas.pareto_front(sys.argv[1]); "
            "print(json.dumps([len(front), sorted(m for m in sys.modules if m.startswith('nas.search'))]))")
    done = subprocess.run([sys.executable, "-c", code, str(folder / "runs/demo")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    rows, search_modules = json.loads(done.stdout)
    assert rows >= 1
    assert "nas.search.controller" not in search_modules and "nas.search.runner" not in search_modules


def test_write_report_writes_into_the_folder_asked(guide_run, tmp_path):
    folder, _, _ = guide_run
    paths = nas.write_report(folder / "runs/demo", tmp_path / "elsewhere")
    assert {p.parent for p in paths.values()} == {tmp_path / "elsewhere"}
    assert all(p.is_file() for p in paths.values())
    with pytest.raises(ValueError, match="give output=FOLDER"):
        nas.write_report(nas.open_run(folder / "runs/demo"))


def test_open_run_of_a_folder_that_is_no_run_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a run folder: it has no config.yaml"):
        nas.open_run(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_price_is_what_nas_latency_predict_says(capsys):
    assert main(["latency", "predict", "mobilenet_v2_1.0", "--table", "pixel1-proxylessnas", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    priced = nas.price("mobilenet_v2_1.0", "pixel1-proxylessnas")
    assert priced.latency_ms == pytest.approx(cli["latency_ms"], rel=1e-12)
    assert priced.arch_id == cli["arch_id"]
    assert list(priced.estimated_ops) == cli["estimated_keys"]
    assert (priced.device, priced.runtime, priced.input) == (cli["device"], cli["runtime"], cli["input"])
    assert priced.missing_policy == cli["missing_policy"]
    spec = nas.load_arch("mobilenet_v2_1.0", (224, 224, 3), 1000)
    assert nas.price(spec, "pixel1-proxylessnas").latency_ms == priced.latency_ms


def test_price_refuses_bad_input_with_the_reason():
    with pytest.raises(ValueError, match="unknown latency table 'no-such-table'"):
        nas.price("mobilenet_v2_1.0", "no-such-table")
    with pytest.raises(ValueError, match="has no entry for"):
        nas.price("mobilenet_v2_1.0", "pixel1-proxylessnas", missing="error")
    spec = nas.load_arch("mobilenet_v2_1.0")  # built at 28x28x1; the table is for 224x224x3
    with pytest.raises(ValueError, match="224x224x3|224, 224, 3"):
        nas.price(spec, "pixel1-proxylessnas")


def test_latency_tables_lists_the_shipped_tables():
    tables = nas.latency_tables()
    assert "pixel1-proxylessnas" in set(tables["name"])
    row = tables.set_index("name").loc["pixel1-proxylessnas"]
    assert (row["device"], row["input"]) == ("Google Pixel 1", "224x224x3")


def test_make_config_checks_as_a_yaml_file_is_checked():
    with pytest.raises(nas.ConfigError, match="unknown key trails .*did you mean 'trials'"):
        nas.make_config(name="x", space="hybrid", latency="t.csv", trails=3)
    with pytest.raises(nas.ConfigError, match="give trials and/or timeout_s"):
        nas.make_config(name="x", space="hybrid", latency="t.csv")
    config = nas.make_config(name="x", space="hybrid", latency="t.csv", trials=3)
    assert nas.change_config(config, trials=5).trials == 5 and config.trials == 3
    assert nas.change_config(config, trials=5) == nas.make_config(name="x", space="hybrid", latency="t.csv", trials=5)


def test_search_takes_a_yaml_path(tmp_path):
    """Only the path handling: a config that fails its first check shows it was read."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nspace: hybrid\nlatency: t.csv\ntrials: 0\n")
    with pytest.raises(nas.ConfigError, match=f"{re.escape(str(path))}: trials must be in"):
        nas.run_search(path)
    with pytest.raises(nas.ConfigError, match="does not exist"):
        nas.run_search(str(tmp_path / "missing.yaml"))


def test_every_public_name_is_documented_and_exported_once():
    assert nas.__all__ == api.__all__
    for name in nas.__all__:
        # a name of a subpackage or module would be replaced by it once that is imported
        assert not (ROOT / "nas" / name).exists() and not (ROOT / "nas" / f"{name}.py").exists(), name
        obj = getattr(nas, name)
        assert obj is getattr(api, name)
        assert inspect.getdoc(obj), f"nas.{name} has no docstring"
    functions = [n for n in nas.__all__ if inspect.isfunction(getattr(nas, n))]
    guide = GUIDE.read_text()
    for name in functions:
        assert f"nas.{name}(" in guide, f"docs/python-api.md does not mention nas.{name}"


def test_the_version_is_the_installed_distributions():
    from importlib.metadata import version

    assert nas.__version__ == version("edgenas")


def test_verify_run_is_nas_verify_with_its_defaults(guide_run):
    from nas.verify.settings import DEFAULTS

    parameters = inspect.signature(nas.verify_run).parameters
    assert {name: parameters[name].default for name in DEFAULTS} == DEFAULTS
    folder, _, _ = guide_run
    before = sorted(p.name for p in (folder / "runs/demo").iterdir())
    with pytest.raises(ValueError, match="picks must be"):
        nas.verify_run(folder / "runs/demo", picks=0)
    assert sorted(p.name for p in (folder / "runs/demo").iterdir()) == before
