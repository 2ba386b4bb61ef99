"""Storage: the durable event store (SQLite or PostgreSQL) and the model version registry."""

from zenrec.store.events import BatchWriter, Event, EventRecord, EventStore, Stored, StoreError
from zenrec.store.registry import Current, ModelRegistry, RegistryError, UnknownVersionError, VersionInfo

__all__ = [
    "BatchWriter",
    "Current",
    "Event",
    "EventRecord",
    "EventStore",
    "ModelRegistry",
    "RegistryError",
    "StoreError",
    "Stored",
    "UnknownVersionError",
    "VersionInfo",
]
