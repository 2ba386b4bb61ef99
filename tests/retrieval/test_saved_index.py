"""A faiss index saved beside its model: mapped back with the same answers, never used when stale, foreign,
truncated or corrupted (rebuilt with a warning), and built only once."""

from __future__ import annotations

import json
import logging

import faiss
import numpy as np
import pytest

import zenrec.retrieval.saved as saved_mod
from zenrec.errors import ArtifactError
from zenrec.retrieval import FaissRetriever, Retriever, make_retriever, saved_retriever

N, DIM = 3000, 16


def vectors(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, DIM)).astype(np.float32), (0.1 * rng.normal(size=N)).astype(np.float32)


@pytest.fixture
def builds(monkeypatch):
    """How many indexes :func:`saved_retriever` built (rather than loaded)."""
    count = [0]
    real = saved_mod.make_retriever

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(saved_mod, "make_retriever", counting)
    return count


QUERIES = np.random.default_rng(9).normal(size=(40, DIM)).astype(np.float32)


def top(r: Retriever) -> tuple[np.ndarray, np.ndarray]:
    return r.search(QUERIES, 10, exclude=[np.arange(q, q + 5) for q in range(len(QUERIES))])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_a_saved_index_is_mapped_back_with_the_answers_of_a_fresh_build(kind, tmp_path, builds):
    v, b = vectors(1)
    first = saved_retriever(tmp_path / "index", v, b, backend=kind)
    assert builds[0] == 1 and (tmp_path / "index" / "index.faiss").is_file()
    again = saved_retriever(tmp_path / "index", v, b, backend=kind)
    assert builds[0] == 1, "the second start built the index again"
    assert isinstance(again, FaissRetriever) and again.fingerprint == saved_mod.vectors_fingerprint(
        v, b, {"backend": kind})
    fresh = make_retriever(v, b, backend=kind)
    for got, want in zip(top(again), top(fresh), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(top(first)[0], top(again)[0])


def test_query_time_effort_is_applied_to_a_loaded_index_without_a_rebuild(tmp_path, builds):
    v, b = vectors(1)
    saved_retriever(tmp_path / "index", v, b, backend="hnsw", ef_search=32)
    r = saved_retriever(tmp_path / "index", v, b, backend="hnsw", ef_search=200)
    assert builds[0] == 1 and r.ef_search == 200


def test_other_vectors_or_build_parameters_rebuild_the_stale_index(tmp_path, builds, caplog):
    v, b = vectors(1)
    saved_retriever(tmp_path / "index", v, b, backend="hnsw")
    v2 = v.copy()
    v2[17, 3] += 0.5  # one item retrained
    with caplog.at_level(logging.WARNING, logger="zenrec.retrieval.saved"):
        r = saved_retriever(tmp_path / "index", v2, b, backend="hnsw")
    assert builds[0] == 2 and "other vectors or parameters" in caplog.text
    np.testing.assert_array_equal(top(r)[0], top(make_retriever(v2, b, backend="hnsw"))[0])
    saved_retriever(tmp_path / "index", v2, b, backend="hnsw", M=16)  # another graph
    assert builds[0] == 3
    saved_retriever(tmp_path / "index", v2, b, backend="hnsw", M=16)  # the rebuilt one is saved and reused
    assert builds[0] == 3


def test_a_truncated_index_file_is_rebuilt_with_a_warning(tmp_path, builds, caplog):
    v, b = vectors(1)
    saved_retriever(tmp_path / "index", v, b, backend="hnsw")
    file = tmp_path / "index" / "index.faiss"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="zenrec.retrieval.saved"):
        r = saved_retriever(tmp_path / "index", v, b, backend="hnsw")
    assert builds[0] == 2 and "index.faiss" in caplog.text and "rebuilding" in caplog.text
    np.testing.assert_array_equal(top(r)[0], top(make_retriever(v, b, backend="hnsw"))[0])
    assert file.stat().st_size > 0 and saved_retriever(tmp_path / "index", v, b, backend="hnsw") is not None
    assert builds[0] == 2  # the rewritten file is good again


def test_a_foreign_index_file_under_a_matching_manifest_is_detected(tmp_path, builds, caplog):
    v, b = vectors(1)
    other_v, other_b = vectors(2)
    saved_retriever(tmp_path / "mine", v, b, backend="hnsw")
    saved_retriever(tmp_path / "other", other_v, other_b, backend="hnsw")
    # the graph alone, then graph and head, copied over; the manifest (and its fingerprint) left as it was
    for n_builds, names in ((3, ("index.faiss",)), (4, ("index.faiss", "head.npz"))):
        for name in names:
            (tmp_path / "mine" / name).write_bytes((tmp_path / "other" / name).read_bytes())
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="zenrec.retrieval.saved"):
            r = saved_retriever(tmp_path / "mine", v, b, backend="hnsw")
        assert builds[0] == n_builds and "other vectors than the model's" in caplog.text
    np.testing.assert_array_equal(top(r)[0], top(make_retriever(v, b, backend="hnsw"))[0])


