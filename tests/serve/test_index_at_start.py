"""The server keeps its faiss index in the model directory: the second start maps it instead of building it,
and answers the same lists."""

from __future__ import annotations

import shutil

import zenrec.retrieval.saved as saved_mod
from tests.serve.conftest import app_client


def test_the_second_start_maps_the_saved_index_and_answers_the_same(model_dirs, tmp_path, monkeypatch):
    model = tmp_path / "als"
    shutil.copytree(model_dirs("als"), model)
    builds = [0]
    real = saved_mod.make_retriever

    def counting(*args, **kwargs):
        builds[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(saved_mod, "make_retriever", counting)
    users = ["1", "42", "300"]
    lists = []
    for start in range(2):
        with app_client(model, tmp_path / "events.db", retrieval="hnsw") as client:
            assert client.get("/healthz").json()["retrieval"] == "faiss"
            lists.append([[r["item"] for r in client.get(f"/users/{u}/recommendations?k=10").json()["items"]]
                          for u in users])
        assert builds[0] == 1, f"start {start + 1} built the index"
        assert (model / "index" / "index.faiss").is_file()
    assert lists[0] == lists[1] and all(len(x) == 10 for x in lists[0])
