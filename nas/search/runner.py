"""From an experiment config to a finished run folder: build the space, evaluator, latency
model, objective, sampler and study, run the baselines and the controller, write the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna
import yaml

from nas.archs import load_arch
from nas.config import DEFAULT_CANDIDATES, ExperimentConfig
from nas.folders import unwritable_reason
from nas.ops import resolve
from nas.search.controller import Controller, RunSummary
from nas.search.objectives import Objective
from nas.search.preselect import Describe, PreselectingNSGAIISampler, architecture_describer
from nas.search.study import make_storage, redact
from nas.space import SearchSpace, get_space, space_class
from nas.spec import SpecError

optuna.logging.set_verbosity(optuna.logging.WARNING)


class ExperimentError(ValueError):
    """The experiment cannot run as configured (the message says why and what to do)."""


def make_sampler(config: ExperimentConfig, objective: Objective, seed: int,
                 describe: Describe | None = None) -> optuna.samplers.BaseSampler:
    """The configured sampler. Constraints reach it through ``Trial.set_constraint``.
    ``describe`` prices a parameter set before it is trained; NSGA-II uses it to choose among
    its children (without it, or with ``candidates: 1``, it is plain NSGA-II)."""
    kind = config.sampler_kind()
    if kind == "nsga2":
        candidates = config.sampler.candidates or DEFAULT_CANDIDATES
        if describe is not None and candidates > 1:
            return PreselectingNSGAIISampler(describe=describe, candidates=candidates,
                                             population_size=config.sampler.population_size, seed=seed)
        return optuna.samplers.NSGAIISampler(population_size=config.sampler.population_size, seed=seed)
    if kind == "nsga3":
        return optuna.samplers.NSGAIIISampler(population_size=config.sampler.population_size, seed=seed)
    if kind == "tpe":
        # Multivariate: one joint model of all parameters per trial instead of one per parameter;
        # with 48 parameters it is 4x cheaper and found better fronts (benchmarks/search_quality.py).
        return optuna.samplers.TPESampler(n_startup_trials=config.sampler.n_startup_trials, seed=seed,
                                          multivariate=True)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ExperimentError(f"unknown sampler {kind!r}")  # parse_config already restricts the kinds


def build_space(config: ExperimentConfig, input_shape, classes: int) -> SearchSpace:
    try:
        return get_space(config.space.name, tuple(input_shape), classes, **config.space.options)
    except TypeError as exc:  # an unknown option keyword
        raise ExperimentError(f"space.options: {exc}") from None


def open_study(config: ExperimentConfig, objective: Objective, seed: int, storage_url: str | None = None,
               describe: Describe | None = None):
    """Create the study or load it to resume; refuses a stored study made for other objectives.
    Returns the study and the storage object it was opened with."""
    url = storage_url or config.storage_url()
    storage = make_storage(url, config.heartbeat_interval_s, config.grace_period_s)
    sampler = make_sampler(config, objective, seed, describe)
    study = optuna.create_study(storage=storage, study_name=config.study_name, sampler=sampler,
                                directions=objective.directions, load_if_exists=True)
    wanted = [optuna.study.StudyDirection.MAXIMIZE if d == "maximize" else optuna.study.StudyDirection.MINIMIZE
              for d in objective.directions]
    if list(study.directions) != wanted:
        raise ExperimentError(f"study {config.study_name!r} in {redact(url)} was created for other objectives "
                              f"({[d.name.lower() for d in study.directions]}); use another --study name")
    stored = study.user_attrs.get("config")
    other_space = stored and stored["space"] != dataclasses.asdict(config.space)
    if other_space or (stored and stored["objective"]["kind"] != config.objective.kind):
        raise ExperimentError(f"study {config.study_name!r} in {redact(url)} belongs to another experiment "
                              f"(space {stored['space']['name']!r}, objective {stored['objective']['kind']!r}); "
                              f"use another --study name")
    if not stored:
        study.set_metric_names(objective.names)
        study.set_user_attr("config", public_config(config))
    return study, storage


def public_config(config: ExperimentConfig) -> dict[str, Any]:
    """The config as stored in studies and reports: storage passwords redacted."""
    data = config.to_dict()
    if data.get("storage"):
        data["storage"] = redact(data["storage"])
    return data


def write_config_copy(config: ExperimentConfig, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(public_config(config), sort_keys=False))


def evaluate_baselines(config: ExperimentConfig, space: SearchSpace, controller: Controller) -> list[str]:
    """Enqueue the baselines that are members of the space as the first trials; evaluate the
    others once, with the same evaluator and latency model, into the study's ``baselines``
    attribute. Returns log lines."""
    study, lines = controller.study, []
    records = dict(study.user_attrs.get("baselines", {}))
    known = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)}
    for name in config.baselines:
        spec = load_arch(name, space.input_shape, space.classes)
        if space.contains(spec):
            if name not in known:
                study.enqueue_trial(space.encode(spec), user_attrs={"baseline": name})
                lines.append(f"baseline {name}: queued as a trial (a member of the space)")
            continue
        if name in records:
            continue
        m = controller.measure(spec)
        metrics = controller.evaluator.evaluate(spec)
        score = metrics.get(controller.evaluator.objective)
        records[name] = {"arch_id": spec.arch_id, "spec_string": spec.to_string(), "latency_ms": m.latency_ms,
                         "macs": m.macs, "params": m.params, "score": score, "status": metrics.get("status", "ok")}
        study.set_user_attr("baselines", records)
        lines.append(f"baseline {name}: {controller.evaluator.objective} {score:.4f}, latency {m.latency_ms:.3f} ms")
    return lines


def load_latency_model(config: ExperimentConfig, space: SearchSpace):
    from nas.latency import load_latency_model as load

    model = load(config.latency.table, missing=config.latency.missing)
    model.check_input(space.input_shape)
    return model


def check_table_covers_space(model, space: SearchSpace, sample: int = 64) -> None:
    """Price a few random members before anything is trained: a table that cannot price the
    space fails now, with the latency module's message (missing keys and the command)."""
    for seed in range(sample):
        model.predict(resolve(space.sample(seed)))


