"""Render README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which does not install from a package
registry; the index notebook is markdown only, so its cells are the README)."""
import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root / "nbs" / "index.ipynb").read_text())
parts = []
for c in nb["cells"]:
    src = "".join(c["source"]).strip("\n")
    parts.append(src if c["cell_type"] == "markdown" else f"```python\n{src}\n```")
text = "\n\n".join(parts) + "\n"
out = root / "README.md"
if "--check" in sys.argv:
    if not out.exists() or out.read_text() != text:
        sys.exit("README.md is out of date with nbs/index.ipynb: run python tools/render_readme.py")
else:
    out.write_text(text)
