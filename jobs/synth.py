"""`instructmix synth`: instruction-response pairs made by templates, Self-Instruct and an LLM.

Modes (all read mined Parquet — its answers serve as documents — or document
shards with a `text` field):
* template_only: templates filled from the documents, answered extractively from
  the passage they came from; no model, runs anywhere.
* template: the same filled instructions, answered by the LLM grounded in the passage.
* doc_qa: documents chunked to fit the context; the LLM writes several varied
  question-answer pairs per chunk as JSON (vLLM structured outputs); a number
  proportional to the chunk's length is kept, each typed by what it asks
  (`qa_why`, `qa_how`, `qa_quantity`, …: transforms.questions.question_kind).
* self_instruct: rounds of 8-task prompts (6 human seeds, 2 machine) → new
  instructions → filters and ROUGE-L novelty against the whole pool →
  classification check → output-first or input-first instances → filters.

Work is cut into numbered batches (documents, or self-instruct rounds); a finished
batch is a Parquet file under OUTPUT/_work/<fingerprint>/, so a re-run after a kill
skips it and loses nothing, and a run with another model, sampling, prompt or input
never picks it up (`work_fingerprint`). The LLM runs in Ray actors
(jobs.engines.vllm_actors); Ray is embedded unless an address is given.

The output folder is a `jobs.workdir.StageOutput`: locked for the run, refused when
it holds files synthesis did not write (unless `overwrite`), published as
`part-00000.parquet` plus `_stats.json` (the shape of `transforms.stats`, counters
`synth.*`). Every read and write goes through fsspec with `storage_options`, so
inputs and output may be local or `s3://`, `gs://`, `hdfs://`.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pyarrow.parquet as pq

from jobs.config import SYNTH_MODES, ConfigError, SynthConfig
from jobs.errors import UserError
from jobs.synth_records import BatchCheckpoints, keep_record, synth_record
from jobs.workdir import STATS_FILE, WORK_DIR, StageOutput, fingerprint
from transforms.records import SYNTH_SCHEMA
from transforms.stats import counter_name, prefixed, stats_document

OUTPUT_FILE = "part-00000.parquet"
# Keys that change how much work is done, not what a batch holds: a run with a
# larger `limit` or more rounds resumes the batches of a smaller one, and
# credentials do not change content.
_NOT_FINGERPRINTED = {"limit", "self_instruct_rounds", "storage_options"}


# --- documents -------------------------------------------------------------------


def input_files(inputs: list[str], storage_options: dict) -> list[str]:
    """The document files of `inputs` (files, folders, globs, URLs); raises naming a pattern that matches none."""
    from transforms.io.mix_inputs import PRETRAIN_ENDINGS, expand_paths

    return expand_paths(inputs, storage_options=storage_options, endings=PRETRAIN_ENDINGS)


def iter_file_documents(path: str, counters: Counter, storage_options: dict) -> Iterator[dict]:
    """The documents of one input file: mined Parquet (each answer is a document) or shards
    with a `text` field.

    The reader's own counts (`skip:<reason>`, `repaired:<what>`) become
    `documents.skip.<reason>` / `documents.repaired.<what>`.
    """
    from transforms.io.mix_inputs import PARQUET_ENDINGS, iter_pretrain_docs

    field = "text"
    if path.lower().endswith(PARQUET_ENDINGS):
        fs, fs_path = fsspec.core.url_to_fs(path, **storage_options)
        names = pq.read_schema(fs_path, filesystem=fs).names
        if "text" not in names and "output" in names:
            field = "output"
    reader_counts: Counter = Counter()
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for doc in iter_pretrain_docs(path, field, reader_counts, storage_options):
        counters["documents.read"] += 1
        yield {"id": f"{name}#{doc.index}", "text": doc.text, "url": doc.url, "provenance": doc.provenance}
        _move_reader_counts(reader_counts, counters)
    _move_reader_counts(reader_counts, counters)


def _move_reader_counts(reader_counts: Counter, counters: Counter) -> None:
    for key, count in reader_counts.items():
        counters[f"documents.{key.replace(':', '.')}"] += count
    reader_counts.clear()


def read_document_batches(path: str, size: int, storage_options: dict) -> Iterator[dict]:
    """A file's documents in batches of `size`: {"docs": [...], "counts": the reader's counters
    since the previous batch}. Run as a streaming Ray task: each batch becomes an object the
    next stage takes, never fetched by the driver. A file whose last skipped lines come after
    its last document ends with a batch of counts only."""
    docs: list[dict] = []
    counts: Counter = Counter()
    for doc in iter_file_documents(path, counts, storage_options):  # counts into `counts`, as it reads
        docs.append(doc)
        if len(docs) == size:
            yield {"docs": docs, "counts": Counter(counts)}
            docs = []
            counts.clear()
    if docs or counts:
        yield {"docs": docs, "counts": Counter(counts)}


# --- records ---------------------------------------------------------------------


def _filled(batch: list[dict], config: SynthConfig, counters: Counter,
            answerable_only: bool = False) -> list[tuple[dict, object]]:
    from transforms.langid import get_language_identifier
    from transforms.synth.instruction_templates import load_instruction_templates
    from transforms.synth.slot_fillers import fill_from_document
    from transforms.text import RULE_LANGUAGES

    templates = load_instruction_templates(config.templates)
    lid = get_language_identifier()
    out = []
    for doc in batch:
        lang = lid.identify(doc["text"][:2000])[0]
        if lang not in RULE_LANGUAGES:  # the languages with instruction templates and rules
            counters["documents.skip.language"] += 1
            continue
        for filled in fill_from_document(templates, doc["text"], lang, config.seed, doc["id"],
                                         config.templates_per_document, answerable_only=answerable_only):
            out.append((doc, filled))
    counters["instructions.filled"] += len(out)
    return out


def template_only_batch(batch: dict, config: SynthConfig) -> tuple[list[dict], Counter]:
    """A batch's records of mode template_only (a Ray task: no model)."""
    from transforms.synth.extractive_answers import answer_with_reason

    counters: Counter = Counter(batch["counts"])
    records = []
    # Only templates the passage can answer without a model (no translate / write).
    for doc, filled in _filled(batch["docs"], config, counters, answerable_only=True):
        answer, reason = answer_with_reason(filled)
        if not answer:
            counters[f"records.drop.{reason}"] += 1
            continue
        rec = synth_record(filled.instruction, "", answer, lang=filled.lang, mode="template_only",
                           task_type=filled.task_type, template_id=filled.template_id, confidence=0.6,
                           provenance=doc["provenance"])
        if keep_record(rec, counters):
            records.append(rec)
    return records, counters


