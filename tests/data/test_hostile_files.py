"""A corpus of hostile input files, each run through the real ``zenrec ingest`` command.

Every case asserts the exit code (2 for refused input, 0 where the file is
fine and must give the right rows), one line of message with the words that
matter and no traceback, and that nothing was half-written: no output folder
after a failure (or the one that was there, untouched) and no temporary
folder beside it.  Cases that could crash the interpreter (a segfault would
take pytest with it) or that print from pyarrow's threads run as a real
process; the rest through typer's runner, in this process.
"""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.data import Dataset, ingest, readers
from zenrec.data.schema import TIMESTAMP_MAX

HEADER = "user_id,item_id,ts\n"


@dataclass(frozen=True)
class Case:
    """One hostile file: what it holds, how ingest is called, and what must come out."""

    id: str
    content: str | bytes | None  # the input file's bytes (str: UTF-8); None: made by `setup` or a big fixture
    file: str = "log.csv"
    args: tuple[str, ...] = ("--time", "ts")
    code: int = 2
    says: tuple[str, ...] = ()  # words the output must contain
    process: bool = False  # run `python -m zenrec.cli` as a real process
    setup: Callable[[Path], None] | None = None  # prepares the folder (links, an existing -o...)
    out: str = "ds"  # the -o path, under the case's folder
    check: Callable[[Dataset], None] | None = None  # exit 0: the dataset that was written


def _rows(*rows: str) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


def _users(*ids) -> Callable[[Dataset], None]:
    def check(ds: Dataset) -> None:
        assert sorted(map(str, ds.users.all_ids)) == sorted(map(str, ids)), ds.users.all_ids

    return check


def _items(*ids) -> Callable[[Dataset], None]:
    def check(ds: Dataset) -> None:
        assert sorted(map(str, ds.items.all_ids)) == sorted(map(str, ids)), ds.items.all_ids

    return check


def _times(*secs: int) -> Callable[[Dataset], None]:
    def check(ds: Dataset) -> None:
        got = np.sort(ds.interactions.timestamp)
        assert got.tolist() == sorted(secs), got
        assert ((got >= 0) & (got <= TIMESTAMP_MAX)).all()

    return check


def _events(n: int) -> Callable[[Dataset], None]:
    def check(ds: Dataset) -> None:
        assert len(ds.interactions) == n

    return check


def _loop(name: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / name).symlink_to(d / f"{name}-2")
        (d / f"{name}-2").symlink_to(d / name)

    return setup


def _file(name: str, text: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text(text)


def _foreign_folder(d: Path) -> None:
    (d / "mine").mkdir()
    (d / "mine" / "thesis.tex").write_text("keep me too")


def _link_to_folder(d: Path) -> None:
    _foreign_folder(d)
    (d / "link").symlink_to(d / "mine")


def _zenrec_folder(d: Path) -> None:
    (d / "ds").mkdir()
    (d / "ds" / "manifest.json").write_text("{}")


def _cut_gzip(name: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        packed = gzip.compress(_rows(*(f"{i},{i * 7 % 13},{100 + i}" for i in range(3000))).encode())
        (d / name).write_bytes(packed[:-12])  # the end of the stream, and its trailer, are missing

    return setup


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"user_id": [1, 2], "item_id": [3, 4]}), buf)
    return buf.getvalue()


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("log.csv", _rows("1,2,100") * 20)
    return buf.getvalue()


def _deep(levels: int) -> str:
    return '{"user_id": 1, "item_id": 2, "ts": 100, "x": ' + "[" * levels + "]" * levels + "}\n"


ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4
LATIN1 = b"user_id,item_id,ts\n1,caf\xe9,100\n2,3,200\n2,4,300\n"
JSON_OK = '{"user_id": 1, "item_id": 2, "ts": 100}\n'

