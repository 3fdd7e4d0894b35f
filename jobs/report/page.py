"""The report page: templates/report/report.html.jinja rendered in Jinja's sandbox, and its folder.

The page is one self-contained file: the PNG plots are embedded as data URIs
(and also written beside it, with `summary.json`, for reuse), and so is the
subset of the Chinese font holding exactly the page's Chinese characters
(jobs/report/fonts.py), so Chinese shows as glyphs without a system font. The report
folder is a stage output like any other (jobs/workdir.py): held by a lock while
it is written, refused when it holds files a report did not write (unless
`overwrite`), `index.html` written atomically and last, and a previous
report's plots that have no data this time removed, so the folder shows
exactly this report.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from importlib import resources

from markupsafe import Markup

from jobs.report.fonts import PAGE_FONT_FAMILY, font_face_css
from jobs.report.plots import PLOT_NAMES
from jobs.workdir import StageOutput, fingerprint
from transforms.stats import STATS_FILE, stats_document

INDEX_FILE = "index.html"
SUMMARY_FILE = "summary.json"
TEMPLATE = ("report", "report.html.jinja")  # inside the `templates` package


def page_environment():
    """The Jinja environment the page renders in: the project's one sandbox (transforms/sandbox.py),
    autoescaped (every text from the data is escaped) and strict about undefined names.

    No render limits: the template is ours, not a user's, and renders a large page from real data.
    """
    from transforms.sandbox import sandboxed_environment

    return sandboxed_environment(limits=None, autoescape=True)


def render_html(summary: Mapping, images: Mapping[str, bytes]) -> str:
    """The report page: `summary` in tables, `images` ({plot name: PNG bytes}) embedded as data URIs.

    Rendered twice: once to learn which characters the page shows, then with
    an @font-face carrying the Chinese glyphs of exactly those characters.
    """
    source = resources.files("templates").joinpath(*TEMPLATE).read_text(encoding="utf-8")
    uris = dict.fromkeys(PLOT_NAMES, "")  # a plot without data is left out of the page
    uris.update({name: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                 for name, png in images.items()})
    template = page_environment().from_string(source)
    draft = template.render(s=summary, images=uris, font_css="", font_family=PAGE_FONT_FAMILY)
    # Our own CSS: a base64 font and code points, nothing from the data as text.
    css = Markup(font_face_css([draft]))
    return template.render(s=summary, images=uris, font_css=css, font_family=PAGE_FONT_FAMILY)


def write_report(out_dir: str, summary: Mapping, images: Mapping[str, bytes],
                 storage_options: Mapping | None = None, overwrite: bool = False) -> str:
    """Write the plots, `summary.json` and `index.html` (last) into `out_dir`; returns index.html's URL."""
    started = time.time()
    out = StageOutput("report", out_dir, dict(storage_options or {}))
    with out.lock():
        older = older_report_files(out)
        out.claim(overwrite=overwrite, own=older)
        previous = out.previous_outputs() or older
        written = []
        for name, png in images.items():
            out.write_bytes(f"{name}.png", png)
            written.append(f"{name}.png")
        out.write_bytes(SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=True).encode())
        out.write_bytes(INDEX_FILE, render_html(summary, images).encode("utf-8"))
        written += [SUMMARY_FILE, INDEX_FILE]
        out.write_json(STATS_FILE, stats_document(
            "report", {}, run_id=out.run_id, fingerprint=fingerprint("report", {"run_dir": summary.get("run_dir")}),
            elapsed_seconds=time.time() - started, outputs=written, details={"plots": sorted(images)}))
        out.remove_stale(written, previous)
    return out.url_of(INDEX_FILE)


def older_report_files(out: StageOutput) -> list[str]:
    """The page, summary and plots of a report written before reports had a `_stats.json`
    (its `summary.json` has the summary's keys): replaced like this version's own files, so
    re-running an upgraded `make demo` needs no --overwrite."""
    if out.exists(STATS_FILE):
        return []
    summary = out.read_json(SUMMARY_FILE)
    if not isinstance(summary, dict) or not {"run_dir", "stages"} <= summary.keys():
        return []
    names = {INDEX_FILE, SUMMARY_FILE, *(f"{name}.png" for name in PLOT_NAMES)}
    return [p for p in out.listing() if p in names]
