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
loses nothing. The LLM runs in Ray actors (jobs.engines.vllm_actors); Ray is embedded
unless an address is given.
"""

from __future__ import annotations

import functools
import json
import os
import random
import time
from collections import Counter, deque
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import SynthConfig
from jobs.synth_records import keep_record, synth_record
from transforms.records import SYNTH_SCHEMA

STATS_FILE = "_stats.json"
WORK_DIR = "_work"
OUTPUT_FILE = "part-00000.parquet"
STATS_METADATA_KEY = b"instructmix.stats"


# --- documents -------------------------------------------------------------------


def iter_documents(paths: list[str], counters: Counter, storage_options: dict) -> Iterator[dict]:
    """Documents from mined Parquet (each answer is a document) or shards with a `text` field."""
    from transforms.io.mix_inputs import PRETRAIN_ENDINGS, expand_paths, iter_pretrain_docs

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


def _filled(batch: list[dict], config: SynthConfig, counters: Counter,
            answerable_only: bool = False) -> list[tuple[dict, object]]:
    from transforms.synth.instruction_templates import load_instruction_templates
    from transforms.langid import get_language_identifier
    from transforms.synth.slot_fillers import fill_from_document

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
    from transforms.synth.extractive_answers import answer_with_reason

    counters: Counter = Counter()
    records = []
    # Only templates the passage can answer without a model (no translate / write).
    for doc, filled in _filled(batch, config, counters, answerable_only=True):
        answer, reason = answer_with_reason(filled)
        if not answer:
            counters[f"drop:{reason}"] += 1
            continue
        rec = synth_record(filled.instruction, "", answer, lang=filled.lang, mode="template_only",
                           task_type=filled.task_type, template_id=filled.template_id, confidence=0.6,
                           **_provenance(doc))
        if keep_record(rec, counters):
            records.append(rec)
    return records, counters


def _provenance(doc: dict) -> dict:
    return {"source_url": doc["url"], "source_file": doc["provenance"].get("file", ""),
            "source_record": doc["provenance"].get("record", "")}


def template_prompts(batch: list[dict], config: SynthConfig) -> tuple[list, list[str], Counter]:
    """Filled instructions that have a grounding passage, and the prompts that answer them from it."""
    from transforms.synth.prompts import grounded_answer_prompt, load_prompts

    counters: Counter = Counter()
    user_prompts = load_prompts(config.prompts)
    filled = [(doc, f) for doc, f in _filled(batch, config, counters) if f.grounding]
    prompts = [grounded_answer_prompt(f.instruction, f.grounding, prompts=user_prompts) for _, f in filled]
    return filled, prompts, counters


def template_records(filled: list, prompts: list[str], outputs: list[dict], counters: Counter,
                     config: SynthConfig, sampling: str) -> list[dict]:
    from transforms.synth.prompts import NO_ANSWER

    counters["generations"] += len(outputs)
    records = []
    for (doc, f), prompt, out in zip(filled, prompts, outputs, strict=True):
        text = out["text"].strip()
        if not text or NO_ANSWER in text:
            counters["drop:empty_generation" if not text else "drop:model_says_no_answer"] += 1
            continue
        rec = synth_record(f.instruction, "", text, lang=f.lang, mode="template", task_type=f.task_type,
                           template_id=f.template_id, model=config.model or "", sampling=sampling,
                           prompt=prompt, **_provenance(doc))
        if keep_record(rec, counters):
            records.append(rec)
    return records


def doc_qa_prompts(batch: list[dict], config: SynthConfig, seed_offset: int, tokenizer) -> tuple[list, list[str], Counter]:
    """Chunks that fit the context, each with how many pairs to keep, and the prompts asking for them."""
    from transforms.synth.doc_qa import chunk_document, pairs_to_keep
    from transforms.synth.prompts import doc_qa_prompt, load_prompts

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    # Room for the prompt's own words and the answer inside the context.
    budget = max(64, config.engine.max_model_len - config.sampling.max_tokens - 256)
    rng = random.Random(config.seed + seed_offset)
    jobs = []
    for doc in batch:
        for chunk in chunk_document(doc["text"], budget, count_tokens):
            jobs.append((doc, chunk, pairs_to_keep(count_tokens(chunk), rng)))
    user_prompts = load_prompts(config.prompts)
    prompts = [doc_qa_prompt(chunk, max(3, keep), prompts=user_prompts) for _, chunk, keep in jobs]
    return jobs, prompts, Counter()


def doc_qa_records(jobs: list, prompts: list[str], outputs: list[dict], counters: Counter,
                   config: SynthConfig, sampling: str) -> list[dict]:
    from transforms.synth.doc_qa import parse_qa_pairs
    from transforms.langid import get_language_identifier

    lid = get_language_identifier()
    counters["generations"] += len(outputs)
    records = []
    for (doc, chunk, keep), prompt, out in zip(jobs, prompts, outputs, strict=True):
        pairs = parse_qa_pairs(out["text"])
        if not pairs:
            counters["drop:unparsable_qa"] += 1
            continue
        lang = lid.identify(chunk[:2000])[0]
        for question, answer in pairs[:keep]:
            rec = synth_record(question, "", answer, lang=lang, mode="doc_qa", task_type="answer",
                               model=config.model or "", sampling=sampling, prompt=prompt, **_provenance(doc))
            if keep_record(rec, counters):
                records.append(rec)
    return records


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
    config = config or SynthConfig()
    if mode != "template_only" and not config.model:
        raise ValueError(f"mode {mode!r} needs `model:` in the synth config (a local model folder); "
                         "mode template_only needs none")
    if mode != "self_instruct" and not inputs:
        raise ValueError(f"mode {mode!r} needs --input (mined Parquet or document shards)")
    if mode != "template_only":
        from transforms.synth.prompts import load_prompts

        load_prompts(config.prompts)  # a bad user prompt file fails now, not after the engines start
    started = time.time()
    work = os.path.join(output, WORK_DIR, mode)
    os.makedirs(work, exist_ok=True)
    from jobs.engines.ray import init_ray

    # Embedded Ray of its own unless an address joins a cluster; template_only's
    # batches run as Ray tasks too, so the same command scales out with --address.
    init_ray(address)
    pool = None
    if mode != "template_only":
        from jobs.engines.vllm_actors import GeneratorPool

        pool = GeneratorPool(config.model, config.engine, config.sampling)
    progress = _Progress(mode, config.limit)
    try:
        if mode == "self_instruct":
            from jobs.self_instruct_loop import run_self_instruct

            progress.accepted, progress.done, progress.resumed = run_self_instruct(
                config, pool, work, progress.counters, _checkpoint, _write_checkpoint, _read_checkpoint)
        else:
            docs = iter_documents(inputs, progress.counters, config.storage_options)
            _run_batches(mode, _batches(docs, config.documents_per_batch), work, config, pool, progress)
    finally:
        if pool is not None:
            pool.shutdown()
    return _publish(output, work, mode, config, progress.counters, progress.done, progress.resumed, started)


class _Progress:
    """What the finished batches add up to, in batch order."""

    def __init__(self, mode: str, limit: int) -> None:
        self.mode, self.limit = mode, limit
        self.counters: Counter = Counter()
        self.accepted = self.done = self.resumed = 0

    def add(self, k: int, rows: int, counters: Counter, resumed: bool) -> None:
        from jobs.progress import log

        self.counters.update(counters)
        self.accepted += rows
        self.done += 1
        self.resumed += resumed
        log(f"synth {self.mode}: batch {k} {'resumed' if resumed else 'done'}, {self.accepted} accepted so far")

    @property
    def full(self) -> bool:
        return self.accepted >= self.limit


def _batch_starter(mode: str, config: SynthConfig, pool):
    """start(k, batch) submits batch k's work and returns finish() -> (records, counters)."""
    import ray

    if mode == "template_only":
        task = ray.remote(num_cpus=1, max_retries=2)(template_only_batch)
        return lambda k, batch: functools.partial(ray.get, task.remote(batch, config))
    if mode == "template":
        build, schema = template_records, None

        def prepare(batch: list[dict], seed_offset: int):
            return template_prompts(batch, config)
    else:
        from transformers import AutoTokenizer

        from transforms.synth.doc_qa import QA_PAIRS_JSON_SCHEMA

        tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=True)
        build, schema = doc_qa_records, QA_PAIRS_JSON_SCHEMA

        def prepare(batch: list[dict], seed_offset: int):
            return doc_qa_prompts(batch, config, seed_offset, tokenizer)

    def start(k: int, batch: list[dict]):
        seed_offset = k * 100_000
        items, prompts, counters = prepare(batch, seed_offset)
        refs = pool.submit(prompts, json_schema=schema, seed_offset=seed_offset) if prompts else []

        def finish() -> tuple[list[dict], Counter]:
            records = build(items, prompts, pool.collect(refs), counters, config, pool.sampling_json())
            return records, counters

        return finish

    return start


def _run_batches(mode: str, batches, work: str, config: SynthConfig, pool, progress: _Progress) -> None:
    """Keep several batches submitted (one per engine plus one, or one per CPU for
    template_only) and finish them in batch order, so the output and where `limit`
    stops do not depend on which batch finished first."""
    import ray

    start = _batch_starter(mode, config, pool)
    depth = len(pool.actors) + 1 if pool is not None else max(1, int(ray.cluster_resources().get("CPU", 1)))
    in_flight: deque = deque()

    def settle() -> None:
        k, path, finish = in_flight.popleft()
        if finish is None:
            table, c = _read_checkpoint(path)
            progress.add(k, table.num_rows, c, resumed=True)
            return
        records, c = finish()
        _write_checkpoint(path, records, c)
        progress.add(k, len(records), c, resumed=False)

    for k, batch in enumerate(batches):
        path = _checkpoint(work, k)
        in_flight.append((k, path, None if os.path.exists(path) else start(k, batch)))
        while in_flight and not progress.full and (len(in_flight) > depth or in_flight[0][2] is None):
            settle()
        if progress.full:
            return
    while in_flight and not progress.full:
        settle()


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