CASES = [
    # ---------------------------------------------------------------- empty, header, line endings
    Case("empty file", b"", says=("log.csv", "the file is empty")),
    Case("header only", HEADER, says=("header but no rows", "at least one data row")),
    Case("blank first line", "\n" + _rows("1,2,100"), says=("row 1", "the first line is empty")),
    Case("only blank lines", "\n\n\n", says=("the first line is empty",)),
    Case("UTF-8 BOM", "\ufeff" + _rows("1,2,100", "2,3,200"), code=0, check=_users(1, 2)),
    Case("CRLF line endings", _rows("u1,i1,100", "u2,i2,200").replace("\n", "\r\n"), code=0,
         check=_items("i1", "i2")),
    Case("CR-only line endings", _rows("u1,i1,100", "u2,i2,200").replace("\n", "\r"), code=0,
         check=_times(100, 200)),
    Case("no newline at the end", _rows("u1,i1,100") + "u2,i2,200", code=0, check=_users("u1", "u2")),
    Case("newline inside a quoted field", 'user_id,item_id,ts,note\nu1,i1,100,"two\nlines"\nu2,i2,200,x\n',
         code=0, check=_events(2)),
    Case("lines named after a multi-line field and blank lines",
         'user_id,item_id,ts,note\nu1,i1,100,"two\r\nlines"\n\n\nu2,i2,soon,x\n', args=("--time", "ts", "--strict"),
         says=("row 6", "'soon'", "line 6")),
    Case("blank lines, lenient: the dropped row's line", _rows("u1,i1,100", "", "u2,i2,later"), code=0,
         says=("malformed_timestamp", "line 4")),
    # ---------------------------------------------------------------- shape of the table
    Case("ragged row", _rows("1,2,100", "2,3,200,9"), says=("row 3: malformed line", "expected 3 fields, got 4")),
    Case("ragged row after a multi-line field", 'user_id,item_id,ts\n1,"a\nb",100\n2,3,200,9\n',
         says=("row 4: malformed line", "got 4")),
    Case("ragged row, gzip", gzip.compress(_rows("1,2,100", "2,3,200,9").encode()), file="log.csv.gz",
         says=("row 3: malformed line", "got 4")),
    Case("duplicate column", "user_id,item_id,user_id\n1,2,3\n", args=(),
         says=("duplicate column name 'user_id'", "position 3")),
    Case("unknown column name", _rows("1,2,100"), args=("--user", "customer"),
         says=("missing user column 'customer'", "--user NAME", "['user_id', 'item_id', 'ts']")),
    Case("1,000,000 columns", None, file="@columns", args=(),
         says=("row 1", "the header has 1,000,000 columns", "at most 10,000")),
    Case("a 50 MB line with no newline", None, file="@long", args=(),
         says=("row 1", "line 1 is 50,000,000 characters long with no line break", "header line")),
    Case("unknown format", "x", file="log.xlsx", says=("cannot tell the file format",)),
    Case("gzip cut short", None, file="log.csv.gz", setup=_cut_gzip("log.csv.gz"),
         says=("the .gz file is cut short", "end-of-stream")),
    Case("plain text named .csv.gz", _rows("1,2,100"), file="log.csv.gz", says=("Not a gzipped file",)),
    # ---------------------------------------------------------------- paths in and out
    Case("input missing", None, file="nope.csv", says=("nope.csv", "file not found")),
    Case("input is a folder", None, file="folder.csv", setup=lambda d: (d / "folder.csv").mkdir(),
         says=("expected a file, got a directory",)),
    Case("input is a symlink loop", None, file="loop.csv", setup=_loop("loop.csv"),
         says=("loop.csv", "symlink that leads nowhere")),
    Case("-o is an existing file", _rows("1,2,100"), setup=_file("notes.txt", "keep me"), out="notes.txt",
         says=("notes.txt exists and is not a folder zenrec wrote",)),
    Case("-o is under a symlink loop", _rows("1,2,100"), setup=_loop("loop"), out="loop/ds",
         says=("is a symlink that leads nowhere",)),
    Case("-o is a folder of other files", _rows("1,2,100"), setup=_foreign_folder, out="mine",
         says=("did not write (it has no manifest.json)",)),
    Case("-o is a symlink to a folder", _rows("1,2,100"), setup=_link_to_folder, out="link",
         says=("link exists and is not a folder zenrec wrote",)),
    Case("-o is an empty folder", _rows("1,2,100"), setup=lambda d: (d / "ds").mkdir(), code=0, check=_events(1)),
    Case("-o is a folder zenrec wrote: replaced", _rows("1,2,100"), setup=_zenrec_folder, code=0, check=_events(1)),
    # ---------------------------------------------------------------- not text, or not UTF-8
    Case("ELF program named .csv", ELF, process=True, says=("the file is a program (ELF binary)",)),
    Case("gzip named .csv", gzip.compress(_rows("1,2,100").encode() * 50 + bytes(range(256))), process=True,
         says=("gzip-compressed (name it .csv.gz",)),
    Case("zip named .csv", _zip_bytes(), process=True, says=("the file is a zip archive",)),
    Case("Parquet named .csv", _parquet_bytes(), process=True, says=("Parquet (name it .parquet)",)),
    Case("ELF named .jsonl", ELF, file="log.jsonl", process=True, says=("not JSON Lines text", "ELF binary")),
    Case("UTF-16 without --encoding", "user_id,item_id,ts\n1,2,3\n4,5,6,7\n".encode("utf-16"), process=True,
         says=("NUL bytes", "--encoding utf-16")),
    Case("UTF-16 with --encoding utf-16", _rows("1,caf\u00e9,100", "2,3,200").encode("utf-16"),
         args=("--time", "ts", "--encoding", "utf-16"), code=0, check=_items("caf\u00e9", 3)),
    Case("latin-1 text that breaks parsing", b"user_id,item_id,ts\n1,caf\xe9,100\n2,3,200,9\n", process=True,
         says=("byte 0xe9 on line 2 is not UTF-8", "--encoding")),
    Case("latin-1 id: a malformed row, --encoding suggested", LATIN1, code=0,
         says=("malformed_item_id", "line 2", "--encoding"), check=_items(3, 4)),
    Case("latin-1 id, --strict", LATIN1, args=("--time", "ts", "--strict"),
         says=("malformed item id", "line 2", "--encoding latin-1")),
    Case("latin-1 id with --encoding latin-1", LATIN1, args=("--time", "ts", "--encoding", "latin-1"), code=0,
         check=_items("caf\u00e9", 3, 4)),
    Case("cp1252 with --encoding cp1252", b"user_id,item_id,ts\n1,\x80uro,100\n",
         args=("--time", "ts", "--encoding", "cp1252"), code=0, check=_items("\u20acuro")),
    Case("latin-1 JSON Lines with --encoding latin-1", b'{"user_id": "caf\xe9", "item_id": 1, "ts": 100}\n',
         file="log.jsonl", args=("--time", "ts", "--encoding", "latin-1"), code=0, check=_users("caf\u00e9")),
    Case("--encoding on Parquet", _parquet_bytes(), file="log.parquet", args=("--encoding", "latin-1"),
         says=("does not apply to Parquet",)),
    Case("unknown --encoding", _rows("1,2,100"), args=("--encoding", "klingon"),
         says=("unknown encoding 'klingon'", "latin-1")),
    Case("a bytes codec as --encoding", _rows("1,2,100"), args=("--encoding", "base64"),
         says=("unknown encoding 'base64'",)),
    Case("the wrong --encoding", LATIN1, args=("--time", "ts", "--encoding", "utf-16"),
         says=("cannot decode", "not utf-16")),
    Case("a byte --encoding ascii cannot decode", LATIN1, args=("--time", "ts", "--encoding", "ascii"),
         says=("cannot decode", "byte 0xe9 on line 2 is not ascii")),
    # ---------------------------------------------------------------- delimiters
    Case("semicolon CSV without --delimiter", "user_id;item_id;ts\n1;2;100\n",
         says=("log.csv", "row 1", "looks ';'-separated", "--delimiter ';'")),
    Case("semicolon CSV with --delimiter ';', a quoted ; inside an id",
         'user_id;item_id;ts\n1;"a;1";100\n2;b;200\n2;"a;1";300\n', args=("--time", "ts", "--delimiter", ";"),
         code=0, check=_items("a;1", "b")),
    Case("pipe CSV without --delimiter", "user_id|item_id|ts\n1|2|100\n", says=("looks '|'-separated",)),
    Case("tab-separated file named .csv", "user_id\titem_id\tts\n1\t2\t100\n",
         says=("looks tab-separated", "--format tsv")),
    Case("--delimiter of two characters", _rows("1,2,100"), args=("--delimiter", ";;"),
         says=("one character", "got ';;'")),
    Case("--delimiter that is a quote", _rows("1,2,100"), args=("--delimiter", '"'), says=("one character",)),
    Case("--delimiter on Parquet", _parquet_bytes(), file="log.parquet", args=("--delimiter", ";"),
         says=("applies to csv and tsv",)),
    # ---------------------------------------------------------------- JSON Lines
    Case("JSON nested 100,000 deep", _deep(100_000), file="log.jsonl", process=True,
         says=("line 1 is nested 100,001 levels deep", "at most 100")),
    Case("JSON nested deep on line 3, brackets in strings before", JSON_OK
         + '{"user_id": 1, "item_id": 3, "ts": 100, "s": "]]]]]]]]]]]]]]]]]]]]"}\n' + _deep(20_000),
         file="log.jsonl", process=True, says=("line 3 is nested 20,001 levels deep",)),
    Case("JSON with brackets only inside strings", JSON_OK
         + '{"user_id": 2, "item_id": 3, "ts": 100, "s": "' + "[{" * 5000 + '"}\n', file="log.jsonl", code=0,
         check=_events(2)),
    Case("JSON ids both numbers and strings", JSON_OK + '{"user_id": "u2", "item_id": 3, "ts": "200"}\n',
         file="log.jsonl", code=0, check=_users(1, "u2")),
    Case("JSON blank lines: the dropped row's line", JSON_OK + "\n \n" + '{"user_id": 2, "item_id": 3, "ts": "soon"}\n',
         file="log.jsonl", code=0, says=("malformed_timestamp", "line 4")),
    Case("JSON line that is not JSON", JSON_OK + '{"user_id": 1, "item_id": \n', file="log.jsonl",
         says=("line 2 is not valid JSON",)),
    Case("JSON line that is a list", JSON_OK + "\n[1, 2]\n", file="log.jsonl",
         says=("line 3 is a JSON list", "one object of fields per line")),
    # ---------------------------------------------------------------- timestamps
    Case("timestamp -1e300, --strict", _rows("1,2,-1e300", "2,3,200"), args=("--time", "ts", "--strict"),
         says=("line 2", "-1e+300", "from 1970 to 9999")),
    Case("timestamp 1e300, --strict", _rows("2,3,200", "1,2,1e300"), args=("--time", "ts", "--strict"),
         says=("line 3", "1e+300", "from 1970 to 9999")),
    Case("timestamp 1e23, --strict", _rows("1,2,1e23"), args=("--time", "ts", "--strict"), says=("line 2", "1e+23")),
    Case("timestamps out of range are malformed rows, never wrapped",
         _rows("1,2,-1e300", "1,3,1e300", "1,4,1e23", "1,5,-1", "1,6,253402300800", "1,7,inf", "1,8,nan",
               "2,3,253402300799", "2,4,0"),
         code=0, says=("malformed_timestamp", "line 2, line 3, line 4"), check=_times(0, 253402300799)),
    Case("dates past 9999 and before 1970", _rows("1,2,9999-12-31T23:59:59", "1,3,1969-12-31",
                                                 "1,4,10000-01-01", "1,5,2024-01-01 10:00"),
         code=0, says=("malformed_timestamp",), check=_times(253402300799, 1704103200)),
    Case("timestamps in milliseconds", _rows("1,2,1700000000000", "2,3,1700000000001"),
         says=("no row has a usable timestamp", "1700000000000", "milliseconds")),
    # ---------------------------------------------------------------- ids
    Case("ids with surrounding spaces are the trimmed id", _rows(" u1 ,i1,100", "u1,\ti2 ,200"), code=0,
         check=_users("u1")),
    Case("id holding NUL: a malformed row", _rows("u\x001,i1,100", "u2,i2,200"), code=0,
         says=("malformed_user_id", "line 2"), check=_users("u2")),
    Case("id holding NUL, --strict", _rows("u2,i2,200", "u\x001,i1,100"), args=("--time", "ts", "--strict"),
         says=("malformed user id", "line 3", "control characters")),
    Case("id longer than 512 characters, --strict", _rows("u1,i1,100", f"u2,{'x' * 600},200"),
         args=("--time", "ts", "--strict"), says=("malformed item id", "line 3", "at most 512 characters")),
]


