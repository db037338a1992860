"""Build the docs site (`make docs`, after `make repro`): README.md from nbs/index.ipynb, then _docs/.

Pages: the home page (nbs/index.ipynb, the same text as README.md), the guides (nbs/guides/), the
library notebooks as API pages (nbdev directives honoured; every exported public name gets its
signature and docstring), the executed stage notebooks in reports/ as report pages (outputs kept,
images written as files), the model card, the pipeline graph (`dvc dag`) and the experiments
(`dvc exp show --only-changed`, the latest evaluate runs side by side
with their plots, MLflow stage runs). MkDocs-Material renders them with no CDN and no web fonts.
Run from the project root.
"""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tables  # noqa: E402

ROOT = Path.cwd()
BIN = Path(sys.executable).parent
BUILD = ROOT / ".docs_build"
SITE = ROOT / "_docs"
README_NOTE = "<!-- Generated from nbs/index.ipynb by `make docs`: edit the notebook, not this file. -->\n"

# Navigation by lifecycle verb: (section, library modules, stage reports). Anything not listed
# still gets a page, under "More".
LIFECYCLE = [
    ("Data", ["data"], ["prepare"]),
    ("Features", ["features"], ["featurize"]),
    ("Tune", ["tune"], ["tune"]),
    ("Models", ["models", "nn"], ["train"]),
    ("Evaluate", ["evaluate"], ["evaluate"]),
    ("Track", ["track"], []),
    ("Serve", ["serve"], []),
    ("Monitor", ["monitor"], ["monitor"]),
    ("CLI and config", ["cli", "config"], []),
]
DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def readme_text(index: Path) -> str:
    "README.md as rendered from the index notebook: its Markdown cells, one blank line apart."
    cells = nbformat.read(index, as_version=4).cells
    return README_NOTE + "\n" + "\n\n".join(c.source.strip("\n") for c in cells if c.cell_type == "markdown") + "\n"


def directives(source: str) -> tuple[dict[str, str], str]:
    "nbdev directives (`#| name: value`) of a cell, and its source without them."
    found, kept = {}, []
    for line in source.splitlines():
        match = DIRECTIVE.match(line)
        if match:
            found[match.group(1)] = match.group(2).lower()
        else:
            kept.append(line)
    return found, "\n".join(kept).strip("\n")


def fenced(text: str, language: str = "") -> str:
    "A fenced code block whose fence is longer than any backtick run inside."
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def api_entry(name: str, obj) -> str:
    "Signature and docstring of one public function or class (and a class's public methods)."
    kind = "class" if inspect.isclass(obj) else "def"
    try:
        signature = str(inspect.signature(obj))
    except (TypeError, ValueError):
        signature = "(...)"
    parts = [f"#### `{name}`", fenced(f"{kind} {name}{signature}", "python")]
    if doc := inspect.getdoc(obj):
        parts.append(doc)
    if inspect.isclass(obj):
        methods = [(a, m) for a, m in vars(obj).items() if not a.startswith("_") and inspect.isfunction(m)]
        for attr, method in methods:
            summary = (inspect.getdoc(method) or "").partition("\n")[0]
            parts.append(f"- `{attr}{inspect.signature(method)}`: {summary}")
    return "\n\n".join(parts)


def exported_names(source: str) -> list[str]:
    "Public top-level functions and classes a cell defines."
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [n.name for n in tree.body if isinstance(n, kinds) and not n.name.startswith("_")]


