"""Run the code blocks of the user docs (README.md and docs/**/*.md) as a user would.

The rules, checked by ``tests/test_docs.py``:

* A code block is a fenced block labelled ``sh``, ``python``, ``text`` or
  ``json``.  ``text`` and ``json`` are output samples and are not run.  Any
  other label, an unlabelled fence and an indented (4-space) code block are
  errors, so that nothing unchecked sneaks back.
* ``sh`` blocks run with ``bash -euo pipefail`` in one temporary working
  directory per page, in page order, sharing its files; the venv's ``bin`` is
  first on ``PATH`` and stdin is closed.  A block may start a server in the
  background (``zenrec serve ... --port P &``): every process a page starts
  belongs to one process group, killed when the page ends.  Each page that
  serves uses its own port (two pages naming one port is an error).
* ``python`` blocks run in page order in one namespace per page, with the
  page's directory as the working directory.
* A block that must not run is preceded by ``<!-- not run: REASON -->``;
  the reason is required.
* On the benchmark pages (:data:`BENCHMARK_PAGES`) nothing runs: every
  command in a ``sh`` block, and every benchmark command in inline code, must
  name a script under ``benchmarks/`` that exists and whose argument parser
  accepts the command's arguments (the parser runs; the benchmark does not).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
#: the pages whose blocks are commands to check, not to run (minutes to hours each)
BENCHMARK_PAGES = ("docs/benchmarks.md", "docs/benchmark-notes.md")
RUN = ("sh", "python")
SAMPLES = ("text", "json")
#: seconds one ``sh`` block may run
BLOCK_TIMEOUT = 300

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LIST_ITEM = re.compile(r"^(?P<marker>\s*(?:[*+-]|\d{1,9}[.)])\s+)\S")
_NOT_RUN = re.compile(r"^\s*<!--\s*not\s+run\b(?P<rest>.*?)-->\s*$", re.IGNORECASE)
_PORT = re.compile(r"(?:--port[ =]|(?:127\.0\.0\.1|localhost):)(\d{2,5})\b")
#: a command that runs a benchmark script (the pattern of benchmarks/check_docs.py)
_BENCH_COMMAND = re.compile(r"(?:^|[\s`(])(?:\S*/)?(?:python3?|bash)\s+\S*benchmarks/[\w./-]+\.(?:py|sh)\b")
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its page (relative to the repository), the line of its opening fence."""

    page: str
    line: int
    lang: str
    code: str
    skip: str | None = None  # the reason given by <!-- not run: REASON -->

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Page:
    """A page's code blocks and what is wrong with its markdown."""

    path: Path
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return rel(self.path)

    @property
    def is_benchmark(self) -> bool:
        return self.name in BENCHMARK_PAGES

    def ports(self) -> set[int]:
        return {int(p) for b in self.blocks if b.lang == "sh" and b.skip is None for p in _PORT.findall(b.code)}


def rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.name


