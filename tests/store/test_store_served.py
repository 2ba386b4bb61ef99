"""The served-lists log: written off the request path, read back whole, erased with the user."""

from __future__ import annotations

from zenrec.store.events import Event, EventStore
from zenrec.store.served import SERVED_COLUMNS, ServedList, ServedLog, served_frame


def test_lists_round_trip_and_are_erased_with_their_user(store_url):
    with EventStore(store_url) as store:
        log = ServedLog(store, max_wait_s=0.01)
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