def ensure_writable(folder: Path) -> None:
    """Fail before any work when the run folder cannot be written."""
    reason = unwritable_reason(folder)
    if reason:
        raise ExperimentError(f"output folder {str(folder)!r} is not writable: {reason}")


def preflight(config: ExperimentConfig, check_table: bool) -> None:
    """Cheap checks of everything the config names, before data is loaded or a study opened."""
    space_class(config.space.name)
    if check_table and not Path(config.latency.table).is_file():
        raise ExperimentError(f"latency.table {config.latency.table!r} does not exist; measure one with "
                              f"`nas latency profile --space {config.space.name} ...` or pick one in latency_tables/")
    ensure_writable(config.output_dir())


def run_experiment(config: ExperimentConfig, *, progress: bool = True, storage_url: str | None = None,
                   evaluator=None, latency_model=None, worker: int | None = None, log=None) -> RunSummary:
    """Run (or resume) the experiment and write its report; returns the run's summary."""
    from nas.search.netadapt import run_netadapt

    preflight(config, check_table=latency_model is None)
    evaluator = evaluator or make_experiment_evaluator(config)
    source = getattr(evaluator, "source", None)
    if source is not None:
        source.load()  # a missing or corrupt dataset fails now, not in every trial
    input_shape, classes = evaluator_input(evaluator, config)
    space = build_space(config, input_shape, classes)
    latency_model = latency_model or load_latency_model(config, space)
    check_table_covers_space(latency_model, space)
    objective = Objective(config.objective, score_name=evaluator.objective)
    seed = config.seed if worker is None else config.seed + 1000 * worker
    study, storage = open_study(config, objective, seed, storage_url,
                                describe=architecture_describer(space, latency_model, objective))
    output = config.output_dir()
    write_config_copy(config, output)
    controller = Controller(study=study, space=space, evaluator=evaluator, latency_model=latency_model,
                            objective=objective, trials=config.trials, timeout_s=config.timeout_s,
                            progress=progress, log=log, storage=storage)
    for line in evaluate_baselines(config, space, controller):
        controller.log(line)
    if config.objective.kind == "netadapt":
        summary = run_netadapt(controller, config.objective.netadapt)
    else:
        summary = controller.run()
    from nas.report import write_report

    write_report(study, output)
    summary.study = study
    return summary


def make_experiment_evaluator(config: ExperimentConfig):
    from nas.evaluate import make_evaluator

    options = dict(config.evaluator.options)
    options.setdefault("seed", config.seed)
    return make_evaluator(config.evaluator.kind, dataset=config.dataset.name, data_path=config.dataset.path,
                          val_fraction=config.dataset.val_fraction, cache_path=config.output_dir() / "eval_cache.jsonl",
                          **options)


def evaluator_input(evaluator, config: ExperimentConfig) -> tuple[tuple[int, int, int], int]:
    """The input shape and class count the evaluator's data implies."""
    shape = getattr(evaluator, "input_shape", None)
    classes = getattr(evaluator, "classes", None)
    if shape is None or classes is None:
        raise SpecError(f"evaluator {config.evaluator.kind!r} does not say its input shape and class count")
    return tuple(shape), int(classes)

