"""Distributed training speed: SASRec's training samples/s on 1 and 2 processes (DDP over gloo, torchrun).

SASRec at its defaults (``loss="ce"``, a softmax over all 23,715 items) trains
on ``amazon-games-sasrec/Video.txt`` (loaded as in bench_neural_speed.py: the
training part of the SASRec leave-one-out protocol, 31,013 users, 225,111
events) without validation, each process with one torch thread
(``TrainOptions(threads=1)``, ``OMP_NUM_THREADS=1``).  Runs, one at a time:

* 1 process, ``batch_size`` 128 (plain ``python``, no torchrun);
* 2 processes, ``batch_size`` 128 each (``python -m torch.distributed.run
  --standalone --nproc-per-node 2``): DDP's convention, an effective batch of 256;
* 2 processes, ``batch_size`` 64 each: the same effective batch as 1 process
  (the same optimisation, half the examples per process and step).

The first epoch is a warm-up cut to ``--warmup-steps`` steps; then
``--epochs`` full epochs are timed by the loop (``train_seconds``: training
steps only, process 0's clock).  Samples/s is the epoch's training windows
(every process's) over the median epoch time; the speed-up is against the
1-process row.  The issue's target: 2 processes reach ≥ 1.6× the samples/s of 1.
The load average at the start and end of each run is in the table.

    python benchmarks/bench_distributed.py --write-docs
    python benchmarks/bench_distributed.py --epochs 2 --runs 1x128 2x128
    python benchmarks/bench_distributed.py --reuse --write-docs        # re-render the last run's records

prints one JSON line per run; ``--write-docs`` renders the ``distributed``
section of ``docs/scaling.md``.
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
from _common import DEFAULT_DATASETS, REPO, WORK, context_line, emit, load_words, write_doc_section  # noqa: E402

DATASET = "amazon-games-sasrec"
SCALING = REPO / "docs" / "scaling.md"
#: the last run's records, one JSON line per row (``--reuse`` renders them again)
RESULTS = WORK / "distributed.jsonl"
COMMAND = "python benchmarks/bench_distributed.py --write-docs"
#: run labels: PROCESSESxBATCH_PER_PROCESS
RUNS = ("1x128", "2x128", "2x64")


# ------------------------------------------------------------ one run (child)
def child(args: argparse.Namespace) -> None:
    """Train SASRec in this process (one of torchrun's, or alone) and print process 0's record."""
    import torch
    from bench_neural_speed import load_dataset

    from zenrec.models import TrainOptions, create_model
    from zenrec.models.sasrec import SASRec
    from zenrec.train.distributed import env_world_size, is_main_process, shard_steps
    from zenrec.train.sequences import training_windows

    train = load_dataset(args.datasets / DATASET, DATASET)
    original = SASRec._batches

    def warm_then_full(self, epoch):
        """Epoch 0 stops after the warm-up steps (in every process alike); the others are whole."""
        for i, batch in enumerate(original(self, epoch)):
            if epoch == 0 and i >= args.warmup_steps:
                return
            yield batch

    SASRec._batches = warm_then_full
    model = create_model("sasrec", batch_size=args.batch_size, epochs=1 + args.epochs)
    c = model.config
    windows = len(training_windows(train, c.max_len, c.all_windows, c.stride)[0])
    load1 = os.getloadavg()[0]
    t0 = time.perf_counter()
    model.fit(train, None, TrainOptions(seed=2020, threads=1, validation=False))
    fit_s = time.perf_counter() - t0
    if not is_main_process():
        return
    cum = [0.0] + [float(r["train_seconds"]) for r in model.train_history_]
    epoch_s = [b - a for a, b in zip(cum[1:-1], cum[2:], strict=True)]  # epoch 0 is the warm-up
    world = env_world_size()
    median = statistics.median(epoch_s)
    print(json.dumps({
        "processes": world, "batch_size": c.batch_size, "effective_batch": c.batch_size * world,
        "windows": windows, "steps_per_epoch": shard_steps(windows, c.batch_size, world),
        "epoch_s": [round(s, 2) for s in epoch_s], "median_epoch_s": round(median, 2),
        "samples_per_s": round(windows / median, 1), "fit_s": round(fit_s, 1), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
        "load1_start": round(load1, 2), "load1_end": round(os.getloadavg()[0], 2),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }), flush=True)


# ------------------------------------------------------------- parent side
def run_one(args: argparse.Namespace, label: str) -> dict:
    """One row: ``PROCESSESxBATCH`` in fresh processes (torchrun for more than one)."""
    nproc, batch = (int(x) for x in label.split("x"))
    script = [str(Path(__file__).resolve()), "--child", "--batch-size", str(batch), "--epochs", str(args.epochs),
              "--warmup-steps", str(args.warmup_steps), "--datasets", str(args.datasets)]
    launcher = ([sys.executable] if nproc == 1 else
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)])
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([*launcher, *script], capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"label": label, "error": f"timed out after {args.timeout:.0f}s"}
    records = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not records:
        return {"label": label, "error": f"exit code {proc.returncode}", "stderr_tail": proc.stderr[-1500:]}
    return {"label": label, **records[-1], "wall_s": round(time.perf_counter() - t0, 1)}


def render(rows: list[dict]) -> str:
    """The ``distributed`` section of docs/scaling.md."""
    ok = [r for r in rows if "error" not in r]
    base = next((r for r in ok if r["processes"] == 1), None)
    lines = ["## Distributed training (DDP on CPU processes)", ""]
    if ok:
        r0 = ok[0]
        loads = [r[k] for r in ok for k in ("load1_start", "load1_end")]
        lines += [context_line(
            f"Runs ended {r0['finished'][:10]} {min(r['finished'][11:16] for r in ok)}–"
            f"{max(r['finished'][11:16] for r in ok)} UTC; {platform.machine()}, {r0['cpus']} CPUs, {load_words(loads, 2)}; torch "
            f"{r0['torch']}, Python {r0['python']}. SASRec at its defaults on {DATASET} ({r0['windows']:,} training "
            "windows per epoch, a softmax over 23,715 items), no validation, one torch thread per process, gloo on "
            "loopback."), ""]
    lines += ["| processes | batch per process | effective batch | steps / epoch | epoch s (median; each) | "
              "samples / s | vs 1 process | load avg (start–end) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | | | | **{r['error']}** | | | |")
            continue
        ratio = f"{r['samples_per_s'] / base['samples_per_s']:.2f}×" if base else "–"
        lines.append(f"| {r['processes']} | {r['batch_size']} | {r['effective_batch']} | {r['steps_per_epoch']} | "
                     f"{r['median_epoch_s']:.1f}; {', '.join(f'{s:.1f}' for s in r['epoch_s'])} | "
                     f"{r['samples_per_s']:,.0f} | {ratio} | {r['load1_start']:.1f}–{r['load1_end']:.1f} |")
    multi = [r for r in ok if r["processes"] == 2]
    verdict = ""
    if base and multi:
        ratios = ", ".join(f"{r['samples_per_s'] / base['samples_per_s']:.2f}× at batch {r['batch_size']} per process"
                           for r in multi)
        best = max(r["samples_per_s"] / base["samples_per_s"] for r in multi)
        verdict = f": **{'met' if best >= 1.6 else 'missed'}** ({ratios})"
    lines += ["", context_line(
        "Samples/s counts every process's training windows; an epoch's time is process 0's training steps (warm-up "
        f"epoch excluded). Target (issue 17): 2 processes ≥ 1.6× the samples/s of 1{verdict}. How batches are "
        "shared and why: "
        "[the models guide](guide/models.md#training-on-several-processes-or-machines)."), "",
        f"Reproduce: `{COMMAND}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding the dataset folders")
    ap.add_argument("--runs", nargs="+", default=list(RUNS), metavar="NxB",
                    help=f"processes x batch per process (default: {' '.join(RUNS)})")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per run, after the warm-up (default 3)")
    ap.add_argument("--warmup-steps", type=int, default=20, help="steps of the warm-up epoch (default 20)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run (default 3600)")
    ap.add_argument("--write-docs", action="store_true", help="write the distributed section of docs/scaling.md")
    ap.add_argument("--reuse", action="store_true", help=f"render the last run's records ({RESULTS.name}) again")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=128, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return
    for label in args.runs:
        parts = label.split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            ap.error(f"--runs takes PROCESSESxBATCH such as 2x128; got {label!r}")
    if args.reuse:
        rows = [json.loads(x) for x in RESULTS.read_text().splitlines() if x.strip()]
    elif not (args.datasets / DATASET / "Video.txt").is_file():
        print(f"skipped: {args.datasets / DATASET / 'Video.txt'} is not there", file=sys.stderr)
        return
    else:
        rows = []
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("")
        for label in args.runs:
            rec = run_one(args, label)
            emit(rec)
            rows.append(rec)
            with RESULTS.open("a") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
    if args.write_docs:
        write_doc_section("distributed", render(rows), SCALING)
        print(f"wrote the distributed section of {SCALING}", file=sys.stderr)


if __name__ == "__main__":
    main()
