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
    suffixes = [s for s in path.suffixes if s not in (".gz", ".bz2", ".zst")]
    if suffixes and suffixes[-1].lower() in _SUFFIXES:
        return _SUFFIXES[suffixes[-1].lower()]
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


def _read_delimited(path: Path, delimiter: str, column_names: list[str] | None = None) -> pa.Table:
    read_opts = pacsv.ReadOptions(column_names=column_names, block_size=1 << 24)
    parse_opts = pacsv.ParseOptions(delimiter=delimiter)
    convert_opts = pacsv.ConvertOptions(strings_can_be_null=True, auto_dict_encode=True)
    if column_names is None:
        # read the header ourselves: pyarrow silently accepts duplicate names
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            header = fh.readline().rstrip("\r\n")
        if not header.strip():
            raise EmptyDataError("the first line (header) is empty", source=str(path), row=1)
        _check_header([h.strip() for h in header.split(delimiter)], path)
    try:
        return pacsv.read_csv(path, read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts)
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "Empty CSV file" in msg:
            raise EmptyDataError("the file is empty", source=str(path)) from None
        raise DataError(f"cannot parse as delimited text: {msg}", source=str(path)) from None


def read_table(path: str | Path, format: Format | None = None) -> pd.DataFrame:
    """Read an interaction log into a DataFrame (format guessed from the suffix)."""
    path = Path(path)
    _check_file(path)
    fmt = format or _guess_format(path)
    if fmt == "recbole":
        return read_recbole(path)
    if fmt == "movielens":
        return read_movielens(path)
    try:
        if fmt == "csv":
            table = _read_delimited(path, ",")
        elif fmt == "tsv":
            table = _read_delimited(path, "\t")
        elif fmt == "parquet":
            table = pq.read_table(path)
            _check_header(table.column_names, path)
        elif fmt == "jsonl":
            table = pajson.read_json(path)
        else:
            raise DataError(f"unknown format {fmt!r}", source=str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read as {fmt}: {exc}", source=str(path)) from None
    if table.num_rows == 0:
        raise EmptyDataError("the file has a header but no rows", source=str(path))
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)


def read_recbole(path: str | Path) -> pd.DataFrame:
    """Read a RecBole atomic file (``.inter``/``.item``/``.user``): tab-separated,
    header fields written ``name:type``; the ``:type`` suffixes are removed."""
    path = Path(path)
    _check_file(path)
    table = _read_delimited(path, "\t")
    names = [n.split(":", 1)[0] for n in table.column_names]
    _check_header(names, path)
    table = table.rename_columns(names)
    if table.num_rows == 0:
        raise EmptyDataError("the file has a header but no rows", source=str(path))
    return table.to_pandas(types_mapper=pd.ArrowDtype, self_destruct=True)


def read_movielens(path: str | Path) -> pd.DataFrame:
    """Read MovieLens ratings in any of its layouts: ``u.data`` (tab, no header),
    ``ratings.dat`` (``::``), ``ratings.csv`` (header) or RecBole's ``.inter``.

    Columns come out as ``user_id, item_id, rating, timestamp``.
    """
    path = Path(path)
    _check_file(path)
    names = ["user_id", "item_id", "rating", "timestamp"]
    if path.suffix == ".inter":
        df = read_recbole(path)
    elif path.suffix == ".csv":
        df = read_table(path, "csv").rename(columns={"userId": "user_id", "movieId": "item_id"})
    elif path.suffix == ".dat":
        text = path.read_bytes().replace(b"::", b"\t")
        try:
            table = pacsv.read_csv(
                io.BytesIO(text),
                read_options=pacsv.ReadOptions(column_names=names),
                parse_options=pacsv.ParseOptions(delimiter="\t"),
            )
        except pa.ArrowInvalid as exc:
            raise DataError(f"not a MovieLens ratings.dat file: {exc}", source=str(path)) from None
        df = table.to_pandas(types_mapper=pd.ArrowDtype)
    else:
        df = _read_delimited(path, "\t", column_names=names).to_pandas(types_mapper=pd.ArrowDtype)
    missing = [c for c in ("user_id", "item_id") if c not in df.columns]
    if missing:
        raise DataError(f"not a MovieLens ratings file: no column {missing[0]!r}", source=str(path))
    return df
