"""Erasure on request: the key, the tombstones, the audit log, and erasing a user from the store and a model.

Everything lives in an *erasure directory* (``ROOT/erasure`` beside a
registry's versions, or inside a served model directory)::

    erasure/tombstones.txt   one keyed hash per line: users kept out of every later retrain
    erasure/audit.jsonl      one JSON line per erasure: time, keyed hash, counts removed per place
    erasure/erasure.key      the HMAC key (created 0600 on first use) unless ZENREC_ERASURE_KEY is set
    erasure/key.check        an HMAC of a fixed text: a different key later is refused, not silently used

No file holds a raw user id: a user is named by ``HMAC-SHA256(key, id)``
(:func:`user_hash`).  The key comes from the ``ZENREC_ERASURE_KEY``
environment variable when it is set, else from ``erasure.key`` (32 random
bytes, hex, mode 0600).  Keep the key out of backups of the data: with it
the hashes can be tested against candidate ids, without it they cannot.

A model's rows are erased *in place* (:func:`erase_from_arrays`): the user's
id in the user vocabulary becomes a placeholder no request can name, their
seen row and history rows are emptied, and their rows of the per-user arrays
zenrec knows (user factors, user vectors, sequences, last items, a network's
user embedding) are zeroed.  Indices of the other users never move, so every
model family stays loadable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import sqlalchemy as sa

from zenrec._io import atomic_file, load_arrays, save_arrays
from zenrec.data.ids import normalize_id
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ConfigError
from zenrec.store.events import (
    EventStore,
    erasures_table,
    events_table,
    hold_append_lock,
    notify_change,
    served_table,
)

__all__ = ["KEY_ENV", "ErasureLog", "user_hash", "load_key", "erase_user_events", "erase_from_arrays",
           "erase_from_bundle", "placeholder_id", "erasure_dir", "read_key_file", "pseudonymise_users",
           "hash_prefixes"]

#: the environment variable that holds the erasure key (any non-empty text); else ``erasure/erasure.key``
KEY_ENV = "ZENREC_ERASURE_KEY"
KEY_FILE = "erasure.key"
KEY_CHECK = "key.check"
TOMBSTONES = "tombstones.txt"
AUDIT = "audit.jsonl"
#: the prefix of an erased text id: a NUL, which no stored or requested id may hold
ERASED_PREFIX = "\x00erased-"
#: per-user model arrays whose row of an erased user is zeroed (by their name in ``arrays.npz``)
USER_ROW_ARRAYS = ("model.user_factors", "model.user_vecs", "model.sequences", "model.last")
#: packed per-user CSR matrices whose row of an erased user is emptied
USER_CSR = ("model.hist", "extra.seen")

_lock = threading.Lock()
_HEX64 = re.compile(r"[0-9a-f]{64}")


def erasure_dir(root: str | Path) -> Path:
    """The erasure directory of a registry root or a model directory."""
    return Path(root) / "erasure"


def _user_text(user: Any) -> str:
    if isinstance(user, (bool, float)) or not isinstance(user, (str, int, np.integer)):
        raise ConfigError(f"a user id must be a string or an integer; got {type(user).__name__}")
    try:
        return normalize_id(str(int(user)) if not isinstance(user, str) else user)
    except ValueError as exc:
        raise ConfigError(f"user id: {exc}") from None


def load_key(directory: str | Path, create: bool = True) -> bytes:
    """The erasure key: ``ZENREC_ERASURE_KEY``, else ``directory/erasure.key`` (created 0600 when missing)."""
    env = os.environ.get(KEY_ENV)
    if env is not None:
        if not env.strip():
            raise ConfigError(f"{KEY_ENV} is set but empty; give a secret of at least 16 characters")
        return env.encode()
    path = Path(directory) / KEY_FILE
    if not path.exists():
        if not create:
            raise ConfigError(f"{path}: no erasure key (set {KEY_ENV} or run `zenrec forget` once)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: readable by others (mode {path.stat().st_mode & 0o777:o}); chmod 600 it")
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{path}: empty erasure key")
    return key.encode()


def user_hash(key: bytes, user: Any) -> str:
    """The keyed hash that names ``user`` in tombstones and the audit log: hex HMAC-SHA256 of its text."""
    return hmac.new(key, _user_text(user).encode(), hashlib.sha256).hexdigest()


def hash_prefixes(key: bytes, ids: np.ndarray) -> np.ndarray:
    """The first 8 bytes of every id's keyed hash (:func:`user_hash`, of the id's text) as ``uint64``: a
    compact index for finding which of many ids a hash names (confirm a match with :func:`user_hash`).

    ``ids`` are ids as a vocabulary stores them (already normalised); any id hashes, placeholders included.
    """
    out = np.empty(len(ids), dtype=np.uint64)
    for n, u in enumerate(np.asarray(ids).tolist()):
        out[n] = int.from_bytes(hmac.new(key, str(u).encode(), hashlib.sha256).digest()[:8], "big")
    return out


class ErasureLog:
    """The tombstones and the audit log of one erasure directory."""

    def __init__(self, directory: str | Path, create_key: bool = True) -> None:
        self.dir = Path(directory)
        self.key = load_key(self.dir, create=create_key)
        # a fingerprint of the key: another key would silently stop matching the tombstones
        check = self.dir / KEY_CHECK
        mark = hmac.new(self.key, b"zenrec erasure key check", hashlib.sha256).hexdigest()
        if check.is_file():
            if check.read_text().strip() != mark:
                raise ConfigError(f"{self.dir}: the erasure key differs from the one its tombstones were written "
                                  f"with ({KEY_ENV} or {KEY_FILE} changed); restore that key")
        elif create_key:
            self.dir.mkdir(parents=True, exist_ok=True)
            with atomic_file(check) as tmp:
                tmp.write_text(mark + "\n")

    def hash(self, user: Any) -> str:
        """The keyed hash of ``user``."""
        return user_hash(self.key, user)

    def tombstones(self) -> set[str]:
        """The keyed hashes of every erased user."""
        try:
            text = (self.dir / TOMBSTONES).read_text()
        except FileNotFoundError:
            return set()
        return {line.strip() for line in text.splitlines() if line.strip()}

    def is_tombstoned(self, user: Any) -> bool:
        return self.hash(user) in self.tombstones()

    def add_tombstone(self, user: Any) -> str:
        """Add ``user``'s hash to the tombstones (atomically; idempotent); returns the hash."""
        h = self.hash(user)
        with _lock:
            stones = self.tombstones()
            if h not in stones:
                self.dir.mkdir(parents=True, exist_ok=True)
                with atomic_file(self.dir / TOMBSTONES) as tmp:
                    with open(tmp, "w") as fh:
                        fh.write("".join(f"{s}\n" for s in sorted(stones | {h})))
                        fh.flush()
                        os.fsync(fh.fileno())
        return h

    def keep_mask(self, users: np.ndarray) -> np.ndarray:
        """True for the rows of ``users`` (raw ids) whose user is not tombstoned."""
        stones = self.tombstones()
        users = np.asarray(users)
        if not stones or len(users) == 0:
            return np.ones(len(users), dtype=bool)
        uniq, inv = np.unique(users.astype(str), return_inverse=True)
        keep = np.asarray([self._hash_or_none(u) not in stones for u in uniq.tolist()], dtype=bool)
        return keep[inv]

    def _hash_or_none(self, user: str) -> str | None:
        try:
            return self.hash(user)
        except ConfigError:  # not an id the rule accepts: never one `forget` was given
            return None

    def audit(self, user_hash_: str, removed: dict[str, Any]) -> dict[str, Any]:
        """Append one erasure record (time, keyed hash, counts) to the audit log and fsync it."""
        rec = {"time": time.time(), "user_hash": user_hash_, "removed": removed}
        self.dir.mkdir(parents=True, exist_ok=True)
        with _lock, open(self.dir / AUDIT, "a") as fh:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return rec

    def records(self) -> list[dict[str, Any]]:
        """Every audit record, oldest first."""
        try:
            lines = (self.dir / AUDIT).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]