def template_prompts(batch: list[dict], config: SynthConfig, fitter) -> tuple[list, list, Counter]:
    """Filled instructions that have a grounding passage, and the prompts that answer them from
    it, each fitted to the context (`fitter`, a transforms.synth.prompt_fit.PromptFitter): a
    long passage keeps its first sentences; what cannot fit is counted, not sent."""
    from transforms.synth.prompt_fit import PROMPT_TOO_LONG
    from transforms.synth.prompts import grounded_answer_prompt, load_prompts

    counters: Counter = Counter()
    user_prompts = load_prompts(config.prompts)
    items, prompts = [], []
    for doc, f in _filled(batch, config, counters):
        if not f.grounding:  # a template with nothing on the page to answer from
            counters["prompts.skip.no_passage"] += 1
            continue
        fitted = fitter.with_passage(
            lambda passage, f=f: grounded_answer_prompt(f.instruction, passage, prompts=user_prompts), f.grounding, f.lang)
        if fitted is None:
            counters[f"prompts.drop.{PROMPT_TOO_LONG}"] += 1
            continue
        prompt, cut = fitted
        counters["prompts.cut.passage"] += cut
        items.append((doc, f))
        prompts.append(prompt)
    counters["prompts.sent"] += len(prompts)
    return items, prompts, counters


