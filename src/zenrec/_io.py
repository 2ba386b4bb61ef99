"""Atomic writes and versioned JSON manifests shared by datasets and models."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from zenrec.errors import ArtifactError, VersionError

__all__ = ["atomic_dir", "atomic_file", "write_json", "read_manifest", "save_arrays", "load_arrays"]


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
    if os.path.islink(target) or (target.exists() and not target.is_dir()):
        raise ArtifactError(f"{target} exists and is not a folder zenrec wrote; give a new path or remove it")
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists")
    if target.is_dir() and any(target.iterdir()) and not (target / "manifest.json").is_file():
        # replacing it would delete files zenrec never wrote
        raise ArtifactError(f"{target} is a folder that zenrec did not write (it has no manifest.json); "
                            "give a new path or an empty folder")
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


def read_manifest(directory: Path, kind: str, format_version: int) -> dict:
    """Read ``manifest.json``; check its kind and that its format is not newer than ours."""
    path = Path(directory) / "manifest.json"
    if not Path(directory).is_dir():
        raise ArtifactError(f"{directory}: not a directory (expected a saved zenrec {kind})")
    if not path.exists():
        raise ArtifactError(f"{directory}: no manifest.json; this is not a saved zenrec {kind}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupted manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise ArtifactError(f"{path}: not a zenrec {kind} manifest (kind={manifest.get('kind') if isinstance(manifest, dict) else None!r})")
    found = manifest.get("format_version")
    if not isinstance(found, int):
        raise ArtifactError(f"{path}: corrupted manifest (format_version={found!r})")
    if found > format_version:
        raise VersionError(
            f"{directory}: written by zenrec {manifest.get('zenrec_version', '?')} in {kind} format "
            f"{found}; this zenrec reads format {format_version} or older. Upgrade zenrec to load it."
        )
    return manifest


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save arrays as an uncompressed ``.npz`` (object arrays are refused)."""
    for name, a in arrays.items():
        if np.asarray(a).dtype.kind == "O":
            raise TypeError(f"array {name!r} has dtype object, which would need pickle")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Load a ``.npz`` written by :func:`save_arrays`, never unpickling anything."""
    import zipfile

    if not path.exists():
        raise ArtifactError(f"{path}: missing (the artifact is incomplete)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ArtifactError(f"{path}: corrupted or truncated ({exc})") from None


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
