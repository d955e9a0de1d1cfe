"""An Optuna RDB storage built for the controller's ask/tell loop: a trial's parameters,
attributes and end are written in few transactions, and this worker's own trials are read
from memory. Same schema, same rows as plain Optuna: any Optuna reader (other workers,
optuna-dashboard, ``nas report``) sees the same study.

Writes. Optuna commits every ``suggest_*`` call and every user or system attribute on its own.
A trial of the ``hybrid`` space has 48 parameters and about ten attributes, so on SQLite the
controller spent some 100 ms per trial in commits alone (and as many round trips on
PostgreSQL). Inside ``with storage.batch():`` those writes are collected and written together
when the block ends; a ``tell`` inside the block writes the trial's end in the same
transaction. While a batch is open, other readers do not yet see the running trial's new
rows; they see them when the block ends, as they would see a trial that is still being set up.
A block that raises writes nothing: its trial is failed or retried by the caller, never
completed with half its parameters.

Reads. Optuna reads the running trial back from the database several times per trial, each
read dearer than the trial's writes. The trials this worker created are copied in a
:class:`~nas.search.trial_mirror.TrialMirror` as they are written, and served from there; a
study read asks the database only which trials match and loads the others'.

Statements. Creating a fresh trial, finishing one, heartbeats and study system attributes are
written as SQLAlchemy Core statements with the rules Optuna's ORM code follows (each method
says which), built once with bound parameters (:class:`_Statements`); Optuna's own code
remains for everything else (queued trials, a trial's first use of a parameter name,
intermediate values).

This subclasses Optuna's storage, overrides two of its internal methods (``_create_new_trial``,
``_get_trials``), calls three internal helpers (``_set_trial_param``,
``_set_trial_param_without_commit``, ``_set_trial_attr_without_commit``) and writes to its
tables (``optuna.storages._rdb.models``). :func:`batching_supported` checks that they exist;
where they do not (another Optuna version), the storage behaves exactly as plain Optuna.
Tests compare every read with a plain Optuna reader of the same database.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite
from optuna import distributions, exceptions
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from nas.search.trial_mirror import TrialMirror

try:  # Optuna internals; without them every write goes one by one (see batching_supported)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
except ImportError:  # pragma: no cover - depends on the installed Optuna
    models = _create_scoped_session = None

_HELPERS = ("_set_trial_param", "_set_trial_param_without_commit", "_set_trial_attr_without_commit",
            "_create_new_trial", "_get_trials")
# Larger "in" lists than this are filtered in Python (SQLite limits a statement's parameters).
MAX_IN_LIST = 500
# The largest trial id the schema's integer column holds (PostgreSQL's, 32 bits): given as the
# "newer than" bound, Optuna's _get_trials loads exactly the ids it is given.
_ABOVE_EVERY_TRIAL_ID = 2**31 - 1
# Distributions' JSON kept at most (a caller with ever new choice sets clears it now and then).
MAX_HELD_JSON = 4096


_SUPPORTED = models is not None and all(callable(getattr(RDBStorage, name, None)) for name in _HELPERS)


def batching_supported() -> bool:
    """True when the installed Optuna has the internal helpers batching relies on."""
    return _SUPPORTED


class BatchedRDBStorage(RDBStorage):
    """:class:`optuna.storages.RDBStorage` plus :meth:`batch`, with this worker's trials read
    from memory."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Only the thread that opened a batch buffers: the heartbeat thread writes directly.
        self._local = threading.local()
        self._mirror = TrialMirror()
        self._upserts: dict[tuple, Any] = {}
        self._distribution_json: dict[tuple, str] = {}  # see _json_of

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
            if pending:
                self._write(pending)
        except BaseException:
            # Nothing of the block reached the database: the copies must not keep it either.
            self._mirror.forget({item.trial_id for item in self._local.pending or ()})
            raise
        finally:
            self._local.pending = None

    def _pending(self) -> list | None:
        return getattr(self._local, "pending", None)

    def _set_trial_param(self, trial_id, param_name, param_value_internal, distribution,
                         previous_distribution) -> None:
        pending = self._pending()
        if pending is None:
            super()._set_trial_param(trial_id, param_name, param_value_internal, distribution,
                                     previous_distribution)
        else:
            pending.append(_Param(trial_id, param_name, param_value_internal, distribution, previous_distribution))
        self._mirror.set_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._attr(False, trial_id, key, value, super().set_trial_user_attr)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._attr(True, trial_id, key, value, super().set_trial_system_attr)

    def _attr(self, system: bool, trial_id: int, key: str, value: Any, write_now) -> None:
        pending = self._pending()
        if pending is None:
            write_now(trial_id, key, value)
        else:
            pending.append(_Attr(system, trial_id, key, value))
        self._mirror.set_attr(trial_id, system, key, value)

    # ---- this worker's trials, read from memory

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        if not _SUPPORTED or template_trial is not None:  # a queued or copied trial: Optuna's way
            return super()._create_new_trial(study_id, template_trial)
        trial = self._create_running_trial(study_id)
        self._mirror.started(study_id, trial)  # a fresh trial for this worker
        return trial

    def _create_running_trial(self, study_id: int) -> FrozenTrial:
        """A fresh running trial, created as Optuna creates one but in Core statements: the
        study's row is locked (PostgreSQL; SQLite has one writer at a time anyway), the trial
        inserted, and its number counted from the study's trials created before it."""
        sql = _statements()
        start = models.TrialModel(datetime_start=datetime.now())  # converted as Optuna stores it
        with self.engine.begin() as connection:
            if connection.execute(sql.lock_study, {"b_study": study_id}).first() is None:
                raise KeyError(f"No study with study_id {study_id} exists.")
            trial_id = connection.execute(sql.insert_trial, {"study_id": study_id, "state": TrialState.RUNNING,
                                                             "datetime_start": start._datetime_start_utc}
                                          ).inserted_primary_key[0]
            number = connection.execute(sql.count_before, {"b_study": study_id, "b_trial": trial_id}).scalar_one()
            connection.execute(sql.set_number, {"b_trial": trial_id, "b_number": number})
        return FrozenTrial(number=number, state=TrialState.RUNNING, value=None, values=None,
                           datetime_start=start.datetime_start, datetime_complete=None, params={}, distributions={},
                           user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=trial_id)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        held = self._mirror.get(trial_id)
        return held if held is not None else super().get_trial(trial_id)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        """Within ``batch()`` (``tell`` inside the block), the writes still waiting go first.
        Finishing a trial of ours is written in the same transaction as they are; anything
        else goes through Optuna."""
        pending = self._pending()
        finish = None
        if _SUPPORTED and state.is_finished() and self._mirror.is_running(trial_id):
            finish = _Finish(trial_id, state, None if values is None else [float(v) for v in values],
                             models.TrialModel(datetime_complete=datetime.now()))
        try:
            if pending or finish:
                self._write(list(pending or ()), finish)
                if pending:
                    pending.clear()  # written now
            changed = True if finish else super().set_trial_state_values(trial_id, state, values)
        except BaseException:
            self._mirror.forget([trial_id])
            raise
        if finish:
            self._mirror.finish(trial_id, state, finish.values, finish.completed.datetime_complete)
        return changed

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._mirror.forget([trial_id])  # not copied: rare here, and read back from the database
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def _get_trials(self, study_id: int, states, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        """Optuna's study read (trials with the given ids or newer than the given id): one
        query for which trials match, the ones held in memory from there, the rest loaded."""
        if not _SUPPORTED:
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        held = self._mirror.of_study(study_id)
        matching = self._matching_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        if not matching:  # the usual answer between two trials of one worker: nothing new
            return []
        # A held trial whose state in the database differs was changed by someone else (a
        # dead-worker check that failed it): it is no longer ours to copy.
        stale = [tid for tid, state in matching if tid in held and held[tid] != state]
        self._mirror.forget(stale)
        to_load = {tid for tid, _ in matching if tid not in held or tid in stale}
        if len(to_load) > MAX_IN_LIST or len(to_load) == len(matching):
            # A first read of a large study, or nothing of ours in it: Optuna's own query, not
            # thousands of ids in a list.
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        from_memory = [self._mirror.take(tid) for tid, _ in matching if tid in held and tid not in stale]
        loaded = super()._get_trials(study_id, states, to_load, _ABOVE_EVERY_TRIAL_ID) if to_load else []
        return sorted(loaded + from_memory, key=lambda t: t._trial_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        """One Core query (NSGA-II reads its generation cache here before every trial)."""
        if not _SUPPORTED:
            return super().get_study_system_attrs(study_id)
        with self.engine.connect() as connection:
            rows = connection.execute(_statements().study_system_attrs, {"b_study": study_id}).all()
        if not rows:
            self._check_study_exists(study_id)
        return {key: json.loads(value) for key, value in rows}

    def _check_study_exists(self, study_id: int) -> None:
        with self.engine.connect() as connection:
            found = connection.execute(_statements().study_exists, {"b_study": study_id}).first()
        if found is None:
            raise KeyError(f"No study with study_id {study_id} exists.")

    def _matching_trials(self, study_id: int, states, included_trial_ids: set[int],
                         trial_id_greater_than: int) -> list[tuple[int, TrialState]]:
        """(trial id, state) of the trials Optuna's ``_get_trials`` would return, same rules;
        KeyError for a study that does not exist, as there. One query: the study's row joined
        with its matching trials (none gives one row without a trial)."""
        values: dict[str, Any] = {"b_study": study_id}
        if states is not None:
            values["b_states"] = list(states)
        included = {tid for tid in included_trial_ids if tid <= trial_id_greater_than}
        newer, in_list, wanted = False, False, None
        if trial_id_greater_than > -1:
            if included and len(included) > MAX_IN_LIST:
                wanted = included  # all the study's trials, filtered below
            else:
                newer, in_list = True, bool(included)
                values["b_newer"] = trial_id_greater_than
                if in_list:
                    values["b_included"] = sorted(included)
        with self.engine.connect() as connection:
            rows = connection.execute(_statements().matching(states is not None, newer, in_list), values).all()
        if not rows:
            raise KeyError(f"No study with study_id {study_id} exists.")
        rows = [r for r in rows if r.trial_id is not None]
        if wanted is not None:
            rows = [r for r in rows if r.trial_id in wanted or r.trial_id > trial_id_greater_than]
        return [(r.trial_id, r.state) for r in rows]

    def _write(self, pending: list, finish: _Finish | None = None) -> None:
        """Write the batch (and the trial's end) in one transaction, with the checks Optuna
        makes per write: the trial is still updatable, a parameter's distribution matches the
        study's."""
        with _create_scoped_session(self.scoped_session, True) as session:
            trial_ids = set(item.trial_id for item in pending) | ({finish.trial_id} if finish else set())
            # Core statements run on the session's connection: the same transaction, without
            # the ORM's execution layer (the session is for Optuna's own helpers below).
            connection = session.connection()
            states = dict(connection.execute(_statements().trial_states, {"b_trials": sorted(trial_ids)}).all())
            for trial_id in trial_ids:
                if trial_id not in states:
                    raise KeyError(f"No trial with trial id {trial_id} exists.")
                self.check_trial_is_updatable(trial_id, states[trial_id])
            self._write_params(session, connection, [item for item in pending if isinstance(item, _Param)])
            for system, model_cls in ((False, models.TrialUserAttributeModel),
                                      (True, models.TrialSystemAttributeModel)):
                attrs = [item for item in pending if isinstance(item, _Attr) and item.system is system]
                self._write_attrs(session, connection, model_cls, attrs)
            if finish is not None:
                self._write_finish(connection, finish)

    @staticmethod
    def _write_finish(connection, finish: _Finish) -> None:
        """What Optuna's ``set_trial_state_values`` writes for a finished state, as three
        statements; only a running trial is changed, so a trial that another worker failed
        meanwhile (a dead-worker check) is not overwritten."""
        sql = _statements()
        changed = connection.execute(sql.finish_running, {"b_trial": finish.trial_id, "b_state": finish.state,
                                                          "b_completed": finish.completed._datetime_complete_utc})
        if changed.rowcount != 1:
            raise exceptions.UpdateFinishedTrialError(
                f"Trial with id {finish.trial_id} has already finished and can not be updated.")
        connection.execute(sql.delete_values, {"b_trial": finish.trial_id})
        if finish.values:
            rows = []
            for objective, value in enumerate(finish.values):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                rows.append({"trial_id": finish.trial_id, "objective": objective, "value": stored,
                             "value_type": kind})
            connection.execute(sql.insert_values, rows)

    def _write_params(self, session, connection, params: list[_Param]) -> None:
        rows = []
        for p in params:
            if p.previous is None:  # the study's first use of this name: let Optuna look it up
                self._set_trial_param_without_commit(session, p.trial_id, p.name, p.value, p.distribution)
                continue
            if not _same_choices(p.previous, p.distribution):
                distributions.check_distribution_compatibility(p.previous, p.distribution)
            rows.append({"trial_id": p.trial_id, "param_name": p.name, "param_value": p.value,
                         "distribution_json": self._json_of(p.distribution)})
        if rows:  # Core, not ORM, inserts: one cached statement, executed for many rows
            connection.execute(_statements().insert_params, rows)

    def _json_of(self, distribution: distributions.BaseDistribution) -> str:
        """Optuna's ``distribution_to_json``, kept per categorical choice set: the controller
        writes the same 48 distributions in every trial (half a millisecond per trial to
        serialise). Keyed by the choices and their types: (1, 2) and (1.0, 2.0) are equal but
        stored differently."""
        if type(distribution) is not distributions.CategoricalDistribution:
            return distributions.distribution_to_json(distribution)
        key = (distribution.choices, tuple(map(type, distribution.choices)))
        try:
            json_text = self._distribution_json.get(key)
        except TypeError:  # an unhashable choice (Optuna accepts one, with a warning)
            return distributions.distribution_to_json(distribution)
        if json_text is None:
            if len(self._distribution_json) >= MAX_HELD_JSON:
                self._distribution_json.clear()
            json_text = self._distribution_json[key] = distributions.distribution_to_json(distribution)
        return json_text

    def _write_attrs(self, session, connection, model_cls, attrs: list[_Attr]) -> None:
        latest = {(a.trial_id, a.key): a.value for a in attrs}  # the last write of a key wins
        if not latest:
            return
        upsert = self._upsert(model_cls.__table__, ("trial_id", "key"), "value_json")
        if upsert is None:
            for (trial_id, key), value in latest.items():
                self._set_trial_attr_without_commit(session, model_cls, trial_id, key, value)
            return
        # Rows as parameters of one statement (compiled once and cached), not a new statement
        # with the rows built in, which SQLAlchemy would compile again every time.
        connection.execute(upsert, [{"trial_id": t, "key": k, "value_json": json.dumps(v)}
                                    for (t, k), v in latest.items()])

    def _upsert(self, table: sqlalchemy.Table, keys: tuple[str, ...], *updated: str, **updated_to: Any):
        """An "insert, or on conflict with ``keys`` update these columns" statement for this
        database (None where it has none), built once: building it costs more than running it.
        ``updated`` columns take the inserted row's value, ``updated_to`` the given expression."""
        cache_key = (table.name, keys, updated, tuple(updated_to))
        if cache_key not in self._upserts:
            insert = _UPSERT_INSERTS.get(self.engine.name)
            if insert is None or (self.engine.name == "sqlite" and sqlite3.sqlite_version_info < (3, 24, 0)):
                self._upserts[cache_key] = None
            else:
                statement = insert(table)
                self._upserts[cache_key] = statement.on_conflict_do_update(
                    index_elements=[table.c[k] for k in keys],
                    set_={**{c: statement.excluded[c] for c in updated}, **updated_to})
        return self._upserts[cache_key]

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's heartbeat (insert, or set to the database's current time) as one statement
        instead of three queries and an update."""
        upsert = None
        if _SUPPORTED:
            upsert = self._upsert(models.TrialHeartbeatModel.__table__, ("trial_id",),
                                  heartbeat=sqlalchemy.func.current_timestamp())
        if upsert is None:
            super().record_heartbeat(trial_id)
            return
        with self.engine.begin() as connection:
            connection.execute(upsert, {"trial_id": trial_id})


class _Statements:
    """The statements of every trial, built once with bound parameters: building a SQLAlchemy
    statement (and its cache key) costs more than running it on SQLite. Parameter names
    start with ``b_``: SQLAlchemy reserves the column names for the values of an update."""

    def __init__(self):
        b = sqlalchemy.bindparam
        studies, trials = models.StudyModel.__table__, models.TrialModel.__table__
        self.study_exists = sqlalchemy.select(studies.c.study_id).where(studies.c.study_id == b("b_study"))
        self.lock_study = self.study_exists.with_for_update()
        self.insert_trial = sqlalchemy.insert(trials)
        self.count_before = (sqlalchemy.select(sqlalchemy.func.count()).select_from(trials)
                             .where(trials.c.study_id == b("b_study"), trials.c.trial_id < b("b_trial")))
        self.set_number = (sqlalchemy.update(trials).where(trials.c.trial_id == b("b_trial"))
                           .values(number=b("b_number", type_=trials.c.number.type)))
        self.trial_states = (sqlalchemy.select(trials.c.trial_id, trials.c.state)
                             .where(trials.c.trial_id.in_(b("b_trials", expanding=True))))
        self.finish_running = (
            sqlalchemy.update(trials).where(trials.c.trial_id == b("b_trial"), trials.c.state == TrialState.RUNNING)
            .values(state=b("b_state", type_=trials.c.state.type),
                    datetime_complete=b("b_completed", type_=trials.c.datetime_complete.type)))
        values = models.TrialValueModel.__table__
        self.delete_values = sqlalchemy.delete(values).where(values.c.trial_id == b("b_trial"))
        self.insert_values = sqlalchemy.insert(values)
        self.insert_params = sqlalchemy.insert(models.TrialParamModel.__table__)
        attrs = models.StudySystemAttributeModel.__table__
        self.study_system_attrs = sqlalchemy.select(attrs.c.key, attrs.c.value_json).where(
            attrs.c.study_id == b("b_study"))
        self._matching: dict[tuple[bool, bool, bool], sqlalchemy.Select] = {}

    def matching(self, by_state: bool, newer: bool, in_list: bool) -> sqlalchemy.Select:
        """(trial id, state) of a study's trials (``b_study``), outer-joined to the study's row:
        of the given states (``b_states``), and newer than ``b_newer`` (or listed in
        ``b_included``) when asked."""
        key = (by_state, newer, in_list)
        if key not in self._matching:
            b = sqlalchemy.bindparam
            studies, trials = models.StudyModel.__table__, models.TrialModel.__table__
            condition = trials.c.study_id == studies.c.study_id
            if by_state:
                condition &= trials.c.state.in_(b("b_states", expanding=True))
            if newer:
                later = trials.c.trial_id > b("b_newer")
                condition &= sqlalchemy.or_(trials.c.trial_id.in_(b("b_included", expanding=True)), later) \
                    if in_list else later
            self._matching[key] = (sqlalchemy.select(trials.c.trial_id, trials.c.state)
                                   .select_from(studies.outerjoin(trials, condition))
                                   .where(studies.c.study_id == b("b_study")))
        return self._matching[key]


@functools.cache
def _statements() -> _Statements:
    return _Statements()


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


@dataclass(frozen=True)
class _Finish:
    trial_id: int
    state: TrialState
    values: list[float] | None
    completed: Any  # a TrialModel holding only the completion time, converted as Optuna stores it


def _same_choices(old: distributions.BaseDistribution, new: distributions.BaseDistribution) -> bool:
    """True when two categorical distributions have equal choice tuples, which Optuna's
    compatibility check would pass (it compares the choices one by one with ==, NaN equal to
    NaN); False sends the pair to that check."""
    return (type(old) is type(new) is distributions.CategoricalDistribution
            and (old.choices is new.choices or old.choices == new.choices))


# Dialects with a multi-row "insert ... on conflict update" (Optuna's own upsert per key).
_UPSERT_INSERTS = {"sqlite": sqlalchemy.dialects.sqlite.insert, "postgresql": sqlalchemy.dialects.postgresql.insert}