def template_records(filled: list, prompts: list, outputs: list[dict], counters: Counter,
                     config: SynthConfig, sampling: str) -> list[dict]:
    from transforms.synth.grounding import answer_rejection
    from transforms.synth.prompts import NO_ANSWER

    counters["generations"] += len(outputs)
    records = []
    for (doc, f), prompt, out in zip(filled, prompts, outputs, strict=True):
        text = out["text"].strip()
        if not text or NO_ANSWER in text:
            counters["records.drop.empty_generation" if not text else "records.drop.model_says_no_answer"] += 1
            continue
        reason = answer_rejection(text, f.grounding, f.instruction, config.min_answer_share)
        if reason:
            counters[f"records.drop.{reason}"] += 1
            continue
        rec = synth_record(f.instruction, "", text, lang=f.lang, mode="template", task_type=f.task_type,
                           template_id=f.template_id, model=config.model or "", sampling=sampling,
                           prompt=prompt.text, provenance=doc["provenance"])
        if keep_record(rec, counters):
            records.append(rec)
    return records


# The most pairs one doc_qa prompt asks for; sizes the room left for the chunk.
_MOST_PAIRS_ASKED = 99


def doc_qa_prompts(batch: list[dict], config: SynthConfig, seed_offset: int, fitter) -> tuple[list, list, Counter]:
    """Chunks cut to fit the prompt's room, each with how many pairs to keep, and the prompts
    asking for them; a chunk whose prompt still does not fit is counted, not sent."""
    from transforms.synth.doc_qa import chunk_document, pairs_to_keep
    from transforms.synth.prompt_fit import PROMPT_TOO_LONG
    from transforms.synth.prompts import doc_qa_prompt, load_prompts

    user_prompts = load_prompts(config.prompts)
    counters: Counter = Counter()
    room = fitter.passage_room(lambda d: doc_qa_prompt(d, _MOST_PAIRS_ASKED, prompts=user_prompts))
    if room < 16:
        counters[f"prompts.drop.{PROMPT_TOO_LONG}"] += len(batch)
        return [], [], counters
    count = fitter.encoder.count
    rng = random.Random(config.seed + seed_offset)
    jobs, prompts = [], []
    for doc in batch:
        for chunk in chunk_document(doc["text"], room, count):
            keep = pairs_to_keep(count(chunk), rng)
            asked = max(3, keep)
            fitted = fitter.with_passage(lambda d, n=asked: doc_qa_prompt(d, n, prompts=user_prompts), chunk)
            if fitted is None:
                counters[f"prompts.drop.{PROMPT_TOO_LONG}"] += 1
                continue
            prompt, cut = fitted
            counters["prompts.cut.passage"] += cut
            jobs.append((doc, chunk, keep))
            prompts.append(prompt)
    counters["prompts.sent"] += len(prompts)
    return jobs, prompts, counters


def doc_qa_records(jobs: list, prompts: list, outputs: list[dict], counters: Counter,
                   config: SynthConfig, sampling: str) -> list[dict]:
    from transforms.langid import get_language_identifier
    from transforms.questions import question_kind
    from transforms.synth.doc_qa import parse_qa_pairs
    from transforms.synth.grounding import question_answer_rejection

    lid = get_language_identifier()
    counters["generations"] += len(outputs)
    records = []
    for (doc, chunk, keep), prompt, out in zip(jobs, prompts, outputs, strict=True):
        pairs = parse_qa_pairs(out["text"], truncated=out.get("finish_reason") == "length")
        if not pairs:
            counters["records.drop.unparsable_qa"] += 1
            continue
        lang = lid.identify(chunk[:2000])[0]
        counters["records.parsed"] += len(pairs)
        grounded = []
        for question, answer in pairs:
            reason = question_answer_rejection(question, answer, chunk, lang, config.min_answer_share)
            if reason:
                counters[f"records.drop.{reason}"] += 1
            else:
                grounded.append((question, answer))
        # The chunk's share of pairs (pairs_to_keep); the prompt asks for at least 3 to choose from.
        counters["records.drop.over_chunk_quota"] += max(0, len(grounded) - keep)
        for question, answer in grounded[:keep]:
            rec = synth_record(question, "", answer, lang=lang, mode="doc_qa",
                               task_type=f"qa_{question_kind(question, lang)}",
                               model=config.model or "", sampling=sampling, prompt=prompt.text,
                               provenance=doc["provenance"])
            if keep_record(rec, counters):
                records.append(rec)
    return records