def render_output(output, assets: Path, stem: str, images: Iterator[int]) -> str:
    "One cell output as Markdown: images as files (numbered by `images`), HTML as is, text as a code block."
    if output.output_type == "stream":
        lines = [ANSI.sub("", line).split("\r")[-1] for line in output.text.splitlines()]
        return fenced("\n".join(lines), "text") if any(lines) else ""
    if output.output_type == "error":
        return fenced(ANSI.sub("", "\n".join(output.traceback)), "text")
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:  # progress bars: nothing to show statically
        return ""
    for mime, suffix in (("image/png", "png"), ("image/svg+xml", "svg")):
        if mime in data:
            assets.mkdir(parents=True, exist_ok=True)
            name = f"output_{next(images)}.{suffix}"
            content = data[mime]
            if suffix == "png":
                (assets / name).write_bytes(base64.b64decode(content))
            else:
                (assets / name).write_text(content)
            return f"![output]({stem}_files/{name})"
    if "text/html" in data:
        return f'<div class="nb-output">\n{data["text/html"].strip()}\n</div>'
    if "text/markdown" in data:
        return data["text/markdown"]
    if "text/plain" in data:
        return fenced(ANSI.sub("", data["text/plain"]), "text")
    return ""


def notebook_markdown(path: Path, page: Path, module=None) -> str:
    """A notebook as Markdown. Cells marked `#| hide` or `#| default_exp` are dropped, `#| echo: false`
    shows only outputs, `#| output: false` only code; no directive text is kept. With `module`, each
    exported cell is followed by the signature and docstring of the public names it defines."""
    assets, parts, images = page.parent / f"{page.stem}_files", [], itertools.count(1)
    for cell in nbformat.read(path, as_version=4).cells:
        found, source = directives(cell.source)
        if cell.cell_type == "markdown":
            parts.append(source)
            continue
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or "hide" in found or "default_exp" in found or "parameters" in tags:
            continue
        if source and found.get("echo") != "false":
            parts.append(fenced(source, "python"))
        if module is not None and {"export", "exports"} & found.keys():
            parts += [api_entry(n, getattr(module, n)) for n in exported_names(source) if hasattr(module, n)]
        if found.get("output") != "false":
            parts += [render_output(o, assets, page.stem, images) for o in cell.get("outputs", [])]
    return "\n\n".join(p for p in parts if p.strip()) + "\n"


def library_notebooks() -> dict[str, Path]:
    "Module name -> library notebook, from each notebook's `#| default_exp`."
    found = {}
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if (name := directives(cell.source)[0].get("default_exp")) is not None:
                found[name] = path
                break
    return found


def command_output(*args: str) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else f"({' '.join(args)} failed: {result.stderr.strip()[-300:]})"


SIDE_BY_SIDE_RUNS = 4  # the latest evaluate runs compared column by column on the experiments page
SIDE_BY_SIDE_METRICS = ["roc_auc", "roc_auc_ci95_low", "roc_auc_ci95_high", "pr_auc", "f1", "brier", "threshold"]
SIDE_BY_SIDE_PLOTS = ["roc", "precision_recall", "calibration"]


def dvc_experiments_markdown() -> str:
    "`dvc exp show --only-changed` as the README documents it, without dependency hashes; else the headline metrics."
    table = command_output(
        str(BIN / "dvc"), "exp", "show", "--md", "--no-pager", "--only-changed", "--drop", r"artifacts/.*"
    )
    header = table.splitlines()[0] if table.strip() else ""
    if header.count("|") > 3:  # more than Experiment and Created: something differs
        return f"`dvc exp show --only-changed` (the params and metrics that differ between rows):\n\n{table}"
    metrics = command_output(str(BIN / "dvc"), "metrics", "show", "--md")
    return (
        "No experiment differs from the workspace yet (`dvc exp run -S train.model=logreg` adds one; "
        "`dvc exp show --only-changed` then lists what differs).\n\n"
        f"`dvc exp show`:\n\n{table}\n\nThe headline metrics (`dvc metrics show`):\n\n{metrics}"
    )


def stage_runs():
    "MLflow runs of pipeline stages (the tuning trials nested under them left out), newest first."
    import mlflow

    from churnlab import config

    mlflow.set_tracking_uri(config.tracking_uri(ROOT))
    runs = mlflow.search_runs(experiment_names=[config.EXPERIMENT_NAME], max_results=2000)
    if not len(runs) or "tags.dvc_stage" not in runs:
        return runs.iloc[0:0]
    nested = runs["tags.mlflow.parentRunId"].notna() if "tags.mlflow.parentRunId" in runs else False
    return runs[runs["tags.dvc_stage"].notna() & ~nested].sort_values("start_time", ascending=False)


