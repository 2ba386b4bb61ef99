"""Readers for interaction logs: CSV/TSV, Parquet, JSON Lines, MovieLens, RecBole atomic files.

Every reader returns a :class:`pandas.DataFrame` with Arrow-backed columns,
read column-wise by pyarrow (no Python object per row).  Problems with the
file itself (missing, empty, duplicate header, unreadable) raise
:class:`~zenrec.errors.DataError` naming the file.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from zenrec.errors import ConfigError, DataError, EmptyDataError

__all__ = ["read_table", "read_batches", "read_movielens", "read_recbole", "record_lines", "check_encoding", "Format",
           "delimiter_of", "guess_format",
           "ReadAgain", "BATCH_ROWS", "STREAMED_FORMATS", "MAX_COLUMNS", "MAX_HEADER_CHARS", "MAX_JSON_DEPTH"]

#: most columns a header may name: an interaction log has a handful, a wider file is not one
MAX_COLUMNS = 10_000
#: longest header line (characters)
MAX_HEADER_CHARS = 1 << 20
#: deepest nesting of one JSON Lines row; pyarrow's JSON parser recurses, and crashes the process
#: (a segfault, no exception) somewhere past 10,000 levels
MAX_JSON_DEPTH = 100
_BLOCK = 1 << 22  # pyarrow's read block: the first line (header, or data) must fit in one

Format = Literal["csv", "tsv", "parquet", "jsonl", "recbole", "movielens"]

_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".inter": "recbole",
    ".item": "recbole",
    ".user": "recbole",
    ".dat": "movielens",
    ".data": "movielens",
}


def guess_format(path: Path) -> Format:
    """The format a log's file name says (``events.csv.gz``: csv); an error naming the formats when it says none."""
    suffix = _base_suffix(path)
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    raise DataError(
        "cannot tell the file format from its name; pass format= one of "
        "csv, tsv, parquet, jsonl, recbole, movielens",
        source=str(path),
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        if os.path.islink(path):
            raise DataError("a symlink that leads nowhere (a loop, or its target is missing)", source=str(path))
        raise DataError("file not found", source=str(path))
    if path.is_dir():
        raise DataError("expected a file, got a directory", source=str(path))
    if path.stat().st_size == 0:
        raise EmptyDataError("the file is empty", source=str(path))


def _check_header(names: list[str], path: Path) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(
                f"duplicate column name {name!r} in the header (position {i + 1}); "
                "every column must have a unique name",
                source=str(path),
                row=1,
            )
        seen.add(name)


_COMPRESSED = (".gz", ".bz2", ".zst")


def _base_suffix(path: Path) -> str:
    """The suffix that names the format, ignoring a compression suffix (``ratings.dat.gz`` -> ``.dat``)."""
    suffixes = [x.lower() for x in path.suffixes if x.lower() not in _COMPRESSED]
    return suffixes[-1] if suffixes else ""


def _open_binary(path: Path):
    """The file's bytes: decompressed for a ``.gz``/``.bz2``/``.zst`` name, as stored otherwise.

    gzip and bzip2 go through Python's modules, which raise ``EOFError`` on a file cut short
    (pyarrow's own decompression returns the rows before the cut, silently)."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rb")
    if suffix == ".zst":
        return pa.input_stream(str(path), compression="zstd")
    return open(path, "rb")


def _truncated(path: Path) -> DataError:
    return DataError(f"the {path.suffix.lower()} file is cut short: it ends before its end-of-stream marker "
                     "(an interrupted download or copy?)", source=str(path))


def check_encoding(encoding: str | None) -> str | None:
    """The codec name of a text encoding (``None`` for UTF-8, the default); an unknown name is a ConfigError."""
    if encoding is None:
        return None
    try:
        info = codecs.lookup(encoding)
        if not getattr(info, "_is_text_encoding", True):  # a bytes-to-bytes codec (base64, zlib...)
            raise LookupError(encoding)
    except (LookupError, TypeError, ValueError):
        raise ConfigError(f"unknown encoding {encoding!r}; give a text encoding Python knows, such as utf-8, "
                          "latin-1, cp1252 or utf-16") from None
    return None if info.name == "utf-8" else info.name


def _decode_error(path: Path, encoding: str, data: bytes | None = None) -> str:
    """Where the bytes stop being ``encoding``: the first byte that does not decode and its line."""
    dec = codecs.getincrementaldecoder(encoding)()
    lines = 1
    try:
        with io.BytesIO(data) if data is not None else _open_binary(path) as fh:
            while True:
                chunk = fh.read(1 << 20)
                try:
                    lines += dec.decode(chunk, final=not chunk).count("\n")
                except UnicodeDecodeError as exc:
                    before = exc.object[: exc.start].decode(encoding, "replace").count("\n")
                    bad = exc.object[exc.start : exc.start + 1]
                    what = f"byte {bad[0]:#04x}" if bad else "the end of the file"
                    return f"{what} on line {lines + before} is not {encoding} ({exc.reason})"
                except UnicodeError as exc:
                    return f"the file is not {encoding} ({exc})"
                if not chunk:
                    return f"the file is not {encoding}"
    except (OSError, EOFError) as exc:
        return f"cannot read it ({exc})"


def _as_utf8(path: Path, raw: bytes, encoding: str | None) -> bytes:
    """A file's bytes in ``encoding`` (None: already UTF-8) as UTF-8, or a DataError naming the first byte that
    does not decode and its line."""
    if encoding is None:
        return raw
    try:
        return raw.decode(encoding).encode("utf-8")
    except UnicodeError:
        raise DataError(f"cannot decode: {_decode_error(path, encoding, raw)}", source=str(path)) from None


def _first_line(path: Path, encoding: str | None, data: bytes | None = None,
                limit: int = 64 << 20) -> tuple[str, str]:
    """The first line's text (at most ``limit`` characters, a leading BOM removed) and how it ended:
    ``"break"`` (a line break), ``"eof"`` (the file ends without one) or ``"limit"``."""
    dec = codecs.getincrementaldecoder(encoding or "utf-8")(errors="replace")
    parts: list[str] = []
    size = 0
    with io.BytesIO(data) if data is not None else _open_binary(path) as fh:
        while size < limit:
            chunk = fh.read(1 << 20)
            text = dec.decode(chunk, final=not chunk)
            if not parts and text.startswith("\ufeff"):
                text = text[1:]
            brk = _LINE_BREAK.search(text)
            if brk is not None:
                parts.append(text[: brk.start()])
                return "".join(parts), "break"
            parts.append(text)
            size += len(text)
            if not chunk:
                return "".join(parts), "eof"
    return "".join(parts), "limit"


_LINE_BREAK = re.compile("[\r\n]")
#: what a header that is one column with the default delimiter is split on, to say which delimiter the file uses
_OTHER_DELIMITERS = (";", "\t", "|")


def delimiter_of(fmt: str, delimiter: str | None) -> str:
    """The field delimiter of a ``csv`` (default ``,``) or ``tsv`` (default tab) file; ``delimiter`` must be one
    character other than a quote or a line break, and applies to those two formats only."""
    if delimiter is None:
        return "\t" if fmt == "tsv" else ","
    if fmt not in ("csv", "tsv"):
        raise ConfigError(f"a delimiter applies to csv and tsv files; this one is read as {fmt}")
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise ConfigError(f"the delimiter must be one character other than a quote or a line break, such as ';' "
                          f"or '|'; got {delimiter!r}")
    return delimiter


def _check_first_line(path: Path, delimiter: str, header: bool, encoding: str | None,
                      data: bytes | None = None) -> list[str] | None:
    """Say what is wrong with a first line pyarrow cannot take (too many columns, too long, empty);
    return the header's names (``None`` without a header)."""
    try:
        line, ended = _first_line(path, encoding, data)
    except (OSError, EOFError):  # not really compressed, unreadable: pyarrow names it
        return None
    n_cols = line.count(delimiter) + 1
    if header and n_cols > MAX_COLUMNS:
        sep = {",": ",", "\t": "<tab>"}.get(delimiter, delimiter)
        raise DataError(
            f"the header has {'more than ' if ended == 'limit' else ''}{n_cols:,} columns; expected the few of an "
            f"interaction log, such as user_id{sep}item_id{sep}timestamp (at most {MAX_COLUMNS:,})",
            source=str(path), row=1)
    most = MAX_HEADER_CHARS if header else _BLOCK // 4
    if len(line) > most:
        length = {"break": f"is {len(line):,} characters long",
                  "eof": f"is {len(line):,} characters long with no line break (the whole file is one line)",
                  "limit": f"has no line break in its first {len(line):,} characters"}[ended]
        expected = ("a header line with the column names" if header else "one event per line")
        raise DataError(f"line 1 {length}; expected {expected} (at most {most:,} characters)",
                        source=str(path), row=1)
    if header and not line.strip():
        raise EmptyDataError(
            "the first line is empty; expected a header line with the column names", source=str(path), row=1
        )
    if header and delimiter == "," and n_cols == 1:
        other = next((d for d in _OTHER_DELIMITERS if d in line), None)
        if other is not None:
            shown = {"\t": "tab"}.get(other, repr(other))
            flag = "--format tsv (zenrec ingest; format='tsv' in Python)" if other == "\t" else \
                f"--delimiter {other!r} (zenrec ingest; delimiter={other!r} in Python)"
            raise DataError(f"the header is one column, {line.strip()[:80]!r}, and looks {shown}-separated; "
                            f"expected comma-separated values: read it with {flag}", source=str(path), row=1)
    return [h.strip() for h in line.split(delimiter)] if header else None


_MAGIC = {b"\x1f\x8b": "gzip-compressed (name it .csv.gz, or decompress it)", b"PK\x03\x04": "a zip archive",
          b"\x7fELF": "a program (ELF binary)", b"PAR1": "Parquet (name it .parquet)",
          b"\x28\xb5\x2f\xfd": "zstd-compressed"}


def _head_bytes(path: Path, n: int = 1 << 16) -> bytes:
    """The first ``n`` bytes of a file's text: decompressed for a ``.gz``/``.bz2``/``.zst`` name, as stored
    otherwise.  A name that says compressed but does not decompress gives b"": nothing is claimed about it here."""
    try:
        with _open_binary(path) as fh:
            return fh.read(n)
    except (OSError, EOFError, ValueError):
        return b""


def _not_text(head: bytes, encoding: str | None = None) -> str:
    """Why bytes are not delimited text (a known file signature; for UTF-8, NUL bytes or invalid UTF-8), or ''."""
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return f"the file is {what}"
    if encoding is not None:  # another encoding (UTF-16 holds NUL bytes): its own decoder judges
        return ""
    if b"\x00" in head:
        return "the file holds NUL bytes (binary data, or UTF-16 text: save it as UTF-8 or pass --encoding utf-16)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            line = head[: exc.start].count(b"\n") + 1
            return (f"byte {head[exc.start]:#04x} on line {line} is not UTF-8 (save the file as UTF-8, or name "
                    "its encoding with --encoding, e.g. --encoding latin-1)")
    return ""


def _first_bad_line(source, read_opts: pacsv.ReadOptions, parse_opts: pacsv.ParseOptions,
                    first_column: str | None = None) -> tuple[int | None, str]:
    """Re-read single-threaded to learn the line number of the first row that does not parse.

    With ``first_column`` (the file's first column) the re-read streams, converting only that
    column (as text): memory stays bounded and no later type change stops it first."""
    found: list[tuple[int | None, str]] = []

    def handler(row: pacsv.InvalidRow) -> str:
        found.append((row.number, f"expected {row.expected_columns} fields, got {row.actual_columns}: {row.text!r}"))
        return "error"

    opts = pacsv.ReadOptions(
        column_names=read_opts.column_names, block_size=read_opts.block_size, use_threads=False,
        encoding=read_opts.encoding,
    )
    popts = pacsv.ParseOptions(delimiter=parse_opts.delimiter, newlines_in_values=parse_opts.newlines_in_values,
                               invalid_row_handler=handler)
    try:
        with source() as src:
            if first_column is None:
                pacsv.read_csv(src, read_options=opts, parse_options=popts)
            else:
                only = pacsv.ConvertOptions(include_columns=[first_column], column_types={first_column: pa.string()})
                for _ in pacsv.open_csv(src, read_options=opts, parse_options=popts, convert_options=only):
                    pass
    except (pa.ArrowInvalid, OSError, EOFError, UnicodeError):
        pass
    return found[0] if found else (None, "")


@dataclass
class _Delimited:
    """Delimited text that passed the checks of :func:`_delimited` (not binary, a sound first line and
    header), with pyarrow's options for it; :meth:`open` gives it to pyarrow, :meth:`error` says what
    went wrong in pyarrow's reading of it."""

    path: Path
    read_opts: pacsv.ReadOptions
    parse_opts: pacsv.ParseOptions
    not_text: str
    data: bytes | None
    encoding: str | None
    header: bool  # the first line names the columns

    def open(self):
        """A context giving what pyarrow reads: the bytes, a decompressing file, or the path."""
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.path.suffix.lower() in (".gz", ".bz2"):
            return _open_binary(self.path)
        return contextlib.nullcontext(self.path)

    def error(self, exc: BaseException, first_column: str | None = None) -> DataError:
        """The DataError for pyarrow's ``EOFError``, ``UnicodeError`` or ``ArrowInvalid`` on this text."""
        path, data = self.path, self.data
        if isinstance(exc, EOFError):
            return _truncated(path)
        if isinstance(exc, UnicodeError):  # pyarrow decodes through Python's codec
            return DataError(f"cannot decode: {_decode_error(path, self.encoding or 'utf-8', data)} (check --encoding)",
                             source=str(path))
        msg = str(exc)
        if self.not_text:  # pyarrow's row handler cannot even decode such a line: say what the file is instead
            return DataError(f"not delimited text: {self.not_text}", source=str(path))
        if "Empty CSV file" in msg:
            return EmptyDataError("the file holds no data (only blank lines)", source=str(path))
        if "Expected" in msg and "columns" in msg:
            line, detail = _first_bad_line(self.open, self.read_opts, self.parse_opts, first_column)
            if line is not None and data is None and self.header and line >= 2:
                lines = record_lines(path, "csv", self.encoding, rows=[line - 2])  # pyarrow counts records, not lines
                if lines is not None:
                    line = int(lines[0])
            if line is not None:
                return DataError(f"malformed line: {detail}; every line must have the header's number of fields",
                                 source=str(path), row=line)
        return DataError(f"cannot parse as delimited text: {msg}", source=str(path))


def _delimited(path: Path, delimiter: str, column_names: list[str] | None = None, data: bytes | None = None,
               encoding: str | None = None) -> _Delimited:
    """Check delimited text before pyarrow reads it: not a binary file, a first line pyarrow can take, no
    duplicate column name.  ``encoding``: a codec name from :func:`check_encoding` (``None`` is UTF-8)."""
    read_opts = pacsv.ReadOptions(column_names=column_names, block_size=_BLOCK, encoding=encoding or "utf8")
    # a quoted value may span lines: without this pyarrow's parallel chunker splits inside it
    parse_opts = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    head = data[: 1 << 16] if data is not None else _head_bytes(path)
    not_text = _not_text(head, encoding)
    if not_text.startswith("the file is ") and _not_text(head[4:]):
        # a known binary signature, and binary bytes after it: no line of it would make sense
        raise DataError(f"not delimited text: {not_text}", source=str(path))
    try:
        names = _check_first_line(path, delimiter, column_names is None, encoding, data)
    except UnicodeError:
        raise DataError(f"cannot decode: {_decode_error(path, encoding or 'utf-8', data)}", source=str(path)) from None
    if names is not None:
        _check_header(names, path)  # pyarrow silently accepts duplicate names
    return _Delimited(path, read_opts, parse_opts, not_text, data, encoding, column_names is None)


def _convert_options(include_columns: list[str] | None = None,
                     column_types: dict[str, pa.DataType] | None = None) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(strings_can_be_null=True, auto_dict_encode=True,
                                include_columns=include_columns or [], column_types=column_types or {})


def _read_delimited(
    path: Path,
    delimiter: str,
    column_names: list[str] | None = None,
    include_columns: list[str] | None = None,
    column_types: dict[str, pa.DataType] | None = None,
    data: bytes | None = None,
    encoding: str | None = None,
) -> pa.Table:
    """Read delimited text column-wise with pyarrow (threads, dictionary-encoded strings).

    ``encoding`` (a codec name from :func:`check_encoding`; ``None`` is UTF-8) is decoded by pyarrow as it reads."""
    text = _delimited(path, delimiter, column_names, data, encoding)
    try:
        with text.open() as src:
            return pacsv.read_csv(src, read_options=text.read_opts, parse_options=text.parse_opts,
                                  convert_options=_convert_options(include_columns, column_types))
    except (EOFError, UnicodeError, pa.ArrowInvalid) as exc:
        raise text.error(exc) from None


#: rows per table :func:`read_batches` yields (about 30 MB of raw columns for a log of four columns)
BATCH_ROWS = 1 << 20
#: the formats :func:`read_batches` reads a chunk at a time
STREAMED_FORMATS: tuple[Format, ...] = ("csv", "tsv", "parquet")


#: bytes pyarrow parses at a time in a streaming read; a longer row makes the read start over with larger blocks
_STREAM_BLOCK = 1 << 20
#: the largest block a streaming read grows to (a row longer than this is refused)
_MAX_BLOCK = 1 << 26


class ReadAgain(Exception):
    """A streaming CSV read must start over with other options, which it names.

    A streaming read cannot change course midway: a column whose values change
    kind after the blocks pyarrow inferred its type from (integers, then text)
    must be read from the start as the wider type (``column``, ``type``: int64 →
    float64 → string, as a whole-file read infers); a row longer than a block
    needs larger blocks (``block_size``).  :func:`zenrec.data.ingest.clean_file`
    reads again."""

    def __init__(self, why: str, column: str | None = None, type: pa.DataType | None = None,
                 block_size: int | None = None) -> None:
        super().__init__(why)
        self.column = column
        self.type = type
        self.block_size = block_size


_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?(?:CSV conversion error to .+?: invalid value '(.*)'"
                         r"|Dictionary length exceeded max cardinality)", re.S)
_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.I)


