import pytest

from nas.config import ConfigError, load_config, override, parse_config

MINIMAL = {"name": "exp", "space": "hybrid", "latency": "table.csv", "trials": 5}


def test_minimal_config_gets_defaults():
    config = parse_config(MINIMAL)
    assert config.space.name == "hybrid" and config.latency.table == "table.csv"
    assert config.dataset.name == "fashion-mnist" and config.dataset.val_fraction == 0.1
    assert config.objective.kind == "pareto" and config.sampler_kind() == "nsga2"
    assert config.storage_url() == "sqlite:///runs/exp/study.db" and config.study_name == "exp"


def test_mnas_defaults_to_tpe_and_soft_exponents():
    config = parse_config({**MINIMAL, "objective": {"kind": "mnas", "target_ms": 1.5}})
    assert config.sampler_kind() == "tpe"
    assert config.objective.exponents == (-0.07, -0.07)
    hard = parse_config({**MINIMAL, "objective": {"kind": "mnas", "target_ms": 1.5, "mode": "hard"}})
    assert hard.objective.exponents == (0.0, -1.0)


@pytest.mark.parametrize("data, message", [
    ({**MINIMAL, "trails": 5}, "unknown key trails (did you mean 'trials'?)"),
    ({**MINIMAL, "objective": {"kind": "pareto", "max_latency": 2}},
     "unknown key objective.max_latency (did you mean 'max_latency_ms'?)"),
    ({**MINIMAL, "trials": "many"}, "trials must be an integer or null, got 'many'"),
    ({**MINIMAL, "trials": 0}, "trials must be in [1, 1000000], got 0"),
    ({**MINIMAL, "objective": {"max_latency_ms": -1}}, "objective.max_latency_ms must be in (0, 1000000], got -1"),
    ({**MINIMAL, "objective": "mnas"}, "objective.target_ms is required for the mnas objective"),
    ({**MINIMAL, "objective": {"kind": "paretoo"}},
     "objective.kind must be one of ['pareto', 'mnas', 'netadapt'], got 'paretoo' (did you mean 'pareto'?)"),
    ({**MINIMAL, "sampler": {"kind": "nsga2", "population_size": 1}},
     "sampler.population_size must be in [2, 10000], got 1"),
    ({**MINIMAL, "sampler": {"kind": "nsga2", "candidates": 0}}, "sampler.candidates must be in [1, 64], got 0"),
    ({**MINIMAL, "sampler": {"kind": "tpe", "candidates": 8}},
     "sampler.candidates applies to the nsga2 sampler only, got sampler 'tpe'"),
    ({**MINIMAL, "dataset": {"val_fraction": 1.5}}, "dataset.val_fraction must be in (0, 1), got 1.5"),
    ({"name": "exp", "space": "hybrid", "trials": 3}, "missing required key latency"),
    ({"name": "exp", "space": "hybrid", "latency": "t.csv"}, "give trials and/or timeout_s"),
    ({**MINIMAL, "objective": {"extra": ["flops"]}},
     "objective.extra[0] must be one of ['macs', 'params'], got 'flops'"),
    ({**MINIMAL, "name": "a b"}, "name must be one path component of letters, digits"),
    ({**MINIMAL, "baselines": "mobilenet_v2_0.5"}, "baselines must be a list of a string"),
    ({**MINIMAL, "objective": {"kind": "netadapt", "netadapt": {"start": "x", "budget_ms": 1, "decay": 2}}},
     "objective.netadapt.decay must be in (0, 1], got 2"),
    ([1, 2], "must be a mapping"),
])
def test_config_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "exp.yaml")
    assert message in str(exc.value)
    assert str(exc.value).startswith("exp.yaml: ")


def test_yaml_files(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: exp\nspace: hybrid\nlatency: t.csv\ntrials: 4\nseed: 3\n")
    assert load_config(path).seed == 3
    path.write_text("name: exp\n  space: [hybrid\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(path)
    path.write_text("!!python/object/apply:os.system ['echo unsafe']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(path)  # safe_load refuses Python tags
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_command_line_overrides_are_validated():
    config = parse_config(MINIMAL)
    assert override(config, trials=9, study="other").trials == 9
    assert override(config, trials=None).trials == 5
    with pytest.raises(ConfigError, match=r"trials must be in \[1, 1000000\], got 0"):
        override(config, trials=0)


def test_every_shipped_experiment_config_is_valid():
    from pathlib import Path

    from nas.space import space_class

    configs = sorted(Path(__file__).resolve().parents[1].glob("experiments/*.yaml"))
    assert any(path.name == "quickstart.yaml" for path in configs)
    from nas.latency import load_latency_model

    for path in configs:
        config = load_config(path)
        space_class(config.space.name)
        table = load_latency_model(config.latency.table)  # a path or a shipped table's name
        assert config.space.name in table.provenance["spaces"], path