def side_by_side_markdown(evaluations, assets: Path) -> str:
    "The latest evaluate runs as columns: lineage, headline metrics with the ROC-AUC interval, and their plots."
    import mlflow

    picked = evaluations.head(SIDE_BY_SIDE_RUNS)

    def tag(run, key: str, width: int = 40) -> str:
        value = run.get(f"tags.{key}")
        return str(value)[:width] if isinstance(value, str) else ""

    names = [f"{tag(r, 'dvc_exp_name') or 'workspace'} `{r.run_id[:8]}`" for _, r in picked.iterrows()]
    rows = [
        ["started"] + [str(r.start_time)[:16] for _, r in picked.iterrows()],
        ["git commit"] + [tag(r, "git_commit", 8) for _, r in picked.iterrows()],
        ["data md5"] + [tag(r, "data_md5", 8) for _, r in picked.iterrows()],
        ["model"] + [tag(r, "model") for _, r in picked.iterrows()],
    ]
    for metric in SIDE_BY_SIDE_METRICS:
        column = f"metrics.{metric}"
        rows.append(
            [metric]
            + [f"{r[column]:.4f}" if column in r and r[column] == r[column] else "" for _, r in picked.iterrows()]
        )
    for plot in SIDE_BY_SIDE_PLOTS:
        cells = [plot]
        for _, run in picked.iterrows():
            target = assets / run.run_id
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run.run_id, artifact_path=f"plots/{plot}.png", dst_path=str(target)
                )
                cells.append(f"![{plot}]({assets.name}/{run.run_id}/{Path(local).relative_to(target).as_posix()})")
            except Exception:  # a run from before the plots were logged, or a store without artifacts
                cells.append("")
        rows.append(cells)
    table = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(table)


def experiments_markdown(page: Path) -> str:
    "DVC experiments (what differs), the latest evaluate runs side by side with their plots, the MLflow stage runs."
    from churnlab import config

    runs = stage_runs()
    evaluations = runs[runs["tags.dvc_stage"] == "evaluate"] if len(runs) else runs
    if len(evaluations):
        side_by_side = (
            f"The latest {min(len(evaluations), SIDE_BY_SIDE_RUNS)} evaluate runs, newest first; one column each "
            "(the plots are each run's own MLflow artifacts):\n\n"
            + side_by_side_markdown(evaluations, page.parent / f"{page.stem}_files")
        )
    else:
        side_by_side = "(no evaluate runs yet: run `make repro`)"
    wanted = [
        "start_time",
        "tags.dvc_stage",
        "tags.dvc_exp_name",
        "tags.git_commit",
        "tags.data_md5",
        "metrics.roc_auc",
        "run_id",
    ]
    shown = runs.head(30)[[c for c in wanted if c in runs.columns]].astype(object).fillna("") if len(runs) else runs
    mlflow_table = shown.to_markdown(index=False) if len(shown) else "(no runs yet: run `make repro`)"
    return (
        f"# Experiments\n\n## DVC experiments\n\n{dvc_experiments_markdown()}\n\n"
        f"## Runs side by side\n\n{side_by_side}\n\n"
        f"## MLflow stage runs\n\nThe latest 30 stage runs of the `{config.EXPERIMENT_NAME}` experiment, tuning "
        "trials left out (`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows them all, with each run's "
        f"input datasets):\n\n{mlflow_table}\n"
    )


