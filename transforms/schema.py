"""The one definition of the mined-pair record: its Arrow schema and column names.

Every stage (mine, synth, mix) reads and writes these columns; nothing else
invents column names.
"""

from __future__ import annotations

import pyarrow as pa

# Alpaca-compatible core plus provenance. `id` is a content hash (see
# transforms.pairs.pair_id), so it is stable across runs and machines.
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
