"""docs/ stays true: the benchmark page is generated tables with one reproduce command per section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
