"""zenrec: behaviour logs to proven, served, explained Top-N recommendations.

Heavy parts (torch, implicit, optuna) are imported only where used, so
``import zenrec`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

from zenrec.errors import (  # noqa: E402
    ArtifactError,
    ConfigError,
    DataError,
    EmptyDataError,
    NotFittedError,
    UnknownIdError,
    UnknownModelError,
    VersionError,
    ZenrecError,
)

__all__ = [
    "__version__",
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
