"The site builder's pure parts: chapter links become page links, repository files are carried into the site, and the link check finds a broken link."
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("book", ROOT / "tools" / "book.py")
book = importlib.util.module_from_spec(spec); spec.loader.exec_module(book)


def test_links_to_chapters_become_pages_and_repository_files_are_carried():
    extra = set()
    md = "See [chapter 2](02_train.ipynb#resume), [the README](../README.md), [a site](https://example.org/x.ipynb) and [gone](99_none.ipynb)."
    out = book._rewrite_links(md, {"02_train.ipynb"}, extra)
    assert "(02_train.html#resume)" in out and "(README.md)" in out and "(https://example.org/x.ipynb)" in out
    assert "(99_none.ipynb)" in out                       # left alone, so the link check reports it
    assert extra == {"README.md"}


def test_the_link_check_finds_what_does_not_resolve(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#x">b</a> <img src="fig/1.png"> <a href="https://example.org">e</a> <a href="#top">t</a>')
    (tmp_path / "b.html").write_text("<p>b</p>")
    assert book.broken_links(tmp_path) == ["a.html: fig/1.png"]
    (tmp_path / "fig").mkdir(); (tmp_path / "fig" / "1.png").write_bytes(b"png")
    assert book.broken_links(tmp_path) == []


def test_titles_and_progress_bars():
    nb = dict(cells=[dict(cell_type="code", source="x = 1"), dict(cell_type="markdown", source="# The title\n> The summary.")])
    assert book.title_of(nb, "f.ipynb") == ("The title", "The summary.")
    assert book._is_progress(dict(output_type="stream", name="stderr", text="train: 50%|#####     | 5/10 [00:01<00:01, 4.0it/s]\r"))
    assert not book._is_progress(dict(output_type="stream", name="stderr", text="UserWarning: something real\n"))


def test_every_chapter_states_how_long_it_runs_at_ci_size(tmp_path):
    "`book.py test --timing` (what CI runs) holds each chapter to twice the time its header states."
    missing = [f.name for f in sorted((ROOT / "nbs").glob("*.ipynb")) if f.name != "index.ipynb" and book.stated_seconds(f) is None]
    assert not missing, f"chapters whose header states no run time: {missing}"
    f = tmp_path / "x.ipynb"
    for line, secs in (("about 5 minutes to read; it runs in seconds at any size.", 30),
                       ("about 20 minutes to read; a minute or two at `ci` size, hours at `laptop`.", 120),
                       ("about 10 minutes to read, 10 more for exercise 1; under a minute at `ci` size; a few minutes at `laptop`.", 60)):
        f.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": [f"**How long:** {line}\n"]}]}))
        assert book.stated_seconds(f) == secs, line


def test_every_chapter_has_a_reading_path_and_the_sidebar_groups_them():
    paths = book.reading_paths()
    chapters = [f.name for f in sorted((ROOT / "nbs").glob("*.ipynb")) if f.name != "index.ipynb"]
    assert sorted(paths) == chapters, set(chapters) ^ set(paths)          # the index's table lists every chapter, once
    assert set(paths.values()) <= {key for key, _ in book.PATHS}
    toc = [dict(name=n, href=book.page_name(n), title=n) for n in ["index.ipynb", *chapters]]
    groups = book.sidebar_groups(toc, paths)
    assert [g["title"] for g in groups][0] == "Start" and [p["name"] for p in groups[0]["pages"]] == ["index.ipynb", "contents"]
    assert sorted(p["name"] for g in groups[1:] for p in g["pages"]) == chapters
    assert [p["name"] for p in groups[1]["pages"]][:2] == ["00_proposition.ipynb", "01_sae.ipynb"]


def test_search_entries_are_the_pages_sections_with_their_own_anchors():
    body = ('<html><main><p>Intro &amp; more</p><h2 id="The-question">The question<a class="anchor-link" href="#The-question">¶</a></h2>'
            '<p>Stability <b>beside</b> its nulls</p><script>var x = "not text";</script>'
            '<h3 id="Hungarian">Hungarian</h3><p>one to one</p></main></html>')
    got = book.search_sections(body, "04_metrics.html", "Metrics")
    assert [(e["href"], e["section"]) for e in got] == [("04_metrics.html", ""), ("04_metrics.html#The-question", "The question"),
                                                        ("04_metrics.html#Hungarian", "Hungarian")]
    assert got[0]["text"] == "intro & more" and got[1]["text"] == "stability beside its nulls" and got[2]["text"] == "one to one"