def prepare_llm_batch(mode: str, batch: dict, config: SynthConfig, model_dir: str,
                      seed_offset: int) -> tuple[tuple, list[list[int]]]:
    """A Ray task: a batch's prompts (token ids, for the engines) and what finishing the
    batch needs beside the completions (the items they answer, the prompts, counters)."""
    fitter = worker_fitter(config, model_dir)
    if mode == "template":
        items, prompts, counters = template_prompts(batch["docs"], config, fitter)
    else:
        items, prompts, counters = doc_qa_prompts(batch["docs"], config, seed_offset, fitter)
    counters.update(batch["counts"])
    return (items, prompts, counters), [p.token_ids for p in prompts]


def finish_llm_batch(mode: str, prepared: tuple, outputs: list[dict], config: SynthConfig,
                     sampling: str) -> tuple[list[dict], Counter]:
    """A Ray task: the batch's records from its completions, parsed, grounded and filtered."""
    items, prompts, counters = prepared
    build = template_records if mode == "template" else doc_qa_records
    return build(items, prompts, outputs, counters, config, sampling), counters


@functools.lru_cache(maxsize=4)
def _cached_fitter(config_json: str, model_dir: str):
    return prompt_fitter(SynthConfig.model_validate_json(config_json), model_dir)


def worker_fitter(config: SynthConfig, model_dir: str):
    """The prompt fitter in a Ray worker: the tokenizer is loaded once per worker process."""
    return _cached_fitter(config.model_dump_json(), model_dir)


# --- what a run may reuse ----------------------------------------------------------


def _user_files_digest(config: SynthConfig, model_dir: str | None) -> dict[str, str]:
    """A hash of each user template / prompt / seed file or folder the config names,
    and of the model folder's files.

    The code version covers the packaged ones; a user's edited prompt, or another
    model copied to the same path, must not reuse completions made with the old one.
    """
    digests = {}
    for key in ("templates", "prompts", "seeds"):
        where = getattr(config, key)
        if not where:
            continue
        root = Path(where)
        h = hashlib.sha256()
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                h.update(path.relative_to(root).as_posix().encode() if path != root else b"")
                h.update(path.read_bytes())
        digests[key] = h.hexdigest()
    model = Path(model_dir) if model_dir else None
    if model is not None and model.is_dir():
        # Weights are gigabytes: their names, sizes and times stand for them.
        h = hashlib.sha256()
        for path in sorted(p for p in model.iterdir() if p.is_file()):
            st = path.stat()
            h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        digests["model"] = h.hexdigest()
    return digests


def work_fingerprint(mode: str, config: SynthConfig, files: list[str], model_dir: str | None = None) -> str:
    """The fingerprint of what a batch holds: mode, resolved config, user files, each
    input file's path, size and modification time, and the code version
    (`jobs.workdir.fingerprint`). A re-mined input is new input even when its
    name stayed; a needless recompute is cheap next to publishing stale pairs."""
    resolved = config.model_dump(mode="json", exclude=_NOT_FINGERPRINTED)
    identities = []
    for path in files:
        fs, fs_path = fsspec.core.url_to_fs(path, **config.storage_options)
        identities.append([path, fs.size(fs_path), _modified(fs, fs_path)])
    return fingerprint("synth", {"mode": mode, "config": resolved, "user_files": _user_files_digest(config, model_dir),
                                 "inputs": identities})


def _modified(fs, path: str) -> str:
    try:
        return fs.modified(path).isoformat()
    except (NotImplementedError, KeyError, TypeError):  # a filesystem that keeps no times (HTTP)
        return ""


