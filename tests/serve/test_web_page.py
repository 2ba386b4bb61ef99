"""The web page at ``/`` in a real browser (Playwright over Debian's Chromium) against a real server on loopback:
pick a user, see ten recommendations with reasons and the history, give feedback (401 without the key, then
the list changes in place), and the model view with its leaderboard plots.  Screenshots are kept as artifacts."""

from __future__ import annotations

import httpx
import pytest

from zenrec.serve.app import create_app

KEY = "page-key"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def board(ml100k_small):
    from zenrec.experiments.leaderboard import compare

    return compare(ml100k_small, ["pop", "ease", ("lmf", {"epochs": 3, "factors": 16})]).to_dict()


@pytest.fixture(scope="module")
def server(model_dirs, run_server, tmp_path_factory, board):
    store = tmp_path_factory.mktemp("page") / "events.db"
    app = create_app(model_dirs("ease"), store_url=f"sqlite:///{store}", api_key=KEY, leaderboard=board)
    with run_server(app) as url:
        yield url


def _items(page) -> list[str]:
    return page.locator("#recs li.rec").evaluate_all("els => els.map(e => e.dataset.item)")


def test_user_view_recommends_with_reasons_and_feedback_changes_the_list(server, browser):
    from playwright.sync_api import expect

    context, shot = browser
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/")
    expect(page.locator("#users option")).to_have_count(20)  # users to pick from
    page.fill("#user", "196")
    page.click("#show")
    recs = page.locator("#recs li.rec")
    expect(recs).to_have_count(10)
    for i in range(10):
        expect(recs.nth(i).locator(".reasons")).to_contain_text("because of")
        expect(recs.nth(i).locator(".title")).not_to_be_empty()
    expect(page.locator("#history li").first).to_be_visible()
    assert page.locator("#history li").count() == 39  # user 196 rated 39 films
    expect(page.locator("#history-count")).to_contain_text("39 training items, 0 since")
    shot(page, "page-user")

    # without the key the feedback is refused, visibly, and the list stays
    before, list_id = _items(page), page.locator("#recs").get_attribute("data-list-id")
    recs.first.locator("button.buy").click()
    expect(page.locator("#status")).to_have_class("error")
    expect(page.locator("#status")).to_contain_text("401")
    expect(page.locator("#status")).to_contain_text("API key")
    assert _items(page) == before and page.locator("#recs").get_attribute("data-list-id") == list_id
    shot(page, "page-401")

    # with the key: the bought film leaves the list, which is a new one, and shows in the history
    page.fill("#key", KEY)
    bought_title = recs.first.locator(".title").inner_text()
    recs.first.locator("button.buy").click()
    expect(page.locator("#status")).to_have_class("ok")
    expect(page.locator("#recs")).not_to_have_attribute("data-list-id", list_id)
    expect(recs).to_have_count(10)
    after = _items(page)
    assert before[0] not in after and after != before
    expect(page.locator("#history-new li")).to_have_count(1)
    expect(page.locator("#history-new li").first).to_have_text(bought_title)
    # "not interested" and "like" take their items out of the next list too
    second = after[1]
    recs.nth(1).locator("button.nope").click()
    expect(page.locator("#history-new li")).to_have_count(2)
    assert second not in _items(page)
    recs.first.locator("button.like").click()
    expect(page.locator("#history-new li")).to_have_count(3)
    shot(page, "page-feedback")
    assert not errors

    # the events were stored with their list ids, attributed to the version that served the lists
    history = httpx.get(f"{server}/users/196/history").json()
    assert str(history["new"][-1]["item"]) == before[0] and history["n_new"] == 3
    metrics = httpx.get(f"{server}/metrics").text
    attributed = {t: any(line.startswith("zenrec_events_attributed_total") and f'type="{t}"' in line
                         and not line.endswith(" 0.0") for line in metrics.splitlines())
                  for t in ("purchase", "view", "favorite")}
    assert all(attributed.values()), attributed


