"""Retrieval: exact top-k against a full sort, faiss recall against exact, filters that keep k results,
item bias, save/load, attribute rules."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zenrec.errors import ArtifactError, ConfigError, DataError
from zenrec.retrieval import (
    ExactRetriever,
    FaissRetriever,
    Retriever,
    ScoreRetriever,
    attribute_filter,
    load_retriever,
    make_retriever,
)

N_ITEMS, DIM, N_CLUSTERS = 20_000, 32, 128


def clustered(n: int, d: int, n_clusters: int, seed: int, centers_seed: int = 0) -> np.ndarray:
    """Vectors around shared cluster centres with varied norms, like learned embeddings."""
    centers = np.random.default_rng(centers_seed).normal(size=(n_clusters, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(n_clusters, size=n)] + 0.7 * rng.normal(size=(n, d)).astype(np.float32)
    x *= np.exp(0.25 * rng.normal(size=(n, 1))).astype(np.float32)
    return np.ascontiguousarray(x / np.sqrt(d), dtype=np.float32)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` that ``found`` holds."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


@pytest.fixture(scope="module")
def catalogue():
    vectors = clustered(N_ITEMS, DIM, N_CLUSTERS, seed=1)
    bias = (0.2 * np.random.default_rng(2).normal(size=N_ITEMS)).astype(np.float32)
    queries = clustered(300, DIM, N_CLUSTERS, seed=3)
    return vectors, bias, queries


@pytest.fixture(scope="module")
def exact(catalogue):
    vectors, bias, _ = catalogue
    return ExactRetriever(vectors, bias)


@pytest.fixture(scope="module")
def hnsw(catalogue):
    vectors, bias, _ = catalogue
    return FaissRetriever(vectors, bias, kind="hnsw")  # the defaults


@pytest.fixture(scope="module")
def ivf(catalogue):
    vectors, bias, _ = catalogue
    return FaissRetriever(vectors, bias, kind="ivf")  # the defaults


@pytest.fixture(params=["exact", "hnsw", "ivf"])
def any_retriever(request):
    return request.getfixturevalue(request.param)


# ------------------------------------------------------------------ exact top-k
def _full_sort(scores: np.ndarray, k: int) -> np.ndarray:
    """Reference: a full stable sort, score descending then item id ascending."""
    n = scores.shape[1]
    return np.array([np.lexsort((np.arange(n), -row)) for row in scores])[:, :k]


@st.composite
def small_problems(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4))
    m = draw(st.integers(1, 5))
    ints = st.integers(-3, 3)  # small integers: exact float sums and many ties
    vectors = draw(hnp.arrays(np.int64, (n, d), elements=ints))
    queries = draw(hnp.arrays(np.int64, (m, d), elements=ints))
    bias = draw(st.none() | hnp.arrays(np.int64, (n,), elements=ints))
    k = draw(st.integers(1, 45))
    return vectors, bias, queries, k


@settings(max_examples=120, deadline=None)
@given(small_problems())
def test_exact_topk_equals_full_argsort(problem):
    vectors, bias, queries, k = problem
    scores = queries @ vectors.T + (0 if bias is None else bias)  # exact, in int64
    ids, got = ExactRetriever(vectors, bias).search(queries, k)
    kk = min(k, len(vectors))
    expected = _full_sort(scores, kk)
    assert ids.shape == got.shape == (len(queries), k)
    assert ids.dtype == np.int64 and got.dtype == np.float32
    np.testing.assert_array_equal(ids[:, :kk], expected)
    np.testing.assert_array_equal(got[:, :kk], np.take_along_axis(scores, expected, axis=1))
    assert (ids[:, kk:] == -1).all() and np.isneginf(got[:, kk:]).all()


@settings(max_examples=120, deadline=None)
@given(small_problems(), st.data())
def test_exact_filtered_topk_equals_full_argsort_over_the_remaining_items(problem, data):
    vectors, bias, queries, k = problem
    n, m = len(vectors), len(queries)
    allowed = data.draw(st.none() | hnp.arrays(np.bool_, (n,)))
    exclude = [data.draw(st.lists(st.integers(0, n - 1), max_size=n)) for _ in range(m)]
    scores = (queries @ vectors.T + (0 if bias is None else bias)).astype(np.float64)
    for r, row in enumerate(exclude):
        scores[r, row] = -np.inf
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    ids, got = ExactRetriever(vectors, bias).search(queries, k, exclude=exclude, allowed=allowed)
    for r in range(m):
        available = int(np.isfinite(scores[r]).sum())
        want = min(k, available)
        expected = _full_sort(scores[r : r + 1], want)[0]
        np.testing.assert_array_equal(ids[r, :want], expected)
        assert (ids[r, want:] == -1).all()


def test_score_retriever_prefers_an_allowed_minus_inf_item_to_an_excluded_one():
    scores = np.array([[5.0, -np.inf, np.nan, 4.0, 3.0]], dtype=np.float32)
    ids, got = ScoreRetriever(5).search(scores, 4, exclude=[np.array([0, 3])])
    # items 4, then 1 and 2 (both rank as -inf; lower id first); 0 and 3 are excluded
    np.testing.assert_array_equal(ids[0], [4, 1, 2, -1])
    assert got[0, 0] == 3.0 and np.isneginf(got[0, 1]) and np.isnan(got[0, 2])


def test_score_retriever_equals_the_exact_retriever(catalogue, exact):
    vectors, bias, queries = catalogue
    scores = queries[:20] @ vectors.T + bias
    seen = [np.arange(r, 5000, 7) for r in range(20)]
    a = ScoreRetriever(N_ITEMS).search(scores, 10, exclude=seen)
    b = exact.search(queries[:20], 10, exclude=seen)
    np.testing.assert_array_equal(a[0], b[0])


# ------------------------------------------------------------------ faiss recall
@pytest.mark.parametrize("name", ["hnsw", "ivf"])
def test_faiss_recall_at_10_against_exact_is_at_least_095(name, request, catalogue, exact):
    _, _, queries = catalogue
    truth, _ = exact.search(queries, 10)
    found, scores = request.getfixturevalue(name).search(queries, 10)
    assert recall_at(found, truth) >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_faiss_scores_are_the_exact_inner_products_with_bias(catalogue, hnsw):
    vectors, bias, queries = catalogue
    ids, scores = hnsw.search(queries[:50], 10)
    expected = np.einsum("md,mkd->mk", queries[:50], vectors[ids]) + bias[ids]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


def test_ivf_recall_drops_with_a_single_probe(catalogue, exact):
    """The recall test can fail: one IVF list of many misses neighbours."""
    vectors, bias, queries = catalogue
    low = FaissRetriever(vectors[:5000], bias[:5000], kind="ivf", nlist=64, nprobe=1)
    truth, _ = ExactRetriever(vectors[:5000], bias[:5000]).search(queries, 10)
    assert recall_at(low.search(queries, 10)[0], truth) < 0.95


# ---------------------------------------------------------------------- filters
def test_excluded_items_never_come_back_and_k_results_remain_when_90_percent_are_excluded(
    any_retriever, catalogue, exact
):
    _, _, queries = catalogue
    q = queries[:8]
    # exclude the exact top 90 % of the catalogue for each query
    ranked, _ = exact.search(q, int(0.9 * N_ITEMS))
    exclude = list(ranked)
    ids, scores = any_retriever.search(q, 10, exclude=exclude)
    assert (ids >= 0).all() and np.isfinite(scores).all()
    for r in range(len(q)):
        assert not set(ids[r]) & set(exclude[r])
        assert len(set(ids[r])) == 10
    # past the over-fetch, the scan is exact: the best remaining items
    truth, _ = exact.search(q, 10, exclude=exclude)
    assert recall_at(ids, truth) == 1.0


def _as_csr(lists: list[np.ndarray]) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(x) for x in lists])
    cols = np.concatenate(lists)
    return sp.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(len(lists), N_ITEMS))


def test_a_typical_seen_list_is_filtered_by_over_fetching(any_retriever, catalogue, exact):
    """200 seen items per user: half among the user's exact top 100, half anywhere."""
    _, _, queries = catalogue
    rng = np.random.default_rng(7)
    ranked, _ = exact.search(queries, 100)
    seen = _as_csr([np.union1d(rng.choice(top, 100), rng.choice(N_ITEMS, 100)) for top in ranked])
    ids, _ = any_retriever.search(queries, 10, exclude=seen)
    assert (ids >= 0).all()
    assert not (seen[np.arange(len(queries))[:, None], ids].toarray() != 0).any()
    truth, _ = exact.search(queries, 10, exclude=seen)
    assert recall_at(ids, truth) >= 0.9