def _wider(current: pa.DataType, value: str | None) -> pa.DataType:
    """The type a whole-file read would give a column of ``current`` values and ``value``."""
    v = (value or "").strip()
    if value is not None and pa.types.is_null(current) and _INTEGER.fullmatch(v):
        return pa.int64()
    if value is not None and (pa.types.is_null(current) or pa.types.is_integer(current)) and _FLOAT.fullmatch(v):
        return pa.float64()
    return pa.string()


def _read_again(exc: Exception, names: list[str], schema: pa.Schema, block_size: int) -> ReadAgain | None:
    """How to read again when ``exc`` is pyarrow's conversion error for a later block, or a row too long."""
    if "straddling object straddles two block boundaries" in str(exc) and block_size < _MAX_BLOCK:
        return ReadAgain(f"a row is longer than {block_size:,} bytes", block_size=min(block_size * 8, _MAX_BLOCK))
    m = _CONVERSION.search(str(exc))
    if m is None or int(m.group(1)) >= len(names):
        return None
    name = names[int(m.group(1))]
    current = schema.field(name).type if name in schema.names else pa.string()
    wider = _wider(current, m.group(2))
    if wider == current:
        return None
    return ReadAgain(f"column {name!r} holds {m.group(2)!r} after its first {current} values", name, wider)


