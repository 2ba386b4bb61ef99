"""Two-tower benchmark: cold-start items from content, warm items against ID-only models.

On ``../shared/datasets/ml-latest-small`` (every rating a positive; item
titles + user tags as text, genres as a multi-hot feature):

* **cold-item split** — 10 % of the items (drawn with ``--seed``) never appear in
  training: all their interactions go to a cold test set.  The remaining
  interactions are split per user at random 80/10/10 (train / valid / warm test).
* **cold items** — each user's cold test items are ranked among the cold items
  only (warm items masked): Recall@20 and NDCG@10, against popularity (no
  training counts for these items, so its order among them is arbitrary),
  random scores, and "oracle popularity" (counts from the cold test set
  itself: a leaky reference, not a rival).  Target: two-tower ≥ 3× popularity.
* **warm items** — the warm test set ranked among the warm items (cold items
  and each user's training + validation items masked): NDCG@10 and
  Recall@20 against EASE and ALS.  Target: within 10 % of the best ID-only model.

Results go into ``docs/benchmarks.md`` between ``<!-- twotower:start -->`` and
``<!-- twotower:end -->`` (the rest of the file is kept).

    python benchmarks/bench_twotower.py                 # MiniLM and CNN text, threads=2
    python benchmarks/bench_twotower.py --text minilm --no-docs --param history_len=200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
DATA = ROOT / ".." / "shared" / "datasets" / "ml-latest-small"
START, END = "<!-- twotower:start -->", "<!-- twotower:end -->"


def load(data_dir: Path):
    """ml-latest-small as a Dataset with item features (title + tags text, genres multi-hot)."""
    from zenrec.data import ColumnMap, Dataset
    from zenrec.features import ItemFeatures

    ds = Dataset.from_file(data_dir / "ratings.csv",
                           ColumnMap(user="userId", item="movieId", timestamp="timestamp", value="rating"),
                           name="ml-latest-small")
    movies = pd.read_csv(data_dir / "movies.csv")
    tags = pd.read_csv(data_dir / "tags.csv")
    tags["tag"] = tags["tag"].astype(str).str.strip().str.lower()
    per_movie = (tags.drop_duplicates(["movieId", "tag"]).groupby("movieId")["tag"]
                 .agg(lambda t: ", ".join(sorted(t))).rename("tags"))
    movies = movies.merge(per_movie, on="movieId", how="left")
    movies["genres"] = movies["genres"].replace("(no genres listed)", None)
    feats = ItemFeatures.from_frame(movies, text=["title", "tags"], multi_hot={"genres": "|"},
                                    id_column="movieId", items=ds.items)
    return ds, feats


def cold_item_split(inter, frac: float, seed: int):
    """(train, valid, warm test, cold test, cold item indices)."""
    from zenrec.data import random_split

    rng = np.random.default_rng(seed)
    present = np.flatnonzero(inter.item_counts() > 0)
    cold = np.sort(rng.choice(present, size=int(round(frac * len(present))), replace=False))
    is_cold = np.isin(inter.item, cold)
    warm = random_split(inter.subset(~is_cold), (0.8, 0.1, 0.1), seed=seed)
    return warm.train, warm.valid, warm.test, inter.subset(is_cold), cold


def item_mask(n_users: int, n_items: int, items: np.ndarray) -> sp.csr_matrix:
    """users × items matrix with every user's ``items`` set (to mask them from rankings)."""
    rows = np.repeat(np.arange(n_users), len(items))
    cols = np.tile(items, n_users)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="ml-latest-small directory")
    ap.add_argument("--text", choices=["minilm", "cnn", "both"], default="both", help="two-tower text encoders to run")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None, help="torch device for the two-tower (default: CUDA when present)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="sentence-vector cache (default ~/.cache/zenrec/text)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="two-tower hyper-parameter override (JSON value), repeatable: --param factors=128")
    ap.add_argument("--no-docs", action="store_true", help="print the results only")
    ap.add_argument("--render", type=Path, default=None, metavar="JSON",
                    help="write the docs section from the JSON summary an earlier run printed, without running")
    args = ap.parse_args(argv)
    if args.render is not None:
        summary = json.loads(args.render.read_text())
        write_docs(summary, summary.get("argv", []))
        return
    if not args.data.is_dir():
        sys.exit(f"{args.data}: not found; the benchmark reads ml-latest-small from ../shared/datasets")

    from zenrec.evaluate.evaluator import evaluate
    from zenrec.features import SentenceEncoder
    from zenrec.models import TrainOptions, create_model
    from zenrec.models.twotower import TwoTower

    t0 = time.perf_counter()
    ds, feats = load(args.data)
    inter = ds.interactions
    train, valid, warm_test, cold_test, cold = cold_item_split(inter, 0.10, args.seed)
    n_u, n_i = inter.n_users, inter.n_items
    warm_items = np.setdiff1d(np.arange(n_i), cold)
    mask_cold = item_mask(n_u, n_i, cold)
    mask_warm = item_mask(n_u, n_i, warm_items)
    print(f"loaded {ds} in {time.perf_counter() - t0:.1f}s; cold items {len(cold)}, cold test rows "
          f"{len(cold_test)}, train {len(train)}, valid {len(valid)}, warm test {len(warm_test)}", file=sys.stderr)

    def measure(scorer) -> dict:
        w = evaluate(scorer, warm_test, [train, valid, mask_cold], ks=(10, 20), metrics=("ndcg", "recall"),
                     beyond=False)
        c = evaluate(scorer, cold_test, [mask_warm], ks=(10, 20), metrics=("ndcg", "recall"), beyond=False)
        return {"warm_ndcg@10": w["ndcg@10"], "warm_recall@20": w["recall@20"],
                "cold_ndcg@10": c["ndcg@10"], "cold_recall@20": c["recall@20"],
                "warm_users": w.n_users, "cold_users": c.n_users}

    params = {}
    for kv in args.param:
        key, _, value = kv.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    results: dict[str, dict] = {}
    opts = TrainOptions(seed=args.seed, threads=args.threads, device=args.device)
    rng = np.random.default_rng(args.seed)
    jitter = rng.random(n_i, dtype=np.float32) * 1e-6  # below any count difference: breaks ties only
    for name in ("pop", "ease", "als"):
        t = time.perf_counter()
        model = create_model(name).fit(train, valid, options=opts)
        fit_s = time.perf_counter() - t
        if name == "pop":
            # every cold item has zero training count; ranking ties by item index would order
            # them by movieId (≈ release order, itself a popularity signal), so ties are random
            results["popularity"] = {**measure(lambda u, m=model: m.score(u) + jitter), "fit_s": fit_s}
            results["popularity, ties by item id"] = measure(model)
        else:
            results[name] = {**measure(model), "fit_s": fit_s}
        print(name, json.dumps(results.get(name) or results["popularity"]), file=sys.stderr)
    results["random"] = measure(lambda u: rng.random((len(u), n_i), dtype=np.float32))
    oracle = cold_test.item_counts().astype(np.float32)
    results["oracle popularity (leaky)"] = measure(lambda u: np.broadcast_to(oracle, (len(u), n_i)))

    encode_s = None
    if args.text in ("minilm", "both"):
        enc = SentenceEncoder(cache_dir=args.cache_dir, device=args.device)
        t = time.perf_counter()
        feats = feats.with_text_vectors(enc)
        encode_s = time.perf_counter() - t
        print(f"MiniLM: {enc.n_encoded} texts encoded, {enc.n_cached} from the cache, {encode_s:.1f}s",
              file=sys.stderr)
    for text in (["minilm", "cnn"] if args.text == "both" else [args.text]):
        t = time.perf_counter()
        model = TwoTower(text_encoder=text, **params).fit(train, valid, options=opts, side=feats)
        fit_s = time.perf_counter() - t
        key = f"twotower ({text})"
        valid_curve = [row["valid"] for row in model.train_history_ if "valid" in row]
        results[key] = {**measure(model), "fit_s": fit_s, "epochs": model.epochs_trained_,
                        "best_valid_ndcg@10": max(valid_curve) if valid_curve else None,
                        "params": model.config.model_dump()}
        print(key, json.dumps(results[key]), file=sys.stderr)

    best_id = max(("ease", "als"), key=lambda n: results[n]["warm_ndcg@10"])
    summary = {"dataset": "ml-latest-small", "seed": args.seed, "cold_items": int(len(cold)),
               "best_id_only": best_id, "encode_s": encode_s, "results": results,
               "argv": argv if argv is not None else sys.argv[1:]}
    print(json.dumps(summary, indent=2))
    if not args.no_docs:
        write_docs(summary, argv if argv is not None else sys.argv[1:])


