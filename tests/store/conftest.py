"""Store fixtures: every event-store test runs on SQLite and on a real PostgreSQL.

The PostgreSQL URL comes from ``ZENREC_TEST_POSTGRES_URL`` (``scripts/with_postgres.sh``
starts a throwaway server and sets it; ``make test`` runs pytest through it).
Without it the PostgreSQL cases skip, unless ``ZENREC_REQUIRE_POSTGRES=1``
(set by ``make test`` and so by CI), where they fail instead.  Each test gets
its own PostgreSQL schema, so parallel workers never share a table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

BACKENDS = ["sqlite", "postgresql"]


def postgres_base_url() -> str:
    """The test server's URL, or skip (fail when PostgreSQL is required)."""
    url = os.environ.get("ZENREC_TEST_POSTGRES_URL", "")
    if not url:
        if os.environ.get("ZENREC_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "ZENREC_REQUIRE_POSTGRES=1 but ZENREC_TEST_POSTGRES_URL is unset: run the tests through "
                "scripts/with_postgres.sh (as `make test` does)",
                pytrace=False,
            )
        pytest.skip("PostgreSQL store tests need ZENREC_TEST_POSTGRES_URL (run through scripts/with_postgres.sh)")
    return url


@pytest.fixture(scope="session")
def _pg_admin():
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_base_url(), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> Iterator[str]:
    """A URL to an empty event store on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store/events.db"
        return
    from sqlalchemy.engine import make_url

    admin = request.getfixturevalue("_pg_admin")
    schema = f"zt_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(postgres_base_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url):
    """An open, empty event store on each backend."""
    from zenrec.store import EventStore

    s = EventStore(store_url)
    yield s
    s.close()
