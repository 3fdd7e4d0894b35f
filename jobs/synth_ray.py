"""`instructmix synth`: instruction-response pairs made by templates, Self-Instruct and an LLM.

Modes (all read mined Parquet — its answers serve as documents — or document
shards with a `text` field):
* template_only: templates filled from the documents, answered extractively from
  the passage they came from; no model, runs anywhere.
* template: the same filled instructions, answered by the LLM grounded in the passage.
* doc_qa: documents chunked to fit the context; the LLM writes several varied
  question-answer pairs per chunk as JSON (vLLM structured outputs); a number
  proportional to the chunk's length is kept.
* self_instruct: rounds of 8-task prompts (6 human seeds, 2 machine) → new
  instructions → filters and ROUGE-L novelty against the whole pool →
  classification check → output-first or input-first instances → filters.

Work is cut into numbered batches (documents, or self-instruct rounds); a finished
batch is a Parquet file under OUTPUT/_work, so a re-run after a kill skips it and
loses nothing. The LLM runs in Ray actors (jobs.llm_engine); Ray is embedded
unless an address is given.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import SynthConfig
from transforms.schema import SYNTH_SCHEMA

STATS_FILE = "_stats.json"
WORK_DIR = "_work"
OUTPUT_FILE = "part-00000.parquet"
STATS_METADATA_KEY = b"instructmix.stats"


# --- documents -------------------------------------------------------------------


def iter_documents(paths: list[str], counters: Counter, storage_options: dict) -> Iterator[dict]:
    """Documents from mined Parquet (each answer is a document) or shards with a `text` field."""
    from jobs.mix_sources import PRETRAIN_ENDINGS, expand_paths, iter_pretrain_docs

    for path in expand_paths(paths, storage_options=storage_options, endings=PRETRAIN_ENDINGS):
        field = "text"
        if path.endswith(".parquet"):
            names = pq.read_schema(path).names
            if "text" not in names and "output" in names:
                field = "output"
        for doc in iter_pretrain_docs(path, field, counters, storage_options):
            counters["documents_read"] += 1
            yield {"id": f"{os.path.basename(path)}#{doc.index}", "text": doc.text, "url": doc.url,
                   "provenance": doc.provenance}


def _batches(docs: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for d in docs:
        batch.append(d)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- records ---------------------------------------------------------------------


def _record(instruction: str, input_: str, output: str, *, lang: str, mode: str, task_type: str,
            template_id: str = "", seed_ids: list[str] | None = None, model: str = "", sampling: str = "",
            prompt: str = "", source_url: str = "", source_file: str = "", source_record: str = "",
            confidence: float = 0.5) -> dict:
    from jobs.llm_engine import prompt_hash
    from transforms.pairs import pair_id

    return {
        "id": pair_id(source_url or mode, f"synth_{mode}", instruction, input_, output),
        "instruction": instruction, "input": input_, "output": output,
        "kind": f"synth_{task_type}" if task_type else f"synth_{mode}", "miner": f"synth_{mode}",
        "confidence": confidence, "lang": lang, "lang_score": 0.0, "source_url": source_url,
        "source_file": source_file, "source_record": source_record, "title": "", "classifier_score": None,
        "mode": mode, "task_type": task_type, "template_id": template_id, "seed_ids": seed_ids or [],
        "model": model, "sampling": sampling, "prompt_hash": prompt_hash(prompt) if prompt else "",
    }


def _keep(record: dict, counters: Counter) -> bool:
    """The mining filters (lengths, boilerplate, harmful content, …) judge synthesized pairs too."""
    from transforms import filters, pii

    for key in ("instruction", "input", "output"):
        record[key], n = pii.scrub_pii(record[key].strip())
        counters["pii_scrubbed"] += n
    reason = filters.reject_reason(record["instruction"], record["input"], record["output"], record["lang"])
    if reason:
        counters[f"drop:{reason}"] += 1
        return False
    counters[f"accepted:{record['mode']}"] += 1
    return True


def _filled(batch: list[dict], config: SynthConfig, counters: Counter,
            answerable_only: bool = False) -> list[tuple[dict, object]]:
    from transforms.instruction_templates import load_instruction_templates
    from transforms.langid import get_language_identifier
    from transforms.slot_fillers import fill_from_document

    templates = load_instruction_templates(config.templates)
    lid = get_language_identifier()
    out = []
    for doc in batch:
        lang = lid.identify(doc["text"][:2000])[0]
        if lang not in ("en", "zh"):
            counters["skip:language"] += 1
            continue
        for filled in fill_from_document(templates, doc["text"], lang, config.seed, doc["id"],
                                         config.templates_per_document, answerable_only=answerable_only):
            out.append((doc, filled))
    counters["instructions_filled"] += len(out)
    return out


def template_only_batch(batch: list[dict], config: SynthConfig) -> tuple[list[dict], Counter]:
    from transforms.extractive_answers import answer_with_reason

    counters: Counter = Counter()
    records = []
    # Only templates the passage can answer without a model (no translate / write).
    for doc, filled in _filled(batch, config, counters, answerable_only=True):
        answer, reason = answer_with_reason(filled)
        if not answer:
            counters[f"drop:{reason}"] += 1
            continue
        rec = _record(filled.instruction, "", answer, lang=filled.lang, mode="template_only",
                      task_type=filled.task_type, template_id=filled.template_id, source_url=doc["url"],
                      source_file=doc["provenance"].get("file", ""), source_record=doc["provenance"].get("record", ""),
                      confidence=0.6)
        if _keep(rec, counters):
            records.append(rec)
    return records, counters


def template_batch(batch: list[dict], config: SynthConfig, pool, seed_offset: int) -> tuple[list[dict], Counter]:
    from transforms.prompts import NO_ANSWER, grounded_answer_prompt

    counters: Counter = Counter()
    filled = [(doc, f) for doc, f in _filled(batch, config, counters) if f.grounding]
    prompts = [grounded_answer_prompt(f.instruction, f.grounding) for _, f in filled]
    outputs = pool.generate(prompts, seed_offset=seed_offset) if prompts else []
    counters["generations"] += len(outputs)
    records = []
    for (doc, f), prompt, out in zip(filled, prompts, outputs):
        text = out["text"].strip()
        if not text or NO_ANSWER in text:
            counters["drop:empty_generation" if not text else "drop:model_says_no_answer"] += 1
            continue
        rec = _record(f.instruction, "", text, lang=f.lang, mode="template", task_type=f.task_type,
                      template_id=f.template_id, model=config.model or "", sampling=pool.sampling_json(),
                      prompt=prompt, source_url=doc["url"], source_file=doc["provenance"].get("file", ""),
                      source_record=doc["provenance"].get("record", ""))
        if _keep(rec, counters):
            records.append(rec)
    return records, counters


def doc_qa_batch(batch: list[dict], config: SynthConfig, pool, seed_offset: int, tokenizer) -> tuple[list[dict], Counter]:
    from transforms.doc_qa import QA_PAIRS_JSON_SCHEMA, chunk_document, pairs_to_keep, parse_qa_pairs
    from transforms.langid import get_language_identifier
    from transforms.prompts import doc_qa_prompt

    counters: Counter = Counter()
    lid = get_language_identifier()

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    # Room for the prompt's own words and the answer inside the context.
    budget = max(64, config.engine.max_model_len - config.sampling.max_tokens - 256)
    rng = random.Random(config.seed + seed_offset)
    jobs = []
    for doc in batch:
        for chunk in chunk_document(doc["text"], budget, count_tokens):
            jobs.append((doc, chunk, pairs_to_keep(count_tokens(chunk), rng)))
    prompts = [doc_qa_prompt(chunk, max(3, keep)) for _, chunk, keep in jobs]
    outputs = pool.generate(prompts, json_schema=QA_PAIRS_JSON_SCHEMA, seed_offset=seed_offset) if prompts else []
    counters["generations"] += len(outputs)
    records = []
    for (doc, chunk, keep), prompt, out in zip(jobs, prompts, outputs):
        pairs = parse_qa_pairs(out["text"])
        if not pairs:
            counters["drop:unparsable_qa"] += 1
            continue
        lang = lid.identify(chunk[:2000])[0]
        for question, answer in pairs[:keep]:
            rec = _record(question, "", answer, lang=lang, mode="doc_qa", task_type="answer",
                          model=config.model or "", sampling=pool.sampling_json(), prompt=prompt,
                          source_url=doc["url"], source_file=doc["provenance"].get("file", ""),
                          source_record=doc["provenance"].get("record", ""))
            if _keep(rec, counters):
                records.append(rec)
    return records, counters


# --- checkpoints -----------------------------------------------------------------


def _checkpoint(work: str, k: int) -> str:
    return os.path.join(work, f"batch-{k:06d}.parquet")


def _write_checkpoint(path: str, records: list[dict], counters: Counter) -> None:
    table = pa.Table.from_pylist(records, schema=SYNTH_SCHEMA)
    meta = {STATS_METADATA_KEY: json.dumps(dict(counters)).encode()}
    table = table.replace_schema_metadata(meta)
    tmp = f"{path}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _read_checkpoint(path: str) -> tuple[pa.Table, Counter]:
    table = pq.read_table(path)
    meta = (table.schema.metadata or {}).get(STATS_METADATA_KEY, b"{}")
    return table, Counter(json.loads(meta))


# --- the job ---------------------------------------------------------------------


def run_synth(inputs: list[str] | None, output: str, mode: str, config: SynthConfig | None = None,
              address: str | None = None) -> dict:
    from jobs.progress import log

    config = config or SynthConfig()
    if mode != "template_only" and not config.model:
        raise ValueError(f"mode {mode!r} needs `model:` in the synth config (a local model folder); "
                         "mode template_only needs none")
    if mode != "self_instruct" and not inputs:
        raise ValueError(f"mode {mode!r} needs --input (mined Parquet or document shards)")
    started = time.time()
    work = os.path.join(output, WORK_DIR, mode)
    os.makedirs(work, exist_ok=True)
    pool = None
    if mode != "template_only":
        import ray

        from jobs.llm_engine import GeneratorPool

        ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        pool = GeneratorPool(config.model, config.engine, config.sampling)
    counters: Counter = Counter()
    accepted = 0
    done_batches = resumed = 0
    try:
        if mode == "self_instruct":
            from jobs.self_instruct_loop import run_self_instruct

            accepted, done_batches, resumed = run_self_instruct(config, pool, work, counters,
                                                               _checkpoint, _write_checkpoint, _read_checkpoint)
        else:
            tokenizer = None
            if mode == "doc_qa":
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=True)
            docs = iter_documents(inputs, counters, config.storage_options)
            for k, batch in enumerate(_batches(docs, config.documents_per_batch)):
                path = _checkpoint(work, k)
                if os.path.exists(path):
                    table, c = _read_checkpoint(path)
                    resumed += 1
                else:
                    if mode == "template_only":
                        records, c = template_only_batch(batch, config)
                    elif mode == "template":
                        records, c = template_batch(batch, config, pool, seed_offset=k * 100_000)
                    else:
                        records, c = doc_qa_batch(batch, config, pool, k * 100_000, tokenizer)
                    _write_checkpoint(path, records, c)
                    table = pa.Table.from_pylist(records, schema=SYNTH_SCHEMA)
                counters.update(c)
                accepted += table.num_rows
                done_batches += 1
                log(f"synth {mode}: batch {k} done, {accepted} accepted so far")
                if accepted >= config.limit:
                    break
    finally:
        if pool is not None:
            pool.shutdown()
    return _publish(output, work, mode, config, counters, done_batches, resumed, started)


def _publish(output, work, mode, config, counters, done_batches, resumed, started) -> dict:
    from jobs.progress import log

    parts = sorted(p for p in os.listdir(work) if p.startswith("batch-") and p.endswith(".parquet"))
    tables = [pq.read_table(os.path.join(work, p)).replace_schema_metadata(None) for p in parts[:done_batches]]
    table = pa.concat_tables(tables) if tables else SYNTH_SCHEMA.empty_table()
    table = table.slice(0, config.limit)
    tmp = os.path.join(output, f".{OUTPUT_FILE}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, os.path.join(output, OUTPUT_FILE))
    by_task = Counter(table.column("task_type").to_pylist()) if table.num_rows else Counter()
    stats = {
        "mode": mode, "model": config.model, "written": table.num_rows, "batches": done_batches,
        "batches_resumed": resumed, "by_task_type": dict(sorted(by_task.items())),
        "by_language": dict(sorted(Counter(table.column("lang").to_pylist()).items())) if table.num_rows else {},
        "counters": dict(sorted(counters.items())), "elapsed_seconds": round(time.time() - started, 2),
    }
    with open(os.path.join(output, STATS_FILE), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=2, ensure_ascii=False)
    log(f"synth {mode}: wrote {table.num_rows} records to {output}")
    return stats
