"""Optuna storages and studies: creation, heartbeats, and flat trial records for reports.

Storage URLs: ``sqlite:///PATH`` (the default, embedded), ``postgresql://...`` (many workers
on many machines), ``journal:PATH`` (Optuna's journal file, for a shared file system) and
``memory`` (in-process, for tests and benchmarks). The storages are Optuna's own, configured
through their public arguments, and everything here uses Optuna's public API only
(tests/test_no_private_names.py checks): the project keeps working across Optuna releases.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

MAX_RETRY = 3
CONNECT_TIMEOUT_S = 10


@contextlib.contextmanager
def optuna_heartbeat_warnings_off() -> Iterator[None]:
    """Within the block, Optuna does not warn about the features this module relies on
    deliberately: heartbeats and the stale-trial retry are marked experimental, and asking a
    trial from a storage with heartbeats warns because ``Study.optimize`` usually beats (our
    :class:`Heartbeat` does instead). Scoped, so that importing the package changes no
    warning filter."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


class StorageError(RuntimeError):
    """A storage that cannot be opened or reached; the message never includes a password."""


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print and to write in reports)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def make_storage(url: str, heartbeat_interval_s: int = 5, grace_period_s: int = 20) -> optuna.storages.BaseStorage:
    """Open one of Optuna's storages as Optuna ships it. RDB storages (SQLite, PostgreSQL)
    get Optuna's heartbeats and retry the trials of dead workers; journal files get ours
    (:class:`Heartbeat`)."""
    if url == "memory":
        return optuna.storages.InMemoryStorage()
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.journal.JournalStorage(backend)
    if not re.match(r"^[a-z0-9+]+://", url):
        raise StorageError(f"storage URL {redact(url)!r} is not one of sqlite:///PATH, postgresql://..., "
                           f"journal:PATH or memory")
    engine_kwargs: dict[str, Any] = {}
    sqlite_file = url.startswith("sqlite:///") and url != "sqlite:///:memory:"
    if sqlite_file:
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}  # concurrent writers wait, not fail
        _use_write_ahead_log(path)
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, "options": _asynchronous_commit(url)}
        engine_kwargs["pool_pre_ping"] = True
    try:
        with optuna_heartbeat_warnings_off():
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval_s,
                                 grace_period=grace_period_s,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY))
    except Exception as exc:  # sqlalchemy/driver errors: keep the cause, hide the password
        message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise StorageError(f"cannot open storage {redact(url)!r}: {message}") from None
    if sqlite_file:
        sqlalchemy.event.listen(storage.engine, "connect", _relaxed_sync)
        storage.engine.dispose()  # reconnect so that every connection gets the pragma
    return storage


@contextlib.contextmanager
def study_setup_lock(url: str) -> Iterator[None]:
    """Held while a worker opens the storage and creates or loads its study, so that workers
    started at the same moment join one study instead of racing: on a fresh PostgreSQL
    database, simultaneous table creation fails with a unique violation in all but one worker.
    PostgreSQL: a session-level advisory lock; SQLite and journal files: an exclusive ``flock``
    on the folder that holds the file; in memory: nothing to share."""
    if url.startswith("postgresql"):
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
                                          poolclass=sqlalchemy.pool.NullPool)
        try:
            connection = engine.connect()
        except Exception as exc:
            message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise StorageError(f"cannot open storage {redact(url)!r}: {message}") from None
        with connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _SETUP_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _SETUP_LOCK_KEY})
        engine.dispose()
        return
    path = None
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///"):])
    elif url.startswith("journal:"):
        path = Path(url[len("journal:"):])
    if path is None:
        yield
        return
    # The lock is taken on the file's folder, never on the file: closing any descriptor of an
    # SQLite file drops every POSIX lock this process holds on it, SQLite's own included, and
    # concurrent writers then corrupt the database.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StorageError(f"cannot open the folder of storage file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


