"""Training speed of every neural model: epochs/s and peak memory on ml-1m-ultragcn and amazon-games-sasrec.

The neural models are the registered models trained by the shared torch loop
(``zenrec.train.loop.fit_loop``), found in the registry at run time: lmf,
gru4rec, sasrec, bert4rec (when registered), twotower and multitask.  Each
(dataset, model) pair runs in its own subprocess, so its peak RSS is its own,
with every parameter at its default except ``epochs``, and no validation set.
The first epoch is a warm-up cut to ``--warmup-steps`` steps (not measured);
then up to ``--epochs`` full epochs are measured, no further one started once
the measured ones plus one more would pass ``--budget`` seconds.  Seconds per
epoch are the differences of the loop's cumulative ``train_seconds`` (training
steps only); the table gives their median.  A first measured epoch still
running after ``--cap`` seconds stops training there (its remaining batches
are only counted) and its time per epoch is extrapolated from the steps done,
marked as such.  Each process has a ``--timeout``; a timeout is recorded.

Data (read from ``<datasets>``, default ``../shared/datasets``; a missing
folder is skipped with a note):

* ``ml-1m-ultragcn/train.txt`` — 6,022 users, 3,043 items, 796,244 pairs.
  The file has no timestamps: a user's items keep their order on the line
  (file order, not chronological) for the sequence models.
* ``amazon-games-sasrec/Video.txt`` — the training part of the SASRec
  leave-one-out protocol (each user's last two items held out; the 112 users
  with fewer than three keep none): 31,013 users, 23,715 items, 225,111 events;
  a user's lines are in time order.

Single-behaviour data: ``multitask`` counts every event as a purchase (and so a
click); ``twotower`` gets no side information (ID-only: user id + recent items,
item id).  On amazon-games the sequence models whose default is the full
softmax (``loss="ce"``) also run with ``loss="sampled"``.

    python benchmarks/bench_neural_speed.py --threads 2 --write-docs
    python benchmarks/bench_neural_speed.py --only sasrec --datasets-only amazon-games-sasrec
    python benchmarks/bench_neural_speed.py --reuse --write-docs      # re-render from the results file

prints one JSON line per run; ``--write-docs`` renders the ``neural-speed``
section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATASETS, REPO, WORK, context_line, emit, section_footer, write_doc_section  # noqa: E402

START, END = "<!-- neural-speed:start -->", "<!-- neural-speed:end -->"
COMMAND = "python benchmarks/bench_neural_speed.py --threads 2 --write-docs"
DATASETS = ("ml-1m-ultragcn", "amazon-games-sasrec")
#: the order of the table; other registered models trained by fit_loop follow
KNOWN = ("lmf", "gru4rec", "sasrec", "bert4rec", "twotower", "multitask")
#: config fields shown in the table, when the model has them
SHOWN = ("factors", "batch_size", "loss", "negatives", "max_len", "blocks", "heads", "layers", "mask_prob",
         "architecture", "objective", "experts", "history_len")
#: how the models without a ``loss`` field train
LOSS_NOTE = {"lmf": "BCE, sampled negatives", "multitask": "BCE per task, sampled negatives"}


# --------------------------------------------------------------------- data
def load_dataset(folder: Path, name: str):
    """The training ``Interactions`` of one dataset (order = time order where there is one)."""
    import numpy as np

    from zenrec.data import Interactions

    if name == "ml-1m-ultragcn":
        users, items, pos = [], [], []
        for line in (folder / "train.txt").read_text().splitlines():
            ids = np.asarray(line.split(), dtype=np.int64)
            if len(ids) < 2:
                continue
            users.append(np.full(len(ids) - 1, ids[0]))
            items.append(ids[1:])
            pos.append(np.arange(len(ids) - 1))
        u, i, t = np.concatenate(users), np.concatenate(items), np.concatenate(pos)
        return Interactions(u, i, int(u.max()) + 1, int(i.max()) + 1, timestamp=t)  # file order
    if name == "amazon-games-sasrec":
        raw = np.loadtxt(folder / "Video.txt", dtype=np.int64, ndmin=2)
        u, i = raw[:, 0] - 1, raw[:, 1] - 1  # 1-based ids
        line = np.arange(len(u))
        order = np.lexsort((line, u))  # stable per user: line order is time order
        u, i, line = u[order], i[order], line[order]
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
        counts = np.diff(np.r_[starts, len(u)])
        rank_from_end = np.repeat(starts + counts, counts) - np.arange(len(u))  # 1 = the user's last event
        keep = rank_from_end > 2  # the last two items are validation / test in the SASRec protocol
        return Interactions(u[keep], i[keep], int(u.max()) + 1, int(i.max()) + 1, timestamp=line[keep])
    raise ValueError(f"unknown dataset {name!r}")


def dataset_files(datasets: Path, name: str) -> list[Path]:
    sub = {"ml-1m-ultragcn": ["train.txt"], "amazon-games-sasrec": ["Video.txt"]}[name]
    return [datasets / name / f for f in sub]


# ------------------------------------------------------------------- models
def neural_models() -> tuple[list[str], list[str]]:
    """(registered models trained with torch, by ``fit_loop``, in table order; known ones not registered)."""
    from zenrec.models.registry import available_models, get_model_class

    found = [name for name in available_models() if get_model_class(name).uses_torch]
    ordered = [m for m in KNOWN if m in found] + [m for m in found if m not in KNOWN]
    return ordered, [m for m in KNOWN if m not in found]


def code_version() -> str:
    """The commit measured, with the model and training files that differ from it (a shared working tree)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/zenrec/models", "src/zenrec/train"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = sorted(Path(x[3:]).name for x in dirty if x.strip())
    return head + (f" + uncommitted {', '.join(changed)}" if changed else "")


