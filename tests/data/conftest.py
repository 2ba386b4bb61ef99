"""Fixtures for the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_datasets() -> Path | None:
    """``../shared/datasets`` beside the repository root, when it exists."""
    path = REPO.parent / "shared" / "datasets"
    return path if path.is_dir() else None


@pytest.fixture
def shared() -> Path:
    path = shared_datasets()
    if path is None:
        pytest.skip("shared datasets (../shared/datasets) are not available")
    return path


@pytest.fixture
def write(tmp_path):
    """write(name, text_or_bytes) -> path of a file holding exactly that content."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            content = content.encode()
        if name.endswith(".gz"):
            import gzip

            content = gzip.compress(content)
        path.write_bytes(content)
        return path

    return _write
