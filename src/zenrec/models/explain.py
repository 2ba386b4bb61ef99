"""Explanations: why a model gave an item its score, computed from the model's own scoring.

A model that can explain itself overrides :meth:`zenrec.models.base.Recommender.explain`
and returns one :class:`Explanation` per asked item.  An explanation splits
the item's score as

``score = baseline + Σ contributions + residual``

* ``contributions`` — what the method attributes the score to: history items
  (EASE, ItemKNN, ALS, transition, sequence models), latent factors
  (logistic MF) or named parts (two-tower);
* ``baseline`` — the part no input is credited with by construction (an item
  bias, the score of an empty history for integrated gradients, popularity
  tie-breaks);
* ``residual`` — what is left over: 0 for exact splits, the approximation
  error of integrated gradients, or the gap between a stored user vector and
  the re-solve from the user's items (ALS, logistic MF).

``method`` names how the split was made (see :data:`METHODS`); fallbacks
(``popular``, ``similarity``) carry no made-up weights.  Explanations are
JSON-ready (:meth:`Explanation.to_dict`) and say themselves in one line
(:attr:`Explanation.sentence`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["METHODS", "Contribution", "Explanation", "item_explanations"]

#: how an explanation was computed, by ``method``
METHODS: dict[str, str] = {
    "weights": "the model's item-item weights of the history items: an exact split of the score (EASE, ItemKNN)",
    "als-solve": "each history item's term c_uj·y_iᵀA⁻¹y_j in the user's least-squares solve (ALS): an exact split",
    "factors": "the latent factors u_k·v_ik of the user and item vectors, the item bias as baseline (logistic MF)",
    "integrated-gradients": "integrated gradients on the history items' input embeddings (sequence models); the "
                            "baseline is the score with those embeddings zeroed",
    "transition": "the user's last item: what followed it in training (transition); popularity breaks ties",
    "parts": "the additive split of the user vector (two-tower): each pooled history item, the user id and the "
             "user features, dotted with the item vector; the item side's split (id, features) is in extra",
    "tasks": "the ranking's task terms w_t·log σ(logit_t) (multi-task): the click and the purchase part",
    "popular": "a popularity fallback: the model could not personalise, nothing of the user is credited",
    "similarity": "not the model's score: the user's items most similar to the item (the model cannot split its "
                  "scores); weights are similarities",
}


@dataclass(frozen=True)
class Contribution:
    """One part of a score: a history ``item`` (an index at the model, a raw id above it) or a named part
    (``name``: ``"factor 3"``, ``"text"``, …), with its ``weight`` in the model's score units."""

    weight: float
    item: Any = None
    name: str | None = None
    title: str | None = None

    @property
    def label(self) -> str:
        """How a person reads it: the title, else the item id, else the name."""
        if self.title:
            return self.title
        if self.item is not None:
            return f"item {self.item}"
        return str(self.name)

    def to_dict(self, total: float | None = None) -> dict[str, Any]:
        """JSON-ready: ``item`` or ``name``, ``title``, ``weight`` and, given the total, ``share`` of it."""
        out: dict[str, Any] = {}
        if self.item is not None:
            out["item"] = _plain(self.item)
        if self.name is not None:
            out["name"] = self.name
        if self.title is not None:
            out["title"] = self.title
        out["weight"] = float(self.weight)
        if total is not None:
            out["share"] = float(self.weight / total) if total else None
        return out


