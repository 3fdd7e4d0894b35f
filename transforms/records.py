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
