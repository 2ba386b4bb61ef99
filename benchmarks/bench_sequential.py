"""Sequential benchmark: zenrec's SASRec and baselines side by side with RecTools' and RecBole's sequence models.

Protocol: chronological leave-last-out (each user's last event is test, the
one before it validation), history 50, full ranking of all items; validation
masks the user's training items and scores from the training history; test
masks training + validation items and scores from training + validation
history (zenrec's sequential protocol, ``evaluate_split``).  One split per
dataset is written once under ``benchmarks/.work/seq/<dataset>/`` (RecBole
atomic files, raw ids, ``timestamp`` = chronological position) and every
library reads those files.

Rows: zenrec sasrec, gru4rec, bert4rec (when registered), transition, ease,
itemknn, als, pop; RecTools 0.19.0 SASRec and BERT4Rec
(``run_rectools_seq.py`` in ``.venv-rectools``); RecBole 1.2.1 SASRec,
GRU4Rec, BERT4Rec (``run_recbole_seq.py`` in ``.venv-recbole``).  Every
Transformer: embedding 64, history 50, 2 blocks, 1 head.  Neural models
train until validation NDCG@10 has not improved for ``--patience`` epochs or
the wall cap (``--cap-minutes``, checked after each epoch's validation) is
reached, then restore the best epoch.  Per-epoch curves record cumulative
*training* seconds (validation excluded) and validation NDCG@10, from which
the time-to-quality ratios are computed.  Peer NDCG/HR are recomputed from
the peers' top-10 lists with zenrec's metric code.  Each model runs alone in
its own process, one after another, with one torch thread.

    python benchmarks/bench_sequential.py [--dataset ml-100k amazon-games] [--only zenrec rectools:SASRec ...]
        [--cap-minutes 30] [--recbole-cap-minutes 10] [--patience 10] [--results FILE]
        [--reuse --results FILE... ] [--write-docs]

``--results`` (default ``benchmarks/.work/results/sequential.jsonl``): the
JSON-lines file new rows are appended to; with ``--reuse`` nothing is run
and the rows of every file given are rendered (the latest row per dataset,
library and model wins).  ``--write-docs`` renders the ``sequential``
section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_DATASETS,
    HERE,
    REPO,
    WORK,
    context_line,
    emit,
    machine,
    peak_rss_mb,
    section_footer,
    write_doc_section,
)

SEQ = WORK / "seq"
RESULTS = WORK / "results" / "sequential.jsonl"
START, END = "<!-- sequential:start -->", "<!-- sequential:end -->"
DATASETS = ("ml-100k", "amazon-games")
ZENREC_NEURAL = ("sasrec", "gru4rec", "bert4rec")
ZENREC_MODELS = (*ZENREC_NEURAL, "transition", "ease", "itemknn", "als", "pop")
PEERS = {"rectools": ("SASRec", "BERT4Rec"), "recbole": ("SASRec", "GRU4Rec", "BERT4Rec")}
ROWS = [("zenrec", m) for m in ZENREC_MODELS] + [(lib, m) for lib, ms in PEERS.items() for m in ms]
PAPER = {"amazon-games": {"hit@10": 0.7410, "ndcg@10": 0.5360}}  # SASRec paper, Games, sampled-100
COMMAND = "python benchmarks/bench_sequential.py --write-docs"
#: zenrec hyper-parameters set by the benchmark (the others are the models' defaults)
ZENREC_FIXED = {"bert4rec": {"heads": 1}}  # one head, like every Transformer here


# ----------------------------------------------------------------------------- split files
def _games_dataset(folder: Path):
    import numpy as np
    import pandas as pd

    from zenrec.data.dataset import Dataset
    from zenrec.data.interactions import Interactions
    from zenrec.data.vocab import Vocabulary

    f = folder / "amazon-games-sasrec" / "Video.txt"
    if not f.exists():
        return None
    df = pd.read_csv(f, sep=" ", header=None, names=["user", "item"], dtype=np.int64)
    users, u = Vocabulary.from_values(df["user"].to_numpy(), "user")
    items, i = Vocabulary.from_values(df["item"].to_numpy(), "item")
    # the lines are in time order within each user: the line number is the timestamp
    inter = Interactions(u, i, len(users), len(items), np.arange(len(df), dtype=np.int64))
    return Dataset(inter, users, items, name="amazon-games")


def _ml100k_dataset():
    import numpy as np

    from zenrec.data.dataset import Dataset
    from zenrec.data.interactions import Interactions
    from zenrec.datasets import load_ml100k

    ds = load_ml100k()
    x = ds.interactions  # sorted by (user, time), ties in file order
    inter = Interactions(x.user, x.item, x.n_users, x.n_items, np.arange(len(x), dtype=np.int64))
    return Dataset(inter, ds.users, ds.items, name="ml-100k")


def split_dir(name: str) -> Path:
    return SEQ / name


def prepare(name: str, datasets: Path) -> Path | None:
    """Write the dataset's split files once (kept when they exist); None when the data is missing."""
    from zenrec.data.splits import leave_last_out, save_split

    d = split_dir(name)
    if all((d / f"{name}.{p}.inter").exists() for p in ("train", "valid", "test")):
        return d
    ds = _ml100k_dataset() if name == "ml-100k" else _games_dataset(datasets)
    if ds is None:
        return None
    # timestamp = chronological position: every library reads the same order, no ties to break
    split = leave_last_out(ds.interactions)
    save_split(split, ds, d, name)
    print(f"[seq] wrote {d.relative_to(REPO)}: {split}", file=sys.stderr, flush=True)
    return d


