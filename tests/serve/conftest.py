"""Serving fixtures: small models trained once per session on bundled ml-100k, apps and a real server
(in a thread, or ``zenrec serve`` as a child process), and a shared event store on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from zenrec.models.base import TrainOptions

#: users (by index) the small sequence model trains on: a third of ml-100k, for speed
SEQ_USERS = 300
SASREC = {"epochs": 3, "max_len": 20, "factors": 32, "batch_size": 256, "dropout": 0.1, "lr": 3e-3}


def _torch_one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dirs(ml100k, tmp_path_factory) -> Callable[[str], Path]:
    """``model_dirs(name)``: a bundle directory of a small model (ease, als, sasrec, pop) trained once."""
    from zenrec.models.bundle import ModelBundle, train_bundle
    from zenrec.models.registry import create_model

    _torch_one_thread()
    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("models")

    def get(name: str) -> Path:
        if name not in made:
            opts = TrainOptions(threads=1)
            if name == "sasrec":
                inter = ml100k.interactions
                part = inter.subset(inter.user < SEQ_USERS)
                model = create_model("sasrec", **SASREC).fit(part, None, opts)
                titles = ml100k.item_table["title"].astype(str).to_numpy()
                bundle = ModelBundle(model, ml100k.users, ml100k.items, part.binary, titles)
            else:
                params = {"factors": 32, "iterations": 8} if name == "als" else {}
                bundle = train_bundle(ml100k, name, params, opts)
            made[name] = bundle.save(root / name)
        return made[name]

    return get


@contextmanager
def app_client(model_dir: Path, store: Path, **kwargs: Any) -> Iterator[Any]:
    """A started app (lifespan run) behind a TestClient, with its event store in the file ``store``."""
    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app

    app = create_app(model_dir, store_url=f"sqlite:///{store}", **kwargs)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` in a real uvicorn server on a loopback port (a thread); yields its base URL."""
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not come up on loopback")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="session")
def serve_app() -> Callable[..., Any]:
    """``serve_app(model_dir, store_file, **create_app_kwargs)``: a context manager yielding a TestClient."""
    return app_client


@pytest.fixture(scope="session")
def run_server() -> Callable[..., Any]:
    """``run_server(app)``: a context manager running ``app`` in uvicorn on loopback, yielding its URL."""
    return live_server


def postgres_base_url() -> str:
    """The test PostgreSQL server's URL (``ZENREC_TEST_POSTGRES_URL``, set by ``scripts/with_postgres.sh``), or
    skip; with ``ZENREC_REQUIRE_POSTGRES=1`` a missing server fails instead (as in tests/store)."""
    url = os.environ.get("ZENREC_TEST_POSTGRES_URL", "")
    if not url:
        if os.environ.get("ZENREC_REQUIRE_POSTGRES") == "1":
            pytest.fail("ZENREC_REQUIRE_POSTGRES=1 but ZENREC_TEST_POSTGRES_URL is unset: run the tests through "
                        "scripts/with_postgres.sh (as `make test` does)", pytrace=False)
        pytest.skip("PostgreSQL serving tests need ZENREC_TEST_POSTGRES_URL (run through scripts/with_postgres.sh)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_store_url(request, tmp_path) -> Iterator[str]:
    """An empty event store several servers can share: a SQLite file, or a fresh schema of the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/shared/events.db"
        return
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    base = postgres_base_url()
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    schema = f"zs_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        admin.dispose()
