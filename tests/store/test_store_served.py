"""The served-lists log: written off the request path, read back whole, erased with the user."""

from __future__ import annotations

from zenrec.store.events import Event, EventStore
from zenrec.store.served import SERVED_COLUMNS, ServedList, ServedLog, served_frame


def test_lists_round_trip_and_are_erased_with_their_user(store_url):
    with EventStore(store_url) as store:
        log = ServedLog(store, max_wait_s=0.01, max_age_s=None)  # lists of 1970: no age bound here
        for n in range(120):
            user = None if n % 10 == 0 else f"u{n % 3}"
            log.log(ServedList(f"l{n}", user, "v0002" if n % 2 else "v0001", "user", [n, "x", 7], 100,
                               float(n), "popular" if n == 5 else None, created=1000.0 + n))
        assert log.flush(10)
        log.close()
        assert (log.written, log.dropped, log.failed) == (120, 0, 0)
        df = served_frame(store)
        assert list(df.columns) == list(SERVED_COLUMNS) and len(df) == 120
        assert df["list_id"].tolist() == [f"l{n}" for n in range(120)]  # by time served
        first = df.iloc[5]
        assert first["items"] == ["5", "x", "7"] and first["fallback"] == "popular"
        assert first["model_version"] == "v0002" and first["latency_ms"] == 5.0 and first["catalogue"] == 100
        assert df["user"].isna().sum() == 12
        assert len(served_frame(store, since_ts=1100, until_ts=1110)) == 10

        store.append([Event("u1", "i1")])
        assert store.delete_user("u1") == 1
        left = served_frame(store)
        assert "u1" not in set(left["user"].dropna()) and len(left) == 120 - 36


def test_the_log_keeps_to_its_row_and_age_bounds(store_url):
    """Reads add a row each; the log prunes to the newest max_rows and drops lists older than max_age_s."""
    import time

    import pytest

    from zenrec.errors import ConfigError

    with EventStore(store_url) as store:
        now = time.time()
        log = ServedLog(store, max_wait_s=0.01, max_rows=50, max_age_s=3600, prune_every_s=0.0)
        for n in range(200):
            log.log(ServedList(f"l{n}", f"u{n}", "v1", "user", [n], 10, 1.0, created=now - 200 + n))
        log.log(ServedList("old", "u", "v1", "user", [1], 10, 1.0, created=now - 7200))
        assert log.flush(10)
        log.prune()
        log.close()
        df = served_frame(store)
        assert len(df) == 50 and "old" not in set(df["list_id"])
        assert df["list_id"].tolist() == [f"l{n}" for n in range(150, 200)]  # the newest ones stay
        assert log.pruned == 151
        with pytest.raises(ConfigError, match="'max_rows' parameter of the served-list log must be positive"):
            ServedLog(store, max_rows=0)
