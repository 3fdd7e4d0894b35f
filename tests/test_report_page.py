"""What the report tells a reader: the inputs by path, synthesis in several sections, cautions beside
charts resting on few documents, sample pairs with their provenance, and Chinese drawn as glyphs in
the plots and in the page (headless Chromium), on small runs made by hand."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from jobs.report import draw_plots, load_run, run_report, stage_folders
from jobs.report.fonts import PAGE_FONT_FAMILY, cjk_font_path
from jobs.report.numbers import FEW_DOCUMENTS, cautions
from tests.test_report import MANIFEST, MINE_COUNTERS, MIX_COUNTERS, _parquet, _pipeline, _stats, _write_stage

# Two characters of very different ink: a single stroke and a dense one. Tofu boxes
# (or blanks) look alike for both; real glyphs do not.
LIGHT, DENSE = "一", "罐"
NO_GLYPH = "\ue000"  # private use: in no font the page names
ZH_INSTRUCTION = f"{LIGHT}{DENSE}米饭怎么煮？"
ZH_SOURCE = "语料/问答.json"


def _mine_files(**details) -> dict[str, bytes]:
    rows = [{"id": "a1", "instruction": "How do I reset a <b>router</b>?", "input": "", "output": "Hold it.",
             "lang": "en", "miner": "markup", "kind": "faq", "source_url": "javascript:alert(1)",
             "source_file": "web-00000.warc.gz", "source_record": "<urn:uuid:1>"},
            {"id": "b2", "instruction": "What is a tide?", "input": "", "output": "The rise of the sea.",
             "lang": "en", "miner": "faq_sections", "kind": "faq", "source_url": "https://a.example/1",
             "source_file": "web-00000.warc.gz", "source_record": "<urn:uuid:2>"},
            {"id": "c3", "instruction": ZH_INSTRUCTION, "input": "", "output": "先洗米。", "lang": "zh",
             "miner": "howto", "kind": "howto", "source_url": "https://b.example/2",
             "source_file": "web-00001.jsonl.zst", "source_record": "line 7"}]
    return {"part-00000.parquet": _parquet(rows),
            "_stats.json": _stats("mine", MINE_COUNTERS, ["part-00000.parquet"],
                                  **(details or {"inputs": ["samples/web-00000.warc.gz", "samples/*.jsonl.zst"]}))}


def _synth_section(mode: str, task_type: str, n: int, counters: dict, lang: str = "en") -> dict[str, bytes]:
    rows = [{"id": f"{mode[:2]}{i:03d}", "instruction": f"{task_type} passage {i} of {mode}", "input": "",
             "output": f"answer {i}", "lang": lang, "mode": mode, "task_type": task_type, "kind": task_type,
             "miner": mode, "source_url": f"https://docs.example/{i}", "source_file": "samples/pretrain/p.jsonl.zst",
             "source_record": f"line {i}"} for i in range(n)]
    return {"part-00000.parquet": _parquet(rows),
            "_stats.json": _stats("synth", counters, ["part-00000.parquet"], mode=mode, model="",
                                  input_files=2)}


TEMPLATE_COUNTERS = {"synth.documents.read": 10, "synth.records.written": 4, "synth.records.drop.not_novel": 3,
                     "synth.documents.skip.language": 1}
DOC_QA_COUNTERS = {"synth.documents.read": 6, "synth.records.written": 2, "synth.records.drop.not_novel": 1,
                   # reasons this version does not list anywhere: shown all the same
                   "synth.prompts.drop.prompt_too_long": 2, "synth.prompts.cut.context": 5}


def _mix_files() -> dict[str, bytes]:
    manifest = json.loads(json.dumps(MANIFEST))
    manifest["instructions"] = [{"name": "instructions0", "path": "/runs/r1/mined", "weight": 0.7, "repeats": 1,
                                 "records": 3},
                                {"name": "instructions1", "path": ZH_SOURCE, "weight": 0.3, "repeats": 2,
                                 "records": 5}]
    counters = {k.replace("mined", "instructions0").replace("alpaca.v2", "instructions1"): v
                for k, v in MIX_COUNTERS.items()}
    return {"manifest.json": json.dumps(manifest).encode(),
            "_stats.json": _stats("mix", counters, ["manifest.json"])}


@pytest.fixture
def sectioned_run(tmp_path) -> Path:
    """A run whose synthesis ran as two sections (`synth/template_only`, `synth/doc_qa`)."""
    run = tmp_path / "run"
    _write_stage(str(run / "mined"), _mine_files())
    _write_stage(str(run / "synth" / "template_only"), _synth_section("template_only", "summarize", 4,
                                                                      TEMPLATE_COUNTERS))
    _write_stage(str(run / "synth" / "doc_qa"), _synth_section("doc_qa", "qa", 2, DOC_QA_COUNTERS, lang="zh"))
    _write_stage(str(run / "mixed"), _mix_files())
    _write_stage(str(run), {"_pipeline.json": _pipeline({
        "mine": str(run / "mined"), "synth/template_only": str(run / "synth" / "template_only"),
        "synth/doc_qa": str(run / "synth" / "doc_qa"), "mix": str(run / "mixed")})})
    return run


# --------------------------------------------------------------------------- synthesis in sections


def test_synthesis_in_several_sections_is_read_section_by_section_and_summed(sectioned_run):
    where = stage_folders(str(sectioned_run))["synth"]
    assert [(s["name"], s["folder"]) for s in where["sections"]] == [
        ("template_only", f"{sectioned_run}/synth/template_only"), ("doc_qa", f"{sectioned_run}/synth/doc_qa")]
    synth = load_run(str(sectioned_run))["synth"]
    assert synth["present"] and synth["rows"] == 6
    assert synth["counters"]["synth.records.written"] == 6 and synth["counters"]["synth.documents.read"] == 16
    assert sorted(synth["examples"]) == ["doc_qa", "template_only"]
    assert [len(v) for v in synth["examples"].values()] == [2, 3]  # EXAMPLES_PER_GROUP at most

    summary = json.loads((Path(run_report(str(sectioned_run))).parent / "summary.json").read_text("utf-8"))
    assert summary["synth"]["mode"] == "template_only, doc_qa" and summary["synth"]["written"] == 6
    assert [(s["name"], s["written"]) for s in summary["synth"]["sections"]] == [("template_only", 4), ("doc_qa", 2)]
    assert [s["name"] for s in summary["stages"]["synth"]["sections"]] == ["template_only", "doc_qa"]
    assert summary["task_types"]["synth"] == {"doc_qa/qa": 2, "template_only/summarize": 4}
    # Per-mode figures beside the whole: lengths and novelty of each mode.
    assert {"synth", "synth/doc_qa", "synth/template_only"} <= set(summary["lengths"]["stages"])
    assert summary["novelty"]["stages"]["synth/doc_qa"]["n"] == 2
    # Each section's drops under its own name, new reasons included.
    drops = {(d["stage"], d["unit"], d["reason"]): d["count"] for d in summary["drops"]}
    assert drops[("synth/doc_qa", "prompts", "prompt_too_long")] == 2
    assert drops[("synth/doc_qa", "prompts cut", "context")] == 5
    assert drops[("synth/template_only", "pairs", "not_novel")] == 3
    assert drops[("synth/template_only", "documents", "language")] == 1


def test_a_missing_section_is_named_and_the_others_still_count(sectioned_run):
    import shutil as sh

    sh.rmtree(sectioned_run / "synth" / "doc_qa")
    synth = load_run(str(sectioned_run))["synth"]
    assert synth["present"] and synth["rows"] == 4
    assert synth["note"].startswith("doc_qa: ") and "has not run" in synth["note"]


def test_without_pipeline_json_the_sections_are_found_under_the_synth_folder(sectioned_run):
    (sectioned_run / "_pipeline.json").unlink()
    where = stage_folders(str(sectioned_run))["synth"]
    assert where["folder"] == f"{sectioned_run}/synth"
    assert [s["name"] for s in where["sections"]] == ["doc_qa", "template_only"]  # by name
    assert load_run(str(sectioned_run))["synth"]["rows"] == 6


# --------------------------------------------------------------------------- what went in


def test_the_page_names_each_input_and_each_instruction_source_by_its_path(sectioned_run):
    index = Path(run_report(str(sectioned_run)))
    summary = json.loads((index.parent / "summary.json").read_text("utf-8"))
    assert summary["inputs"]["mine"]["inputs"] == ["samples/web-00000.warc.gz", "samples/*.jsonl.zst"]
    assert [(s["label"], s["name"]) for s in summary["inputs"]["mix"]["instructions"]] == [
        ("/runs/r1/mined", "instructions0"), (ZH_SOURCE, "instructions1")]
    assert [s["label"] for s in summary["mixing"]["sources"]] == ["/runs/r1/mined", ZH_SOURCE]
    # A source's skips are named after its path too.
    assert {d["unit"] for d in summary["drops"] if d["stage"] == "mix"} >= {f"{ZH_SOURCE} records"}
    html = index.read_text("utf-8")
    what_went_in = html[html.index("<h2>What went in</h2>"):html.index("<h2>Mining")]
    for path in ("samples/web-00000.warc.gz", "samples/*.jsonl.zst", "/runs/r1/mined", ZH_SOURCE):
        assert f"<code>{path}</code>" in what_went_in
    # What the run does not record is said, not left out.
    assert "paths are not recorded in the mix manifest" in what_went_in
    assert "2 input file(s)" in what_went_in and "not recorded in its _stats.json" in what_went_in


def test_recorded_pretraining_and_synthesis_inputs_are_listed(tmp_path):
    run = tmp_path / "run"
    _write_stage(str(run / "synth"), {**_synth_section("template_only", "summarize", 1, TEMPLATE_COUNTERS),
                                      "_stats.json": _stats("synth", TEMPLATE_COUNTERS, ["part-00000.parquet"],
                                                            mode="template_only", inputs=["run/mined", "docs/"])})
    mix = _mix_files()
    manifest = json.loads(mix["manifest.json"])
    manifest["pretrain"] = {"files": 2, "docs": 9, "tokens": 950,
                            "sources": [{"name": "pretrain0", "path": "samples/pretrain/*.jsonl.zst", "files": 2}]}
    _write_stage(str(run / "mixed"), {**mix, "manifest.json": json.dumps(manifest).encode()})
    html = Path(run_report(str(run))).read_text("utf-8")
    for path in ("run/mined", "docs/", "samples/pretrain/*.jsonl.zst"):
        assert f"<code>{path}</code>" in html
    assert "not recorded" not in html


# --------------------------------------------------------------------------- few documents


def test_a_chart_resting_on_few_documents_says_so_beside_it(sectioned_run):
    html = Path(run_report(str(sectioned_run))).read_text("utf-8")
    mining = html[html.index("<h2>Mining"):html.index("<h2>Skipped")]
    assert mining.index('<div class="caution">') > mining.index('<img src="data:image/png')
    assert (f"Documents read rest on fewer than {FEW_DOCUMENTS} documents (in all: 7, en: 5, zh: 2): "
            "read them as examples, not rates.") in mining
    mixing = html[html.index("<h2>Mixing"):html.index("<h2>Sample pairs")]
    assert f"Realized source shares rest on fewer than {FEW_DOCUMENTS} documents (/runs/r1/mined: 3, {ZH_SOURCE}: 2)" \
        in mixing


def test_no_caution_when_every_figure_rests_on_enough_documents():
    many = FEW_DOCUMENTS
    summary = {
        "mining": {"documents_read": 10 * many, "languages": [{"lang": "en", "documents": many}],
                   "miners": [{"miner": "markup", "pages": many}]},
        "task_types": {"synth": {"summarize": many}, "mined": {"markup/faq": many}},
        "lengths": {"stages": {"mine": {"by_language": {"en": {"n": many}}}}},
        "novelty": {"stages": {"mine": {"n": many}}},
        "mixing": {"shards": [{"name": "p0", "instruction_docs": many}],
                   "sources": [{"label": "a", "documents_used": many}]},
    }
    assert cautions(summary) == {}
    summary["novelty"]["stages"]["mine"]["n"] = many - 1
    assert cautions(summary) == {"novelty": [
        (f"Novelty histograms rest on fewer than {many} instructions (mine: {many - 1}): "
        "read them as examples, not rates.")]}


# --------------------------------------------------------------------------- sample pairs


def test_sample_pairs_per_kind_and_mode_show_provenance_escaped(sectioned_run):
    summary_html = Path(run_report(str(sectioned_run))).read_text("utf-8")
    samples = summary_html[summary_html.index("<h2>Sample pairs</h2>"):]
    for heading in ("mined, kind faq", "mined, kind howto", "synthesized, mode doc_qa",
                    "synthesized, mode template_only"):
        assert heading in samples
    assert "How do I reset a &lt;b&gt;router&lt;/b&gt;?" in samples and "<b>router</b>" not in samples
    assert "&lt;urn:uuid:1&gt;" in samples and "file <code>web-00001.jsonl.zst</code>" in samples
    assert '<a href="https://b.example/2"' in samples
    assert "javascript:alert(1)" in samples and 'href="javascript:' not in samples  # shown, never linked
    assert f'<td class="text" lang="zh">{ZH_INSTRUCTION}</td>' in samples


# --------------------------------------------------------------------------- Chinese


def test_plots_draw_chinese_labels_with_the_cjk_font():
    if cjk_font_path() is None:
        pytest.skip("pylopdf-fonts-zh-cn is not installed")
    from jobs.report.plots import _label

    assert _label("中文问答") == "中文问答" and _label("x" * 50).startswith("…")
    summary = {"mining": {"languages": [{"lang": "中文", "documents": 3, "pages_with_pairs": 1}],
                          "miners": [{"miner": "问答", "pages": 1, "pairs": 1, "by_language": {"中文": 1}}],
                          "language_codes": ["中文"]},
               "drops": [{"stage": "mix", "unit": f"{ZH_SOURCE} records", "reason": "缺少字段", "count": 2}]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = draw_plots(summary)
    assert set(images) == {"mining", "drops"}
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, missing


def test_the_page_embeds_only_the_chinese_glyphs_it_shows(sectioned_run):
    if cjk_font_path() is None:
        pytest.skip("pylopdf-fonts-zh-cn is not installed")
    from fontTools.ttLib import TTFont

    index = Path(run_report(str(sectioned_run)))
    html = index.read_text("utf-8")
    face = re.search(r'@font-face \{ font-family: "([^"]+)";.*?base64,([A-Za-z0-9+/=]+)\).*?unicode-range: ([^;]+);',
                     html)
    assert face and face.group(1) == PAGE_FONT_FAMILY
    assert f'font-family: "{PAGE_FONT_FAMILY}", "DejaVu Sans"' in html
    font = TTFont(io.BytesIO(base64.b64decode(face.group(2))))
    covered = {chr(c) for c in font.getBestCmap()}
    page_text = html.replace(face.group(0), "")
    assert set(ZH_INSTRUCTION + ZH_SOURCE) - set("/.json") <= covered
    assert covered <= {c for c in page_text if not c.isascii()}  # nothing the page does not show
    assert {f"U+{ord(c):X}" for c in covered} == set(face.group(3).split(","))
    assert sum(p.stat().st_size for p in index.parent.iterdir()) < 2_000_000


def _screenshot(chromium: str, page: Path, shot: Path, profile: Path, size: str) -> None:
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", f"--user-data-dir={profile}",
                           "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000",
                           f"--window-size={size}", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]


def _cells(chromium: str, html: str, tmp_path: Path, name: str) -> list[list]:
    """The screenshot's two rows (body text, `<code>`) of three 200x200 cells (LIGHT, DENSE, NO_GLYPH)."""
    from matplotlib.image import imread

    page, shot = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
    page.write_text(html, encoding="utf-8")
    _screenshot(chromium, page, shot, tmp_path / "profile", "600,400")
    gray = imread(str(shot))[..., :3].mean(axis=-1)
    return [[gray[y + 10:y + 190, x + 10:x + 190] for x in (0, 200, 400)] for y in (0, 200)]


