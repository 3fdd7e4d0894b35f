"""Decontamination in each stage's job: a planted benchmark item is dropped and counted per benchmark."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jobs.config import MineConfig, MixConfig, SynthConfig, validate_config
from tests.conftest import SAMPLES
from transforms.stats import group

PAGE = """<html><head><title>Example Shop help</title></head><body><main><h1>Example Shop help</h1>
<h2>Frequently Asked Questions</h2>
<h3>How long does shipping take to Europe?</h3>
<p>Standard shipping to most European countries takes five to seven business days, and express delivery
arrives within two business days after the order leaves our warehouse.</p>
<h3>What can I eat for breakfast without eggs?</h3>
<p>{planted}</p>
</main></body></html>"""


def _alpaca_seed_output(webdata: Path) -> str:
    """A real benchmark item: the first Alpaca seed task's answer (a breakfast without eggs)."""
    line = (webdata / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl").read_text().splitlines()[0]
    return json.loads(line)["instances"][0]["output"]


@pytest.mark.spark
def test_mine_drops_a_pair_holding_a_benchmark_item(spark, webdata, tmp_path):
    from jobs.mine import run_mine

    planted = _alpaca_seed_output(webdata).replace(". ", "! ")  # re-punctuated on the page
    src = tmp_path / "pages.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"url": "https://shop.example/faq", "html": PAGE.format(planted=planted)}) + "\n")
    benchmark = str(webdata / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl")
    config = validate_config({"decontaminate": {"benchmarks": [{"path": benchmark, "name": "alpaca"}]}}, MineConfig)
    stats = run_mine([str(src)], str(tmp_path / "out"), spark=spark, config=config)
    rows = ds.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()
    assert [r["instruction"] for r in rows] == ["How long does shipping take to Europe?"]
    assert stats["counters"]["mine.pairs.drop.contaminated.alpaca"] == 1
    assert group(stats["counters"], "mine.pairs.drop.contaminated") == {"alpaca": 1}
    assert stats["details"]["decontaminate"]["benchmarks"][0]["name"] == "alpaca"
    # Without the key the same page gives both pairs.
    plain = run_mine([str(src)], str(tmp_path / "plain"), spark=spark)
    assert plain["counters"]["mine.pairs.written"] == 2


def test_synth_drops_records_holding_a_benchmark_item(sample_documents, tmp_path):
    from jobs.synth import OUTPUT_FILE, run_synth

    config = validate_config({"documents_per_batch": 4, "limit": 1000}, SynthConfig)
    plain = pq.read_table(run_synth_to(run_synth, sample_documents, tmp_path / "plain", config) / OUTPUT_FILE)
    outputs = [o for o in plain.column("output").to_pylist() if len(o.split()) >= 20]
    assert outputs
    benchmark = tmp_path / "eval.csv"
    benchmark.write_text("id,answer\n1," + json.dumps(outputs[0]) + "\n", encoding="utf-8")
    config = validate_config({"documents_per_batch": 4, "limit": 1000,
                              "decontaminate": {"benchmarks": [str(benchmark)], "fields": ["answer"]}}, SynthConfig)
    out = run_synth_to(run_synth, sample_documents, tmp_path / "clean", config)
    stats = json.loads((out / "_stats.json").read_text())
    dropped = stats["counters"]["synth.records.drop.contaminated.eval"]
    assert dropped >= 1
    kept = pq.read_table(out / OUTPUT_FILE).column("output").to_pylist()
    assert outputs[0] not in kept
    assert len(kept) == plain.num_rows - dropped


def test_self_instruct_checks_its_instructions_and_records_against_the_benchmarks(tiny_llm, webdata, tmp_path):
    """The loop's own path (the SelfInstructRounds actor opens the index); a random-weight model writes
    nothing a benchmark holds, so this shows the run completes and reports what it checked."""
    from jobs.synth import run_synth

    benchmark = str(webdata / "instructions" / "belle-zh" / "eval_set.json")
    config = validate_config({
        "model": str(tiny_llm), "limit": 1000, "self_instruct_rounds": 1, "min_answer_share": 0,
        "engine": {"actors": 1, "gpus_per_actor": 0, "gpu_memory_utilization": 0.2, "max_model_len": 1024,
                   "batch_size": 8},
        "sampling": {"max_tokens": 32},
        "decontaminate": {"benchmarks": [{"path": benchmark, "name": "belle"}]}}, SynthConfig)
    stats = run_synth(None, str(tmp_path / "out"), "self_instruct", config)
    assert stats["counters"]["synth.generations"] > 0
    assert stats["details"]["decontaminate"]["benchmarks"][0]["name"] == "belle"


def run_synth_to(run_synth, documents: Path, out: Path, config: SynthConfig) -> Path:
    run_synth([str(documents)], str(out), "template_only", config)
    return out


@pytest.mark.spark
def test_mix_drops_instruction_records_holding_a_benchmark_item(spark, tmp_path):
    from jobs.mix import run_mix

    alpaca = json.loads((SAMPLES / "alpaca-sample.json").read_text())
    planted = alpaca[0]  # "Give three tips for keeping houseplants alive in winter." and its answer
    benchmark = tmp_path / "houseplants.json"
    benchmark.write_text(json.dumps({"data": [{"question": planted["instruction"], "answer": planted["output"]}]}))
    texts = [json.dumps({"text": (SAMPLES / "pages" / "faq-sections-en.html").read_text()})] * 40
    (tmp_path / "web.jsonl").write_text("\n".join(texts) + "\n")
    config = validate_config({
        "seed": 1, "ratio": 0.05, "tokenizer": str(SAMPLES / "tokenizer.json"), "max_repeat": 20,
        "pretrain": [{"path": str(tmp_path / "web.jsonl"), "name": "web"}],
        "instructions": [{"path": str(SAMPLES / "alpaca-sample.json"), "weight": 1, "name": "alpaca"}],
        "output": {"path": str(tmp_path / "out"), "formats": ["jsonl.zst"], "shard_tokens": 60_000},
        "decontaminate": {"benchmarks": [{"path": str(benchmark), "name": "plants"}]},
    }, MixConfig, "mix.yaml")
    manifest = run_mix(config, spark=spark)
    stats = json.loads((tmp_path / "out" / "_stats.json").read_text())
    assert stats["counters"]["mix.instructions.alpaca.drop.contaminated.plants"] == 1
    assert manifest["instructions"][0]["records"] == len(alpaca) - 1
    import zstandard

    text = zstandard.ZstdDecompressor().stream_reader((tmp_path / "out" / "jsonl.zst" / "part-00000.jsonl.zst")
                                                      .open("rb")).read().decode()
    assert "keeping houseplants alive" not in text and "damp pebbles" not in text


@pytest.mark.parametrize("stage", ["mine", "mix"])
def test_a_bad_benchmark_file_stops_the_stage_before_any_task(stage, tmp_path):
    from jobs.config import ConfigError

    missing = str(tmp_path / "nowhere" / "eval.jsonl")
    with pytest.raises(ConfigError, match=r"decontaminate.benchmarks\[0\]: benchmark .*nowhere/eval.jsonl"):
        if stage == "mine":
            from jobs.mine import run_mine

            src = tmp_path / "in.jsonl"
            src.write_text(json.dumps({"url": "https://x.example/", "text": "hello"}) + "\n")
            run_mine([str(src)], str(tmp_path / "out"), spark=object(),
                     config=validate_config({"decontaminate": {"benchmarks": [missing]}}, MineConfig))
        else:
            from jobs.mix import run_mix

            (tmp_path / "web.jsonl").write_text(json.dumps({"text": "some text"}) + "\n")
            run_mix(validate_config({
                "ratio": 0.05, "tokenizer": str(SAMPLES / "tokenizer.json"),
                "pretrain": [{"path": str(tmp_path / "web.jsonl")}],
                "instructions": [{"path": str(SAMPLES / "alpaca-sample.json"), "weight": 1}],
                "output": {"path": str(tmp_path / "out")}, "decontaminate": {"benchmarks": [missing]}}, MixConfig),
                spark=object())
