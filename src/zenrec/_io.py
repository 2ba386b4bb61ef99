"""Atomic writes and versioned JSON manifests shared by datasets and models."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from zenrec.errors import ArtifactError, VersionError

__all__ = ["atomic_dir", "atomic_file", "write_json", "read_manifest", "save_arrays", "load_arrays", "array_headers",
           "max_artifact_bytes"]


def check_dir_target(target: str | Path, overwrite: bool = True) -> None:
    """Refuse, with :class:`ArtifactError`, a folder :func:`atomic_dir` would refuse to replace.

    Commands that work long before they write call it first, so a bad ``-o`` fails in a second, not after
    the work.
    """
    target = Path(target)
    if os.path.islink(target) or (target.exists() and not target.is_dir()):
        raise ArtifactError(f"{target} exists and is not a folder zenrec wrote; give a new path or remove it")
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists")
    if target.is_dir() and any(target.iterdir()) and not (target / "manifest.json").is_file():
        # replacing it would delete files zenrec never wrote
        raise ArtifactError(f"{target} is a folder that zenrec did not write (it has no manifest.json); "
                            "give a new path or an empty folder")


@contextmanager
def atomic_dir(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; rename it into place on success.

    On any exception the temporary directory is removed and ``target`` is left
    as it was: nothing is ever half-written.  Only an artifact zenrec wrote
    (a folder with ``manifest.json``) or an empty folder is replaced; a file, a
    symlink or a folder of other files is refused with :class:`ArtifactError`.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, a symlink loop, no permission
        dangling = next((a for a in (target.parent, *target.parent.parents) if os.path.islink(a) and not a.exists()),
                        None)
        why = (f"{dangling} is a symlink that leads nowhere (a loop or a missing target)" if dangling is not None
               else exc.strerror or str(exc))
        raise ArtifactError(f"{target}: cannot create the folder {target.parent} ({why})") from None
    check_dir_target(target, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write JSON via a temporary file and rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


#: The largest ``manifest.json`` read (bytes): a manifest is a few kilobytes of settings.
MAX_MANIFEST_BYTES = 4 << 20
_MANIFEST_DEPTH = 32


def read_manifest(directory: Path, kind: str, format_version: int) -> dict:
    """Read ``manifest.json``; check its kind, size and depth, and that its format is not newer than ours."""
    path = Path(directory) / "manifest.json"
    if not Path(directory).is_dir():
        raise ArtifactError(f"{directory}: not a directory (expected a saved zenrec {kind})")
    _plain_file(path)
    if not path.exists():
        raise ArtifactError(f"{directory}: no manifest.json; this is not a saved zenrec {kind}")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{path}: {size:,} bytes; a zenrec manifest is at most {MAX_MANIFEST_BYTES:,} "
                            "(this is not a manifest zenrec wrote)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupted manifest ({exc})") from None
    except RecursionError:
        manifest = None
    if manifest is None or _depth(manifest) > _MANIFEST_DEPTH:
        raise ArtifactError(f"{path}: corrupted manifest (nested more than {_MANIFEST_DEPTH} levels deep)")
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise ArtifactError(f"{path}: not a zenrec {kind} manifest (kind={manifest.get('kind') if isinstance(manifest, dict) else None!r})")
    found = manifest.get("format_version")
    if not isinstance(found, int) or isinstance(found, bool):
        raise ArtifactError(f"{path}: corrupted manifest (format_version={found!r})")
    if found > format_version:
        raise VersionError(
            f"{directory}: written by zenrec {manifest.get('zenrec_version', '?')} in {kind} format "
            f"{found}; this zenrec reads format {format_version} or older. Upgrade zenrec to load it."
        )
    return manifest


def _depth(obj: Any, limit: int = _MANIFEST_DEPTH + 1) -> int:
    """How deeply ``obj`` nests lists and dicts (counting stops past ``limit``)."""
    depth, level = 0, [obj]
    while level and depth <= limit:
        level = [v for o in level if isinstance(o, (dict, list))
                 for v in (o.values() if isinstance(o, dict) else o)]
        depth += 1
    return depth


def _plain_file(path: Path) -> None:
    """Refuse a symlink or a special file where zenrec writes a plain file."""
    if os.path.islink(path):
        raise ArtifactError(f"{path}: a symlink (to {os.readlink(path)}); zenrec writes plain files here, "
                            "so this artifact was edited by hand")
    if os.path.islink(path.parent) and not path.parent.exists():
        raise ArtifactError(f"{path.parent}: a symlink that leads nowhere (a loop or a missing target)")
    if path.exists() and not path.is_file():
        raise ArtifactError(f"{path}: not a plain file")


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save arrays as an uncompressed ``.npz`` (object arrays are refused)."""
    for name, a in arrays.items():
        if np.asarray(a).dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object, which would need pickle")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def max_artifact_bytes() -> int:
    """The most memory one artifact's arrays may take once loaded, in bytes.

    ``ZENREC_MAX_ARTIFACT_MB`` sets it; by default it is half the machine's
    memory (8 GiB where that is unknown).  A file whose arrays would take more
    is refused before anything is read into memory.
    """
    env = os.environ.get("ZENREC_MAX_ARTIFACT_MB")
    if env:
        try:
            mb = float(env)
            if not mb > 0 or not np.isfinite(mb):
                raise ValueError
        except ValueError:
            raise ArtifactError(f"ZENREC_MAX_ARTIFACT_MB={env!r}: expected a positive number of megabytes") from None
        return int(mb * (1 << 20))
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 << 30


