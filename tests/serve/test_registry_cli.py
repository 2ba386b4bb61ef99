"""``zenrec registry``: add, promote, split and list versions from the command line."""

from __future__ import annotations

from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.store.registry import ModelRegistry

runner = CliRunner()


def _ok(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def test_add_promote_split_list(tmp_path, model_dirs):
    root = str(tmp_path / "reg")
    assert "added" in _ok("registry", "add", root, str(model_dirs("ease")), "--note", "ease", "--promote")
    _ok("registry", "add", root, str(model_dirs("als")), "--note", "als")
    reg = ModelRegistry(root)
    assert reg.current().version == "v0001"
    assert "v0001 50%" in _ok("registry", "split", root, "v0001=0.5", "v0002=0.5")
    assert reg.current().traffic == {"v0001": 0.5, "v0002": 0.5}
    listing = _ok("registry", "list", root)
    assert "v0002" in listing and "50% of users" in listing and "als" in listing
    assert "no split" in _ok("registry", "split", root)
    assert reg.current().traffic is None
    _ok("registry", "promote", root, "v0002", "--reason", "better")
    cur = reg.current()
    assert (cur.version, cur.previous, cur.reason) == ("v0002", "v0001", "better")


def test_bad_input_is_one_line(tmp_path, model_dirs):
    root = str(tmp_path / "reg")
    _ok("registry", "add", root, str(model_dirs("ease")), "--promote")
    for args, message in [
        (["registry", "list", str(tmp_path / "nothing")], "not a model registry"),
        (["registry", "promote", root, "v0009"], "unknown model version"),
        (["registry", "split", root, "v0001=half"], "VERSION=WEIGHT"),
        (["registry", "split", root, "v0001=0.7"], "sum to 1"),
        (["registry", "add", root, str(tmp_path)], "manifest"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, (args, r.output)