_SETUP_LOCK_KEY = 0x65646765  # "edge": any fixed 64-bit number that other software is unlikely to use


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``, without the warning Optuna gives for storages with heartbeats (see
    :func:`optuna_heartbeat_warnings_off`)."""
    with optuna_heartbeat_warnings_off():
        return study.ask()


def storage_trial_id(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> int:
    """The storage's id of the study's trial ``number`` (trial numbers are unique within a
    study; storages address trials by id), through public storage methods."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


def current_trial(study: optuna.Study, number: int,
                  storage: optuna.storages.BaseStorage | None = None) -> FrozenTrial:
    """The study's trial ``number`` as the storage holds it now (another worker may have
    changed it since the study was last read): one trial read from ``storage`` (the one the
    study was opened with) when given, else a read of the study."""
    if storage is not None:
        return storage.get_trial(storage_trial_id(storage, study, number))
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _use_write_ahead_log(path: Path) -> None:
    """WAL mode (persistent in the file) lets readers and one writer work at once and makes
    commits cheap. Not for network file systems: share studies there with journal: or
    PostgreSQL."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open SQLite file {str(path)!r}: {exc}") from None


def _asynchronous_commit(url: str) -> str:
    """The URL's own connection ``options`` plus ``synchronous_commit=off``: Optuna commits
    every parameter and attribute of a trial on its own (some 60 commits a trial), and
    waiting for each to reach the server's disk cost 0.4 s a trial here. Commits stay atomic
    and at once visible to every worker; only a crash of the database server itself can drop
    the last fraction of a second of them, whose trials are then retried like a dead
    worker's. Not a change to the server or to other clients: it applies to this storage's
    sessions only."""
    given = sqlalchemy.engine.make_url(url).query.get("options", "")
    given = " ".join(given) if isinstance(given, tuple) else given
    return f"{given} -c synchronous_commit=off".strip()


def _relaxed_sync(dbapi_connection, _record) -> None:
    # In WAL mode, synchronous=NORMAL keeps the database consistent and loses nothing when a
    # process is killed; only an OS crash or power cut can drop the last commits. Each
    # trial writes dozens of small rows, one commit each, and a full fsync per commit
    # (about 2 ms here) would dominate the controller's cost.
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def heartbeats_enabled(storage: optuna.storages.BaseStorage | None) -> bool:
    """Whether running trials on this storage record heartbeats: RDB storages opened by
    :func:`make_storage` (Optuna's heartbeats) and journal files (ours, see :class:`Heartbeat`)."""
    return _optuna_heartbeats(storage) or isinstance(storage, JournalStorage)


def _optuna_heartbeats(storage: optuna.storages.BaseStorage | None) -> bool:
    return isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() is not None


HEARTBEAT_ATTR = "nas:heartbeat"  # journal files: a running trial's last beat, in seconds since the epoch


class Heartbeat:
    """Records the heartbeat of the trial being evaluated from a background thread, so that
    the trial of a worker that dies is detected as stale and retried (ask/tell has no built-in
    heartbeat). :meth:`first` records a trial's first beat; inside :meth:`beating` the thread
    beats the trial every heartbeat interval; :meth:`fail_stale` fails the trials whose beats
    stopped for the grace period and queues their retry.

    RDB storages keep Optuna's heartbeats. Optuna's journal storage has none, so on a journal
    file a beat is the trial's ``nas:heartbeat`` system attribute (public storage methods only)
    and a trial with no beat yet counts from its start; stale trials are failed and retried
    with Optuna's own retry callback. This compares the clocks of the workers' machines: keep
    them synchronised (NTP) when workers on several machines share a journal file.

    One thread serves a run's consecutive trials (starting one per trial cost 0.1 ms); it ends
    by itself when a whole interval passes with no trial, and the next trial starts another."""

    def __init__(self, storage: optuna.storages.BaseStorage | None, interval_s: float = 5,
                 grace_period_s: float = 20):
        self.storage = storage
        self.enabled = heartbeats_enabled(storage)
        self.optuna_heartbeats = _optuna_heartbeats(storage)
        self.interval_s = storage.get_heartbeat_interval() if self.optuna_heartbeats else interval_s
        self.grace_period_s = ((storage.grace_period or 2 * self.interval_s) if self.optuna_heartbeats
                               else grace_period_s)
        # Held while a beat is written: once beating() has returned, no beat of its trial follows.
        self._lock = threading.Lock()
        self._beating: int | None = None
        self._study_ids: dict[str, int] = {}  # the study of the trials beaten, by name: asked once
        self._thread: threading.Thread | None = None

    def _record(self, trial_id: int) -> None:
        if self.optuna_heartbeats:
            self.storage.record_heartbeat(trial_id)
        else:
            self.storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def first(self, study: optuna.Study, number: int) -> int | None:
        """Record the first heartbeat of the study's trial ``number`` as soon as it is asked
        (a trial without any heartbeat row is never detected as stale, so from now on a dead
        worker's trial is retried); returns the trial's storage id for :meth:`beating`, None
        when this storage has no heartbeats."""
        if not self.enabled:
            return None
        if self._study_ids.get(study.study_name) is None:
            self._study_ids = {study.study_name: self.storage.get_study_id_from_name(study.study_name)}
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self._study_ids[study.study_name], number)
        self._record(trial_id)
        return trial_id

    def fail_stale(self, study: optuna.Study) -> None:
        """Fail the running trials of dead workers and queue their retries."""
        with optuna_heartbeat_warnings_off():
            if self.optuna_heartbeats:
                optuna.storages.fail_stale_trials(study)
            elif self.enabled:
                self._fail_stale_by_attribute(study)

    def _fail_stale_by_attribute(self, study: optuna.Study) -> None:
        now = time.time()
        study_id = None
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            last = trial.system_attrs.get(HEARTBEAT_ATTR)
            if last is None and trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()
            if last is None or now - last <= self.grace_period_s:
                continue
            if study_id is None:
                study_id = self.storage.get_study_id_from_name(study.study_name)
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                failed = self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it ended meanwhile, or another worker failed it first
            if failed:
                RetryHeartbeatStaleTrialCallback(MAX_RETRY)(study, self.storage.get_trial(trial_id))

    @contextlib.contextmanager
    def beating(self, trial_id: int | None) -> Iterator[None]:
        """Beats the trial with this storage id while the block runs (nothing for None)."""
        if not self.enabled or trial_id is None:
            yield
            return
        with self._lock:
            self._beating = trial_id
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, daemon=True, name="nas-heartbeat")
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._beating = None

    def _beat(self) -> None:
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                if self._beating is None:
                    self._thread = None  # under the lock: beating() starts a new thread from now on
                    return
                try:
                    self._record(self._beating)
                except Exception as exc:  # a lost connection: the next beat may get through
                    warnings.warn(f"heartbeat of trial id {self._beating} not recorded: {exc}", RuntimeWarning,
                                  stacklevel=1)


def trial_record(trial: FrozenTrial) -> dict[str, Any]:
    """One flat dict per trial: number, state, values, user attributes (with the evaluator's
    metrics flattened), constraint values and the Optuna parameters (``search_params``)."""
    record: dict[str, Any] = {"number": trial.number, "state": trial.state.name,
                              "values": list(trial.values) if trial.values else None,
                              "datetime_start": trial.datetime_start, "datetime_complete": trial.datetime_complete}
    attrs = dict(trial.user_attrs)
    metrics = attrs.pop("metrics", None) or {}
    record.update(attrs)
    for key, value in metrics.items():  # flattened: train_time_s, status, proxies, ...
        record.setdefault(key, value)
    record["constraints"] = [v for k, v in sorted(trial.system_attrs.items()) if k.startswith("constraints:")]
    record["search_params"] = dict(trial.params)  # Optuna's; "params" is the parameter count
    return record


def completed_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