def array_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype of each array in a ``.npz``, read from the headers only (nothing is loaded).

    Refuses (``ArtifactError`` naming the array) a member that is not an
    ``.npy``, an array of Python objects (loading it would need pickle), and a
    header that claims more data than its member holds.
    """
    import zipfile
    import zlib

    _plain_file(path)
    if not path.exists():
        raise ArtifactError(f"{path}: missing (the artifact is incomplete)")
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else None
                if name is None:
                    raise ArtifactError(f"{path}: holds {info.filename!r}, which is not an array (.npy)")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ArtifactError(f"{path}: array {name!r} is compressed with zip method {info.compress_type}, "
                                        "which zenrec does not write (stored or deflated only)")
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise ArtifactError(f"{path}: array {name!r} is in .npy format {version}, "
                                            "which zenrec does not write")
                    header = fh.tell()
                if dtype.hasobject:
                    raise ArtifactError(f"{path}: array {name!r} holds Python objects (dtype {dtype}); "
                                        "loading it would need pickle, which zenrec never does")
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if header + need > info.file_size:
                    raise ArtifactError(f"{path}: array {name!r} claims shape {tuple(shape)} ({need:,} bytes) but its "
                                        f"member holds {info.file_size - header:,} bytes (corrupted or edited)")
                out[name] = (tuple(shape), dtype)
    except ArtifactError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ArtifactError(f"{path}: corrupted or truncated ({exc})") from None
    return out


def load_arrays(path: Path, max_bytes: int | None = None,
                check: Callable[[dict[str, tuple[tuple[int, ...], np.dtype]]], None] | None = None
                ) -> dict[str, np.ndarray]:
    """Load a ``.npz`` written by :func:`save_arrays`, never unpickling anything.

    The headers are checked first (:func:`array_headers`, then ``check`` on
    them, e.g. shapes against a manifest), and the arrays' total size against
    ``max_bytes`` (default :func:`max_artifact_bytes`), before anything is read.
    """
    import zipfile
    import zlib

    headers = array_headers(path)
    if check is not None:
        check(headers)
    limit = max_artifact_bytes() if max_bytes is None else max_bytes
    total = sum(int(np.prod(shape, dtype=object)) * dtype.itemsize for shape, dtype in headers.values())
    if total > limit:
        raise ArtifactError(f"{path}: its arrays would take {total / (1 << 20):,.1f} MB in memory, over the limit of "
                            f"{limit / (1 << 20):,.1f} MB (set ZENREC_MAX_ARTIFACT_MB to allow more)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, zlib.error, MemoryError) as exc:
        raise ArtifactError(f"{path}: corrupted or truncated ({type(exc).__name__}: {exc})") from None


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it into place on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