@dataclass(frozen=True)
class Explanation:
    """Why ``item`` got ``score``: ``score = baseline + Σ contributions + residual`` (see the module docstring).

    ``contributions`` are strongest first (by absolute weight).  ``additive``
    is False where the weights are not parts of the score (``parts``,
    ``similarity``).  ``note`` says in words what the residual or the method
    leaves out.
    """

    item: Any
    score: float
    method: str
    contributions: tuple[Contribution, ...] = ()
    baseline: float = 0.0
    residual: float = 0.0
    additive: bool = True
    note: str | None = None
    user: Any = None
    title: str | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Explanation:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @property
    def total(self) -> float:
        """The sum of the contributions' weights."""
        return float(sum(c.weight for c in self.contributions))

    def reconciled(self, score: float, note: str | None = None) -> Explanation:
        """This explanation for the score a list really showed: the gap goes to ``residual`` (with ``note``)."""
        if not self.additive:
            return self.with_(score=float(score))
        residual = float(score) - self.baseline - self.total
        moved = abs(float(score) - self.score) > 1e-4 * max(1.0, abs(float(score)))  # not the score it split
        return self.with_(score=float(score), residual=residual, note=(note or self.note) if moved else self.note)

    @property
    def sentence(self) -> str:
        """One line for a person, e.g. ``Because of Star Wars and Alien in your history``."""
        if self.method == "popular":
            return "Popular with everyone: the model has nothing of yours to go on."
        if self.method == "parts":
            top = [c for c in self.contributions if c.weight > 0][:2]
            if not top:
                return "Nothing of yours raised this score; it ranks by the model's general scores."
            if all(c.item is not None for c in top):
                return f"Because of {_and([c.label for c in top])} in your history."
            words = {"user id": "your overall taste", "user features": "your profile"}
            return f"Mostly because of {_and([c.label if c.item is not None else words.get(str(c.name), str(c.name)) for c in top])}."
        if self.method == "tasks":
            named = [c for c in self.contributions if c.name]
            if not named:
                return "Ranked by the model's task heads."
            best = max(named, key=lambda c: c.weight)  # log-probabilities: the largest is the likeliest task
            return f"Ranked mostly by how likely you are to {best.name.split(' ')[0]} it."
        if self.method == "factors":
            top = [c.name for c in self.contributions if c.weight > 0 and c.name][:2]
            if not top:
                return "Your taste profile matches it weakly; its general appeal carries the score."
            return f"Matches your taste profile (mostly {_and(top)})."
        items = [c.label for c in self.contributions if c.weight > 0 and c.item is not None][:2]
        if not items:
            return "None of your items speaks for it; it ranks by the model's general scores."
        if self.method == "similarity":
            return f"Similar to {_and(items)} in your history."
        return f"Because of {_and(items)} in your history."

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the HTTP ``/why`` answer and ``zenrec explain --json``)."""
        total = self.total if self.additive else None
        return {
            "user": _plain(self.user), "item": _plain(self.item), "title": self.title, "model": self.model,
            "score": float(self.score), "method": self.method, "sentence": self.sentence,
            "contributions": [c.to_dict(total) for c in self.contributions],
            "baseline": float(self.baseline), "residual": float(self.residual), "additive": self.additive,
            "note": self.note, **({"extra": self.extra} if self.extra else {}),
        }

    def reasons(self, n: int = 3) -> list[dict[str, Any]]:
        """The ``n`` history items that raised the score most, as the reason dicts of a served list
        (``item``, ``title``, ``weight``, ``method``, ``share`` of the item contributions)."""
        items = [c for c in self.contributions if c.item is not None]
        total = float(sum(c.weight for c in items)) if self.additive else None
        out = []
        for c in sorted(items, key=lambda c: -c.weight)[:n]:
            if not c.weight > 0:
                break
            r: dict[str, Any] = {"item": _plain(c.item), "weight": float(c.weight), "method": self.method}
            if c.title is not None:
                r["title"] = c.title
            if total:
                r["share"] = float(c.weight / total)
            out.append(r)
        return out


def item_explanations(method: str, items: np.ndarray, history: np.ndarray, weights: np.ndarray,
                      scores: np.ndarray, baseline: np.ndarray | float = 0.0, note: str | None = None,
                      max_items: int | None = None) -> list[Explanation]:
    """One explanation per item from a ``len(history) × len(items)`` contribution block.

    ``scores`` are the model's scores of ``items``; the residual is whatever
    ``baseline + Σ weights`` misses.  Contributions are sorted strongest
    first and, with ``max_items``, cut to that many (the residual keeps the
    rest, so the split still adds up).
    """
    base = np.broadcast_to(np.asarray(baseline, dtype=np.float64), (len(items),))
    out = []
    for j, item in enumerate(np.asarray(items).reshape(-1)):
        col = np.asarray(weights[:, j], dtype=np.float64)
        order = np.argsort(-np.abs(col), kind="stable")
        if max_items is not None:
            order = order[:max_items]
        parts = tuple(Contribution(float(col[b]), item=int(history[b])) for b in order)
        kept = float(col[order].sum())
        out.append(Explanation(int(item), float(scores[j]), method, parts, float(base[j]),
                               float(scores[j]) - float(base[j]) - kept, note=note))
    return out


def _and(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def query_history(model: Any, query: Any) -> np.ndarray | None:
    """The history an index-level query is scored from: its own ``history`` when it has one, else the known
    user's stored history (:meth:`~zenrec.models.base.Recommender.history`); None when the model stores none."""
    if query.history is not None and len(query.history):
        return np.asarray(query.history, dtype=np.int64).reshape(-1)
    u = query.user
    if u is not None and 0 <= int(u) < int(model.n_users_):
        h = model.history(int(u))
        return None if h is None else np.asarray(h, dtype=np.int64).reshape(-1)
    return np.empty(0, dtype=np.int64)


