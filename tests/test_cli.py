"""The command line: the documented flow works, and bad input exits 2 with one line."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

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


def test_missing_column_names_it(events_csv, tmp_path):
    _bad(run("ingest", events_csv, "--user", "customer", "--item", "product_id", "-o", tmp_path / "d"),
         "missing user column 'customer'", "events.csv")
    assert not (tmp_path / "d").exists()


def test_empty_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("")
    _bad(run("ingest", p, "-o", tmp_path / "d"), "empty.csv", "empty")


def test_duplicate_header(tmp_path):
    p = tmp_path / "dup.csv"
    p.write_text("user_id,item_id,user_id\n1,2,3\n")
    _bad(run("ingest", p, "-o", tmp_path / "d"), "duplicate column name 'user_id'")


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


def test_real_process_exit_code_and_no_traceback(tmp_path):
    """The installed entry point, not only the in-process runner."""
    p = tmp_path / "empty.csv"
    p.write_text("")
    proc = subprocess.run([sys.executable, "-m", "zenrec.cli", "ingest", str(p), "-o", str(tmp_path / "d")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "empty" in proc.stderr


def test_tune_gives_each_model_the_same_budget(tmp_path, events_csv):
    run("ingest", events_csv, "--item", "product_id", "--time", "ts", "-o", tmp_path / "d")
    r = run("tune", tmp_path / "d", "--models", "pop,ease", "--trials", "3", "--json", tmp_path / "t.json")
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "t.json").read_text())
    assert {k: v["n_trials"] for k, v in result["tuning"].items()} == {"pop": 3, "ease": 3}
    ease = result["tuning"]["ease"]
    assert ease["best_value"] >= ease["default_value"]


def test_sampled_mode_is_labelled(tmp_path, ml100k):
    ml100k.save(tmp_path / "data")
    r = run("compare", tmp_path / "data", "--models", "pop", "-k", "10", "--sampled", "100")
    assert r.exit_code == 0, r.output
    assert "SAMPLED" in r.output


def test_ingest_output_paths_that_are_not_zenrec_folders_are_refused(events_csv, tmp_path):
    """-o must never replace a file, a symlink or a folder of someone else's files; a symlink loop is named."""
    COLS = ("--item", "product_id", "--time", "ts", "--event", "type")  # noqa: N806
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    _bad(run("ingest", events_csv, *COLS, "-o", target), "notes.txt exists and is not a folder zenrec wrote")
    assert target.read_text() == "keep me"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me too")
    _bad(run("ingest", events_csv, *COLS, "-o", mine), "did not write (it has no manifest.json)")
    assert (mine / "thesis.tex").read_text() == "keep me too"
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    _bad(run("ingest", events_csv, *COLS, "-o", tmp_path / "loop1" / "ds"), "is a symlink that leads nowhere")
    link = tmp_path / "link"
    link.symlink_to(mine)
    _bad(run("ingest", events_csv, *COLS, "-o", link), "link exists and is not a folder zenrec wrote")
    # a folder zenrec wrote (or an empty one) is replaced, atomically
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("ingest", events_csv, *COLS, "-o", empty).exit_code == 0
    again = run("ingest", events_csv, *COLS, "-o", empty)
    assert again.exit_code == 0 and (empty / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left behind


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("prog.csv", b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4, "the file is a program (ELF binary)"),
        ("packed.csv", gzip.compress(b"user_id,item_id\n1,2\n" * 50 + bytes(range(256))),
         "gzip-compressed (name it .csv.gz"),
        ("utf16.csv", "user_id,item_id,ts\n1,2,3\n4,5,6,7\n".encode("utf-16"), "NUL bytes"),
        ("latin.csv", b"user_id,item_id,ts\n1,caf\xe9,100\n2,3,200,9\n", "byte 0xe9 on line 2 is not UTF-8"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_named_without_a_traceback(tmp_path, name, content, message):
    """The real process: no 'Exception ignored … Traceback' block before the one-line error."""
    p = tmp_path / name
    p.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "zenrec.cli", "ingest", str(p), "--time", "ts", "-o",
                           str(tmp_path / "d")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") <= 2, proc.stderr
    assert not (tmp_path / "d").exists()


def test_an_id_that_is_not_utf8_is_a_malformed_row_named_by_its_line(tmp_path):
    """Latin-1 bytes in one id of an otherwise clean file: that row is dropped and reported; --strict stops there."""
    p = tmp_path / "latin.csv"
    p.write_bytes(b"user_id,item_id,ts\n1,caf\xe9,100\n2,3,200\n2,4,300\n")
    r = run("ingest", p, "--time", "ts", "-o", tmp_path / "d")
    assert r.exit_code == 0 and "malformed_item_id" in r.output and "line 2" in r.output, r.output
    _bad(run("ingest", p, "--time", "ts", "--strict", "-o", tmp_path / "e"), "malformed item id", "line 2")


def test_a_real_gzip_log_with_a_ragged_line_still_names_that_line(tmp_path):
    p = tmp_path / "rag.csv.gz"
    p.write_bytes(gzip.compress(b"user_id,item_id,ts\n1,2,100\n2,3,200,9\n"))
    _bad(run("ingest", p, "--time", "ts", "-o", tmp_path / "d"), "row 3: malformed line", "got 4")
