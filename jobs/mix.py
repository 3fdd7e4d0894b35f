"""The mixer: inject instruction-like documents into a pretraining stream at a token ratio.

Before any Spark task starts, the driver checks what it can: every source's path or
glob matches files, the surface formats compile and render in the sandbox, the
tokenizer loads, and the output is a folder this run may write (not a file, not an
input, writable, not held by another run, no files of anyone else's unless
`--overwrite`). Each of those fails in one line naming the input and the fix.

Phases (each task is independent, so the output never depends on parallelism):
A. tokenize (Spark, one task per pretraining file): token ids and per-document
   lengths into a work cache.
B. materialize (Spark, one task per instruction source): records rendered in
   seeded surface formats, packed, tokenized, in a seeded order per epoch
   (at most `max_repeat` epochs), until the source's share of the needed
   instruction tokens is covered; a shortfall stops the job before anything is
   written, naming the missing tokens per source.
C. plan (driver): `transforms.mix.plan` over the lengths alone, streaming,
   cut into shards of `shard_tokens`.
D. write (Spark, one task per shard): every enabled format, published whole
   (transforms/io/shard_writers.py); a finished shard leaves a small JSON record
   with each file's version, so a re-run skips it while the file is unchanged.
Then the previous run's files that this run did not write again are removed, and
`manifest.json` (what a trainer reads) and `_stats.json` (the counters every stage
writes, transforms/stats.py) are written.

Everything (inputs, the work cache `OUTPUT/_work/<fingerprint[:16]>/`, shards,
card, manifest) goes through fsspec with the config's `storage_options`, so the
output may be a local folder or `s3://…`, `gs://…`, `hdfs://…`; on a cluster it
must be storage every executor reaches. Executors read the tokenizer and the
surface formats from the driver's copy (the work cache and the task payload),
not from the driver's disk.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import time
from collections import Counter
from dataclasses import asdict

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import MixConfig
from jobs.errors import MixError
from jobs.workdir import STATS_FILE, WORK_DIR, StageOutput, fingerprint, read_json, write_atomic
from transforms.mix.plan import plan_shards
from transforms.stats import counter_name, stats_document

MANIFEST_FILE = "manifest.json"
# In the work dir: every file the run is about to publish, written before the first
# shard, so a run killed halfway still recognises its own files on the re-run.
PENDING_OUTPUTS = "outputs.json"
TOKENIZER_COPY = "tokenizer.json"
TOKENIZE_BATCH_DOCS = 256
# Instruction tokens materialized beyond a source's computed need (when max_repeat
# allows): the realized mix can run a little past the estimate, by about one
# document per shard, and a source that runs dry would skew the last shards.
UNIT_SLACK_TOKENS = 4096
UNITS_SCHEMA = pa.schema(
    [
        ("unit", pa.int64()),
        ("epoch", pa.int32()),
        ("text", pa.string()),
        ("tokens", pa.list_(pa.uint32())),
        ("length", pa.int64()),
        ("records", pa.int32()),
        ("provenance", pa.string()),
    ]
)
_FIX_ACCESS = "check that it exists and that this job may read and write there, then re-run (finished work is kept)"


def _source_name(kind: str, index: int, name: str | None) -> str:
    return name or f"{kind}{index}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --- the work cache, through fsspec --------------------------------------------------


def _fs(url: str, options: dict):
    return fsspec.core.url_to_fs(url, **options)


def _exists(url: str, options: dict) -> bool:
    fs, path = _fs(url, options)
    return fs.exists(path)


def _write_json(url: str, data, options: dict) -> None:
    fs, path = _fs(url, options)
    write_atomic(fs, path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))


def _save_npy(url: str, array: np.ndarray, options: dict) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    fs, path = _fs(url, options)
    write_atomic(fs, path, buf.getvalue())


def _load_npy(url: str, options: dict) -> np.ndarray:
    fs, path = _fs(url, options)
    return np.load(io.BytesIO(fs.cat_file(path)))


def _staged(url: str, options: dict):
    """A local file to write that appears at `url` whole (a rename on local disk, one upload elsewhere)."""
    from transforms.io.shard_writers import StagedFile

    parent, name = url.rsplit("/", 1)
    return StagedFile(parent, name, options)


def _file_version(fs, path: str) -> str:
    """What changes when anyone rewrites the file (mtime and inode locally, the ETag on S3)."""
    fs.invalidate_cache(path)
    return str(fs.checksum(path))


@functools.lru_cache(maxsize=4)
def _task_tokenizer(url: str, options_json: str):
    """The driver's tokenizer, read from the work cache once per executor process."""
    from tokenizers import Tokenizer

    fs, path = _fs(url, json.loads(options_json))
    return Tokenizer.from_str(fs.cat_file(path).decode("utf-8"))


def _tokenizer_of(task: dict):
    return _task_tokenizer(task["tokenizer"], json.dumps(task["storage_options"], sort_keys=True, default=str))