def test_excluding_each_users_top_200_still_gives_10_good_results(any_retriever, catalogue, exact):
    _, _, queries = catalogue
    ranked, _ = exact.search(queries, 200)
    seen = list(ranked)
    ids, _ = any_retriever.search(queries, 10, exclude=seen)
    assert (ids >= 0).all()
    assert not any(set(i) & set(s) for i, s in zip(ids, seen, strict=True))
    truth, _ = exact.search(queries, 10, exclude=seen)
    assert recall_at(ids, truth) >= 0.75  # ranks 201-210: deep for an index, searched harder


def test_the_allowed_mask_is_respected_without_losing_results(any_retriever, catalogue):
    _, _, queries = catalogue
    rng = np.random.default_rng(5)
    for share in (0.5, 0.01):
        allowed = rng.random(N_ITEMS) < share
        ids, _ = any_retriever.search(queries[:20], 10, allowed=allowed)
        assert (ids >= 0).all()
        assert allowed[ids].all()


def test_fewer_available_items_than_k_pad_with_minus_one(any_retriever, catalogue):
    _, _, queries = catalogue
    allowed = np.zeros(N_ITEMS, dtype=bool)
    allowed[[3, 70, 900, 10_000, 19_999]] = True
    exclude = [np.array([70]), np.array([], dtype=np.int64), np.array([3, 70, 900, 10_000, 19_999])]
    ids, scores = any_retriever.search(queries[:3], 10, exclude=exclude, allowed=allowed)
    assert sorted(ids[0, :4]) == [3, 900, 10_000, 19_999] and (ids[0, 4:] == -1).all()
    assert sorted(ids[1, :5]) == [3, 70, 900, 10_000, 19_999] and (ids[1, 5:] == -1).all()
    assert (ids[2] == -1).all() and np.isneginf(scores[2]).all()
    assert np.isneginf(scores[0, 4:]).all() and np.isfinite(scores[0, :4]).all()


