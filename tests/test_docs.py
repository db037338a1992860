"""The docs site: built from the test pipeline's copy and driven offline in headless Chromium.

Chromium is Debian's (`make test-deps`); playwright drives that executable, no browser download.
Screenshots go to test-output/docs/ (git-ignored).
"""

from __future__ import annotations

import functools
import html
import http.server
import re
import shutil
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import nbformat
import pytest
from build_docs import notebook_markdown, readme_text
from conftest import BIN, ROOT, run

CHROMIUM = shutil.which("chromium")
OUTPUT = ROOT / "test-output" / "docs"
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)


def test_readme_is_rendered_from_the_index_notebook():
    assert (ROOT / "README.md").read_text() == readme_text(ROOT / "nbs" / "index.ipynb"), (
        "README.md is generated from nbs/index.ipynb: edit the notebook, then run `make docs`"
    )


def test_directives_are_honoured_and_never_shown(tmp_path):
    cells = [
        nbformat.v4.new_code_cell("#| default_exp demo"),
        nbformat.v4.new_code_cell("#| hide\nsecret = 1"),
        nbformat.v4.new_code_cell("#| export\ndef visible(x: int) -> int:\n    'Doubles x.'\n    return 2 * x"),
        nbformat.v4.new_code_cell(
            "#| echo: false\nshown_output_only = 1",
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="an output\n")],
        ),
    ]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    module = type("module", (), {"visible": staticmethod(lambda x: 2 * x)})
    module.visible.__doc__ = "Doubles x."
    page = notebook_markdown(path, tmp_path / "demo.md", module)
    assert "#|" not in page and "default_exp" not in page and "secret" not in page
    assert "def visible(x: int) -> int:" in page and "#### `visible`" in page and "Doubles x." in page
    assert "an output" in page and "shown_output_only" not in page


def _text(page: Path) -> str:
    "A page's text without tags (highlighted code is split into spans)."
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


@pytest.fixture(scope="session")
def site(pipeline) -> Path:
    "`make docs`'s builder run in the reproduced copy; the copy's git status is left as found."
    started = time.perf_counter()
    run([str(BIN / "python"), "tools/build_docs.py"], pipeline)
    print(f"docs build: {time.perf_counter() - started:.1f} s")
    assert run(["git", "status", "--porcelain"], pipeline).stdout == ""
    return pipeline / "_docs"


def test_site_has_every_page(site):
    pages = {str(p.relative_to(site)) for p in site.rglob("*.html")}
    modules = ("config", "data", "features", "models", "nn", "tune", "evaluate", "track", "serve", "monitor", "cli")
    api = {f"api/{m}.html" for m in modules}
    reports = {
        f"reports/{s}.html" for s in ("prepare", "featurize", "tune", "train", "evaluate", "monitor", "model_card")
    }
    guides = {"guides/byod.html", "guides/cluster.html", "guides/reasons.html", "guides/segments.html"}
    assert {"index.html", "pipeline.html", "experiments.html"} | api | reports | guides <= pages
    assert "def infer_contract(" in _text(site / "api" / "roles.html")
    evaluate = (site / "reports" / "evaluate.html").read_text()
    assert "roc_auc" in evaluate and re.search(r'<img[^>]+src="evaluate_files/output_\d+\.png"', evaluate)
    assert "prepare" in (site / "pipeline.html").read_text()
    experiments = (site / "experiments.html").read_text()
    assert "workspace" in experiments  # the DVC table
    assert re.search(r'<img[^>]+src="experiments_files/[0-9a-f]{32}/roc\.png"', experiments)  # runs side by side
    stage_runs = _text(site / "experiments.html").split("MLflow stage runs")[-1]
    assert "evaluate" in stage_runs and not re.search(r"\bnan\b", stage_runs)  # stage runs only, no trials
    assert "Bring your own dataset" in (site / "guides" / "byod.html").read_text()
    assert "ROC-AUC [95% CI]" in (site / "reports" / "model_card.html").read_text()  # slices with intervals
    reasons = _text(site / "guides" / "reasons.html")
    assert "the model's log-odds" in reasons and "base value" in reasons  # the raw-column sum, generated


