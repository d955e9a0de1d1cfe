"""From an experiment config to a finished study: build the space, evaluator, latency model,
objective, sampler and study, run the baselines and the controller. The report is written
from the finished study by nas.report (nas.experiment does both); the search never imports it."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from nas.archs import load_arch
from nas.config import DEFAULT_CANDIDATES, ExperimentConfig
from nas.folders import removed_if_left_empty, unwritable_reason, written_whole
from nas.latency.deployment import price, pricing_summary
from nas.latency.registry import resolve_table
from nas.search.controller import Controller, RunSummary
from nas.search.identity import STUDY_ATTR, describe_differences, stored_differences, study_identity
from nas.search.objectives import Objective
from nas.search.preselect import Describe, PreselectingNSGAIISampler, architecture_describer
from nas.search.study import make_storage, redact, study_setup_lock
from nas.space import SearchSpace, get_space, space_class
from nas.spec import SpecError


@contextlib.contextmanager
def optuna_warnings_only():
    """Optuna logs every trial at INFO; a search prints its own progress, so while it runs only
    Optuna's warnings are shown. The caller's verbosity comes back afterwards: importing or
    calling the library leaves logging as it found it (a notebook may want Optuna's INFO)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


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
               describe: Describe | None = None, identity: dict[str, Any] | None = None,
               force_new: bool = False) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """Create the study or load it to resume, under a lock so that simultaneous workers join
    one study. A stored study made with another setup (``identity``, see
    nas/search/identity.py) is refused with the keys that differ, unless a sibling study made
    by ``force_new`` (``NAME-2``, ``NAME-3``, ...) matches and is resumed; with ``force_new``
    a new sibling is created and nothing is deleted. Returns the study and its storage."""
    url = storage_url or config.storage_url()
    with study_setup_lock(url):
        storage = make_storage(url, config.heartbeat_interval_s, config.grace_period_s)
        existing = set(optuna.get_all_study_names(storage))
        siblings = [config.study_name] + sorted((n for n in existing if _is_sibling(n, config.study_name)),
                                                key=_sibling_number)
        mismatch = None
        for name in siblings:
            if name not in existing:
                break  # not created yet: this run creates it
            found = _mismatch(optuna.load_study(study_name=name, storage=storage), objective, identity)
            if found is None:
                break
            mismatch = mismatch or (name, found)
        else:
            if not force_new:
                name, diffs = mismatch
                raise ExperimentError(
                    f"study {name!r} in {redact(url)} was made with another setup; its scores cannot be compared "
                    f"with this run's:\n{describe_differences(diffs)}\n"
                    f"run again with --force-new to start a new study beside it (nothing is deleted), or give "
                    f"another --study name or --output folder")
            name = _next_sibling(config.study_name, existing)
        study = optuna.create_study(storage=storage, study_name=name, sampler=make_sampler(config, objective, seed),
                                    directions=objective.directions, load_if_exists=True)
        if study.user_attrs.get("config") is None:
            with warnings.catch_warnings():  # experimental in Optuna since 3.2, and what names the report's axes
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(objective.names)
            study.set_user_attr("config", public_config(dataclasses.replace(config, study=name)))
        if identity is not None and study.user_attrs.get(STUDY_ATTR) is None:
            study.set_user_attr(STUDY_ATTR, identity)
        known = len(study.get_trials(deepcopy=False))
    # A resumed study continues the search: a sampler seeded as at the start would replay its
    # first proposals, which the study already holds.
    study.sampler = make_sampler(config, objective, resume_seed(seed, known), describe)
    return study, storage


def resume_seed(seed: int, trials_so_far: int) -> int:
    """The sampler's seed: the configured one for a new study, and one derived from it and the
    number of trials already in the study when resuming (the same on every rerun)."""
    if trials_so_far == 0:
        return seed
    return int(np.random.SeedSequence([seed, trials_so_far]).generate_state(1)[0]) % 2**31


def _is_sibling(name: str, base: str) -> bool:
    suffix = name[len(base) + 1:]
    return name.startswith(base + "-") and suffix.isdigit() and int(suffix) >= 2