def load(name: str):
    from zenrec.data.splits import load_split_files

    d = split_dir(name)
    return load_split_files(d / f"{name}.train.inter", d / f"{name}.test.inter", d / f"{name}.valid.inter",
                            protocol="sequential")


# ----------------------------------------------------------------------------- zenrec worker
def zenrec_worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    import zenrec
    import zenrec.train.loop as loop
    from zenrec.evaluate.evaluator import evaluate_split
    from zenrec.models import TrainOptions, get_model_class
    from zenrec.train.early_stopping import EarlyStopping

    cap_s = args.cap_minutes * 60.0
    capped = [False]

    class CappedStopping(EarlyStopping):
        """zenrec's early stopping plus the benchmark's wall cap (checked after each validation)."""

        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.t0 = time.perf_counter()

        def step(self, value, state=None) -> bool:  # noqa: ANN001
            stop = super().step(value, state)
            if not stop and cap_s > 0 and time.perf_counter() - self.t0 >= cap_s:
                capped[0] = True
                return True
            return stop

    loop.EarlyStopping = CappedStopping
    split, _ = load(args.dataset)
    cls = get_model_class(args.model)
    params = json.loads(args.params or "{}")
    fields = cls.Config.model_fields
    if "patience" in fields:
        params.setdefault("patience", args.patience)
    if "epochs" in fields:
        params.setdefault("epochs", args.max_epochs)
    model = cls(**params)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    model.fit(split.train, split.valid, TrainOptions(seed=args.seed, threads=args.threads, device="cpu"))
    fit_wall = time.perf_counter() - t0
    kw = dict(ks=(10,), metrics=("ndcg", "hit"), beyond=False)
    valid = evaluate_split(model, split, "valid", **kw).metrics
    test = evaluate_split(model, split, "test", **kw).metrics
    sampled = evaluate_split(model, split, "test", sampled=100, seed=0, **kw).metrics
    rec = {
        "library": "zenrec", "version": zenrec.__version__, "model": args.model,
        "params": model.config.model_dump(mode="json"), "fit_wall_s": round(fit_wall, 3),
        "valid": {k: round(v, 6) for k, v in valid.items()},
        "test": {k: round(v, 6) for k, v in test.items()},
        "sampled100": {k: round(v, 6) for k, v in sampled.items()},
        "rss_before_fit_mb": round(rss_before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": args.threads,
    }
    hist = getattr(model, "train_history_", None)
    if hist:
        curve = [{"epoch": int(r["epoch"]), "train_seconds": round(r["train_seconds"], 3),
                  "valid": round(r["valid"], 6)} for r in hist if "valid" in r]
        best = max(curve, key=lambda r: (r["valid"], -r["epoch"]))
        rec.update(curve=curve, epochs=len(hist), best_epoch=best["epoch"], best_valid=best["valid"],
                   train_s=round(hist[-1]["train_seconds"], 3),
                   stopped="wall cap" if capped[0] else ("early stop" if len(hist) < params["epochs"]
                                                         else "max epochs"))
    else:
        rec.update(train_s=round(fit_wall, 3), best_valid=rec["valid"]["ndcg@10"])
    emit(rec)


# ----------------------------------------------------------------------------- peer scoring
def score_topk(name: str, topk_file: Path) -> dict:
    """NDCG@10/HR@10 of a peer's top-10 lists, computed with zenrec's metric code."""
    import numpy as np
    import pandas as pd

    from zenrec.evaluate import metrics as M
    from zenrec.evaluate.metrics import hits_matrix

    split, ds = load(name)
    top = pd.read_csv(topk_file, sep="\t", dtype={"part": str, "user": str, "item": str, "rank": np.int64})
    out = {}
    for part in ("valid", "test"):
        truth = getattr(split, part)
        users = truth.active_users
        t = top[top["part"] == part]
        mat = np.full((len(users), 10), -1, dtype=np.int64)
        if len(t):
            uidx = ds.users.index(t["user"].to_numpy())
            iidx = ds.items.index(t["item"].to_numpy())
            row = np.full(ds.interactions.n_users, -1, dtype=np.int64)
            row[users] = np.arange(len(users))
            r = row[uidx]
            ok = (r >= 0) & (t["rank"].to_numpy() < 10)
            mat[r[ok], t["rank"].to_numpy()[ok]] = iidx[ok]
        hits = hits_matrix(mat, truth.binary[users])
        n_rel = np.diff(truth.binary.indptr)[users]
        out[part] = {"ndcg@10": round(float(M.ndcg(hits, n_rel, 10).mean()), 6),
                     "hit@10": round(float(M.hit_rate(hits, n_rel, 10).mean()), 6)}
    return out


# ----------------------------------------------------------------------------- driver
def _run(cmd: list[str], log: Path, timeout: float) -> list[dict]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[seq] $ {shlex.join(cmd)}", file=sys.stderr, flush=True)
    with open(log, "a") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [{"error": f"timed out after {timeout:.0f}s"}]
        fh.write(proc.stdout)
    recs = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0:
        recs.append({"error": f"exit code {proc.returncode} (see {log.relative_to(REPO)})"})
    return recs


def run_row(lib: str, model: str, name: str, args: argparse.Namespace) -> dict | None:
    d = split_dir(name)
    cap = args.recbole_cap_minutes if lib == "recbole" and args.recbole_cap_minutes is not None else args.cap_minutes
    common = ["--max-epochs", str(args.max_epochs), "--patience", str(args.patience),
              "--cap-minutes", str(cap), "--threads", str(args.threads), "--seed", str(args.seed)]
    log = WORK / "seq" / "logs" / f"{name}-{lib}-{model}.log"
    timeout = cap * 60 + 3600
    if lib == "zenrec":
        from zenrec.models.registry import MODELS

        if model not in MODELS:
            return {"library": "zenrec", "model": model, "skipped": f"'{model}' is not in zenrec's model registry"}
        params = {**ZENREC_FIXED.get(model, {}), **args.zenrec_params.get(model, {})}
        params.update(args.zenrec_params.get(f"{name}:{model}", {}))
        cmd = [sys.executable, __file__, "--worker", "--dataset", name, "--model", model,
               "--params", json.dumps(params), *common]
        recs = _run(cmd, log, timeout)
    else:
        py = HERE / f".venv-{lib}" / "bin" / "python"
        if not py.exists():
            return {"library": lib, "model": model, "skipped": f"no benchmarks/.venv-{lib}: run "
                    f"`bash benchmarks/setup_peers.sh {lib}`"}
        topk = WORK / "seq" / "topk" / f"{name}-{lib}-{model}.tsv"
        script = HERE / ("run_rectools_seq.py" if lib == "rectools" else "run_recbole_seq.py")
        cmd = [str(py), str(script), "--split", str(d), "--name", name, "--model", model, "--topk", str(topk),
               *common]
        recs = _run(cmd, log, timeout)
        ok = [r for r in recs if "error" not in r]
        if ok:
            scored = score_topk(name, topk)
            ok[-1]["test"] = scored["test"]
            ok[-1]["valid_from_lists"] = scored["valid"]
            # the peer's own NDCG@10 (tiny function) against zenrec's metric code on the same lists
            ok[-1]["check_abs_diff"] = round(max(abs(scored["valid"]["ndcg@10"] - ok[-1]["best_valid"]),
                                                 abs(scored["test"]["ndcg@10"] - ok[-1]["test_own"]["ndcg@10"])), 8)
    rec = recs[-1] if recs else {"error": "no output"}
    rec = {"library": lib, "model": model, **rec}
    rec.update(dataset=name, cap_minutes=cap, patience=args.patience, max_epochs=args.max_epochs,
               finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
               loadavg_end=round(os.getloadavg()[0], 2), command=args.command)
    return rec


def _selected(lib: str, model: str, only: list[str] | None) -> bool:
    if not only:
        return True
    keys = {lib.lower(), f"{lib}:{model}".lower()}
    return any(o.lower() in keys for o in only)


# ----------------------------------------------------------------------------- rendering
def _latest(rows: list[dict]) -> list[dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        out[(r.get("dataset"), r.get("library"), r.get("model"))] = r
    return list(out.values())


def _machine() -> str:
    return machine()


def _t_at(curve: list[dict], value: float) -> dict | None:
    """The first epoch whose validation NDCG@10 is at least ``value``."""
    return next((r for r in curve if r["valid"] >= value - 1e-12), None)


def _f(x, fmt: str = ".4f") -> str:  # noqa: ANN001
    return "–" if x is None else format(x, fmt)


def render(rows: list[dict]) -> str:
    """The ``sequential`` section: one context line, the tables, the reproduce command.

    The protocol, run diaries, trials and the commands behind the rows are in
    docs/benchmark-notes.md (#sequential).
    """
    rows = _latest(rows)
    order = {k: n for n, k in enumerate(ROWS)}
    finished = sorted(r.get("finished", "") for r in rows if r.get("finished"))
    loads = [r["loadavg_end"] for r in rows if "loadavg_end" in r]
    threads = sorted({r.get("threads") for r in rows if r.get("threads")})
    lines = [
        "## Sequential: next-item models vs RecTools and RecBole",
        "",
        context_line((f"Rows finished {finished[0][:16]}–{finished[-1][:16]} UTC; " if finished else "")
                     + f"{_machine()}; CPU only; torch threads {', '.join(map(str, threads)) or '1'}; 1-minute load "
                     f"average after each row {min(loads) if loads else 0:.1f}–{max(loads) if loads else 0:.1f}."),
        "",
    ]
    by_ds: dict[str, list[dict]] = {}
    for r in rows:
        by_ds.setdefault(r.get("dataset"), []).append(r)
    ttq, sampled, verdicts = [], [], []
    for ds in [d for d in DATASETS if d in by_ds]:
        rs = sorted(by_ds[ds], key=lambda r: order.get((r["library"], r["model"]), 99))
        lines += [f"### {ds}", "",
                  "| library | model | test NDCG@10 | HR@10 | best valid NDCG@10 | epochs | best epoch | stopped "
                  "| train time (s) | s/epoch | peak RSS (MB) | check | notes |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rs:
            if "skipped" in r or "error" in r:
                lines.append(f"| {r['library']} | {r['model']} | – | – | – | – | – | – | – | – | – | – | "
                             f"{r.get('skipped') or '**' + r['error'] + '**'} |")
                continue
            t = r["test"]
            ep = r.get("epochs")
            stopped = r.get("stopped", "")
            if stopped == "wall cap":
                stopped = f"wall cap {r['cap_minutes']:g} min"
            spe = r["train_s"] / ep if ep else None
            notes = []
            p = r.get("params") or {}
            if r["library"] == "zenrec" and p.get("loss") and p.get("loss") != "ce":
                notes.append(f"loss={p['loss']}")
            if r["library"] == "recbole":
                notes.append(f"batch {p.get('train_batch_size')}")
            if r["library"] == "zenrec" and p.get("window_stride") is not None:  # None: the default
                notes.append(f"window_stride={p['window_stride']}")
            unranked = {k: v for k, v in (r.get("unranked_users") or {}).items() if v}
            if unranked:  # users the peer could not rank: counted as misses
                notes.append("no list for " + ", ".join(f"{v} {k} users" for k, v in unranked.items()))
            lines.append(
                f"| {r['library']} | {r['model']} | {t['ndcg@10']:.4f} | {t['hit@10']:.4f} | "
                f"{_f(r.get('best_valid'))} | {ep or '–'} | {r.get('best_epoch') or '–'} | {stopped or '–'} | "
                f"{r['train_s']:.1f} | {_f(spe, '.2f')} | {r.get('peak_rss_mb', 0):.0f} | "
                f"{_f(r.get('check_abs_diff'), '.0e') if 'check_abs_diff' in r else '–'} | {'; '.join(notes)} |")
        lines.append("")
        ok = [r for r in rs if "test" in r]
        zs = next((r for r in ok if r["library"] == "zenrec" and r["model"] == "sasrec"), None)
        if zs:
            own = [r for r in ok if r["library"] == "zenrec" and r["model"] not in ("sasrec", "bert4rec")]
            beaten = [r for r in own if r["test"]["ndcg@10"] >= zs["test"]["ndcg@10"]]
            if own:
                best_own = max(own, key=lambda r: r["test"]["ndcg@10"])
                verdicts.append(
                    f"| {ds} | beats zenrec's {', '.join(r['model'] for r in own)} | {zs['test']['ndcg@10']:.4f} | "
                    f"zenrec {best_own['model']} {best_own['test']['ndcg@10']:.4f} | "
                    + ("**holds**" if not beaten else "**does not hold** (" + ", ".join(
                        f"{r['model']} {r['test']['ndcg@10']:.4f}" for r in beaten) + " ≥ SASRec)") + " |")
            peers = [r for r in ok if r["library"] != "zenrec"]
            if peers:
                worse = [r for r in peers if r["test"]["ndcg@10"] > zs["test"]["ndcg@10"]]
                best = max(peers, key=lambda r: r["test"]["ndcg@10"])
                verdicts.append(
                    f"| {ds} | (a) ≥ every peer | {zs['test']['ndcg@10']:.4f} | {best['library']} {best['model']} "
                    f"{best['test']['ndcg@10']:.4f} (ratio {zs['test']['ndcg@10'] / best['test']['ndcg@10']:.2f}) | "
                    + ("**holds**" if not worse else "**does not hold** (" + ", ".join(
                        f"{r['library']} {r['model']}" for r in worse) + " higher)") + " |")
            for p in peers:
                curve = p.get("curve") or []
                best_row = next((c for c in curve if c["epoch"] == p["best_epoch"]), None)
                if not best_row:
                    continue
                z = _t_at(zs.get("curve") or [], p["best_valid"])
                ratio = z["train_seconds"] / best_row["train_seconds"] if z and best_row["train_seconds"] else None
                ttq.append(
                    f"| {ds} | {p['library']} {p['model']} | {p['best_valid']:.4f} | "
                    f"{best_row['train_seconds']:.1f} (epoch {best_row['epoch']}) | "
                    + (f"{z['train_seconds']:.1f} (epoch {z['epoch']}) | {ratio:.3f} | "
                       f"{'yes' if ratio <= 0.25 else '**no**'} |" if z else
                       f"never (zenrec's best {zs.get('best_valid', 0):.4f}) | – | **no** |"))
        for r in ok:
            if r["library"] == "zenrec" and "sampled100" in r:
                s = r["sampled100"]
                pap = PAPER.get(ds, {}) if r["model"] == "sasrec" else {}
                sampled.append(f"| {ds} | zenrec {r['model']} | {s['hit@10']:.4f} | {s['ndcg@10']:.4f} | "
                               f"{_f(pap.get('hit@10'))} | {_f(pap.get('ndcg@10'))} |")
    if verdicts:
        lines += ["#### Targets: zenrec SASRec, test NDCG@10", "",
                  "| dataset | target | zenrec SASRec | best of the others | verdict |", "|---|---|---|---|---|",
                  *verdicts, ""]
    if ttq:
        lines += [
            "#### Time to quality (target b: ratio ≤ 0.25)",
            "",
            "| dataset | peer | peer's best valid NDCG@10 | peer's training s to reach it | zenrec SASRec reaches it at "
            "(training s) | ratio | ≤ 0.25 |",
            "|---|---|---|---|---|---|---|",
            *ttq, ""]
    if sampled:
        lines += [
            "#### Sampled-100 (not full ranking; the SASRec paper's protocol, seed 0)",
            "",
            "| dataset | model | sampled-100 HR@10 | sampled-100 NDCG@10 | paper SASRec HR@10 | paper SASRec NDCG@10 |",
            "|---|---|---|---|---|---|",
            *sampled, ""]
    # which commands made the rows is in the results (``command``) and in docs/benchmark-notes.md
    lines += section_footer(COMMAND, "sequential")
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Write this benchmark's section of docs/benchmarks.md."""
    write_doc_section("sequential", section)


def _zenrec_params(items: list[str]) -> dict[str, dict]:
    """``[DATASET:]MODEL.key=value`` (value JSON or text) → {"[DATASET:]MODEL": {key: value}}."""
    out: dict[str, dict] = {}
    for it in items:
        head, _, val = it.partition("=")
        target, _, key = head.rpartition(".")
        try:
            v = json.loads(val)
        except json.JSONDecodeError:
            v = val
        out.setdefault(target, {})[key] = v
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding amazon-games-sasrec/")
    ap.add_argument("--dataset", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--only", nargs="+", help="rows to run: a library (zenrec, rectools, recbole) or LIB:MODEL")
    ap.add_argument("--cap-minutes", type=float, default=30.0, help="wall cap per neural model")
    ap.add_argument("--recbole-cap-minutes", type=float, help="RecBole's wall cap (default: --cap-minutes)")
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--patience", type=int, default=10, help="epochs without a validation gain before stopping")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--zenrec-param", action="append", default=[], metavar="[DATASET:]MODEL.KEY=VALUE",
                    help="a zenrec hyper-parameter, e.g. amazon-games:sasrec.loss=sampled")
    ap.add_argument("--results", type=Path, nargs="+", default=[RESULTS],
                    help="JSON-lines file rows are appended to (with --reuse: files to render)")
    ap.add_argument("--reuse", action="store_true", help="run nothing; render the rows of --results")
    ap.add_argument("--write-docs", action="store_true", help="render the sequential section of docs/benchmarks.md")
    ap.add_argument("--note", default="", help="not rendered any more: notes go into docs/benchmark-notes.md")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.dataset = args.dataset[0] if isinstance(args.dataset, list) else args.dataset
        zenrec_worker(args)
        return
    args.zenrec_params = _zenrec_params(args.zenrec_param)
    args.command = shlex.join(["python", "benchmarks/bench_sequential.py", *(argv if argv is not None else sys.argv[1:])])
    rows: list[dict] = []
    if not args.reuse:
        out = args.results[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        for name in args.dataset:
            if prepare(name, args.datasets) is None:
                print(f"[seq] {name}: {args.datasets / 'amazon-games-sasrec' / 'Video.txt'} not found; skipped",
                      file=sys.stderr, flush=True)
                continue
            for lib, model in ROWS:
                if not _selected(lib, model, args.only):
                    continue
                t0 = time.perf_counter()
                rec = run_row(lib, model, name, args)
                rec["dataset"] = name
                emit({k: v for k, v in rec.items() if k != "curve"})
                print(f"[seq] {name} {lib} {model}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
                with open(out, "a") as fh:
                    fh.write(json.dumps(rec, sort_keys=True) + "\n")
    if args.write_docs:
        for f in args.results:
            if f.exists():
                rows += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        if args.note:
            print("[seq] --note is not rendered: add it to docs/benchmark-notes.md (#sequential) by hand",
                  file=sys.stderr)
        if rows:
            write_docs(render(rows))


if __name__ == "__main__":
    main()
