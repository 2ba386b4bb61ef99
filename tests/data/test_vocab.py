"""Vocabulary: a reversible id mapping with an explicit unknown-id policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zenrec.data import Vocabulary
from zenrec.errors import UnknownIdError

ints = st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=50, unique=True)
# NUL cannot end a numpy unicode string and lone surrogates are not UTF-8: ids read from files never hold them
texts = st.lists(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8), min_size=1, max_size=50, unique=True)


@settings(max_examples=80, deadline=None)
@given(ids=st.one_of(ints, texts), data=st.data())
def test_round_trip(ids, data):
    v = Vocabulary(ids)
    assert len(v) == len(ids)
    pick = data.draw(st.lists(st.sampled_from(ids), max_size=20))
    idx = v.index(pick) if pick else np.array([], dtype=np.int64)
    assert idx.tolist() == [ids.index(x) for x in pick]
    assert v.ids(idx).tolist() == pick
    assert v.ids(np.arange(len(v))).tolist() == ids
    assert v.is_integer == isinstance(ids[0], int)


@settings(max_examples=60, deadline=None)
@given(ids=st.one_of(ints, texts), data=st.data())
def test_unknown_ids_mask_or_raise(ids, data):
    v = Vocabulary(ids)
    known = set(ids)
    if isinstance(ids[0], int):
        unknown = data.draw(st.integers(-(2**62), 2**62).filter(lambda x: x not in known))
    else:
        unknown = data.draw(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8).filter(lambda x: x not in known))
    got = v.index([ids[0], unknown], missing="mask")
    assert got.tolist() == [0, -1]
    assert unknown not in v and ids[0] in v
    with pytest.raises(UnknownIdError, match="not seen"):
        v.index([unknown])


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=40))
def test_from_values_first_seen_order(values):
    v, codes = Vocabulary.from_values(np.array(values))
    assert v.ids(codes).tolist() == values
    assert v.all_ids.tolist() == list(dict.fromkeys(values))


def test_integer_vocab_accepts_text_digits_and_masks_garbage():
    v = Vocabulary([10, 20])
    assert v.index(["20", 10]).tolist() == [1, 0]
    assert v.index(["x", 1.5], missing="mask").tolist() == [-1, -1]


def test_rejects_duplicates_and_floats():
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(TypeError, match="integers or strings"):
        Vocabulary([1.5, 2.5])


# text mixed into integer ids is parsed as a float: ids beyond 2**53 are not exact there on either path
exact_ints = st.lists(st.integers(-(2**53), 2**53), min_size=1, max_size=50, unique=True)


@settings(max_examples=80, deadline=None)
@given(ids=st.one_of(exact_ints, texts), data=st.data())
def test_few_ids_agree_with_bulk_lookup(ids, data):
    """Lookups of a few ids take a per-id hash path; it must answer exactly as the bulk path."""
    v = Vocabulary(ids)
    junk = st.one_of(st.integers(), st.text(max_size=6), st.sampled_from(["1.0", " 3", "nan", "1e3"]))
    pick = data.draw(st.lists(st.one_of(st.sampled_from(ids), junk), min_size=1, max_size=10))
    few = v.index(pick, missing="mask")
    bulk = v.index(pick * 17, missing="mask")[: len(pick)]  # 17+ ids: the bulk path
    assert few.tolist() == bulk.tolist()
