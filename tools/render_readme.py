"""Render README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which does not install from a package
registry; the index notebook is markdown only, so its cells are the README).

Numbers from recorded runs are never typed into the index: it holds empty blocks `<!-- results: FILE -->` ...
`<!-- end results -->`, and what it renders (the README here, the site's index page in tools/book.py) has each
filled in from FILE under results/. `results/laptop-settings.md` is first made from the recorded runs of the three
paper settings (`saens.record.recorded_summary`). `--check` changes nothing and fails if the README or that file
is not what rendering would make, or if the index holds a filled block."""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- results: (\S+) -->\n)(.*?)(<!-- end results -->)", re.S)
SETTINGS = ("gelu-1l", "pythia-160m", "gemma-2-2b")


def derived_files() -> dict:
    "The results files made from other results files: the README's table of the paper's settings."
    from saens.record import recorded_summary
    return {ROOT / "results" / "laptop-settings.md": recorded_summary(SETTINGS, "laptop", ROOT / "results") + "\n"}


def fill(text: str, files: dict | None = None) -> str:
    "`text` with every results block filled in from its file (or from `files`, where the file is about to be written)."
    files = files or {}
    def one(m):
        f = ROOT / m.group(2)
        return m.group(1) + (files[f] if f in files else f.read_text()).strip("\n") + "\n" + m.group(4)
    return BLOCK.sub(one, text)


def main(argv) -> int:
    files = derived_files()
    cells = json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]
    filled = [m.group(2) for c in cells for m in BLOCK.finditer("".join(c["source"])) if m.group(3).strip()]
    parts = ["".join(c["source"]).strip("\n") if c["cell_type"] == "markdown" else f"```python\n{''.join(c['source']).strip()}\n```"
             for c in cells]
    text = fill("\n\n".join(parts) + "\n", files)
    out = ROOT / "README.md"
    stale = [] if out.exists() and out.read_text() == text else ["README.md"]
    stale += [str(f.relative_to(ROOT)) for f, body in files.items() if not f.exists() or f.read_text() != body]
    if "--check" in argv:
        if filled: sys.exit(f"nbs/index.ipynb holds filled results blocks ({', '.join(filled)}): leave them empty, they are rendered")
        if stale: sys.exit(f"out of date: {', '.join(stale)}: run python tools/render_readme.py")
        return 0
    for f, body in files.items(): f.write_text(body)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
