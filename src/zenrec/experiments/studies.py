"""The optuna study behind one model's tuning: in memory, or shared by several processes through a database.

A shared study lives in any database that optuna's ``RDBStorage`` opens
(an SQLAlchemy URL: ``sqlite:///tune.db`` for processes on one machine,
``postgresql+psycopg://user@host/db`` across machines).  Every process that
tunes the same model on the same split joins the same study and runs its
share of the trials.

**The budget is a pool.**  The process that creates a study (the database's
unique study name makes exactly one the creator) records the study's terms
(:class:`StudyTerms`) and enqueues all ``n_trials`` trials at once, the
model's defaults first, as optuna ``WAITING`` trials.  Every process, the
creator included, then claims one waiting trial at a time (a
``WAITING → RUNNING`` change under a row lock on PostgreSQL, in a
``BEGIN IMMEDIATE`` transaction on SQLite, so each trial is claimed by
exactly one process) and stops when none is left.  A study therefore holds
exactly ``n_trials`` trials, however many processes share it and however
their trials interleave; fewer complete only when a trial fails, when a
process is stopped mid-trial (that trial is marked ``FAIL``), or when
``timeout`` stops every process before the pool is empty (the waiting trials
stay for a later run to claim).

**Liveness.**  A process records an optuna heartbeat for its running trial
every :data:`HEARTBEAT_SECONDS`; a process that has run out of trials waits
for the others' running trials to finish, and marks ``FAIL`` any trial whose
heartbeat is older than :data:`GRACE_SECONDS` (its process died), so no one
waits forever on a lost machine.

**Terms.**  Joining a study whose terms differ (another split, metric,
training seed, fixed parameters or budget) is a :class:`ConfigError`:
trials evaluated on different terms would make a leaderboard that no single
run could reproduce.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zenrec.data.splits import Split
from zenrec.errors import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "GRACE_SECONDS",
    "HEARTBEAT_SECONDS",
    "StudyTerms",
    "TrialPool",
    "default_study_name",
    "open_storage",
    "split_fingerprint",
    "worker_id",
]

log = logging.getLogger(__name__)

#: seconds between two heartbeats of a running trial in a shared study
HEARTBEAT_SECONDS = 10
#: a running trial whose last heartbeat is older than this is failed by a waiting process
GRACE_SECONDS = 60
#: seconds a joining process waits for the creator to enqueue the study's trials
READY_SECONDS = 60.0
#: seconds between two looks at the others' running trials
POLL_SECONDS = 0.5
#: the study user attribute holding the terms; the one set once the pool is enqueued
TERMS_ATTR = "zenrec.terms"
READY_ATTR = "zenrec.pool"


def worker_id() -> str:
    """``HOST:PID`` of this process, recorded on each trial it runs (user attribute ``worker``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _shown(url: str) -> str:
    """The URL as printed in messages (password hidden)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def open_storage(url: str, flag: str = "the 'storage' parameter") -> optuna.storages.RDBStorage:
    """optuna's relational storage at ``url`` (created when empty), with heartbeats for shared trials.

    ``flag`` names the option in error messages (the CLI passes ``--storage``).
    A URL that does not parse, names an unknown database or driver, or cannot be
    connected to raises :class:`ConfigError` naming it (the password hidden).
    An in-memory SQLite URL is refused: no other process could see it.
    """
    import optuna
    import sqlalchemy.exc as sa_exc
    from sqlalchemy.engine import make_url

    expected = "an SQLAlchemy URL such as sqlite:///tune.db or postgresql+psycopg://USER@HOST/DB"
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{flag} must be {expected}; got {url!r}")
    try:
        u = make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError(f"{flag} {url!r} is not a database URL; expected {expected}") from None
    shown = _shown(url)
    backend = u.get_backend_name()
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        if u.database in (None, "", ":memory:") or (u.database or "").startswith("file::memory:"):
            raise ConfigError(f"{flag} {shown!r} is an in-memory SQLite database that no other process can see; "
                              "give a file, such as sqlite:///tune.db")
        engine_kwargs["connect_args"] = {"timeout": 60}  # several processes write one file
    elif backend == "postgresql":
        engine_kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 30})
    else:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                )
            if backend == "sqlite":
                _serialise_sqlite(storage.engine)
            return storage
        except (sa_exc.SQLAlchemyError, ImportError, optuna.exceptions.StorageInternalError) as exc:
            if attempt < 2 and _creation_race(exc):  # processes creating the tables of an empty database at once
                time.sleep(0.5 + attempt)
                continue
            reason = getattr(exc, "orig", None) or exc
            first = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
            if isinstance(exc, (sa_exc.NoSuchModuleError, ImportError)):
                raise ConfigError(f"{flag} {shown!r}: unknown database or missing driver {u.drivername!r}; "
                                  f"expected {expected}") from None
            raise ConfigError(f"{flag} {shown!r}: cannot open it as an optuna storage ({first}); check that the "
                              "database exists and accepts connections") from None
    raise AssertionError("unreachable")


def _serialise_sqlite(engine: Any) -> None:
    """Make every SQLite transaction take the write lock when it begins (``BEGIN IMMEDIATE``), in WAL mode.

    pysqlite defers ``BEGIN`` to the first write and SQLite ignores ``SELECT … FOR UPDATE``, so two
    processes could both read a trial as WAITING and both claim it; serialised transactions claim it once.
    """
    import sqlalchemy as sa

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver stays out of transactions; on_begin opens them
        cur = dbapi_conn.cursor()
        try:  # a commit without a full fsync each: trials are minutes apart, not worth a disk flush per write
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        finally:
            cur.close()

    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)
    engine.dispose()  # the connections made while opening predate the hooks


def _creation_race(exc: BaseException) -> bool:
    """Whether ``exc`` is another process having created optuna's tables first (worth one more try)."""
    import sqlalchemy.exc as sa_exc

    return isinstance(exc, sa_exc.IntegrityError) or (
        isinstance(exc, sa_exc.SQLAlchemyError) and "already exists" in str(exc)
    )


def split_fingerprint(split: Split) -> str:
    """A hash of the split's events (every part), protocol and target types: equal splits, equal hashes."""
    h = hashlib.sha256()
    h.update(json.dumps([split.protocol, list(split.target_events or ())]).encode())
    for part in (split.train, split.valid, split.test):
        if part is None:
            h.update(b"-")
            continue
        h.update(f"{part.n_users},{part.n_items},{len(part)}".encode())
        for a in (part.user, part.item, part.timestamp, part.weight, part.event):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def default_study_name(split: Split) -> str:
    """The study-name prefix when none is given: ``zenrec:PROTOCOL:SPLIT-HASH``.

    Each model's study is ``PREFIX:LABEL``.  The hash is
    :func:`split_fingerprint`, so the same dataset, protocol, split seed and
    target events give the same names on every machine, and another split
    never lands in the same study.
    """
    return f"zenrec:{split.protocol}:{split_fingerprint(split)}"


def _json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise ConfigError(f"{what} of a shared study must be JSON values (numbers, strings, lists); got {value!r}") \
            from None


@dataclass(frozen=True)
class StudyTerms:
    """What a study's trials were evaluated under; every process sharing it must agree on all of it."""

    #: registered model name
    model: str
    #: parameters held fixed (not tuned)
    fixed: dict[str, Any]
    #: the validation metric, ``NAME@K``
    metric: str
    #: sampled negatives per user, or None for full ranking
    sampled: int | None
    #: the training seed of every fit
    train_seed: int
    #: :func:`split_fingerprint` of the split
    split: str
    #: trials in the study, in all
    n_trials: int

    def to_json(self) -> dict[str, Any]:
        """The terms as stored in the study (JSON values)."""
        return _json(asdict(self), "the fixed parameters")

    def check(self, stored: Mapping[str, Any], study: str, budget: bool = True) -> None:
        """Raise :class:`ConfigError` naming the first term in which ``stored`` differs (``budget``: n_trials too)."""
        mine = self.to_json()
        names = {"split": "split (data, protocol, seed or target events)", "train_seed": "training seed",
                 "fixed": "fixed parameters", "n_trials": "trial budget"}
        for key, value in mine.items():
            if key == "n_trials" and not budget:
                continue
            if stored.get(key) != value:
                raise ConfigError(
                    f"study {study!r} was created with {names.get(key, key)} {stored.get(key)!r}, this run has "
                    f"{value!r}; run with the same terms to join it, or name another study (--study-name)"
                )


class TrialPool:
    """One model's study and its pool of waiting trials (see the module docstring).

    ``backend`` is the raw storage (an optuna ``RDBStorage`` or ``InMemoryStorage``)
    through which trials are claimed; ``study`` is the optuna study over it.
    """

    def __init__(self, study: optuna.Study, backend: optuna.storages.BaseStorage, shared: bool) -> None:
        self.study = study
        self.backend = backend
        self.shared = shared
        self.study_id = backend.get_study_id_from_name(study.study_name)
        self._ids: dict[int, int] = {}  # trial number → storage id, for the trials this process claimed

    @property
    def name(self) -> str:
        """The study's name."""
        return self.study.study_name

    @classmethod
    def open(cls, storage: optuna.storages.BaseStorage | None, name: str, terms: StudyTerms,
             defaults: Mapping[str, Any], sampler: optuna.samplers.BaseSampler) -> TrialPool:
        """Create the study and enqueue its trials, or join the study of that name (checking its terms).

        ``storage`` None: a fresh in-memory study that only this process sees.
        """
        import optuna

        shared = storage is not None
        backend = storage if storage is not None else optuna.storages.InMemoryStorage()
        try:
            study = optuna.create_study(storage=backend, study_name=name, direction="maximize", sampler=sampler)
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=backend, sampler=sampler)
            pool = cls(study, backend, shared)
            pool._await_ready(terms)
            return pool
        pool = cls(study, backend, shared)
        if shared:  # what others check on joining (JSON values, as the database stores them)
            study.set_user_attr(TERMS_ATTR, terms.to_json())
        study.enqueue_trial(_json(dict(defaults), "the default parameters") if shared else dict(defaults))
        for _ in range(terms.n_trials - 1):  # trial 0 is the defaults, the others are the sampler's
            study.enqueue_trial({})
        study.set_user_attr(READY_ATTR, terms.n_trials)
        return pool

    @classmethod
    def load(cls, storage: optuna.storages.BaseStorage, name: str, terms: StudyTerms) -> TrialPool:
        """An existing shared study, to read (its terms checked, the budget excepted)."""
        import optuna

        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise ConfigError(f"no study {name!r} in the storage; start the tuning processes first (the same "
                              "command without --collect), or name the study with --study-name") from None
        pool = cls(study, storage, shared=True)
        stored = study.user_attrs.get(TERMS_ATTR)
        if not isinstance(stored, Mapping):
            raise ConfigError(f"study {name!r} was not created by zenrec tune; name another study (--study-name)")
        terms.check(stored, name, budget=False)
        return pool

    def _await_ready(self, terms: StudyTerms) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            attrs = self.study.user_attrs
            stored = attrs.get(TERMS_ATTR)
            if stored is None and self.study.get_trials(deepcopy=False):
                raise ConfigError(f"study {self.name!r} was not created by zenrec tune; "
                                  "name another study (--study-name)")
            if isinstance(stored, Mapping):
                terms.check(stored, self.name)
                if READY_ATTR in attrs:
                    return
            if time.monotonic() > deadline:
                raise ConfigError(f"study {self.name!r} exists but its trials were never enqueued (the process "
                                  "that created it stopped first); delete it or name another study (--study-name)")
            time.sleep(0.2)

    def claim(self, sampler: Callable[[int], optuna.samplers.BaseSampler] | None = None) -> optuna.Trial | None:
        """The next waiting trial, now RUNNING and this process's; None when the pool is empty.

        ``sampler(number)`` when given becomes the study's sampler for that trial.
        """
        import optuna
        from optuna.trial import TrialState

        # read through the study, whose storage caches the trials it has seen (the trial must be among them)
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = self.backend.get_trial_id_from_study_id_trial_number(self.study_id, frozen.number)
            try:
                if not self.backend.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    continue  # another process claimed it first
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if sampler is not None:
                self.study.sampler = sampler(frozen.number)
            # what Study.ask does with a popped trial; ask itself would create a new trial once the pool is empty
            trial = optuna.Trial(self.study, trial_id)
            trial.set_user_attr("worker", worker_id())
            self._ids[trial.number] = trial_id
            return trial
        return None

    @contextmanager
    def heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Record the trial's heartbeat every :data:`HEARTBEAT_SECONDS` while the block runs (shared studies)."""
        record = getattr(self.backend, "record_heartbeat", None)
        if not self.shared or record is None:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while True:
                try:
                    record(self._ids[trial.number])
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the trial goes on
                    log.warning("heartbeat of trial %d of %s failed: %s", trial.number, self.name, exc)
                if stop.wait(HEARTBEAT_SECONDS):
                    return

        thread = threading.Thread(target=beat, name=f"zenrec-heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def run(self, objective: Callable[[optuna.Trial], float], timeout: float | None,
            catch: tuple[type[BaseException], ...], sampler: Callable[[int], optuna.samplers.BaseSampler] | None = None,
            on_trial: Callable[[optuna.Trial], None] | None = None) -> int:
        """Claim and run trials until the pool is empty (or ``timeout`` seconds have passed): the number run.

        An exception in ``catch`` marks its trial ``FAIL`` (it still counts against
        the budget) and the next one runs; any other marks it ``FAIL`` and propagates.
        A value that is not a finite number marks the trial ``FAIL`` too.
        """
        import math

        from optuna.trial import TrialState

        start = time.monotonic()
        done = 0
        while timeout is None or time.monotonic() - start < timeout:
            trial = self.claim(sampler)
            if trial is None:
                break
            try:
                with self.heartbeat(trial):
                    value = objective(trial)
            except catch as exc:
                log.warning("trial %d of %s failed: %s", trial.number, self.name, exc)
                self.study.tell(trial, state=TrialState.FAIL)
            except BaseException:
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            else:
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.study.tell(trial, float(value))
                else:
                    log.warning("trial %d of %s gave %r, not a number; marked failed", trial.number, self.name, value)
                    self.study.tell(trial, state=TrialState.FAIL)
            done += 1
            if on_trial is not None:
                on_trial(trial)
        return done

    def running(self) -> list[optuna.trial.FrozenTrial]:
        """The trials running now (in other processes, once this one has stopped claiming)."""
        from optuna.trial import TrialState

        return self.backend.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.RUNNING,))

    def wait_for_running(self, poll: float = POLL_SECONDS) -> None:
        """Return once no trial is running, failing those whose process stopped beating (shared studies)."""
        import optuna

        if not self.shared:
            return
        announced = False
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            running = self.running()
            if not running:
                return
            if not announced:
                workers = sorted({str(t.user_attrs.get("worker", "?")) for t in running})
                log.info("%s: waiting for %d running trial(s) of %s", self.name, len(running), ", ".join(workers))
                announced = True
            time.sleep(poll)

    def finished(self) -> list[optuna.trial.FrozenTrial]:
        """The study's finished trials (complete, failed or pruned), by number."""
        trials = self.study.get_trials(deepcopy=False)
        return sorted((t for t in trials if t.state.is_finished()), key=lambda t: t.number)

    def counts(self) -> dict[str, int]:
        """Trials by state name (``WAITING``, ``RUNNING``, ``COMPLETE``, ``FAIL``…)."""
        out: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out
