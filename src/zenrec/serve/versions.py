"""The model versions a server answers with, and hot swap between them.

:class:`ServingView` is an immutable snapshot — the promoted version, an
optional traffic split, and one loaded :class:`~zenrec.serve.live.LiveModel`
per version in it.  A request reads the view once and uses it to the end, so
it never sees half of a swap.  :class:`RegistryWatcher` polls the registry's
:meth:`~zenrec.store.registry.ModelRegistry.state_token`; when a new version is
promoted (or a split set) it loads the versions it lacks *beside* the ones
being served, replays the events stored since each was trained, and only then
replaces the view with one assignment.  A version that fails to load is
logged and the old view keeps serving.

:class:`ListLog` remembers which version served each list id, across
versions, so events carrying a list id are attributed to the right one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zenrec.serve.live import ListLog, LiveModel
from zenrec.store.registry import split_version

__all__ = ["ListLog", "ServingView", "RegistryWatcher", "registry_view", "start_view"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ServingView:
    """What the server answers with right now: a default version, an optional split, the loaded models."""

    default: str
    models: Mapping[str, LiveModel]
    traffic: Mapping[str, float] | None = None
    token: str = ""
    #: why the view is not what the registry asks for (a promoted version that could not be loaded), or None
    problem: str | None = None

    @property
    def live(self) -> LiveModel:
        """The promoted (default) version's model."""
        return self.models[self.default]

    def for_user(self, user: Any) -> LiveModel:
        """The model that serves ``user``: picked by a stable hash of the id under a traffic split."""
        return self.models.get(split_version(self.traffic, self.default, user), self.live)

    def versions(self) -> list[str]:
        """The loaded versions, the default first."""
        return [self.default, *sorted(v for v in self.models if v != self.default)]


class RegistryWatcher:
    """A daemon thread that swaps in newly promoted registry versions (see the module docstring).

    ``load(version)`` builds a ready :class:`LiveModel` (events replayed);
    ``on_swap(old, new)`` runs after each swap; ``get_view``/``set_view`` read
    and replace the server's view.
    """

    def __init__(self, registry: Any, load: Callable[[str], LiveModel], get_view: Callable[[], ServingView],
                 set_view: Callable[[ServingView], None], on_swap: Callable[[ServingView, ServingView], None]
                 | None = None, interval: float = 0.5) -> None:
        self.registry = registry
        self._load = load
        self._get_view = get_view
        self._set_view = set_view
        self._on_swap = on_swap
        self.interval = interval
        self.swaps = 0
        self.failures = 0
        self.last_error: str | None = None
        self._failed_token: str | None = None  # a registry state that failed to load is not retried
        self._stop = threading.Event()
        self._check_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="zenrec-registry-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling (waits for a load in progress up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a bad version must not stop the watcher (check logged it)
                pass

    def check(self) -> bool:
        """Swap in the registry's current state when it changed; True when the view was replaced.

        A state whose versions fail to load raises (and is logged) once; the
        old view keeps serving and that state is not tried again until the
        registry changes.
        """
        with self._check_lock:
            view = self._get_view()
            token = self.registry.state_token()
            if token == self._failed_token:
                return False
            try:
                new = registry_view(self.registry, self._load, view)
            except Exception as exc:
                self._failed_token = token
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("hot swap failed, still serving %s: %s", view.versions(), self.last_error)
                raise
            if new is None:
                return False
            self._failed_token = None
            self.last_error = None
            self._set_view(new)
            self.swaps += 1
            log.info("now serving %s%s", new.default, f" with traffic split {new.traffic}" if new.traffic else "")
            if self._on_swap is not None:
                self._on_swap(view, new)
            return True


def registry_view(registry: Any, load: Callable[[str], LiveModel], old: ServingView | None = None) -> ServingView | None:
    """The view of the registry's promoted version and traffic split; None when unchanged since ``old``.

    Versions already in ``old`` are reused; the others are built by ``load``.
    """
    from zenrec.store.registry import RegistryError

    token = registry.state_token()
    if old is not None and token == old.token:
        return None
    cur = registry.current()
    if cur is None:
        if old is None:
            raise RegistryError(f"{registry.current_file}: no version promoted yet; promote one to serve it")
        return None
    have = dict(old.models) if old is not None else {}
    wanted = [cur.version, *sorted(v for v in (cur.traffic or {}) if v != cur.version)]
    models = {v: have[v] if v in have else load(v) for v in wanted}
    traffic = dict(cur.traffic) if cur.traffic else None
    return ServingView(cur.version, models, traffic, token)


def start_view(registry: Any, load: Callable[[str], LiveModel]) -> ServingView:
    """The view to start serving: the registry's (:func:`registry_view`), or the last good version.

    When a version the registry asks for cannot be loaded (an invalid model
    file, see :mod:`zenrec.models.artifact`), the previously promoted version
    serves, else the newest version that loads, and the view's
    :attr:`~ServingView.problem` says so.  Raises the first error when no
    version loads.
    """
    from zenrec.errors import ArtifactError

    try:
        view = registry_view(registry, load)
        assert view is not None
        return view
    except ArtifactError as exc:
        first = exc
    cur = registry.current()
    tried = {cur.version}
    candidates = [cur.previous] if cur.previous else []
    candidates += [v.id for v in reversed(registry.versions())]  # newest first
    for version in candidates:
        if version in tried:
            continue
        tried.add(version)
        try:
            live = load(version)
        except ArtifactError as exc:
            log.error("version %s cannot be served either: %s", version, exc)
            continue
        problem = (f"the promoted version {cur.version} cannot be served ({first}); serving {version}, "
                   "the last good version")
        log.error("%s", problem)
        return ServingView(version, {version: live}, None, registry.state_token(), problem)
    raise first