class _Assets(HTMLParser):
    "Every src/href of a page, except plain links (<a href>), which may point anywhere."

    def __init__(self):
        super().__init__()
        self.urls, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if value and (name == "src" or (name == "href" and tag != "a")):
                self.urls.append((tag, value))
            if name == "style" and value:
                self.styles.append(value)

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _external_css(text: str) -> list[str]:
    urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", text) + re.findall(r"@import\s+(?:url\()?['\"]?([^'\");\s]+)", text)
    return [u for u in urls if EXTERNAL.match(u)]


def test_no_external_assets_and_no_directive_text(site):
    problems = []
    for page in site.rglob("*.html"):
        parser = _Assets()
        text = page.read_text()
        parser.feed(text)
        problems += [f"{page.name}: <{tag}> {url}" for tag, url in parser.urls if EXTERNAL.match(url)]
        problems += [f"{page.name}: style {u}" for s in parser.styles for u in _external_css(s)]
        if "#|" in text:
            problems.append(f"{page.name}: nbdev directive text")
    for css in site.rglob("*.css"):
        problems += [f"{css.name}: {u}" for u in _external_css(css.read_text())]
    assert "#|" not in (site / "search" / "search_index.json").read_text()
    assert not problems, problems


@pytest.fixture(scope="session")
def server(site):
    "The site over HTTP on loopback (what `python -m http.server -d _docs` does)."

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def _offline_browser(playwright, allowed: str, outside: list):
    "Chromium with the network off: a request whose URL does not start with `allowed` is recorded and refused."
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(allowed)
            else (outside.append(route.request.url), route.abort())
        ),
    )
    return browser, context


def test_every_page_loads_offline_without_console_errors_or_broken_links(site, server):
    if CHROMIUM is None:
        pytest.skip("Chromium is missing: run `make test-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    problems, outside, links = [], [], set()
    with sync_playwright() as p:
        browser, context = _offline_browser(p, server, outside)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(f"{page.url}: console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"{page.url}: page error: {e}"))
        for path in sorted(site.rglob("*.html")):
            url = urljoin(server, str(path.relative_to(site)))
            response = page.goto(url, wait_until="load")
            if response is None or response.status != 200:
                problems.append(f"{url}: status {response and response.status}")
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                if href.startswith(server):
                    links.add(href.split("#")[0])
        for name, url in (("home.png", server + "index.html"), ("evaluate.png", server + "reports/evaluate.html")):
            page.goto(url, wait_until="load")
            page.screenshot(path=str(OUTPUT / name), full_page=True)
        page.goto(server + "index.html")
        page.keyboard.press("/")  # opens search; the index is local
        page.fill("input.md-search__input", "contract")
        page.wait_for_selector(".md-search-result__item", timeout=30_000)  # the page builds the index: slow under load
        browser.close()
    broken = [u for u in links if not (site / urlparse(u).path.lstrip("/")).exists()]
    assert not problems and not broken and not outside, {"problems": problems, "broken": broken, "outside": outside}
    print(f"screenshots: {OUTPUT / 'home.png'}, {OUTPUT / 'evaluate.png'}")


def test_search_works_when_the_site_is_opened_from_disk(site):
    "The README says to open _docs/index.html: over file:// the search finds pages too."
    if CHROMIUM is None:
        pytest.skip("Chromium is missing: run `make test-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    outside = []
    with sync_playwright() as p:
        browser, context = _offline_browser(p, "file://", outside)
        page = context.new_page()
        page.goto((site / "index.html").as_uri(), wait_until="load")
        page.keyboard.press("/")
        page.fill("input.md-search__input", "contract")
        page.wait_for_selector(".md-search-result__item", timeout=30_000)  # the page builds the index: slow under load
        hits = page.eval_on_selector_all(".md-search-result__item a", "els => els.map(e => e.href)")
        assert "matching documents" in page.inner_text(".md-search-result__meta")
        page.click(".md-search-result__item a")
        page.wait_for_load_state("load")
        landed = page.url
        browser.close()
    assert hits and all(h.startswith("file://") for h in hits), hits
    assert (site / urlparse(landed).path.split(str(site))[-1].lstrip("/")).exists(), landed
    assert not outside, outside