def test_a_short_first_fetch_is_retried_deeper(any_retriever, catalogue, exact):
    """A mask that rules out each query's own top 1000 items: the first fetch (k / share allowed)
    comes back empty and must be doubled until it reaches past them."""
    _, _, queries = catalogue
    q = queries[:10]
    ranked, _ = exact.search(q, 1000)
    allowed = np.ones((len(q), N_ITEMS), dtype=bool)
    np.put_along_axis(allowed, ranked, False, axis=1)
    ids, scores = any_retriever.search(q, 10, allowed=allowed)
    assert (ids >= 0).all() and np.isfinite(scores).all()
    assert np.take_along_axis(allowed, ids, axis=1).all()
    truth, _ = exact.search(q, 10, allowed=allowed)
    assert recall_at(ids, truth) >= 0.6


def test_a_per_query_allowed_mask(any_retriever, catalogue):
    _, _, queries = catalogue
    allowed = np.zeros((2, N_ITEMS), dtype=bool)
    allowed[0, :100] = True
    allowed[1, -100:] = True
    ids, _ = any_retriever.search(queries[:2], 10, allowed=allowed)
    assert (ids[0] < 100).all() and (ids[0] >= 0).all() and (ids[1] >= N_ITEMS - 100).all()


# ------------------------------------------------------------------------ bias
@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_an_item_with_a_huge_bias_comes_first(kind, catalogue):
    vectors, _, queries = catalogue
    vectors, queries = vectors[:3000], queries[:20]
    bias = np.zeros(3000, dtype=np.float32)
    bias[1234] = 100.0
    params = {"exact": {}, "hnsw": {"M": 16, "ef_construction": 40}, "ivf": {"nlist": 16}}[kind]
    r = make_retriever(vectors, bias, backend=kind, **params)
    ids, scores = r.search(queries, 5)
    assert (ids[:, 0] == 1234).all()
    assert (scores[:, 0] > 90).all()
    without, _ = make_retriever(vectors, None, backend="exact").search(queries, 5)
    assert not (without[:, 0] == 1234).all()


def test_without_the_exact_head_an_ivf_index_misses_a_bias_outlier(catalogue):
    """Why the head exists: IVF lists are ranked by their centroid, which one outlier barely moves."""
    vectors, _, queries = catalogue
    bias = np.zeros(3000, dtype=np.float32)
    bias[1234] = 100.0
    r = FaissRetriever(vectors[:3000], bias, kind="ivf", nlist=16, exact_head=0)
    ids, _ = r.search(queries[:20], 5)
    assert not (ids[:, 0] == 1234).all()