def _sibling_number(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _next_sibling(base: str, existing: set[str]) -> str:
    number = 2
    while f"{base}-{number}" in existing:
        number += 1
    return f"{base}-{number}"


def _mismatch(study: optuna.Study, objective: Objective,
              identity: dict[str, Any] | None) -> list[tuple[str, Any, Any]] | None:
    """The differences between a stored study's setup and this run's; None when it fits."""
    stored_directions = [d.name.lower() for d in study.directions]
    if stored_directions != list(objective.directions):
        return [("objective.directions", stored_directions, list(objective.directions))]
    if identity is None:
        return None
    return stored_differences(study.user_attrs, identity) or None


def public_config(config: ExperimentConfig) -> dict[str, Any]:
    """The config as stored in studies and reports: storage passwords redacted."""
    data = config.to_dict()
    if data.get("storage"):
        data["storage"] = redact(data["storage"])
    return data


def write_config_copy(config: ExperimentConfig, folder: Path) -> None:
    """The run folder's config.yaml, through which later commands find the storage and study."""
    folder.mkdir(parents=True, exist_ok=True)
    with written_whole(folder / "config.yaml") as path:
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
                known.add(name)  # a baseline listed twice is queued once
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
    from nas.latency.deployment import load_pricing  # at latency.input when given, else the training input

    return load_pricing(config.latency.table, config.latency.missing, config.latency.input, space,
                        config.space.options)


def check_table_covers_space(model, space: SearchSpace, sample: int = 64) -> None:
    """Price a few random members before anything is trained: a table that cannot price the
    space fails now, with the latency module's message (missing keys and the command)."""
    for seed in range(sample):
        price(model, space.sample(seed))


def ensure_writable(folder: Path) -> None:
    """Fail before any work when the run folder cannot be written."""
    reason = unwritable_reason(folder)
    if reason:
        raise ExperimentError(f"output folder {str(folder)!r} is not writable: {reason}")


def preflight(config: ExperimentConfig, check_table: bool) -> None:
    """Cheap checks of everything the config names, before data is loaded or a study opened."""
    space_class(config.space.name)
    try:
        table = resolve_table(config.latency.table)  # a path or a shipped table's name
    except ValueError as exc:
        raise ExperimentError(f"latency.table: {exc}") from None
    if check_table and not table.is_file():
        raise ExperimentError(f"latency.table {config.latency.table!r} does not exist; measure one with "
                              f"`nas latency profile --space {config.space.name} ...` or pick one in latency_tables/")
    ensure_writable(config.output_dir())


@optuna_warnings_only()
def run_search(config: ExperimentConfig, *, progress: bool = True, storage_url: str | None = None,
               evaluator=None, latency_model=None, worker: int | None = None, log=None,
               force_new: bool = False) -> RunSummary:
    """Run (or resume) the experiment's search; returns the run's summary (its study in
    ``summary.study``; :func:`nas.experiment.run_experiment` also writes the report).
    ``force_new``: when the stored study was made with another setup, start a new study
    beside it instead of refusing (see :func:`open_study`)."""
    from nas.search.netadapt import run_netadapt

    # Until the study exists nothing is worth keeping: a run that fails first leaves no empty folder.
    with removed_if_left_empty(config.output_dir()):
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
        identity = study_identity(config, space, evaluator, latency_model)
        study, storage = open_study(config, objective, seed, storage_url,
                                    describe=architecture_describer(space, latency_model, objective),
                                    identity=identity, force_new=force_new)
    controller = Controller(study=study, space=space, evaluator=evaluator, latency_model=latency_model,
                            objective=objective, trials=config.trials, timeout_s=config.timeout_s,
                            progress=progress, log=log, storage=storage,
                            heartbeat_interval_s=config.heartbeat_interval_s, grace_period_s=config.grace_period_s)
    if study.study_name != config.study_name:
        controller.log(f"study {config.study_name!r} was made with another setup: this run uses study "
                       f"{study.study_name!r}, made with this one (the run folder's config.yaml names it)")
        config = dataclasses.replace(config, study=study.study_name)
    write_config_copy(config, config.output_dir())
    for line in evaluate_baselines(config, space, controller):
        controller.log(line)
    if config.objective.kind == "netadapt":
        summary = run_netadapt(controller, config.objective.netadapt)
    else:
        summary = controller.run()
    study.set_user_attr("latency_pricing", pricing_summary(latency_model, config.latency.table, config.latency.input))
    summary.study = study
    return summary


def make_experiment_evaluator(config: ExperimentConfig):
    from nas.evaluate import make_evaluator

    options = dict(config.evaluator.options)
    options.setdefault("seed", config.seed)
    if config.evaluator.kind == "train":  # the dataset's augmentation, unless the options set it
        for key, value in config.dataset.augmentation().items():
            options.setdefault(key, value)
    if config.dataset.name == "folder":
        options.update(data_input=config.dataset.input, data_cache=config.dataset.cache_dir(config.output_dir()))
    if config.evaluator.schedule is not None:  # successive halving: rung by rung
        options["schedule"] = dataclasses.asdict(config.evaluator.schedule)
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