def erase_user_events(store: EventStore, user: Any, user_hash: str | None = None) -> dict[str, int]:
    """Delete ``user``'s events and served lists in one transaction; the counts deleted.

    With ``user_hash`` (the user's keyed hash, :func:`user_hash`) the same
    transaction records the erasure in the store's ``erasures`` table — the
    hash and the last event ``seq`` it covers, never the raw id — so that
    every server following the store forgets the user too
    (:mod:`zenrec.serve.follower`).  On PostgreSQL it holds the appenders'
    lock, so no event of the user commits beside it unseen.
    """
    uid = _user_text(user)
    if user_hash is not None and not (isinstance(user_hash, str) and _HEX64.fullmatch(user_hash)):
        raise ConfigError(f"the 'user_hash' parameter must be 64 hex digits (user_hash()); got {user_hash!r}")
    with store._write("erase_user") as conn:
        if store.dialect == "postgresql":
            hold_append_lock(conn)
        if store.dialect == "sqlite":  # the deleted rows' bytes are overwritten, not left in free pages
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        # read before the delete: the user's own events may be the newest
        through = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events_table.c.seq), 0))).scalar()
        served = conn.execute(sa.delete(served_table).where(served_table.c.user_id == uid)).rowcount or 0
        events = conn.execute(sa.delete(events_table).where(events_table.c.user_id == uid)).rowcount or 0
        if user_hash is not None:
            conn.execute(sa.insert(erasures_table).values(user_hash=user_hash, through_seq=int(through or 0),
                                                          created=time.time()))
            if store.dialect == "postgresql":
                notify_change(conn)
    if events or served:
        _compact(store)
    return {"events": int(events), "served_lists": int(served)}


