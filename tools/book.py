"""The book as a test run and as a static site.

    python tools/book.py test      # run every chapter as `nbdev_test --n_workers 1` does, keeping the executed copies
    python tools/book.py site      # build the site into _docs/ from those copies (runs the chapters first if they are stale)
    python tools/book.py check     # every chapter has a page, every link inside the site resolves, and headless
                                   # Chromium shows the index and a chapter with its figures and its math rendered

Why nbconvert: nbdev's own `nbdev_docs` needs Quarto, whose package downloads a binary when it installs and so
fails offline. nbconvert comes with JupyterLab (already a dev dependency), renders a notebook the way JupyterLab
shows it, and its Jinja templates let the site fold solutions away and add navigation. MathJax is served from
the `jupyter-server-mathjax` package, so the pages render their equations without a network.

The test run executes each chapter exactly as nbdev_test does (same skip flags, `#| eval: false`, working
directory, `IN_TEST=1`, so the `ci` profile), in one process, one chapter after another, and stops a chapter at
its first error. The executed copies go to `_proc/executed/` with the hash of the notebook they ran, so `site`
rebuilds only from copies that match the current sources.
"""
import argparse
import hashlib
import html
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "_proc" / "executed"
TEMPLATES = Path(__file__).resolve().parent / "site_templates"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_readme import fill as fill_results   # the index's results blocks, filled from results/ as in the README


def config():
    from nbdev.config import get_config
    return get_config(path=ROOT)


