"""ModelRegistry: versions, promotion, atomic CURRENT.json, traffic split, errors."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from zenrec.errors import ArtifactError, ConfigError
from zenrec.store import EventStore, ModelRegistry, RegistryError, UnknownVersionError


def fake_model(path: Path, name: str = "pop") -> Path:
    """A small real model bundle (the registry checks every version it adds as a server would load it)."""
    from zenrec.data.vocab import Vocabulary
    from zenrec.models.bundle import ModelBundle
    from zenrec.testing import checkerboard, small_model

    data = checkerboard(12)
    model = small_model(name).fit(data)
    users = Vocabulary([f"u{u}" for u in range(data.n_users)], "user")
    items = Vocabulary([f"i{i}" for i in range(data.n_items)], "item")
    return ModelBundle(model, users, items, data.binary).save(path)


@pytest.fixture
def reg(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def test_add_and_list_versions(reg, tmp_path):
    src = fake_model(tmp_path / "m1")
    v1 = reg.add(src, metrics={"ndcg@10": 0.31, "recall@10": 0.2}, note="first")
    v2 = reg.add(fake_model(tmp_path / "m2", "ease"))
    assert (v1, v2) == ("v0001", "v0002")
    infos = reg.versions()
    assert [i.id for i in infos] == ["v0001", "v0002"]
    assert infos[0].metrics == {"ndcg@10": 0.31, "recall@10": 0.2} and infos[0].note == "first"
    assert infos[1].model == "ease" and infos[1].metrics == {} and infos[1].created >= infos[0].created
    assert infos[0].path == reg.root / "versions" / "v0001"
    # copied, not linked: the source can go away
    (src / "manifest.json").unlink()
    assert (reg.path("v0001") / "manifest.json").is_file()
    assert [p.name for p in reg.versions_dir.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_add_refuses_what_is_not_a_model(reg, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        reg.add(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupted manifest"):
        reg.add(bad)
    with pytest.raises(ArtifactError, match="not a directory"):
        reg.add(tmp_path / "missing")
    with pytest.raises(ConfigError, match="metric 'ndcg'"):
        reg.add(fake_model(tmp_path / "m"), metrics={"ndcg": float("nan")})
    with pytest.raises(ConfigError, match="cannot register a int"):
        reg.add(3)  # type: ignore[arg-type]
    assert reg.versions() == []
    assert list(reg.versions_dir.iterdir()) == []


def test_add_a_trained_bundle_and_load_it_back(reg):
    import scipy.sparse as sp

    from zenrec.data.interactions import Interactions
    from zenrec.data.vocab import Vocabulary
    from zenrec.models import create_model
    from zenrec.models.bundle import ModelBundle

    users, items = Vocabulary(["a", "b", "c"], "user"), Vocabulary(["x", "y", "z", "w"], "item")
    inter = Interactions(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 3]), 3, 4)
    bundle = ModelBundle(create_model("pop").fit(inter), users, items, sp.csr_matrix(inter.binary))
    v = reg.add(bundle, metrics={"ndcg@10": 0.5})
    assert reg.info(v).model == "pop"
    loaded = ModelBundle.load(reg.path(v))
    assert loaded.recommend_users(["a"], k=2)["item_id"].tolist() == bundle.recommend_users(["a"], k=2)["item_id"].tolist()


def test_concurrent_adds_get_distinct_ids(reg, tmp_path):
    srcs = [fake_model(tmp_path / f"m{i}") for i in range(12)]
    got: list[str] = []
    lock = threading.Lock()

    def add(i: int) -> None:
        for src in srcs[i::4]:
            v = reg.add(src, note=src.name)
            with lock:
                got.append(v)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == [f"v{i:04d}" for i in range(1, 13)]
    assert sorted(i.note for i in reg.versions()) == sorted(s.name for s in srcs)


def test_promote_and_current(reg, tmp_path):
    assert reg.current() is None and reg.state_token() == "none"
    v1, v2 = (reg.add(fake_model(tmp_path / f"m{i}")) for i in range(2))
    cur = reg.promote(v1, reason="first model")
    assert (cur.version, cur.previous, cur.reason, cur.traffic) == (v1, None, "first model", None)
    assert cur.path == reg.path(v1)
    t1 = reg.state_token()
    assert t1 != "none" and reg.state_token() == t1  # stable while nothing changes
    reg.promote(v2, reason="better ndcg")
    cur = reg.current()
    assert (cur.version, cur.previous, cur.reason) == (v2, v1, "better ndcg")
    assert reg.state_token() != t1
    on_disk = json.loads(reg.current_file.read_text())
    assert set(on_disk) == {"version", "promoted_at", "reason", "previous", "traffic"}
    # rollback is a promotion of the previous version
    assert reg.promote(cur.previous).previous == v2


def test_unknown_versions(reg, tmp_path):
    reg.add(fake_model(tmp_path / "m"))
    with pytest.raises(UnknownVersionError, match=r"unknown model version 'v0042'.*known: v0001"):
        reg.promote("v0042")
    with pytest.raises(UnknownVersionError, match="not a model version id"):
        reg.path("../etc")
    with pytest.raises(UnknownVersionError):
        reg.info("v0002")
    assert reg.current() is None


def test_broken_files_are_clear_errors(reg, tmp_path):
    v = reg.add(fake_model(tmp_path / "m"))
    reg.promote(v)
    reg.current_file.write_text('{"version": 3}')
    with pytest.raises(RegistryError, match="CURRENT.json: corrupted"):
        reg.current()
    reg.current_file.write_text("")
    with pytest.raises(RegistryError, match="CURRENT.json: corrupted"):
        reg.current()
    reg.promote(v)  # repairs it
    assert reg.current().version == v
    (reg.path(v) / "registry.json").write_text("[1, 2")
    with pytest.raises(RegistryError, match="registry.json: corrupted"):
        reg.versions()
    (reg.path(v) / "registry.json").unlink()
    with pytest.raises(RegistryError, match="registry.json: missing"):
        reg.info(v)


def test_traffic_split(reg, tmp_path):
    v1, v2, v3 = (reg.add(fake_model(tmp_path / f"m{i}")) for i in range(3))
    with pytest.raises(RegistryError, match="promote one before"):
        reg.set_traffic({v1: 0.5, v2: 0.5})
    reg.promote(v1)
    for weights, err, msg in [
        ({v1: 0.5, "v0099": 0.5}, UnknownVersionError, "v0099"),
        ({v1: 0.5, v2: 0.4}, ConfigError, "sum to 1"),
        ({v1: 1.5, v2: -0.5}, ConfigError, "weight of 'v0002' must be a finite number >= 0"),
        ({v1: float("nan"), v2: 1.0}, ConfigError, "finite"),
    ]:
        with pytest.raises(err, match=msg):
            reg.set_traffic(weights)
    assert reg.current().traffic is None  # a refused split changes nothing
    token = reg.state_token()
    cur = reg.set_traffic({v2: 0.5, v3: 0.5})
    assert reg.state_token() != token
    assert cur.version == v1 and cur.traffic == {v2: 0.5, v3: 0.5}
    users = [f"user{i}" for i in range(2000)]
    picks = [cur.version_for(u) for u in users]
    assert picks == [reg.current().version_for(u) for u in users]  # stable per user
    share = Counter(picks)
    assert set(share) == {v2, v3} and 0.45 < share[v2] / len(users) < 0.55
    assert reg.set_traffic(None).traffic is None
    assert reg.current().version_for("anyone") == v1
    reg.set_traffic({v2: 1.0})
    assert reg.promote(v3).traffic is None  # a promotion ends the split


def test_promote_is_atomic_for_readers(reg, tmp_path):
    """A reader polling current() while 200 promotions happen never sees a partial or invalid pointer."""
    versions = [reg.add(fake_model(tmp_path / f"m{i}")) for i in range(3)]
    reg.promote(versions[0])
    stop = threading.Event()
    seen: Counter[str] = Counter()
    problems: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                cur = reg.current()
                if cur is None or cur.version not in versions:
                    problems.append(f"bad pointer {cur!r}")
                else:
                    seen[cur.version] += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted on
                problems.append(repr(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            reg.promote(versions[i % 3], reason=f"round {i}")
    finally:
        stop.set()
        reader.join(30)
    assert problems == []
    assert sum(seen.values()) > 0
    assert reg.current().reason == "round 199"


def test_events_url_is_beside_the_registry(reg):
    url = reg.events_url()
    assert url.startswith("sqlite:///") and url.endswith("/registry/events.db")
    with EventStore(url) as store:
        assert store.count() == 0
    assert (reg.root / "events.db").is_file()
