"""The report's numbers and page, on small runs made by hand: `_stats.json` files in the one
shape of transforms/stats.py, Parquet parts, a mix manifest, and RUN/_pipeline.json."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.errors import UserError
from jobs.report import (
    draw_plots,
    drop_reasons,
    length_distribution,
    load_run,
    mining_summary,
    mixing_summary,
    novelty_histogram,
    render_html,
    run_report,
    stage_folders,
)
from transforms.stats import stats_document

MINE_COUNTERS = {
    "mine.files.read": 2, "mine.documents.read": 7, "mine.documents.lang.en": 5, "mine.documents.lang.zh": 2,
    "mine.documents.skip.non_html": 2, "mine.documents.truncated.max_page_bytes": 1,
    "mine.pairs.candidates": 5, "mine.pairs.written": 3, "mine.pairs.drop.harmful": 1,
    "mine.pairs.drop.near_duplicate": 1,
}
SYNTH_COUNTERS = {"synth.documents.read": 4, "synth.documents.skip.language": 1, "synth.records.written": 1,
                  "synth.records.drop.not_novel": 4, "synth.instructions.drop.too_similar": 2}
MIX_COUNTERS = {
    "mix.pretrain.files": 1, "mix.pretrain.documents": 9, "mix.pretrain.tokens": 950, "mix.pretrain.skip.bad_json": 3,
    "mix.instructions.mined.records": 3, "mix.instructions.mined.documents_used": 3,
    "mix.instructions.mined.tokens_used": 30, "mix.instructions.alpaca.v2.records": 5,
    "mix.instructions.alpaca.v2.documents_used": 2, "mix.instructions.alpaca.v2.tokens_used": 10,
    "mix.instructions.alpaca.v2.skip.missing_field": 2,
    "mix.output.shards": 2, "mix.output.documents": 14, "mix.output.tokens": 1000, "mix.output.instruction_tokens": 49,
}
MANIFEST = {"target_ratio": 0.05, "formats": ["parquet"],
            "shards": [{"name": "part-00000", "docs": 7, "tokens": 500, "instruction_tokens": 30, "ratio": 0.06},
                       {"name": "part-00001", "docs": 7, "tokens": 500, "instruction_tokens": 19, "ratio": 0.038}],
            "instructions": [{"name": "mined", "path": "run/mined", "weight": 0.7, "repeats": 1},
                             {"name": "alpaca.v2", "path": "alpaca.json", "weight": 0.3, "repeats": 2}]}


def _stats(stage: str, counters: dict, outputs: list[str], **details) -> bytes:
    doc = stats_document(stage, counters, run_id="test", fingerprint="f" * 64, elapsed_seconds=1.5,
                         outputs=outputs, details=details)
    return json.dumps(doc).encode()


def _parquet(rows: list[dict]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue().to_pybytes()


def _write_stage(url: str, files: dict[str, bytes], storage_options: dict | None = None) -> None:
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    for name, data in files.items():
        fs.makedirs(f"{root}/{name}".rsplit("/", 1)[0], exist_ok=True)
        with fs.open(f"{root}/{name}", "wb") as f:
            f.write(data)


def _mine_files() -> dict[str, bytes]:
    rows = [{"id": "a1", "instruction": "How do I reset a router?", "output": "Hold the button.", "lang": "en",
             "miner": "markup", "kind": "faq", "source_url": "https://a.example/1"},
            {"id": "b2", "instruction": "What is a tide?", "output": "The rise of the sea.", "lang": "en",
             "miner": "faq_sections", "kind": "faq", "source_url": "https://a.example/1"},
            {"id": "c3", "instruction": "如何煮米饭？", "output": "先洗米。", "lang": "zh",
             "miner": "howto", "kind": "howto", "source_url": "https://b.example/2"}]
    return {"part-00000.parquet": _parquet(rows),
            "_stats.json": _stats("mine", MINE_COUNTERS, ["part-00000.parquet"])}


def _synth_files(instruction: str = "Summarize this paragraph.") -> dict[str, bytes]:
    rows = [{"id": "s1", "instruction": instruction, "output": "x", "lang": "en", "task_type": "summarize"}]
    return {"part-00000.parquet": _parquet(rows),
            "_stats.json": _stats("synth", SYNTH_COUNTERS, ["part-00000.parquet"], mode="template_only")}


def _mix_files() -> dict[str, bytes]:
    return {"manifest.json": json.dumps(MANIFEST).encode(),
            "_stats.json": _stats("mix", MIX_COUNTERS, ["manifest.json"])}


def _pipeline(outputs: dict[str, str]) -> bytes:
    return json.dumps({"stages": {s: {"state": "done", "output": url} for s, url in outputs.items()}}).encode()


# --------------------------------------------------------------------------- numbers


def test_novelty_histogram_bins_and_share_below_0_3():
    h = novelty_histogram([0.0, 0.05, 0.29, 0.3, 0.99, 1.0])
    assert h["n"] == 6
    assert h["bins"]["0.0-0.1"] == 2 and h["bins"]["0.2-0.3"] == 1 and h["bins"]["0.3-0.4"] == 1
    assert h["bins"]["0.9-1.0"] == 2  # 1.0 falls in the last bin
    assert h["share_below_0.3"] == 0.5
    assert novelty_histogram([])["n"] == 0


def test_mixing_summary_gives_each_shard_its_deviation_and_each_source_its_share():
    m = mixing_summary(MIX_COUNTERS, MANIFEST)
    assert [round(s["deviation"], 3) for s in m["shards"]] == [0.01, -0.012]
    assert m["max_abs_deviation"] == pytest.approx(0.012)
    assert m["realized_ratio"] == pytest.approx(0.049)  # mix.output.instruction_tokens / mix.output.tokens
    assert m["tokens"] == 1000 and m["docs"] == 14 and m["pretrain"] == {"files": 1, "docs": 9, "tokens": 950}
    # A source name with a dot is parsed from the right; the config's order is kept.
    assert [(s["name"], s["weight"], s["token_share"], s["documents_used"]) for s in m["sources"]] == [
        ("mined", 0.7, 0.75, 3), ("alpaca.v2", 0.3, 0.25, 2)]
    assert m["sources"][1]["repeats"] == 2
    # The mixer writes "alpaca.v2" as `mix.instructions.alpaca_v2.*`: matched to the manifest's name.
    underscored = {k.replace("alpaca.v2", "alpaca_v2"): v for k, v in MIX_COUNTERS.items()}
    assert [(s["name"], s["tokens_used"]) for s in mixing_summary(underscored, MANIFEST)["sources"]] == [
        ("mined", 30), ("alpaca.v2", 10)]


def test_a_shard_without_a_ratio_gets_it_from_its_tokens():
    manifest = {"target_ratio": 0.1, "shards": [{"name": "p0", "tokens": 200, "instruction_tokens": 30}]}
    assert mixing_summary({}, manifest)["shards"][0]["deviation"] == pytest.approx(0.05)


def test_drop_reasons_cover_every_stage_from_the_counters():
    rows = drop_reasons({**MINE_COUNTERS, **SYNTH_COUNTERS, **MIX_COUNTERS, "mine.pairs.drop.too_short": 0})
    assert {(r["stage"], r["unit"], r["reason"], r["count"]) for r in rows} == {
        ("mine", "documents", "non_html", 2), ("mine", "documents truncated", "max_page_bytes", 1),
        ("mine", "pairs", "harmful", 1), ("mine", "pairs", "near_duplicate", 1),
        ("synth", "documents", "language", 1), ("synth", "pairs", "not_novel", 4),
        ("synth", "instructions", "too_similar", 2),
        ("mix", "pretraining rows", "bad_json", 3), ("mix", "alpaca.v2 records", "missing_field", 2)}


def test_mining_summary_reads_documents_from_the_counters_and_pairs_from_the_rows(tmp_path):
    _write_stage(str(tmp_path / "run" / "mined"), _mine_files())
    mine = load_run(str(tmp_path / "run"))["mine"]
    assert mine["present"] and mine["rows"] == 3
    m = mining_summary(mine)
    assert m["documents_read"] == 7 and m["candidates"] == 5 and m["pairs_written"] == 3
    assert m["pages_with_pairs"] == 2
    assert {r["lang"]: (r["documents"], r["pages_with_pairs"], r["pairs"]) for r in m["languages"]} == {
        "en": (5, 1, 2), "zh": (2, 1, 1)}
    assert {r["miner"]: r["pairs"] for r in m["miners"]} == {"faq_sections": 1, "howto": 1, "markup": 1}


def test_lengths_count_english_words_and_chinese_characters():
    d = length_distribution([{"instruction": "Explain how tides work.", "lang": "en"},
                             {"instruction": "解释潮汐。", "lang": "zh"}])
    assert d["en"]["median"] == 4 and d["zh"]["n"] == 1 and d["zh"]["median"] >= 4


# --------------------------------------------------------------------------- finding the outputs


def test_the_report_finds_the_mix_output_where_the_pipeline_wrote_it(tmp_path):
    """Regression (issue 9): the mix wrote to `mix.output.path` outside the run directory
    (as configs/production.yaml does); the report used to look only under RUN/mixed."""
    run, corpus = tmp_path / "run", tmp_path / "corpora" / "mix-1"
    _write_stage(str(run / "mined"), _mine_files())
    _write_stage(str(corpus), _mix_files())
    _write_stage(str(run), {"_pipeline.json": _pipeline({"mine": str(run / "mined"), "mix": str(corpus)})})
    assert stage_folders(str(run))["mix"]["folder"] == str(corpus)
    index = run_report(str(run))
    summary = json.loads((Path(index).parent / "summary.json").read_text(encoding="utf-8"))
    assert summary["stages"]["mix"]["present"] and summary["stages"]["mix"]["folder"] == str(corpus)
    assert summary["mixing"]["target_ratio"] == 0.05 and len(summary["mixing"]["shards"]) == 2
    assert (Path(index).parent / "mixing.png").is_file()


def test_without_pipeline_json_the_standard_folders_are_read(tmp_path):
    run = tmp_path / "run"
    _write_stage(str(run / "mixed"), _mix_files())
    assert {s: w["folder"] for s, w in stage_folders(str(run)).items()} == {
        "mine": f"{run}/mined", "synth": f"{run}/synth", "mix": f"{run}/mixed"}
    assert load_run(str(run))["mix"]["present"]


def test_a_recorded_folder_that_is_gone_falls_back_to_the_standard_one(tmp_path):
    run = tmp_path / "run"
    _write_stage(str(run / "mixed"), _mix_files())
    _write_stage(str(run), {"_pipeline.json": _pipeline({"mix": "/nonexistent/old/place/mixed"})})
    where = stage_folders(str(run))["mix"]
    assert where["folder"] == f"{run}/mixed" and "gone" in where["note"]


def test_stats_in_another_shape_are_reported_not_guessed(tmp_path):
    run = tmp_path / "run"
    _write_stage(str(run / "synth"), {**_synth_files(),
                                      "_stats.json": json.dumps({"mode": "template_only", "written": 1}).encode()})
    synth = load_run(str(run))["synth"]
    assert not synth["present"] and "shape" in synth["note"] and "rerun" in synth["note"]


# --------------------------------------------------------------------------- the page


def test_a_partial_run_says_which_stage_is_missing_and_the_page_escapes_data(tmp_path):
    _write_stage(str(tmp_path / "run" / "synth"), _synth_files("Summarize <script>alert(1)</script> this."))
    run = load_run(str(tmp_path / "run"))
    assert not run["mine"]["present"] and "has not run" in run["mine"]["note"]
    assert run["synth"]["present"] and run["synth"]["rows"] == 1
    index = run_report(str(tmp_path / "run"))
    html = Path(index).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "has not run" in html and "template_only" in html
    summary = json.loads((Path(index).parent / "summary.json").read_text(encoding="utf-8"))
    assert summary["synth"]["written"] == 1
    assert "<img" not in render_html(summary, {})  # no plots: the page still renders


def test_a_new_report_removes_its_old_plots_and_keeps_files_it_did_not_write(tmp_path):
    run = tmp_path / "run"
    _write_stage(str(run / "mixed"), _mix_files())
    _write_stage(str(run / "synth"), _synth_files())
    report = Path(run_report(str(run))).parent
    assert (report / "mixing.png").is_file()
    fs = fsspec.filesystem("file")
    fs.rm(str(run / "mixed"), recursive=True)
    run_report(str(run))
    assert not (report / "mixing.png").exists()  # no mix any more: its plot is gone with it
    (report / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match=r"notes\.txt.*--overwrite"):
        run_report(str(run))
    run_report(str(run), overwrite=True)
    assert (report / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_a_report_of_an_older_version_is_replaced_without_overwrite(tmp_path):
    run = tmp_path / "run"
    _write_stage(str(run / "synth"), _synth_files())
    report = run / "report"
    report.mkdir()
    (report / "summary.json").write_text(json.dumps({"run_dir": str(run), "stages": {}}), encoding="utf-8")
    for name in ("index.html", "mixing.png"):
        (report / name).write_text("old", encoding="utf-8")
    run_report(str(run))
    assert not (report / "mixing.png").exists()  # the old plot without data now is gone
    assert "template_only" in (report / "index.html").read_text(encoding="utf-8")


def test_a_missing_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        run_report(str(tmp_path / "nope"))


def test_the_report_reads_and_writes_a_run_on_s3(s3_bucket, s3_server):
    """Everything through fsspec: a run directory in a bucket, the mix output in another prefix."""
    options = {"client_kwargs": {"endpoint_url": s3_server}, "key": "testing", "secret": "testing"}
    run, corpus = f"{s3_bucket}/runs/r1", f"{s3_bucket}/corpora/c1"
    _write_stage(f"{run}/mined", _mine_files(), options)
    _write_stage(f"{run}/synth", _synth_files(), options)
    _write_stage(corpus, _mix_files(), options)
    _write_stage(run, {"_pipeline.json": _pipeline({"mine": f"{run}/mined", "synth": f"{run}/synth",
                                                    "mix": corpus})}, options)
    index = run_report(run, storage_options=options)
    assert index == f"{run}/report/index.html"
    fs = fsspec.filesystem("s3", **options)
    html = fs.cat(index).decode("utf-8")
    assert "data:image/png;base64," in html and "c1" in html
    summary = json.loads(fs.cat(f"{run}/report/summary.json"))
    assert all(summary["stages"][s]["present"] for s in ("mine", "synth", "mix"))
    assert summary["mining"]["documents_read"] == 7 and summary["mixing"]["tokens"] == 1000
    assert fs.exists(f"{run}/report/mining.png") and not fs.exists(f"{run}/report/_lock.json")


def test_the_report_command_gives_one_line_errors(tmp_path, capsys):
    from jobs.cli import main

    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"instructmix report: error: {tmp_path / 'nope'}: no such run directory "
        "(the output folder of `instructmix run`)")
    (tmp_path / "run").mkdir()
    assert main(["report", str(tmp_path / "run"), "--storage-options", "{anon: true"]) == 2
    assert capsys.readouterr().err.startswith("instructmix report: error: --storage-options: not JSON")


def test_synth_quality_reads_prompts_generations_and_kept_pairs_from_the_counters():
    from jobs.report.numbers import synth_quality

    q = synth_quality({"synth.prompts.sent": 20, "synth.prompts.cut.passage": 3, "synth.prompts.drop.prompt_too_long": 2,
                       "synth.generations": 20, "synth.records.parsed": 50, "synth.records.accepted": 30})
    assert q == {"prompts_sent": 20, "prompts_cut": 3, "prompts_too_long": 2, "generations": 20, "pairs_parsed": 50,
                 "accepted": 30, "accepted_per_generation": 1.5}
    assert synth_quality({"synth.records.accepted": 4})["accepted_per_generation"] is None  # template_only


# A mix with ratio {schedule: [{until: 0.5, ratio: 0.02}, {until: 1.0, ratio: 0.08}]} over four
# equal shards: each shard carries its own target, the top level the token-weighted 0.05.
SCHEDULED_MANIFEST = {
    "target_ratio": 0.05, "formats": ["parquet"],
    "ratio_schedule": {"schedule": [{"until": 0.5, "ratio": 0.02, "ramp": False},
                                    {"until": 1.0, "ratio": 0.08, "ramp": False}]},
    "shards": [{"name": f"part-0000{i}", "docs": 40, "tokens": 1000, "instruction_docs": 30 + i,
                "instruction_tokens": t, "ratio": t / 1000, "target_ratio": target}
               for i, (t, target) in enumerate([(21, 0.02), (18, 0.02), (83, 0.08), (79, 0.08)])],
    "instructions": [{"name": "mined", "path": "run/mined", "weight": 1.0, "repeats": 1}]}


def test_a_ratio_schedule_gives_each_shard_its_own_target_and_a_step_in_the_plot():
    from jobs.report.plots import _plot_mixing

    counters = {"mix.output.tokens": 4000, "mix.output.instruction_tokens": 201,
                "mix.instructions.mined.tokens_used": 201, "mix.instructions.mined.documents_used": 126}
    m = mixing_summary(counters, SCHEDULED_MANIFEST)
    assert m["target_ratio"] == 0.05 and m["ratio_schedule"] == SCHEDULED_MANIFEST["ratio_schedule"]
    assert [s["target_ratio"] for s in m["shards"]] == [0.02, 0.02, 0.08, 0.08]
    # Against the shard's own target, not the overall 0.05 (which would give 0.03 and more).
    assert [round(s["deviation"], 4) for s in m["shards"]] == [0.001, -0.002, 0.003, -0.001]
    assert m["max_abs_deviation"] == pytest.approx(0.003)
    assert m["realized_ratio"] == pytest.approx(0.05025)

    def legend(mixing):
        fig = _plot_mixing({"mixing": mixing})
        return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]

    assert {"target, per shard", "target overall 0.0500", "realized, per shard"} <= set(legend(m))
    assert draw_plots({"mixing": m})["mixing"].startswith(b"\x89PNG")
    # A constant target keeps one dashed line labelled with it; shards without their own
    # target (older manifests) take the top-level one.
    constant = mixing_summary(MIX_COUNTERS, MANIFEST)
    assert [s["target_ratio"] for s in constant["shards"]] == [0.05, 0.05] and constant["ratio_schedule"] is None
    assert "target, per shard" not in legend(constant) and "target 0.05" in legend(constant)


def test_contamination_is_a_table_per_benchmark_and_stage(tmp_path):
    decontaminate = {"ngram": 13, "min_ngram": 8, "benchmarks": [{"name": "mmlu", "path": "evals/mmlu.parquet"},
                                                                 {"name": "gsm8k", "path": "evals/gsm8k.jsonl"}]}
    mine = _mine_files()
    mine["_stats.json"] = _stats("mine", {**MINE_COUNTERS, "mine.pairs.drop.contaminated.mmlu": 4},
                                 ["part-00000.parquet"], decontaminate=decontaminate)
    mix = _mix_files()
    mix["_stats.json"] = _stats("mix", {**MIX_COUNTERS, "mix.instructions.mined.drop.contaminated.gsm8k": 2,
                                        "mix.instructions.alpaca.v2.drop.contaminated.gsm8k": 1},
                                ["manifest.json"], decontaminate=decontaminate)
    for stage, files in (("mined", mine), ("synth", _synth_files()), ("mixed", mix)):
        _write_stage(str(tmp_path / "run" / stage), files)
    index = run_report(str(tmp_path / "run"))
    summary = json.loads((Path(index).parent / "summary.json").read_text(encoding="utf-8"))
    table = summary["contamination"]
    assert table["stages"] == ["mine", "mix"]  # synth did not decontaminate
    assert {r["benchmark"]: (r["counts"], r["total"]) for r in table["rows"]} == {
        "gsm8k": ({"mine": 0, "mix": 3}, 3), "mmlu": ({"mine": 4, "mix": 0}, 4)}
    html = Path(index).read_text(encoding="utf-8")
    assert "Benchmark contamination" in html and "evals/mmlu.parquet" in html
    # A source's contaminated records are listed among its drops, named after the source.
    assert any(d["stage"] == "mix" and d["reason"] == "contaminated.gsm8k" for d in summary["drops"])
