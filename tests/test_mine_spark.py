"""The Spark mining job end to end in local[2]: contract, determinism, resume, dedup, bad input."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from jobs.config import MineConfig
from jobs.mine import STATS_FILE, WORK_DIR, run_mine
from tests.conftest import SAMPLES
from transforms.stats import group

pytestmark = pytest.mark.spark

FAQ_PAGE = """<html><head><title>{title}</title></head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/shop">Shop</a></li></ul></nav>
<main><h1>{title}</h1>
<h2>Frequently Asked Questions</h2>
<h3>How long does shipping take to Europe?</h3>
<p>Standard shipping to most European countries takes five to seven business days, and express delivery
arrives within two business days after the order leaves our warehouse.</p>
<h3>Can I return an item after thirty days?</h3>
<p>Returns are accepted for sixty days from delivery as long as the item is unused and in its original
packaging; we refund the full price including the original shipping cost.</p>
</main><footer>Copyright 2024 Example Shop. All rights reserved.</footer></body></html>"""


def _jsonl_gz(path: Path, records: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def _read(out: Path):
    return ds.dataset(str(out), format="parquet").to_table()


@pytest.fixture(scope="module")
def mined_samples(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined") / "out"
    stats = run_mine([str(SAMPLES / "web-*")], str(out), master="local[2]", spark=spark)
    return out, stats


def test_output_is_one_parquet_dataset_with_the_contract_columns(mined_samples):
    out, stats = mined_samples
    table = _read(out)
    for name in ("id", "instruction", "input", "output", "kind", "lang", "source_url", "miner"):
        assert str(table.schema.field(name).type) == "string"
    assert str(table.schema.field("confidence").type) in ("float", "double")
    assert table.num_rows == stats["counters"]["mine.pairs.written"] > 0
    assert sorted(stats["outputs"]) == sorted(p.name for p in out.glob("*.parquet"))
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids))


def test_samples_yield_every_kind_in_english_and_chinese(mined_samples):
    out, _ = mined_samples
    rows = _read(out).to_pylist()
    kinds = {r["kind"] for r in rows}
    assert {"faq", "qa", "howto", "howto_step", "question_sentence"} <= kinds
    assert {"en", "zh"} <= {r["lang"] for r in rows}
    assert {r["miner"] for r in rows} >= {"markup", "faq_sections", "howto"}


def test_stats_report_documents_languages_miners_and_drop_reasons(mined_samples):
    out, stats = mined_samples
    on_disk = json.loads((out / STATS_FILE).read_text())
    assert on_disk == stats
    assert stats["stage"] == "mine" and stats["run_id"] and len(stats["fingerprint"]) == 64
    counters = stats["counters"]
    assert counters["mine.documents.read"] > 0
    assert counters["mine.files.read"] == 3 and counters["mine.files.resumed"] == 0
    assert {"en", "zh"} <= set(group(counters, "mine.documents.lang"))
    written = counters["mine.pairs.written"]
    for breakdown in ("miner", "kind", "miner_kind", "lang"):
        assert sum(group(counters, f"mine.pairs.{breakdown}").values()) == written, breakdown
    assert sum(group(counters, "mine.pairs.mined").values()) == counters["mine.pairs.candidates"]
    drops = group(counters, "mine.pairs.drop")
    assert counters["mine.pairs.candidates"] == written + drops["exact_duplicate"] + drops["near_duplicate"]
    assert set(drops) - {"exact_duplicate", "near_duplicate"}, "the samples contain pages that must be filtered"
    assert not (out / WORK_DIR).exists()


def test_a_second_run_gives_the_same_rows(spark, mined_samples, tmp_path):
    out, _ = mined_samples
    again = tmp_path / "again"
    run_mine([str(SAMPLES / "web-*")], str(again), spark=spark)
    first = sorted(_read(out).to_pylist(), key=lambda r: r["id"])
    second = sorted(_read(again).to_pylist(), key=lambda r: r["id"])
    assert first == second


def test_dedup_is_across_the_whole_job_not_per_file(spark, tmp_path):
    a = _jsonl_gz(tmp_path / "a.jsonl.gz", [{"url": "https://shop-a.example/faq", "html": FAQ_PAGE.format(title="Shop A help")}])
    b = _jsonl_gz(tmp_path / "b.jsonl.gz", [{"url": "https://shop-b.example/faq", "html": FAQ_PAGE.format(title="Shop B help")}])
    stats = run_mine([str(a), str(b)], str(tmp_path / "out"), spark=spark)
    rows = _read(tmp_path / "out").to_pylist()
    questions = [r["instruction"] for r in rows]
    assert questions.count("How long does shipping take to Europe?") == 1
    assert stats["counters"]["mine.pairs.drop.exact_duplicate"] >= 2


def test_resume_skips_finished_files_and_gives_the_same_rows(spark, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _jsonl_gz(src / f"part-{i}.jsonl.gz", [{"url": f"https://s{i}.example/faq", "html": FAQ_PAGE.format(title=f"Store {i} questions")}])
    out = tmp_path / "out"
    full = run_mine([str(src)], str(out), spark=spark, keep_work=True)
    expected = sorted(r["id"] for r in _read(out).to_pylist())
    # Simulate a kill after two of three files: drop one checkpoint and the published result.
    checkpoints = sorted((out / WORK_DIR).glob("*/extract/*.parquet"))
    assert len(checkpoints) == 3
    checkpoints[0].unlink()
    for part in out.glob("part-*.parquet"):
        part.unlink()
    (out / STATS_FILE).unlink()
    resumed = run_mine([str(src)], str(out), spark=spark)
    assert resumed["counters"]["mine.files.resumed"] == 2
    assert sorted(r["id"] for r in _read(out).to_pylist()) == expected
    assert group(resumed["counters"], "mine.documents") == group(full["counters"], "mine.documents")


def test_bad_files_are_counted_and_good_records_kept(spark, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = _jsonl_gz(src / "good.jsonl.gz", [{"url": "https://ok.example/faq", "html": FAQ_PAGE.format(title="Help")}])
    empty = src / "empty.warc.gz"
    empty.write_bytes(b"")
    whole = gzip.compress(b"".join((json.dumps({"url": f"https://t.example/{i}", "text": "x"}) + "\n").encode() for i in range(50)))
    truncated = src / "truncated.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    broken = src / "broken.jsonl"
    broken.write_text('{"url": "https://b.example", "html": "<p>fine</p>"}\n{not json\n', encoding="utf-8")
    stats = run_mine([str(src / "*")], str(tmp_path / "out"), spark=spark)
    assert stats["counters"]["mine.pairs.written"] >= 2
    assert {r["source_file"] for r in _read(tmp_path / "out").to_pylist()} == {str(good)}
    skipped = group(stats["counters"], "mine.documents.skip")
    assert skipped.get("empty_file") == 1 and skipped.get("bad_json") == 1, skipped
    assert skipped.get("truncated_archive", 0) + skipped.get("corrupt_archive", 0) >= 1, skipped


def test_cli_mine_runs_in_local2_and_prints_the_output(tmp_path):
    src = _jsonl_gz(tmp_path / "faq.jsonl.gz", [{"url": "https://cli.example/faq", "html": FAQ_PAGE.format(title="CLI help")}])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "mine", "--input", str(src), "--output", str(out), "--master", "local[2]"],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["pairs"] == _read(out).num_rows >= 2


def test_cli_rejects_a_bad_config_naming_the_key(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("filters:\n  output_min_chars: -3\nminerz: [faq]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "mine", "--input", "x", "--output", str(tmp_path / "o"), "--config", str(cfg)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "mine.yaml: filters.output_min_chars" in proc.stderr
    assert "mine.yaml: minerz: unknown key" in proc.stderr


def test_config_defaults_validate():
    assert MineConfig().languages == ["en", "zh"]
    shutil.which("java") or pytest.skip("java missing")


def test_task_frames_spread_tasks_over_partitions_and_need_no_python_worker(spark):
    # Task lists reach Spark without a Python worker: a Python RDD converted to a DataFrame would
    # start a second Python daemon just for that (jobs.engines.spark.task_frame).
    from pyspark.sql import functions as F

    from jobs.engines.spark import task_frame

    paths = [f"s3://bucket/shard-{i:03d}.warc.gz" for i in range(10)]
    tasks = task_frame(spark, 10, 4, {"path": paths})
    assert tasks.columns == ["task", "path"] and tasks.rdd.getNumPartitions() == 4
    rows = tasks.select("task", "path", F.spark_partition_id().alias("part")).collect()
    assert [(r["task"], r["path"]) for r in rows] == list(enumerate(paths))
    assert sorted({r["part"] for r in rows}) == [0, 1, 2, 3]
    assert "Python" not in tasks._jdf.queryExecution().executedPlan().toString()
    numbers = task_frame(spark, 2, 8)
    assert numbers.columns == ["task"] and numbers.rdd.getNumPartitions() == 2
    assert task_frame(spark, 0, 3).count() == 0
    with pytest.raises(ValueError, match="3 values"):
        task_frame(spark, 3, 1, {"path": paths})