def read_batches(
    path: str | Path,
    format: Format | None = None,
    columns: list[str] | None = None,
    encoding: str | None = None,
    batch_rows: int = BATCH_ROWS,
    column_types: dict[str, pa.DataType] | None = None,
    block_size: int | None = None,
    delimiter: str | None = None,
) -> Iterator[pa.Table]:
    """Read a CSV/TSV/Parquet log a chunk at a time: tables of ``batch_rows`` rows, in file order.

    The same checks and errors as :func:`read_table` (binary files, encodings, the
    header, ragged lines named by their line, files cut short), without ever holding
    more than a chunk of the file.  ``columns`` restricts the read to those columns
    when the file has them all.  A CSV column whose values change kind after the
    first block, or a row longer than a block, raises :class:`ReadAgain`: read again
    with the ``column_types`` and ``block_size`` it names (``block_size``: bytes
    pyarrow parses at a time, default 1 MiB).  ``delimiter``: a CSV file's field delimiter when it is not a
    comma (:func:`delimiter_of`).
    """
    path = Path(path)
    if batch_rows < 1:
        raise ConfigError(f"the 'batch_rows' parameter must be a positive number of rows; got {batch_rows}")
    enc = check_encoding(encoding)
    _check_file(path)
    fmt = format or guess_format(path)
    sep = delimiter_of(fmt, delimiter)
    if fmt == "parquet":
        if enc is not None:
            raise ConfigError(f"--encoding {encoding} does not apply to Parquet, whose text is always UTF-8")
        yield from _parquet_batches(path, columns, batch_rows)
    elif fmt in ("csv", "tsv"):
        yield from _delimited_batches(path, sep, columns, enc, batch_rows,
                                      column_types or {}, block_size or _STREAM_BLOCK)
    else:
        raise ConfigError(f"read_batches reads {', '.join(STREAMED_FORMATS)}; got {fmt!r} (use read_table)")


