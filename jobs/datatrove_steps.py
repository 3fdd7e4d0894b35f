"""instructmix mining as datatrove pipeline steps, for pipelines that already run on datatrove.

A FineWeb-style pipeline adds instruction mining with one step after its reader:

    LocalPipelineExecutor(pipeline=[
        WarcReader("crawl/", glob_pattern="*.warc.gz"),
        InstructionPairMiner("configs/mine.yaml"),
        InstructionPairDeduplicator("configs/mine.yaml"),
        ParquetWriter("pairs/", expand_metadata=True, schema=PAIR_DOCUMENT_SCHEMA),
    ], tasks=64).run()

The same pipeline runs on datatrove's Slurm and Ray executors; nothing here knows which.

`InstructionPairMiner` is the per-page chain of `instructmix mine`
(transforms/mine/document.py::PairMiner, built from the same MineConfig by
jobs/mine.py::pair_miner), so a page gives the same pairs, with the same ids,
on both engines. What differs is the dedup: `instructmix mine` removes exact
and near duplicates across the whole job (a Spark shuffle), while
`InstructionPairDeduplicator` applies the same rule within one datatrove task
(rank), holding that task's pairs in memory. Pairs repeated across ranks stay;
a job-wide dedup needs a second pass over all ranks' output (`instructmix mine`
on a cluster, or datatrove's own dedup blocks over the rendered text).

Counters are datatrove stats under the names `instructmix mine` writes into
`_stats.json` (`mine.documents.skip.<reason>`, `mine.pairs.drop.<reason>`,
`mine.pairs.mined.<miner>/<kind>`, ...; jobs/mine.py::counter_stats_name), beside
datatrove's own `total` / `forwarded` / `dropped`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

try:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.pipeline.base import PipelineStep
    from datatrove.utils.logging import logger
    from datatrove.utils.typeshelper import StatHints
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"jobs.datatrove_steps needs datatrove ({err}); install it with `pip install 'instructmix[datatrove]'`"
    ) from err

import pyarrow as pa

from jobs.config import MineConfig, load_config, validate_config
from jobs.decontamination import load_benchmarks
from jobs.mine import STAGE, WORK_SCHEMA, counter_stats_name, step_pair_miner
from transforms.io.text_repair import cut_to_bytes, repair_lone_surrogates
from transforms.io.warc import looks_like_html
from transforms.mine.dedup import kept_pair_indexes
from transforms.mix.render import SurfaceFormat, load_formats, render
from transforms.records import Provenance
from transforms.stats import counter_name

__all__ = ["CONTENT_KINDS", "PAIR_DOCUMENT_SCHEMA", "InstructionPairDeduplicator", "InstructionPairMiner",
           "mine_config"]

# What a Document's `text` holds: WarcReader gives the HTML of each response, a reader of
# extracted corpora (FineWeb's JSONL/Parquet) plain text; "auto" sniffs each document.
CONTENT_KINDS = ("auto", "html", "text")
# The surface format (templates/formats.yaml) a pair's `text` is rendered in by default:
# instruction, input and output separated by blank lines, no words of any language added.
DEFAULT_TEXT_FORMAT = "plain_blank_line"

# A pair document written with `ParquetWriter(..., expand_metadata=True, schema=PAIR_DOCUMENT_SCHEMA)`:
# the rendered `text`, then the columns of `instructmix mine`'s Parquet and its two dedup keys,
# each at the top level. Without an explicit schema datatrove infers one from the first
# document, and a later non-null `classifier_score` would not fit a first null one.
PAIR_DOCUMENT_SCHEMA = pa.schema([pa.field("text", pa.string(), nullable=False), *WORK_SCHEMA])


def mine_config(config: MineConfig | Mapping[str, Any] | str | Path | None) -> MineConfig:
    """A MineConfig from itself, a mapping of configs/mine.yaml's keys, or the path of such a YAML;
    None gives the defaults. Errors name the key (jobs.config.ConfigError)."""
    if config is None or isinstance(config, MineConfig):
        return config or MineConfig()
    if isinstance(config, Mapping):
        return validate_config(dict(config), MineConfig, source="mine config")
    return load_config(config, MineConfig)


def _surface_format(format_id: str) -> SurfaceFormat:
    formats = {f.id: f for f in load_formats()}
    if format_id not in formats:
        raise ValueError(f"text_format: unknown surface format {format_id!r}; choose from {sorted(formats)} "
                         "(templates/formats.yaml)")
    return formats[format_id]


class InstructionPairMiner(PipelineStep):
    """Web pages in, one Document per mined instruction pair out.

    Each input Document's `text` is the page (HTML or plain text, see `content`) and
    `metadata["url"]` its URL, as WarcReader and FineWeb's readers give them. Each
    output Document is one pair: `id` is the pair's content hash (the `id` column of
    `instructmix mine`, stable across runs and engines), `text` the pair rendered in
    `text_format` (a surface format id of templates/formats.yaml), and `metadata` every
    column of `instructmix mine`'s output but `id` (transforms/records.py PAIR_SCHEMA:
    instruction, input, output, kind, miner, confidence, lang, ..., source_url,
    source_file = the reader's `file_path`, source_record = the input Document's id)
    plus the dedup keys `exact_key` and `band_keys`.

    Args:
        config: a MineConfig, a mapping of configs/mine.yaml's keys, or that YAML's path
            (languages, miners, filters, classifier, max_page_bytes; `dedup` is read by
            InstructionPairDeduplicator).
        content: "html", "text", or "auto" (default): HTML when the text opens like an
            HTML page (a doctype, <html>, <head>, <body>, ...), plain text otherwise.
        text_format: the surface format of the output `text`.
    """

    name = "⛏ instructmix pairs"
    type = "⛏ - MINER"

    def __init__(
        self,
        config: MineConfig | Mapping[str, Any] | str | Path | None = None,
        content: Literal["auto", "html", "text"] = "auto",
        text_format: str = DEFAULT_TEXT_FORMAT,
    ):
        super().__init__()
        if content not in CONTENT_KINDS:
            raise ValueError(f"content: expected one of {list(CONTENT_KINDS)}, got {content!r}")
        self.config = mine_config(config)
        # A bad benchmark file stops the pipeline here, where it is built, not in every task.
        load_benchmarks(self.config.decontaminate, self.config.storage_options)
        # The models are not attributes: executors pickle the pipeline into each worker,
        # and a worker loads them once (step_pair_miner), at its first document.
        self._config_json = self.config.model_dump_json()
        self.content = content
        self.text_format = _surface_format(text_format)
        self._logged_errors: set[str] = set()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is None:
            return
        miner = None
        for doc in data:
            self.stat_update(StatHints.total)
            counters: Counter = Counter()
            with self.track_time():
                # The first document's time includes loading the models (once per process).
                miner = miner or step_pair_miner(self._config_json)
                pairs = [self._pair_document(row) for row in self._mine(miner, doc, counters)]
            for key, count in counters.items():
                self.stat_update(counter_stats_name(key), value=count)
            if not pairs:
                self.stat_update(StatHints.dropped)
            for pair in pairs:
                self.stat_update(StatHints.forwarded)
                yield pair

    def _mine(self, miner, doc: Document, counters: Counter) -> list[dict]:
        """The kept pair rows of one page, every skip and drop counted as `instructmix mine` counts it."""
        page = doc.text
        if not isinstance(page, str) or not page.strip():
            counters["skip:empty_record"] += 1  # not read, as the readers of `instructmix mine` count it
            return []
        counters["docs_read"] += 1
        page, cut = cut_to_bytes(repair_lone_surrogates(page, counters), self.config.max_page_bytes)
        if cut:
            counters["truncated:page_too_large"] += 1
        is_html = self.content == "html" or (self.content == "auto" and looks_like_html(page))
        url = str(doc.metadata.get("url") or "")
        provenance = Provenance(source_file=str(doc.metadata.get("file_path") or ""), source_record=str(doc.id))
        rows: list[dict] = []
        try:  # the pairs finished before an error are kept, as `instructmix mine` keeps them
            rows.extend(miner.mine(url, page if is_html else None, None if is_html else page, counters, provenance))
        except Exception as err:  # noqa: BLE001 - one bad page must not end the task: counted, logged once
            reason = f"skip:mining_error:{type(err).__name__}"
            counters[reason] += 1
            if reason not in self._logged_errors:
                self._logged_errors.add(reason)
                logger.exception(f"instructmix: mining failed on {doc.id} ({url}); further {reason} are only counted")
        return rows

    def _pair_document(self, row: dict) -> Document:
        metadata = {k: v for k, v in row.items() if k != "id"}
        return Document(text=render(self.text_format, row), id=row["id"], metadata=metadata)


class InstructionPairDeduplicator(PipelineStep):
    """Drops exact and near duplicates among one task's pair Documents, by the rule of
    `instructmix mine` (transforms/mine/dedup.py::kept_pair_indexes): one pair per exact
    key and per MinHash band, the most confident (then smallest id) kept.

    Within one rank only: the task's pairs are held in memory (pairs are a small
    share of a page's bytes) and yielded in their input order once the input ends. Duplicates
    in different ranks both stay; `instructmix mine` removes those too.

    Args:
        config: as InstructionPairMiner's; its `dedup.exact` and `dedup.near` choose the rules.
    """

    name = "🫂 instructmix pair dedup"
    type = "⛏ - MINER"

    def __init__(self, config: MineConfig | Mapping[str, Any] | str | Path | None = None):
        super().__init__()
        self.dedup = mine_config(config).dedup

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is None:
            return
        docs = list(data)
        with self.track_time(unit="rank"):
            rows = [{"id": d.id, **d.metadata} for d in docs]
            kept, exact_dropped, near_dropped = kept_pair_indexes(rows, self.dedup.exact, self.dedup.near)
        self.stat_update(StatHints.total, value=len(docs))
        self.stat_update(StatHints.forwarded, value=len(kept))
        self.stat_update(StatHints.dropped, value=len(docs) - len(kept))
        self.stat_update(counter_name(STAGE, "pairs", "drop", "exact_duplicate"), value=exact_dropped)
        self.stat_update(counter_name(STAGE, "pairs", "drop", "near_duplicate"), value=near_dropped)
        for i in kept:
            yield docs[i]
