"""One id rule for ingest and the events API (zenrec.data.ids): surrounding spaces are trimmed on both
paths, and an id with a control character (NUL...) is refused on both, naming the field."""

from __future__ import annotations

import pandas as pd
import pytest

from zenrec.data import ColumnMap, Dataset
from zenrec.data.ids import MAX_ID_LENGTH, normalize_id, normalize_ids
from zenrec.errors import DataError
from zenrec.store.events import Event, EventStore

KEY = "test-key"
AUTH = {"X-API-Key": KEY}

TRICKY = [" u1 ", "\tu1\r\n", "u1", "\u00a0u1\u3000", "a b", "a\x00b", "a\tb", "a\nb", "x\x7f", "\x85u\x85", "u\x9f",
          "", "   ", "\x1cu", "caf\u00e9", "x" * MAX_ID_LENGTH, " " + "x" * MAX_ID_LENGTH + " ", "x" * (MAX_ID_LENGTH + 1)]


def _rule(text: str) -> str | None:
    try:
        return normalize_id(text)
    except ValueError:
        return None


def test_the_vectorised_rule_agrees_with_the_scalar_rule():
    import pyarrow as pa

    stripped, bad = normalize_ids(pa.array(TRICKY))
    vectorised = [None if b or s == "" else s for s, b in zip(stripped.to_pylist(), bad, strict=True)]
    assert vectorised == [_rule(t) for t in TRICKY]


def test_ingest_and_the_event_api_give_an_id_the_same_fate():
    df = pd.DataFrame({"user_id": TRICKY, "item_id": [f"i{j}" for j in range(len(TRICKY))]})
    ds = Dataset.from_frame(df, ColumnMap())
    ingested = set(ds.users.all_ids.tolist())
    for text in TRICKY:
        try:
            api = Event(text, "i").user
        except DataError as exc:
            assert exc.column == "user"
            api = None
        assert api == _rule(text), repr(text)
        assert (api in ingested) == (api is not None), repr(text)


@pytest.fixture()
def client(model_dirs, serve_app, tmp_path):
    with serve_app(model_dirs("ease"), tmp_path / "events.db", api_key=KEY) as c:
        yield c


def test_http_events_trim_ids_and_refuse_nul_naming_the_field(client, tmp_path):
    r = client.post("/events", json={"user": "  u-new ", "item": " 50 "}, headers=AUTH)
    assert r.status_code == 200, r.text
    with EventStore(f"sqlite:///{tmp_path / 'events.db'}") as store:
        stored = [(e.user, e.item) for e in store.events_since(0)]
    assert stored == [("u-new", "50")]
    for field in ("user", "item"):
        body = {"user": "u", "item": "50", field: "a\x00b"}
        r = client.post("/events", json=body, headers=AUTH)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_event" and f"'{field}'" in error["message"] and "NUL" in error["message"]


def test_a_read_finds_the_user_an_event_stored_under_the_trimmed_id(client):
    assert client.post("/events", json={"user": " u-read ", "item": "50"}, headers=AUTH).status_code == 200
    for spelled in ("u-read", " u-read ", "%20u-read%20"):
        body = client.get(f"/users/{spelled}/recommendations", params={"k": 5}).json()
        assert body["user"] == "u-read" and body["fallback"] is None and 50 not in [x["item"] for x in body["items"]]