def write_pages(docs: Path, home: str) -> list:
    "Every page under `docs` (`home` is the index page's Markdown); returns the MkDocs navigation."
    sys.path.insert(0, str(ROOT / "src"))  # this checkout's library, whatever is installed
    (docs / "index.md").write_text(home)
    nav: list = [{"Home": "index.md"}]
    guides = []
    for path in sorted((ROOT / "nbs" / "guides").glob("*.ipynb")):
        page = docs / "guides" / f"{path.stem}.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(notebook_markdown(path, page))
        title = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0].lstrip("# ")
        guides.append({title: f"guides/{path.stem}.md"})
    nav.append({"Guides": guides})
    (docs / "pipeline.md").write_text(
        "# Pipeline\n\n`dvc dag`: each box is a stage of `dvc.yaml`; `dvc repro` runs what is stale.\n\n"
        + fenced(command_output(str(BIN / "dvc"), "dag"), "text")
        + "\n"
    )
    (docs / "experiments.md").write_text(experiments_markdown(docs / "experiments.md"))
    nav.append({"Pipeline": [{"Pipeline graph": "pipeline.md"}, {"Experiments": "experiments.md"}]})
    notebooks, reports = library_notebooks(), {p.stem: p for p in sorted((ROOT / "reports").glob("*.ipynb"))}
    more = (
        "More",
        sorted(set(notebooks) - {m for _, ms, _ in LIFECYCLE for m in ms}),
        sorted(set(reports) - {r for _, _, rs in LIFECYCLE for r in rs}),
    )
    for section, modules, stages in [*LIFECYCLE, more]:
        entries = []
        for name in modules:
            if name in notebooks:
                page = docs / "api" / f"{name}.md"
                page.parent.mkdir(parents=True, exist_ok=True)
                module = importlib.import_module(f"churnlab.{name}")
                page.write_text(notebook_markdown(notebooks[name], page, module))
                entries.append({f"churnlab.{name}": f"api/{name}.md"})
        for stage in stages:
            if stage in reports:
                page = docs / "reports" / f"{stage}.md"
                page.parent.mkdir(parents=True, exist_ok=True)
                page.write_text(notebook_markdown(reports[stage], page))
                entries.append({f"Report: {stage}": f"reports/{stage}.md"})
        if section == "Evaluate" and (ROOT / "reports" / "model_card.md").exists():
            shutil.copy(ROOT / "reports" / "model_card.md", docs / "reports" / "model_card.md")
            entries.append({"Model card": "reports/model_card.md"})
        if entries:
            nav.append({section: entries})
    return nav


def mkdocs_config(nav: list) -> dict:
    return {
        "site_name": "Churnlab",
        "site_description": "Notebook-first, reproducible ML production system for tabular classification",
        "docs_dir": "docs",
        "site_dir": str(SITE),
        "use_directory_urls": False,
        "theme": {
            "name": "material",
            "font": False,  # no web fonts: the site must work with the network off
            "features": ["navigation.sections", "navigation.top", "search.highlight", "content.code.copy"],
            "palette": {"primary": "indigo"},
        },
        "plugins": ["search"],  # not "offline": it loads a script from a CDN
        "markdown_extensions": [
            "tables",
            "admonition",
            "attr_list",
            "md_in_html",
            {"toc": {"permalink": True}},
            "pymdownx.highlight",
            "pymdownx.superfences",
        ],
        "extra_css": ["notebook.css"],
        "extra_javascript": ["offline_search.js"],
        "nav": nav,
    }


