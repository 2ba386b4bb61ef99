"""A corrupt model version never takes a server down: a hot swap to it is refused while the old version keeps
answering, and a server started with it promoted serves the last good version and says so."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from zenrec.errors import ArtifactError
from zenrec.serve.app import create_app
from zenrec.store.registry import ModelRegistry


def _corrupt(version_dir: Path) -> None:
    """Out-of-range CSR indices in the stored histories (once a segfault on the next request), else NaN factors."""
    with np.load(version_dir / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    if "model.hist_indices" in arrays:
        arrays["model.hist_indices"][:5] = 10**6
    else:
        arrays["model.item_factors"][3] = np.nan
    (version_dir / "arrays.npz").unlink()
    with open(version_dir / "arrays.npz", "wb") as fh:
        np.savez(fh, **arrays)


@pytest.fixture()
def registry(tmp_path, model_dirs) -> tuple[ModelRegistry, str, str]:
    reg = ModelRegistry(tmp_path / "registry")
    good = reg.add(model_dirs("als"), note="good")
    reg.promote(good, "first")
    bad = reg.add(model_dirs("ease"), note="corrupted on disk after it was added")
    _corrupt(reg.path(bad))
    return reg, good, bad


def test_registry_add_refuses_the_corrupt_directory(registry, tmp_path):
    reg, _, bad = registry
    copy = tmp_path / "copy"
    shutil.copytree(reg.path(bad), copy)
    (copy / "registry.json").unlink()
    before = [v.id for v in reg.versions()]
    with pytest.raises(ArtifactError, match=r"hist_indices/hist_indptr do not form a 943×1682 matrix"):
        reg.add(copy)
    assert [v.id for v in reg.versions()] == before
    assert not [p for p in reg.versions_dir.iterdir() if p.name.startswith(".")]


def test_hot_swap_to_a_corrupt_version_keeps_the_old_one(registry, run_server):
    reg, good, bad = registry
    app = create_app(reg.root, poll_seconds=0.05)
    with run_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        before = c.get("/users/196/recommendations", params={"k": 10}).json()
        assert before["model_version"] == good
        reg.promote(bad, "a corrupt version")
        deadline = time.monotonic() + 20
        while c.get("/healthz").json()["problem"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        health = c.get("/healthz").json()
        assert health["status"] == "degraded" and health["model_version"] == good
        assert f"registry/versions/{bad}/arrays.npz" in health["problem"] and "do not form" in health["problem"]
        for user in ("196", "1", "943", "a-new-user"):  # the process still answers, from the old version
            r = c.get(f"/users/{user}/recommendations", params={"k": 10})
            assert r.status_code == 200 and r.json()["model_version"] == good and len(r.json()["items"]) == 10
        assert c.get("/users/196/recommendations", params={"k": 10}).json()["items"] == before["items"]
        # a good version promoted next is swapped in and clears the problem
        fixed = reg.add(reg.path(good), note="a good one again")
        reg.promote(fixed, "fixed")
        deadline = time.monotonic() + 20
        while c.get("/healthz").json()["model_version"] != fixed and time.monotonic() < deadline:
            time.sleep(0.05)
        health = c.get("/healthz").json()
        assert health["model_version"] == fixed and health["status"] == "ok" and health["problem"] is None


def test_start_with_a_corrupt_promoted_version_serves_the_last_good_one(registry, run_server, caplog):
    reg, good, bad = registry
    reg.promote(bad, "a corrupt version")
    assert reg.current().previous == good
    with caplog.at_level("ERROR", logger="zenrec"), run_server(create_app(reg.root, poll_seconds=0)) as url:
        health = httpx.get(f"{url}/healthz").json()
        assert health["model_version"] == good and health["status"] == "degraded"
        assert health["problem"].startswith(f"the promoted version {bad} cannot be served")
        assert health["problem"].endswith(f"serving {good}, the last good version")
        r = httpx.get(f"{url}/users/196/recommendations", params={"k": 5})
        assert r.status_code == 200 and r.json()["model_version"] == good and len(r.json()["items"]) == 5
    assert any(f"serving {good}, the last good version" in m for m in caplog.messages)


def test_start_refuses_when_no_version_loads(registry, tmp_path):
    from fastapi.testclient import TestClient

    reg, good, bad = registry
    _corrupt(reg.path(good))
    reg.promote(bad, "a corrupt version")
    with pytest.raises(ArtifactError, match=f"versions/{bad}/arrays.npz"), TestClient(create_app(reg.root)):
        pass


def test_cli_serve_of_a_corrupt_model_exits_2_with_one_line(model_dirs, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    bad = tmp_path / "bad"
    shutil.copytree(model_dirs("ease"), bad)
    _corrupt(bad)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "zenrec.cli", "serve", str(bad), "--port", str(port),
                        "--store", f"sqlite:///{tmp_path / 'e.db'}"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert f"cannot start: {bad}/arrays.npz: " in out and "do not form a 943×1682 matrix" in out