# ------------------------------------------------------------------- save/load
@pytest.mark.parametrize("name", ["exact", "hnsw", "ivf"])
def test_save_load_round_trip_gives_identical_results(name, request, catalogue, tmp_path):
    r = request.getfixturevalue(name)
    _, _, queries = catalogue
    seen = [np.arange(r_, 300, 3) for r_ in range(50)]
    before = r.search(queries[:50], 10, exclude=seen)
    r.save(tmp_path / "idx")
    loaded = Retriever.load(tmp_path / "idx")
    assert type(loaded) is type(r) and loaded.n_items == r.n_items and loaded.dim == r.dim
    after = loaded.search(queries[:50], 10, exclude=seen)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    rare = np.zeros(N_ITEMS, dtype=bool)
    rare[::500] = True  # 40 items: the filtered exact scan
    np.testing.assert_array_equal(r.search(queries[:5], 10, allowed=rare)[0], loaded.search(queries[:5], 10, allowed=rare)[0])
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["kind"] == "retriever"
    if name != "exact":
        assert (tmp_path / "idx" / "index.faiss").read_bytes()[:4] != b"\x80\x04\x95\x00"  # not a pickle
        assert manifest["faiss_kind"] == name


def test_loading_a_corrupt_index_is_a_clear_error(hnsw, tmp_path):
    hnsw.save(tmp_path / "idx")
    (tmp_path / "idx" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="index.faiss"):
        load_retriever(tmp_path / "idx")
    with pytest.raises(ArtifactError, match="not a directory"):
        load_retriever(tmp_path / "nothing")


def test_search_params_can_be_changed_after_build(hnsw, ivf):
    assert hnsw.set_search_params(ef_search=32).ef_search == 32
    hnsw.set_search_params(ef_search=64)
    with pytest.raises(ConfigError, match="nprobe"):
        hnsw.set_search_params(nprobe=3)
    with pytest.raises(ConfigError, match="ef_search"):
        ivf.set_search_params(ef_search=3)


# ----------------------------------------------------------------- make_retriever
def test_make_retriever_picks_exact_below_the_threshold_and_faiss_above(catalogue):
    vectors, bias, _ = catalogue
    small = make_retriever(vectors[:500], bias[:500], exact_max_items=1000, M=8)
    assert isinstance(small, ExactRetriever)
    big = make_retriever(vectors[:1500], bias[:1500], exact_max_items=1000, M=8, ef_construction=20)
    assert isinstance(big, FaissRetriever) and big.kind == "hnsw" and big.M == 8
    ivf = make_retriever(vectors[:1500], backend="ivf", nlist=8)
    assert isinstance(ivf, FaissRetriever) and ivf.kind == "ivf" and ivf.nlist == 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "annoy"}, "backend"),
        ({"backend": "exact", "M": 8}, "exact backend takes no parameters"),
        ({"backend": "hnsw", "nlist": 8}, "nlist"),
        ({"backend": "ivf", "nlist": 0}, "nlist"),
        ({"backend": "ivf", "nlist": 5000}, "nlist"),
        ({"backend": "faiss", "kind": "lsh"}, "kind"),
        ({"backend": "hnsw", "kind": "ivf"}, "conflicts"),
    ],
)
def test_make_retriever_rejects_bad_parameters(kwargs, match, catalogue):
    vectors, _, _ = catalogue
    with pytest.raises(ConfigError, match=match):
        make_retriever(vectors[:1000], **kwargs)


def test_bad_vectors_and_bad_search_arguments_are_named(exact):
    with pytest.raises(DataError, match="item_vectors"):
        ExactRetriever(np.array([[1.0, np.nan]]))
    with pytest.raises(DataError, match="item_bias"):
        ExactRetriever(np.ones((3, 2)), np.ones(4))
    q = np.zeros((2, DIM), dtype=np.float32)
    with pytest.raises(ConfigError, match="'k'"):
        exact.search(q, 0)
    with pytest.raises(ConfigError, match="queries"):
        exact.search(np.zeros((2, DIM + 1)), 5)
    with pytest.raises(ConfigError, match="one entry per query"):
        exact.search(q, 5, exclude=[np.array([1])])
    with pytest.raises(ConfigError, match=r"item id 20000, outside \[0, 20000\)"):
        exact.search(q, 5, exclude=[np.array([1]), np.array([N_ITEMS])])
    with pytest.raises(ConfigError, match="boolean"):
        exact.search(q, 5, allowed=np.ones(N_ITEMS, dtype=np.int64))
    with pytest.raises(ConfigError, match="shape"):
        exact.search(q, 5, exclude=sp.csr_matrix((3, N_ITEMS)))