def _compact(store: EventStore) -> None:
    """Best effort: push the deletion past the database's own copies of old rows (SQLite: checkpoint and
    truncate the write-ahead log; PostgreSQL: VACUUM the two tables)."""
    try:
        if store.dialect == "sqlite":
            raw = store._engine.raw_connection()  # outside any transaction (the driver is in autocommit)
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
            finally:
                raw.close()
        else:
            with store._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM events")
                conn.exec_driver_sql("VACUUM served_lists")
    except sa.exc.SQLAlchemyError:  # a busy reader: the log is checkpointed later, autovacuum runs anyway
        pass


def placeholder_id(ids: np.ndarray, index: int) -> Any:
    """An id for erased row ``index`` that no request can name: NUL-prefixed text, or an integer below all ids."""
    if ids.dtype.kind == "i":
        return int(min(int(ids.min()), 0)) - 1 - (1 << 40)
    return f"{ERASED_PREFIX}{index}"


def _index_of(ids: np.ndarray, user: Any) -> int:
    vocab = Vocabulary(ids, "user")
    return int(vocab.index([_user_text(user)], missing="mask")[0])


def _clear_csr_row(arrays: dict[str, np.ndarray], prefix: str, u: int) -> int:
    indptr, indices = arrays[f"{prefix}_indptr"], arrays[f"{prefix}_indices"]
    lo, hi = int(indptr[u]), int(indptr[u + 1])
    if hi == lo:
        return 0
    arrays[f"{prefix}_indices"] = np.concatenate([indices[:lo], indices[hi:]])
    if f"{prefix}_data" in arrays:
        data = arrays[f"{prefix}_data"]
        arrays[f"{prefix}_data"] = np.concatenate([data[:lo], data[hi:]])
    out = indptr.copy()
    out[u + 1:] -= hi - lo
    arrays[f"{prefix}_indptr"] = out
    return hi - lo


