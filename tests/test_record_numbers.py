"""Numbers from a run come from its files, never typed into prose.

A recorded run's numbers live in `results/<run>/` (records, tables, `run.json`, `NOTES.md`). A chapter or the README
that reports them prints them from those files. This test fails when a markdown cell of a chapter (the README is
rendered from `nbs/index.ipynb`) holds more than a few three-decimal numbers typed by hand: numbers inside LaTeX
math (worked examples) do not count. The paper's own numbers are data too: each setting's config keeps them
(`paper_results:`), and a chapter prints them with `saens.config.paper_table`. A chapter that shows a results file in
its prose holds an empty block `<!-- results: FILE -->` `<!-- end results -->`, which the README (and the site) are
rendered with, filled from FILE (`python tools/render_readme.py`)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_TYPED = 3                       # "a few": a worked value or two in a sentence is prose, a column of them is a copy

NUMBER = re.compile(r"(?<![\d.])-?\d*\.\d{3}(?![\d])")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)
BLOCK = re.compile(r"<!-- results: (\S+) -->\n(.*?)<!-- end results -->", re.S)


def typed_numbers(text: str) -> list[str]:
    "The three-decimal numbers of a markdown text that count as typed: outside math, code and rendered blocks."
    for pat in (BLOCK, MATH, CODE):
        text = pat.sub(" ", text)
    return NUMBER.findall(text)


def rendered_blocks(text: str) -> list[tuple[str, str]]:
    return [(f, body) for f, body in BLOCK.findall(text)]


def markdown_cells():
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            if c["cell_type"] == "markdown":
                yield f"{nb.name} cell {i}", "".join(c["source"])


def test_the_rule_itself():
    assert typed_numbers("EV 0.802 at L0 645, bagging 0.911, boosting 1.000 and 0.408") == ["0.802", "0.911", "1.000", "0.408"]
    assert typed_numbers("$s_A = (1 + \\sqrt3/2)/2 \\approx 0.933$ and `0.123` in code") == []
    assert typed_numbers("the paper's 0.946 / 0.895 / 0.961") == ["0.946", "0.895", "0.961"]   # the paper's too: print them from the configs
    assert typed_numbers("<!-- results: results/x.md -->\n| 0.111 | 0.222 |\n<!-- end results -->") == []


@pytest.mark.parametrize("where,text", [pytest.param(w, t, id=w) for w, t in markdown_cells()])
def test_no_run_numbers_typed_into_a_chapter(where, text):
    typed = typed_numbers(text)
    assert len(typed) <= MAX_TYPED, (
        f"{where} holds {len(typed)} three-decimal numbers typed by hand ({', '.join(typed[:8])}...). A number from a "
        "recorded run belongs in results/<run>/ (its tables, or NOTES.md), printed by a cell that reads it, or in a "
        "<!-- results: FILE --> block that tools/render_readme.py fills in")


def test_results_blocks_are_empty_in_the_source_and_hold_their_files_where_rendered():
    for where, text in markdown_cells():
        for f, body in rendered_blocks(text):
            assert (ROOT / f).exists(), f"{where}: {f} does not exist"
            assert not body.strip(), f"{where}: the block of {f} holds numbers typed into the source: leave it empty"
    readme = rendered_blocks((ROOT / "README.md").read_text())
    assert readme, "the README shows no recorded results"
    for f, body in readme:
        assert body.strip() == (ROOT / f).read_text().strip(), f"README.md: the block from {f} differs from the file: run python tools/render_readme.py"