def test_model_view_shows_versions_leaderboard_and_plots(server, browser, board):
    from playwright.sync_api import expect

    context, shot = browser
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/#model")
    expect(page.locator("#model-view")).to_be_visible()
    version = httpx.get(f"{server}/healthz").json()["model_version"]
    expect(page.locator("#versions")).to_contain_text(version)
    expect(page.locator("#registry-none")).to_be_visible()  # one model directory, no registry
    expect(page.locator("#leaderboard tr")).to_have_count(1 + 3)
    plots = page.locator("#plots svg.plot")
    expect(plots).to_have_count(5)
    metrics = plots.evaluate_all("els => els.map(e => e.dataset.metric)")
    assert metrics == ["ndcg@10", "recall@10", "coverage@20", "avg_pop@20", "learning curves"]
    for i in range(4):  # one bar per model, each drawn with a width
        widths = plots.nth(i).locator("rect").evaluate_all("els => els.map(e => e.getBBox().width)")
        assert len(widths) == 3 and all(w > 0 for w in widths), widths
    # the learning curve of the one neural model (lmf): a line with a point per epoch it trained
    lines = plots.nth(4).locator("polyline")
    expect(lines).to_have_count(1)
    (lmf,) = [r for r in board["rows"] if r["label"] == "lmf"]
    points = lines.first.get_attribute("points").split()
    assert len(points) == len(lmf["history"]) >= 2 and lines.first.get_attribute("data-label") == "lmf"
    best = max(board["rows"], key=lambda r: r["test"]["ndcg@10"])["label"]
    expect(page.locator("#leaderboard td.best").first).to_be_visible()
    assert best in page.locator("#leaderboard").inner_text()
    shot(page, "page-model")
    assert not errors


def test_page_and_history_routes_over_http(server):
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    js = httpx.get(f"{server}/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "https://" not in js.text and "http://" not in js.text.replace("http://www.w3.org/2000/svg", "")
    assert httpx.get(f"{server}/static/../app.py").status_code == 404
    assert httpx.get(f"{server}/static/missing.js").json()["error"]["code"] == "not_found"
    unknown = httpx.get(f"{server}/users/nobody-at-all/history").json()
    assert unknown["known"] is False and unknown["training"] == [] and unknown["new"] == []
    assert httpx.get(f"{server}/users/196/history", params={"limit": 0}).status_code == 422
    short = httpx.get(f"{server}/users/196/history", params={"limit": 5}).json()
    assert len(short["training"]) == 5 and short["n_training"] == 39
    model = httpx.get(f"{server}/model").json()
    assert model["leaderboard"]["rows"][0]["label"] == "pop" and model["registry"] is None
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert "/users/{user_id}/history" in paths and "/model" in paths and "/" not in paths


def test_leaderboard_file_is_checked_when_the_app_is_built(model_dirs, tmp_path):
    from zenrec.errors import ConfigError

    bad = tmp_path / "board.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a leaderboard JSON file"):
        create_app(model_dirs("ease"), leaderboard=bad)
    with pytest.raises(ConfigError, match="no such leaderboard file"):
        create_app(model_dirs("ease"), leaderboard=tmp_path / "missing.json")


def test_cli_serve_refuses_a_bad_leaderboard(model_dirs, tmp_path):
    from typer.testing import CliRunner

    from zenrec.cli import app

    bad = tmp_path / "board.json"
    bad.write_text('{"rows": 3}')
    r = CliRunner().invoke(app, ["serve", str(model_dirs("ease")), "--leaderboard", str(bad)])
    assert r.exit_code == 2 and "not a leaderboard dict" in r.output


def test_model_route_shows_the_registry_and_its_split(model_dirs, serve_app, tmp_path):
    from zenrec.store.registry import ModelRegistry

    reg = ModelRegistry(tmp_path / "registry")
    v1 = reg.add(model_dirs("ease"), metrics={"ndcg@10": 0.35}, note="ease")
    reg.promote(v1, "first")
    v2 = reg.add(model_dirs("pop"), note="pop")
    reg.set_traffic({v1: 0.75, v2: 0.25})
    with serve_app(tmp_path / "registry", tmp_path / "events.db", poll_seconds=0) as client:
        m = client.get("/model").json()
        assert m["model_version"] == v1 and m["traffic"] == {v1: 0.75, v2: 0.25} and m["leaderboard"] is None
        assert [(s["version"], s["model"], s["share"]) for s in m["served"]] == [(v1, "ease", 0.75), (v2, "pop", 0.25)]
        assert [(r["version"], r["model"], r["note"]) for r in m["registry"]] == [(v1, "ease", "ease"), (v2, "pop", "pop")]
        assert m["registry"][0]["metrics"] == {"ndcg@10": 0.35}
        # a user's history comes from the version that serves the user under the split
        h = client.get("/users/196/history").json()
        assert h["model_version"] in (v1, v2) and h["n_training"] == 39
