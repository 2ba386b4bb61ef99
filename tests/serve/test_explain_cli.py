"""``zenrec explain`` and ``zenrec recommend --reasons``: the model's explanation on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from zenrec.cli.main import app

runner = CliRunner()


def test_explain_prints_the_sentence_and_the_table(model_dirs):
    r = runner.invoke(app, ["explain", str(model_dirs("ease")), "--user", "196", "--item", "50", "--top", "3"])
    assert r.exit_code == 0, r.output
    assert "Star Wars" in r.output and "Because of" in r.output and "method: weights" in r.output
    assert "contributor" in r.output and "share" in r.output


def test_explain_json_adds_up(model_dirs):
    r = runner.invoke(app, ["explain", str(model_dirs("ease")), "--user", "196", "--item", "50", "--json"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["item"] == 50 and body["method"] == "weights"
    assert sum(c["weight"] for c in body["contributions"]) == pytest.approx(body["score"], abs=1e-5)


@pytest.mark.parametrize(("args", "message"), [
    (["--user", "nobody", "--item", "50"], "unknown user 'nobody'"),
    (["--user", "196", "--item", "999999"], "unknown item 999999"),
    (["--user", "196", "--item", "50", "--top", "0"], "--top must be at least 1"),
])
def test_explain_bad_input_is_one_line_and_exit_2(model_dirs, args, message):
    r = runner.invoke(app, ["explain", str(model_dirs("ease")), *args])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], r.output


def test_recommend_with_reasons(model_dirs, tmp_path):
    r = runner.invoke(app, ["recommend", str(model_dirs("ease")), "--user", "196", "-k", "3", "--reasons"])
    assert r.exit_code == 0, r.output
    assert "because" in r.output
    users = tmp_path / "u.txt"
    users.write_text("196\n5\n")
    out = tmp_path / "r.csv"
    r = runner.invoke(app, ["recommend", str(model_dirs("ease")), "--users", str(users), "-k", "2", "--reasons",
                            "-o", str(out)])
    assert r.exit_code == 0, r.output
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == 4 and all(json.loads(x)[0]["method"] == "weights" for x in df["reasons"])