@pytest.fixture(scope="module")
def big_files(tmp_path_factory) -> dict[str, Path]:
    """The large inputs, written once: a header of 1,000,000 columns and a 50 MB line with no newline."""
    d = tmp_path_factory.mktemp("big")
    columns = d / "columns.csv"
    names = ",".join(f"c{i}" for i in range(1_000_000))
    columns.write_text(names + "\n" + ",".join(["1"] * 1_000_000) + "\n")
    long = d / "long.csv"
    long.write_bytes(b"x" * 50_000_000)
    return {"@columns": columns, "@long": long}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and (".tmp" in p.name or ".old" in p.name))


def _snapshot(path: Path) -> object:
    if path.is_symlink():
        return ("link", str(path.readlink()))
    if path.is_file():
        return ("file", path.read_bytes())
    if path.is_dir():
        return ("dir", sorted((str(p.relative_to(path)), p.read_bytes() if p.is_file() else None)
                              for p in path.rglob("*")))
    return None


def test_the_corpus_has_every_case_once():
    assert len(CASES) == 72 and len({c.id for c in CASES}) == len(CASES)
    assert len(SMALL) > 45


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_file(case: Case, tmp_path: Path, big_files: dict[str, Path]):
    _run(case, tmp_path, big_files)


#: the cases read in this process that reach the out-of-core reader (not the big files: one is a
#: 50 MB line, which 64-byte blocks would take minutes to parse)
SMALL = [c for c in CASES if not c.process and not c.file.startswith("@")]