def _drawn_as_glyphs(cells: list) -> bool:
    """LIGHT has some ink, DENSE much more, and both differ from the missing-glyph cell."""
    light, dense, missing = cells
    ink = [float((c < 0.5).mean()) for c in (light, dense)]

    def differs(a, b) -> bool:
        return float((abs(a - b) > 0.5).mean()) > 0.01

    return ink[0] > 0.005 and ink[1] > 2 * ink[0] and differs(light, missing) and differs(dense, missing)


def _probe(html: str) -> str:
    """The report page with everything hidden but two rows of three cells, in the page's body font and
    in its `<code>` font: LIGHT, DENSE and a private-use character no font has (the browser's
    missing-glyph box, for comparison)."""
    cells = f"<span>{LIGHT}</span><span>{DENSE}</span><span>{NO_GLYPH}</span>"
    probe = ('<style>body > *:not(#probe) { display: none !important; } body { margin: 0; padding: 0; }'
             '#probe span { display: inline-block; width: 200px; height: 200px; line-height: 200px;'
             ' font-size: 120px; text-align: center; vertical-align: top; overflow: hidden; }'
             '#probe div, #probe code { display: block; height: 200px; font-size: inherit; }</style>'
             f'<div id="probe"><div>{cells}</div><code>{cells}</code></div>')
    return html.replace("</body>", probe + "</body>")


