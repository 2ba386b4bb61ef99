"""The HTML report of a leaderboard (``zenrec compare/tune --report``): one self-contained file whose plots
open offline — checked in a real browser with every network request refused."""

from __future__ import annotations

import re

import pytest

from zenrec.experiments.leaderboard import compare
from zenrec.experiments.report import report_html, write_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def board(ml100k_small):
    return compare(ml100k_small, ["pop", "ease", ("lmf", {"epochs": 3, "factors": 16})])


def _self_contained(text: str) -> None:
    assert not re.search(r"https?://", text), re.search(r".{60}https?://.{60}", text)
    assert "<script" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    srcs = re.findall(r'src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_report_holds_tables_and_plots_inline_and_opens_offline(board, tmp_path, browser):
    assert [len(r.history) for r in board.rows] == [0, 0, 3]  # the neural model's epochs, in the row and its JSON
    assert board.to_dict()["rows"][2]["history"][0]["epoch"] == 1
    path = write_report(board, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    _self_contained(text)
    for heading in ("Test", "Validation", "Plots", "Learning curves", "Parameters"):
        assert f"<h2>{heading}</h2>" in text
    # accuracy at each k, coverage, popularity bias, accuracy against bias, learning curves
    assert text.count("<img") == 6
    for label in ("pop", "ease", "lmf"):
        assert f"<td>{label}</td>" in text

    context, shot = browser
    context.set_offline(True)
    asked: list[str] = []

    def only_the_file(route) -> None:  # the report itself loads; any other request is refused and noted
        if route.request.url == path.as_uri():
            route.continue_()
        else:
            asked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_file)
    page = context.new_page()
    page.goto(path.as_uri())
    sizes = page.locator("img").evaluate_all("els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
    assert len(sizes) == 6 and all(done and w > 0 and h > 0 for done, w, h in sizes), sizes
    assert asked == []  # nothing else was asked for
    shot(page, "report")


def test_report_of_tuning_and_from_the_cli(ml100k, ml100k_small, tmp_path, browser):
    from typer.testing import CliRunner

    from zenrec.cli import app
    from zenrec.experiments.tune import tune, tuned_leaderboard

    results = tune(ml100k_small, ["ease"], n_trials=3)
    text = report_html(tuned_leaderboard(ml100k_small, results), "tuned", tuning=results)
    _self_contained(text)
    assert "<h2>Tuning (validation)</h2>" in text and "<h2>Tuning progress</h2>" in text

    ml100k.save(tmp_path / "data")
    out = tmp_path / "reports" / "compare.html"
    r = CliRunner().invoke(app, ["compare", str(tmp_path / "data"), "--models", "pop,ease", "--report", str(out)])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output.replace("\n", "")
    _self_contained(out.read_text(encoding="utf-8"))
    bad = CliRunner().invoke(app, ["compare", str(tmp_path / "data"), "--models", "pop", "--report", str(tmp_path)])
    assert bad.exit_code == 2 and "is a folder" in bad.output