def test_an_index_of_another_kind_under_the_manifest_is_refused(tmp_path, builds, caplog):
    v, b = vectors(1)
    saved_retriever(tmp_path / "mine", v, b, backend="hnsw")
    saved_retriever(tmp_path / "ivf", v, b, backend="ivf")
    (tmp_path / "mine" / "index.faiss").write_bytes((tmp_path / "ivf" / "index.faiss").read_bytes())
    with caplog.at_level(logging.WARNING, logger="zenrec.retrieval.saved"):
        saved_retriever(tmp_path / "mine", v, b, backend="hnsw")
    assert builds[0] == 3 and "IndexIVFFlat" in caplog.text


def corrupt_graph(directory, change) -> None:
    """Rewrite ``directory``'s index with its HNSW links edited by ``change`` (a function of the link array)."""
    file = directory / "index.faiss"
    index = faiss.read_index(str(file))
    links = faiss.rev_swig_ptr(index.hnsw.neighbors.data(), index.hnsw.neighbors.size())
    change(links)
    faiss.write_index(index, str(file))


@pytest.mark.parametrize("edit", [lambda a: a.__setitem__(5, N + 1000), lambda a: a.__setitem__(-1, -7)],
                         ids=["past the catalogue", "negative"])
def test_a_graph_link_outside_the_catalogue_is_caught_before_any_search(edit, tmp_path, builds, caplog):
    v, b = vectors(1)
    saved_retriever(tmp_path / "index", v, b, backend="hnsw")
    corrupt_graph(tmp_path / "index", edit)
    with caplog.at_level(logging.WARNING, logger="zenrec.retrieval.saved"):
        r = saved_retriever(tmp_path / "index", v, b, backend="hnsw")
    # faiss 1.15 refuses such a link as it reads the file; check_matches refuses it where faiss does not
    assert builds[0] == 2 and ("corrupted HNSW graph" in caplog.text or "out of range" in caplog.text)
    assert (top(r)[0] < N).all()


@pytest.mark.parametrize("edit", [lambda h, a: a.__setitem__(5, N + 1000),
                                  lambda h, a: a.__setitem__(-1, -7),
                                  lambda h, a: setattr(h, "entry_point", N + 3),
                                  lambda h, a: setattr(h, "max_level", h.max_level + 1)],
                         ids=["link past the catalogue", "negative link", "entry point", "levels"])
def test_check_matches_refuses_a_graph_that_would_read_outside_memory(edit, tmp_path):
    v, b = vectors(1)
    r = make_retriever(v, b, backend="hnsw")
    r.check_matches(v, b, "idx")
    h = r.index.hnsw
    edit(h, faiss.rev_swig_ptr(h.neighbors.data(), h.neighbors.size()))
    with pytest.raises(ArtifactError, match="idx: a corrupted HNSW graph"):
        r.check_matches(v, b, "idx")


def test_check_matches_names_the_file_and_what_is_wrong(tmp_path):
    v, b = vectors(1)
    make_retriever(v, b, backend="hnsw").save(tmp_path / "index")
    loaded = Retriever.load(tmp_path / "index", mmap=True)
    loaded.check_matches(v, b, "idx")  # the right vectors pass
    with pytest.raises(ArtifactError, match=r"idx: built for 3000 items × 16 dims \(with bias\)"):
        loaded.check_matches(v, None, "idx")
    with pytest.raises(ArtifactError, match="idx: .*other vectors than the model.s"):
        loaded.check_matches(v * 2, b, "idx")


def test_a_folder_that_cannot_be_written_still_serves_with_a_warning(tmp_path, builds, caplog):
    v, b = vectors(1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="zenrec.retrieval.saved"):
        r = saved_retriever(blocker / "index", v, b, backend="hnsw")
    assert builds[0] == 1 and "cannot save the index" in caplog.text
    np.testing.assert_array_equal(top(r)[0], top(make_retriever(v, b, backend="hnsw"))[0])


def test_exact_retrieval_keeps_nothing_on_disk(tmp_path):
    v, b = vectors(1)
    r = saved_retriever(tmp_path / "index", v, b)  # auto: 3000 items are scored exactly
    assert r.backend == "exact" and not (tmp_path / "index").exists()


def test_the_saved_manifest_records_the_fingerprint_and_no_pickle(tmp_path):
    v, b = vectors(1)
    saved_retriever(tmp_path / "index", v, b, backend="hnsw")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["fingerprint"] == saved_mod.vectors_fingerprint(v, b, {"backend": "hnsw"})
    assert manifest["kind"] == "retriever" and manifest["faiss_kind"] == "hnsw"
    assert (tmp_path / "index" / "index.faiss").read_bytes()[:1] != b"\x80"