@dataclass
class _Plan:
    """What the driver settled before any engine starts."""

    files: list[str]  # the input document files ([] for self_instruct)
    model_dir: str | None = None  # the folder (or cached hub id) the engines load
    fitter: object = None  # transforms.synth.prompt_fit.PromptFitter of the LLM modes


def check_before_start(inputs: list[str] | None, mode: str, config: SynthConfig) -> _Plan:
    """Everything the driver can check before Ray starts.

    Mode and model, the inputs (every pattern must match a document file), the
    instruction templates, prompts and seed tasks (parsed and compiled in the
    sandbox), then the model: its folder, its tokenizer, the prompt format and
    the room `max_model_len - max_tokens` leaves a prompt. A mistake costs a
    second, not an engine start-up.
    """
    if mode not in SYNTH_MODES:
        raise ConfigError(f"unknown synthesis mode {mode!r}; choose from {', '.join(SYNTH_MODES)}")
    if mode != "template_only" and not config.model:
        raise ConfigError(f"mode {mode!r} needs `model:` in the synth config (a local model folder, or a "
                          "packaged model such as smollm2-135m); mode template_only needs none")
    if mode != "self_instruct" and not inputs:
        raise ConfigError(f"mode {mode!r} needs --input (mined Parquet or document shards)")
    if mode != "template_only":
        from transforms.synth.prompts import load_prompts

        load_prompts(config.prompts)
    if mode in ("template", "template_only"):
        from transforms.synth.instruction_templates import load_instruction_templates

        load_instruction_templates(config.templates)
    if mode == "self_instruct":
        from transforms.synth.seed_tasks import load_seed_tasks

        load_seed_tasks(config.seeds)
    files = [] if mode == "self_instruct" else input_files(inputs, config.storage_options)
    if mode == "template_only":
        return _Plan(files)
    from jobs.models import resolve_model

    model_dir = resolve_model(config.model)
    return _Plan(files, model_dir, prompt_fitter(config, model_dir))


def prompt_fitter(config: SynthConfig, model_dir: str):
    """The model's tokenizer, prompt format and the room a prompt has (transforms.synth.prompt_fit)."""
    from transformers import AutoTokenizer

    from transforms.synth.prompt_fit import PromptEncoder, PromptFitter, default_prompt_format
    from transforms.synth.prompts import load_prompts, system_prompt

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(f"model {config.model!r}: cannot load its tokenizer from {model_dir}: {err}") from None
    prompt_format = config.prompt_format or default_prompt_format(tokenizer)
    try:
        encoder = PromptEncoder(tokenizer, prompt_format, system_prompt(prompts=load_prompts(config.prompts)))
        return PromptFitter(encoder, config.engine.max_model_len, config.sampling.max_tokens)
    except ValueError as err:
        raise ConfigError(f"synth config, model {config.model!r}: {err}") from None


# --- the job ---------------------------------------------------------------------


def _legacy_output(out: StageOutput) -> list[str]:
    """The file an instructmix before the one-shape `_stats.json` published (its stats had
    `mode` and `written` and no `stage`), so an upgrade can re-run into its old output."""
    stats = out.read_json(STATS_FILE)
    if not isinstance(stats, dict) or "stage" in stats or not {"mode", "written"} <= stats.keys():
        return []
    return [OUTPUT_FILE] if out.exists(OUTPUT_FILE) else []


def run_synth(inputs: list[str] | None, output: str, mode: str, config: SynthConfig | None = None,
              address: str | None = None, overwrite: bool = False) -> dict:
    """Synthesize into `output`; returns the `_stats.json` document it wrote.

    `overwrite`: write into a folder holding files synthesis did not write (they
    are removed when the run publishes).
    """
    config = config or SynthConfig()
    started = time.time()
    plan = check_before_start(inputs, mode, config)
    out = StageOutput("synth", output, config.storage_options)
    if out.fs.isfile(out.root):
        raise UserError(f"output {output} is a file, not a folder; give a folder path")
    out.claim(inputs if mode != "self_instruct" else [], overwrite=overwrite, own=_legacy_output(out))
    fp = work_fingerprint(mode, config, plan.files, plan.model_dir)
    with out.lock():
        # What this run may replace: the previous run's outputs, or with --overwrite everything there.
        previous = out.listing() if overwrite else out.previous_outputs()
        checkpoints = BatchCheckpoints(out.work_dir(fp), config.storage_options)
        progress = _synthesize(plan, mode, config, checkpoints, address)
        return _publish(out, checkpoints, fp, mode, config, progress, started, previous, plan)


