"""An Optuna RDB storage that writes a trial's parameters and attributes in one transaction.

Optuna commits every ``suggest_*`` call and every user or system attribute on its own. A
trial of the ``hybrid`` space has 48 parameters and about ten attributes, so on SQLite the
controller spent some 100 ms per trial in commits alone (and as many round trips on
PostgreSQL). Inside ``with storage.batch():`` those writes are collected and written together
when the block ends; everything else (creating trials, state changes, heartbeats, reads)
goes straight through as before.

While a batch is open, other readers of the storage (other workers, a sampler reading the
study) do not yet see the running trial's new parameters; they see them when the block ends,
as they would see a trial that is still being set up. A block that raises writes nothing: its
trial is failed or retried by the caller, never completed with half its parameters.

This subclasses Optuna's storage and calls three of its internal helpers
(``_set_trial_param``, ``_set_trial_param_without_commit``, ``_set_trial_attr_without_commit``).
:func:`batching_supported` checks that they exist; where they do not (another Optuna
version), :meth:`BatchedRDBStorage.batch` writes one by one, exactly as plain Optuna does.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite
from optuna import distributions
from optuna.storages import RDBStorage

try:  # Optuna internals; without them every write goes one by one (see batching_supported)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
except ImportError:  # pragma: no cover - depends on the installed Optuna
    models = _create_scoped_session = None

_HELPERS = ("_set_trial_param", "_set_trial_param_without_commit", "_set_trial_attr_without_commit")


_SUPPORTED = models is not None and all(callable(getattr(RDBStorage, name, None)) for name in _HELPERS)


def batching_supported() -> bool:
    """True when the installed Optuna has the internal helpers batching relies on."""
    return _SUPPORTED


class BatchedRDBStorage(RDBStorage):
    """:class:`optuna.storages.RDBStorage` plus :meth:`batch`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Only the thread that opened a batch buffers: the heartbeat thread writes directly.
        self._local = threading.local()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect parameter and attribute writes made by this thread; write them in one
        transaction when the block ends without an exception. A nested block joins the
        outer one."""
        if not _SUPPORTED or self._pending() is not None:
            yield
            return
        self._local.pending = []
        try:
            yield
            pending = self._local.pending
        finally:
            self._local.pending = None
        if pending:
            self._write(pending)

    def _pending(self) -> list | None:
        return getattr(self._local, "pending", None)

    def _set_trial_param(self, trial_id, param_name, param_value_internal, distribution,
                         previous_distribution) -> None:
        pending = self._pending()
        if pending is None:
            super()._set_trial_param(trial_id, param_name, param_value_internal, distribution,
                                     previous_distribution)
            return
        pending.append(_Param(trial_id, param_name, param_value_internal, distribution, previous_distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._attr(False, trial_id, key, value, super().set_trial_user_attr)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._attr(True, trial_id, key, value, super().set_trial_system_attr)

    def _attr(self, system: bool, trial_id: int, key: str, value: Any, write_now) -> None:
        pending = self._pending()
        if pending is None:
            write_now(trial_id, key, value)
            return
        pending.append(_Attr(system, trial_id, key, value))

    def _write(self, pending: list) -> None:
        """Write the batch in one transaction, with the checks Optuna makes per write: the
        trial is still updatable, a parameter's distribution matches the study's."""
        with _create_scoped_session(self.scoped_session, True) as session:
            for trial_id in dict.fromkeys(item.trial_id for item in pending):
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
                self.check_trial_is_updatable(trial_id, trial.state)
            self._write_params(session, [item for item in pending if isinstance(item, _Param)])
            for system, model_cls in ((False, models.TrialUserAttributeModel),
                                      (True, models.TrialSystemAttributeModel)):
                attrs = [item for item in pending if isinstance(item, _Attr) and item.system is system]
                self._write_attrs(session, model_cls, attrs)

    def _write_params(self, session, params: list[_Param]) -> None:
        rows = []
        for p in params:
            if p.previous is None:  # the study's first use of this name: let Optuna look it up
                self._set_trial_param_without_commit(session, p.trial_id, p.name, p.value, p.distribution)
                continue
            distributions.check_distribution_compatibility(p.previous, p.distribution)
            rows.append({"trial_id": p.trial_id, "param_name": p.name, "param_value": p.value,
                         "distribution_json": distributions.distribution_to_json(p.distribution)})
        if rows:
            session.execute(sqlalchemy.insert(models.TrialParamModel), rows)

    def _write_attrs(self, session, model_cls, attrs: list[_Attr]) -> None:
        latest = {(a.trial_id, a.key): a.value for a in attrs}  # the last write of a key wins
        if not latest:
            return
        insert = _UPSERT_INSERTS.get(self.engine.name)
        if insert is None or (self.engine.name == "sqlite" and sqlite3.sqlite_version_info < (3, 24, 0)):
            for (trial_id, key), value in latest.items():
                self._set_trial_attr_without_commit(session, model_cls, trial_id, key, value)
            return
        statement = insert(model_cls).values([{"trial_id": t, "key": k, "value_json": json.dumps(v)}
                                              for (t, k), v in latest.items()])
        session.execute(statement.on_conflict_do_update(
            index_elements=[model_cls.trial_id, model_cls.key],
            set_={"value_json": statement.excluded.value_json}))


@dataclass(frozen=True)
class _Param:
    trial_id: int
    name: str
    value: float
    distribution: distributions.BaseDistribution
    previous: distributions.BaseDistribution | None


@dataclass(frozen=True)
class _Attr:
    system: bool  # a system attribute (constraints, ...) rather than a user attribute
    trial_id: int
    key: str
    value: Any


# Dialects with a multi-row "insert ... on conflict update" (Optuna's own upsert per key).
_UPSERT_INSERTS = {"sqlite": sqlalchemy.dialects.sqlite.insert, "postgresql": sqlalchemy.dialects.postgresql.insert}
