"""docs stay true: the benchmark page keeps its generated shape, and the README's tour runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_page_passes_its_check():
    r = subprocess.run([sys.executable, "benchmarks/check_docs.py"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_check_catches_a_long_line_and_a_second_command(tmp_path):
    page = (REPO / "docs" / "benchmarks.md").read_text()
    bad = tmp_path / "benchmarks.md"
    bad.write_text(page.replace("<!-- ingest:end -->", "x" * 250 + "\n<!-- ingest:end -->", 1))
    r = subprocess.run([sys.executable, "benchmarks/check_docs.py", str(bad)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and "200" in (r.stdout + r.stderr)


def _python_blocks(heading: str) -> list[str]:
    import re

    text = (REPO / "README.md").read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(capsys):
    """The five-minute tour's Python block, executed as it is printed (it fits five models on ml-100k)."""
    (block,) = _python_blocks("## A five-minute tour")
    exec(compile(block, "README tour", "exec"), {})
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "ease" in out
