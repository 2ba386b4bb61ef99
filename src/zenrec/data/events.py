"""The event vocabulary a dataset declares once and every later step reads: :class:`EventTypes`.

A log names its events its own way (``buy``, ``basket``, ``fav``).  At
ingest the user maps those names onto zenrec's canonical types (view, click,
favorite, cart, purchase, rating; ``zenrec ingest --event-alias
buy=purchase``) and may re-weigh them (``--event-weight cart=5``).  The
result is stored with the dataset, carried into every model bundle trained
from it and into every retrained version, and read by the server (an event
posted as ``buy`` is stored as ``purchase``; an unknown name is refused),
by retraining (the weight of a stored event) and by the online report
(``purchase`` is a conversion, whatever the log called it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zenrec.errors import ArtifactError

__all__ = ["EventTypes", "DEFAULT_EVENT_WEIGHTS", "DEFAULT_EVENT_ALIASES"]

#: Default strength of each event type: a purchase says more than a view.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "favorite": 3.0,
    "cart": 4.0,
    "purchase": 8.0,
    "rating": 1.0,
}

#: Other spellings of the canonical types that every ingest accepts; a log's own names are declared with
#: ``CleaningConfig.event_aliases`` (``zenrec ingest --event-alias buy=purchase``).
DEFAULT_EVENT_ALIASES: dict[str, str] = {"favourite": "favorite"}


@dataclass(frozen=True)
class EventTypes:
    """Canonical event types with their weights, and the aliases that name them.

    >>> ev = EventTypes(aliases={"buy": "purchase"})
    >>> ev.canonical("BUY"), ev.canonical("favourite"), ev.canonical("wishlist")
    ('purchase', 'favorite', None)
    >>> ev.weight("buy")
    8.0
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    aliases: Mapping[str, str] = field(default_factory=dict)

    def canonical(self, name: str) -> str | None:
        """The type a raw event name counts as (its alias, a default alias, or itself); None: unknown.

        Names match without regard to case or surrounding spaces.
        """
        key = str(name).strip().lower()
        key = self.aliases.get(key, key)
        if key not in self.weights and DEFAULT_EVENT_ALIASES.get(key) in self.weights:
            key = DEFAULT_EVENT_ALIASES[key]
        return key if key in self.weights else None

    def weight(self, name: str) -> float | None:
        """The training weight of a raw event name; None when the name is unknown."""
        t = self.canonical(name)
        return None if t is None else float(self.weights[t])

    def accepted(self) -> str:
        """The accepted names for a message: ``view, click, … (aliases: buy→purchase)``."""
        text = ", ".join(self.weights)
        if self.aliases:
            text += " (aliases: " + ", ".join(f"{a}→{t}" for a, t in sorted(self.aliases.items())) + ")"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in dataset and model manifests."""
        return {"aliases": dict(self.aliases), "weights": {k: float(v) for k, v in self.weights.items()}}

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> EventTypes:
        """Read :meth:`to_dict`'s form back; None or {} (written before event vocabularies) gives the defaults."""
        if not data:
            return cls()
        try:
            if not isinstance(data, Mapping):
                raise TypeError(f"expected an object, got {type(data).__name__}")
            aliases = {str(k).strip().lower(): str(v).strip().lower() for k, v in dict(data.get("aliases") or {}).items()}
            weights = {str(k).strip().lower(): float(v)
                       for k, v in dict(data.get("weights") or DEFAULT_EVENT_WEIGHTS).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"{source}: corrupted 'events' ({exc})") from None
        bad = [f"{a}→{t}" for a, t in aliases.items() if t not in weights]
        if bad or not all(w > 0 for w in weights.values()):
            raise ArtifactError(f"{source}: corrupted 'events' (an alias to no type, or a weight ≤ 0)")
        return cls(weights, aliases)