def write_docs(summary: dict, argv: list[str]) -> None:
    res = summary["results"]
    best = summary["best_id_only"]
    pop_cold = res["popularity"]["cold_recall@20"]
    rows = []
    for name, r in res.items():
        tt = name.startswith("twotower")
        ratio = f"{r['cold_recall@20'] / pop_cold:.1f}×" if pop_cold > 0 else "n/a"
        warm_rel = f"{r['warm_ndcg@10'] / res[best]['warm_ndcg@10']:.1%}"  # 89.5 % must not read as 90 %
        fit = f"{r['fit_s']:.0f} s" + (f" ({r['epochs']} ep)" if "epochs" in r else "") if "fit_s" in r else "–"
        bv = r.get("best_valid_ndcg@10")
        rows.append(f"| {'**' + name + '**' if tt else name} | {r['cold_recall@20']:.4f} | {r['cold_ndcg@10']:.4f} "
                    f"| {ratio} | {r['warm_ndcg@10']:.4f} | {r['warm_recall@20']:.4f} | {warm_rel} | "
                    f"{'–' if bv is None else f'{bv:.4f}'} | {fit} |")
    any_r = next(iter(res.values()))
    best_warm = res[best]["warm_ndcg@10"]
    verdicts = []
    for name, r in res.items():
        if name.startswith("twotower"):
            cold_ok = pop_cold > 0 and r["cold_recall@20"] >= 3 * pop_cold
            warm_ok = r["warm_ndcg@10"] >= 0.9 * best_warm
            verdicts.append(f"{name}: cold target {'met' if cold_ok else 'MISSED'}, warm target "
                            f"{'met' if warm_ok else 'MISSED'} ({r['warm_ndcg@10']:.4f} vs ≥ {0.9 * best_warm:.4f})")
    enc = summary["encode_s"]
    cmd = " ".join(["python benchmarks/bench_twotower.py", *argv])
    section = f"""{START}
## Two-tower: cold-start items from content (ml-latest-small)

Cold-item split of ml-latest-small (every rating a positive): {summary['cold_items']} items (10 %,
seed {summary['seed']}) never appear in training and all their interactions are held out;
the rest is split per user at random 80/10/10. Item text = title + user tags
(MiniLM sentence vectors or a learned word CNN), genres as a multi-hot feature.
*Cold*: each user's held-out cold items ranked among the cold items only
({any_r['cold_users']} users). *Warm*: warm test items ranked among warm items, training and
validation items masked ({any_r['warm_users']} users). Popularity has no training counts for
cold items, so they all tie: "popularity" breaks the ties at random; "ties by item id"
keeps index order, which here is movieId order (older films first), a popularity signal
the data leaks by accident; "oracle popularity" counts the cold test interactions
themselves, a leaky reference only. EASE and ALS score every cold item alike, so
their cold rows are the same index-order artifact.
Targets: cold Recall@20 ≥ 3× popularity; warm NDCG@10 within 10 % of the best ID-only model ({best}).

| model | cold Recall@20 | cold NDCG@10 | cold R@20 / pop | warm NDCG@10 | warm Recall@20 | warm NDCG vs {best} | best valid NDCG@10 | fit |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{chr(10).join("* " + v for v in verdicts)}

*Best valid NDCG@10* is the two-tower's own early-stopping metric (all items ranked for the
random 10 % validation split of the warm interactions, training items masked).

How the defaults were chosen. The user's other training items are left out of each softmax
(`mask_seen`, on by default): they are positives too, and treating them as negatives pushed
down exactly the items that resemble the user. That raised best valid NDCG@10 from 0.2101 to
0.2210 and warm NDCG@10 from 0.2442 (89.4 % of ease, short of the target) to 0.2585; cold
Recall@20 went from 0.3138 to 0.2731, still far above the 3× line. Trials on the CPU with
MiniLM and seed 2020 (`--text minilm --param KEY=VALUE`; the item bias and the user-tower MLP
were trial patches, not kept):

| trial | best valid NDCG@10 | warm NDCG@10 | cold Recall@20 |
|---|---|---|---|
| softmax against every other item (before) | 0.2101 | 0.2442 | 0.3138 |
| … + a learned bias per item (popularity prior) | 0.2025 | 0.2399 | 0.2926 |
| … + item bias, item-id dropout 0.25 | 0.1984 | 0.2342 | 0.2800 |
| … without user id embeddings | 0.2013 | 0.2337 | 0.2782 |
| … user-id dropout 0.3 | 0.1999 | 0.2284 | 0.2851 |
| … + a residual MLP on the user tower | 0.1899 | 0.2167 | 0.3410 |
| **user's other training items masked (default)** | **0.2210** | **0.2585** | **0.2731** |
| masked + item bias | 0.2155 | 0.2474 | 0.2806 |

The choice was made on validation, which the test numbers then agree with for MiniLM. With the
learned word CNN the mask raised best valid NDCG@10 too (0.2008 to 0.2080) but warm test NDCG@10
fell (0.2446 to 0.2387, 87.4 % of ease), so the CNN row misses the warm target that the
MiniLM row meets. The two rows ran at the same time, each with one thread pinned to one core. On another split
(`--seed 1`, MiniLM, ease warm 0.2539) the mask gave warm 0.2433 (95.8 %; best valid 0.2031)
against 0.2268 (89.3 %; best valid 0.1883) without it. Earlier, without
the mask: a sweep of about 50 configurations on one GPU set full softmax, lr 1e-3, no history
dropout, 64 factors and a mean-pooled history of 100 items (attention pooling, histories of
300, 128 factors, weight decay and cosine scoring did not clear the line reliably; cosine
cut cold Recall@20 to 0.15–0.23); two seeds of one configuration differed by up to 0.01 in
warm NDCG@10. Item-id dropout 0.25 / 0.1 / 0 gave warm 0.2388 / 0.2442 / 0.2394 (0.1 kept);
reduce-on-plateau (warm 0.2116), patience 10 (no later gain) and batch size 512 (valid 0.2031)
did not help.
ml-latest-small has no user table, so user features (`UserFeatures`) are not part of
this benchmark; `tests/models/test_twotower.py` checks them on synthetic data.

MiniLM vectors for {res and 'all'} item texts: {'n/a' if enc is None else f'{enc:.1f} s'} (from the on-disk cache when warm).
Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; shared with other jobs, so times are indicative.

Reproduce:

    {cmd}
{END}"""
    text = DOC.read_text() if DOC.exists() else "# zenrec benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