def runs_for(datasets: list[str], models: list[str]) -> list[tuple[str, str, str, dict]]:
    """(dataset, label, model, params) rows: every model at its defaults on every dataset first, then the
    variants (``loss="sampled"`` for full-softmax sequence models on amazon-games, ``wide=False`` where a
    model's default has a closed-form wide part)."""
    from pydantic import ValidationError

    from zenrec.models.registry import get_model_class

    first, later = [], []
    for dataset in datasets:
        for m in models:
            fields = get_model_class(m).Config.model_fields
            default = (dataset, m, m, {})
            wide = getattr(fields.get("wide"), "default", None) is True
            # a default with a costly closed-form setup goes last among the defaults
            (later if wide and dataset == "amazon-games-sasrec" else first).append(default)
    variants = []
    for dataset in datasets:
        for m in models:
            cfg = get_model_class(m).Config
            if dataset == "amazon-games-sasrec" and getattr(cfg.model_fields.get("loss"), "default", None) == "ce":
                try:
                    cfg(loss="sampled")
                    variants.append((dataset, f"{m} loss=sampled", m, {"loss": "sampled"}))
                except ValidationError:
                    pass
            if getattr(cfg.model_fields.get("wide"), "default", None) is True:
                variants.append((dataset, f"{m} wide=False", m, {"wide": False}))
    return first + variants + later


# ------------------------------------------------------------ one run (child)
def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux


