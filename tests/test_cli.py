"""The command line: the documented flow works, and bad input exits 2 with one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def events_csv(tmp_path):
    """A small shop log: 30 users, 12 products, four event types, one junk row."""
    rows = []
    for u in range(30):
        for j in range(6):
            item = (u + j * (1 + u % 3)) % 12
            rows.append((f"u{u}", f"p{item}", 1_700_000_000 + u * 100 + j, ["view", "click", "cart", "purchase"][j % 4]))
    df = pd.DataFrame(rows, columns=["user_id", "product_id", "ts", "type"])
    df["ts"] = df["ts"].astype(str)
    df.loc[len(df)] = ["u1", "p1", "not-a-time", "view"]
    path = tmp_path / "events.csv"
    df.to_csv(path, index=False)
    return path


def test_ingest_train_recommend_flow(events_csv, tmp_path):
    data, model, recs = tmp_path / "data", tmp_path / "m", tmp_path / "recs.csv"
    r = run("ingest", events_csv, "--user", "user_id", "--item", "product_id", "--time", "ts", "--event", "type", "-o", data)
    assert r.exit_code == 0, r.output
    assert "malformed_timestamp" in r.output and "180" in r.output  # 181 read, the junk row dropped
    r = run("train", data, "--model", "ease", "--param", "reg=10", "-o", model)
    assert r.exit_code == 0, r.output
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["model"] == "ease" and manifest["params"]["reg"] == 10
    r = run("recommend", model, "--user", "u3", "-k", "5")
    assert r.exit_code == 0, r.output
    assert "top-5 for user u3" in r.output
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu1\nu2\nnobody\n")
    r = run("recommend", model, "--users", users, "-k", "3", "-o", recs)
    assert r.exit_code == 0, r.output
    out = pd.read_csv(recs)
    assert list(out.columns[:4]) == ["user_id", "rank", "item_id", "score"]
    assert set(out["user_id"]) == {"u1", "u2", "nobody"}
    assert (out.loc[out.user_id == "nobody", "fallback"] == "popular").all()
    # a user's seen products are never recommended back
    seen = pd.read_csv(events_csv).query("user_id == 'u1'")["product_id"]
    assert not set(out.loc[out.user_id == "u1", "item_id"]) & set(seen)
    # a plain list of ids (.txt) has no header: its first line is a user too
    listed = tmp_path / "ids.txt"
    listed.write_text("u2\n u1 \n\nnobody\n")
    r = run("recommend", model, "--users", listed, "-k", "3", "-o", recs)
    assert r.exit_code == 0, r.output
    assert pd.read_csv(recs)["user_id"].drop_duplicates().tolist() == ["u2", "u1", "nobody"]
    # on the terminal a list of users is one table with a user column; the unknown one is marked on its rows
    r = run("recommend", model, "--users", listed, "-k", "3")
    assert r.exit_code == 0, r.output
    assert "top-3 for 3 users (1 unknown: popular items)" in r.output
    rows = [line.split("│")[1].strip() for line in r.output.splitlines() if line.count("│") > 2]
    assert rows == ["u2"] * 3 + ["u1"] * 3 + ["nobody (unknown)"] * 3
    (tmp_path / "empty.txt").write_text("\n \n")
    r = run("recommend", model, "--users", tmp_path / "empty.txt")
    assert r.exit_code == 2 and "no user ids (expected one id per line)" in r.output


def test_compare_writes_json_leaderboard(tmp_path, ml100k):
    ml100k.save(tmp_path / "data")
    r = run("compare", tmp_path / "data", "--models", "pop,ease", "-k", "10", "--json", tmp_path / "lb.json")
    assert r.exit_code == 0, r.output
    lb = json.loads((tmp_path / "lb.json").read_text())
    ndcg = {row["label"]: row["test"]["ndcg@10"] for row in lb["rows"]}
    assert ndcg["ease"] > 2 * ndcg["pop"] > 0.2


def test_split_exports_files_peers_can_read(tmp_path, ml100k):
    ml100k.save(tmp_path / "data")
    r = run("split", tmp_path / "data", "-o", tmp_path / "split")
    assert r.exit_code == 0, r.output
    sizes = {p: len(pd.read_csv(tmp_path / "split" / f"ml-100k.{p}.inter", sep="\t")) for p in ("train", "valid", "test")}
    assert sum(sizes.values()) == 100_000 and sizes["train"] > 75_000


def _bad(result, *needles):
    assert result.exit_code == 2, result.output
    text = result.output
    assert "Traceback" not in text
    assert "error:" in text
    for n in needles:
        assert n in text, text


# every other bad input of `zenrec ingest` (empty, binary, not UTF-8, ragged, -o paths...) is a case of the
# hostile-file corpus, tests/data/test_hostile_files.py


def test_missing_column_names_it(events_csv, tmp_path):
    _bad(run("ingest", events_csv, "--user", "customer", "--item", "product_id", "-o", tmp_path / "d"),
         "missing user column 'customer'", "events.csv")
    assert not (tmp_path / "d").exists()


def test_strict_timestamp_names_line(events_csv, tmp_path):
    _bad(run("ingest", events_csv, "--item", "product_id", "--time", "ts", "--strict", "-o", tmp_path / "d"),
         "line 182", "'ts'", "not-a-time")


def test_unknown_model_name(tmp_path, ml100k):
    _bad(run("train", tmp_path, "--model", "easy", "-o", tmp_path / "m"), "unknown model 'easy'", "ease")


def test_negative_k(tmp_path):
    _bad(run("recommend", tmp_path, "--user", "1", "-k", "-3"), "'-k' parameter must be a positive integer")


def test_bad_param(tmp_path, ml100k):
    ml100k.save(tmp_path / "data")
    _bad(run("train", tmp_path / "data", "--model", "ease", "--param", "reg=-5", "-o", tmp_path / "m"),
         "'reg' parameter of EASE")
    assert not (tmp_path / "m").exists()


def test_truncated_model(tmp_path, events_csv):
    run("ingest", events_csv, "--item", "product_id", "-o", tmp_path / "d")
    run("train", tmp_path / "d", "--model", "pop", "-o", tmp_path / "m")
    npz = tmp_path / "m" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    _bad(run("recommend", tmp_path / "m", "--user", "u1"), "arrays.npz: corrupted or truncated")


def test_future_model_version(tmp_path, events_csv):
    run("ingest", events_csv, "--item", "product_id", "-o", tmp_path / "d")
    run("train", tmp_path / "d", "--model", "pop", "-o", tmp_path / "m")
    mf = tmp_path / "m" / "manifest.json"
    m = json.loads(mf.read_text())
    m["format_version"] = 7
    mf.write_text(json.dumps(m))
    _bad(run("recommend", tmp_path / "m", "--user", "u1"), "format 7", "Upgrade zenrec")


def test_tune_gives_each_model_the_same_budget(tmp_path, events_csv):
    run("ingest", events_csv, "--item", "product_id", "--time", "ts", "-o", tmp_path / "d")
    r = run("tune", tmp_path / "d", "--models", "pop,ease", "--trials", "3", "--json", tmp_path / "t.json")
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "t.json").read_text())
    assert {k: v["n_trials"] for k, v in result["tuning"].items()} == {"pop": 3, "ease": 3}
    ease = result["tuning"]["ease"]
    assert ease["best_value"] >= ease["default_value"]


@pytest.fixture()
def shop_data(events_csv, tmp_path):
    """The small shop log in its own words (``buy`` for purchase), ingested with that alias declared."""
    df = pd.read_csv(events_csv, dtype=str)
    df["type"] = df["type"].replace({"purchase": "buy"})
    df.to_csv(tmp_path / "shop.csv", index=False)
    r = run("ingest", tmp_path / "shop.csv", "--item", "product_id", "--time", "ts", "--event", "type",
            "--event-alias", "buy=purchase", "-o", tmp_path / "shop")
    assert r.exit_code == 0, r.output
    return tmp_path / "shop"


def test_target_event_evaluates_purchases_only(tmp_path, shop_data):
    r = run("compare", shop_data, "--models", "pop", "-k", "10", "--target-event", "buy", "--json", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    assert "targets: purchase" in r.output
    board = json.loads((tmp_path / "b.json").read_text())
    assert board["target_events"] == ["purchase"]
    t = board["rows"][0]["targets"]["test"]
    assert t["other_type"] > 0 and t["kept"] > 0 and t["held_out"] == t["other_type"] + t["seen"] + t["kept"]
    everything = run("compare", shop_data, "--models", "pop", "-k", "10", "--json", tmp_path / "all.json")
    assert everything.exit_code == 0, everything.output
    assert json.loads((tmp_path / "all.json").read_text())["rows"][0]["targets"]["test"]["other_type"] == 0
    # the split files carry event types and the chosen targets; compare --split evaluates the same way
    r = run("split", shop_data, "-o", tmp_path / "split", "--target-event", "purchase")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "split" / "shop.targets.json").exists()
    r = run("compare", shop_data, "--split", tmp_path / "split", "--models", "pop", "-k", "10",
            "--json", tmp_path / "s.json")
    assert r.exit_code == 0, r.output
    from_files = json.loads((tmp_path / "s.json").read_text())
    assert from_files["target_events"] == ["purchase"]
    assert from_files["rows"][0]["test"] == pytest.approx(board["rows"][0]["test"])
    r = run("tune", shop_data, "--models", "pop", "--trials", "1", "--target-event", "purchase",
            "--json", tmp_path / "t.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "t.json").read_text())["leaderboard"]["target_events"] == ["purchase"]


@pytest.mark.parametrize("command", [["compare", "--models", "pop"], ["tune", "--models", "pop", "--trials", "1"],
                                     ["split", "-o", "SPLIT"]])
def test_a_bad_target_event_is_one_line_exit_2(tmp_path, shop_data, ml100k, command):
    args = [a if a != "SPLIT" else tmp_path / "split" for a in command]
    _bad(run(args[0], shop_data, *args[1:], "--target-event", "wishlist"),
         "target event type 'wishlist' is not in the data; available: view, click, cart, purchase (or buy)")
    assert not (tmp_path / "split").exists()
    _bad(run(args[0], shop_data, *args[1:], "--target-event", "purchase,favorite"),
         "'favorite' is not in the data (a known type, but no row of the data has it)")
    ml100k.save(tmp_path / "ml")
    _bad(run(args[0], tmp_path / "ml", *args[1:], "--target-event", "purchase"), "this data has no event types")


def test_sampled_mode_is_labelled(tmp_path, ml100k):
    ml100k.save(tmp_path / "data")
    r = run("compare", tmp_path / "data", "--models", "pop", "-k", "10", "--sampled", "100")
    assert r.exit_code == 0, r.output
    assert "SAMPLED" in r.output


def test_serve_passes_the_served_log_options_to_the_app(tmp_path, monkeypatch):
    """`zenrec serve`'s served-list flags reach create_app (0 lifts a bound); a negative bound exits 2."""
    import zenrec.serve.app
    from zenrec.errors import ConfigError

    seen: dict = {}

    def create_app(model_dir, **kw):  # records the options, then stops the command before it serves
        seen.clear()
        seen.update(kw)
        raise ConfigError("options recorded")

    monkeypatch.setattr(zenrec.serve.app, "create_app", create_app)

    def serve(*args: str) -> dict:
        r = runner.invoke(app, ["serve", str(tmp_path), *args])
        assert r.exit_code == 2 and "options recorded" in r.output, r.output
        return dict(seen)

    got = serve("--served-max-rows", "5000", "--served-max-age-days", "0", "--served-prune-seconds", "5",
                "--no-log-anonymous-reads", "--no-log-session-lists")
    assert got["served_max_rows"] == 5000 and got["served_max_age_s"] is None and got["served_prune_s"] == 5.0
    assert got["log_lists"] is True and got["log_anonymous_reads"] is False and got["log_sessions"] is False
    got = serve("--no-served-log")
    assert got["log_lists"] is False and got["log_anonymous_reads"] is True and got["log_sessions"] is True
    assert got["served_max_rows"] == 1_000_000 and got["served_max_age_s"] == 30 * 86_400.0
    assert got["served_prune_s"] == 60.0
    bad = runner.invoke(app, ["serve", str(tmp_path), "--served-max-rows", "-1"])
    assert bad.exit_code == 2 and "--served-max-rows must be a number >= 0" in bad.output