def own_scores(model: Any, query: Any, items: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The model's own scores of ``items`` for ``query`` (float64) and the fallback that answered, if any."""
    rows, fallback = model.score_queries([query])
    return rows[0][np.asarray(items, dtype=np.int64)].astype(np.float64), fallback[0]


def explain_scores(model: Any, query: Any, items: Any) -> tuple[np.ndarray, np.ndarray, list[Explanation] | None]:
    """The opening every ``explain`` shares: the model is fitted, ``items`` as an int64 vector, the model's own
    scores of them, and the popularity explanations when a fallback answered (None when the model did)."""
    model._check_fitted()
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    scores, fallback = own_scores(model, query, items)
    return items, scores, None if fallback is None else popular_explanations(items, scores)


def popular_explanations(items: np.ndarray, scores: np.ndarray) -> list[Explanation]:
    """Explanations of a popularity answer: the whole score is the baseline, nothing is credited."""
    return [Explanation(int(i), float(s), "popular", (), float(s), 0.0,
                        note="the model could not personalise this answer")
            for i, s in zip(np.asarray(items).reshape(-1), scores, strict=True)]


def factor_explanations(user: np.ndarray, item_vectors: np.ndarray, item_bias: np.ndarray | None,
                        items: np.ndarray, scores: np.ndarray, note: str | None = None) -> list[Explanation]:
    """Split ``user · v_i + b_i`` into its latent factors (``factor k``: ``u_k·v_ik``), ``b_i`` the baseline."""
    out = []
    for j, i in enumerate(np.asarray(items, dtype=np.int64).reshape(-1)):
        terms = np.asarray(user, dtype=np.float64) * np.asarray(item_vectors[i], dtype=np.float64)
        order = np.argsort(-np.abs(terms), kind="stable")
        parts = tuple(Contribution(float(terms[k]), name=f"factor {k}") for k in order)
        base = 0.0 if item_bias is None else float(item_bias[i])
        out.append(Explanation(int(i), float(scores[j]), "factors", parts, base,
                               float(scores[j]) - base - float(terms.sum()), note=note))
    return out


def weights_explanations(model: Any, query: Any, items: np.ndarray, block: Any) -> list[Explanation]:
    """Explanations of an item-item model whose score is ``Σ_{j in history} W[j, i]`` (EASE, ItemKNN):
    ``block(history, items)`` gives the ``history × items`` weights; they are the contributions."""
    model._check_fitted()
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    scores, fallback = own_scores(model, query, items)
    hist = query_history(model, query)
    if fallback is not None or hist is None or not len(hist):
        return popular_explanations(items, scores)
    hist = np.unique(hist)
    return item_explanations("weights", items, hist, np.asarray(block(hist, items), dtype=np.float64), scores)
