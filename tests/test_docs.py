"""docs stay true: every code block of README.md and docs/**/*.md runs in ``make test`` (rules: ``docs_runner``).

One test per page runs its ``sh`` and ``python`` blocks (slow); the benchmark
pages, whose commands take minutes to hours, have each command's script and
flags checked instead; a fast check per page holds every page to the block
rules, so an unlabelled fence or an indented code block fails without running
anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from docs_runner import (
    REPO,
    BlockFailed,
    benchmark_commands,
    broken_links,
    check_benchmark_commands,
    doc_pages,
    parse,
    port_clashes,
    run_page,
)


def _id(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


PAGES = doc_pages()
RUN_PAGES = [p for p in PAGES if not parse(p).is_benchmark]
BENCH_PAGES = [p for p in PAGES if parse(p).is_benchmark]


# ---------------------------------------------------------------- every page


@pytest.mark.parametrize("path", PAGES, ids=[_id(p) for p in PAGES])
def test_page_follows_the_block_rules(path):
    page = parse(path)
    problems = page.problems + broken_links(path)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_no_two_pages_serve_on_one_port():
    clashes = port_clashes([parse(p) for p in PAGES])
    if clashes:
        pytest.fail("\n".join(clashes), pytrace=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", RUN_PAGES, ids=[_id(p) for p in RUN_PAGES])
def test_page_runs_as_written(path, tmp_path, capsys):
    page = parse(path)
    try:
        result = run_page(page, tmp_path / "page")
    except BlockFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    with capsys.disabled():
        print(f"\n{page.name}: {len(result.blocks)} blocks ran in {result.seconds:.1f} s"
              + "".join(f"\n  not run: {b.where} ({b.lang}): {b.skip}" for b in result.skipped))


SKIPPED = [b for p in RUN_PAGES for b in parse(p).blocks if b.skip is not None]


@pytest.mark.parametrize("block", SKIPPED, ids=[b.where for b in SKIPPED])
def test_a_block_marked_not_run(block):
    """Each block a page marks ``<!-- not run: REASON -->`` shows as a skip with its reason (``-ra`` lists them)."""
    pytest.skip(f"{block.where}: ```{block.lang} block not run: {block.skip}")


@pytest.mark.parametrize("path", BENCH_PAGES, ids=[_id(p) for p in BENCH_PAGES])
def test_benchmark_page_commands_name_real_scripts_and_flags(path):
    page = parse(path)
    commands, problems = benchmark_commands(page)
    assert commands, f"{page.name}: no benchmark command found"
    problems += check_benchmark_commands(commands)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("page", ["docs/benchmarks.md", "docs/scaling.md"])
def test_benchmark_page_passes_its_check(page):
    r = subprocess.run([sys.executable, "benchmarks/check_docs.py", page], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_check_catches_a_long_line_and_a_second_command(tmp_path):
    page = (REPO / "docs" / "benchmarks.md").read_text()
    bad = tmp_path / "benchmarks.md"
    bad.write_text(page.replace("<!-- ingest:end -->", "x" * 250 + "\n<!-- ingest:end -->", 1))
    r = subprocess.run([sys.executable, "benchmarks/check_docs.py", str(bad)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and "200" in (r.stdout + r.stderr)


# ---------------------------------------------------------------- the runner itself


def _page(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "page.md"
    p.write_text(text)
    return p


def test_the_rules_refuse_indented_unlabelled_and_unknown_blocks_and_a_skip_without_reason(tmp_path):
    text = ("# A page\n\nSome text:\n\n    zenrec train data/ -o m\n\n```\nplain\n```\n\n```bash\nls\n```\n\n"
            "<!-- not run -->\n```sh\nmake test\n```\n\n<!-- not run: serves forever -->\n```sh\nmake demo\n```\n")
    problems = "\n".join(parse(_page(tmp_path, text)).problems)
    assert ":5: indented code block" in problems
    assert ":7: unlabelled code fence" in problems
    assert ":11: code fence labelled 'bash'" in problems
    assert ":15: '<!-- not run -->' needs a reason" in problems
    assert problems.count("\n") == 3  # the skip with a reason is fine


def test_links_must_reach_a_file_and_a_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## An A/B test\n\n<a id=\"kept\"></a>\n")
    text = ("# Page\n\n## Filters\n\n[a](other.md#an-ab-test) [b](other.md#kept) [c](#filters) [d](https://x.org/y)\n"
            "[e](missing.md) [f](other.md#nothing) [g](#nowhere) `[h](in-code.md)`\n\n```text\n[i](in-block.md)\n```\n")
    problems = broken_links(_page(tmp_path, text))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "link to missing.md: no such file", "link to other.md#nothing: other.md has no such heading",
        "link to #nowhere: page.md has no such heading"]


def test_list_continuations_and_samples_are_not_code(tmp_path):
    text = ("* a bullet\n  that goes on\n\n  and a second paragraph\n\n1. step\n\n   ```sh\n   echo hi\n   ```\n\n"
            "```text\noutput\n```\n\n```json\n{}\n```\n")
    page = parse(_page(tmp_path, text))
    assert not page.problems
    assert [(b.lang, b.code) for b in page.blocks] == [("sh", "echo hi\n"), ("text", "output\n"), ("json", "{}\n")]


def test_blocks_share_a_directory_and_a_namespace_and_a_failure_names_the_line(tmp_path):
    text = ("```sh\necho one > a.txt\n```\n\n```python\nx = open('a.txt').read().strip()\n```\n\n"
            "```python\nassert x == 'one'\nopen('b.txt', 'w').write(x + ' two')\n```\n\n"
            "<!-- not run: the reason -->\n```sh\nexit 1\n```\n\n"
            "```sh\ngrep -q 'one two' b.txt\necho to-stdout\nfalse\necho never\n```\n")
    page = parse(_page(tmp_path, text))
    with pytest.raises(BlockFailed) as exc:
        run_page(page, tmp_path / "run")
    msg = str(exc.value)
    assert "page.md:19: ```sh block failed (exit 1)" in msg
    assert "to-stdout" in msg and "page.md:22: exit 1 from: false" in msg and "never" not in msg.split("--- stdout")[1]
    assert (tmp_path / "run" / "b.txt").read_text() == "one two"


def test_a_page_s_background_processes_end_with_it(tmp_path):
    text = "```sh\nsleep 300 &\necho $! > pid\n```\n\n```sh\nsleep 0.2\n```\n"
    result = run_page(parse(_page(tmp_path, text)), tmp_path / "run")
    pid = int((tmp_path / "run" / "pid").read_text())
    assert len(result.blocks) == 2
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_benchmark_commands_are_checked_against_their_parsers(tmp_path):
    text = ("Reproduce: `python benchmarks/bench_commit.py --seconds 30`, or "
            "`make install && bash benchmarks/setup_peers.sh && python benchmarks/bench_commit.py --no-such-flag`\n\n"
            "```sh\npython benchmarks/missing.py\nls\npython benchmarks/bench_commit.py --seconds soon\n```\n")
    path = _page(tmp_path, text)
    page = parse(path)
    commands, problems = benchmark_commands(page)
    assert [c.script for c in commands] == ["benchmarks/missing.py", "benchmarks/bench_commit.py",
                                            "benchmarks/bench_commit.py", "benchmarks/setup_peers.sh",
                                            "benchmarks/bench_commit.py"]
    assert len(problems) == 1 and "runs no script under benchmarks/: ls" in problems[0]
    found = "\n".join(check_benchmark_commands(commands))
    assert "missing.py does not exist" in found
    assert "--no-such-flag" in found and "unrecognized arguments" in found
    assert "--seconds: invalid float value: 'soon'" in found
    assert found.count("\n") == 2
