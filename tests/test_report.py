"""The report's numbers and page, on small runs made by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.report import (
    drop_reasons,
    length_distribution,
    load_run,
    mixing_summary,
    novelty_histogram,
    render_html,
    run_report,
)


def test_novelty_histogram_bins_and_share_below_0_3():
    h = novelty_histogram([0.0, 0.05, 0.29, 0.3, 0.99, 1.0])
    assert h["n"] == 6
    assert h["bins"]["0.0-0.1"] == 2 and h["bins"]["0.2-0.3"] == 1 and h["bins"]["0.3-0.4"] == 1
    assert h["bins"]["0.9-1.0"] == 2  # 1.0 falls in the last bin
    assert h["share_below_0.3"] == 0.5
    assert novelty_histogram([])["n"] == 0


def test_mixing_summary_gives_each_shard_its_deviation_and_each_source_its_share():
    manifest = {"target_ratio": 0.05, "realized_ratio": 0.049, "tokens": 1000, "docs": 10,
                "shards": [{"name": "part-00000", "ratio": 0.06, "tokens": 500},
                           {"name": "part-00001", "ratio": 0.038, "tokens": 500}],
                "instructions": [{"name": "mined", "weight": 0.7, "tokens_used": 30},
                                 {"name": "alpaca", "weight": 0.3, "tokens_used": 10}]}
    m = mixing_summary(manifest)
    assert [round(s["deviation"], 3) for s in m["shards"]] == [0.01, -0.012]
    assert m["max_abs_deviation"] == pytest.approx(0.012)
    assert [s["token_share"] for s in m["sources"]] == [0.75, 0.25]


def test_drop_reasons_cover_every_stage():
    rows = drop_reasons({"documents": {"skipped": {"skip:non_html": 2}}, "drops": {"harmful": 1, "none": 0}},
                        {"counters": {"drop:not_novel": 4, "skip:language": 1, "accepted:x": 9}},
                        {"pretrain": {"skipped_rows": {"bad_json": 3}}, "instructions": []})
    assert {(r["stage"], r["reason"], r["count"]) for r in rows} == {
        ("mine", "skip:non_html", 2), ("mine", "harmful", 1), ("synth", "not_novel", 4),
        ("synth", "language", 1), ("mix", "bad_json", 3)}


def test_lengths_count_english_words_and_chinese_characters():
    d = length_distribution([{"instruction": "Explain how tides work.", "lang": "en"},
                             {"instruction": "解释潮汐。", "lang": "zh"}])
    assert d["en"]["median"] == 4 and d["zh"]["n"] == 1 and d["zh"]["median"] >= 4


def test_a_partial_run_says_which_stage_is_missing_and_the_page_escapes_data(tmp_path):
    synth = tmp_path / "run" / "synth"
    synth.mkdir(parents=True)
    rows = [{"id": "a1", "instruction": "Summarize <script>alert(1)</script> this.", "lang": "en",
             "task_type": "summarize", "output": "x"}]
    pq.write_table(pa.Table.from_pylist(rows), synth / "part-00000.parquet")
    (synth / "_stats.json").write_text(json.dumps({"mode": "template_only", "written": 1, "counters": {}}))
    run = load_run(str(tmp_path / "run"))
    assert not run["mine"]["present"] and "has not run" in run["mine"]["note"]
    assert run["synth"]["present"] and run["synth"]["rows"] == 1
    index = run_report(str(tmp_path / "run"))
    html = Path(index).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "has not run" in html
    summary = json.loads((Path(index).parent / "summary.json").read_text(encoding="utf-8"))
    assert "<img" not in render_html(summary, {})  # no plots: the page still renders


def test_a_missing_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        run_report(str(tmp_path / "nope"))
