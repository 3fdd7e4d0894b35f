"""Loss masks: which tokens of a mixed document a trainer should not learn to predict.

With `loss_mask: instruction_prompt` the prompt of every injected instruction (system
text, history, instruction, input and the surface format's labels: everything its rendered
text holds before the response, `render.render_with_prompt`) is masked, as instruction
tuning does, so the model learns to answer, not to ask; the response, the pages and the
documents' separators keep their loss. A document's masked parts are kept as prompt spans:
character spans while it is text, token spans once it is tokenized (pairs [start, end) in
one flat list, cheap to store beside the token ids), and a 0/1 byte per token only when a
shard is written. A token is masked when it starts inside a prompt span; a token that
starts in the prompt and runs into the response is masked with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

LOSS_MASKS = ("none", "instruction_prompt")


def token_spans(token_starts: np.ndarray, char_spans: Iterable[tuple[int, int]]) -> list[int]:
    """Character spans [start, end) as token spans over tokens whose first character is `token_starts`
    (a tokenizer's offsets, non-decreasing), flat: [start0, end0, start1, end1, ...]."""
    starts = np.asarray(token_starts)
    out: list[int] = []
    for lo, hi in char_spans:
        first, end = np.searchsorted(starts, [lo, hi], side="left").tolist()
        if end > first:
            out += [first, end]
    return out


def shifted(spans: Sequence[int], offset: int) -> list[int]:
    """Token spans of a piece that starts `offset` tokens into its document."""
    return [s + offset for s in spans]


def loss_mask(length: int, spans: Sequence[int]) -> np.ndarray:
    """One uint8 per token, 0 inside the flat token spans and 1 elsewhere."""
    mask = np.ones(length, dtype=np.uint8)
    for start, end in zip(spans[0::2], spans[1::2]):
        mask[start:end] = 0
    return mask