@contextlib.contextmanager
def _named_errors(what: str):
    """Filesystem errors inside a task reach the user as one line naming `what` and the fix."""
    try:
        yield
    except OSError as err:
        raise MixError(f"{what}: {type(err).__name__}: {_one_line(err)}; {_FIX_ACCESS}") from err


# --- A. tokenize pretraining files ---------------------------------------------------


def tokenize_pretrain_file(task: dict) -> dict:
    """Token ids (uint32, concatenated) and document lengths of one pretraining file."""
    with _named_errors(f"pretraining file {task['path']} (work cache {task['base']})"):
        return _tokenize_pretrain_file(task)


def _tokenize_pretrain_file(task: dict) -> dict:
    from transforms.io.mix_inputs import iter_pretrain_docs
    from transforms.records import source_url_key
    from transforms.tokenizer import encode_batch

    base, opts = task["base"], task["storage_options"]
    done = f"{base}.json"
    previous = read_json(done, opts)
    if previous is not None:
        return previous
    tokenizer = _tokenizer_of(task)
    counters: Counter = Counter()
    lengths: list[int] = []
    url_keys: list[int] = []
    staged = _staged(f"{base}.tokens", opts)
    try:
        with open(staged.temp, "wb") as out:
            batch: list[str] = []

            def flush() -> None:
                for ids in encode_batch(tokenizer, batch):
                    out.write(ids.astype(np.uint32, copy=False).tobytes())
                    lengths.append(len(ids))
                batch.clear()

            for doc in iter_pretrain_docs(task["path"], task["text_field"], counters, opts):
                batch.append(doc.text)
                url_keys.append(source_url_key(doc.url) if doc.url else 0)
                if len(batch) >= TOKENIZE_BATCH_DOCS:
                    flush()
            if batch:
                flush()
        staged.publish()
    except BaseException:
        staged.discard()
        raise
    _save_npy(f"{base}.lengths.npy", np.asarray(lengths, dtype=np.int64), opts)
    _save_npy(f"{base}.urls.npy", np.asarray(url_keys, dtype=np.int64), opts)
    result = {"path": task["path"], "docs": len(lengths), "tokens": int(sum(lengths)), "counters": dict(counters)}
    _write_json(done, result, opts)
    return result


# --- B. materialize instruction units -------------------------------------------------


def materialize_instruction_units(task: dict) -> dict:
    """Render, pack and tokenize one instruction source, epoch by epoch, until its need is covered."""
    with _named_errors(f"instruction source {task['name']} ({task['path']}; work cache {task['base']})"):
        return _materialize_instruction_units(task)


def _materialize_instruction_units(task: dict) -> dict:
    from jinja2.exceptions import SecurityError

    from transforms.io.mix_inputs import iter_instruction_records
    from transforms.langid import get_language_identifier
    from transforms.mix.render import SurfaceFormat, choose_format, pack, render
    from transforms.tokenizer import encode_batch

    base, opts = task["base"], task["storage_options"]
    done = f"{base}.json"
    previous = read_json(done, opts)
    if previous is not None:
        return previous
    counters: Counter = Counter()
    records = list(iter_instruction_records(task["path"], counters, opts))
    # Surface formats are chosen by (source name, position, epoch), not by a key
    # holding an absolute path, so two checkouts of the same data mix identically.
    lid = get_language_identifier()
    langs = [r.lang or lid.identify(f"{r.instruction} {r.output}")[0] for r in records]
    # Validated on the driver (run_mix); rebuilt here without touching the file.
    formats = [SurfaceFormat(id=f["id"], langs=tuple(f["langs"]), template=f["template"]) for f in task["formats"]]
    tokenizer = _tokenizer_of(task)
    seed, source, need, size = task["seed"], task["source"], task["need_tokens"], task["pack"]

    def render_record(i: int, key: str) -> str:
        r = records[i]
        fmt = choose_format(formats, f"{task['name']}:{i}:{key}", langs[i], seed)
        format_counts[fmt.id] += 1
        try:
            return render(fmt, {"instruction": r.instruction, "input": r.input, "output": r.output,
                                "system": r.system, "history": r.history})
        except (ValueError, SecurityError) as err:  # a limit or a refusal of the sandbox on this record
            where = f"{r.provenance.source_file} {r.provenance.source_record}"
            raise MixError(f"{task['formats_name']}: {_one_line(err)} (record {where} of source "
                           f"{task['name']}); fix or remove that format") from err

    format_counts: Counter = Counter()
    attached = _attach_to_source_pages(task, records, render_record, tokenizer) if task["placement"] == "source_document" else {}
    attached_tokens = sum(a["length"] for a in attached.values())
    pool = np.array([i for i in range(len(records)) if i not in attached], dtype=np.int64)
    # The plan may leave a page's pairs off where they would push a shard past the
    # ratio, so the standalone stream is prepared for the whole share regardless.
    standalone_need = need

    produced = units = epochs_used = 0
    staged = _staged(f"{base}.units.parquet", opts)
    try:
        with pq.ParquetWriter(staged.temp, UNITS_SCHEMA, compression="zstd") as writer:
            for epoch in range(task["max_repeat"]):
                if produced >= standalone_need + task["slack_tokens"] or not len(pool):
                    break
                epochs_used = epoch + 1
                order = pool[np.random.default_rng([seed, source, epoch]).permutation(len(pool))]
                rows: list[dict] = []
                for start in range(0, len(order), size):
                    group = [int(i) for i in order[start : start + size]]
                    texts = [render_record(i, str(epoch)) for i in group]
                    text = texts[0] if size == 1 else pack(texts, seed, f"{source}:{epoch}:{start}")
                    provenance = dict(records[group[0]].provenance.as_dict(), key=records[group[0]].key)
                    if size > 1:
                        provenance["packed"] = [dict(records[i].provenance.as_dict(), key=records[i].key) for i in group]
                    rows.append({"unit": units, "epoch": epoch, "text": text, "records": len(group),
                                 "provenance": json.dumps(provenance, ensure_ascii=False)})
                    units += 1
                    if len(rows) >= TOKENIZE_BATCH_DOCS or start + size >= len(order):
                        for row, ids in zip(rows, encode_batch(tokenizer, [r["text"] for r in rows])):
                            row["tokens"] = ids
                            row["length"] = len(ids)
                            produced += len(ids)
                        writer.write_table(pa.Table.from_pylist(rows, schema=UNITS_SCHEMA))
                        rows = []
                        if produced >= standalone_need + task["slack_tokens"]:
                            break
        staged.publish()
    except BaseException:
        staged.discard()
        raise
    result = {
        "path": task["path"], "records": len(records), "units": units, "tokens": produced,
        "epochs_materialized": epochs_used, "need_tokens": need, "standalone_need_tokens": standalone_need,
        "attached_pairs": len(attached), "attached_tokens": attached_tokens, "counters": dict(counters),
        "formats": dict(sorted(format_counts.items())),
    }
    _write_json(done, result, opts)
    return result


