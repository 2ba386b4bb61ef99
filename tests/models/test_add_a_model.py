"""The user guide's "Add a model" section (docs/guide/models.md), followed literally: one module, one registry
line, nothing else.

The module is the section's first code block, imported under the module name
its registry line gives; the registry line is the second block, added to
``MODELS`` as written.  Then every layer must work with the model through what
it declares: the conformance suite, evaluation against popularity, and the
real HTTP app with ANN retrieval over its vectors, similar items and reasons —
though its state is named ``P_``/``Q_``, which no layer may read.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from zenrec import testing
from zenrec.evaluate.evaluator import evaluate_split
from zenrec.models import Query, create_model
from zenrec.models.bundle import ModelBundle
from zenrec.models.registry import MODELS

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "models.md"


def _section() -> list[str]:
    text = GUIDE.read_text()
    start = text.index("## Add a model\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


@pytest.fixture()
def registered(monkeypatch, tmp_path):
    """The guide's model module imported and its registry line added (undone after the test)."""
    module_src, registry_line, *_ = _section()
    entry = ast.literal_eval("{" + registry_line.strip().rstrip(",") + "}")
    ((name, (module, cls)),) = entry.items()
    path = tmp_path / "model_module.py"
    path.write_text(module_src)
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module, mod)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(MODELS, name, (module, cls))
    return name


def test_the_guide_names_a_module_a_registry_line_and_a_usage_example():
    blocks = _section()
    assert len(blocks) == 3
    assert "class PureSVD(Recommender)" in blocks[0] and "user_factors_" not in blocks[0]
    assert blocks[1].strip().startswith('"puresvd": (')


def test_the_guide_usage_example_runs(capsys):
    exec(compile(_section()[2], "guide usage example", "exec"), {})
    assert "[" in capsys.readouterr().out


def test_the_new_model_passes_the_conformance_suite(registered):
    testing.check_model(registered)


def test_the_new_model_beats_popularity_on_ml100k(registered, ml100k_split):
    ndcg = {m: evaluate_split(create_model(m).fit(ml100k_split.train), ml100k_split, "valid", beyond=False)["ndcg@10"]
            for m in (registered, "pop")}
    assert ndcg[registered] > 1.3 * ndcg["pop"], ndcg


def test_the_new_model_is_served_with_ann_similar_items_and_reasons(registered, ml100k, tmp_path):
    from fastapi.testclient import TestClient

    from zenrec.models.bundle import train_bundle
    from zenrec.serve.app import create_app

    bundle = train_bundle(ml100k, registered)
    path = bundle.save(tmp_path / "m")
    app = create_app(path, store_url=f"sqlite:///{tmp_path / 'e.db'}", retrieval="faiss")
    with TestClient(app, raise_server_exceptions=False) as client:
        health = client.get("/healthz").json()
        assert health["model"] == registered and health["retrieval"] == "faiss"
        body = client.get("/users/196/recommendations", params={"k": 10, "reasons": "true"}).json()
        got = [it["item"] for it in body["items"]]
        exact = ModelBundle.load(path).recommend(Query(user=196, k=10))
        assert len(set(got) & set(exact.items.tolist())) >= 9, "the ANN list must match exact scoring"
        np.testing.assert_allclose([it["score"] for it in body["items"]][:3], exact.scores[:3], rtol=1e-4)
        assert all(r["method"] == "embedding" for it in body["items"] for r in it["reasons"])
        assert sum(len(it["reasons"]) for it in body["items"]) >= 10
        sim = client.get("/items/50/similar", params={"k": 10}).json()
        assert sim["method"] == "embedding" and len(sim["items"]) == 10 and 50 not in [x["item"] for x in sim["items"]]
        assert 172 in [x["item"] for x in client.get("/items/50/similar", params={"k": 30}).json()["items"]]
