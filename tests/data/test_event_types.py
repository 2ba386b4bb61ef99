"""A log's own event names: aliases declared once at ingest map them to zenrec's types (weights included),
unknown names are listed with their counts, and more than 1% of such rows fails the ingest unless allowed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.data import CleaningConfig, ColumnMap, Dataset
from zenrec.errors import DataError

COLS = ColumnMap(user="u", item="i", event="e")


def _log(events: list[str]) -> pd.DataFrame:
    n = len(events)
    return pd.DataFrame({"u": [f"c{k % 3}" for k in range(n)], "i": [f"p{k}" for k in range(n)], "e": events})


def test_aliases_map_names_to_types_and_their_weights():
    events = ["buy", "Basket", "FAV", "view", "favourite", " buy "]
    cfg = CleaningConfig(event_aliases={"buy": "purchase", "basket": "cart", "Fav": "favorite"})
    ds = Dataset.from_frame(_log(events), COLS, cfg)
    inter = ds.interactions
    assert set(inter.event_names) == {"purchase", "cart", "favorite", "view"}
    by_item = {ds.items.ids([i])[0]: (inter.event_names[e], w) for i, e, w in zip(inter.item, inter.event, inter.weight,
                                                                                   strict=True)}
    # hand-written: each row's type and the default weight of that type
    assert by_item == {"p0": ("purchase", 8.0), "p1": ("cart", 4.0), "p2": ("favorite", 3.0), "p3": ("view", 1.0),
                       "p4": ("favorite", 3.0), "p5": ("purchase", 8.0)}
    assert ds.report.rows_out == 6 and not ds.report.dropped


def test_unknown_names_over_the_share_fail_listing_each_with_its_count():
    events = ["buy"] * 5 + ["wishlist"] * 2 + ["view"] * 93
    with pytest.raises(DataError) as err:
        Dataset.from_frame(_log(events), COLS, CleaningConfig())
    msg = str(err.value)
    assert "7 of 100 rows (7.0%)" in msg and "'buy' (5 rows), 'wishlist' (2 rows)" in msg
    assert "--event-alias buy=TYPE" in msg and "--allow-drops" in msg


def test_unknown_names_within_the_share_are_dropped_and_named():
    events = ["wishlist"] + ["view"] * 199  # 0.5% <= 1%
    ds = Dataset.from_frame(_log(events), COLS, CleaningConfig())
    assert ds.report.dropped == {"unknown_event": 1} and ds.report.rows_out == 199
    assert any("'wishlist' (1 rows)" in n for n in ds.report.notes)
    allowed = Dataset.from_frame(_log(["buy"] * 50 + ["view"] * 50), COLS, CleaningConfig(max_unknown_event_share=1.0))
    assert allowed.report.dropped == {"unknown_event": 50}


@pytest.mark.parametrize("aliases, words", [
    ({"buy": "order"}, "'order' is not an event type"),
    ({"view": "purchase"}, "'view' is itself an event type"),
    ({" ": "purchase"}, "needs a name"),
])
def test_bad_aliases_are_refused(aliases, words):
    with pytest.raises(ValueError, match=words):
        CleaningConfig(event_aliases=aliases)


def test_dataset_keeps_its_aliases_and_weights(tmp_path):
    cfg = CleaningConfig(event_aliases={"buy": "purchase"}, event_weights={"view": 1.0, "purchase": 5.0})
    Dataset.from_frame(_log(["buy", "view"]), COLS, cfg).save(tmp_path / "d")
    back = Dataset.load(tmp_path / "d")
    assert back.event_aliases == {"buy": "purchase"} and back.event_weights == {"view": 1.0, "purchase": 5.0}
    np.testing.assert_allclose(np.sort(back.interactions.weight), [1.0, 5.0])
    # a dataset written before aliases existed loads with the defaults it was cleaned with
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    del m["events"]
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(m))
    old = Dataset.load(tmp_path / "d")
    assert old.event_aliases == {} and old.event_weights["purchase"] == 8.0


def test_cli_ingest_with_aliases_and_allow_drops(tmp_path):
    log = tmp_path / "shop.csv"
    _log(["buy"] * 10 + ["basket"] * 10 + ["fav"] * 10 + ["wishlist"] * 5 + ["view"] * 65).to_csv(log, index=False)
    base = ["ingest", str(log), "--user", "u", "--item", "i", "--event", "e"]
    r = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "a")])
    assert r.exit_code == 2 and "Traceback" not in r.output and not (tmp_path / "a").exists()
    assert "35 of 100 rows" in " ".join(r.output.split()) and "'wishlist' (5 rows)" in " ".join(r.output.split())
    aliases = ["--event-alias", "buy=purchase", "--event-alias", "basket=cart", "--event-alias", "fav=favorite"]
    r = CliRunner().invoke(app, [*base, *aliases, "-o", str(tmp_path / "b")])
    assert r.exit_code == 2 and "'wishlist' (5 rows)" in " ".join(r.output.split())
    r = CliRunner().invoke(app, [*base, *aliases, "--allow-drops", "-o", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    ds = Dataset.load(tmp_path / "c")
    assert ds.report.dropped == {"unknown_event": 5} and len(ds.interactions) == 95
    assert ds.event_aliases == {"buy": "purchase", "basket": "cart", "fav": "favorite"}
    r = CliRunner().invoke(app, [*base, "--event-alias", "buy", "-o", str(tmp_path / "d")])
    assert r.exit_code == 2 and "--event-alias expects NAME=TYPE" in r.output
