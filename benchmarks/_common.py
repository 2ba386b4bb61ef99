"""Helpers shared by the benchmark scripts (standard library only: peer venvs import it too)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
SPLITS = WORK / "splits"
DEFAULT_DATASETS = REPO / ".." / "shared" / "datasets"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def split_files(splits: Path, dataset: str) -> dict[str, Path]:
    d = Path(splits) / dataset
    files = {p: d / f"{dataset}.{p}.inter" for p in ("train", "valid", "test")}
    missing = [str(f) for f in files.values() if not f.exists()]
    if missing:
        sys.exit(f"missing split files {missing}; run `python benchmarks/prepare_splits.py` first")
    return files


def emit(record: dict) -> None:
    """Print one JSON line (the scripts' machine-readable output)."""
    print(json.dumps(record, sort_keys=True), flush=True)


def run_json_lines(cmd: list[str], env: dict | None = None, timeout: float | None = None,
                   log: Path | None = None) -> list[dict]:
    """Run a command, return the JSON objects it printed one per line on stdout."""
    full_env = dict(os.environ, **(env or {}))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return [{"error": f"timed out after {timeout:.0f}s", "cmd": " ".join(map(str, cmd)),
                 "stderr_tail": (exc.stderr or b"")[-2000:].decode(errors="replace")
                 if isinstance(exc.stderr, bytes) else (exc.stderr or "")[-2000:]}]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as fh:
            fh.write(f"$ {' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}\n")
    out = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if proc.returncode != 0:
        out.append({"error": f"exit code {proc.returncode}", "cmd": " ".join(map(str, cmd)),
                    "stderr_tail": proc.stderr[-3000:]})
    return out


def median_record(runs: list[dict], metrics: bool = False,
                  keys: tuple[str, ...] = ("fit_s", "eval_s", "peak_rss_mb", "load_s")) -> dict:
    """The first successful run with its timings (and, with ``metrics``, its metric
    values) replaced by the median over all successful runs; ``KEY_all`` keeps them."""
    import statistics

    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1] if runs else {"error": "no output"}
    out = dict(ok[0])
    out["repeats"] = len(ok)
    for key in keys:
        vals = [r[key] for r in ok if key in r]
        if vals:
            out[key] = round(statistics.median(vals), 3)
            if len(vals) > 1:
                out[key + "_all"] = vals
    if metrics:
        for part in ("valid", "test"):
            if part in out:
                out[part] = {k: round(statistics.median(r[part][k] for r in ok), 5) for k in out[part]}
    return out



#: the hand-written notes that go with docs/benchmarks.md (no script rewrites them), relative to docs/
NOTES = "benchmark-notes.md"
#: no line of a generated section is longer (benchmarks/check_docs.py enforces it)
MAX_LINE = 200


def section_footer(command: str, anchor: str) -> list[str]:
    """The end of every generated section: its one reproduce command, then the link to its notes.

    Narrative, findings, trials and run diaries do not go into a generated
    section: they live in docs/benchmark-notes.md under ``<a id="anchor">``.
    """
    return [f"Reproduce: `{command}`", "",
            f"Protocol, findings and run history: [{NOTES}#{anchor}]({NOTES}#{anchor})"]


def context_line(text: str) -> str:
    """A section's one line of context, wrapped at ``MAX_LINE`` characters (markdown joins the lines)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, MAX_LINE, break_long_words=False, break_on_hyphens=False))


def long_lines(section: str, limit: int = MAX_LINE) -> list[tuple[int, int]]:
    """(line number in the section, length) of every line longer than ``limit`` characters."""
    return [(n, len(line)) for n, line in enumerate(section.splitlines(), 1) if len(line) > limit]


def write_doc_section(name: str, section: str, path: Path | None = None) -> Path:
    """Replace the ``<!-- name:start -->`` … ``<!-- name:end -->`` block of docs/benchmarks.md (append if absent).

    The file is read right before writing and replaced atomically, so
    benchmarks writing other sections do not lose each other's work.  Lines
    over ``MAX_LINE`` characters are written but reported on stderr.
    """
    path = path or REPO / "docs" / "benchmarks.md"
    for n, length in long_lines(section):
        print(f"warning: line {n} of the {name} section has {length} characters (limit {MAX_LINE}); "
              "benchmarks/check_docs.py will fail", file=sys.stderr)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# zenrec benchmarks\n"
    block = f"{start}\n{section.rstrip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.{name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def load_words(loads: list[float], own: float) -> str:
    """How busy the machine was, from the 1-minute load averages seen during a run and the load the benchmark
    itself puts on it (its busy threads or processes): "no other work" only when the load stayed near its own."""
    lo, hi = min(loads), max(loads)
    if hi <= own + 0.75:
        return f"no other work ran (1-minute load average {lo:.1f}–{hi:.1f}, the benchmark's own)"
    return (f"the machine was shared with other work (1-minute load average {lo:.1f}–{hi:.1f}), so wall times "
            "are upper bounds")


def machine() -> str:
    """One line about this machine: cores, CPU model, memory, OS and Python."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"
