"""Chapters as a reader meets them: opened in real JupyterLab in headless Chromium, every cell run by JupyterLab's own
"Run All", then checked in the page: no cell ended in an error, every formula was typeset (and none is a MathJax
error), and the feature explorer's widget was drawn. The notebooks are copies, so nothing JupyterLab saves reaches
the source. The kernel starts without SAENS_PROFILE, as a reader's does (the `ci` size, with one notice)."""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ("00_proposition.ipynb", "24_explorer.ipynb")


def _browser_or_skip():
    if shutil.which("chromium") and shutil.which("chromedriver"): return
    if os.environ.get("SAENS_CI"): pytest.fail("CI must provide chromium and chromedriver for the JupyterLab test (.ci/run installs them)")
    pytest.skip("needs chromium and chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _browser_or_skip()
    root = tmp_path_factory.mktemp("lab")
    (root / "nbs").mkdir()
    for name in CHAPTERS: shutil.copy(ROOT / "nbs" / name, root / "nbs" / name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "SAENS_PROFILE"}
    env.update(JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"), JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"))
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                               f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--expose-app-in-browser",
                               "--LabApp.news_url=", "--LabApp.extension_manager=readonly", "--allow-root"],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:                     # JupyterLab takes seconds to start (tens on a busy machine)
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1); break
            except OSError:
                if server.poll() is not None or time.time() - t0 > 180:
                    pytest.fail("JupyterLab did not start: " + (root / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"): opts.add_argument(a)
        opts.binary_location = shutil.which("chromium")
        drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        drv.set_script_timeout(60)
        try: yield drv, base, token, root
        finally: drv.quit()
    finally:
        server.terminate()
        try: server.wait(10)
        except subprocess.TimeoutExpired: server.kill()


def _wait(drv, script: str, seconds: float, what: str):
    t0 = time.time()
    while time.time() - t0 < seconds:
        got = drv.execute_script(script)
        if got: return got
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {seconds:.0f} s")


# the open notebook, from JupyterLab's own model: whether every code cell ran, and each cell's error outputs
_STATE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!w || !w.content || !w.sessionContext || !w.sessionContext.session || !w.sessionContext.session.kernel) return null;
const cells = w.content.widgets.map(c => c.model);
return {kernel: w.sessionContext.session.kernel.status,
        ran: cells.filter(m => m.type === 'code').every(m => m.executionCount !== null),
        n_code: cells.filter(m => m.type === 'code').length,
        errors: cells.flatMap((m, i) => m.type !== 'code' ? [] :
                  m.outputs.toJSON().filter(o => o.output_type === 'error').map(o => `cell ${i}: ${o.ename}: ${o.evalue}`))};
"""


def run_all(lab, name: str, seconds: float) -> dict:
    drv, base, token, _ = lab
    drv.get(f"{base}/lab/tree/nbs/{name}?token={token}&reset")
    _wait(drv, f"""const s = (function () {{ {_STATE} }})(); return s && s.kernel === 'idle' &&
                  window.jupyterapp.shell.currentWidget.title.label === {json.dumps(name)};""", 120, f"{name}: the notebook and its kernel")
    drv.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    state = _wait(drv, f"const s = (function () {{ {_STATE} }})(); return s && s.kernel === 'idle' && (s.ran || s.errors.length) ? s : null;",
                  seconds, f"{name}: Run All")
    return state


def math_state(drv) -> dict:
    "Formulas in the rendered markdown: typeset (MathJax 3's mjx-container), and MathJax errors among them."
    drv.execute_script("for (const c of document.querySelectorAll('.jp-MarkdownCell')) c.scrollIntoView();")
    return _wait(drv, """const n = document.querySelectorAll('.jp-RenderedMarkdown mjx-container').length;
                         return n ? {n: n, errors: document.querySelectorAll('mjx-merror').length,
                                     raw: Array.from(document.querySelectorAll('.jp-RenderedMarkdown p')).filter(p => /\\$[^$]+\\$/.test(p.textContent)).length} : null;""",
                 60, "typeset math")


def test_chapter_0_runs_in_jupyterlab_with_its_math_typeset(lab):
    state = run_all(lab, "00_proposition.ipynb", 180)
    assert state["ran"] and not state["errors"], state["errors"]
    math = math_state(lab[0])
    assert math["n"] > 20 and math["errors"] == 0, math                     # chapter 0 is a derivation: dozens of formulas
    assert math["raw"] == 0, f"{math['raw']} paragraphs still show $...$ as text"


def test_the_feature_explorer_draws_its_widget_in_jupyterlab(lab):
    state = run_all(lab, "24_explorer.ipynb", 420)
    assert state["ran"] and not state["errors"], state["errors"]
    drv = lab[0]
    widgets = _wait(drv, "return document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets, .jp-OutputArea-output .widget-box').length;",
                    60, "the explorer's widget")
    assert widgets > 0
    notice = drv.execute_script("return Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(o => o.textContent).join('\\n');")
    assert "SAENS_PROFILE" in notice       # the kernel had no SAENS_PROFILE: the chapter ran at ci size and said so
