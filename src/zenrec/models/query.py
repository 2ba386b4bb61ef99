"""The seam's types: one :class:`Query` in, one :class:`Recommendations` out, and the capabilities a model declares.

The same two types travel through every layer.  What changes is the id
space: a model speaks contiguous integer indices, a
:class:`~zenrec.models.bundle.ModelBundle` (and the CLI and the server above
it) speaks the raw ids of the logs.

* :class:`Query` — who to recommend for (a known user, a history, an
  anonymous session), what never to return, which items are allowed, how many.
* :class:`Recommendations` — item ids best first, their scores and ranks,
  optional reasons, and whether a fallback answered.
* :class:`Vectors` — the user and item vectors of a model whose score is
  ``u·v + b`` (ANN retrieval, cosine similarity of items).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from zenrec.errors import ConfigError
from zenrec.retrieval.base import check_k

__all__ = ["Query", "RecItem", "Recommendations", "Vectors", "check_k"]


@dataclass(frozen=True)
class Query:
    """One request for recommendations.

    ``user``: a known user (an index at the model, a raw id above it); None or
    an unknown user is anonymous.  ``history``: items, oldest first — at the
    model, the whole history to score from; above it (bundle, server), the
    items since training, appended to the user's stored history.
    ``exclude``: items never to return; ``exclude_seen`` also leaves out the
    user's history.  ``filter``: the allowed items — a boolean mask over the
    catalogue or a list of item ids (the server also takes an attribute rule).
    ``k``: the list length, checked by :func:`check_k`.  ``reasons``: ask for
    the history items that explain each recommendation.
    """

    user: Any = None
    history: Sequence[Any] | np.ndarray | None = None
    k: int = 10
    exclude: Sequence[Any] | np.ndarray | None = None
    exclude_seen: bool = True
    filter: Any = None
    reasons: bool = False

    def __post_init__(self) -> None:
        check_k(self.k)
        if not isinstance(self.exclude_seen, (bool, np.bool_)):
            raise ConfigError(f"the 'exclude_seen' parameter must be true or false; got {self.exclude_seen!r}")
        if not isinstance(self.reasons, (bool, np.bool_)):
            raise ConfigError(f"the 'reasons' parameter must be true or false; got {self.reasons!r}")

    def with_(self, **changes: Any) -> Query:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


class RecItem(NamedTuple):
    """One recommended item of a :class:`Recommendations` list."""

    item: Any
    score: float
    rank: int
    title: str | None = None
    reasons: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Recommendations:
    """One ranked list: item ids best first, their scores, and where it came from.

    ``ranks`` are 1-based.  ``reasons`` (when asked for) holds one list of
    reason dicts per item.  ``fallback`` names what answered instead of the
    model (``"popular"`` for a user the model cannot score), None otherwise.
    ``titles``, ``model_version``, ``list_id`` and ``method`` (how similar
    items were measured) are filled by the layers that know them.
    """

    items: np.ndarray
    scores: np.ndarray
    user: Any = None
    reasons: list[list[dict[str, Any]]] | None = None
    fallback: str | None = None
    titles: np.ndarray | None = None
    model_version: str | None = None
    list_id: str | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        if len(self.items) != len(self.scores):
            raise ValueError(f"{len(self.items)} items but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[RecItem]:
        """The items one by one, as :class:`RecItem` (item, score, rank, title, reasons)."""
        for j in range(len(self.items)):
            yield RecItem(_plain(self.items[j]), float(self.scores[j]), j + 1,
                          None if self.titles is None else str(self.titles[j]),
                          None if self.reasons is None else self.reasons[j])

    @property
    def ranks(self) -> np.ndarray:
        """1-based ranks, best first."""
        return np.arange(1, len(self.items) + 1)

    def with_(self, **changes: Any) -> Recommendations:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def from_top(cls, ids: np.ndarray, scores: np.ndarray, **fields: Any) -> Recommendations:
        """One row of a top-k selection as a list: empty slots (id ``-1``) and non-finite scores are no
        recommendation (and not JSON), so the list may be shorter than k."""
        ids, scores = np.asarray(ids).reshape(-1), np.asarray(scores).reshape(-1)
        keep = (ids >= 0) & np.isfinite(scores)
        return cls(ids[keep], scores[keep], **fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the HTTP API's list shape): ``user``, ``items`` [{item, score, title, reasons}], …"""
        items = [{"item": r.item, "score": r.score, "title": r.title, "reasons": r.reasons} for r in self]
        out: dict[str, Any] = {"user": _plain(self.user), "items": items, "model_version": self.model_version,
                               "list_id": self.list_id, "fallback": self.fallback}
        if self.method is not None:
            out["method"] = self.method
        return out

    @staticmethod
    def frame(lists: Sequence[Recommendations]) -> pd.DataFrame:
        """Many lists as one long table: ``user_id, rank, item_id, score`` (+ ``title``), ``fallback``."""
        n = [len(r) for r in lists]
        cols: dict[str, Any] = {
            "user_id": np.repeat(np.asarray([r.user for r in lists], dtype=object), n),
            "rank": np.concatenate([r.ranks for r in lists]) if lists else np.empty(0, np.int64),
            "item_id": np.concatenate([np.asarray(r.items) for r in lists]) if lists else np.empty(0),
            "score": np.concatenate([r.scores for r in lists]).astype(np.float32) if lists else np.empty(0, np.float32),
        }
        if lists and all(r.titles is not None for r in lists):
            cols["title"] = np.concatenate([r.titles for r in lists])
        cols["fallback"] = np.repeat(np.asarray([r.fallback or "" for r in lists], dtype=object), n)
        out = pd.DataFrame(cols)
        if len(out) and all(not isinstance(r.user, (str, bytes)) for r in lists):
            out["user_id"] = out["user_id"].infer_objects()
        return out


@dataclass(frozen=True)
class Vectors:
    """A model's score as a dot product: ``score(u, i) = users[u] · items[i] + item_bias[i]``.

    ``users`` holds the known users' vectors (``n_users × d``), ``items`` the
    item vectors (``n_items × d``), ``item_bias`` one number per item or None.
    Serving retrieves with them (exact or ANN); item similarity defaults to
    the cosine of ``items``.  A model whose score is an increasing function of
    that product (e.g. a log-probability) names it as ``link``: retrieval ranks
    by the product, :meth:`scores` gives the model's own scores back.
    """

    users: np.ndarray
    items: np.ndarray
    item_bias: np.ndarray | None = None
    #: an increasing function from the dot product to the model's score (None: the score is the dot product)
    link: Callable[[np.ndarray], np.ndarray] | None = None

    def scores(self, dots: np.ndarray) -> np.ndarray:
        """The model's scores from dot products ``u·v + b`` (what a retriever ranks by), float32."""
        d = np.asarray(dots, dtype=np.float32)
        return d if self.link is None else np.asarray(self.link(d), dtype=np.float32)


def _plain(x: Any) -> Any:
    """A numpy scalar as a plain Python value (for JSON)."""
    return x.item() if isinstance(x, np.generic) else x