ATTACHED_SCHEMA = pa.schema(
    [
        ("file", pa.int64()),
        ("doc", pa.int64()),
        ("record", pa.int64()),
        ("text", pa.string()),
        ("tokens", pa.list_(pa.uint32())),
        ("length", pa.int64()),
        ("provenance", pa.string()),
    ]
)
# Rendered pairs start a new paragraph of the page they are appended to.
ATTACHED_SEPARATOR = "\n\n"


def _attach_to_source_pages(task: dict, records: list, render_record, tokenizer) -> dict[int, dict]:
    """Records whose source_url is a page in the stream, rendered for appending to that page.

    Matches are taken in a seeded order while they fit the source's share of the
    instruction tokens (the ratio is the contract; a page keeps fewer of its pairs
    rather than the stream going over it). Writes `<base>.attached.parquet`
    (file, doc, record, text, tokens) and returns {record index: row}. A page
    that appears twice gets its pairs once, at its first occurrence.
    """
    from transforms.records import source_url_key
    from transforms.tokenizer import encode_batch

    opts = task["storage_options"]
    keys = [_load_npy(f"{b}.urls.npy", opts) for b in task["pretrain_bases"]]
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    file_of = np.concatenate([np.full(len(k), f, np.int64) for f, k in enumerate(keys)]) if keys else all_keys
    doc_of = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys]) if keys else all_keys
    order = np.argsort(all_keys, kind="stable")
    sorted_keys = all_keys[order]
    rows: dict[int, dict] = {}
    for i, r in enumerate(records):
        if not r.source_url:
            continue
        key = source_url_key(r.source_url)
        pos = int(np.searchsorted(sorted_keys, key))
        if pos < len(sorted_keys) and sorted_keys[pos] == key:
            target = order[pos]
            provenance = dict(r.provenance.as_dict(), key=r.key)
            rows[i] = {"file": int(file_of[target]), "doc": int(doc_of[target]), "record": i,
                       "text": ATTACHED_SEPARATOR + render_record(i, "attached"),
                       "provenance": json.dumps(provenance, ensure_ascii=False)}
    matched = sorted(rows)
    for row, ids in zip((rows[i] for i in matched), encode_batch(tokenizer, [rows[i]["text"] for i in matched])):
        row["tokens"] = ids
        row["length"] = len(ids)
    kept, budget = {}, task["need_tokens"]
    for j in np.random.default_rng([task["seed"], task["source"], 1 << 20]).permutation(len(matched)):
        row = rows[matched[j]]
        if row["length"] <= budget:
            kept[matched[j]] = row
            budget -= row["length"]
    rows = kept
    ordered = [rows[i] for i in sorted(rows)]
    staged = _staged(f"{task['base']}.attached.parquet", opts)
    try:
        pq.write_table(pa.Table.from_pylist(ordered, schema=ATTACHED_SCHEMA), staged.temp, compression="zstd")
        staged.publish()
    except BaseException:
        staged.discard()
        raise
    return rows


def _read_attached(base: str, options: dict, **kwargs) -> pa.Table | None:
    fs, path = _fs(f"{base}.attached.parquet", options)
    if not fs.exists(path):
        return None
    return pq.read_table(path, filesystem=fs, **kwargs)


