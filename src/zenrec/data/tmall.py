"""Reader of the Tmall multi-behaviour data (MBGCN/CRGCN preprocessing).

The folder holds ``count.txt`` (``{"user": U, "item": I}``, 1-based ids) and
one ``user item`` pair per line in ``buy.txt`` (training purchases),
``collect.txt`` (favourites), ``cart.txt`` (add-to-cart), ``validation.txt``
and ``test.txt`` (held-out purchases).  :func:`read_tmall` turns them into a
fixed :class:`~zenrec.data.splits.Split`: training events of three types,
validation and test purchases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from zenrec.data.dataset import Dataset
from zenrec.data.interactions import Interactions
from zenrec.data.schema import DEFAULT_EVENT_WEIGHTS
from zenrec.data.splits import Split
from zenrec.data.vocab import Vocabulary
from zenrec.errors import DataError

__all__ = ["TMALL_EVENTS", "read_tmall"]

#: Event names of the training part, in funnel order (codes 0, 1, 2).
TMALL_EVENTS: tuple[str, ...] = ("favorite", "cart", "purchase")
_TRAIN_FILES = {"favorite": "collect.txt", "cart": "cart.txt", "purchase": "buy.txt"}


def _read_pairs(path: Path, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based (user, item) arrays of a ``user item`` file, checked against the counts."""
    if not path.is_file():
        raise DataError("file not found (expected one 'user item' pair per line)", source=str(path))
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, names=["user", "item"], dtype="float64",
                         engine="c", skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"expected two integers per line ({exc})", source=str(path)) from None
    vals = df.to_numpy()
    bad = np.isnan(vals).any(axis=1) | (vals != np.floor(np.nan_to_num(vals))).any(axis=1)
    bad |= (vals[:, 0] < 1) | (vals[:, 0] > n_users) | (vals[:, 1] < 1) | (vals[:, 1] > n_items)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"expected 'user item' with 1 <= user <= {n_users} and 1 <= item <= {n_items} "
            f"(count.txt); got {df.iloc[j].tolist()}",
            source=str(path), row=j + 1,
        )
    return vals[:, 0].astype(np.int32) - 1, vals[:, 1].astype(np.int32) - 1


def read_tmall(directory: str | Path) -> tuple[Split, Dataset]:
    """The fixed Tmall split and a :class:`Dataset` of its training events.

    Training rows carry events :data:`TMALL_EVENTS` (favourite, cart,
    purchase) weighted by :data:`~zenrec.data.schema.DEFAULT_EVENT_WEIGHTS`;
    validation and test rows are purchases.  The files have no timestamps:
    training events get time 0, validation 1, test 2.  Indices are the file
    ids minus one; the vocabularies map them back.
    """
    d = Path(directory)
    count = d / "count.txt"
    try:
        counts = json.loads(count.read_text())
        n_users, n_items = int(counts["user"]), int(counts["item"])
    except FileNotFoundError:
        raise DataError("file not found (expected {\"user\": U, \"item\": I})", source=str(count)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"expected {{\"user\": U, \"item\": I}}; could not read it ({exc})",
                        source=str(count)) from None
    code = {name: np.int8(k) for k, name in enumerate(TMALL_EVENTS)}
    users, items, events, weights = [], [], [], []
    for name, file in _TRAIN_FILES.items():
        u, i = _read_pairs(d / file, n_users, n_items)
        users.append(u)
        items.append(i)
        events.append(np.full(len(u), code[name], dtype=np.int8))
        weights.append(np.full(len(u), DEFAULT_EVENT_WEIGHTS[name], dtype=np.float32))
    train = Interactions(np.concatenate(users), np.concatenate(items), n_users, n_items,
                         timestamp=np.zeros(sum(map(len, users)), dtype=np.int64),
                         weight=np.concatenate(weights), event=np.concatenate(events), event_names=TMALL_EVENTS)

    def purchases(file: str, t: int) -> Interactions:
        u, i = _read_pairs(d / file, n_users, n_items)
        return Interactions(u, i, n_users, n_items, timestamp=np.full(len(u), t, dtype=np.int64),
                            weight=np.full(len(u), DEFAULT_EVENT_WEIGHTS["purchase"], dtype=np.float32),
                            event=np.full(len(u), code["purchase"], dtype=np.int8), event_names=TMALL_EVENTS)

    split = Split(train, purchases("validation.txt", 1), purchases("test.txt", 2), protocol="tmall-fixed")
    dataset = Dataset(train, Vocabulary(np.arange(1, n_users + 1), name="user"),
                      Vocabulary(np.arange(1, n_items + 1), name="item"), name="tmall-multibehavior")
    return split, dataset