def doc_pages(root: Path = REPO) -> list[Path]:
    """README.md and every page under docs/, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip(" "))


def parse(path: Path) -> Page:
    """The fenced blocks of a page, and a problem for every block that breaks the rules."""
    page = Page(path)
    name = page.name
    lines = path.read_text(encoding="utf-8").splitlines()
    pending: tuple[int, str | None] | None = None  # a <!-- not run --> marker waiting for its block
    list_indent: int | None = None  # content column of the list item we are in
    prev_blank = True
    i = 0
    while i < len(lines):
        line = lines[i]
        n = i + 1
        m = _FENCE.match(line)
        if m is None and list_indent is not None and line.strip():
            m = _FENCE.match(line[min(list_indent, _indent(line)):]) if _indent(line) >= list_indent else None
        if m is not None:
            fence, info = m.group("fence"), m.group("info").strip()
            lang = info.split()[0].lower() if info else ""
            indent = _indent(line)
            body: list[str] = []
            j = i + 1
            closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            while j < len(lines) and not closing.match(lines[j]):
                body.append(lines[j][min(indent, _indent(lines[j])):] if lines[j].strip() else "")
                j += 1
            if j == len(lines):
                page.problems.append(f"{name}:{n}: code fence never closed")
            skip = None
            if pending is not None:
                at, reason = pending
                if not reason:
                    page.problems.append(f"{name}:{at}: '<!-- not run -->' needs a reason: <!-- not run: REASON -->")
                elif lang not in RUN:
                    page.problems.append(f"{name}:{at}: '<!-- not run -->' before a {lang or 'unlabelled'} block, "
                                         "which never runs")
                skip = reason or "(no reason given)"
                pending = None
            if not lang:
                page.problems.append(f"{name}:{n}: unlabelled code fence; label it sh or python (run) or "
                                     "text or json (an output sample)")
            elif lang not in RUN + SAMPLES:
                page.problems.append(f"{name}:{n}: code fence labelled {lang!r}; use sh or python (run) or "
                                     "text or json (an output sample)")
            page.blocks.append(Block(name, n, lang, "\n".join(body) + "\n", skip))
            i, prev_blank = j + 1, False
            continue
        if not line.strip():
            prev_blank = True
            i += 1
            continue
        marker = _NOT_RUN.match(line)
        if marker is not None:
            if pending is not None:
                page.problems.append(f"{name}:{pending[0]}: '<!-- not run -->' not followed by a code block")
            rest = marker.group("rest").strip()
            pending = (n, rest[1:].strip() if rest.startswith(":") else "")
            i, prev_blank = i + 1, False
            continue
        if pending is not None:
            page.problems.append(f"{name}:{pending[0]}: '<!-- not run -->' not followed by a code block")
            pending = None
        indent = _indent(line)
        item = _LIST_ITEM.match(line)
        if item is not None and indent < 4 + (list_indent or 0):
            list_indent = len(item.group("marker").expandtabs(4))
        elif prev_blank:
            if list_indent is not None and indent < list_indent:
                list_indent = None
            base = list_indent or 0
            if indent - base >= 4:
                page.problems.append(f"{name}:{n}: indented code block; write it as a fenced ```sh, ```python or "
                                     "```text block")
                while i + 1 < len(lines) and (not lines[i + 1].strip() or _indent(lines[i + 1]) - base >= 4):
                    i += 1
        prev_blank = False
        i += 1
    if pending is not None:
        page.problems.append(f"{name}:{pending[0]}: '<!-- not run -->' not followed by a code block")
    return page


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_ANCHOR_TAG = re.compile(r"<a\s+(?:id|name)=\"([\w-]+)\"")


def anchors(path: Path) -> set[str]:
    """The anchors a page defines: GitHub's for each heading, and ``<a id="...">`` tags."""
    found: set[str] = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        found.update(_ANCHOR_TAG.findall(line))
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            found.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return found


def broken_links(path: Path) -> list[str]:
    """A problem for each relative link to a file that does not exist, or to an anchor it does not define."""
    problems = []
    in_code = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                problems.append(f"{rel(path)}:{n}: link to {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{rel(path)}:{n}: link to {target}: {rel(dest)} has no such heading")
    return problems


def port_clashes(pages: list[Page]) -> list[str]:
    """Two pages serving on one port would answer each other's requests when run in parallel."""
    owner: dict[int, str] = {}
    problems = []
    for p in pages:
        if p.is_benchmark:
            continue
        for port in sorted(p.ports()):
            if port in owner and owner[port] != p.name:
                problems.append(f"{p.name}: port {port} is also used by {owner[port]}; give each page its own")
            owner.setdefault(port, p.name)
    return problems


# ---------------------------------------------------------------- running a page


@dataclass
class Result:
    """What running a page did: seconds per run block, and the blocks skipped with their reasons."""

    page: str
    seconds: float = 0.0
    blocks: list[tuple[Block, float]] = field(default_factory=list)
    skipped: list[Block] = field(default_factory=list)


class BlockFailed(AssertionError):
    """A block of a page failed; the message names the page, the line and shows the output."""


