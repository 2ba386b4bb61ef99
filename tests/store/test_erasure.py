"""Erasure on request, end to end on SQLite and on a real PostgreSQL: ``DELETE /users/{id}`` and ``zenrec forget``.

After the erasure the store holds no row of the user, the next read treats them as unknown, the versions on disk
and every later retrain (full and incremental) hold no trace of the id or its events, and the audit log names
them only by a keyed hash.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from zenrec.cli import app as cli_app
from zenrec.data.dataset import Dataset
from zenrec.data.schema import ColumnMap
from zenrec.retrain import TRAINING_LOG_FILE, TrainingLog, retrain
from zenrec.store import EventStore, ModelRegistry
from zenrec.store.erasure import KEY_ENV, ErasureLog, erasure_dir, user_hash
from zenrec.store.events import Event

KEY = "erasure-test-key"
TARGET = "erase-me-Qx7v"  # distinctive, so a byte search for it cannot hit anything else
T0 = 1_700_000_000.0
runner = CliRunner()


def _encodings(text: str) -> list[bytes]:
    return [text.encode(e) for e in ("utf-8", "utf-16-le", "utf-32-le")]  # numpy stores "<U" text as UTF-32


def traces(directory: Path, text: str) -> list[str]:
    """Files under ``directory`` whose raw bytes (or, for a zip/npz, a member's uncompressed bytes) hold ``text``."""
    needles = _encodings(text)
    found = []
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        blobs = [f.read_bytes()]
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as z:
                blobs += [z.read(n) for n in z.namelist()]
        if any(n in b for b in blobs for n in needles):
            found.append(str(f.relative_to(directory)))
    return found


def _frame(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    users = [f"user-{u:03d}" for u in range(60)] + [TARGET]
    for k, u in enumerate(users):
        for j, i in enumerate(rng.choice(40, size=8, replace=False)):
            rows.append((u, f"item-{i:02d}", T0 + k * 100 + j))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _events(rng: np.random.Generator, users: list[str], t: float, n: int = 3) -> list[Event]:
    return [Event(u, f"item-{int(i):02d}", "click", timestamp=t + k) for k, u in enumerate(users)
            for i in rng.choice(40, size=n, replace=False)]


def _store_rows(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            ev = c.execute(sa.text("SELECT count(*) FROM events WHERE user_id = :u"), {"u": TARGET}).scalar()
            sv = c.execute(sa.text("SELECT count(*) FROM served_lists WHERE user_id = :u"), {"u": TARGET}).scalar()
    finally:
        engine.dispose()
    return int(ev), int(sv)


def _no_trace(version: Path) -> None:
    assert traces(version, TARGET) == [], f"{version.name} holds the erased id"
    log = TrainingLog.load(version / TRAINING_LOG_FILE)
    assert TARGET not in set(log.user.tolist())


@pytest.fixture
def erasure_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def test_delete_user_end_to_end(store_url, tmp_path, erasure_key):
    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app

    rng = np.random.default_rng(7)
    base = Dataset.from_frame(_frame(rng), ColumnMap(user="user_id", item="item_id", timestamp="timestamp"),
                              name="erasure-base")
    base.save(tmp_path / "base")
    others = [f"user-{u:03d}" for u in range(0, 60, 3)]
    with EventStore(store_url) as store:
        store.append(_events(rng, [TARGET, *others], T0 + 10_000))
    root = tmp_path / "registry"
    root.mkdir()
    first = retrain(root, "ease", {"reg": 50.0}, base=tmp_path / "base", store_url=store_url)
    assert first.version == "v0001" and first.promoted
    assert TARGET in set(TrainingLog.load(root / "versions/v0001" / TRAINING_LOG_FILE).user.tolist())
    with EventStore(store_url) as store:  # what the next retrain evaluates on
        store.append(_events(rng, others, T0 + 20_000))

    app = create_app(root, store_url=store_url, api_key="write-key", poll_seconds=0)
    with TestClient(app, raise_server_exceptions=False) as client:
        before = client.get(f"/users/{TARGET}/recommendations", params={"k": 5}).json()
        assert before["fallback"] is None  # known to the served version
        r = client.post("/events", json={"user": TARGET, "item": "item-03", "list_id": before["list_id"],
                                         "timestamp": T0 + 30_000}, headers={"X-API-Key": "write-key"})
        assert r.status_code == 200
        client.app.state.zenrec.served_log.flush()
        ev, sv = _store_rows(store_url)
        assert ev == 4 and sv == 1
        assert traces(root / "versions/v0001", TARGET)  # the search finds the id while it is there

        denied = client.delete(f"/users/{TARGET}")
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert _store_rows(store_url) == (4, 1)

        r = client.delete(f"/users/{TARGET}", headers={"X-API-Key": "write-key"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user_hash"] == user_hash(KEY.encode(), TARGET)
        assert body["events"] == 4 and body["served_lists"] == 1
        assert body["training_log_rows"] == 8 + 3  # the base rows and the stored events v0001 trained on
        assert body["versions"]["v0001"]["vocabulary"] == 1 and body["versions"]["v0001"]["seen"] > 0
        assert body["live"]["live_events"] == 1 and body["live"]["model_rows"] == 1
        assert _store_rows(store_url) == (0, 0)

        after = client.get(f"/users/{TARGET}/recommendations", params={"k": 5}).json()
        assert after["fallback"] == "popular"  # an unknown user from the next read
        client.app.state.zenrec.served_log.flush()
        _no_trace(root / "versions/v0001")

        again = client.delete(f"/users/{TARGET}", headers={"X-API-Key": "write-key"}).json()
        assert again["user_hash"] == body["user_hash"]
        # the read after the erasure was logged as a list of an unknown user: the second call removes it
        assert again["events"] == 0 and again["training_log_rows"] == 0 and again["versions"] == {}
        never = client.delete("/users/nobody-ever", headers={"X-API-Key": "write-key"})
        assert never.status_code == 200 and never.json()["events"] == 0 and never.json()["versions"] == {}
    assert _store_rows(store_url) == (0, 0)
    if store_url.startswith("sqlite"):  # secure_delete and a checkpoint: not even free pages hold the id
        db = Path(store_url.removeprefix("sqlite:///"))
        assert traces(db.parent, TARGET) == []

    # the base dataset still holds the user's rows: the tombstone keeps them out of every retrain
    full = retrain(root, base=tmp_path / "base", store_url=store_url, tolerance=1.0)
    assert full.promoted, full.reason
    with EventStore(store_url) as store:
        store.append(_events(rng, others[:5], T0 + 40_000))
    inc = retrain(root, store_url=store_url, mode="incremental", tolerance=1.0)
    assert inc.promoted, inc.reason
    for v in ModelRegistry(root).versions():
        _no_trace(v.path)
    assert traces(root / "versions", TARGET) == []

    audit = erasure_dir(root) / "audit.jsonl"
    records = [json.loads(x) for x in audit.read_text().splitlines()]
    assert len(records) == 3 and records[0]["user_hash"] == body["user_hash"]
    assert records[0]["removed"]["events"] == 4
    assert traces(erasure_dir(root), TARGET) == []


def test_cli_forget(store_url, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    rng = np.random.default_rng(3)
    base = Dataset.from_frame(_frame(rng), ColumnMap(user="user_id", item="item_id", timestamp="timestamp"))
    base.save(tmp_path / "base")
    root = tmp_path / "registry"
    root.mkdir()
    with EventStore(store_url) as store:
        store.append(_events(rng, [TARGET, "user-001"], T0 + 10_000))
    retrain(root, "ease", {"reg": 50.0}, base=tmp_path / "base", store_url=store_url)

    r = runner.invoke(cli_app, ["forget", TARGET, "--registry", str(root), "--store", store_url,
                                "--json", str(tmp_path / "forget.json")])
    assert r.exit_code == 0, r.output
    assert "3 events" in r.output and "1 version rewritten" in r.output and TARGET not in r.output
    got = json.loads((tmp_path / "forget.json").read_text())
    assert got["events"] == 3 and got["training_log_rows"] == 11
    key_file = erasure_dir(root) / "erasure.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # the key made on first use, for the owner only
    assert ErasureLog(erasure_dir(root)).is_tombstoned(TARGET)
    assert _store_rows(store_url) == (0, 0)
    _no_trace(root / "versions/v0001")

    # idempotent: a second run (as after a crash midway) finds nothing left
    r = runner.invoke(cli_app, ["forget", TARGET, "--registry", str(root), "--store", store_url])
    assert r.exit_code == 0 and "0 events" in r.output and "0 versions rewritten" in r.output

    missing = runner.invoke(cli_app, ["forget", TARGET, "--registry", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such model registry" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad = runner.invoke(cli_app, ["forget", "   ", "--registry", str(root)])
    assert bad.exit_code == 2 and "must not be empty" in bad.output
    os.chmod(key_file, 0o644)
    loose = runner.invoke(cli_app, ["forget", TARGET, "--registry", str(root), "--store", store_url])
    assert loose.exit_code == 2 and "chmod 600" in loose.output


def test_ingest_pseudonymises_users_with_a_key_file(tmp_path):
    rows = [f"{u},item-{i},{int(T0) + k}" for k, (u, i) in enumerate(
        [(u, i) for u in ("alice-raw-id", "bob-raw-id", "carol-raw-id") for i in range(4)])]
    (tmp_path / "log.csv").write_text("user_id,item_id,ts\n" + "\n".join(rows) + "\n")
    key = tmp_path / "pseudonym.key"
    key.write_text("a-secret-of-enough-length\n")
    os.chmod(key, 0o600)
    r = runner.invoke(cli_app, ["ingest", str(tmp_path / "log.csv"), "--time", "ts", "-o", str(tmp_path / "data"),
                                "--pseudonymise-users", "--key-file", str(key)])
    assert r.exit_code == 0, r.output
    ds = Dataset.load(tmp_path / "data")
    want = {user_hash(b"a-secret-of-enough-length", u) for u in ("alice-raw-id", "bob-raw-id", "carol-raw-id")}
    assert set(ds.users.all_ids.tolist()) == want and len(ds.interactions) == 12
    for raw in ("alice-raw-id", "bob-raw-id", "carol-raw-id"):
        assert traces(tmp_path / "data", raw) == []

    alone = runner.invoke(cli_app, ["ingest", str(tmp_path / "log.csv"), "-o", str(tmp_path / "d2"),
                                    "--pseudonymise-users"])
    assert alone.exit_code == 2 and "--key-file" in alone.output
    os.chmod(key, 0o644)
    loose = runner.invoke(cli_app, ["ingest", str(tmp_path / "log.csv"), "-o", str(tmp_path / "d3"),
                                    "--pseudonymise-users", "--key-file", str(key)])
    assert loose.exit_code == 2 and "chmod 600" in loose.output and not (tmp_path / "d3").exists()


_SLOW = pytest.mark.slow  # the sequence models and LMF fit for seconds even at their test sizes


@pytest.mark.parametrize("name", ["pop", "itemknn", "ease", "als", pytest.param("lmf", marks=_SLOW), "transition",
                                  pytest.param("gru4rec", marks=_SLOW), pytest.param("sasrec", marks=_SLOW),
                                  pytest.param("bert4rec", marks=_SLOW), "multitask", "twotower"])
def test_every_model_family_is_rewritten_without_the_user(name, tmp_path):
    """A version of each registered model, erased on disk: it loads, the id is gone from every byte, the user's
    stored history is empty and every per-user array (first axis = the users) holds zeros in their row."""
    from zenrec._io import load_arrays
    from zenrec.models.bundle import ModelBundle
    from zenrec.models.query import Query
    from zenrec.store.erasure import erase_from_version
    from zenrec.testing import small_model

    ds = Dataset.from_frame(_frame(np.random.default_rng(11)), ColumnMap(user="user_id", item="item_id",
                                                                          timestamp="timestamp"))
    model = small_model(name).fit(ds.interactions)
    path = ModelBundle(model, ds.users, ds.items, ds.interactions.binary).save(tmp_path / name)
    u = int(ds.users.index([TARGET])[0])
    n_users = len(ds.users)
    assert traces(path, TARGET)
    changed = erase_from_version(path, TARGET)
    assert changed is not None and changed["vocabulary"] == 1 and changed["seen"] == 8
    assert erase_from_version(path, TARGET) is None  # idempotent: nothing left to erase

    assert traces(path, TARGET) == []
    bundle = ModelBundle.load(path)
    assert TARGET not in bundle.users and len(bundle.users) == n_users
    assert len(bundle.stored_history(u)) == 0 and len(bundle.seen_items(u)) == 0
    assert bundle.recommend(Query(user=TARGET, k=5)).fallback == "popular"
    for key, a in load_arrays(path / "arrays.npz").items():
        if key.startswith("model.") and a.ndim >= 1 and a.shape[0] == n_users:
            assert not np.any(a[u] > 0), f"{name}: {key} still holds the erased user's row"


def test_forget_completes_after_a_crash_midway(store_url, tmp_path, erasure_key):
    """The state a crash after the tombstone, the store and the first training log leaves: `forget` again
    finds those done and completes the version files and the audit line."""
    from zenrec.retrain.erasure import erase_from_training_log, forget
    from zenrec.store.erasure import erase_user_events

    rng = np.random.default_rng(5)
    Dataset.from_frame(_frame(rng), ColumnMap(user="user_id", item="item_id", timestamp="timestamp")).save(
        tmp_path / "base")
    root = tmp_path / "registry"
    root.mkdir()
    with EventStore(store_url) as store:
        store.append(_events(rng, [TARGET, "user-002"], T0 + 10_000))
    retrain(root, "ease", {"reg": 50.0}, base=tmp_path / "base", store_url=store_url)
    version = root / "versions/v0001"

    elog = ErasureLog(erasure_dir(root))
    elog.add_tombstone(TARGET)
    with EventStore(store_url) as store:
        assert erase_user_events(store, TARGET)["events"] == 3
    assert erase_from_training_log(version / TRAINING_LOG_FILE, TARGET) == 11
    assert traces(version, TARGET) == ["arrays.npz"] and elog.records() == []  # the crash: arrays.npz not yet

    report = forget(root, TARGET, store_url)
    assert report.events == 0 and report.training_log_rows == 0 and report.versions["v0001"]["vocabulary"] == 1
    assert traces(version, TARGET) == [] and _store_rows(store_url) == (0, 0)
    assert len(elog.records()) == 1 and elog.records()[0]["user_hash"] == report.user_hash
    assert elog.tombstones() == {report.user_hash}


def test_a_changed_key_is_refused_not_silently_used(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "first-key-of-the-registry")
    ErasureLog(tmp_path / "erasure").add_tombstone(TARGET)
    monkeypatch.setenv(KEY_ENV, "another-key-entirely")
    with pytest.raises(Exception, match="erasure key differs"):
        ErasureLog(tmp_path / "erasure")
    monkeypatch.setenv(KEY_ENV, "first-key-of-the-registry")
    assert ErasureLog(tmp_path / "erasure").is_tombstoned(TARGET)
    assert traces(tmp_path / "erasure", TARGET) == []
