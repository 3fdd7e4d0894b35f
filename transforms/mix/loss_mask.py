"""Loss masks: which tokens of a mixed document a trainer should not learn to predict.

With `loss_mask: instruction_prompt` the prompt of every injected instruction (system
text, history, instruction, input and the surface format's labels: everything its rendered
text holds before the response, `render.render_with_prompt`) is masked, as instruction
tuning does, so the model learns to answer, not to ask; the response, the pages and the
documents' separators keep their loss. A document's masked parts are kept as prompt spans:
character spans while it is text, token spans once it is tokenized (pairs [start, end) in
one flat list, cheap to store beside the token ids), and a 0/1 byte per token only when a
shard is written. A token is masked when it lies wholly inside a prompt span: one that
starts in the prompt and runs into the response (byte-level BPE's "ĠParis" after "A:")
keeps its loss, so the first word of every answer is learned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

LOSS_MASKS = ("none", "instruction_prompt")


def token_spans(offsets: np.ndarray, char_spans: Iterable[tuple[int, int]]) -> list[int]:
    """Character spans [start, end) as the spans of the tokens lying wholly inside them, flat:
    [start0, end0, start1, end1, ...]. `offsets` are the tokens' [start, end) characters, an
    (n, 2) array in text order (`tokenizer.encode_batch_with_offsets`)."""
    offsets = np.asarray(offsets).reshape(-1, 2)
    out: list[int] = []
    for lo, hi in char_spans:
        first = int(np.searchsorted(offsets[:, 0], lo, side="left"))
        end = int(np.searchsorted(offsets[:, 1], hi, side="right"))
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
