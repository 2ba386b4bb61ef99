"""Run the whole side-by-side benchmark and write its tables into docs/benchmarks.md.

Steps: write the shared split files; on each dataset run zenrec, implicit and
RecBole on those files; run the speed checks; then replace the sections
between ``<!-- quality:start -->`` / ``<!-- quality:end -->`` and
``<!-- speed:start -->`` / ``<!-- speed:end -->`` of docs/benchmarks.md
(other sections are kept; the file is created if missing).

Raw JSON lines go to ``benchmarks/.work/results/<library>-<dataset>.jsonl``;
``--reuse`` keeps result files that already exist (to re-render, or to
resume an interrupted run).

Usage::

    bash benchmarks/setup_peers.sh            # once: peer venvs
    .venv/bin/python benchmarks/run_all.py [--datasets DIR] [--repeats 3] [--reuse]   # zenrec's venv
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATASETS, HERE, REPO, SPLITS, WORK, context_line, machine, section_footer  # noqa: E402

RESULTS = WORK / "results"
DOC = REPO / "docs" / "benchmarks.md"
DATASETS = ("ml-100k", "ml-1m-ultragcn")
METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")


def _run(cmd: list[str], out: Path, reuse: bool, render_only: bool = False) -> list[dict]:
    if render_only:
        if not out.exists():
            print(f"[run_all] no {out.relative_to(REPO)}: left out", flush=True)
            return []
    elif reuse and out.exists() and out.stat().st_size > 0:
        print(f"[run_all] reusing {out.relative_to(REPO)}", flush=True)
    else:
        print(f"[run_all] $ {shlex.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        with open(out.with_suffix(".tmp"), "w") as fh, open(out.with_suffix(".err"), "w") as err:
            subprocess.run(cmd, stdout=fh, stderr=err, check=False)
        out.with_suffix(".tmp").replace(out)
        print(f"[run_all]   done in {time.perf_counter() - t0:.0f}s", flush=True)
    recs = []
    for line in out.read_text().splitlines():
        if line.startswith("{"):
            recs.append(json.loads(line))
    for r in recs:
        if "error" in r:
            print(f"[run_all]   ERROR in {out.name}: {r.get('model')} {r['error']}", flush=True)
    return recs


def _best(recs: list[dict], key: str = "ndcg@10") -> dict | None:
    ok = [r for r in recs if "test" in r and r.get("fit_on", "train") == "train"]
    return max(ok, key=lambda r: r["test"][key]) if ok else None


def _fmt_params(p: dict) -> str:
    p = {k: v for k, v in (p or {}).items() if k not in ("on_unknown_user", "max_items", "block_size")}
    return ", ".join(f"{k}={v}" for k, v in p.items())


def _quality_table(ds: str, recs: list[dict]) -> list[str]:
    lines = [
        "| library | model | fit on | test NDCG@10 | Recall@10 | NDCG@20 | Recall@20 | fit time (s) | epochs | "
        "peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in _ordered(recs):
        t = r["test"]
        ep = r.get("epochs", "")
        if r.get("hit_wall_cap"):
            ep = f"{ep} (wall cap)"
        elif r.get("max_epochs") and ep == r.get("max_epochs") and r["max_epochs"] > 1:
            ep = f"{ep} (epoch cap)"
        fit = f"{r['fit_s']:.2f}"
        if r.get("repeats", 1) > 1:
            fit += f" (median of {r['repeats']})"
        lines.append(
            f"| {r['library']} | {r['model']} | {r.get('fit_on', 'train')} | {t['ndcg@10']:.4f} | "
            f"{t['recall@10']:.4f} | {t['ndcg@20']:.4f} | {t['recall@20']:.4f} | {fit} | {ep} | "
            f"{r.get('peak_rss_mb', 0):.0f} |"
        )
    return lines


def _ordered(recs: list[dict]) -> list[dict]:
    order = {"zenrec": 0, "implicit": 1, "recbole": 2}
    return sorted((r for r in recs if "test" in r),
                  key=lambda r: (r.get("fit_on", "train") != "train", order.get(r["library"], 9)))


def _params_table(recs: list[dict]) -> list[str]:
    """One row per library and model with hyper-parameters (the refitted rows use the same ones)."""
    seen, rows = set(), []
    for r in _ordered(recs):
        p = _fmt_params(r.get("params"))
        if p and (r["library"], r["model"], p) not in seen:
            seen.add((r["library"], r["model"], p))
            rows.append(f"| {r['library']} | {r['model']} | {p} |")
    return ["| library | model | hyper-parameters |", "|---|---|---|", *rows] if rows else []


def _summary(ds: str, recs: list[dict]) -> list[str]:
    """The targets as a table (what they mean: docs/benchmark-notes.md#quality)."""
    z = _best([r for r in recs if r["library"] == "zenrec"])
    peers = [r for r in recs if r["library"] != "zenrec"]
    p = _best(peers)
    out = []
    if z and p:
        ratio = z["test"]["ndcg@10"] / p["test"]["ndcg@10"]
        verdict = "holds" if z["test"]["ndcg@10"] >= p["test"]["ndcg@10"] else "**does not hold**"
        out.append(f"| best zenrec model ≥ best peer, test NDCG@10 | {z['model']} {z['test']['ndcg@10']:.4f} | "
                   f"{p['library']} {p['model']} {p['test']['ndcg@10']:.4f} | {ratio:.3f} (≥ 1) | {verdict} |")
    ze = next((r for r in recs if r["library"] == "zenrec" and r["model"] == "ease"
               and r.get("fit_on") == "train" and "fit_s" in r), None)
    rb = next((r for r in recs if r["library"] == "recbole" and r["model"] == "EASE" and "fit_s" in r), None)
    if ze and rb:
        verdict = "holds" if ze["fit_s"] <= rb["fit_s"] else "**does not hold**"
        out.append(f"| EASE fit time ≤ RecBole's (its includes one validation pass) | {ze['fit_s']:.2f} s | "
                   f"recbole EASE {rb['fit_s']:.2f} s | {ze['fit_s'] / rb['fit_s']:.2f} (≤ 1) | {verdict} |")
    if ds == "ml-1m-ultragcn":
        zr = [r for r in recs if r["library"] == "zenrec" and "test" in r]
        if zr:
            for key, floor, published in (("recall@20", 0.28, "UltraGCN 0.2787, SimpleX 0.2802"),
                                          ("ndcg@20", 0.27, "UltraGCN 0.2642, SimpleX 0.2670")):
                b = max(zr, key=lambda r, k=key: r["test"][k])
                ok = b["test"][key] >= floor
                name = {"recall@20": "Recall@20", "ndcg@20": "NDCG@20"}[key]
                out.append(f"| {name} ≥ {floor} (published, whole train file) | {b['model']} "
                           f"{b['test'][key]:.4f} (fit on {b.get('fit_on')}) | {published} | – | "
                           f"{'holds' if ok else '**does not hold**'} |")
    if not out:
        return []
    return ["| target | zenrec | reference | ratio | verdict |", "|---|---|---|---|---|", *out]


def render_quality(all_recs: dict[str, list[dict]], failed: dict[str, list[dict]], context: str,
                   command: str) -> str:
    """The ``quality`` section: one context line, per dataset the results, hyper-parameters and targets."""
    names = {"ml-100k": "ml-100k (general protocol: per-user random 80/10/10, seed 2020)",
             "ml-1m-ultragcn": "ml-1m-ultragcn (fixed UltraGCN/LCFN test split; 10% of each user's training "
                               "items held out as validation, seed 2020)"}
    q = ["## Quality: zenrec, implicit and RecBole on the same splits", "", context, ""]
    for ds, recs in all_recs.items():
        q += [f"### {names[ds]}", ""]
        q += _quality_table(ds, recs) + [""]
        if failed.get(ds):
            q += ["| library | model | error |", "|---|---|---|"]
            q += [f"| {r.get('library')} | {r.get('model', '')} | **{str(r['error'])[:120]}** |" for r in failed[ds]]
            q += [""]
        params = _params_table(recs)
        if params:
            q += params + [""]
        summary = _summary(ds, recs)
        if summary:
            q += summary + [""]
    q += section_footer(command, "quality")
    return "\n".join(q)


def render_speed(speed: list[dict], context: str, command: str) -> str:
    """The ``speed`` section: one context line, the table, the reproduce command."""
    s = ["## Speed: EASE fit and full-ranking evaluation", "", context, "",
         "| check | library | size | time (evaluation: median, then each run) | peak RSS (MB) | note |", "|---|---|---|---|---|---|"]
    for r in speed:
        if "error" in r:
            s.append(f"| {r.get('bench', '?')} | error | | | | {str(r['error'])[:120]} |")
        elif r["bench"] == "ease_fit" and r["library"] == "zenrec":
            ok = "target ≤ 60 s holds" if r["fit_s"] <= 60 else "**target ≤ 60 s does not hold**"
            s.append(f"| EASE fit | zenrec ease (reg {r['params']['reg']}) | {r['users']:,} users × "
                     f"{r['items']:,} items, {r['nnz']:,} events (synthetic) | {r['fit_s']:.1f} s | "
                     f"{r['peak_rss_mb']:.0f} | {ok} |")
        elif r["bench"] == "ease_fit":
            s.append(f"| EASE fit | {r['library']} of the Gram matrix | {r['items_timed']:,} items timed | "
                     f"{r['inv_s']:.1f} s | | **extrapolated** by n³ to {r['items']:,} items: "
                     f"≈ {r['extrapolated_s']:.0f} s (not measured) |")
        elif r["bench"] == "full_ranking_eval":
            ok = "≤ 2 s holds" if r["median_s"] <= 2 else "**≤ 2 s does not hold**"
            s.append(f"| full-ranking eval | zenrec {r['model']} | {r['users']:,} users × {r['items']:,} items, "
                     f"@10/@20, {r['metrics']} | {r['median_s']:.2f} s ({', '.join(str(x) for x in r['all_s'])}) | "
                     f"| {ok} |")
    s += ["", *section_footer(command, "speed")]
    return "\n".join(s)


def _replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        a = text.index(start)
        b = text.index(end) + len(end)
        return text[:a] + block + text[b:]
    return text.rstrip() + "\n\n" + block + "\n"


def _write_doc(sections: dict[str, str]) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else (
        "# Benchmarks\n\nSide-by-side results of zenrec and peer libraries, each section made by the command "
        "it names. Ratios measured in one run on one machine are what a claim rests on.\n"
    )
    for name, body in sections.items():
        text = _replace_section(text, name, body)
    tmp = DOC.with_name(DOC.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(DOC)


def _machine() -> str:
    return machine()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m-ultragcn/")
    ap.add_argument("--repeats", type=int, default=1, help="runs per model (timings: median)")
    ap.add_argument("--reuse", action="store_true", help="keep existing result files")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="run nothing; tabulate the result files there are")
    ap.add_argument("--note", default="", help="not rendered any more: notes go into docs/benchmark-notes.md")
    ap.add_argument("--only", choices=DATASETS, action="append")
    ap.add_argument("--ml1m-max-epochs", type=int, default=30, help="RecBole neural models on ml-1m")
    ap.add_argument("--ml1m-wall-cap", type=float, default=300, help="seconds per RecBole neural model on ml-1m")
    ap.add_argument("--zenrec-timeout", type=float, default=900, help="seconds per zenrec model run")
    args = ap.parse_args(argv)
    py = sys.executable
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    load0 = os.getloadavg()
    if not args.render_only and not (args.reuse and all((SPLITS / d / f"{d}.test.inter").exists() for d in DATASETS)):
        subprocess.run([py, str(HERE / "prepare_splits.py"), "--datasets", str(args.datasets)], check=True)
    all_recs: dict[str, list[dict]] = {}
    failed: dict[str, list[dict]] = {}
    rep = ["--repeats", str(args.repeats)]
    for ds in args.only or DATASETS:
        recs = []
        fit_on = "train,train+valid" if ds == "ml-1m-ultragcn" else "train"
        recs += _run([py, str(HERE / "run_zenrec.py"), "--dataset", ds, "--fit-on", fit_on, *rep,
                      "--timeout", str(args.zenrec_timeout)],
                     RESULTS / f"zenrec-{ds}.jsonl", args.reuse, args.render_only)
        recs += _run([py, str(HERE / "run_implicit.py"), "--dataset", ds, "--fit-on", fit_on, *rep],
                     RESULTS / f"implicit-{ds}.jsonl", args.reuse, args.render_only)
        rb = [py, str(HERE / "run_recbole.py"), "--dataset", ds, *rep]
        if ds == "ml-1m-ultragcn":
            rb += ["--max-epochs", str(args.ml1m_max_epochs), "--wall-cap", str(args.ml1m_wall_cap)]
        recs += _run(rb, RESULTS / f"recbole-{ds}.jsonl", args.reuse, args.render_only)
        all_recs[ds] = [r for r in recs if "error" not in r]
        failed[ds] = [r for r in recs if "error" in r]
    speed = []
    if not args.skip_speed:
        speed = _run([py, str(HERE / "bench_speed.py")], RESULTS / "speed.jsonl", args.reuse, args.render_only)
    load1 = os.getloadavg()
    finished = datetime.now(timezone.utc)
    if args.render_only:
        ours = [RESULTS / f"{lib}-{d}.jsonl" for lib in ("zenrec", "implicit", "recbole") for d in DATASETS]
        stamps = [f.stat().st_mtime for f in [*ours, RESULTS / "speed.jsonl"] if f.exists()]
        if stamps:
            started = datetime.fromtimestamp(min(stamps), timezone.utc)
            finished = datetime.fromtimestamp(max(stamps), timezone.utc)

    cmd = "python benchmarks/run_all.py" + (f" --repeats {args.repeats}" if args.repeats != 1 else "")
    command = f"make install && bash benchmarks/setup_peers.sh && .venv/bin/{cmd}"
    span = f"{started:%Y-%m-%d} {started:%H:%M}–{finished:%H:%M} UTC"
    context = context_line(f"Run {span}, " + ("tabulated with `--render-only` from the result files" if args.render_only
                                               else f"load average {load0[0]:.1f} → {load1[0]:.1f}")
                           + f"; {_machine()}; CPU only.")
    if args.note:
        print("--note is not rendered: add it to docs/benchmark-notes.md (#quality) by hand", flush=True)
    sections = {"quality": render_quality(all_recs, failed, context, command)}
    if speed:
        sections["speed"] = render_speed(speed, context, command)
    _write_doc(sections)
    print(f"[run_all] wrote {DOC.relative_to(REPO)}", flush=True)


if __name__ == "__main__":
    main()
