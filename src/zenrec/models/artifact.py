"""Checks a model file passes before it is served: the manifest's fields, the arrays' values, one query.

A model directory can come from anywhere (a registry, a colleague, an edited
file), and a bad one must never take a server down: out-of-range CSR indices
made scipy read outside its buffers (a segfault), NaN weights gave NaN scores
and empty lists.  :meth:`zenrec.models.base.Recommender.load` and
:func:`zenrec.models.load_model` run every check here, so ``registry add``, a
server's start and each hot swap refuse such a file with an
:class:`~zenrec.errors.ArtifactError` naming it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from zenrec.errors import ArtifactError

__all__ = ["MAX_IDS", "check_manifest", "check_sizes", "check_arrays", "check_answers"]

#: The most users or items a model may declare (indices are stored as int32).
MAX_IDS = 2**31 - 1


def check_manifest(path: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    """The manifest's ``params``, ``n_users`` and ``n_items``, each checked for type and range."""
    where = f"{path}/manifest.json"
    params = manifest.get("params")
    if not isinstance(params, dict):
        raise ArtifactError(f"{where}: corrupted manifest ('params' must be an object; got {_kind(params)})")
    sizes = []
    for key in ("n_users", "n_items"):
        value = manifest.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_IDS:
            raise ArtifactError(f"{where}: corrupted manifest ({key!r} must be a whole number in 1..{MAX_IDS:,}; "
                                f"got {value!r:.40})")
        sizes.append(value)
    names = manifest.get("arrays", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ArtifactError(f"{where}: corrupted manifest ('arrays' must be a list of names; got {_kind(names)})")
    seconds = manifest.get("fit_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
        raise ArtifactError(f"{where}: corrupted manifest ('fit_seconds' must be a number; got {_kind(seconds)})")
    return params, sizes[0], sizes[1]


def check_sizes(path: Path, headers: dict[str, tuple[tuple[int, ...], Any]], n_users: int, n_items: int) -> None:
    """Refuse, from the array headers alone, an array with more elements than a model of this size can use.

    The largest state a model keeps is an items × items matrix per task (EASE,
    the multi-task model's wide part); networks add a constant.  A few-MB file
    that would inflate to gigabytes is refused before it is loaded.
    """
    limit = 4 * max(n_users, n_items) ** 2 + (1 << 26)
    for name, (shape, _) in headers.items():
        size = int(np.prod(shape, dtype=object))
        if size > limit:
            raise ArtifactError(f"{path}/arrays.npz: array {name!r} has {size:,} elements (shape {tuple(shape)}), more "
                                f"than a model of {n_users:,} users and {n_items:,} items can hold (corrupted or edited)")


def check_arrays(path: Path, arrays: dict[str, np.ndarray], bounds: dict[str, tuple[int, int]],
                 nan_ok: Collection[str] = ()) -> None:
    """Every number array finite (but those in ``nan_ok``); each index array of ``bounds`` within its ``[low, high]``."""
    where = f"{path}/arrays.npz"
    for name, a in arrays.items():
        if a.dtype.kind == "f" and name not in nan_ok:
            bad = a.size - int(np.count_nonzero(np.isfinite(a)))
            if bad:
                raise ArtifactError(f"{where}: array {name!r} holds {bad:,} NaN or infinite values; "
                                    "a model must be finite to rank (retrain it)")
        if a.dtype.kind not in "fiubUS":
            raise ArtifactError(f"{where}: array {name!r} has dtype {a.dtype}, which zenrec does not write")
    for name, (low, high) in bounds.items():
        a = arrays.get(name)
        if a is None:
            continue
        if a.dtype.kind not in "iu":
            raise ArtifactError(f"{where}: array {name!r} must hold indices (integers); got dtype {a.dtype}")
        if a.size and (int(a.min()) < low or int(a.max()) > high):
            raise ArtifactError(f"{where}: array {name!r} holds values in {int(a.min())}..{int(a.max())}; "
                                f"its indices must lie in {low}..{high} (corrupted or edited)")


def check_answers(path: Path, model: Any) -> None:
    """Answer a few queries (first and last user, a one-item history) with the loaded model (a ``Recommender``).

    Arrays whose shapes disagree with each other or with the manifest show
    here rather than on a live request.
    """
    from zenrec.models.query import Query

    k = min(10, model.n_items_)
    try:
        vectors = model.vectors()
        if vectors is not None and (vectors.users.shape[0] != model.n_users_
                                    or vectors.items.shape[0] != model.n_items_):
            raise ValueError(f"vectors of shape {vectors.users.shape} / {vectors.items.shape} for "
                             f"{model.n_users_} users and {model.n_items_} items")
        for user in {0, model.n_users_ - 1}:
            _finite(model.recommend(Query(user=user, k=k, exclude_seen=False)))
        if model.supports_history:
            _finite(model.recommend(Query(history=[model.n_items_ - 1], k=k)))
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a bad file makes the model raise is reported as the file's fault
        raise ArtifactError(f"{path}: the loaded model cannot answer a query ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); the file is corrupted or edited"
                            ) from None


def _finite(recs: Any) -> None:
    if len(recs.items) == 0 or not np.isfinite(recs.scores).all():
        raise ValueError("it ranked no items")


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.40}"