def _synthesize(plan: _Plan, mode: str, config: SynthConfig, checkpoints: BatchCheckpoints,
                address: str | None) -> _Progress:
    from jobs.engines.ray import init_ray

    # Embedded Ray of its own unless an address joins a cluster; template_only's
    # batches run as Ray tasks too, so the same command scales out with --address.
    init_ray(address)
    pool = None
    if mode != "template_only":
        from jobs.engines.vllm_actors import GeneratorPool

        pool = GeneratorPool(plan.model_dir, config.engine, config.sampling)
    progress = _Progress(mode, config.limit)
    try:
        if mode == "self_instruct":
            _run_rounds(config, pool, plan.model_dir, checkpoints, progress)
        else:
            _stream_batches(mode, plan, config, pool, checkpoints, progress)
    finally:
        if pool is not None:
            pool.shutdown()
    return progress


class _Progress:
    """What the settled batches add up to, in batch order: the driver's only state per batch."""

    def __init__(self, mode: str, limit: int) -> None:
        self.mode, self.limit = mode, limit
        self.counters: Counter = Counter()
        self.last: int | str | None = None  # the last batch settled (they settle in order)
        self.accepted = self.done = self.resumed = 0

    def add(self, key: int | str, rows: int, counters: Counter, resumed: bool) -> None:
        from jobs.progress import log

        self.counters.update(counters)
        self.accepted += rows
        self.last = key
        self.done += 1
        self.resumed += resumed
        what = "round" if isinstance(key, int) else "batch"
        log(f"synth {self.mode}: {what} {key} {'resumed' if resumed else 'done'}, {self.accepted} accepted so far")

    @property
    def full(self) -> bool:
        return self.accepted >= self.limit


# Input files read at once: each streams its batches into the object store ahead of the
# engines (a few batches each, then it waits), so reading never sets the pace.
READ_AHEAD_FILES = 2
BATCHES_READ_AHEAD = 4


def _document_batches(files: list[str], config: SynthConfig) -> Iterator[tuple[str, int, object]]:
    """(batch key, seed offset, ObjectRef of the batch) of every input file in order.

    Each file is read by a streaming Ray task (read_document_batches); the driver only
    passes the refs on. A batch's seed offset (its prompts' sampling seeds and doc_qa's
    choices) follows from its key, so it does not depend on what ran beside it."""
    import ray

    from jobs.synth_records import batch_key

    # A reader mostly waits (storage, backpressure) and at most READ_AHEAD_FILES run: no CPU slot.
    reader = ray.remote(num_cpus=0)(read_document_batches).options(
        num_returns="streaming", _generator_backpressure_num_objects=BATCHES_READ_AHEAD)
    streams: deque = deque()
    started = 0
    try:
        for file_index in range(len(files)):
            while started < len(files) and len(streams) < READ_AHEAD_FILES:
                streams.append(reader.remote(files[started], config.documents_per_batch, config.storage_options))
                started += 1
            for batch_index, ref in enumerate(streams[0]):
                yield batch_key(file_index, batch_index), (file_index * 100_000 + batch_index) * 100_000, ref
            streams.popleft()
    finally:
        for stream in streams:  # the run stopped early (limit reached, or an error)
            ray.cancel(stream)


def _checkpointed(work: str, key: str, config: SynthConfig) -> bool:
    """Whether a previous run finished this batch: the first stage of a batch asks, so the
    driver makes no storage request per batch."""
    return BatchCheckpoints(work, config.storage_options).exists(key)


