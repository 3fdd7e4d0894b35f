"""The tokenizer that measures and encodes mixed text: a local `tokenizer.json`.

The mixer states its ratio in tokens of the model being pretrained, so it
counts with that model's own tokenizer, read from a Hugging Face
`tokenizers` file. Nothing is ever downloaded: a hub name like "gpt2" is
refused with the way to save the file locally. `samples/tokenizer.json`
(built by samples/build_tokenizer.py) is the small one the demo and tests use.

A worker loads a tokenizer once per path (`load_tokenizer` caches on the
resolved path), never per record.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
_HOW_TO_GET_ONE = (
    "a Hugging Face tokenizers `tokenizer.json` is needed (nothing is downloaded): save one with "
    "`AutoTokenizer.from_pretrained(NAME).save_pretrained(DIR)` or `Tokenizer.save(PATH)` and pass "
    "the file or its folder"
)


def load_tokenizer(path: str) -> Tokenizer:
    """The tokenizer in `path`: a `tokenizer.json` file or a local folder holding one.

    Raises FileNotFoundError (nothing at `path`, or a folder without
    tokenizer.json) or ValueError (a file `tokenizers` cannot read), naming
    the path. Cached per process on the resolved path: treat the result as
    read-only (no `enable_padding`/`enable_truncation` on it).
    """
    resolved = Path(path).expanduser().resolve()
    if resolved.is_dir():
        resolved = resolved / TOKENIZER_FILE
        if not resolved.is_file():
            found = sorted(p.name for p in resolved.parent.iterdir())[:8]
            hint = (
                " (tokenizer.model is a SentencePiece file, not read here)"
                if "tokenizer.model" in found
                else ""
            )
            raise FileNotFoundError(
                f"{path}: folder holds no {TOKENIZER_FILE}{hint}; it has {found or 'nothing'}; {_HOW_TO_GET_ONE}"
            )
    elif not resolved.is_file():
        raise FileNotFoundError(f"{path}: no such tokenizer file or folder; {_HOW_TO_GET_ONE}")
    return _load(str(resolved))


@functools.lru_cache(maxsize=8)
def _load(resolved: str) -> Tokenizer:
    try:
        return Tokenizer.from_file(resolved)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for malformed files
        raise ValueError(f"{resolved}: not a readable tokenizers file ({exc}); {_HOW_TO_GET_ONE}") from None


def vocab_size(tok: Tokenizer) -> int:
    """One more than the largest token id `tok` can produce, added tokens included."""
    return tok.get_vocab_size(with_added_tokens=True)


def count_tokens(tok: Tokenizer, texts: Sequence[str]) -> list[int]:
    """Tokens in each text, without special tokens (what `encode_batch` gives)."""
    return [len(encoding.ids) for encoding in _encode(tok, texts)]


def encode_batch(tok: Tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
    """Token ids of each text as a uint32 array, no special tokens added:
    the mixer adds its own document separators.
    """
    return [np.asarray(encoding.ids, dtype=np.uint32) for encoding in _encode(tok, texts)]


def encode_batch_with_offsets(tok: Tokenizer, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """`encode_batch`'s token ids of each text, and each token's [start, end) character offsets
    as an (n, 2) array (what maps a span of text, such as a prompt to mask, onto tokens)."""
    texts = list(texts)
    if not texts:
        return []
    return [
        (np.asarray(e.ids, dtype=np.uint32), np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2))
        for e in tok.encode_batch(texts, add_special_tokens=False)
    ]


def _encode(tok: Tokenizer, texts: Sequence[str]) -> list:
    texts = list(texts)
    if not texts:
        return []
    # encode_batch_fast (tokenizers >= 0.20) skips computing character offsets,
    # which nothing here uses.
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return encode(texts, add_special_tokens=False)