# --- C. plan -----------------------------------------------------------------------

# The rule lives in transforms.mix.plan (plan_shards, ShardPlan).


# --- D. write shards ---------------------------------------------------------------


def write_shard(task: dict) -> dict:
    """Write one planned shard in every enabled format; skip it if a previous run finished it."""
    with _named_errors(f"output {task['root']} (shard {task['shard']})"):
        return _write_shard(task)


def _open_writers(task: dict) -> list:
    from transforms.io.shard_writers import JsonlZstShardWriter, MegatronShardWriter, ParquetShardWriter

    root, shard, n, opts = task["root"], task["shard"], task["num_shards"], task["storage_options"]
    writers = []
    if "jsonl.zst" in task["formats"]:
        writers.append(JsonlZstShardWriter(root, shard, storage_options=opts))
    if "parquet" in task["formats"]:
        writers.append(ParquetShardWriter(root, shard, n, storage_options=opts))
    if "megatron" in task["formats"]:
        writers.append(MegatronShardWriter(root, shard, task["vocab_size"], storage_options=opts))
    return writers


def _write_shard(task: dict) -> dict:
    from transforms.io.mix_inputs import iter_pretrain_docs

    opts = task["storage_options"]
    fs, root = _fs(task["root"], opts)
    done = read_json(task["done"], opts)
    if done is not None and all(
        fs.exists(f"{root}/{f['path']}")
        and _file_version(fs, f"{root}/{f['path']}") == done.get("versions", {}).get(f["path"])
        for f in done["files"]
    ):
        return {k: v for k, v in done.items() if k != "versions"}
    writers = _open_writers(task)
    try:
        with contextlib.ExitStack() as open_files:
            readers: dict[int, tuple] = {}
            cursors: dict[int, _UnitCursor] = {}
            for kind, which, start, end in task["runs"]:
                if kind == 0:
                    _write_pretrain_run(task, readers, open_files, which, start, end, writers, iter_pretrain_docs)
                else:
                    _write_instruction_run(task, cursors, open_files, which, start, end, writers)
        files = [f.as_dict() for w in writers for f in w.close()]
    except BaseException:
        for w in writers:
            w.abort()
        raise
    result = {"shard": task["shard"], "files": files, **task["counts"]}
    versions = {f["path"]: _file_version(fs, f"{root}/{f['path']}") for f in files}
    _write_json(task["done"], {**result, "versions": versions}, opts)
    return result


class _PretrainTokens:
    """The cached token ids of one pretraining file, read document by document through fsspec."""

    def __init__(self, base: str, options: dict, open_files: contextlib.ExitStack):
        lengths = _load_npy(f"{base}.lengths.npy", options)
        self.offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        fs, path = _fs(f"{base}.tokens", options)
        self._file = open_files.enter_context(fs.open(path, "rb")) if self.offsets[-1] else None

    def of(self, doc: int) -> np.ndarray:
        start, end = self.offsets[doc], self.offsets[doc + 1]
        if end == start:
            return np.zeros(0, np.uint32)
        self._file.seek(int(start) * 4)
        return np.frombuffer(self._file.read(int(end - start) * 4), dtype=np.uint32)


def _write_pretrain_run(task, readers, open_files, file_index, start, end, writers, iter_pretrain_docs) -> None:
    source = task["pretrain"][file_index]
    opts = task["storage_options"]
    if file_index not in readers:
        tokens = _PretrainTokens(source["base"], opts, open_files)
        docs = iter_pretrain_docs(source["path"], source["text_field"], Counter(), opts)
        detached = {doc for f, doc in task["detached"] if f == file_index}
        readers[file_index] = (docs, tokens, _attachments_of(task, file_index, detached))
    docs, tokens, attachments = readers[file_index]
    for doc in docs:
        if doc.index < start:
            continue
        ids = tokens.of(doc.index)
        text = doc.text
        meta = {"source": f"pretrain:{source['name']}", "is_instruction": False, "provenance": doc.provenance.as_dict()}
        if doc.index in attachments:
            rows = attachments[doc.index]
            text += "".join(r["text"] for r in rows)
            ids = np.concatenate([ids, *(np.asarray(r["tokens"], dtype=np.uint32) for r in rows)])
            meta["attached_instructions"] = [{"source": f"instructions:{r['source']}", "tokens": r["length"],
                                              "provenance": json.loads(r["provenance"])} for r in rows]
        doc_id = f"{source['name']}-{file_index:05d}-{doc.index:09d}"
        for w in writers:
            w.add(doc_id, text, False, meta, ids)
        if doc.index + 1 >= end:
            return
    raise MixError(f"{source['path']}: document {end - 1} is missing on the second read; the file changed "
                   "during the job; keep the inputs unchanged while the mix runs, then re-run")


