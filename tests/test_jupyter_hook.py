"JupyterLab saves chapters clean: nbdev's pre-save hook (installed by `nbdev_install_hooks`) is switched on for this repository."
import copy
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_chapter_saved_from_jupyterlab_is_clean():
    from nbdev.clean import clean_jupyter
    f = ROOT / "nbs" / "00_proposition.ipynb"
    clean = json.loads(f.read_text())
    dirty = copy.deepcopy(clean)
    code = next(c for c in dirty["cells"] if c["cell_type"] == "code")
    code.update(execution_count=7, outputs=[dict(output_type="stream", name="stdout", text=["hello\n"])])
    code["metadata"] = {"execution": {"iopub.execute_input": "2026-12-07T05:00:00Z"}, "scrolled": True}
    dirty["metadata"]["language_info"] = {"name": "python", "version": "3.11.2"}
    model = dict(type="notebook", content=dirty)
    clean_jupyter(path=f, model=model)                  # what JupyterLab calls before it writes the file
    assert model["content"] == clean