def test_chinese_on_the_page_renders_as_glyphs_in_headless_chromium(sectioned_run, tmp_path):
    """The page's Chinese is drawn from its embedded font: a one-stroke character has little ink, a dense
    one much more, and neither looks like the missing-glyph box; tofu boxes or blanks fail this."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    if cjk_font_path() is None:
        pytest.skip("pylopdf-fonts-zh-cn is not installed")
    html = Path(run_report(str(sectioned_run))).read_text("utf-8")
    assert LIGHT in html and DENSE in html  # the characters are the page's own (so in its font subset)
    body, code = _cells(chromium, _probe(html), tmp_path, "embedded")
    assert _drawn_as_glyphs(body) and _drawn_as_glyphs(code)

    # The control shows the check can fail: without the embedded font, on a machine without a
    # Chinese system font, the same cells are missing-glyph boxes.
    fc_list = shutil.which("fc-list")
    system_zh = subprocess.run([fc_list, ":lang=zh"], capture_output=True, text=True, check=False).stdout.strip() \
        if fc_list else "unknown"
    if not system_zh:
        bare = re.sub(r"@font-face \{.*?\}", "", html, count=1, flags=re.DOTALL)
        body, code = _cells(chromium, _probe(bare), tmp_path, "bare")
        assert not _drawn_as_glyphs(body) and not _drawn_as_glyphs(code)


def test_the_report_folder_stays_small_and_whole_in_chromium(sectioned_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from matplotlib.image import imread

    index = Path(run_report(str(sectioned_run)))
    shot = tmp_path / "page.png"
    _screenshot(chromium, index, shot, tmp_path / "profile", "1200,3000")
    pixels = imread(str(shot))[..., :3]
    assert (pixels > 0.97).all(axis=-1).mean() < 0.97  # not blank