def chapters():
    "The notebooks of the book, in reading order (nbdev's own glob: files and folders starting with _ or . are skipped)."
    from nbdev.doclinks import nbglob
    return [Path(p) for p in nbglob(config().nbs_path, as_path=True)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -------------------------------------------------------------------------------------------------- test
def _tags(cell) -> list:
    "nbdev directives as cell tags, for the site: `hide`, `export`, `solution`, `echo: false`, `output: false`."
    d = getattr(cell, "directives_", None) or {}
    tags = [k.rstrip(":") for k in d if k.rstrip(":") in ("hide", "export", "exporti", "solution", "default_exp")]
    if d.get("echo:", [""])[0].lower() == "false": tags.append("echo-false")
    if d.get("output:", [""])[0].lower() == "false": tags.append("output-false")
    if "exporti" in tags: tags.append("hide")             # nbdev hides exporti cells in its docs
    return tags


def run_chapter(fn: Path, skip_flags: set):
    "Execute one chapter as nbdev's test_nb does; return (ok, seconds, executed notebook, traceback)."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    from nbdev.processors import nb_lang
    from fastcore.basics import str2bool

    fm = getattr(NBProcessor(fn, procs=FrontmatterProc, process=True).nb, "frontmatter_", {}) or {}
    nb = NBProcessor(fn).nb          # directives read as nbdev reads them; the title cell kept for the site
    if str2bool(fm.get("skip_exec", False)) or nb_lang(nb) != "python": return True, 0.0, nb, ""

    def skip(cell):
        if cell.cell_type != "code": return True
        if "nbdev_export" + "(" in cell.source: return True
        d = getattr(cell, "directives_", {}) or {}
        if d.get("eval:", [""])[0].lower() == "false": return True
        return bool(skip_flags & set(d))

    shell, t0 = CaptureShell(fn), time.time()
    try:
        with working_directory(fn.parent): shell.run_all(nb, exc_stop=True, preproc=skip)
        ok, tb = True, ""
    except Exception:
        ok, tb = False, shell.prettytb(fname=fn)
    return ok, time.time() - t0, nb, tb


def save_executed(nb, fn: Path, out: Path):
    "Write the executed copy as plain nbformat JSON, directives turned into cell tags."
    cells = []
    for i, c in enumerate(nb.cells):
        d = {k: v for k, v in dict(c).items() if not k.endswith("_") and k != "idx_"}
        d = json.loads(json.dumps(d, default=str))
        d.setdefault("metadata", {})["tags"] = _tags(c)
        d.setdefault("id", f"cell-{i}")
        if d["cell_type"] == "code":
            d.setdefault("outputs", []); d.setdefault("execution_count", None)
        else:
            d.pop("outputs", None); d.pop("execution_count", None)
        cells.append(d)
    meta = json.loads(json.dumps(dict(nb.get("metadata", {})), default=str))
    meta["saens"] = dict(source=fn.name, sha256=digest(fn), profile=os.environ.get("SAENS_PROFILE") or "ci")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (fn.name + ".tmp")
    tmp.write_text(json.dumps(dict(cells=cells, metadata=meta, nbformat=4, nbformat_minor=5), indent=1))
    tmp.replace(out / fn.name)


# What a chapter's "**How long:**" line promises at `ci` size, as a limit in seconds: the first phrase after "to read".
# `test --timing` fails a chapter that takes more than twice its promise, so that the times a reader is told stay true.
STATED = (("well under a minute", 45), ("under a minute", 60), ("in seconds", 30), ("seconds to run", 30),
          ("about a minute", 90), ("a minute or two", 120), ("a minute at", 90), ("a couple of minutes", 180),
          ("a few minutes", 300), ("several minutes", 600), ("minutes at", 300))


def stated_seconds(fn: Path) -> float | None:
    "The run time a chapter states for `ci` size (`STATED`), or None if its header states none."
    m = re.search(r"\*\*How long:\*\*([^\n]*)", fn.read_text())
    if not m: return None
    run = m.group(1).replace("\\n", " ").split("to read", 1)[-1]
    hits = [(run.find(phrase), secs) for phrase, secs in STATED if phrase in run]
    return min(hits)[1] if hits else None


def cmd_test(args) -> int:
    os.environ["IN_TEST"] = "1"
    cfg = config()
    sys.path.insert(0, str(cfg.config_path))
    skip_flags = set(cfg.tst_flags.split())
    files = chapters()
    if args.only: files = [f for f in files if any(re.search(p, f.name) for p in args.only)]
    failed, times = [], []
    os.chdir(cfg.nbs_path)
    for fn in files:
        ok, secs, nb, tb = run_chapter(fn, skip_flags)
        times.append((secs, fn.name))
        if ok: save_executed(nb, fn, EXECUTED)
        else:
            failed.append(fn.name); sys.stderr.write(tb + "\n")
            (EXECUTED / fn.name).unlink(missing_ok=True)
        print(f"{'ok  ' if ok else 'FAIL'} {fn.name:32s} {secs:7.1f} s", flush=True)
    if args.timing:
        for secs, name in sorted(times, reverse=True)[:10]: print(f"  {name}: {secs:.0f} s")
        for secs, name in times:
            limit = stated_seconds(ROOT / "nbs" / name)
            if name != "index.ipynb" and limit is None: failed.append(f"{name} (its header states no run time)")
            elif limit is not None and secs > 2 * limit:
                failed.append(f"{name} (took {secs:.0f} s, more than twice the {limit:.0f} s its header promises: fix one or the other)")
    if failed:
        sys.stderr.write("\nThese chapters failed:\n\t" + "\n\t".join(failed) + "\n")
        return 1
    print(f"Success: {len(files)} chapters in {sum(t for t, _ in times):.0f} s")
    return 0


# -------------------------------------------------------------------------------------------------- site
_LINK = re.compile(r"(\]\(|href=\")(?!https?:|mailto:|#)([^)\"\s]+?)(#[^)\"\s]*)?(\)|\")")


def title_of(nb: dict, fallback: str) -> tuple:
    "The chapter's title (its first `# ` heading) and its one-line summary (the `> ` line after it)."
    for c in nb["cells"]:
        if c["cell_type"] != "markdown": continue
        src = "".join(c["source"])
        m = re.search(r"^# (.+)$", src, re.M)
        if m:
            s = re.search(r"^> (.+)$", src, re.M)
            return m.group(1).strip(), (s.group(1).strip() if s else "")
    return fallback, ""


def page_name(nb_name: str) -> str:
    return Path(nb_name).with_suffix(".html").name


def _rewrite_links(text: str, pages: set, extra: set) -> str:
    "Links to chapters point at their pages; links to other files of the repository are copied into the site."
    def sub(m):
        pre, target, frag, post = m.group(1), m.group(2), m.group(3) or "", m.group(4)
        name = Path(target).name
        if target.endswith(".ipynb") and name in pages: return f"{pre}{page_name(name)}{frag}{post}"
        rel = target[3:] if target.startswith("../") else target      # links from nbs/ to the repository root
        if (ROOT / rel).is_file() and not target.endswith(".ipynb"):
            extra.add(rel); return f"{pre}{rel}{frag}{post}"
        return m.group(0)
    return _LINK.sub(sub, text)


def _is_progress(out: dict) -> bool:
    t = "".join(out.get("text", ""))
    return out.get("output_type") == "stream" and out.get("name") == "stderr" and ("\r" in t or "it/s]" in t or "%|" in t)


def _joined(out: dict) -> dict:
    "nbformat's multiline strings (lists of lines) as plain strings, which nbconvert's filters expect."
    if isinstance(out.get("text"), list): out["text"] = "".join(out["text"])
    for k, v in (out.get("data") or {}).items():
        if isinstance(v, list) and not k.endswith("json"): out["data"][k] = "".join(v)
    return out


def prepare(nb: dict, pages: set, extra: set) -> dict:
    "The executed notebook as the site shows it: hidden cells gone, progress bars dropped, links rewritten."
    cells = []
    for c in nb["cells"]:
        tags = c.get("metadata", {}).get("tags", [])
        src = "".join(c["source"])
        if "hide" in tags or "default_exp" in tags or (c["cell_type"] == "code" and not src.strip()): continue
        if c["cell_type"] == "markdown": c["source"] = _rewrite_links(fill_results(src), pages, extra)
        else: c["outputs"] = [_joined(o) for o in c.get("outputs", []) if not _is_progress(o)]
        cells.append(c)
    nb["cells"] = cells
    return nb


def exporter():
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config
    c = Config()
    c.TemplateExporter.extra_template_basedirs = [str(TEMPLATES)]
    ex = HTMLExporter(config=c, template_name="saens")
    ex.mathjax_url = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
    ex.exclude_anchor_links = False
    ex.exclude_input_prompt = ex.exclude_output_prompt = True       # no "In [ ]:" beside every cell
    trp = TagRemovePreprocessor(remove_input_tags={"echo-false"}, remove_all_outputs_tags={"output-false"}, enabled=True)
    ex.register_preprocessor(trp, enabled=True)
    return ex


def executed_fresh(files) -> list:
    "The chapters whose executed copy is missing or was made from another version of the notebook."
    stale = []
    for fn in files:
        p = EXECUTED / fn.name
        if not p.exists() or json.loads(p.read_text())["metadata"].get("saens", {}).get("sha256") != digest(fn): stale.append(fn)
    return stale


PATHS = (("core", "Core: the method"), ("setting", "The paper's settings"), ("advanced", "Advanced"), ("reference", "Reference and appendices"))


def reading_paths() -> dict:
    "Each chapter's reading path (core, setting, advanced, reference), from the chapter table of the index."
    src = "".join("".join(c["source"]) for c in json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"])
    return {m.group(1) + ".ipynb": m.group(2) for m in re.finditer(r"^\| \[`([\w-]+)`\]\([^)]*\) \| (\w+) \|", src, re.M)}


def sidebar_groups(toc: list, paths: dict) -> list:
    "The sidebar: the start pages, then the chapters of each reading path in reading order (a chapter with no path: under Start)."
    start = [t for t in toc if paths.get(t["name"]) not in dict(PATHS)]
    start.insert(1 if start else 0, dict(href="contents.html", title="Contents", summary="", name="contents"))
    return [dict(title="Start", pages=start)] + [dict(title=title, pages=[t for t in toc if paths.get(t["name"]) == key]) for key, title in PATHS]


_HEADING = re.compile(r'<h([23]) id="([^"]+)"[^>]*>(.*?)</h\1>', re.S)


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def search_sections(body: str, href: str, title: str, limit: int = 1500) -> list:
    """A page's search entries: its opening, then one per `##`/`###` section (its anchor, heading and first `limit`
    characters of text, lower-cased), taken from the rendered page so that the anchors are the page's own."""
    main = body[body.find("<main"):] if "<main" in body else body
    main = re.sub(r"<(script|style)\b.*?</\1>", " ", main, flags=re.S)
    marks = list(_HEADING.finditer(main))
    out = [dict(href=href, title=title, section="", text=_text(main[:marks[0].start() if marks else None])[:limit].lower())]
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(main)
        out.append(dict(href=f"{href}#{m.group(2)}", title=title, section=_text(m.group(3)).rstrip("¶").strip(),
                        text=_text(main[m.end():end])[:limit].lower()))
    return out


def cmd_site(args) -> int:
    files = chapters()
    stale = executed_fresh(files)
    if args.partial: files, stale = [f for f in files if f not in stale], []
    if stale:
        if args.no_run:
            sys.exit("No fresh executed copy of: " + ", ".join(f.name for f in stale) + " (run python tools/book.py test)")
        print(f"running {len(stale)} chapters at ci size first")
        ns = argparse.Namespace(only=[re.escape(f.name) + "$" for f in stale], timing=False)
        if cmd_test(ns): return 1
        os.chdir(ROOT)
    out = ROOT / config().get("doc_path", "_docs")
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    import jupyter_server_mathjax
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", out / "mathjax")

    nbs = {fn.name: json.loads((EXECUTED / fn.name).read_text()) for fn in files}
    pages, extra = set(nbs), set()
    titles = {name: title_of(nb, name) for name, nb in nbs.items()}
    order = sorted(nbs, key=lambda n: (n != "index.ipynb", n))     # the index first, then the chapters in order
    toc = [dict(href=page_name(n), title=titles[n][0], summary=titles[n][1], name=n) for n in order]
    groups = sidebar_groups(toc, reading_paths())
    import nbformat
    ex = exporter()
    index = []
    for i, name in enumerate(order):
        nb = prepare(nbs[name], pages, extra)
        nb["metadata"]["title"] = titles[name][0]
        node = nbformat.from_dict(nb)
        nav = dict(prev=toc[i - 1] if i > 0 else None, next=toc[i + 1] if i + 1 < len(toc) else None, toc=toc, here=name, groups=groups)
        body, _ = ex.from_notebook_node(node, resources=dict(metadata=dict(name=titles[name][0]), saens_nav=nav))
        (out / page_name(name)).write_text(body)
        index += search_sections(body, page_name(name), titles[name][0])
    contents = ["# Contents", "> Every chapter of the book, in reading order."]
    contents += [f"- [{t['title']}]({t['href']})" + (f": {t['summary']}" if t["summary"] else "") for t in toc]
    node = nbformat.from_dict(dict(cells=[dict(cell_type="markdown", id="contents", metadata={}, source="\n".join(contents))],
                                   metadata=dict(title="Contents"), nbformat=4, nbformat_minor=5))
    body, _ = ex.from_notebook_node(node, resources=dict(metadata=dict(name="Contents"),
                                                         saens_nav=dict(prev=None, next=toc[0], toc=toc, here="contents", groups=groups)))
    (out / "contents.html").write_text(body)
    (out / "search_index.js").write_text("window.SAENS_INDEX = " + json.dumps(index, ensure_ascii=False) + ";\n")
    for rel in sorted(extra):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, out / rel)
    print(f"site: {len(order)} pages and {len(extra)} linked files in {out}")
    return 0


# -------------------------------------------------------------------------------------------------- check
def broken_links(site: Path) -> list:
    "Every relative href/src of every page that does not resolve to a file of the site."
    bad = []
    for page in sorted(site.glob("*.html")):
        for m in re.finditer(r"(?:href|src)=\"([^\"]+)\"", page.read_text()):
            url = html.unescape(m.group(1))
            if re.match(r"^(https?:|mailto:|data:|#|javascript:)", url): continue
            path = url.split("#")[0].split("?")[0]
            if path and not (site / path).exists(): bad.append(f"{page.name}: {url}")
    return bad


def chromium(url: str, shot: Path) -> dict:
    "Open a page in headless Chromium; report its title, its images (and which failed to load) and its rendered math."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400"): opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    try:
        drv.get(url)
        for _ in range(100):                         # MathJax typesets after load
            done = drv.execute_script("return document.readyState === 'complete' && (!window.MathJax || !MathJax.Hub || MathJax.Hub.queue.pending === 0)")
            if done: break
            time.sleep(0.1)
        info = drv.execute_script("""
            const imgs = Array.from(document.images);
            return {title: document.title, n_images: imgs.length,
                    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80)),
                    n_math: document.querySelectorAll('.MathJax, .MathJax_CHTML, mjx-container').length,
                    math_fonts: Array.from(new Set(Array.from(document.querySelectorAll('.MathJax span'))
                                  .map(s => s.style.fontFamily).filter(f => f))),
                    n_links: document.links.length,
                    n_sidebar: document.querySelectorAll('aside.saens-sidebar > ul a').length,
                    n_page_toc: document.querySelectorAll('aside.saens-sidebar ul.page-toc li').length};""")
        drv.save_screenshot(str(shot))
        info["search"] = drv.execute_script("""
            const box = document.querySelector('aside.saens-sidebar input.search');
            if (!box) return null;
            box.value = arguments[0]; box.dispatchEvent(new Event('focus'));    // the first focus loads the index, then searches
            return true;""", SEARCH_PROBE[0])
        if info["search"]:
            for _ in range(50):
                hits = drv.execute_script("return Array.from(document.querySelectorAll('aside.saens-sidebar ul.results a')).map(a => a.getAttribute('href'));")
                if hits: break
                time.sleep(0.1)
            info["search"] = hits
        return info
    finally:
        drv.quit()


SEARCH_PROBE = ("hungarian stability", "04_metrics.html")   # a query, and the page a working search must find for it


def cmd_check(args) -> int:
    site = ROOT / config().get("doc_path", "_docs")
    problems = []
    missing = [page_name(f.name) for f in chapters() if not (site / page_name(f.name)).exists()]
    if missing: problems.append("pages missing: " + ", ".join(missing))
    problems += ["broken link " + b for b in broken_links(site)]
    shots = ROOT / "_proc" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    chapter = page_name(args.chapter if args.chapter.endswith((".html", ".ipynb")) else args.chapter + ".html")
    if not (site / chapter).exists(): problems.append(f"--chapter {args.chapter}: the site has no page {chapter}")
    for page, need_fig, need_math in (("index.html", False, False), (chapter, True, True)):
        if not (site / page).exists(): continue
        info = chromium((site / page).as_uri(), shots / (Path(page).stem + ".png"))
        print(f"{page}: title {info['title']!r}, {info['n_images']} images, {len(info['broken'])} broken, "
              f"{info['n_math']} equations rendered in {sorted(info['math_fonts']) or 'no'} fonts, {info['n_links']} links, "
              f"{info['n_sidebar']} pages in the sidebar, {info['n_page_toc']} sections in its contents, "
              f"{len(info['search'] or [])} search results for {SEARCH_PROBE[0]!r}")
        if not info["title"]: problems.append(f"{page}: no title")
        if info["n_sidebar"] < len(chapters()): problems.append(f"{page}: the contents sidebar links {info['n_sidebar']} pages, fewer than the {len(chapters())} chapters")
        if need_math and not info["n_page_toc"]: problems.append(f"{page}: no per-page contents (its ## sections) in the sidebar")
        if not any((h or "").startswith(SEARCH_PROBE[1]) for h in info["search"] or []):
            problems.append(f"{page}: searching {SEARCH_PROBE[0]!r} does not find {SEARCH_PROBE[1]} (got {(info['search'] or [])[:5]})")
        if info["broken"]: problems.append(f"{page}: images that did not render: {info['broken']}")
        if need_fig and not info["n_images"]: problems.append(f"{page}: no figure")
        if need_math and not info["n_math"]: problems.append(f"{page}: no equation rendered")
        missing_fonts = [f for f in info["math_fonts"] if "STIX" not in f]   # the site ships STIX-Web only
        if missing_fonts: problems.append(f"{page}: math set in fonts the site does not ship (it renders wrongly): {missing_fonts}")
    if problems:
        print("\n".join(problems), file=sys.stderr); return 1
    print(f"site check passed (screenshots in {shots})")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("test", help="run every chapter as nbdev_test does and keep the executed copies")
    t.add_argument("only", nargs="*", help="regular expressions: run only the chapters whose file name matches")
    t.add_argument("--timing", action="store_true", help="print the slowest chapters")
    s = sub.add_parser("site", help="build the static site into _docs/")
    s.add_argument("--no-run", action="store_true", help="fail instead of running chapters whose executed copy is stale")
    s.add_argument("--partial", action="store_true", help="build only the chapters that have a fresh executed copy (a preview)")
    c = sub.add_parser("check", help="check the built site: pages, links, and a headless-Chromium look at two pages")
    c.add_argument("--chapter", default="00_proposition.html", help="the chapter whose figures and math must render: 04_metrics, 04_metrics.ipynb or 04_metrics.html")
    args = p.parse_args(argv)
    return dict(test=cmd_test, site=cmd_site, check=cmd_check)[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
