"""Readers for interaction logs: CSV/TSV, Parquet, JSON Lines, MovieLens, RecBole atomic files.

Every reader returns a :class:`pandas.DataFrame` with Arrow-backed columns,
read column-wise by pyarrow (no Python object per row).  Problems with the
file itself (missing, empty, duplicate header, unreadable) raise
:class:`~zenrec.errors.DataError` naming the file.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from zenrec.errors import DataError, EmptyDataError

__all__ = ["read_table", "read_movielens", "read_recbole", "Format"]

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


def _guess_format(path: Path) -> Format:
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


def _open_text(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".bz2":
        import bz2

        return bz2.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


_MAGIC = {b"\x1f\x8b": "gzip-compressed (name it .csv.gz, or decompress it)", b"PK\x03\x04": "a zip archive",
          b"\x7fELF": "a program (ELF binary)", b"PAR1": "Parquet (name it .parquet)",
          b"\x28\xb5\x2f\xfd": "zstd-compressed"}


def _head_bytes(path: Path, n: int = 1 << 16) -> bytes:
    """The first ``n`` bytes of a file's text: decompressed for a ``.gz``/``.bz2`` name, as stored otherwise.

    A name that says compressed but does not decompress (or a ``.zst``, which is not sniffed) gives b"":
    nothing is claimed about it here."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        if suffix == ".bz2":
            import bz2

            with bz2.open(path, "rb") as fh:
                return fh.read(n)
        if suffix in _COMPRESSED:
            return b""
        with open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, ValueError):
        return b""


def _not_text(head: bytes) -> str:
    """Why bytes are not UTF-8 delimited text (a known file signature, NUL bytes, invalid UTF-8), or ''."""
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return f"the file is {what}"
    if b"\x00" in head:
        return "the file holds NUL bytes (binary data, or UTF-16 text: save it as UTF-8)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            line = head[: exc.start].count(b"\n") + 1
            return f"byte {head[exc.start]:#04x} on line {line} is not UTF-8 (save the file as UTF-8)"
    return ""


def _first_bad_line(source, read_opts: pacsv.ReadOptions, parse_opts: pacsv.ParseOptions) -> tuple[int | None, str]:
    """Re-read single-threaded to learn the line number of the first row that does not parse."""
    found: list[tuple[int | None, str]] = []

    def handler(row: pacsv.InvalidRow) -> str:
        found.append((row.number, f"expected {row.expected_columns} fields, got {row.actual_columns}: {row.text!r}"))
        return "error"

    opts = pacsv.ReadOptions(
        column_names=read_opts.column_names, block_size=read_opts.block_size, use_threads=False
    )
    popts = pacsv.ParseOptions(delimiter=parse_opts.delimiter, invalid_row_handler=handler)
    try:
        pacsv.read_csv(source() if callable(source) else source, read_options=opts, parse_options=popts)
    except (pa.ArrowInvalid, OSError):
        pass
    return found[0] if found else (None, "")


def _read_delimited(
    path: Path,
    delimiter: str,
    column_names: list[str] | None = None,
    include_columns: list[str] | None = None,
    column_types: dict[str, pa.DataType] | None = None,
    data: bytes | None = None,
) -> pa.Table:
    """Read delimited text column-wise with pyarrow (threads, dictionary-encoded strings)."""
    read_opts = pacsv.ReadOptions(column_names=column_names, block_size=1 << 22)
    parse_opts = pacsv.ParseOptions(delimiter=delimiter)
    convert_opts = pacsv.ConvertOptions(
        strings_can_be_null=True,
        auto_dict_encode=True,
        include_columns=include_columns or [],
        column_types=column_types or {},
    )
    if column_names is None:
        # read the header ourselves: pyarrow silently accepts duplicate names
        if data is not None:
            header = data.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
        else:
            with _open_text(path) as fh:
                header = fh.readline().rstrip("\r\n")
        if not header.strip():
            raise EmptyDataError(
                "the first line is empty; expected a header line with the column names", source=str(path), row=1
            )
        _check_header([h.strip() for h in header.split(delimiter)], path)

    def source():
        return io.BytesIO(data) if data is not None else path

    try:
        return pacsv.read_csv(source(), read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts)
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        not_text = _not_text(data[: 1 << 16] if data is not None else _head_bytes(path))
        if not_text:  # pyarrow's row handler cannot even decode such a line: say what the file is instead
            raise DataError(f"not delimited text: {not_text}", source=str(path)) from None
        if "Empty CSV file" in msg:
            raise EmptyDataError("the file is empty", source=str(path)) from None
        if "Expected" in msg and "columns" in msg:
            line, detail = _first_bad_line(source, read_opts, parse_opts)
            if line is not None:
                raise DataError(
                    f"malformed line: {detail}; every line must have the header's number of fields",
                    source=str(path),
                    row=line,
                ) from None
        raise DataError(f"cannot parse as delimited text: {msg}", source=str(path)) from None


