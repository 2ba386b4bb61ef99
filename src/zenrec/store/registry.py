"""Versioned model directories and the pointer to the one being served.

::

    ROOT/
      versions/v0001/     a model directory (``ModelBundle.save``) + registry.json
                          (created, metrics, note, model; from ``zenrec retrain`` also
                          last_event_seq, trained_until and training_log.npz)
      versions/v0002/
      CURRENT.json        {"version", "promoted_at", "reason", "previous", "traffic"}
      events.db           the default event store, beside the models

A version is added by copying into a hidden temporary directory and renaming
it into place, so a reader never sees half a version; ids are allocated by
that rename (``v0001``, ``v0002``…), which is safe between processes.
``CURRENT.json`` is replaced atomically (temp file, fsync, ``os.replace``) so
a server polling :meth:`ModelRegistry.state_token` and reading
:meth:`ModelRegistry.current` always sees a whole, valid pointer.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import numbers
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from zenrec._io import atomic_file, read_manifest
from zenrec.errors import ArtifactError, ConfigError, ZenrecError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process at a time
    fcntl = None  # type: ignore[assignment]

__all__ = ["ModelRegistry", "VersionInfo", "Current", "split_version", "UnknownVersionError", "RegistryError"]

_VERSION_RE = re.compile(r"^v(\d{4,})$")
_INFO_FILE = "registry.json"
_TOLERANCE = 1e-6
_thread_lock = threading.Lock()  # used only where fcntl is missing


class UnknownVersionError(ZenrecError, KeyError):
    """No model version with that id is in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RegistryError(ArtifactError):
    """A registry file (``CURRENT.json``, a version's ``registry.json``) is missing or corrupt."""


class _Saveable(Protocol):
    def save(self, path: str | Path) -> Any: ...


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version.

    ``last_event_seq`` is the largest event-store ``seq`` the version was
    trained on (written by ``zenrec retrain``): a server that loads it
    replays only the stored events with a larger seq into its live state.
    None for versions added without it (their training time is then the only
    clue).  ``trained_until`` is the largest event timestamp it was trained
    on, when known.  ``extra`` holds every key ``add(extra=...)`` wrote into
    ``registry.json`` (those two included).
    """

    id: str
    created: float
    metrics: dict[str, float]
    note: str
    path: Path
    model: str | None = None
    last_event_seq: int | None = None
    trained_until: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Current:
    """The promoted version, why and when, the one before it, and an optional traffic split."""

    version: str
    promoted_at: float
    reason: str
    previous: str | None
    traffic: dict[str, float] | None = None
    path: Path = field(default=Path(), compare=False)

    def version_for(self, user: str) -> str:
        """The version that serves ``user``: a stable hash of the id picks from :attr:`traffic`.

        Without a split every user gets :attr:`version`.  The same user always
        lands on the same version for the same split.
        """
        return split_version(self.traffic, self.version, user)


def split_version(traffic: Mapping[str, float] | None, default: str, user: Any) -> str:
    """The version of ``traffic`` (version → weight) that a stable hash of ``user`` falls in; ``default`` without one."""
    if not traffic:
        return default
    h = int.from_bytes(hashlib.sha256(str(user).encode()).digest()[:8], "big") / 2.0**64
    acc = 0.0
    for version, weight in sorted(traffic.items()):
        acc += weight
        if h < acc:
            return version
    return max((w, v) for v, w in traffic.items())[1]


def _version_number(name: str) -> int | None:
    m = _VERSION_RE.match(name)
    return int(m.group(1)) if m else None


def _metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"the 'metrics' parameter must be a mapping of name to number; got {type(metrics).__name__}")
    out = {}
    for k, v in metrics.items():
        if not isinstance(k, str) or not k:
            raise ConfigError(f"metric names must be non-empty strings; got {k!r}")
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ConfigError(f"metric {k!r} must be a finite number; got {v!r}")
        out[k] = float(v)
    return out


_CORE_KEYS = frozenset({"created", "metrics", "note", "model"})


def _last_event_seq(value: Any) -> int | None:
    """A stored ``last_event_seq``: None or an integer >= 0 (ValueError otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"last_event_seq={value!r}")
    return int(value)


def _trained_until(value: Any) -> float | None:
    """A stored ``trained_until``: None or a finite number (ValueError otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"trained_until={value!r}")
    return float(value)


def _extra(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the extra ``registry.json`` keys of :meth:`ModelRegistry.add` (JSON values, no core key)."""
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise ConfigError(f"the 'extra' parameter must be a mapping; got {type(extra).__name__}")
    out = dict(extra)
    for k in out:
        if not isinstance(k, str) or not k:
            raise ConfigError(f"extra registry keys must be non-empty strings; got {k!r}")
        if k in _CORE_KEYS:
            raise ConfigError(f"extra registry key {k!r} is reserved; pass it as its own parameter")
    try:
        for key, check in (("last_event_seq", _last_event_seq), ("trained_until", _trained_until)):
            if key in out:
                out[key] = check(out[key])  # numpy scalars become plain numbers
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"extra registry data must be finite JSON values ({exc})") from None
    return out