def _attachments_of(task: dict, file_index: int, detached: set[int]) -> dict[int, list[dict]]:
    """Rendered pairs to append to documents of one pretraining file: {doc index: rows}, by source order."""
    out: dict[int, list[dict]] = {}
    for src in task["instructions"]:
        table = _read_attached(src["base"], task["storage_options"], filters=[("file", "=", file_index)])
        if table is None:
            continue
        for row in table.to_pylist():
            if row["doc"] not in detached:
                out.setdefault(row["doc"], []).append({**row, "source": src["name"]})
    return out


class _UnitCursor:
    """Reads one source's instruction units forward only: a shard asks for increasing ranges,
    so each unit file is scanned once per shard, not once per run."""

    def __init__(self, url: str, options: dict, open_files: contextlib.ExitStack):
        fs, path = _fs(url, options)
        self._batches = pq.ParquetFile(open_files.enter_context(fs.open(path, "rb"))).iter_batches(batch_size=1024)
        self._rows: list[dict] = []
        self._first = 0  # unit index of self._rows[0]

    def take(self, start: int, end: int):
        while start < end:
            while start >= self._first + len(self._rows):
                self._first += len(self._rows)
                batch = next(self._batches)
                if start >= self._first + batch.num_rows:  # skipped without turning it into rows
                    self._first += batch.num_rows
                    self._rows = []
                else:
                    self._rows = batch.to_pylist()
            yield self._rows[start - self._first]
            start += 1


def _write_instruction_run(task, cursors, open_files, source_index, start, end, writers) -> None:
    source = task["instructions"][source_index]
    if source_index not in cursors:
        cursors[source_index] = _UnitCursor(f"{source['base']}.units.parquet", task["storage_options"], open_files)
    for row in cursors[source_index].take(start, end):
        ids = np.asarray(row["tokens"], dtype=np.uint32)
        meta = {"source": f"instructions:{source['name']}", "is_instruction": True,
                "provenance": json.loads(row["provenance"])}
        doc_id = f"{source['name']}-e{row['epoch']}-{row['unit']:09d}"
        for w in writers:
            w.add(doc_id, row["text"], True, meta, ids)


# --- checks on the driver, before any task ------------------------------------------


def _output_of(config: MixConfig) -> StageOutput:
    """The output folder; refused at once when it is a file."""
    url = config.output.path
    if fsspec.utils.get_protocol(url) in ("file", "local"):
        url = os.path.abspath(os.path.expanduser(url.split("://", 1)[-1]))  # tasks may run in another folder
    out = StageOutput("mix", url, config.storage_options)
    if out.fs.isfile(out.root):
        raise MixError(f"output.path {config.output.path} is a file, not a folder; give a folder path "
                       "(it is created when missing)")
    return out


def _expand_sources(config: MixConfig) -> tuple[list[dict], list[dict]]:
    """Every source's files, so a path or glob that matches nothing stops the job before Spark starts."""
    from transforms.io.mix_inputs import MIX_ENDINGS, PRETRAIN_ENDINGS, expand_paths

    def expand(kind: str, index: int, name: str, path: str, endings) -> list[str]:
        try:
            return expand_paths([path], storage_options=config.storage_options, endings=endings)
        except (OSError, ValueError) as err:
            raise MixError(f"{kind}[{index}] ({name}): {_one_line(err)}; fix its path or glob in the config") from err

    pretrain_files = []
    for i, src in enumerate(config.pretrain):
        name = _source_name("pretrain", i, src.name)
        for path in expand("pretrain", i, name, src.path, PRETRAIN_ENDINGS):
            pretrain_files.append({"path": path, "text_field": src.text_field, "name": name})
    instructions = []
    for s, src in enumerate(config.instructions):
        name = _source_name("instructions", s, src.name)
        expand("instructions", s, name, src.path, MIX_ENDINGS)
        instructions.append({"path": src.path, "name": name, "source": s})
    return pretrain_files, instructions


def _surface_formats(config: MixConfig) -> tuple[str, list]:
    """The surface formats, compiled and probed in the sandbox on the driver: (file named in errors, formats)."""
    import yaml
    from jinja2.exceptions import TemplateError

    from templates import read_user_yaml
    from transforms.mix.render import PACKAGED_FORMATS, load_formats, parse_formats

    path = config.formats_file
    name = path or f"templates/{PACKAGED_FORMATS}"
    try:
        if path is None or fsspec.utils.get_protocol(path) in ("file", "local"):
            return name, load_formats(path)
        return name, parse_formats(read_user_yaml(path, path, "formats file", config.storage_options), path)
    except (ValueError, TemplateError, yaml.YAMLError) as err:
        raise MixError(f"formats_file: {_one_line(err)}; fix the file or leave formats_file out for the "
                       "packaged formats") from err


def _fingerprinted(config: MixConfig) -> dict:
    """What decides the output: the config without where to read from and how to run Spark."""
    return config.model_dump(mode="json", exclude={"storage_options", "spark_conf"})


def _clean_relpaths(paths) -> set[str]:
    """Relative paths inside the output from a file we read back (never absolute, never `..`)."""
    out = set()
    for p in paths or []:
        if isinstance(p, str) and p and not p.startswith("/") and ".." not in p.split("/") \
                and not p.startswith(("_", ".")):
            out.add(p)
    return out