def read_table(path: str | Path, format: Format | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Read an interaction log into a DataFrame (format guessed from the suffix).

    ``columns`` restricts CSV/TSV/Parquet reads to those columns (names
    missing from the file are ignored here and reported by cleaning).
    """
    path = Path(path)
    _check_file(path)
    fmt = format or _guess_format(path)
    if fmt == "recbole":
        return read_recbole(path)
    if fmt == "movielens":
        return read_movielens(path)
    try:
        if fmt in ("csv", "tsv"):
            table = _read_delimited(path, "," if fmt == "csv" else "\t")
            if columns and set(columns) <= set(table.column_names):
                table = table.select([c for c in table.column_names if c in set(columns)])
        elif fmt == "parquet":
            schema = pq.read_schema(path)
            _check_header(schema.names, path)
            wanted = None
            if columns and set(columns) <= set(schema.names):
                wanted = [c for c in schema.names if c in set(columns)]
            table = pq.read_table(path, columns=wanted)
        elif fmt == "jsonl":
            table = pajson.read_json(path)
        else:
            raise DataError(f"unknown format {fmt!r}", source=str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read as {fmt}: {exc}", source=str(path)) from None
    if table.num_rows == 0:
        raise EmptyDataError("the file has a header but no rows; expected at least one data row", source=str(path))
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)


def read_recbole(path: str | Path, tokens_as_text: bool = False) -> pd.DataFrame:
    """Read a RecBole atomic file (``.inter``/``.item``/``.user``): tab-separated,
    header fields written ``name:type``; the ``:type`` suffixes are removed.

    With ``tokens_as_text`` the ``token`` columns are read as strings, so ids
    such as ``007`` keep their leading zeros."""
    path = Path(path)
    _check_file(path)
    types = None
    if tokens_as_text:
        with _open_text(path) as fh:
            header = [h.strip() for h in fh.readline().rstrip("\r\n").split("\t")]
        types = {h: pa.string() for h in header if h.endswith(":token")}
    table = _read_delimited(path, "\t", column_types=types)
    names = [n.split(":", 1)[0] for n in table.column_names]
    _check_header(names, path)
    table = table.rename_columns(names)
    if table.num_rows == 0:
        raise EmptyDataError("the file has a header but no rows; expected at least one data row", source=str(path))
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)


def read_movielens(path: str | Path) -> pd.DataFrame:
    """Read MovieLens ratings in any of its layouts: ``u.data`` (tab, no header),
    ``ratings.dat`` (``::``), ``ratings.csv`` (header) or RecBole's ``.inter``;
    each may be gzip-compressed (``ratings.dat.gz``).

    Columns come out as ``user_id, item_id, rating, timestamp``.
    """
    path = Path(path)
    _check_file(path)
    names = ["user_id", "item_id", "rating", "timestamp"]
    suffix = _base_suffix(path)
    if suffix == ".inter":
        df = read_recbole(path)
    elif suffix == ".csv":
        df = read_table(path, "csv").rename(columns={"userId": "user_id", "movieId": "item_id"})
    elif suffix == ".dat":
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        with opener(path, "rb") as fh:
            text = fh.read().replace(b"::", b"\t")
        if not text.strip():
            raise EmptyDataError("the file is empty", source=str(path))
        df = _to_frame(_read_delimited(path, "\t", column_names=names, data=text))
    else:
        df = _to_frame(_read_delimited(path, "\t", column_names=names))
    missing = [c for c in ("user_id", "item_id") if c not in df.columns]
    if missing:
        raise DataError(f"not a MovieLens ratings file: no column {missing[0]!r}", source=str(path))
    return df


def _to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)