def template_only_task(work: str, key: str, batch: dict, config: SynthConfig):
    """A Ray task: the batch's records, or None when it is checkpointed already."""
    return None if _checkpointed(work, key, config) else template_only_batch(batch, config)


def prepare_task(work: str, key: str, mode: str, batch: dict, config: SynthConfig, model_dir: str,
                 seed_offset: int):
    """A Ray task: prepare_llm_batch, or (None, no prompts) when the batch is checkpointed already."""
    if _checkpointed(work, key, config):
        return None, []
    return prepare_llm_batch(mode, batch, config, model_dir, seed_offset)


def finish_task(mode: str, prepared, outputs: list[dict], config: SynthConfig, sampling: str):
    """A Ray task: finish_llm_batch, or None for a batch checkpointed already."""
    return None if prepared is None else finish_llm_batch(mode, prepared, outputs, config, sampling)


def _batch_stages(mode: str, plan: _Plan, config: SynthConfig, pool, work: str):
    """start(key, batch_ref, seed_offset) -> ObjectRef of the batch's (records, counters), or
    of None when a previous run checkpointed it: the stages of one batch chained as Ray
    tasks and an engine request, none fetched here."""
    import ray

    if mode == "template_only":
        task = ray.remote(num_cpus=1, max_retries=2)(template_only_task)
        return lambda key, batch, seed_offset: task.remote(work, key, batch, config)
    schema = None
    if mode == "doc_qa":
        from transforms.synth.doc_qa import QA_PAIRS_JSON_SCHEMA

        schema = QA_PAIRS_JSON_SCHEMA
    prepare = ray.remote(num_cpus=1, max_retries=2, num_returns=2)(prepare_task)
    finish = ray.remote(num_cpus=1, max_retries=2)(finish_task)
    sampling = pool.sampling_json()

    def start(key: str, batch, seed_offset: int):
        prepared, prompts = prepare.remote(work, key, mode, batch, config, plan.model_dir, seed_offset)
        outputs = pool.submit_ref(prompts, json_schema=schema, seed_offset=seed_offset)
        return finish.remote(mode, prepared, outputs, config, sampling)

    return start


def _stream_batches(mode: str, plan: _Plan, config: SynthConfig, pool, checkpoints: BatchCheckpoints,
                    progress: _Progress) -> None:
    """Feed every document batch through its stages and into the OrderedBatchWriter, keeping
    a few batches per engine (or per CPU for template_only) in flight, and settle them in
    batch order, so the output and where `limit` stops do not depend on which batch
    finished first. The driver handles refs and per-batch totals only."""
    import ray

    from jobs.synth_records import OrderedBatchWriter

    # The writer mostly waits for batches; its work per batch is a set lookup per record.
    writer = ray.remote(num_cpus=0)(OrderedBatchWriter).remote(checkpoints.url, config.storage_options)
    start = _batch_stages(mode, plan, config, pool, checkpoints.url)
    if pool is not None:
        depth = len(pool.actors) * config.engine.batches_in_flight + 1
    else:
        depth = max(1, int(ray.cluster_resources().get("CPU", 1))) + 1
    in_flight: deque = deque()

    def settle() -> None:
        key, ref = in_flight.popleft()
        rows, counters, resumed = ray.get(ref)
        progress.add(key, rows, counters, resumed)

    batches = _document_batches(plan.files, config)
    try:
        for key, seed_offset, batch in batches:
            in_flight.append((key, writer.settle.remote(key, start(key, batch, seed_offset))))
            while in_flight and not progress.full and len(in_flight) > depth:
                settle()
            if progress.full:
                break
        while in_flight and not progress.full:
            settle()
    finally:
        batches.close()  # stops the readers
        if in_flight:
            # Batches past `limit` (or beside a failure): their generation is cancelled and
            # whatever they raise is expected; fetched so Ray does not report it as unhandled.
            if pool is not None:
                pool.shutdown()
            for _, ref in in_flight:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:
                    pass
        ray.kill(writer)