def child(args: argparse.Namespace) -> None:
    """Train one model in this process and print its record (plus one progress line per epoch)."""
    import torch

    import zenrec.train.loop as loop
    from zenrec.models import TrainOptions, create_model

    params = json.loads(args.params)
    t0 = time.perf_counter()
    train = load_dataset(args.datasets / args.dataset, args.dataset)
    load_s = time.perf_counter() - t0
    counts: dict[int, list[int]] = {}
    original = loop.fit_loop

    measured: list[float] = []
    partial: dict[str, float] = {}

    def counting_fit_loop(net, optimizer, batches, *a, **kw):
        """fit_loop with a batch counter (one len() per batch), a progress line per epoch,
        a shortened first epoch (the warm-up) and no new epoch once the time budget is spent."""
        def counted(epoch: int):
            if epoch == 0:
                print(json.dumps({"started": round(time.perf_counter() - t_fit, 3)}), flush=True)
            if epoch > 0 and (partial or (measured and sum(measured) + measured[-1] > args.budget)):
                counts[epoch] = [0, 0]  # budget spent: an empty epoch, dropped from the measurement
                return
            t_start = time.perf_counter()
            steps = examples = trained = 0
            t_cut = None
            for batch in batches(epoch):
                now = time.perf_counter()
                if t_cut is None and ((epoch == 0 and steps >= args.warmup_steps)
                                      or (epoch == 1 and now - t_start > args.cap)):
                    if epoch == 0:
                        break
                    t_cut, trained = now - t_start, steps  # the first measured epoch passed the cap
                steps += 1
                first = batch[0] if isinstance(batch, (tuple, list)) else batch
                examples += len(first)
                if t_cut is None:
                    yield batch  # past the cap the batches are only counted, not trained
            if t_cut is not None:
                partial.update(steps=trained, seconds=t_cut)
            elif epoch > 0:
                measured.append(time.perf_counter() - t_start)
            counts[epoch] = [steps, examples]
            print(json.dumps({"progress": epoch, "t": round(time.perf_counter() - t_fit, 3),
                              "steps": steps, "examples": examples}), flush=True)

        return original(net, optimizer, counted, *a, **kw)

    loop.fit_loop = counting_fit_loop
    model = create_model(args.model, epochs=1 + args.epochs, **params)
    rss_before = _rss_mb()
    load1 = os.getloadavg()[0]
    t_fit = time.perf_counter()
    model.fit(train, None, TrainOptions(seed=2020, threads=args.threads))
    fit_s = time.perf_counter() - t_fit
    hist = getattr(model, "train_history_", None) or []
    cum = [0.0] + [float(r["train_seconds"]) for r in hist]
    per_epoch = [b - a for a, b in zip(cum[:-1], cum[1:], strict=False)]
    # epoch 0 is the warm-up; epochs after the budget ran no step
    full = [e for e in range(1, len(hist)) if counts.get(e, [0])[0] > 0]
    steps, examples = counts[full[0]] if full else (None, None)
    if partial:  # the first measured epoch passed --cap: seconds per epoch extrapolated from its steps
        epoch_s = []
        s_epoch = partial["seconds"] / max(partial["steps"], 1) * steps
    else:
        epoch_s = [per_epoch[e] for e in full]
        s_epoch = statistics.median(epoch_s) if epoch_s else None
    cuda = torch.cuda.is_available() and (args.device or "cuda") != "cpu"
    rec = {
        "dataset": args.dataset, "label": args.label, "model": args.model, "params": params,
        "config": {k: v for k, v in model.config.model_dump(mode="json").items() if k in SHOWN},
        "n_users": train.n_users, "n_items": train.n_items, "events": len(train), "pairs": int(train.binary.nnz),
        "load_s": round(load_s, 2), "fit_s": round(fit_s, 2), "setup_s": round(fit_s - cum[-1], 2), "epochs_measured": len(epoch_s),
        "warmup_steps": counts.get(0, [0])[0], "warmup_s": round(per_epoch[0], 3) if per_epoch else None,
        "budget_s": args.budget, "epochs_max": args.epochs, "cap_s": args.cap,
        "extrapolated_from_steps": int(partial["steps"]) if partial else None,
        "partial_s": round(partial["seconds"], 2) if partial else None, "epoch_s": [round(s, 3) for s in epoch_s],
        "s_per_epoch": None if s_epoch is None else round(s_epoch, 3),
        "epochs_per_s": None if not s_epoch else round(1.0 / s_epoch, 4),
        "steps_per_epoch": steps, "examples_per_epoch": examples,
        "examples_per_s": None if not (s_epoch and examples) else round(examples / s_epoch),
        "rss_before_fit_mb": round(rss_before), "peak_rss_mb": round(_rss_mb()),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "load1_start": round(load1, 2), "load1_end": round(os.getloadavg()[0], 2),
    }
    if cuda:
        rec["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(json.dumps(rec, sort_keys=True), flush=True)


# ------------------------------------------------------------- parent side
def run_child(args: argparse.Namespace, dataset: str, label: str, model: str, params: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", "--dataset", dataset, "--model", model, "--label", label,
           "--params", json.dumps(params), "--datasets", str(args.datasets), "--threads", str(args.threads),
           "--epochs", str(args.epochs), "--warmup-steps", str(args.warmup_steps), "--budget", str(args.budget),
           "--cap", str(args.cap)]
    if args.device:
        cmd += ["--device", args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    base = {"dataset": dataset, "label": label, "model": model, "params": params, "threads": args.threads}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
        timed_out = False
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        rc, timed_out = None, True
    wall = round(time.perf_counter() - t0, 1)
    progress, final, started = [], None, None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "progress" in obj:
                progress.append(obj)
            elif "started" in obj:
                started = obj["started"]
            else:
                final = obj
    if final is not None and not timed_out and rc == 0:
        return {**base, **final, "wall_s": wall}
    rec = {**base, "wall_s": wall, "epochs_done": len(progress),
           "error": f"timed out after {args.timeout:.0f}s" if timed_out else f"exit code {rc}",
           "stderr_tail": err[-1500:]}
    rec["setup_s_partial"] = started  # None: still setting up (before the first training step)
    if progress:  # the epochs that finished before the end (the first is the warm-up)
        ts = [started or 0.0] + [p["t"] for p in progress]
        rec["epoch_s_partial"] = [round(b - a, 2) for a, b in zip(ts[:-1], ts[1:], strict=False)]
    return rec


def _fmt(x, spec: str = ".2f", dash: str = "–") -> str:
    return dash if x is None else format(x, spec)


def _settings(r: dict) -> str:
    c = dict(r.get("config") or {})
    parts = [f"{k}={c[k]}" for k in SHOWN if k in c]
    if "loss" not in c and r["model"] in LOSS_NOTE:
        parts.append(LOSS_NOTE[r["model"]])
    return ", ".join(parts)


def render(rows: list[dict], notes: list[str]) -> str:
    """The ``neural-speed`` section: one context line, the settings and speed tables, the reproduce command.

    ``notes`` are the facts the run found out (a model not registered, a dataset
    skipped); narrative and run diaries go into docs/benchmark-notes.md (#neural-speed).
    """
    order = {d: i for i, d in enumerate(DATASETS)}
    label_rank = {m: i for i, m in enumerate(KNOWN)}
    rows = sorted(rows, key=lambda r: (order.get(r["dataset"], 99), label_rank.get(r["model"], 50), r["label"]))
    ok = [r for r in rows if "error" not in r]
    any_cuda = any("cuda_peak_mb" in r for r in ok)
    head = ["dataset", "model", "examples / epoch", "steps / epoch", "s / epoch", "epochs / s", "examples / s",
            "measured epochs (s each)", "setup s", "peak RSS MB (before fit)"]
    if any_cuda:
        head.append("CUDA peak MB")
    head += ["device, threads", "load avg"]
    lines = ["## Training speed of the neural models", ""]
    if ok:
        when = sorted(r.get("finished", "") for r in ok if r.get("finished"))
        span = f"Run {when[0][:10]} {when[0][11:16]}–{when[-1][11:16]} UTC; " if when else ""
        r0 = ok[0]
        torch = ", ".join(sorted({str(r.get("torch")) for r in ok}))
        codes = ", ".join(sorted({str(r.get("code", "unknown")) for r in ok}))
        lines += [context_line(f"{span}{r0.get('machine', platform.machine())}, {r0['cpus']} CPUs; torch {torch}, "
                               f"Python {r0['python']}; code {codes}; models one at a time, defaults (settings below)."),
                  ""]
    settings: dict[tuple[str, str], None] = {}
    for r in ok:
        settings.setdefault((f"`{r['label']}`", _settings(r)), None)
    lines += ["| model | settings |", "|---|---|", *[f"| {m} | {st} |" for m, st in settings], ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            part = r.get("epoch_s_partial")
            if r["error"] == "not run":
                done = "the whole run's time limit ended before this row"
            elif r.get("setup_s_partial") is None and "timed out" in r["error"]:
                done = "still in the setup before the first training step"
            elif part:
                done = (f"warm-up {part[0]:.0f} s" + (f", epochs {', '.join(f'{x:.0f}' for x in part[1:])} s"
                                                     if len(part) > 1 else ", no full epoch"))
            else:
                done = "no epoch done"
            cells = [r["dataset"], f"`{r['label']}`", "", "", f"**{r['error']}**; {done}", "", "", "", "", ""]
            if any_cuda:
                cells.append("")
            cells += [f"threads {r.get('threads')}", ""]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        approx = "≈ " if r.get("extrapolated_from_steps") else ""
        done = (f"≈ from {r['extrapolated_from_steps']} of {r['steps_per_epoch']} steps" if approx
                else ", ".join(f"{x:.1f}" for x in r.get("epoch_s") or []) or str(r["epochs_measured"]))
        cells = [r["dataset"], f"`{r['label']}`", _fmt(r["examples_per_epoch"], ","),
                 _fmt(r["steps_per_epoch"], ","), approx + _fmt(r["s_per_epoch"], ".1f"),
                 approx + _fmt(r["epochs_per_s"], ".4f"), approx + _fmt(r["examples_per_s"], ","), done,
                 _fmt(r.get("setup_s"), ".1f"), f"{r['peak_rss_mb']:,} ({r['rss_before_fit_mb']:,})"]
        if any_cuda:
            cells.append(_fmt(r.get("cuda_peak_mb"), ","))
        cells += [f"{r['device']}, {r['torch_threads']}", f"{r['load1_start']:.1f}–{r['load1_end']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "| run note |", "|---|", *[f"| {n[:180]} |" for n in notes]]
    lines += ["", *section_footer(COMMAND, "neural-speed")]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Write this benchmark's section of docs/benchmarks.md."""
    write_doc_section("neural-speed", section)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding the dataset folders")
    ap.add_argument("--datasets-only", nargs="+", choices=DATASETS, default=list(DATASETS), metavar="NAME",
                    help=f"datasets to run (default: {' '.join(DATASETS)})")
    ap.add_argument("--only", nargs="+", metavar="MODEL", help="registry names or row labels to run (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--epochs", type=int, default=3, help="most measured epochs (default 3)")
    ap.add_argument("--budget", type=float, default=60,
                    help="no further measured epoch once the measured ones plus one more would pass this many "
                         "seconds; at least one runs (default 60)")
    ap.add_argument("--cap", type=float, default=45,
                    help="a first measured epoch still running after this many seconds stops training there; its "
                         "seconds per epoch are extrapolated from the steps done (default 45)")
    ap.add_argument("--warmup-steps", type=int, default=10,
                    help="training steps of the warm-up (a shortened first epoch, not measured; default 10)")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per model process (default 240)")
    ap.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when available, else CPU")
    ap.add_argument("--results", type=Path, nargs="+", default=[WORK / "results" / "neural_speed.jsonl"],
                    help="JSON-lines results file (with --reuse: the files to read)")
    ap.add_argument("--reuse", action="store_true", help="re-render from the results without training")
    ap.add_argument("--write-docs", action="store_true", help="render the neural-speed section of docs/benchmarks.md")
    ap.add_argument("--note", action="append", default=[],
                    help="a paragraph kept in the results file, not rendered (narrative: docs/benchmark-notes.md)")
    # child mode
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--label", help=argparse.SUPPRESS)
    ap.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return

    notes: list[str] = []  # what the run found out (rendered); --note paragraphs are only kept in the results
    user_notes = list(args.note)
    results = args.results[0]
    rows: list[dict] = []
    if args.reuse:
        for f in args.results:
            rows += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        rows = [r for r in rows if "dataset" in r]
        notes += [r["note"] for f in args.results for r in map(json.loads, f.read_text().splitlines())
                  if "note" in r and "dataset" not in r and r.get("auto")]
        if not args.only:  # rows of the plan that no results file holds: the run ended before them
            have = {(r["dataset"], r["label"]) for r in rows}
            present = sorted({r["dataset"] for r in rows}, key=DATASETS.index)
            for dataset, label, model, params in runs_for(present, neural_models()[0]):
                if (dataset, label) not in have:
                    rows.append({"dataset": dataset, "label": label, "model": model, "params": params,
                                 "error": "not run", "threads": args.threads})
    else:
        models, absent = neural_models()
        code = code_version()
        for m in absent:
            notes.append(f"`{m}` is not registered in this version: no row.")
        keep: list[dict] = []
        if args.only and results.exists():  # a partial rerun: keep the other rows and the notes
            done = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
            keep = [r for r in done if "dataset" in r]
            notes = [r["note"] for r in done if "note" in r and "dataset" not in r and r.get("auto")] + notes
            user_notes = [r["note"] for r in done if "note" in r and "dataset" not in r
                          and not r.get("auto")] + user_notes
        results.parent.mkdir(parents=True, exist_ok=True)
        present = []
        for dataset in args.datasets_only:
            missing = [f for f in dataset_files(args.datasets, dataset) if not f.exists()]
            if missing:
                note = (f"{dataset}: skipped, {', '.join(f'{f.parent.name}/{f.name}' for f in missing)} not found "
                        "(pass --datasets DIR).")
                print(note, file=sys.stderr)
                notes.append(note)
            else:
                present.append(dataset)
        for dataset, label, model, params in runs_for(present, models):
            if args.only and model not in args.only and label not in args.only:
                continue
            rec = run_child(args, dataset, label, model, params)
            rec["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            rec["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
            rec["code"] = code
            emit(rec)
            rows.append(rec)
            keep = [r for r in keep if (r["dataset"], r["label"]) != (dataset, label)]
            with open(results, "w") as fh:  # rewritten after every run: a killed run keeps its rows
                for r in keep + rows:
                    fh.write(json.dumps(r, sort_keys=True) + "\n")
                for n in dict.fromkeys(notes):
                    fh.write(json.dumps({"note": n, "auto": True}) + "\n")
                for n in dict.fromkeys(user_notes):
                    fh.write(json.dumps({"note": n}) + "\n")
        rows = keep + rows
    if args.write_docs and rows:
        write_docs(render(rows, list(dict.fromkeys(notes))))


if __name__ == "__main__":
    main()
