"""Column mapping and event-type weights: how a raw log maps onto zenrec's fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zenrec.data.events import DEFAULT_EVENT_ALIASES, DEFAULT_EVENT_WEIGHTS, EventTypes

__all__ = ["ColumnMap", "CleaningConfig", "DEFAULT_EVENT_WEIGHTS", "DEFAULT_EVENT_ALIASES", "TIMESTAMP_MIN",
           "TIMESTAMP_MAX"]

#: The range of event times zenrec keeps, in epoch seconds: 1970-01-01 to 9999-12-31 23:59:59 (what
#: ``datetime`` can hold, so every later window or date computation is defined).  Ingest counts a time
#: outside it as a malformed row; the event store refuses it.
TIMESTAMP_MIN = 0
TIMESTAMP_MAX = 253_402_300_799



class ColumnMap(BaseModel):
    """Which raw columns hold the user, item, timestamp, event type and value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str = Field("user_id", description="column with the user id")
    item: str = Field("item_id", description="column with the item id")
    timestamp: str | None = Field(
        None, description="column with the event time (epoch seconds or a date string)"
    )
    event: str | None = Field(None, description="column with the event type (view, click, …)")
    value: str | None = Field(None, description="column with a numeric value such as a rating")

    def required(self) -> list[str]:
        """Every mapped column name, in field order."""
        return [c for c in (self.user, self.item, self.timestamp, self.event, self.value) if c]


class CleaningConfig(BaseModel):
    """What counts as a usable row; every dropped row is counted by reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        description="weight of each event type; types not listed are dropped as 'unknown_event'",
    )
    event_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="a log's own event names mapped to the types of event_weights (e.g. buy -> purchase); "
                    "matched without regard to case, stored with the dataset",
    )
    max_unknown_event_share: float = Field(
        0.01, ge=0.0, le=1.0,
        description="fail when more than this share of rows has an event type neither weighted nor aliased "
                    "(1.0: drop them all and report them)",
    )
    min_value: float | None = Field(None, description="drop rows whose value is below this")
    max_value: float | None = Field(None, description="drop rows whose value is above this")
    rating_threshold: float | None = Field(
        None, description="keep only rows with value >= threshold (e.g. 4 for ratings as positives)"
    )
    value_as_weight: bool = Field(False, description="multiply the event weight by the value")
    min_user_interactions: int = Field(0, ge=0, description="k-core: minimum events per user")
    min_item_interactions: int = Field(0, ge=0, description="k-core: minimum events per item")
    drop_duplicates: bool = Field(True, description="drop exact duplicate events")
    strict: bool = Field(False, description="raise on the first malformed row instead of dropping it")

    @field_validator("event_weights")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not w > 0}
        if bad:
            raise ValueError(f"event weights must be > 0; got {bad}")
        return {k.strip().lower(): w for k, w in v.items()}

    @model_validator(mode="after")
    def _aliases_name_types(self) -> CleaningConfig:
        aliases = {k.strip().lower(): t.strip().lower() for k, t in self.event_aliases.items()}
        for name, target in aliases.items():
            if not name:
                raise ValueError("an event alias needs a name before '='")
            if target not in self.event_weights:
                raise ValueError(f"event alias {name}={target}: {target!r} is not an event type; expected one of "
                                 f"{sorted(self.event_weights)} (or give it a weight with --event-weight "
                                 f"{target}=W)")
            if name in self.event_weights and name != target:
                raise ValueError(f"event alias {name}={target}: {name!r} is itself an event type; drop the alias "
                                 "or its weight")
        object.__setattr__(self, "event_aliases", aliases)
        return self

    def event_type(self, name: str) -> str | None:
        """The type a raw event name counts as (its alias, a default alias, or itself); None: unknown."""
        return EventTypes(self.event_weights, self.event_aliases).canonical(name)