class ModelRegistry:
    """Versioned model directories under ``root/versions`` and the promoted one in ``root/CURRENT.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"model registry root {self.root} exists and is not a directory")
        self.versions_dir.mkdir(parents=True, exist_ok=True)

    @property
    def versions_dir(self) -> Path:
        """Where the version directories live."""
        return self.root / "versions"

    @property
    def current_file(self) -> Path:
        """The promoted-version pointer."""
        return self.root / "CURRENT.json"

    def events_url(self) -> str:
        """The default event store: a SQLite file beside the model registry."""
        return f"sqlite:///{(self.root / 'events.db').resolve()}"

    # ---------------------------------------------------------------- versions

    def add(self, source: str | Path | _Saveable, metrics: Mapping[str, Any] | None = None, note: str = "",
            *, extra: Mapping[str, Any] | None = None) -> str:
        """Register a model directory (or anything with ``save(path)``, e.g. a ``ModelBundle``); returns its id.

        The directory is copied, so the source may be removed afterwards.  It
        must hold a valid model manifest (:class:`~zenrec.errors.ArtifactError`
        otherwise, naming the file).  ``extra`` keys are written into the
        version's ``registry.json`` beside the core ones (JSON values only);
        ``last_event_seq`` (an integer >= 0) and ``trained_until`` (epoch
        seconds) are read back as :class:`VersionInfo` fields.
        """
        from zenrec.models.base import MODEL_FORMAT
        from zenrec.models.bundle import ModelBundle

        metrics_ = _metrics(metrics)
        extra_ = _extra(extra)
        if not isinstance(note, str):
            raise ConfigError(f"the 'note' parameter must be a string; got {type(note).__name__}")
        stage = Path(tempfile.mkdtemp(prefix=".add-", dir=self.versions_dir))
        try:
            staged = stage / "model"
            if isinstance(source, (str, os.PathLike)):
                src = Path(source)
                read_manifest(src, "model", MODEL_FORMAT)
                link = next((p for p in src.rglob("*") if p.is_symlink()), None)
                if link is not None:
                    raise ArtifactError(f"{link}: a symlink (to {os.readlink(link)}); a model directory holds "
                                        "plain files only")
                try:
                    shutil.copytree(src, staged)
                except (shutil.Error, OSError) as exc:  # a symlink loop or an unreadable file inside
                    raise ArtifactError(f"{src}: cannot copy the model directory ({_first_error(exc)})") from None
            elif callable(getattr(source, "save", None)):
                source.save(staged)
            else:
                raise ConfigError(f"cannot register a {type(source).__name__}: give a model directory or a ModelBundle")
            # the copy is what will be served: every check a server's load makes runs on it now
            try:
                manifest = ModelBundle.load(staged).manifest
            except ArtifactError as exc:
                if isinstance(source, (str, os.PathLike)):  # name the user's files, not the copy
                    raise ArtifactError(str(exc).replace(str(staged), str(source))) from None
                raise
            info = {**extra_, "created": time.time(), "metrics": metrics_, "note": note, "model": manifest.get("model")}
            with open(staged / _INFO_FILE, "w") as fh:
                json.dump(info, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            while True:  # the rename allocates the id: it fails when another writer took it
                vid = f"v{self._last_number() + 1:04d}"
                try:
                    os.rename(staged, self.versions_dir / vid)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
            _fsync_dir(self.versions_dir)
            return vid
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _last_number(self) -> int:
        nums = [_version_number(p.name) for p in self.versions_dir.iterdir()]
        return max((n for n in nums if n is not None), default=0)

    def _ids(self) -> list[str]:
        names = [p.name for p in self.versions_dir.iterdir() if p.is_dir()]
        return sorted((n for n in names if _version_number(n) is not None), key=lambda n: _version_number(n) or 0)

    def path(self, version: str) -> Path:
        """The directory of ``version`` (load it with ``ModelBundle.load``)."""
        if not isinstance(version, str) or _version_number(version) is None:
            raise UnknownVersionError(f"{version!r} is not a model version id (expected v0001, v0002, …)")
        p = self.versions_dir / version
        if not p.is_dir():
            known = self._ids()
            shown = ", ".join(known[-5:]) if known else "none yet"
            raise UnknownVersionError(f"unknown model version {version!r} in {self.root} (known: {shown})")
        return p

    def info(self, version: str) -> VersionInfo:
        """Metadata of one version."""
        p = self.path(version)
        f = p / _INFO_FILE
        try:
            data = json.loads(f.read_text())
            created = float(data["created"])
            metrics = {str(k): float(v) for k, v in dict(data.get("metrics") or {}).items()}
            note = str(data.get("note", ""))
            model = data.get("model")
            last_seq = _last_event_seq(data.get("last_event_seq"))
            until = _trained_until(data.get("trained_until"))
            extra = {k: v for k, v in data.items() if k not in _CORE_KEYS}
        except FileNotFoundError:
            raise RegistryError(f"{f}: missing; {p} was not added through the registry") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RegistryError(f"{f}: corrupted version metadata ({exc})") from None
        if not (p / "manifest.json").is_file():
            raise RegistryError(f"{p}: no manifest.json; the version directory is damaged")
        return VersionInfo(version, created, metrics, note, p, model if isinstance(model, str) else None,
                           last_seq, until, extra)

    def versions(self) -> list[VersionInfo]:
        """Every version, oldest first."""
        return [self.info(v) for v in self._ids()]

    # ---------------------------------------------------------------- promotion

    def current(self) -> Current | None:
        """The promoted version, or None before the first promotion."""
        try:
            raw = self.current_file.read_bytes()
        except FileNotFoundError:
            return None
        return self._parse_current(raw)

    def _parse_current(self, raw: bytes) -> Current:
        f = self.current_file
        try:
            data = json.loads(raw)
            version = data["version"]
            if not isinstance(version, str) or _version_number(version) is None:
                raise ValueError(f"version={version!r}")
            previous = data.get("previous")
            if previous is not None and not isinstance(previous, str):
                raise ValueError(f"previous={previous!r}")
            traffic = data.get("traffic")
            if traffic is not None:
                traffic = {str(k): float(v) for k, v in dict(traffic).items()}
            cur = Current(version, float(data["promoted_at"]), str(data.get("reason", "")), previous, traffic)
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{f}: corrupted ({exc}); promote a version again to repair it") from None
        return Current(cur.version, cur.promoted_at, cur.reason, cur.previous, cur.traffic,
                       self.versions_dir / cur.version)

    def promote(self, version: str, reason: str = "") -> Current:
        """Make ``version`` the served one (atomically); clears any traffic split."""
        if not isinstance(reason, str):
            raise ConfigError(f"the 'reason' parameter must be a string; got {type(reason).__name__}")
        self.info(version)  # known and intact
        with self._locked():
            try:
                cur = self.current()
            except RegistryError:  # a damaged pointer is repaired by promoting
                cur = None
            if cur is None:
                previous = None
            else:
                previous = cur.previous if cur.version == version else cur.version
            self._write_current(
                {"version": version, "promoted_at": time.time(), "reason": reason, "previous": previous,
                 "traffic": None}
            )
        out = self.current()
        assert out is not None
        return out

    def set_traffic(self, weights: Mapping[str, float] | None) -> Current:
        """Split users between versions by weight (known versions, weights >= 0 summing to 1).

        ``None`` or ``{}`` removes the split.  A version must be promoted first;
        it stays the default for anything outside the split.
        """
        traffic: dict[str, float] | None = None
        if weights:
            if not isinstance(weights, Mapping):
                raise ConfigError(f"traffic weights must be a mapping of version to weight; got {type(weights).__name__}")
            traffic = {}
            for v, w in weights.items():
                self.info(v)
                if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(float(w)) or w < 0:
                    raise ConfigError(f"traffic weight of {v!r} must be a finite number >= 0; got {w!r}")
                traffic[v] = float(w)
            total = sum(traffic.values())
            if abs(total - 1.0) > _TOLERANCE:
                raise ConfigError(f"traffic weights must sum to 1; got {total:g} for {traffic}")
        with self._locked():
            cur = self.current()
            if cur is None:
                raise RegistryError(f"{self.current_file}: no version promoted yet; promote one before splitting traffic")
            self._write_current(
                {"version": cur.version, "promoted_at": cur.promoted_at, "reason": cur.reason,
                 "previous": cur.previous, "traffic": traffic}
            )
        out = self.current()
        assert out is not None
        return out

    def state_token(self) -> str:
        """A cheap token that changes whenever ``CURRENT.json`` changes (mtime + content hash)."""
        try:
            st = os.stat(self.current_file)
            raw = self.current_file.read_bytes()
        except FileNotFoundError:
            return "none"
        return f"{st.st_mtime_ns}-{hashlib.sha256(raw).hexdigest()[:16]}"

    def _write_current(self, data: dict[str, Any]) -> None:
        payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
        with atomic_file(self.current_file) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(self.root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write of CURRENT.json between threads and processes."""
        if fcntl is None:  # pragma: no cover
            with _thread_lock:
                yield
            return
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"


def _first_error(exc: OSError) -> str:
    """The first of a copy's errors, short (``shutil.Error`` lists every file it could not copy)."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        src, _, why = exc.args[0][0]
        return f"{src}: {why}"
    return exc.strerror or str(exc)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
