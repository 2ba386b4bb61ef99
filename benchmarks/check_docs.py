"""Check that docs/benchmarks.md keeps the shape its generators promise.

    python benchmarks/check_docs.py [DOC] [--notes NOTES]

``DOC`` (default ``docs/benchmarks.md``) holds generated sections between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; the narrative lives in
``docs/benchmark-notes.md``, which no script rewrites.  Fails (exit 1, one
``FILE:LINE: problem`` per line on stderr) when

* a line of DOC is longer than 200 characters;
* a start marker has no end marker (or an end marker no start, or sections nest or repeat);
* a section has no ``Reproduce:`` line, more than one, or names a benchmark command
  anywhere else (a second reproduce command: the history of commands goes to the notes);
* a section links to ``benchmark-notes.md#ANCHOR`` and the notes have no such anchor.

Standard library only; reads the files, writes nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINE = 200
MARKER = re.compile(r"<!--\s*([\w-]+):(start|end)\s*-->")
REPRODUCE = re.compile(r"^Reproduce:\s*`[^`]+`\s*$")
#: a command line that runs a benchmark script: python[3] .../benchmarks/x.py, or bash benchmarks/x.sh
COMMAND = re.compile(r"(?:^|[\s`(])(?:\S*/)?(?:python3?|bash)\s+\S*benchmarks/[\w./-]+\.(?:py|sh)\b")
NOTES_LINK = re.compile(r"\]\((?:\./)?benchmark-notes\.md#([\w-]+)\)")
ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([\w-]+)\"")


def _heading_anchor(line: str) -> str | None:
    """GitHub's anchor for a markdown heading line (lower case, punctuation dropped, spaces to dashes)."""
    m = re.match(r"#{1,6}\s+(.*)", line)
    if not m:
        return None
    text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
    return text.replace(" ", "-")


def notes_anchors(notes: Path) -> set[str]:
    anchors: set[str] = set()
    if notes.exists():
        for line in notes.read_text(encoding="utf-8").splitlines():
            anchors.update(ANCHOR.findall(line))
            h = _heading_anchor(line)
            if h:
                anchors.add(h)
    return anchors


def check(doc: Path, notes: Path) -> list[str]:
    """Every problem found, as ``FILE:LINE: message``."""
    if not doc.exists():
        return [f"{doc}: not found"]
    lines = doc.read_text(encoding="utf-8").splitlines()
    anchors = notes_anchors(notes)
    problems: list[str] = []

    def bad(n: int, msg: str) -> None:
        problems.append(f"{doc}:{n}: {msg}")

    for n, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            bad(n, f"line of {len(line)} characters (at most {MAX_LINE}): {line[:60]}…")

    seen: set[str] = set()
    open_name, open_at = None, 0
    reproduce: list[int] = []
    for n, line in enumerate(lines, 1):
        markers = MARKER.findall(line)
        for name, kind in markers:
            if kind == "start":
                if open_name is not None:
                    bad(n, f"start of section '{name}' inside section '{open_name}' (started on line {open_at}, "
                           "no end marker before it)")
                if name in seen:
                    bad(n, f"section '{name}' appears a second time")
                seen.add(name)
                open_name, open_at, reproduce = name, n, []
            elif open_name is None:
                bad(n, f"end marker of section '{name}' without a start marker")
            elif name != open_name:
                bad(n, f"end marker of section '{name}' while section '{open_name}' (line {open_at}) is open")
            else:
                if not reproduce:
                    bad(open_at, f"section '{name}' has no reproduce command (a line `Reproduce: `COMMAND``)")
                elif len(reproduce) > 1:
                    bad(reproduce[1], f"section '{name}' has {len(reproduce)} reproduce commands (lines "
                                      f"{', '.join(map(str, reproduce))}); keep one, move the rest to the notes")
                open_name = None
        if open_name is None or markers:
            continue
        if REPRODUCE.match(line):
            reproduce.append(n)
        elif line.startswith("Reproduce"):
            bad(n, "a reproduce line must read `Reproduce: `COMMAND`` on one line")
            reproduce.append(n)
        elif COMMAND.search(line):
            reproduce.append(n)  # a second command in the section counts against the one allowed
        for anchor in NOTES_LINK.findall(line):
            if anchor not in anchors:
                bad(n, f"links to {notes.name}#{anchor}, which {notes} does not define")
    if open_name is not None:
        bad(open_at, f"start marker of section '{open_name}' without an end marker")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("doc", nargs="?", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--notes", type=Path, default=None, help="default: benchmark-notes.md beside DOC")
    args = ap.parse_args(argv)
    doc = args.doc.resolve()
    doc = doc.relative_to(REPO) if doc.is_relative_to(REPO) and Path.cwd().resolve() == REPO else args.doc
    notes = args.notes or doc.with_name("benchmark-notes.md")
    problems = check(doc, notes)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {doc}", file=sys.stderr)
        return 1
    print(f"{doc}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