def _previous_outputs(out: StageOutput) -> set[str]:
    """Files earlier mix runs into this folder published or were about to publish.

    `_stats.json`'s `outputs`; the shards and card a `manifest.json` lists (a run
    killed before its `_stats.json`, or one of a version without it; only a
    manifest of the mixer's own shape counts); and the planned outputs of a run
    killed while writing (`_work/*/outputs.json`).
    """
    known = _clean_relpaths(out.previous_outputs())
    manifest = out.read_json(MANIFEST_FILE)
    if isinstance(manifest, dict) and "target_ratio" in manifest and isinstance(manifest.get("shards"), list):
        listed = [f.get("path") for s in manifest["shards"] if isinstance(s, dict)
                  for f in s.get("files") or [] if isinstance(f, dict)]
        card = manifest.get("dataset_card")
        listed += [card.get("path")] if isinstance(card, dict) else []
        known |= _clean_relpaths(listed) | {MANIFEST_FILE}
    for pending in out.fs.glob(out.path(WORK_DIR, "*", PENDING_OUTPUTS)):
        known |= _clean_relpaths(out.read_json(pending[len(out.root):].lstrip("/")))
    return known


@contextlib.contextmanager
def _held(out: StageOutput):
    """`out.lock()`, with an output this job cannot write refused in one line."""
    try:
        out.acquire()
    except OSError as err:
        raise MixError(f"output.path {out.url} is not writable ({type(err).__name__}: {_one_line(err)}); "
                       "choose a folder this job may write to, or fix its permissions") from err
    try:
        yield out
    finally:
        out.release()


# --- the job -----------------------------------------------------------------------


def run_mix(config: MixConfig, master: str | None = None, spark=None, keep_work: bool = False,
            overwrite: bool = False) -> dict:
    """Run the whole mix; returns the manifest (also written to OUTPUT/manifest.json).

    `overwrite`: replace whatever the output holds (files this stage did not write
    included) instead of refusing; an output that overlaps an input is refused anyway.
    """
    from jobs.progress import log
    from transforms.tokenizer import load_tokenizer

    started = time.time()
    if warning := config.ratio_warning():
        log(f"[yellow]mix: warning: {warning}")
    out = _output_of(config)
    pretrain_files, instructions = _expand_sources(config)
    formats_name, formats = _surface_formats(config)
    tokenizer = load_tokenizer(config.tokenizer)
    tokenizer_json = tokenizer.to_str()
    formats_data = [asdict(f) for f in formats]
    digest = fingerprint("mix", _fingerprinted(config), hashlib.sha256(tokenizer_json.encode()).hexdigest(),
                         hashlib.sha256(json.dumps(formats_data, sort_keys=True).encode()).hexdigest())
    with _held(out):
        previous = _previous_outputs(out)
        out.claim(inputs=[s.path for s in config.pretrain] + [s.path for s in config.instructions],
                  overwrite=overwrite, own=sorted(previous))
        if overwrite:  # as every stage's --overwrite: what the folder holds is replaced by this run's files
            previous |= set(out.listing())
        context = {"out": out, "digest": digest, "previous": previous, "formats_name": formats_name,
                   "formats": formats_data, "tokenizer": tokenizer, "tokenizer_json": tokenizer_json,
                   "started": started}
        return _run(config, context, pretrain_files, instructions, master, spark, keep_work)


