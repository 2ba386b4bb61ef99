"""Shared fixtures: the bundled ml-100k dataset and its general-protocol split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# implicit asks for a single-threaded BLAS in its process
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from zenrec.serve.process import ServeProcess  # noqa: E402 - after the BLAS setting

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def ml100k():
    from zenrec.datasets import load_ml100k

    return load_ml100k()


@pytest.fixture(scope="session")
def ml100k_split(ml100k):
    from zenrec.data import split_dataset

    return split_dataset(ml100k, "general", seed=2020)


@pytest.fixture(scope="session")
def ml100k_small(ml100k):
    """A fast slice of ml-100k: the 400 most popular items, users with ≥ 10 events on
    them, ids re-coded contiguously, per-user random 80/10/10 split."""
    import numpy as np

    from zenrec.data import Interactions, random_split

    inter = ml100k.interactions
    counts = np.bincount(inter.item, minlength=inter.n_items)
    keep_items = np.sort(np.argsort(-counts, kind="stable")[:400])
    item_map = np.full(inter.n_items, -1)
    item_map[keep_items] = np.arange(len(keep_items))
    rows = item_map[inter.item] >= 0
    per_user = np.bincount(inter.user[rows], minlength=inter.n_users)
    keep_users = np.flatnonzero(per_user >= 10)
    user_map = np.full(inter.n_users, -1)
    user_map[keep_users] = np.arange(len(keep_users))
    rows &= user_map[inter.user] >= 0
    small = Interactions(
        user_map[inter.user[rows]],
        item_map[inter.item[rows]],
        len(keep_users),
        len(keep_items),
        inter.timestamp[rows],
    )
    return random_split(small, (0.8, 0.1, 0.1), seed=7)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The public datasets beside the checkout; tests using it skip when absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip("shared datasets are not present beside this checkout")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def cluster_shop():
    """A shop of two tastes (space, love), 10 items each: items 0-7 of a taste have events, 8 and 9
    (``s8 s9 l8 l9``) are only in the item table (cold items); each of 60 users bought 6 of the 8
    logged items of one taste.  ``(log, items)`` frames; the item table has text (title,
    description), categories (brand, category), multi-hot tags and a numeric price."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    words = {"space": ["space", "galaxy", "star", "alien", "planet", "rocket", "orbit", "moon"],
             "love": ["love", "romance", "wedding", "heart", "kiss", "paris", "letter", "summer"]}
    items = []
    for t, (taste, ws) in enumerate(words.items()):
        for j in range(10):
            items.append({"item_id": f"{taste[0]}{j}", "title": " ".join(rng.choice(ws, 3, replace=False)),
                          "description": f"a {taste} story", "brand": ["Acme", "Zeta"][t], "category": taste,
                          "tags": "|".join(rng.choice(ws, 2, replace=False)), "price": 10.0 + 20 * t + j})
    rows = []
    for u in range(60):
        taste = "space" if u % 2 == 0 else "love"
        rows += [(f"u{u}", f"{taste[0]}{j}", 1_700_000_000 + 10 * u + int(j)) for j in rng.choice(8, 6, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]), pd.DataFrame(items)


#: Debian's Chromium, which the browser tests drive (Playwright cannot download its own browsers here)
CHROMIUM = Path(os.environ.get("ZENREC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium context (Playwright over Debian's chromium, a fresh profile); yields
    ``(context, shot)`` where ``shot(page, name)`` saves a screenshot under the test's tmp dir and, when
    ZENREC_ARTIFACTS is set, copies it there.  Without Chromium or Playwright: a skip, or a failure under
    ``make test`` (ZENREC_REQUIRE_BROWSER=1)."""
    import shutil

    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "the playwright package is not installed (pip install -e '.[dev]')"
    if why is None and not os.access(CHROMIUM, os.X_OK):
        why = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if why is not None:
        if os.environ.get("ZENREC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests must run here: {why}", pytrace=False)
        pytest.skip(why)
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def shot(page, name: str) -> Path:
        path = shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        target = os.environ.get("ZENREC_ARTIFACTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)
        return path

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield context, shot
        finally:
            context.close()


@pytest.fixture(scope="session")
def serve_process() -> type[ServeProcess]:
    """``serve_process(source, store_url, log, *args)``: a ``zenrec serve`` child process (:class:`ServeProcess`)."""
    return ServeProcess
