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
sys.path.insert(0, str(HERE))
from _common import context_line, section_footer, write_doc_section  # noqa: E402


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


def render(summary: dict, argv: list[str]) -> str:
    """The ``twotower`` section: one context line, the tables, the reproduce command.

    The protocol, the trials behind the defaults and what did not help are in
    docs/benchmark-notes.md (#twotower).
    """
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
    targets = []
    for name, r in res.items():
        if name.startswith("twotower"):
            cold_ok = pop_cold > 0 and r["cold_recall@20"] >= 3 * pop_cold
            warm_ok = r["warm_ndcg@10"] >= 0.9 * best_warm
            cold_x = f"{r['cold_recall@20'] / pop_cold:.1f}×" if pop_cold > 0 else "n/a"
            targets.append(f"| {name} | {r['cold_recall@20']:.4f}, {cold_x} popularity | "
                           f"{'met' if cold_ok else '**MISSED**'} | {r['warm_ndcg@10']:.4f} vs ≥ {0.9 * best_warm:.4f} | "
                           f"{'met' if warm_ok else '**MISSED**'} |")
    enc = summary["encode_s"]
    cmd = " ".join(["python benchmarks/bench_twotower.py", *argv])
    lines = [
        "## Two-tower: cold-start items from content (ml-latest-small)",
        "",
        context_line(f"{summary['cold_items']} cold items (10 %, seed {summary['seed']}); cold {any_r['cold_users']} "
                     f"users, warm {any_r['warm_users']} users; MiniLM vectors "
                     f"{'n/a' if enc is None else f'{enc:.1f} s'}; {platform.machine()}, {os.cpu_count()} CPUs, "
                     f"Python {platform.python_version()}."),
        "",
        "| model | cold Recall@20 | cold NDCG@10 | cold R@20 / pop | warm NDCG@10 | warm Recall@20 | "
        f"warm NDCG vs {best} | best valid NDCG@10 | fit |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"| target | cold Recall@20 ≥ 3× popularity | cold | warm NDCG@10 ≥ 90 % of {best} | warm |",
        "|---|---|---|---|---|",
        *targets,
        "",
        *section_footer(cmd, "twotower"),
    ]
    return "\n".join(lines)


def write_docs(summary: dict, argv: list[str]) -> None:
    write_doc_section("twotower", render(summary, argv), DOC)
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