def _run(config: MixConfig, ctx: dict, pretrain_files: list[dict], instructions: list[dict], master, spark,
         keep_work: bool) -> dict:
    from jobs.engines.spark import spark_session
    from jobs.engines.spark_tasks import run_tasks
    from jobs.progress import log, spark_task_progress
    from transforms.io.shard_writers import shard_file_paths, write_parquet_dataset_card
    from transforms.tokenizer import vocab_size

    out: StageOutput = ctx["out"]
    opts = config.storage_options
    work = out.work_dir(ctx["digest"])
    tokenizer_url = f"{work}/{TOKENIZER_COPY}"
    fs, path = _fs(tokenizer_url, opts)
    write_atomic(fs, path, ctx["tokenizer_json"].encode("utf-8"))
    for k, f in enumerate(pretrain_files):
        f["base"] = f"{work}/pretrain/{k:05d}"
    common = {"tokenizer": tokenizer_url, "storage_options": opts}
    spark = spark or spark_session(master, "instructmix-mix", config.spark_conf)

    with spark_task_progress(spark, "tokenize pretraining files"):
        tokenized = run_tasks(spark, tokenize_pretrain_file, [{**f, **common} for f in pretrain_files])
    pretrain_tokens = sum(t["tokens"] for t in tokenized)
    if pretrain_tokens == 0:
        raise MixError(f"no pretraining text found in {[s.path for s in config.pretrain]}; check each "
                       "source's text_field and that its files hold text")
    needed = int(np.ceil(config.ratio / (1 - config.ratio) * pretrain_tokens))
    total_weight = sum(s.weight for s in config.instructions)
    for src in instructions:
        need = int(np.ceil(needed * config.instructions[src["source"]].weight / total_weight))
        src.update({"base": f"{work}/instructions/{src['source']:03d}-{need}", "need_tokens": need})
    log(f"mix: {pretrain_tokens:,} pretraining tokens in {len(pretrain_files)} file(s); "
        f"{needed:,} instruction tokens needed for ratio {config.ratio}")

    with spark_task_progress(spark, "render + tokenize instructions"):
        materialized = run_tasks(spark, materialize_instruction_units, [
            {**src, **common, "seed": config.seed, "pack": config.pack, "max_repeat": config.max_repeat,
             "formats": ctx["formats"], "formats_name": ctx["formats_name"], "placement": config.placement,
             "pretrain_bases": [f["base"] for f in pretrain_files],
             "slack_tokens": max(UNIT_SLACK_TOKENS, src["need_tokens"] // 100)} for src in instructions])
    for m in materialized:
        m["available_tokens"] = m["tokens"] + m["attached_tokens"]
    short = [(src, m) for src, m in zip(instructions, materialized) if m["available_tokens"] < src["need_tokens"]]
    if short:
        parts = [f"{src['name']} ({src['path']}) needs {src['need_tokens']:,} tokens, has {m['available_tokens']:,} "
                 f"from {m['records']:,} usable record(s) with max_repeat={config.max_repeat}, missing "
                 f"{src['need_tokens'] - m['available_tokens']:,}" + (f" (skipped rows: {m['counters']})" if m["counters"] else "")
                 for src, m in short]
        raise MixError(f"instruction sources cannot fill ratio {config.ratio} of {pretrain_tokens:,} pretraining "
                       f"tokens; nothing was written: {'; '.join(parts)}; add instruction data, raise max_repeat "
                       "or lower ratio")

    pretrain_lengths = [_load_npy(f"{f['base']}.lengths.npy", opts) for f in pretrain_files]
    unit_lengths = []
    for src in instructions:
        ufs, upath = _fs(f"{src['base']}.units.parquet", opts)
        unit_lengths.append(pq.read_table(upath, columns=["length"], filesystem=ufs).column("length").to_numpy())
    attached_lengths = [np.zeros(len(lengths), dtype=np.int64) for lengths in pretrain_lengths]
    for src in instructions:
        t = _read_attached(src["base"], opts, columns=["file", "doc", "length"])
        if t is not None:
            for f, d, n in zip(*(t.column(c).to_numpy() for c in ("file", "doc", "length"))):
                attached_lengths[f][d] += n
    weights = [s.weight for s in config.instructions]
    shards, units_used = plan_shards(pretrain_lengths, unit_lengths, weights, config.ratio,
                                     config.output.shard_tokens, attached_lengths)
    log(f"mix: {len(shards)} shard(s) planned")

    planned = shard_file_paths(config.output.formats, len(shards)) + [MANIFEST_FILE]
    _write_json(f"{work}/{PENDING_OUTPUTS}", planned, opts)
    vocab = vocab_size(ctx["tokenizer"])
    tasks = []
    for i, shard in enumerate(shards):
        tasks.append({
            "root": out.url, "shard": i, "num_shards": len(shards), "runs": shard.runs, "detached": shard.detached,
            "formats": config.output.formats, "vocab_size": vocab, "storage_options": opts,
            "pretrain": pretrain_files, "instructions": instructions, "done": f"{work}/shards/{i:05d}.json",
            "counts": {"docs": shard.docs, "tokens": shard.tokens, "instruction_docs": shard.instruction_docs,
                       "instruction_tokens": shard.instruction_tokens, "attached_tokens": shard.attached_tokens},
        })
    with spark_task_progress(spark, "write shards"):
        written = run_tasks(spark, write_shard, tasks)
    # The tasks wrote from other processes: listings this process cached (object stores) are stale.
    out.fs.invalidate_cache()

    total = sum(s.tokens for s in shards)
    instruction_total = sum(s.instruction_tokens for s in shards)
    summary = {"target_ratio": config.ratio, "realized_ratio": instruction_total / total if total else 0.0,
               "docs": sum(s.docs for s in shards), "tokens": total, "shards": len(shards)}
    card = None
    if "parquet" in config.output.formats:
        with _named_errors(f"output {out.url}"):
            card = write_parquet_dataset_card(out.url, len(shards), summary, opts).as_dict()
    manifest, counters = _manifest(config, ctx["digest"], shards, written, pretrain_files, tokenized, instructions,
                                   materialized, units_used, card, summary)
    outputs = [f["path"] for s in manifest["shards"] for f in s["files"]] + ([card["path"]] if card else [])
    outputs.append(MANIFEST_FILE)
    # Before the new manifest names the new files: every reader then sees exactly those.
    removed = out.remove_stale(outputs, sorted(ctx["previous"]))
    if removed:
        log(f"mix: removed {len(removed)} file(s) of the previous run that this run did not write again")
    out.write_json(MANIFEST_FILE, manifest)
    elapsed = time.time() - ctx["started"]
    out.write_json(STATS_FILE, stats_document(
        "mix", counters, run_id=out.run_id, fingerprint=ctx["digest"], elapsed_seconds=elapsed, outputs=outputs,
        details={"target_ratio": config.ratio, "realized_ratio": summary["realized_ratio"],
                 "manifest": MANIFEST_FILE, "removed_stale": removed}))
    if not keep_work:
        out.remove_work()
    log(f"mix: wrote {len(shards)} shard(s), {total:,} tokens, realized ratio "
        f"{summary['realized_ratio']:.4f} (target {config.ratio}) -> {out.url} [{elapsed:.1f}s]")
    return manifest


def _skip_counters(counters: Counter, what: str, *key: str) -> Counter:
    """A reader's `reason:detail` counts as `mix.<what>[.<key>].reason.detail` (transforms/stats.py)."""
    out: Counter = Counter()
    for name, count in counters.items():
        out[counter_name("mix", what, *key, *str(name).split(":", 1))] += int(count)
    return out


def _manifest(config, digest, shards, written, pretrain_files, tokenized, instructions, materialized, units_used,
              card, summary) -> tuple[dict, Counter]:
    """The trainer-facing manifest, and the stage's counters for `_stats.json`."""
    opts = config.storage_options
    counters: Counter = Counter()
    for t in tokenized:
        counters.update(_skip_counters(Counter(t["counters"]), "pretrain"))
    counters[counter_name("mix", "pretrain", "files")] = len(pretrain_files)
    counters[counter_name("mix", "pretrain", "documents")] = sum(t["docs"] for t in tokenized)
    counters[counter_name("mix", "pretrain", "tokens")] = sum(t["tokens"] for t in tokenized)
    detached = {(f, d) for shard in shards for f, d in shard.detached}
    sources = []
    for src, m, used in zip(instructions, materialized, units_used):
        attached_pairs = attached_tokens = 0
        t = _read_attached(src["base"], opts, columns=["file", "doc", "length"])
        if t is not None:
            for f, d, n in zip(*(t.column(c).to_numpy() for c in ("file", "doc", "length"))):
                if (int(f), int(d)) not in detached:
                    attached_pairs += 1
                    attached_tokens += int(n)
        ufs, upath = _fs(f"{src['base']}.units.parquet", opts)
        units = pq.read_table(upath, columns=["epoch", "length", "records"], filesystem=ufs).slice(0, used)
        epochs = units.column("epoch").to_numpy()
        entry = {
            "name": src["name"], "path": src["path"], "weight": config.instructions[src["source"]].weight,
            "records": m["records"], "documents_used": int(used),
            "records_used": int(units.column("records").to_numpy().sum()) + attached_pairs,
            "tokens_used": int(units.column("length").to_numpy().sum()) + attached_tokens,
            "attached_pairs": attached_pairs, "attached_tokens": attached_tokens,
            "repeats": int(epochs.max()) + 1 if len(epochs) else 0, "formats_rendered": m["formats"],
        }
        sources.append(entry)
        key = src["name"].replace(".", "_")
        counters.update(_skip_counters(Counter(m["counters"]), "instructions", key))
        for what in ("records", "documents_used", "tokens_used"):
            counters[counter_name("mix", "instructions", key, what)] = entry[what]
    shard_entries = []
    for shard, result in zip(shards, written):
        shard_entries.append({
            "name": f"part-{result['shard']:05d}", "docs": shard.docs, "tokens": shard.tokens,
            "instruction_docs": shard.instruction_docs, "instruction_tokens": shard.instruction_tokens,
            "attached_instruction_tokens": shard.attached_tokens,
            "ratio": shard.instruction_tokens / shard.tokens if shard.tokens else 0.0,
            "files": result["files"],
        })
    counters[counter_name("mix", "output", "shards")] = len(shards)
    counters[counter_name("mix", "output", "documents")] = summary["docs"]
    counters[counter_name("mix", "output", "tokens")] = summary["tokens"]
    counters[counter_name("mix", "output", "instruction_tokens")] = sum(s.instruction_tokens for s in shards)
    manifest = {
        "fingerprint": digest,
        "seed": config.seed,
        "target_ratio": config.ratio,
        "realized_ratio": summary["realized_ratio"],
        "tokenizer": config.tokenizer,
        "formats": config.output.formats,
        "docs": summary["docs"],
        "tokens": summary["tokens"],
        "pretrain": {
            "files": len(pretrain_files),
            "docs": sum(t["docs"] for t in tokenized),
            "tokens": sum(t["tokens"] for t in tokenized),
            # Each configured source by the path the user gave, so a reader (the report)
            # can say what went in.
            "sources": [{"name": _source_name("pretrain", i, src.name), "path": src.path,
                         "files": sum(f["name"] == _source_name("pretrain", i, src.name) for f in pretrain_files)}
                        for i, src in enumerate(config.pretrain)],
        },
        "instructions": sources,
        "dataset_card": card,
        "shards": shard_entries,
        "stats": STATS_FILE,
    }
    return manifest, counters
