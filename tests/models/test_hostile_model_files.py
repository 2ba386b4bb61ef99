"""A hostile corpus of model directories: each is refused by loading, by ``zenrec recommend`` and by
``zenrec registry add`` with one clear line (exit 2, no traceback), and nothing is added to the registry.

Every case starts from a valid bundle and breaks one thing, as a corrupted disk, a hand edit or an
attacker would.  Cases that once crashed: CSR indices out of range (a segfault in scipy), NaN weights
(NaN scores, empty lists), ``n_items: 1.5e300`` (OverflowError), a nested manifest (RecursionError), a
corrupt deflate stream (zlib.error), a header claiming 10¹² elements (MemoryError), pickled objects.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from zenrec.data.vocab import Vocabulary
from zenrec.errors import ArtifactError
from zenrec.models.bundle import ModelBundle
from zenrec.models.query import Query
from zenrec.models.registry import load_model
from zenrec.testing import ring_walks, small_model

MODELS = ("itemknn", "ease", "als", "transition", "sasrec")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """One valid bundle per model, saved once."""
    data = ring_walks()
    root = tmp_path_factory.mktemp("good")
    out = {}
    for name in MODELS:
        model = small_model(name, **({"epochs": 1} if name == "sasrec" else {})).fit(data)
        users = Vocabulary([f"u{i}" for i in range(model.n_users_)], "user")
        items = Vocabulary(np.arange(100, 100 + model.n_items_), "item")
        out[name] = ModelBundle(model, users, items, data.binary).save(root / name)
    return out


def _arrays(d: Path) -> dict[str, np.ndarray]:
    with np.load(d / "arrays.npz") as z:
        return {k: z[k] for k in z.files}


def _edit_arrays(**changes: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        a = _arrays(d)
        for name, f in changes.items():
            a[name.replace("__", ".")] = f(a[name.replace("__", ".")].copy())
        (d / "arrays.npz").unlink()
        with open(d / "arrays.npz", "wb") as fh:
            np.savez(fh, **a)
    return edit


def _edit_manifest(**changes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text())
        m.update(changes)
        (d / "manifest.json").write_text(json.dumps(m))
    return edit


def _raw_manifest(text: str | bytes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return edit


def _set(a: np.ndarray, where: int, value) -> np.ndarray:
    a.reshape(-1)[where] = value
    return a


def _write_zip(d: Path, members: dict[str, bytes], deflate: bool = False) -> None:
    (d / "arrays.npz").unlink()
    with zipfile.ZipFile(d / "arrays.npz", "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


def _members(d: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(d / "arrays.npz") as z:
        return {n: z.read(n) for n in z.namelist()}


def _huge_header(d: Path) -> None:
    m = _members(d)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    m["model.weights.npy"] = buf.getvalue() + b"\0" * 64
    _write_zip(d, m)


def _object_array(d: Path) -> None:
    m = _members(d)
    m["extra.item_titles.npy"] = _npy(np.array([{"a": 1}, "x"], dtype=object))
    _write_zip(d, m)


def _bad_deflate(d: Path) -> None:
    _write_zip(d, _members(d), deflate=True)
    raw = bytearray((d / "arrays.npz").read_bytes())
    start = raw.index(b"model.weights.npy") + len("model.weights.npy") + 200
    raw[start : start + 400] = os.urandom(400)
    (d / "arrays.npz").write_bytes(bytes(raw))


def _zip_bomb(d: Path) -> None:  # 60 MB of zeros deflate to ~60 KB; refused before inflating
    m = _members(d)
    m["extra.padding.npy"] = _npy(np.zeros(15_000_000, np.float32))
    _write_zip(d, m, deflate=True)


def _inflating(d: Path) -> None:  # 70 M zeros in a 70 KB file: within the memory limit, not the model's size
    m = _members(d)
    m["extra.padding.npy"] = _npy(np.zeros(70_000_000, np.uint8))
    _write_zip(d, m, deflate=True)


def _truncate(d: Path) -> None:
    raw = (d / "arrays.npz").read_bytes()
    (d / "arrays.npz").write_bytes(raw[: len(raw) // 2])


def _link(target: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / "arrays.npz").unlink()
        os.symlink(target, d / "arrays.npz")
    return edit


def _manifest_loop(d: Path) -> None:
    (d / "manifest.json").unlink()
    os.symlink(d / "manifest.json", d / "manifest.json")


def _extra_member(d: Path) -> None:
    m = _members(d)
    m["notes.txt"] = b"hello"
    _write_zip(d, m)


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    edit: Callable[[Path], None]
    words: str  # what the one-line message must say
    env: tuple[tuple[str, str], ...] = ()
    crash: bool = False  # once crashed the process (segfault, memory): the CLI runs in a real process


CASES = [
    Case("csr-index-out-of-range", "itemknn", _edit_arrays(model__sim_indices=lambda a: _set(a, 3, 10_000)),
         "do not form a 60×60 matrix", crash=True),
    Case("csr-negative-index", "itemknn", _edit_arrays(model__hist_indices=lambda a: _set(a, 0, -5)),
         "do not form a 60×60 matrix"),
    Case("csr-pointers-not-monotone", "itemknn",
         _edit_arrays(model__sim_indptr=lambda a: _set(a, 5, 10_000)), "sim_indices/sim_indptr do not form"),
    Case("seen-csr-out-of-range", "ease", _edit_arrays(extra__seen_indices=lambda a: _set(a, 0, 999)),
         "do not form a 60×60 matrix"),
    Case("nan-weights", "ease", _edit_arrays(model__weights=lambda a: _set(a, 7, np.nan)), "NaN or infinite"),
    Case("inf-factors", "als", _edit_arrays(model__item_factors=lambda a: _set(a, 0, np.inf)), "NaN or infinite"),
    Case("nan-popularity", "als", _edit_arrays(base__popularity=lambda a: _set(a, 0, np.nan)), "NaN or infinite"),
    Case("factor-rows-short", "als", _edit_arrays(model__item_factors=lambda a: a[:-5]), "cannot answer a query"),
    Case("complex-factors", "als", _edit_arrays(model__user_factors=lambda a: a.astype(np.complex64)),
         "dtype complex64"),
    Case("transition-last-out-of-range", "transition", _edit_arrays(model__last=lambda a: _set(a, 2, 61)),
         "must lie in -1..59"),
    Case("sequence-index-out-of-range", "sasrec", _edit_arrays(model__sequences=lambda a: _set(a, -1, 500)),
         "must lie in 0..60"),
    Case("float-sequences", "sasrec", _edit_arrays(model__sequences=lambda a: a.astype(np.float32)),
         "must hold indices"),
    Case("network-shape", "sasrec", _edit_arrays(**{"model__net__pos__weight": lambda a: a[:-1]}),
         "does not fit"),
    Case("vocabulary-short", "ease", _edit_arrays(extra__item_ids=lambda a: a[:-1]), "vocabularies"),
    Case("arrays-not-a-list", "ease", _edit_manifest(arrays=5), "'arrays' must be a list"),
    Case("n-items-huge-float", "ease", _edit_manifest(n_items=1.5e300), "'n_items' must be a whole number"),
    Case("n-items-negative", "ease", _edit_manifest(n_items=-3), "'n_items' must be a whole number"),
    Case("n-users-bool", "ease", _edit_manifest(n_users=True), "'n_users' must be a whole number"),
    Case("n-items-disagrees", "ease", _edit_manifest(n_items=59), "does not match"),
    Case("params-not-object", "ease", _edit_manifest(params=[1, 2]), "'params' must be an object"),
    Case("params-unknown", "ease", _edit_manifest(params={"l2": 1.0, "warp": 9}), "incompatible manifest"),
    Case("unknown-model", "ease", _edit_manifest(model="gpt"), "unknown model"),
    Case("newer-format", "ease", _edit_manifest(format_version=99), "Upgrade zenrec"),
    Case("manifest-nested-deep", "ease", _raw_manifest("[" * 100_000 + "]" * 100_000), "nested", crash=True),
    Case("manifest-dict-nested", "ease", _raw_manifest('{"kind": "model", "x": ' + '{"a": ' * 50 + "1" + "}" * 51),
         "nested more than 32"),
    Case("manifest-not-json", "ease", _raw_manifest(b"\x89PNG\r\n\x1a\n\0\0"), "corrupted manifest"),
    Case("manifest-huge", "ease", _raw_manifest('{"kind": "model", "pad": "' + "x" * (5 << 20) + '"}'),
         "at most 4,194,304"),
    Case("manifest-symlink-loop", "ease", _manifest_loop, "symlink"),
    Case("arrays-missing", "ease", lambda d: (d / "arrays.npz").unlink(), "missing"),
    Case("arrays-link-to-passwd", "ease", _link("/etc/passwd"), "symlink"),
    Case("arrays-truncated", "ease", _truncate, "corrupted or truncated"),
    Case("arrays-not-zip", "ease", lambda d: (d / "arrays.npz").write_bytes(b"PK\3\4" + b"\0" * 100),
         "corrupted or truncated"),
    Case("header-claims-1e12", "ease", _huge_header, "claims shape (1000000000000,)", crash=True),
    Case("pickled-objects", "ease", _object_array, "Python objects"),
    Case("corrupt-deflate", "ease", _bad_deflate, "corrupted or truncated"),
    Case("zip-bomb-over-limit", "ease", _zip_bomb, "over the limit of 50.0 MB",
         (("ZENREC_MAX_ARTIFACT_MB", "50"),), crash=True),
    Case("inflates-past-the-model", "ease", _inflating, "more than a model of 60 users and 60 items can hold",
         crash=True),
    Case("member-not-npy", "ease", _extra_member, "not an array"),
]


def _broken(bundles: dict[str, Path], tmp_path: Path, case: Case) -> Path:
    d = tmp_path / "model"
    shutil.copytree(bundles[case.model], d)
    case.edit(d)
    return d


def test_the_corpus_starts_from_valid_bundles(bundles):
    for name, d in bundles.items():
        model, _, _ = load_model(d)
        assert model.name == name and len(ModelBundle.load(d).recommend(Query(user="u1", k=3)).items) == 3


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_model_file_is_refused_everywhere(case, bundles, tmp_path, monkeypatch):
    d = _broken(bundles, tmp_path, case)
    for k, v in case.env:
        monkeypatch.setenv(k, v)
    with pytest.raises(ArtifactError) as err:
        ModelBundle.load(d)
    assert case.words in str(err.value) and "\n" not in str(err.value), str(err.value)

    reg = tmp_path / "registry"
    for args in (["recommend", str(d), "--user", "u1"], ["registry", "add", str(reg), str(d), "--promote"]):
        code, out = _cli(args, case)
        assert code == 2, (args[0], code, out[-2000:])
        assert "Traceback" not in out and len(out.splitlines()) <= 2 and case.words in out, out[-2000:]
    # nothing half-added: no version, no temporary left in the registry
    versions = reg / "versions"
    assert not versions.exists() or not any(versions.iterdir())
    assert not (reg / "CURRENT.json").exists()


def _cli(args: list[str], case: Case) -> tuple[int, str]:
    """Run the CLI: in a real process for the cases that once crashed the process, else in this one."""
    if case.crash:
        env = {**os.environ, "OMP_NUM_THREADS": "1", **dict(case.env)}
        r = subprocess.run([sys.executable, "-m", "zenrec.cli", *args], capture_output=True, text=True, env=env,
                           timeout=120)
        return r.returncode, (r.stdout + r.stderr).strip()
    from typer.testing import CliRunner

    from zenrec.cli import app

    r = CliRunner().invoke(app, args)
    return r.exit_code, r.output.strip()