# Material's search runs in a web worker; a browser refuses a worker to a page opened from disk
# (file://), and Material then hides the search box. There this script takes over: it shows the box,
# opens it on "/" as Material does, loads the same index as a plain <script> (search/search_index.js,
# written after the build, the file Material itself reads under file://) and ranks pages by how
# often the query's words occur in their title and text. Over http it does nothing.
OFFLINE_SEARCH_JS = """(function () {
  if (location.protocol !== "file:") return;
  var here = document.currentScript.src, base = here.slice(0, here.lastIndexOf("/") + 1);
  var index = null, pending = null;
  function words(text) { return text.toLowerCase().split(/[^a-z0-9_]+/).filter(Boolean); }
  function escape(text) {
    return text.replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; });
  }
  function plain(html) { var d = document.createElement("div"); d.innerHTML = html; return d.textContent || ""; }
  function rank(query) {
    var terms = words(query), hits = [];
    if (!terms.length) return hits;
    index.docs.forEach(function (doc) {
      var title = doc.title.toLowerCase(), text = plain(doc.text).toLowerCase(), score = 0;
      terms.forEach(function (t) { score += 10 * title.split(t).length - 10 + text.split(t).length - 1; });
      if (score > 0) hits.push({doc: doc, score: score, text: text});
    });
    return hits.sort(function (a, b) { return b.score - a.score; }).slice(0, 20);
  }
  function render(query) {
    var list = document.querySelector(".md-search-result__list");
    var meta = document.querySelector(".md-search-result__meta");
    if (!list) return;
    if (!index) { pending = query; return; }
    var hits = rank(query), term = words(query)[0] || "";
    if (meta) meta.textContent = hits.length ? hits.length + " matching documents" : "No matching documents";
    list.innerHTML = hits.map(function (h) {
      var at = Math.max(0, h.text.indexOf(term) - 60), snippet = plain(h.doc.text).slice(at, at + 200);
      return '<li class="md-search-result__item"><a href="' + base + h.doc.location +
        '" class="md-search-result__link"><article class="md-search-result__article md-typeset">' +
        '<h1>' + escape(plain(h.doc.title)) + '</h1><p>' + escape(snippet) + '</p></article></a></li>';
    }).join("");
  }
  var script = document.createElement("script");
  script.src = base + "search/search_index.js";
  script.onload = function () { index = window.__index; if (pending !== null) render(pending); };
  document.head.appendChild(script);
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.querySelector(".md-search");
    if (box) box.hidden = false;
  });
  window.addEventListener("load", function () {  // Material hides the box once its worker fails
    var box = document.querySelector(".md-search");
    if (box) box.hidden = false;
  });
  document.addEventListener("keydown", function (event) {
    var toggle = document.getElementById("__search"), input = document.querySelector("input.md-search__input");
    if (!toggle || !input) return;
    if (event.key === "/" && document.activeElement !== input) {
      event.preventDefault();
      toggle.checked = true;
      document.querySelector(".md-search").hidden = false;
      input.focus();
    } else if (event.key === "Escape" && toggle.checked) {
      toggle.checked = false;
      input.blur();
    }
  });
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("input.md-search__input")) render(event.target.value);
  }, true);
})();
"""

NOTEBOOK_CSS = """.nb-output { overflow-x: auto; margin: 0 0 1em; }
.nb-output table { font-size: 0.7rem; }
.md-typeset img[alt="output"] { max-width: 100%; }
"""


def main() -> None:
    started = time.perf_counter()
    for path in bench_tables.write():  # the benchmark tables from bench/results first: README.md shows them
        print(f"rewrote the generated tables of {path.relative_to(ROOT)}")
    readme = readme_text(ROOT / "nbs" / "index.ipynb")
    (ROOT / "README.md").write_text(readme)
    shutil.rmtree(BUILD, ignore_errors=True)
    docs = BUILD / "docs"
    docs.mkdir(parents=True)
    nav = write_pages(docs, readme.removeprefix(README_NOTE))
    (docs / "notebook.css").write_text(NOTEBOOK_CSS)
    (docs / "offline_search.js").write_text(OFFLINE_SEARCH_JS)
    staging = SITE.with_name(SITE.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    config = mkdocs_config(nav) | {"site_dir": str(staging)}
    (BUILD / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    build = [str(BIN / "mkdocs"), "build", "--strict", "--quiet", "-f", str(BUILD / "mkdocs.yml")]
    subprocess.run(build, check=True, env=env)
    index = (staging / "search" / "search_index.json").read_text()
    (staging / "search" / "search_index.js").write_text(f"var __index = {index};\n")
    shutil.rmtree(SITE, ignore_errors=True)
    staging.rename(SITE)  # the old site stays whole until the new one is complete
    pages = len(list(SITE.rglob("*.html")))
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"site": str(SITE / "index.html"), "pages": pages, "seconds": seconds}))


if __name__ == "__main__":
    main()
