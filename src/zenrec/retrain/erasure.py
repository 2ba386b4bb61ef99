"""``zenrec forget``: erase one user from the store, every registered version and every later retrain.

:func:`forget` runs the steps in an order that a crash at any point leaves
re-runnable (each step is idempotent):

1. the user's keyed hash joins the tombstones, so a retrain starting now
   already leaves them out;
2. their events and served lists are deleted from the store (one transaction
   that also records the erasure, by keyed hash, for every server following
   the store: :mod:`zenrec.serve.follower`);
3. each version directory is rewritten: ``training_log.npz`` without their
   rows, ``arrays.npz`` with their vocabulary entry replaced and their rows
   emptied (:func:`zenrec.store.erasure.erase_from_arrays`), each file by
   temp file + rename;
4. one audit record (time, keyed hash, counts per place) is appended.

Re-running ``forget`` after a crash finds the finished steps with nothing
left to remove and completes the rest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zenrec._io import atomic_file
from zenrec.errors import ConfigError
from zenrec.retrain.log import TRAINING_LOG_FILE, TrainingLog
from zenrec.store.erasure import ErasureLog, erase_from_version, erase_user_events, erasure_dir
from zenrec.store.events import EventStore
from zenrec.store.registry import ModelRegistry

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process at a time
    fcntl = None  # type: ignore[assignment]

_thread_lock = threading.Lock()

__all__ = ["ForgetReport", "forget", "erase_from_training_log"]


@dataclass
class ForgetReport:
    """What one erasure removed, per place (no raw id)."""

    user_hash: str
    events: int = 0
    served_lists: int = 0
    training_log_rows: int = 0
    versions: dict[str, dict[str, int]] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        """The counts as the audit log and the HTTP answer give them."""
        return {"events": self.events, "served_lists": self.served_lists, "training_log_rows": self.training_log_rows,
                "versions": {v: dict(c) for v, c in sorted(self.versions.items())}, "live": dict(self.live)}


def erase_from_training_log(path: Path, user: Any) -> int:
    """Rewrite a version's training log without ``user``'s rows (temp file + rename); how many went."""
    if not path.is_file():
        return 0
    log = TrainingLog.load(path)
    text = str(int(user)) if isinstance(user, (int, np.integer)) else str(user).strip()
    drop = log.user == text
    n = int(drop.sum())
    if n:
        with atomic_file(path) as tmp:
            log.subset(~drop).save(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
    return n


def _version_dirs(root: Path) -> list[tuple[str, Path]]:
    """(name, directory) of every model to rewrite: a registry's versions, or a single model directory."""
    if (root / "versions").is_dir():
        reg = ModelRegistry(root)
        return [(v, reg.versions_dir / v) for v in reg._ids()]
    if (root / "manifest.json").is_file():
        return [(root.name, root)]
    raise ConfigError(f"{root}: neither a model registry nor a model directory")


def forget(root: str | Path, user: Any, store: EventStore | str | None = None,
           purge_live: Callable[[Any], dict[str, int]] | None = None) -> ForgetReport:
    """Erase ``user`` everywhere under ``root`` (a registry root or a model directory) and from the store.

    ``store`` is an open :class:`EventStore` or a URL (default: the registry's ``events.db``, or a model
    directory's).  ``purge_live`` (a running server's) erases the user from the loaded versions and returns
    counts; it runs after the tombstone and again at the end, so events posted meanwhile go too.  Returns the
    counts, which are also appended to the audit log.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such model registry or model directory")
    dirs = _version_dirs(root)
    with _locked(erasure_dir(root)):
        return _forget(root, dirs, user, store, purge_live)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One erasure at a time per erasure directory, between threads and processes (each rewrites the versions)."""
    directory.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(directory / ".lock", "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _forget(root: Path, dirs: list[tuple[str, Path]], user: Any, store: EventStore | str | None,
            purge_live: Callable[[Any], dict[str, int]] | None) -> ForgetReport:
    elog = ErasureLog(erasure_dir(root))
    report = ForgetReport(elog.add_tombstone(user))
    live: dict[str, int] = {}

    def purge() -> None:
        if purge_live is not None:
            for k, v in purge_live(user).items():
                live[k] = live.get(k, 0) + v

    purge()
    own = not isinstance(store, EventStore)
    if own:
        default = (ModelRegistry(root).events_url() if (root / "versions").is_dir()
                   else f"sqlite:///{(root / 'events.db').resolve()}")
        store = EventStore(store or default)
    try:
        counts = erase_user_events(store, user, report.user_hash)  # type: ignore[arg-type]
        report.events, report.served_lists = counts["events"], counts["served_lists"]
        for name, path in dirs:
            rows = erase_from_training_log(path / TRAINING_LOG_FILE, user)
            report.training_log_rows += rows
            changed = erase_from_version(path, user) or {}
            if rows:
                changed["training_log_rows"] = rows
            if changed:
                report.versions[name] = changed
        purge()  # events posted or lists logged while the versions were rewritten go too
        again = erase_user_events(store, user, report.user_hash)  # type: ignore[arg-type]
        report.events += again["events"]
        report.served_lists += again["served_lists"]
    finally:
        if own:
            store.close()  # type: ignore[union-attr]
    report.live = live
    elog.audit(report.user_hash, report.counts())
    return report