def _run_rounds(config: SynthConfig, pool, model_dir: str, checkpoints: BatchCheckpoints,
                progress: _Progress) -> None:
    """Self-Instruct's rounds, one after another (each round's pool of instructions feeds the
    next), run by an actor that holds the loop's state; the driver only counts them."""
    import ray

    from jobs.self_instruct_loop import SelfInstructRounds

    # The loop mostly waits for the engines.
    rounds = ray.remote(num_cpus=0)(SelfInstructRounds).remote(config, pool, model_dir, checkpoints.url)
    try:
        for r in range(config.self_instruct_rounds):
            rows, counters, resumed = ray.get(rounds.run_round.remote(r))
            progress.add(r, rows, counters, resumed)
            if progress.full:
                break
    finally:
        ray.kill(rounds)


def write_output(work: str, last, limit: int, url: str, storage_options: dict) -> tuple[int, list]:
    """A Ray task: the checkpoints of the batches settled up to `last`, in order, as one
    Parquet file at `url` (the first `limit` rows), written batch by batch; returns (rows,
    [(column, value, count)]) of the task type and language columns."""
    from jobs.workdir import atomic_writer

    checkpoints = BatchCheckpoints(work, storage_options)
    keys = checkpoints.keys_through(last) if last is not None else []
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    written, values = 0, Counter()
    with atomic_writer(fs, path) as f, pq.ParquetWriter(f, SYNTH_SCHEMA, compression="zstd") as parquet:
        for key in keys:
            if written >= limit:
                break
            table = checkpoints.read(key)[0].slice(0, limit - written)
            parquet.write_table(table)
            written += table.num_rows
            for column in ("task_type", "lang"):
                values.update((column, v or "none") for v in table.column(column).to_pylist())
    return written, [(column, value, n) for (column, value), n in values.items()]


def _publish(out: StageOutput, checkpoints: BatchCheckpoints, fp: str, mode: str, config: SynthConfig,
             progress: _Progress, started: float, previous: list[str] | None, plan: _Plan) -> dict:
    """Write the output (in a Ray task) and `_stats.json` (the finish line, written last), drop
    what the previous run published and this one did not, and the work of other configs."""
    import ray

    from jobs.progress import log

    task = ray.remote(num_cpus=1)(write_output)
    written, values = ray.get(task.remote(checkpoints.url, progress.last, config.limit, out.url_of(OUTPUT_FILE),
                                          config.storage_options))
    # Before the new stats: once they are written, the old files would look foreign.
    out.remove_stale(keep=[OUTPUT_FILE], previous=previous)
    counters = prefixed("synth", progress.counters)
    counters[counter_name("synth", "records", "written")] = written
    for column, value, count in values:
        counters[counter_name("synth", "records", column, value)] = count
    counters[counter_name("synth", "batches", "done")] = progress.done
    counters[counter_name("synth", "batches", "resumed")] = progress.resumed
    stats = stats_document("synth", counters, run_id=out.run_id, fingerprint=fp,
                           elapsed_seconds=time.time() - started, outputs=[OUTPUT_FILE],
                           details={"mode": mode, "model": config.model or "", "limit": config.limit,
                                    "input_files": len(plan.files), "inputs": plan.files,
                                    "prompt_format": plan.fitter.encoder.prompt_format if plan.fitter else "",
                                    "work_dir": checkpoints.url})
    out.write_json(STATS_FILE, stats)
    _remove_other_work(out, checkpoints)
    log(f"synth {mode}: wrote {written} records to {out.url}")
    return stats


def _remove_other_work(out: StageOutput, checkpoints: BatchCheckpoints) -> None:
    """Work dirs of other configs (or the unfingerprinted `_work/<mode>` of older
    versions) can never be resumed by this config; this run's own stays, so the
    same command again is a resume that writes the same rows."""
    work_root = out.path(WORK_DIR)
    if not out.fs.exists(work_root):
        return  # no batch had anything to checkpoint
    mine = checkpoints.root.rstrip("/")
    for entry in out.fs.ls(work_root, detail=False):
        if entry.rstrip("/") != mine:
            out.fs.rm(entry, recursive=True)
