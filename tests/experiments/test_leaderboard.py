"""Leaderboards on a slice of ml-100k: fitting, recording, exporting, rendering."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table

from zenrec.errors import ConfigError, UnknownModelError
from zenrec.evaluate.evaluator import evaluate_split
from zenrec.experiments.leaderboard import Leaderboard, compare, normalize_specs
from zenrec.models import create_model


@pytest.fixture(scope="module")
def board(ml100k_small) -> Leaderboard:
    calls = []
    b = compare(
        ml100k_small,
        ["pop", "itemknn", ("ease", {"reg": 100.0})],
        ks=(10, 5),
        progress=lambda *a: calls.append(a),
        keep_models=True,
    )
    b.calls = calls  # type: ignore[attr-defined]
    return b


def _render(table: Table) -> str:
    console = Console(width=250, record=True, color_system="truecolor", force_terminal=True)
    console.print(table)
    return console.export_text(styles=True)


def test_rows_hold_times_params_and_both_parts(board, ml100k_small):
    assert board.labels == ["pop", "itemknn", "ease"]
    assert board.ks == (5, 10) and board.mode == "full" and board.protocol == "general"
    for row in board.rows:
        assert row.fit_seconds >= 0 and row.eval_seconds > 0
        assert "ndcg@10" in row.valid and "ndcg@10" in row.test and "coverage@5" in row.test
        assert row.n_test_users > 0 and row.n_valid_users > 0
    assert board["ease"].params["reg"] == 100.0  # full config recorded, given value kept
    assert board["itemknn"].params["k"] == create_model("itemknn").config.k


def test_numbers_are_those_of_evaluate_split(board, ml100k_small):
    # the leaderboard must not evaluate differently from the evaluator
    model = board.fitted["ease"]
    for part in ("valid", "test"):
        direct = evaluate_split(model, ml100k_small, part, ks=(5, 10))
        assert board["ease"].metrics(part) == pytest.approx(direct.metrics)


def test_best_and_ordering(board):
    # EASE and ItemKNN beat popularity on real data; EASE is the best by NDCG@10
    assert board.best("ndcg@10").label == "ease"
    assert board["pop"].test["ndcg@10"] < board["itemknn"].test["ndcg@10"]
    # lower is better for popularity bias and for time
    assert board.best("avg_pop@10").test["avg_pop@10"] == min(r.test["avg_pop@10"] for r in board.rows)
    assert board.best("fit_seconds").fit_seconds == min(r.fit_seconds for r in board.rows)
    assert board.best("ndcg@10", part="valid").valid["ndcg@10"] == max(r.valid["ndcg@10"] for r in board.rows)
    with pytest.raises(ConfigError, match="unknown metric 'ndcg@7'"):
        board.best("ndcg@7")


def test_progress_callback(board):
    stages = [(label, stage) for label, stage, _, _ in board.calls]
    assert stages == [(m, s) for m in ("pop", "itemknn", "ease") for s in ("fit", "evaluate", "done")]
    assert {(i, n) for _, _, i, n in board.calls} == {(0, 3), (1, 3), (2, 3)}


def test_to_frame(board):
    df = board.to_frame()
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == ["pop", "itemknn", "ease"]
    assert df.loc["ease", "ndcg@10"] == board["ease"].test["ndcg@10"]
    assert json.loads(df.loc["ease", "params"])["reg"] == 100.0
    both = board.to_frame("both")
    assert both.loc["pop", "valid/ndcg@10"] == board["pop"].valid["ndcg@10"]
    assert both.loc["pop", "test/ndcg@10"] == board["pop"].test["ndcg@10"]
    with pytest.raises(ConfigError):
        board.to_frame("train")


def test_json_round_trip(board, tmp_path):
    text = board.to_json(tmp_path / "out" / "board.json")
    data = json.loads(text)
    assert data["mode"] == "full" and [r["label"] for r in data["rows"]] == board.labels
    assert json.loads((tmp_path / "out" / "board.json").read_text()) == json.loads(text)
    back = Leaderboard.from_dict(data)
    assert back.to_dict() == board.to_dict()
    assert board.to_dict()["rows"][2]["test"]["ndcg@10"] == board["ease"].test["ndcg@10"]
    assert "fitted" not in board.to_dict()


def test_rich_table_highlights_the_best_value_per_column(board):
    table = board.to_rich_table(["ndcg@10", "avg_pop@10"])
    assert isinstance(table, Table)
    assert "full ranking" in str(table.title)
    headers = [c.header for c in table.columns]
    # the p-value against the best row follows the headline metric
    assert headers == ["model", "ndcg@10", "p", "avg_pop@10", "fit s", "eval s"]
    # per column, exactly the best cell is marked bold green
    ndcg_cells = list(table.columns[1].cells)
    best_row = board.labels.index(board.best("ndcg@10").label)
    assert [("bold green" in c) for c in ndcg_cells] == [i == best_row for i in range(3)]
    assert list(table.columns[2].cells)[best_row] == "ref"
    pop_cells = list(table.columns[3].cells)
    low_row = board.labels.index(board.best("avg_pop@10").label)
    assert [("bold green" in c) for c in pop_cells] == [i == low_row for i in range(3)]
    text = _render(board.to_rich_table())
    assert "recall@5" in text and "ease" in text


def test_sampled_mode_is_labelled(ml100k_small):
    b = compare(ml100k_small, ["pop"], ks=(10,), sampled=50)
    assert b.mode == "sampled-50" and b.sampled
    table = b.to_rich_table()
    assert "SAMPLED" in str(table.title) and "50 negatives" in str(table.title)
    assert "sampled-50" in str(table.caption)
    assert b.to_dict()["mode"] == "sampled-50"
    full = compare(ml100k_small, ["pop"], ks=(10,))
    assert "SAMPLED" not in str(full.to_rich_table().title)
    assert b.rows[0].test["ndcg@10"] > full.rows[0].test["ndcg@10"]


def test_specs_are_checked_before_any_fit(ml100k_small):
    calls = []
    with pytest.raises(UnknownModelError, match="unknown model 'bogus'"):
        compare(ml100k_small, ["pop", "bogus"], progress=lambda *a: calls.append(a))
    with pytest.raises(ConfigError, match="EASE has no parameter 'regg'"):
        compare(ml100k_small, ["pop", ("ease", {"regg": 1.0})], progress=lambda *a: calls.append(a))
    with pytest.raises(ConfigError, match="name or a \\(name, params\\) pair"):
        compare(ml100k_small, [("ease",)])
    with pytest.raises(ConfigError, match="at least one model"):
        compare(ml100k_small, [])
    with pytest.raises(ConfigError, match="'ks' parameter"):
        compare(ml100k_small, ["pop"], ks=(0,), progress=lambda *a: calls.append(a))
    with pytest.raises(ConfigError, match="'metrics' parameter"):
        compare(ml100k_small, ["pop"], metrics=("ndgc",), progress=lambda *a: calls.append(a))
    with pytest.raises(ConfigError, match="'sampled' parameter"):
        compare(ml100k_small, ["pop"], sampled=-5, progress=lambda *a: calls.append(a))
    assert calls == []  # nothing was fitted


def test_labels_of_repeated_models():
    specs = normalize_specs(["pop", ("ease", {"reg": 10.0}), ("ease", {"reg": 20.0}), "pop"])
    assert [s[0] for s in specs] == ["pop#1", "ease(reg=10)", "ease(reg=20)", "pop#2"]
    assert normalize_specs("ease") == [("ease", "ease", {})]
    assert normalize_specs(("ease", {"reg": 1.0})) == [("ease", "ease", {"reg": 1.0})]


# ------------------------------------------------------------- targets and significance
def test_rows_count_their_targets_and_hold_per_user_values(board):
    for row in board.rows:
        for part in ("valid", "test"):
            t = row.targets[part]
            # a random split of unique (user, item) pairs repeats no item: the masking rule removes nothing
            assert t["seen"] == 0 and t["other_type"] == 0 and t["kept"] == t["held_out"] > 0
            per = board.per_user[part][row.label]
            assert len(per["ndcg@10"]) == len(board.users[part]) == getattr(row, f"n_{part}_users")
            assert per["ndcg@10"].mean() == pytest.approx(row.metrics(part)["ndcg@10"])


def test_identical_models_are_not_significantly_different(ml100k_small):
    # the same model fitted twice with the same seed: every per-user difference is 0, so p is exactly 1
    b = compare(ml100k_small, [("itemknn", {"k": 50}), ("itemknn", {"k": 50}), "pop"], ks=(10,))
    twin_a, twin_b, _ = b.labels
    ref = b.significance["test"]["reference"]
    assert ref in (twin_a, twin_b) and b.significance["test"]["metric"] == "ndcg@10"
    for label in (twin_a, twin_b):
        for key, s in b[label].significance["test"].items():
            assert s["p"] == 1.0 and s["diff"] == 0.0 and s["ci_low"] == s["ci_high"] == 0.0, key
    assert b["pop"].p_value("ndcg@10") < 0.01 and b["pop"].significance["test"]["ndcg@10"]["ci_high"] < 0


def test_ease_beats_popularity_significantly_on_ml100k(ml100k_split):
    b = compare(ml100k_split, ["pop", ("ease", {"reg": 500.0})], ks=(10, 20))
    assert b.headline == "ndcg@10" and b.significance["test"]["reference"] == "ease"
    assert b.significance["test"]["n_users"] == 943
    for key in ("ndcg@10", "recall@10", "recall@20", "hit@10"):
        s = b["pop"].significance["test"][key]
        assert s["p"] < 0.01, (key, s)
        assert s["ci_low"] < s["diff"] < s["ci_high"] < 0  # pop is worse, the whole interval below 0
        assert s["diff"] == pytest.approx(b["pop"].test[key] - b["ease"].test[key])
    assert b["ease"].p_value("ndcg@10") == 1.0
    # the same seed gives the same intervals
    again = compare(ml100k_split, ["pop", ("ease", {"reg": 500.0})], ks=(10, 20))
    assert again["pop"].significance == b["pop"].significance


def test_significance_survives_json_and_old_json_still_loads(board):
    data = json.loads(board.to_json())
    assert data["headline"] == "ndcg@10" and data["significance"]["test"]["resamples"] == 1000
    assert data["rows"][0]["significance"]["test"]["ndcg@10"]["p"] == board.rows[0].p_value("ndcg@10")
    assert data["rows"][0]["targets"]["test"]["seen"] == 0
    back = Leaderboard.from_dict(data)
    assert back.to_dict() == board.to_dict()
    assert back.rows[0].p_value("ndcg@10") == board.rows[0].p_value("ndcg@10")
    # a leaderboard written before targets and significance existed
    for key in ("headline", "significance", "target_events"):
        del data[key]
    for row in data["rows"]:
        del row["targets"], row["significance"]
    old = Leaderboard.from_dict(data)
    assert old.headline is None and old.rows[0].targets == {} and np.isnan(old.rows[0].p_value("ndcg@10"))
    text = _render(old.to_rich_table())
    assert "ndcg@10" in text and " p " not in text


def test_relabelled_rows_keep_their_reference(board):
    b = Leaderboard.from_dict(board.to_dict())
    b.per_user = {p: dict(v) for p, v in board.per_user.items()}
    b.relabel(["a", "b", "c"])
    assert b.significance["test"]["reference"] == "c" and set(b.per_user["test"]) == {"a", "b", "c"}
    with pytest.raises(ConfigError, match="3 distinct labels"):
        b.relabel(["a", "a", "b"])


def _plain(table: Table, width: int) -> str:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text()


def test_an_80_column_table_shows_every_number_whole(board):
    b = Leaderboard.from_dict(board.to_dict())
    b.relabel(["pop", "itemknn(k=250, shrink=10)", "ease(reg=100)"])  # a long label wraps, numbers do not
    text = _plain(b.to_rich_table(), 80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    hidden_line = next(line for line in text.splitlines() if "hidden at this width:" in line)
    shown = [k for k in b.default_metric_keys() if k not in hidden_line]
    assert "ndcg@10" in shown and "recall@5" in shown  # the headline and the first columns stay
    for row in b.rows:
        for key in shown:
            assert f"{row.test[key]:.4f}" in text, (row.label, key)
        p = row.p_value("ndcg@10")
        assert ("ref" if p == 1.0 else ("<.001" if p < 0.001 else f"{p:.3f}")) in text
    # the hidden columns are named, times first
    assert "fit s" in hidden_line and "eval s" in hidden_line
    # wide enough, nothing is hidden
    wide = _plain(b.to_rich_table(), 250)
    assert "hidden" not in wide and all(f"{r.test['avg_pop@10']:.2f}" in wide for r in b.rows)


def test_chosen_columns_that_fit_80_are_all_shown(board):
    keys = ["recall@10", "ndcg@10", "coverage@10"]
    text = _plain(board.to_rich_table(keys), 80)
    assert "…" not in text and "hidden" not in text
    for row in board.rows:
        for key in keys:
            assert f"{row.test[key]:.4f}" in text
        assert f"{row.fit_seconds:.2f}" in text and f"{row.eval_seconds:.2f}" in text
    # one more column than fits: the last one (a time) is hidden and named, never cut
    text = _plain(board.to_rich_table([*keys, "hit@10"]), 80)
    assert "…" not in text and "hidden at this width: eval s" in text