def _tail(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _in_group(pgid: int) -> dict:
    """Popen arguments that start the child in process group ``pgid`` (0: a new group of its own)."""
    if sys.version_info >= (3, 11):
        return {"process_group": pgid}
    return {"preexec_fn": lambda: os.setpgid(0, pgid)}  # pragma: no cover - Python 3.10


def _stop_group(pgid: int, holder: subprocess.Popen) -> None:
    """SIGTERM to the page's process group, SIGKILL to whatever is left after a few seconds."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if holder.poll() is None:
            try:
                holder.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def run_page(page: Page, workdir: Path, logs: Path | None = None) -> Result:
    """Run a page's ``sh`` and ``python`` blocks in order in ``workdir`` (see the module docstring)."""
    if page.problems:
        raise BlockFailed("\n".join(page.problems))
    workdir.mkdir(parents=True, exist_ok=True)
    logs = logs or workdir.parent / f"{workdir.name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENREC_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1",
               VIRTUAL_ENV=str(VENV_BIN.parent))
    result = Result(page.name)
    module = types.ModuleType("zenrec_docs_" + re.sub(r"\W", "_", page.name))
    module.__file__ = str(workdir / "__page__.py")
    # every process the page starts joins this group (a sleeping holder keeps it alive) and dies with it
    holder = subprocess.Popen(["sleep", "86400"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, **_in_group(0))
    started = time.perf_counter()
    outputs: list[tuple[Block, Path, Path]] = []
    try:
        for block in page.blocks:
            if block.lang not in RUN:
                continue
            if block.skip is not None:
                result.skipped.append(block)
                continue
            t0 = time.perf_counter()
            if block.lang == "sh":
                out, err = logs / f"L{block.line}.out", logs / f"L{block.line}.err"
                outputs.append((block, out, err))
                _run_sh(block, workdir, env, holder.pid, out, err, outputs)
            else:
                _run_python(block, workdir, module)
            result.blocks.append((block, time.perf_counter() - t0))
    finally:
        _stop_group(holder.pid, holder)
        sys.modules.pop(module.__name__, None)
    result.seconds = time.perf_counter() - started
    return result


def _run_sh(block: Block, workdir: Path, env: dict[str, str], pgid: int, out: Path, err: Path,
            earlier: list[tuple[Block, Path, Path]]) -> None:
    # on failure bash names the page line and the command (the trap line shifts LINENO by one)
    trap = (f"trap 'echo \"docs: {block.page}:$((LINENO + {block.line - 1})): exit $? from: $BASH_COMMAND\" >&2' ERR\n")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", trap + block.code], cwd=workdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, **_in_group(pgid))
        try:
            code = proc.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = f"timeout after {BLOCK_TIMEOUT} s"
    if code != 0:
        report = [f"{block.where}: ```sh block failed ({'exit ' + str(code) if isinstance(code, int) else code})",
                  "--- block ---", block.code.rstrip(),
                  "--- stdout ---", _tail(_read(out)).rstrip(), "--- stderr ---", _tail(_read(err)).rstrip()]
        for b, o, e in earlier[:-1]:  # background processes write into the logs of the block that started them
            text = (_read(o) + _read(e)).strip()
            if text:
                report += [f"--- output of the block at {b.where} (and its background processes) ---",
                           _tail(text, 3000)]
        raise BlockFailed("\n".join(report))


def _run_python(block: Block, workdir: Path, module: types.ModuleType) -> None:
    sys.modules[module.__name__] = module  # dataclasses, pydantic and pickle look classes up by module
    here = os.getcwd()
    os.chdir(workdir)
    try:
        # leading newlines: tracebacks give the line in the page
        code = compile("\n" * block.line + block.code, block.page, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a CLI call counts as a failure too
        raise BlockFailed(f"{block.where}: ```python block failed\n--- block ---\n{block.code.rstrip()}\n"
                          f"--- traceback ---\n{traceback.format_exc()}") from exc
    finally:
        os.chdir(here)


# ---------------------------------------------------------------- benchmark pages


@dataclass(frozen=True)
class Command:
    """A benchmark command on a benchmark page: the script and its arguments."""

    where: str
    text: str
    script: str
    args: tuple[str, ...]


def _split_commands(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"&&|\|\||;|\|", text) if c.strip()]


def _bench_invocation(segment: str) -> tuple[str, tuple[str, ...]] | None:
    """``(script, args)`` when a shell command runs a script under benchmarks/, else None."""
    try:
        words = shlex.split(segment)
    except ValueError:
        return None
    for k, w in enumerate(words[:-1]):
        if re.fullmatch(r"(?:\S*/)?(?:python3?|bash)", w) and re.match(r"(?:\./)?benchmarks/", words[k + 1]):
            return re.sub(r"^\./", "", words[k + 1]), tuple(words[k + 2:])
    return None


def benchmark_commands(page: Page) -> tuple[list[Command], list[str]]:
    """Every benchmark command of a benchmark page, and a problem for each sh line that names no script."""
    commands, problems = [], []
    text = page.path.read_text(encoding="utf-8")
    fenced = set()
    for b in page.blocks:
        fenced.update(range(b.line, b.line + b.code.count("\n") + 2))
        if b.lang == "python":
            problems.append(f"{b.where}: a benchmark page holds commands (```sh), not Python to run")
        if b.lang != "sh":
            continue
        for k, line in enumerate(b.code.replace("\\\n", " ").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            found = [inv for seg in _split_commands(line) if (inv := _bench_invocation(seg))]
            if not found:
                problems.append(f"{b.page}:{b.line + k}: a command that runs no script under benchmarks/: {line.strip()}")
            commands += [Command(f"{b.page}:{b.line + k}", line.strip(), s, a) for s, a in found]
    for n, line in enumerate(text.splitlines(), 1):
        if n in fenced:
            continue
        for span in _INLINE.findall(line):
            if not _BENCH_COMMAND.search(" " + span):
                continue
            for seg in _split_commands(span):
                inv = _bench_invocation(seg)
                if inv:
                    commands.append(Command(f"{page.name}:{n}", span, *inv))
    return commands, problems


#: run in a child process: parse each command's arguments with its script's own argparse parser, then stop
_PARSE_ONLY = r"""
import argparse, contextlib, io, json, runpy, sys
class Parsed(BaseException):
    pass
original = argparse.ArgumentParser.parse_args
def parse_args(self, args=None, namespace=None):
    original(self, args, namespace)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_args
out = []
for script, args in json.load(sys.stdin):
    err = io.StringIO()
    sys.argv = [script, *args]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
        out.append("the script finished without parsing its arguments")
    except Parsed:
        out.append("")
    except SystemExit as exc:
        out.append(err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}")
    except BaseException as exc:
        out.append(f"{type(exc).__name__}: {exc}")
print(json.dumps(out))
"""


def check_benchmark_commands(commands: list[Command]) -> list[str]:
    """A problem for each command whose script is missing or whose parser refuses its arguments."""
    problems, to_parse = [], []
    for c in commands:
        path = REPO / c.script
        if not path.is_file():
            problems.append(f"{c.where}: {c.script} does not exist (in: {c.text})")
        elif path.suffix == ".sh":
            r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            if r.returncode:
                problems.append(f"{c.where}: {c.script} is not valid bash: {r.stderr.strip()}")
        elif "parse_args" not in path.read_text(encoding="utf-8"):
            flags = [a for a in c.args if a.startswith("-")]
            if flags:
                problems.append(f"{c.where}: {c.script} parses no flags; got {' '.join(flags)}")
        else:
            to_parse.append(c)
    if to_parse:
        r = subprocess.run([sys.executable, "-c", _PARSE_ONLY], cwd=REPO, capture_output=True, text=True,
                           input=json.dumps([[c.script, list(c.args)] for c in to_parse]), timeout=600,
                           env={**os.environ, "PYTHONPATH": str(REPO / "benchmarks")})
        if r.returncode:
            return [*problems, f"checking the benchmark commands failed:\n{r.stderr[-3000:]}"]
        verdicts = json.loads(r.stdout.strip().splitlines()[-1])
        problems += [f"{c.where}: {c.script} refuses its arguments ({v}): {c.text}"
                     for c, v in zip(to_parse, verdicts, strict=True) if v]
    return problems
