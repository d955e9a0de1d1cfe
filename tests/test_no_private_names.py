"""No private Optuna name in the project's code: what Optuna does not publish may change in
any release, and the project must keep working on every Optuna version setup.cfg allows.

The scanner reads each file with ``ast`` and flags
- an import of an Optuna module with a private component (``from optuna.study._tell import
  ...``, ``import optuna._imports``, ``from optuna import _experimental``) or of a private
  name from an Optuna module (``from optuna.storages import _CachedStorage``);
- an attribute access that starts with ``_`` on a name bound to Optuna (``optuna._x``,
  ``storages._CachedStorage``, where ``storages`` came from an Optuna import);
- an attribute access (or ``getattr``/``setattr``/``hasattr`` with a constant name) of one of
  the private attributes of Optuna's studies, trials, storages and samplers in
  :data:`OPTUNA_PRIVATE_ATTRIBUTES`, on any object, ``self`` included: a subclass of an
  Optuna class reaches them through ``self``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCANNED = ("nas", "search_spaces", "benchmarks", "tools")

# Private members of Optuna's Study, Trial, FrozenTrial, storages and samplers (Optuna 4-5).
OPTUNA_PRIVATE_ATTRIBUTES = frozenset({
    # study
    "_storage", "_study_id", "_get_trials", "_thread_local", "_directions", "_pop_waiting_trial_id",
    "_log_completed_trial", "_should_skip_enqueue", "_is_multi_objective", "_get_best_trial",
    # trial
    "_trial_id", "_cached_frozen_trial", "_suggest", "_check_distribution", "_relative_params",
    "_init_relative_params", "_fixed_params",
    # storages
    "_backend", "_get_stale_trial_ids", "_create_new_trial", "_set_trial_param",
    "_set_trial_param_without_commit", "_set_trial_attr_without_commit", "_studies",
    "_read_trials_from_remote_storage", "_get_cached_trial", "_check_trial_is_updatable",
    # samplers
    "_random_sampler", "_child_generation_strategy", "_elite_population_selection_strategy",
    "_after_trial_strategy", "_get_generation_key", "_get_parent_cache_key_prefix", "_GENERATION_KEY",
    "_PARENT_CACHE_KEY_PREFIX", "_cached_generation", "_sync_generation_cache", "_population_size",
    # module-level helpers
    "_tell_with_warning", "_CachedStorage", "_get_frozen_trial",
})


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_optuna_names(source: str, filename: str = "<source>") -> list[str]:
    """``"LINE: what"`` for each use of a private Optuna name in ``source``."""
    tree = ast.parse(source, filename)
    optuna_names: set[str] = set()  # local names bound to Optuna modules or objects
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "optuna":
                    optuna_names.add((alias.asname or alias.name).split(".")[0])
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "optuna":
            for alias in node.names:
                optuna_names.add(alias.asname or alias.name)
                if any(_private(part) for part in node.module.split(".")) or _private(alias.name):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            on_optuna = isinstance(root, ast.Name) and root.id in optuna_names
            if node.attr in OPTUNA_PRIVATE_ATTRIBUTES or on_optuna:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in OPTUNA_PRIVATE_ATTRIBUTES):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(set(found), key=lambda line: (int(line.split(":")[0]), line))


def scanned_files() -> list[Path]:
    return sorted(path for folder in SCANNED for path in (REPO / folder).rglob("*.py"))


def test_the_project_uses_no_private_optuna_name():
    files = scanned_files()
    assert any(path.name == "study.py" for path in files)  # the scan reaches the storage code
    problems = [f"{path.relative_to(REPO)}:{line}" for path in files
                for line in private_optuna_names(path.read_text(), str(path))]
    assert problems == [], "private Optuna names (use Optuna's public API):\n" + "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    # the storage code before Optuna's own storages were used (nas/search/study.py, batched_storage.py)
    ("from optuna.study._tell import _tell_with_warning",
     ["1: from optuna.study._tell import _tell_with_warning"]),
    ("from optuna.storages._rdb import models\nfrom optuna.storages._rdb.storage import _create_scoped_session",
     ["1: from optuna.storages._rdb import models",
      "2: from optuna.storages._rdb.storage import _create_scoped_session"]),
    ("import optuna._imports", ["1: import optuna._imports"]),
    ("from optuna.storages import _CachedStorage", ["1: from optuna.storages import _CachedStorage"]),
    ("import optuna\nx = optuna._experimental", ["2: optuna._experimental"]),
    ("from optuna import samplers as s\ns._lazy_random_state", ["2: s._lazy_random_state"]),
    # the pre-selecting sampler before (nas/search/preselect.py at 80e0676)
    ("for done in study._get_trials(deepcopy=False, use_cache=True):\n    done._trial_id",
     ["1: study._get_trials", "2: done._trial_id"]),
    ("stored = study._storage.get_study_system_attrs(study._study_id)",
     ["1: study._storage", "1: study._study_id"]),
    ("params[n] = self._random_sampler.sample_independent(study, trial, n, d)", ["1: self._random_sampler"]),
    ("child = self._child_generation_strategy(study, space, parents)", ["1: self._child_generation_strategy"]),
    ("key = self._get_parent_cache_key_prefix() + str(generation)", ["1: self._get_parent_cache_key_prefix"]),
    ("Sampler._GENERATION_KEY = optuna.samplers.NSGAIISampler._get_generation_key()",
     ["1: Sampler._GENERATION_KEY", "1: optuna.samplers.NSGAIISampler._get_generation_key"]),
    # the controller before
    ("running = self.study._storage.get_trial(running._trial_id)",
     ["1: running._trial_id", "1: self.study._storage"]),
    ("trial_id = getattr(trial, '_trial_id')", ["1: getattr(trial, '_trial_id')"]),
    # public API and the project's own private names pass
    ("import optuna\nfrom optuna.trial import TrialState\nstudy.get_trials(deepcopy=False)\n"
     "storage.get_trial_id_from_study_id_trial_number(sid, trial.number)\nself._beating = None\n"
     "argparse._SubParsersAction\nstudy.user_attrs\n", []),
])
def test_the_scanner_finds_private_optuna_names(source, expected):
    assert private_optuna_names(source) == expected


def test_the_scanner_flags_the_sampler_this_project_had_before():
    """The pre-selecting sampler as it was at 80e0676, abridged to its uses of Optuna (a copy:
    the test must not depend on the git history being there)."""
    before = '''
import optuna
from optuna.trial import FrozenTrial, TrialState

class PreselectingNSGAIISampler(optuna.samplers.NSGAIISampler):
    def infer_relative_search_space(self, study, trial):
        for done in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True):
            if done._trial_id in self._intersected:
                continue

    def get_parent_population(self, study, generation):
        stored = study._storage.get_study_system_attrs(study._study_id).get(
            self._get_parent_cache_key_prefix() + str(generation))
'''
    assert private_optuna_names(before) == ["7: study._get_trials", "8: done._trial_id", "12: study._storage",
                                            "12: study._study_id", "13: self._get_parent_cache_key_prefix"]
