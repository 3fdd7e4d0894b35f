"""The one definition of a record: its Arrow schema, column names, a miner's `Candidate` and the stable ids.

Every stage (mine, synth, mix) reads and writes these columns; nothing else
invents column names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

# Alpaca-compatible core plus provenance. `id` is a content hash (see
# pair_id below), so it is stable across runs and machines.
PAIR_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("instruction", pa.string(), nullable=False),
    pa.field("input", pa.string(), nullable=False),
    pa.field("output", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("miner", pa.string(), nullable=False),
    pa.field("confidence", pa.float32(), nullable=False),
    pa.field("lang", pa.string(), nullable=False),
    pa.field("lang_score", pa.float32(), nullable=False),
    pa.field("source_url", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_record", pa.string(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("classifier_score", pa.float32(), nullable=True),
]
PAIR_SCHEMA = pa.schema(PAIR_FIELDS)
PAIR_COLUMNS = [f.name for f in PAIR_FIELDS]



@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a record came from: the same three fields in every stage and every output.

    `source_url` is the page, `source_file` the input file and `source_record` the
    record inside it ("line N", "row N", "item N", a WARC record id; "... instance K"
    for the K-th instance of a Self-Instruct task). Pairs carry them as the columns of
    the same names (PAIR_FIELDS); the mixer writes `as_dict()` into each document's
    metadata. A pair read back from mined Parquet keeps its page's provenance.
    """

    source_url: str = ""
    source_file: str = ""
    source_record: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"source_url": self.source_url, "source_file": self.source_file,
                "source_record": self.source_record}


def pair_row(*, instruction: str, input_: str, output: str, kind: str, miner: str, confidence: float,
             lang: str, lang_score: float, provenance: Provenance, title: str = "",
             classifier_score: float | None = None, id_scope: str = "") -> dict:
    """A row of PAIR_SCHEMA, the one place a pair's columns are filled (mining and synthesis).

    The id hashes the page (or `id_scope` when the pair has none) with the kind and text.
    """
    return {
        "id": pair_id(provenance.source_url or id_scope, kind, instruction, input_, output),
        "instruction": instruction,
        "input": input_,
        "output": output,
        "kind": kind,
        "miner": miner,
        "confidence": float(confidence),
        "lang": lang,
        "lang_score": float(lang_score),
        **provenance.as_dict(),
        "title": title,
        "classifier_score": classifier_score,
    }


# Pair kinds written by the miners.
KIND_FAQ = "faq"
KIND_QA = "qa"
KIND_HOWTO = "howto"
KIND_HOWTO_STEP = "howto_step"
KIND_QUESTION_SENTENCE = "question_sentence"
KIND_RECIPE = "recipe"

# One document of a mixed training corpus in its Parquet form (`instructmix mix`).
MIXED_DOC_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("is_instruction", pa.bool_(), nullable=False),
    ]
)

# A synthesized pair: the mined-pair columns plus how it was made (`instructmix synth`).
SYNTH_FIELDS: list[pa.Field] = [
    pa.field("mode", pa.string(), nullable=False),
    pa.field("task_type", pa.string(), nullable=False),
    pa.field("template_id", pa.string(), nullable=False),
    pa.field("seed_ids", pa.list_(pa.string()), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("sampling", pa.string(), nullable=False),  # JSON of the sampling parameters
    pa.field("prompt_hash", pa.string(), nullable=False),
]
SYNTH_SCHEMA = pa.schema(PAIR_FIELDS + SYNTH_FIELDS)

@dataclass(slots=True)
class Candidate:
    """An instruction-response pair as a miner proposes it, before filtering."""

    instruction: str
    output: str
    kind: str
    miner: str
    confidence: float
    input: str = ""


def pair_id(source_url: str, kind: str, instruction: str, input_: str, output: str) -> str:
    """Content hash: the same page mined twice gives the same id."""
    h = hashlib.blake2b(digest_size=12)
    for part in (source_url, kind, instruction, input_, output):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def source_url_key(url: str) -> int:
    """A signed 64-bit key of a page URL, for matching pairs to the page they were mined from.

    Scheme, a trailing slash and the fragment do not make two pages different.
    """
    u = url.strip()
    u = u.split("#", 1)[0]
    if "://" in u:
        u = u.split("://", 1)[1]
    u = u.rstrip("/")
    return int.from_bytes(hashlib.blake2b(u.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little", signed=True)