def _tables(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Record batches gathered (or cut, without copying) into tables of ``rows`` rows; the last one: what is left."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        held.append(batch)
        n += batch.num_rows
        if n >= rows:
            table = pa.Table.from_batches(held)
            while n >= rows:
                yield table.slice(0, rows)
                table, n = table.slice(rows), n - rows
            held = table.to_batches()
    if n:
        yield pa.Table.from_batches(held)


def _delimited_batches(path: Path, delimiter: str, columns: list[str] | None, encoding: str | None,
                       batch_rows: int, column_types: dict[str, pa.DataType], block_size: int) -> Iterator[pa.Table]:
    text = _delimited(path, delimiter, encoding=encoding)
    text.read_opts.block_size = block_size
    text.read_opts.use_threads = False  # one parser: memory that does not grow with the cores (overlap: clean_file)
    names: list[str] = []
    schema = pa.schema([])
    try:
        with text.open() as src:  # the header: which columns to convert
            names = pacsv.open_csv(src, read_options=text.read_opts, parse_options=text.parse_opts,
                                   convert_options=_convert_options(None, column_types)).schema.names
        wanted = [c for c in names if c in set(columns)] if columns and set(columns) <= set(names) else None
        with text.open() as src:
            reader = pacsv.open_csv(src, read_options=text.read_opts, parse_options=text.parse_opts,
                                    convert_options=_convert_options(wanted, column_types))
            schema = reader.schema
            yield from _tables(reader, batch_rows)
    except (EOFError, UnicodeError) as exc:
        raise text.error(exc) from None
    except OSError as exc:  # a file that is not what its name says (not gzip...), unreadable
        raise DataError(f"cannot read as {'csv' if delimiter == ',' else 'tsv'}: {exc}", source=str(path)) from None
    except pa.ArrowException as exc:
        again = _read_again(exc, names, schema, block_size)
        if again is not None:
            raise again from None
        raise text.error(exc, names[0] if names else None) from None


def _parquet_batches(path: Path, columns: list[str] | None, batch_rows: int) -> Iterator[pa.Table]:
    try:
        with pq.ParquetFile(path) as pf:
            names = pf.schema_arrow.names
            _check_header(names, path)
            wanted = [c for c in names if c in set(columns)] if columns and set(columns) <= set(names) else None
            yield from _tables(pf.iter_batches(batch_size=min(batch_rows, 1 << 20), columns=wanted), batch_rows)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read as parquet: {exc}", source=str(path)) from None


def read_table(
    path: str | Path, format: Format | None = None, columns: list[str] | None = None, encoding: str | None = None,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Read an interaction log into a DataFrame (format guessed from the suffix).

    ``columns`` restricts CSV/TSV/Parquet reads to those columns (names
    missing from the file are ignored here and reported by cleaning).
    ``encoding`` names the text encoding of a CSV/TSV/JSON Lines/MovieLens/RecBole
    file (default UTF-8, e.g. ``latin-1``, ``cp1252``, ``utf-16``).  ``delimiter``: a CSV file's field
    delimiter when it is not a comma (:func:`delimiter_of`).
    """
    path = Path(path)
    enc = check_encoding(encoding)
    _check_file(path)
    fmt = format or guess_format(path)
    sep = delimiter_of(fmt, delimiter)
    if fmt == "recbole":
        return read_recbole(path, encoding=encoding)
    if fmt == "movielens":
        return read_movielens(path, encoding=encoding)
    try:
        if fmt in ("csv", "tsv"):
            table = _read_delimited(path, sep, encoding=enc)
            if columns and set(columns) <= set(table.column_names):
                table = table.select([c for c in table.column_names if c in set(columns)])
        elif fmt == "parquet":
            if enc is not None:
                raise ConfigError(f"--encoding {encoding} does not apply to Parquet, whose text is always UTF-8")
            schema = pq.read_schema(path)
            _check_header(schema.names, path)
            wanted = None
            if columns and set(columns) <= set(schema.names):
                wanted = [c for c in schema.names if c in set(columns)]
            table = pq.read_table(path, columns=wanted)
        elif fmt == "jsonl":
            table = _read_jsonl(path, enc)
        else:
            raise DataError(f"unknown format {fmt!r}", source=str(path))
    except EOFError:
        raise _truncated(path) from None
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        not_text = _not_text(_head_bytes(path), enc) if fmt == "jsonl" else ""
        if not_text:
            raise DataError(f"not JSON Lines text: {not_text}", source=str(path)) from None
        raise DataError(f"cannot read as {fmt}: {exc}", source=str(path)) from None
    if table.num_rows == 0:
        if fmt == "jsonl":
            raise EmptyDataError("the file holds no JSON object; expected one per line", source=str(path))
        raise EmptyDataError("the file has a header but no rows; expected at least one data row", source=str(path))
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)


def _read_jsonl(path: Path, encoding: str | None) -> pa.Table:
    """JSON Lines through pyarrow, after :func:`_check_json_depth` (another encoding is decoded first, in memory)."""
    data = None
    if encoding is not None:
        with _open_binary(path) as fh:
            data = _as_utf8(path, fh.read(), encoding)
    elif path.suffix.lower() in _COMPRESSED:  # decompressed once, for the depth check and pyarrow alike
        with _open_binary(path) as fh:
            data = fh.read()
    _check_json_depth(path, data)
    try:
        return pajson.read_json(io.BytesIO(data) if data is not None else path)
    except pa.ArrowInvalid:  # a column of numbers and strings, or a line that is not JSON: read line by line
        if data is None and _not_text(_head_bytes(path)):
            raise
        return _jsonl_by_line(path, data)


def _jsonl_by_line(path: Path, data: bytes | None) -> pa.Table:
    """JSON Lines through Python's parser, one line at a time: slower than pyarrow, but it takes a
    column that mixes numbers and strings (as text) and names the line that is not a JSON object."""
    import json

    if data is None:
        with _open_binary(path) as fh:
            data = fh.read()
    records: list[dict] = []
    for n, raw in enumerate(data.splitlines(), start=1):  # \n, \r\n and \r, as pyarrow splits lines
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, or bytes that are not UTF-8
            if isinstance(exc, UnicodeDecodeError):
                why = "it is not UTF-8: name the file's encoding with --encoding, e.g. --encoding latin-1"
            else:
                why = f"{exc.msg} at character {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            err = DataError(f"line {n} is not valid JSON ({why})", source=str(path))
            err.row = n
            raise err from None
        if not isinstance(obj, dict):
            err = DataError(f"line {n} is a JSON {type(obj).__name__}; expected one object of fields per line",
                            source=str(path))
            err.row = n
            raise err
        records.append(obj)
    names = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):  # mixed kinds: every value as text
            columns[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values],
                                     pa.string())
    return pa.table(columns) if columns else pa.table({})


# a JSON string (escapes included); what is left of a line without them is its structure
_JSON_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')


def _json_depth(line: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in one line of JSON, brackets inside strings not counted
    (an unterminated string's are: never less than what a parser would reach)."""
    a = np.frombuffer(_JSON_STRING.sub(b"", line), dtype=np.uint8)
    step = ((a | 0x20) == 0x7B).astype(np.int32) - ((a | 0x20) == 0x7D)  # [ { : +1, ] } : -1
    return int(np.cumsum(step).max(initial=0))


def _check_json_depth(path: Path, data: bytes | None = None) -> None:
    """Refuse a line nested deeper than :data:`MAX_JSON_DEPTH`, naming it, before pyarrow's parser
    recurses into it (and crashes the process past some 10,000 levels).

    Vectorised over 16 MiB chunks: only a line with more opening brackets than the limit is
    scanned exactly."""
    line_no = 1
    carry = b""
    with io.BytesIO(data) if data is not None else open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 24)
            buf = carry + chunk if carry else chunk
            end = len(buf) if not chunk else buf.rfind(b"\n") + 1
            if end:
                a = np.frombuffer(buf, dtype=np.uint8, count=end)
                opens = (a | 0x20) == 0x7B
                if np.count_nonzero(opens) > MAX_JSON_DEPTH:
                    starts = np.concatenate(([0], np.flatnonzero(a[:-1] == 0x0A) + 1))
                    counts = np.add.reduceat(opens.view(np.uint8), starts, dtype=np.int64)
                    bounds = np.append(starts, end)
                    for i in np.flatnonzero(counts > MAX_JSON_DEPTH).tolist():
                        depth = _json_depth(buf[bounds[i] : bounds[i + 1]])
                        if depth > MAX_JSON_DEPTH:
                            err = DataError(f"line {line_no + i} is nested {depth:,} levels deep; at most "
                                            f"{MAX_JSON_DEPTH} are read (one JSON object of fields per line)",
                                            source=str(path))
                            err.row = line_no + i
                            raise err
                line_no += buf.count(b"\n", 0, end)
            if not chunk:
                return
            carry = buf[end:]


#: bytes read at a time when scanning a file for its record lines
_SCAN = 1 << 22


def record_lines(path: str | Path, format: Format | None = None, encoding: str | None = None,
                 rows: np.ndarray | list[int] | None = None) -> np.ndarray | None:
    """The file line (1-based) on which each data row of a CSV/TSV/JSON Lines file starts.

    Rows and lines differ where pyarrow skips blank lines, or a quoted CSV
    value spans lines; errors name rows by these lines.  Computed on demand
    (a vectorised scan of the file), and ``None`` where it cannot be
    (another format, an encoding that is not ASCII-compatible).

    With ``rows`` (0-based data rows), only those rows' lines, in the order
    given; the scan of a CSV/TSV file stops after the last of them and counts
    the lines of a stretch without quotes, carriage returns or blank lines
    without looking at each byte.  ``None`` also when the file has fewer rows."""
    path = Path(path)
    fmt = format or guess_format(path)
    enc = check_encoding(encoding)
    if enc is not None and '\n\r"'.encode(enc, "replace") != b'\n\r"':  # UTF-16 and the like
        return None
    try:
        if fmt in ("csv", "tsv"):
            if rows is None:
                return _csv_record_starts(path)[1:]  # the first record is the header
            return _record_lines_at(_csv_record_runs(path), np.asarray(rows, dtype=np.int64) + 1)
        if fmt == "jsonl":
            found = _jsonl_record_starts(path)
            if rows is None:
                return found
            wanted = np.asarray(rows, dtype=np.int64)
            return found[wanted] if not len(wanted) or wanted.max() < len(found) else None
    except (OSError, EOFError):  # changed or gone since it was read: rows keep their plain numbers
        return None
    return None


def _record_lines_at(runs: Iterator[np.ndarray | tuple[int, int]], records: np.ndarray) -> np.ndarray | None:
    """The lines of some records (0-based, any order) from :func:`_csv_record_runs`, read only as far as the
    last of them; None when there are fewer records."""
    order = np.argsort(records, kind="stable")
    wanted = records[order]
    out = np.empty(len(wanted), dtype=np.int64)
    done = seen = 0
    with contextlib.closing(runs):  # type: ignore[type-var]
        for run in runs:
            if done == len(wanted):
                break
            count = run[1] if isinstance(run, tuple) else len(run)
            end = seen + count
            upto = int(np.searchsorted(wanted, end, side="left"))
            at = wanted[done:upto] - seen
            out[done:upto] = run[0] + at if isinstance(run, tuple) else run[at]
            done, seen = upto, end
    if done < len(wanted):
        return None
    lines = np.empty_like(out)
    lines[order] = out
    return lines


def _csv_record_starts(path: Path) -> np.ndarray:
    """Lines on which the records of delimited text start (see :func:`_csv_record_runs`)."""
    found = [np.arange(r[0], r[0] + r[1], dtype=np.int64) if isinstance(r, tuple) else r
             for r in _csv_record_runs(path)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _csv_record_runs(path: Path) -> Iterator[np.ndarray | tuple[int, int]]:
    """Lines on which the records of delimited text start, :data:`_SCAN` bytes at a time: at the first
    character after a line break (``\\n``, ``\\r\\n`` or ``\\r``) outside a double-quoted value that is
    not itself a line break (pyarrow skips blank lines).

    Yields an array per stretch, or ``(first, count)`` for a stretch without quotes, carriage returns
    or blank lines, whose records are the consecutive lines from ``first`` (counted, not scanned)."""
    line = 1  # the line of buf[0]
    parity = 0  # double quotes before buf[0], mod 2
    after_break = True  # buf[0] follows a line break outside quotes (or starts the file)
    carry = b""
    with _open_binary(path) as fh:
        while True:
            chunk = fh.read(_SCAN)
            buf = carry + chunk if carry else chunk
            if not buf:
                break
            # the last byte waits for the next chunk: a CR needs to see whether an LF follows it
            n = len(buf) - 1 if chunk else len(buf)
            if (not parity and n and buf.find(b'"', 0, n) < 0 and buf.find(b"\r", 0, n) < 0
                    and buf.find(b"\n\n", 0, n) < 0 and not (after_break and buf[0] == 0x0A)):
                breaks = buf.count(b"\n", 0, n)
                ends_on_break = buf[n - 1] == 0x0A
                yield (line if after_break else line + 1, int(after_break) + breaks - int(ends_on_break))
                line += breaks
                after_break = ends_on_break
            else:
                a = np.frombuffer(buf, dtype=np.uint8)
                ext = a if chunk else np.append(a, 0)
                cur, nxt = ext[:n], ext[1 : n + 1]
                brk = (cur == 0x0A) | (cur == 0x0D)
                ends = np.flatnonzero((cur == 0x0A) | ((cur == 0x0D) & (nxt != 0x0A)))
                inside = (np.bitwise_xor.accumulate((cur == 0x22).view(np.uint8)) ^ parity).astype(bool)
                sep = brk & ~inside
                prev = np.empty(n, dtype=bool)
                if n:
                    prev[0], prev[1:] = after_break, sep[:-1]
                    parity, after_break = int(inside[-1]), bool(sep[-1])
                yield line + np.searchsorted(ends, np.flatnonzero(prev & ~brk))
                line += len(ends)
            carry = buf[n:]
            if not chunk:
                break


def _jsonl_record_starts(path: Path) -> np.ndarray:
    """Lines of a JSON Lines file that hold a record: those with a character other than blanks
    (pyarrow skips blank lines).  Vectorised over 16 MiB chunks of whole lines."""
    found: list[np.ndarray] = []
    line = 1
    carry = b""
    with _open_binary(path) as fh:
        while True:
            chunk = fh.read(1 << 24)
            buf = carry + chunk if carry else chunk
            # whole lines only; a CR that ends the buffer may be the first half of a CRLF
            end = len(buf) if not chunk else max(buf.rfind(b"\n"), buf.rfind(b"\r", 0, len(buf) - 1)) + 1
            if end:
                a = np.frombuffer(buf, dtype=np.uint8, count=end)
                nxt = np.append(a[1:], 0)
                is_end = (a == 0x0A) | ((a == 0x0D) & (nxt != 0x0A))
                starts = np.concatenate(([0], np.flatnonzero(is_end[:-1]) + 1))
                filled = ~((a == 0x20) | (a == 0x09) | (a == 0x0A) | (a == 0x0D))
                counts = np.add.reduceat(filled.view(np.uint8), starts, dtype=np.int64)
                found.append(line + np.flatnonzero(counts > 0))
                line += int(np.count_nonzero(is_end))
            if not chunk:
                break
            carry = buf[end:]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def read_recbole(path: str | Path, tokens_as_text: bool = False, encoding: str | None = None) -> pd.DataFrame:
    """Read a RecBole atomic file (``.inter``/``.item``/``.user``): tab-separated,
    header fields written ``name:type``; the ``:type`` suffixes are removed.

    With ``tokens_as_text`` the ``token`` columns are read as strings, so ids
    such as ``007`` keep their leading zeros."""
    path = Path(path)
    enc = check_encoding(encoding)
    _check_file(path)
    types = None
    if tokens_as_text:
        header = _check_first_line(path, "\t", True, enc) or []
        types = {h: pa.string() for h in header if h.endswith(":token")}
    table = _read_delimited(path, "\t", column_types=types, encoding=enc)
    names = [n.split(":", 1)[0] for n in table.column_names]
    _check_header(names, path)
    table = table.rename_columns(names)
    if table.num_rows == 0:
        raise EmptyDataError("the file has a header but no rows; expected at least one data row", source=str(path))
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)


def read_movielens(path: str | Path, encoding: str | None = None) -> pd.DataFrame:
    """Read MovieLens ratings in any of its layouts: ``u.data`` (tab, no header),
    ``ratings.dat`` (``::``), ``ratings.csv`` (header) or RecBole's ``.inter``;
    each may be gzip-compressed (``ratings.dat.gz``).

    Columns come out as ``user_id, item_id, rating, timestamp``.
    """
    path = Path(path)
    enc = check_encoding(encoding)
    _check_file(path)
    names = ["user_id", "item_id", "rating", "timestamp"]
    suffix = _base_suffix(path)
    if suffix == ".inter":
        df = read_recbole(path, encoding=encoding)
    elif suffix == ".csv":
        df = read_table(path, "csv", encoding=encoding).rename(columns={"userId": "user_id", "movieId": "item_id"})
    elif suffix == ".dat":
        try:
            with _open_binary(path) as fh:
                raw = fh.read()
        except EOFError:
            raise _truncated(path) from None
        except OSError as exc:
            raise DataError(f"cannot read it: {exc}", source=str(path)) from None
        text = _as_utf8(path, raw, enc).replace(b"::", b"\t")
        if not text.strip():
            raise EmptyDataError("the file is empty", source=str(path))
        df = _to_frame(_read_delimited(path, "\t", column_names=names, data=text))
    else:
        df = _to_frame(_read_delimited(path, "\t", column_names=names, encoding=enc))
    missing = [c for c in ("user_id", "item_id") if c not in df.columns]
    if missing:
        raise DataError(f"not a MovieLens ratings file: no column {missing[0]!r}", source=str(path))
    return df


def _to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)