@pytest.mark.parametrize("case", SMALL, ids=[c.id for c in SMALL])
def test_hostile_file_read_a_row_at_a_time(case: Case, tmp_path: Path, big_files: dict[str, Path], monkeypatch):
    """The same answers when the out-of-core ingest cleans one row at a time, parsed in 64-byte blocks
    (so every column type is inferred from a few rows and may change midway, and a longer row makes
    the read start over with larger blocks)."""
    monkeypatch.setattr(ingest, "CHUNK_ROWS", 1)
    monkeypatch.setattr(readers, "_STREAM_BLOCK", 64)
    _run(case, tmp_path, big_files)


def _run(case: Case, tmp_path: Path, big_files: dict[str, Path]) -> None:
    if case.setup is not None:
        case.setup(tmp_path)
    if case.file.startswith("@"):
        src = big_files[case.file]
    else:
        src = tmp_path / case.file
        if case.content is not None:
            src.write_bytes(case.content.encode() if isinstance(case.content, str) else case.content)
    out = tmp_path / case.out
    before = _snapshot(out)
    args = ["ingest", str(src), *case.args, "-o", str(out)]
    if case.process:
        proc = subprocess.run([sys.executable, "-m", "zenrec.cli", *args], capture_output=True, text=True,
                              timeout=300)
        code, text, errors = proc.returncode, proc.stdout + proc.stderr, proc.stderr
    else:
        result = CliRunner().invoke(app, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        code, text, errors = result.exit_code, result.output, result.output
    assert code == case.code, text
    for bad in ("Traceback", "Exception ignored", "RuntimeWarning"):
        assert bad not in text, text
    for word in case.says:
        assert word in text, text
    assert _leftovers(out.parent if out.parent.is_dir() else tmp_path) == [], "a temporary folder was left behind"
    if case.code == 0:
        assert (out / "manifest.json").is_file()
        if case.check is not None:
            case.check(Dataset.load(out))
        return
    lines = [line for line in errors.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert _snapshot(out) == before, "the output path was changed by a failed ingest"
