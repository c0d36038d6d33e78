"""Render README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which does not install from a package
registry; the index notebook is markdown only, so its cells are the README).

Numbers from recorded runs are never typed into the index: a table between `<!-- results: FILE -->` and
`<!-- end results -->` is filled in from FILE (a file under results/), and `results/laptop-settings.md` is first
made from the recorded runs of the three paper settings (`saens.record.recorded_summary`). `--check` changes
nothing and fails if the index, the README or that file is not what rendering would make."""
import json
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- results: (\S+) -->\n)(.*?)(<!-- end results -->)", re.S)
SETTINGS = ("gelu-1l", "pythia-160m", "gemma-2-2b")


def derived_files() -> dict:
    "The results files made from other results files: the README's table of the paper's settings."
    from saens.record import recorded_summary
    return {root / "results" / "laptop-settings.md": recorded_summary(SETTINGS, "laptop", root / "results") + "\n"}


def fill(text: str, files: dict) -> str:
    def one(m):
        f = root / m.group(2)
        body = files[f] if f in files else f.read_text()
        return m.group(1) + body.strip("\n") + "\n" + m.group(4)
    return BLOCK.sub(one, text)


check = "--check" in sys.argv
files = derived_files()
index_path = root / "nbs" / "index.ipynb"
nb = json.loads(index_path.read_text())
stale = []
for c in nb["cells"]:
    if c["cell_type"] == "markdown":
        src = "".join(c["source"])
        new = fill(src, files)
        if new != src:
            stale.append("nbs/index.ipynb")
            c["source"] = new.splitlines(keepends=True)
parts = []
for c in nb["cells"]:
    src = "".join(c["source"]).strip("\n")
    parts.append(src if c["cell_type"] == "markdown" else f"```python\n{src}\n```")
text = "\n\n".join(parts) + "\n"
out = root / "README.md"
if not out.exists() or out.read_text() != text: stale.append("README.md")
for f, body in files.items():
    if not f.exists() or f.read_text() != body: stale.append(str(f.relative_to(root)))
if check:
    if stale:
        sys.exit(f"out of date: {', '.join(sorted(set(stale)))}: run python tools/render_readme.py")
else:
    for f, body in files.items(): f.write_text(body)
    if "nbs/index.ipynb" in stale: index_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    out.write_text(text)
