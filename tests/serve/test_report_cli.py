"""``zenrec report online`` over what a served A/B split recorded."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.store.registry import ModelRegistry

runner = CliRunner()


def test_report_online_counts_what_each_version_served(tmp_path, model_dirs, serve_app):
    reg = ModelRegistry(tmp_path / "registry")
    v1, v2 = reg.add(model_dirs("ease")), reg.add(model_dirs("als"))
    reg.promote(v1)
    cur = reg.set_traffic({v1: 0.5, v2: 0.5})
    lists = {v1: 0, v2: 0}
    clicks = {v1: 0, v2: 0}
    with serve_app(reg.root, tmp_path / "unused.db", poll_seconds=0) as client:
        for user in range(1, 61):
            body = client.get(f"/users/{user}/recommendations").json()
            v = body["model_version"]
            assert v == cur.version_for(str(user))
            lists[v] += 1
            if user % 4 == 0:
                ev = {"user": user, "item": body["items"][0]["item"], "list_id": body["list_id"]}
                assert client.post("/events", json=ev).status_code == 200
                clicks[v] += 1
        assert client.app.state.zenrec.served_log.flush()
        store_url = client.app.state.zenrec.store.url

    out = tmp_path / "report.json"
    r = runner.invoke(app, ["report", "online", "--store", store_url, "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "click_through" in r.output and v1 in r.output and v2 in r.output
    rep = json.loads(out.read_text())
    rows = {row["model_version"]: row for row in rep["rows"]}
    for v in (v1, v2):
        assert rows[v]["lists"] == lists[v]
        assert rows[v]["click_through"] == pytest.approx(clicks[v] / lists[v])
        assert 0 < rows[v]["coverage"] <= 1 and rows[v]["latency_p99_ms"] >= rows[v]["latency_p50_ms"] > 0
    ctr = next(c for c in rep["comparisons"] if c["metric"] == "click_through")
    assert ctr["difference"] == pytest.approx(ctr["treatment_value"] - ctr["control_value"])
    assert ctr["ci_low"] <= ctr["difference"] <= ctr["ci_high"]


@pytest.mark.parametrize("args, message", [
    (["report", "online", "no/such/registry"], "no such model directory"),
    (["report", "online", "--store", "sqlite:///{tmp}/empty.db"], "no served lists"),
    (["report", "online", "--store", "sqlite:///{tmp}/empty.db", "--since", "yesterday"], "ISO-8601"),
])
def test_report_online_bad_input_is_one_line(tmp_path, args, message):
    r = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output
