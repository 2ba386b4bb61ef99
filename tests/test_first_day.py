"""A user's first day, end to end through the real CLI and a real server: a shop log in its own words
(buy / basket / fav) with an item table → ingest with aliases → tune on purchases with --save-best → serve the
saved model → a `buy` posted with its list id → the online report counts it as a conversion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ZENREC = [sys.executable, "-m", "zenrec.cli"]
CATEGORIES = ["shoes", "books", "garden", "toys", "kitchen"]


def shop_log(path: Path, seed: int = 7) -> None:
    """300 customers who each favour one category; 150 products in 5 categories; four kinds of events."""
    rng = np.random.default_rng(seed)
    n_items, n_users = 150, 300
    cat = np.arange(n_items) % len(CATEGORIES)
    pd.DataFrame({"sku": [f"SKU-{i:04d}" for i in range(n_items)],
                  "title": [f"{CATEGORIES[c]} item {i}" for i, c in enumerate(cat)],
                  "category": [CATEGORIES[c] for c in cat]}).to_csv(path / "items.csv", index=False)
    rows = []
    for u in range(n_users):
        fav = u % len(CATEGORIES)
        own = np.flatnonzero(cat == fav)
        for k in range(int(rng.integers(8, 20))):
            item = rng.choice(own) if rng.random() < 0.85 else rng.integers(n_items)
            action = rng.choice(["view", "basket", "fav", "buy"], p=[0.5, 0.2, 0.15, 0.15])
            rows.append((f"cust-{u}", f"SKU-{item:04d}", action, 1_750_000_000 + 3600 * (u + k * 400)))
    pd.DataFrame(rows, columns=["customer", "sku", "action", "ts"]).to_csv(path / "log.csv", index=False)


def zenrec(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([*ZENREC, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "COLUMNS": "100"})
    assert r.returncode == 0, f"zenrec {' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}"
    return r


def test_a_shop_log_from_ingest_to_a_counted_conversion(tmp_path, serve_process):
    import httpx

    shop_log(tmp_path)
    r = zenrec("ingest", "log.csv", "--user", "customer", "--item", "sku", "--time", "ts", "--event", "action",
               "--event-alias", "buy=purchase", "--event-alias", "basket=cart", "--event-alias", "fav=favorite",
               "--items", "items.csv", "--item-key", "sku", "--item-text", "title", "--item-cat", "category", "-o", "data",
               cwd=tmp_path)
    assert "unknown_event" not in r.stdout, r.stdout
    assert "events view, favorite, cart, purchase" in r.stdout.replace("\n", " "), r.stdout

    r = zenrec("tune", "data", "--models", "pop,itemknn,ease", "--trials", "3", "--target-event", "purchase",
               "--json", "tune.json", "--save-best", "best", cwd=tmp_path)
    tuning = json.loads((tmp_path / "tune.json").read_text())["tuning"]
    winner = max(tuning, key=lambda lb: tuning[lb]["best_value"])
    assert winner != "pop" and tuning[winner]["best_value"] > tuning["pop"]["best_value"]
    manifest = json.loads((tmp_path / "best" / "manifest.json").read_text())
    assert manifest["tuning"]["label"] == winner and manifest["events"]["aliases"]["buy"] == "purchase"
    assert "zenrec train data" in r.stdout

    server = serve_process("best", None, tmp_path / "server.log", "--host", "127.0.0.1", "--data", "data",
                           cwd=tmp_path)
    url = server.url
    try:
        server.wait_healthy(60)
        lists = [httpx.get(f"{url}/users/cust-{u}/recommendations", params={"k": 5}).json() for u in range(4)]
        assert all(len(body["items"]) == 5 and body["list_id"] for body in lists), lists
        first = lists[0]
        buy = {"user": "cust-0", "item": first["items"][0]["item"], "type": "buy", "list_id": first["list_id"]}
        r2 = httpx.post(f"{url}/events", json=buy)
        assert r2.status_code == 200, r2.text
        wrong = httpx.post(f"{url}/events", json={**buy, "type": "wishlist"})
        assert wrong.status_code == 422 and "buy→purchase" in wrong.json()["error"]["message"]
    finally:
        server.stop()  # SIGTERM: a clean stop flushes the served-list log

    r = zenrec("report", "online", "best", "--json", "online.json", cwd=tmp_path)
    (row,) = json.loads((tmp_path / "online.json").read_text())["rows"]
    assert row["lists"] == 4 and row["events_attributed"] == 1
    assert row["conversion"] == pytest.approx(0.25) and row["click_through"] == pytest.approx(0.25)
