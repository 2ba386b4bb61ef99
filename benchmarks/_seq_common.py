"""Helpers of the sequential benchmark's peer runners (numpy + pandas only: peer venvs import it).

The split files are written once by ``bench_sequential.py`` (RecBole atomic
format, raw ids, ``timestamp`` = each event's position in chronological
order, so every library reads the same sequence order).  The peers'
validation follows zenrec's sequential protocol exactly:

* validation: every user with a validation item; history = the user's
  training events; the user's training items are masked; all other items
  are ranked;
* test: history = training + validation events; training and validation
  items masked.

With one held-out item per user, NDCG@10 = 1/log2(rank + 2) when the item is
in the top 10 (rank counted from 0), else 0; HR@10 = 1 when it is there.
``bench_sequential.py`` recomputes the peers' numbers from the top-10 lists
they write, with zenrec's metric code, and checks they agree.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

K = 10


def read_split(folder: Path, name: str) -> dict[str, pd.DataFrame]:
    """``{"train"|"valid"|"test": DataFrame(user, item, ts)}`` with ids as text, rows in file order."""
    out = {}
    for part in ("train", "valid", "test"):
        df = pd.read_csv(Path(folder) / f"{name}.{part}.inter", sep="\t", dtype=str)
        df.columns = [c.split(":")[0] for c in df.columns]
        out[part] = pd.DataFrame({
            "user": df["user_id"].str.strip(), "item": df["item_id"].str.strip(),
            "ts": df["timestamp"].astype(float).astype(np.int64),
        })
    return out


def sequences(df: pd.DataFrame) -> dict[str, list[str]]:
    """Each user's items in time order (ties kept in file order)."""
    d = df.sort_values(["user", "ts"], kind="stable")
    return {u: list(g) for u, g in d.groupby("user", sort=False)["item"]}


def ndcg_hr(top: dict[str, list], truth: dict[str, str], k: int = K) -> tuple[float, float]:
    """Mean NDCG@k and HR@k over the users of ``truth`` (one held-out item each)."""
    nd, hr = 0.0, 0.0
    for u, t in truth.items():
        lst = list(top.get(u, []))[:k]
        if t in lst:
            r = lst.index(t)
            nd += 1.0 / math.log2(r + 2)
            hr += 1.0
    n = max(len(truth), 1)
    return nd / n, hr / n


def write_topk(path: Path, parts: dict[str, dict[str, list]]) -> None:
    """Top-k lists as TSV: part, user, rank, item."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        fh.write("part\tuser\trank\titem\n")
        for part, top in parts.items():
            for u, items in top.items():
                for r, i in enumerate(items):
                    fh.write(f"{part}\t{u}\t{r}\t{i}\n")
    tmp.replace(path)


class Stopper:
    """Early stopping on validation NDCG@10 with patience, plus a wall-clock cap.

    ``step`` is called after each epoch's validation; the cap counts the wall
    time since training started (validation included) and is checked there,
    so the epoch in progress always finishes — the same rule as zenrec's runs.
    """

    def __init__(self, patience: int, cap_s: float) -> None:
        self.patience, self.cap_s = patience, cap_s
        self.best, self.best_epoch, self.bad = -1.0, 0, 0
        self.t0 = time.perf_counter()
        self.reason = "max epochs"

    def step(self, epoch: int, value: float) -> tuple[bool, bool]:
        """(improved, stop)."""
        improved = value > self.best
        if improved:
            self.best, self.best_epoch, self.bad = value, epoch, 0
        else:
            self.bad += 1
        if self.bad >= self.patience:
            self.reason = "early stop"
            return improved, True
        if self.cap_s > 0 and time.perf_counter() - self.t0 >= self.cap_s:
            self.reason = "wall cap"
            return improved, True
        return improved, False


def emit(record: dict) -> None:
    print(json.dumps(record, sort_keys=True), flush=True)
