"""A synthetic view → click → purchase funnel whose auxiliary behaviours carry real signal.

Users and items have latent vectors.  Each user views items drawn (without
replacement) in proportion to ``exp(affinity + popularity)``, clicks a viewed
item with probability ``σ(a·affinity + b)`` and buys a clicked one with
probability ``σ(a·affinity' + c)``, where ``affinity'`` mixes the same
preference with a purchase-only factor.  Clicks are therefore many and
informative about purchases, which are few: the setting where a multi-task
model should beat one trained on purchases alone.

Everything is vectorised over users × items blocks; nothing loops per event.
"""

from __future__ import annotations

import numpy as np

from zenrec.data.interactions import Interactions
from zenrec.data.splits import Split
from zenrec.errors import ConfigError

__all__ = ["FUNNEL_EVENTS", "make_funnel", "holdout_engagements"]

#: Event names of :func:`make_funnel`, in funnel order (their codes are 0, 1, 2).
FUNNEL_EVENTS: tuple[str, ...] = ("view", "click", "purchase")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_funnel(
    n_users: int = 1000,
    n_items: int = 500,
    views_per_user: int = 40,
    dim: int = 8,
    click_rate: float = 0.3,
    purchase_rate: float = 0.15,
    sharpness: float = 2.0,
    purchase_mix: float = 0.7,
    popularity: float = 1.0,
    seed: int = 0,
) -> Interactions:
    """Events of a view → click → purchase funnel (event names :data:`FUNNEL_EVENTS`).

    ``click_rate`` and ``purchase_rate`` are the mean click-through (per view)
    and conversion (per click) rates, reached by choosing the sigmoid offsets;
    ``sharpness`` is how strongly preferences decide clicks and purchases;
    ``purchase_mix`` the share of the purchase affinity that comes from the
    click preference (the rest from a purchase-only factor); ``popularity``
    the spread of the item popularity term in what users view.

    Each clicked pair has a view and a click event, each purchased pair also a
    purchase event, at increasing timestamps.
    """
    for name, value, lo, hi in (("n_users", n_users, 1, None), ("n_items", n_items, 2, None),
                                ("views_per_user", views_per_user, 1, n_items), ("dim", dim, 1, None)):
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise ConfigError(f"the {name!r} parameter of make_funnel must be {bound}; got {value!r}")
    for name, value in (("click_rate", click_rate), ("purchase_rate", purchase_rate)):
        if not 0 < value < 1:
            raise ConfigError(f"the {name!r} parameter of make_funnel must lie in (0, 1); got {value!r}")
    if not 0 <= purchase_mix <= 1:
        raise ConfigError(f"the 'purchase_mix' parameter of make_funnel must lie in [0, 1]; got {purchase_mix!r}")
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, (n_users, dim))
    v = rng.normal(0, 1, (n_items, dim))
    w = rng.normal(0, 1, (n_items, dim))  # purchase-only item factor
    norm = 1.0 / np.sqrt(dim)  # affinities u·v then have unit variance
    pop = rng.normal(0, popularity, n_items)

    # views: Gumbel top-k over exp(affinity + popularity), block by block
    users, items, aff, aff_p = [], [], [], []
    block = max(1, (1 << 22) // n_items)
    for s in range(0, n_users, block):
        ub = u[s : s + block]
        a = (ub @ v.T) * norm
        ap = (ub @ w.T) * norm
        keys = a + pop[None, :] + rng.gumbel(size=a.shape)
        top = np.argpartition(-keys, views_per_user - 1, axis=1)[:, :views_per_user]
        rows = np.repeat(np.arange(s, s + len(ub)), views_per_user)
        users.append(rows)
        items.append(top.ravel())
        aff.append(np.take_along_axis(a, top, axis=1).ravel())
        aff_p.append(np.take_along_axis(ap, top, axis=1).ravel())
    user = np.concatenate(users)
    item = np.concatenate(items)
    a = np.concatenate(aff)
    ap = purchase_mix * a + np.sqrt(1 - purchase_mix**2) * np.concatenate(aff_p)

    def offset(x: np.ndarray, rate: float) -> float:
        """The bias b for which mean σ(sharpness·x + b) = rate (bisection)."""
        lo, hi = -30.0, 30.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _sigmoid(sharpness * x + mid).mean() < rate else (lo, mid)
        return (lo + hi) / 2

    clicked = rng.random(len(a)) < _sigmoid(sharpness * a + offset(a, click_rate))
    pc = _sigmoid(sharpness * ap[clicked] + offset(ap[clicked], purchase_rate)) if clicked.any() else ap[:0]
    bought = np.zeros(len(a), dtype=bool)
    bought[np.flatnonzero(clicked)] = rng.random(len(pc)) < pc

    slot = np.tile(np.arange(views_per_user), n_users)
    t0 = slot.astype(np.int64) * 3
    parts = [(user, item, t0, 0), (user[clicked], item[clicked], t0[clicked] + 1, 1),
             (user[bought], item[bought], t0[bought] + 2, 2)]
    return Interactions(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        n_users,
        n_items,
        timestamp=np.concatenate([p[2] for p in parts]),
        event=np.concatenate([np.full(len(p[0]), p[3], dtype=np.int8) for p in parts]),
        event_names=FUNNEL_EVENTS,
    )


def holdout_engagements(
    inter: Interactions,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    exposure_events: tuple[str, ...] = ("view",),
    seed: int = 2020,
) -> Split:
    """Hold out a share of each user's engaged (non-exposure) pairs with their whole funnel.

    A held-out pair loses *every* event (view, click, purchase) from the
    training part, so no behaviour of the pair leaks into training.  Validation
    and test keep the pair's engagement events (click, purchase): select the
    purchases with ``event == event_names.index("purchase")`` for a purchase
    truth.  Users' pairs are shuffled and cut by ``ratios`` (train, valid,
    test), like the general protocol.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if len(r) != 3 or (r < 0).any() or r[0] <= 0 or not np.isclose(r.sum(), 1.0):
        raise ConfigError(f"the 'ratios' parameter must be 3 non-negative fractions summing to 1; got {ratios}")
    exposure = np.isin(np.asarray(inter.event_names, dtype=object), list(exposure_events))
    engaged = ~exposure[inter.event] if len(exposure) else np.ones(len(inter), dtype=bool)
    key = inter.user.astype(np.int64) * inter.n_items + inter.item
    pairs = np.unique(key[engaged])
    rng = np.random.default_rng(seed)
    pu = pairs // inter.n_items
    order = np.lexsort((rng.random(len(pairs)), pu))  # shuffled within each user
    pairs, pu = pairs[order], pu[order]
    counts = np.bincount(pu, minlength=inter.n_users)
    start = np.concatenate([[0], np.cumsum(counts)])[pu]
    rank = np.arange(len(pairs)) - start
    n = counts[pu]
    cut_train = np.floor(n * r[0] + 1e-9)
    cut_valid = np.floor(n * (r[0] + r[1]) + 1e-9)
    part = np.where(rank < cut_train, 0, np.where(rank < cut_valid, 1, 2)).astype(np.int8)
    part[n < 3] = 0  # users with too few pairs keep them all
    sorted_pairs = np.argsort(pairs)
    pairs_sorted = pairs[sorted_pairs]
    pos = np.searchsorted(pairs_sorted, key).clip(0, max(len(pairs_sorted) - 1, 0))
    found = pairs_sorted[pos] == key if len(pairs) else np.zeros(len(key), dtype=bool)
    row_part = np.where(found, part[sorted_pairs][pos], 0)
    train = inter.subset(row_part == 0)
    valid = inter.subset((row_part == 1) & engaged)
    test = inter.subset((row_part == 2) & engaged)
    return Split(train, valid, test, protocol="holdout-engagements")