def erase_from_arrays(arrays: dict[str, np.ndarray], user: Any) -> dict[str, int] | None:
    """Erase ``user`` from a bundle's ``arrays.npz`` contents in place; None when the vocabulary lacks them.

    Returns what was changed: ``vocabulary`` (1), ``seen`` and ``history`` entries removed, ``user_rows``
    (per-user array rows zeroed).
    """
    ids = arrays.get("extra.user_ids")
    if ids is None:
        return None
    u = _index_of(ids, user)
    if u < 0:
        return None
    n = len(ids)
    new_ids = ids.copy() if ids.dtype.kind == "i" else ids.astype(object)
    new_ids[u] = placeholder_id(ids, u)
    arrays["extra.user_ids"] = new_ids.astype(np.int64) if ids.dtype.kind == "i" else new_ids.astype(str)
    out = {"vocabulary": 1, "seen": 0, "history": 0, "user_rows": 0}
    for prefix in USER_CSR:
        if f"{prefix}_indptr" in arrays and len(arrays[f"{prefix}_indptr"]) == n + 1:
            out["seen" if prefix == "extra.seen" else "history"] += _clear_csr_row(arrays, prefix, u)
    for name, a in list(arrays.items()):
        per_user = name in USER_ROW_ARRAYS or (name.startswith("model.") and name.endswith("user.weight"))
        if per_user and a.ndim >= 1 and a.shape[0] == n:
            a = a.copy()
            a[u] = -1 if name == "model.last" else 0
            arrays[name] = a
            out["user_rows"] += 1
    return out


def erase_from_version(path: str | Path, user: Any) -> dict[str, int] | None:
    """Rewrite a model directory's ``arrays.npz`` without ``user`` (temp file + rename); None when absent."""
    f = Path(path) / "arrays.npz"
    arrays = load_arrays(f)
    out = erase_from_arrays(arrays, user)
    if out is None:
        return None
    with atomic_file(f) as tmp:
        save_arrays(tmp, arrays)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    return out


def erase_from_bundle(bundle: Any, user: Any) -> bool:
    """Make a loaded :class:`~zenrec.models.bundle.ModelBundle` treat ``user`` as unknown from the next read.

    The user's vocabulary entry becomes the placeholder (a new vocabulary, swapped in with one assignment)
    and their seen row is emptied; True when the bundle knew them.
    """
    vocab = bundle.users
    ids = vocab.all_ids
    u = int(vocab.index([_user_text(user)], missing="mask")[0])
    if u < 0:
        return False
    new = ids.copy() if ids.dtype.kind == "i" else ids.astype(object)
    new[u] = placeholder_id(ids, u)
    bundle.users = Vocabulary(new.astype(np.int64) if ids.dtype.kind == "i" else new.astype(str), "user")
    seen = bundle.seen.tocsr()
    lo, hi = int(seen.indptr[u]), int(seen.indptr[u + 1])
    if hi > lo:  # the row emptied in CSR form: O(nnz) array copies, no per-row Python objects
        indptr = seen.indptr.copy()
        indptr[u + 1:] -= hi - lo
        gone = slice(lo, hi)
        bundle.seen = sp.csr_matrix((np.delete(seen.data, gone), np.delete(seen.indices, gone), indptr),
                                    shape=seen.shape)
    return True


def read_key_file(path: str | Path) -> bytes:
    """A key file's secret (``zenrec ingest --key-file``): it must exist, be non-empty and be readable by its
    owner only (mode 0600)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such key file (write a secret, e.g. `openssl rand -hex 32 > {p}; chmod 600 {p}`)")
    if p.stat().st_mode & 0o077:
        raise ConfigError(f"{p}: readable by others (mode {p.stat().st_mode & 0o777:o}); chmod 600 it")
    key = p.read_text().strip()
    if len(key) < 16:
        raise ConfigError(f"{p}: the key must be at least 16 characters")
    return key.encode()


def pseudonymise_users(dataset: Any, key: bytes) -> Any:
    """``dataset`` with each user id replaced by its keyed hash (hex HMAC-SHA256, :func:`user_hash`).

    The interactions keep their coding; only the user vocabulary changes.  The cleaning report's examples of
    dropped rows (raw text that may hold ids) are left out.
    """
    ids = dataset.users.all_ids
    dataset.users = Vocabulary(np.asarray([user_hash(key, u) for u in ids.tolist()], dtype=str), "user")
    report = getattr(dataset, "report", None)
    if report is not None and getattr(report, "examples", None):
        report.examples = {}
    return dataset
