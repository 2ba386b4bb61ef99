"""The one exception tree of zenrec.

::

    ZenrecError
    ├── ConfigError          a parameter, flag or config value is invalid
    │   └── UnknownModelError  no model registered under that name
    ├── DataError            input data is unusable (names file/row/column)
    │   └── EmptyDataError   nothing left to work with
    ├── ArtifactError        a saved model or dataset directory is corrupt
    │   └── VersionError     written by a newer, incompatible zenrec
    ├── NotFittedError       a model was used before ``fit``
    └── UnknownIdError       a user/item id is not in the vocabulary

The CLI maps every ``ZenrecError`` to a one-line message and exit code 2.
"""

from __future__ import annotations

__all__ = [
    "ZenrecError",
    "ConfigError",
    "UnknownModelError",
    "DataError",
    "EmptyDataError",
    "ArtifactError",
    "VersionError",
    "NotFittedError",
    "UnknownIdError",
]


class ZenrecError(Exception):
    """Base class of every error zenrec raises on purpose."""


class ConfigError(ZenrecError, ValueError):
    """A parameter, CLI flag or config value is invalid."""


class UnknownModelError(ConfigError, KeyError):
    """No model is registered under the given name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ZenrecError, ValueError):
    """Input data cannot be used; the message names the file, row and column.

    Attributes mirror the message so that callers can act on them.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.column = column
        where = []
        if source is not None:
            where.append(str(source))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class EmptyDataError(DataError):
    """No usable rows are left (empty file, or everything was filtered out)."""


class ArtifactError(ZenrecError, OSError):
    """A saved model or dataset directory is missing files or corrupt."""


class VersionError(ArtifactError):
    """An artifact was written by a newer, incompatible format version."""


class NotFittedError(ZenrecError, RuntimeError):
    """A model was asked to score before it was fitted."""


class UnknownIdError(ZenrecError, KeyError):
    """A raw user or item id is not in the vocabulary (and the policy is 'raise')."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