# ---------------------------------------------------------------- attribute rules
@pytest.fixture
def items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "genre": ["Comedy", "Drama", "Comedy", "Action", None],
            "genres": ["Action|Comedy", "Drama", "Dark Comedy", "Comedy", "Action"],
            "price": [10.0, 25.0, 19.99, np.nan, 5.0],
            "in_stock": [True, True, False, True, True],
            "tags": [["new"], [], ["new", "sale"], ["sale"], []],
        }
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"genre": "Comedy"}, [1, 0, 1, 0, 0]),
        ("genre=Comedy", [1, 0, 1, 0, 0]),
        ({"price": {"lt": 20}}, [1, 0, 1, 0, 1]),
        ("price < 20", [1, 0, 1, 0, 1]),
        ({"price": {"ge": 10, "le": 20}}, [1, 0, 1, 0, 0]),
        ({"genre": ["Comedy", "Action"]}, [1, 0, 1, 1, 0]),
        ("genre in Comedy|Action", [1, 0, 1, 1, 0]),
        ("genre not in Comedy|Action", [0, 1, 0, 0, 1]),
        ({"genres": {"contains": "Comedy"}}, [1, 0, 0, 1, 0]),
        ("genres~Comedy", [1, 0, 0, 1, 0]),
        ({"tags": {"contains": "sale"}}, [0, 0, 1, 1, 0]),
        ("in_stock=true, price<20", [1, 0, 0, 0, 1]),
        ("in_stock = false and genre = 'Comedy'", [0, 0, 1, 0, 0]),
        ({"genre": {"ne": "Comedy"}}, [0, 1, 0, 1, 1]),
    ],
)
def test_attribute_filter_turns_rules_into_allowed_masks(items, rule, expected):
    mask = attribute_filter(items, rule)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, np.array(expected, dtype=bool))


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ({"colour": "red"}, "no column 'colour'.*'genre'"),
        ("colour=red", "no column 'colour'"),
        ({"price": {"less": 20}}, "unknown operator 'less' on column 'price'.*lt"),
        ({"price": {"lt": "cheap"}}, "column 'price' is numeric; 'cheap' is not a number"),
        ("price < cheap", "column 'price' is numeric"),
        ("in_stock=maybe", "column 'in_stock' is boolean"),
        ({"price": {"contains": "1"}}, "contains"),
        ({"genre": {"in": "Comedy"}}, "needs a list"),
        ("genre Comedy", "cannot read 'genre Comedy'"),
        ("", "empty"),
        (42, "string or a dict"),
    ],
)
def test_attribute_filter_errors_name_the_problem(items, rule, match):
    with pytest.raises(ConfigError, match=match):
        attribute_filter(items, rule)


def test_attribute_filter_checks_the_catalogue_size(items):
    with pytest.raises(ConfigError, match="5 rows; the catalogue has 6 items"):
        attribute_filter(items, {"genre": "Comedy"}, n_items=6)


@pytest.mark.parametrize("dtype", [object, "string", "float64", "Int64"])
def test_a_missing_value_passes_ne_and_not_in_only_whatever_the_column_type(dtype):
    """Row 2 has no value: it is not equal to 1 and not in {1}, and fails every other clause (docs/guide/serving.md)."""
    numeric = dtype in ("float64", "Int64")
    col = pd.Series([1, 2, None], dtype=dtype) if numeric else pd.Series(["1", "2", None], dtype=dtype)
    table = pd.DataFrame({"c": col})
    passes = {rule: bool(attribute_filter(table, rule)[2]) for rule in
              ("c=1", "c!=1", "c<3", "c<=3", "c>0", "c>=0", "c in 1|2", "c not in 1|2", "c~1")
              if not (numeric and "~" in rule)}
    assert {r for r, p in passes.items() if p} == {"c!=1", "c not in 1|2"}, passes


def test_the_text_form_s_in_lists_have_the_json_form_s_limit():
    from zenrec.retrieval.filters import MAX_VALUES

    table = pd.DataFrame({"c": ["a", "b"]})
    assert attribute_filter(table, "c in " + "|".join(["a"] * MAX_VALUES)).tolist() == [True, False]
    with pytest.raises(ConfigError, match=f"lists {MAX_VALUES + 1} values; at most {MAX_VALUES}"):
        attribute_filter(table, "c not in " + "|".join(["a"] * (MAX_VALUES + 1)))
