"""Several servers, one store: :class:`StoreFollower` keeps a server's live state in step with the store.

A server applies the events posted to it at once (:mod:`zenrec.serve.routes.events`).
Events posted to another server on the same store (another replica, or a
batch loaded by a script) and erasures made elsewhere (``DELETE
/users/{id}`` on another replica, ``zenrec forget``) reach it through the
store, read by ``seq``:

* **events**: every loaded version reads ``events_since(replayed_through)``
  and applies what it has not applied yet (an event already applied, by the
  route or a replay, is recognised by its ``seq`` and skipped).  Applying an
  event bumps the user's stamp, so the user's cached score row is not used
  again (:mod:`zenrec.serve.cache`).
* **erasures**: the ``erasures`` table names each erased user by keyed hash
  (:func:`zenrec.store.erasure.erase_user_events`).  The follower finds the
  users of each loaded version with that hash (:meth:`LiveModel.users_hashed`,
  with the erasure key of the served model directory or registry) and forgets
  them, keeping only their events stored after the erasure.

The ``seq`` tail is the truth: nothing is lost when a wake-up is.  It is read
every ``interval`` seconds, and on PostgreSQL also as soon as a ``NOTIFY``
says that a commit added rows (:class:`~zenrec.store.changes.StoreListener`),
so a change reaches the other servers within milliseconds, and within
``interval`` plus one read when notifications are off or lost.  A listener
that fails is dropped (the poll carries on) and reopened after
``RELISTEN_S`` seconds.

Promotions travel on their own path: every server watches the registry's
``CURRENT.json`` (:class:`~zenrec.serve.versions.RegistryWatcher`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zenrec.errors import ZenrecError
from zenrec.serve.live import LiveModel
from zenrec.store.changes import StoreListener
from zenrec.store.erasure import ErasureLog, erasure_dir

__all__ = ["StoreFollower", "DEFAULT_SYNC_SECONDS"]

log = logging.getLogger(__name__)

#: how often a server reads the store's tail when nothing wakes it (seconds)
DEFAULT_SYNC_SECONDS = 0.1
#: rows read per query
PAGE = 5000
#: seconds before a failed change listener is opened again
RELISTEN_S = 5.0


class StoreFollower:
    """A daemon thread that applies the store's new events and erasures to the served versions.

    ``get_view()`` returns the server's current :class:`~zenrec.serve.versions.ServingView`;
    ``source`` is the served model directory or registry root (its erasure
    key names erased users).  ``notify`` listens for PostgreSQL
    notifications besides polling every ``interval`` seconds.
    ``on_events(n)`` / ``on_erasures(n)`` count what was applied (metrics).
    """

    def __init__(self, store: Any, get_view: Callable[[], Any], source: Path | None, interval: float = 0.1,
                 notify: bool = True, on_events: Callable[[int], None] | None = None,
                 on_erasures: Callable[[int], None] | None = None) -> None:
        self.store = store
        self._get_view = get_view
        self.source = source
        self.interval = float(interval)
        self.notify = bool(notify) and store.dialect == "postgresql"
        self._on_events = on_events
        self._on_erasures = on_erasures
        self.events_followed = 0  # events this server applied from the tail (posted elsewhere)
        self.erasures_followed = 0  # erasures recorded in the store that this server applied
        self.users_forgotten = 0
        self.steps = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_step = 0.0  # time.time() of the last complete read
        self._key: bytes | None = None
        self._listener: StoreListener | None = None
        self._listen_after = 0.0
        self._stop = threading.Event()
        self._step_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- thread
    def start(self) -> None:
        """Start following in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="zenrec-store-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following (waits for a read in progress up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @property
    def mode(self) -> str:
        """``notify`` (PostgreSQL notifications wake the reads, the poll backs them up) or ``poll``."""
        return "notify" if self.notify else "poll"

    @property
    def listening(self) -> bool:
        """Whether the PostgreSQL listener is connected now (False while it is being reopened: polls only)."""
        return self._listener is not None

    def _wait(self) -> None:
        """Until the next read: a notification, or ``interval`` seconds."""
        if self.notify and self._listener is None and time.monotonic() >= self._listen_after:
            try:
                self._listener = StoreListener(self.store)
            except ZenrecError as exc:
                self._listen_after = time.monotonic() + RELISTEN_S
                log.warning("polling the store every %.3g s: %s", self.interval, exc)
        if self._listener is None:
            self._stop.wait(self.interval)
            return
        try:
            self._listener.wait(self.interval)
        except ZenrecError as exc:
            log.warning("polling the store every %.3g s: %s", self.interval, exc)
            self._listener.close()
            self._listener = None
            self._listen_after = time.monotonic() + RELISTEN_S

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wait()
            if self._stop.is_set():
                break
            try:
                self.step()
            except Exception:  # noqa: BLE001 - step() logged it; the next read retries
                pass

    # ---------------------------------------------------------------- reads
    def step(self) -> tuple[int, int]:
        """Read the store's new events, then its new erasures, and apply them to every loaded version.

        Returns (events applied to the default version, erasures applied).
        Events come first: an erasure then also removes events of the user
        read in the same step.  A failure is logged once per distinct
        message, kept in :attr:`last_error` (``/healthz`` shows it) and raised.
        """
        with self._step_lock:
            try:
                view = self._get_view()
                n_events = self._follow_events(view)
                n_erasures = self._follow_erasures(view)
            except Exception as exc:
                self.failures += 1
                message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ZenrecError) else str(exc)
                if message != self.last_error:
                    log.error("following the event store failed: %s", message)
                self.last_error = message
                raise
            self.steps += 1
            self.last_error = None
            self.last_step = time.time()
            return n_events, n_erasures

    def _follow_events(self, view: Any) -> int:
        models: list[LiveModel] = list(view.models.values())
        since = min(m.replayed_through for m in models)
        applied = 0
        while True:
            page = self.store.events_since(since, limit=PAGE)
            if not page:
                break
            for m in models:
                with m.replay_lock:
                    fresh = [e for e in page if e.seq > m.replayed_through]
                    if not fresh:
                        continue
                    n = m.apply_events(fresh)
                    m.replayed_through = fresh[-1].seq
                if m is view.live:
                    applied += n
            since = page[-1].seq
            if len(page) < PAGE:
                break
        if applied:
            self.events_followed += applied
            if self._on_events is not None:
                self._on_events(applied)
        return applied

    def _erasure_key(self) -> bytes:
        if self._key is None:
            if self.source is None:
                raise ZenrecError("an erasure was recorded in the store, but this server has no model directory "
                                  "or registry whose erasure key names the user")
            self._key = ErasureLog(erasure_dir(self.source), create_key=False).key
        return self._key

    def _follow_erasures(self, view: Any) -> int:
        models: list[LiveModel] = list(view.models.values())
        records = self.store.erasures_since(min(m.erasures_through for m in models), limit=PAGE)
        if not records:
            return 0
        key = self._erasure_key()  # a missing or changed key raises: the erasures wait, /healthz says why
        for m in models:
            todo = [r for r in records if r.seq > m.erasures_through]
            if not todo:
                continue
            users = m.users_hashed({r.user_hash for r in todo}, key)
            for r in todo:
                for user in users.get(r.user_hash, ()):
                    m.forget(user, through_seq=r.through_seq)
                    if m is view.live:
                        self.users_forgotten += 1
            m.erasures_through = todo[-1].seq
        self.erasures_followed += len(records)
        if self._on_erasures is not None:
            self._on_erasures(len(records))
        return len(records)

    def status(self) -> dict[str, Any]:
        """What ``/healthz`` shows: mode, poll interval, how far the default version has read, counts, error."""
        live = self._get_view().live
        return {
            "mode": self.mode,
            "listening": self.listening,
            "interval_s": self.interval,
            "events_through": live.replayed_through,
            "erasures_through": live.erasures_through,
            "events_followed": self.events_followed,
            "erasures_followed": self.erasures_followed,
            "last_read_age_s": round(time.time() - self.last_step, 3) if self.last_step else None,
            "problem": self.last_error,
        }
