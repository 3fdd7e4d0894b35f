"""Loss masks of instruction prompts: render_with_prompt's boundary in every packaged surface
format, mapped onto real tokens (samples/tokenizer.json, byte-level BPE) by transforms.mix.loss_mask."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SAMPLES
from transforms.mix.loss_mask import loss_mask, shifted, token_spans
from transforms.mix.render import (
    PACK_SEPARATORS,
    SurfaceFormat,
    load_formats,
    pack,
    packed_prompt_spans,
    render,
    render_with_prompt,
)
from transforms.tokenizer import encode_batch, encode_batch_with_offsets, load_tokenizer

FORMATS = load_formats()
TOKENIZER = load_tokenizer(str(SAMPLES / "tokenizer.json"))
EN = {
    "instruction": "Name three prime numbers.",
    "input": "Only numbers below 10.",
    "output": "2, 3 and 5 are prime.",
    "system": "You answer in one line.",
    "history": [("Hi there.", "Hello! How can I help?")],
}
ZH = {"instruction": "用一句话解释光合作用。", "input": "", "output": "植物利用阳光把二氧化碳和水变成糖。"}


def _mask_of(text: str, char_spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    (ids, offsets), = encode_batch_with_offsets(TOKENIZER, [text])
    return ids, loss_mask(len(ids), token_spans(offsets, char_spans))


@pytest.mark.parametrize("record", [EN, ZH], ids=["en", "zh"])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.id for f in FORMATS])
def test_the_prompt_ends_where_the_response_starts_in_every_packaged_format(fmt, record):
    text, prompt = render_with_prompt(fmt, record)
    assert text == render(fmt, record)
    assert text[prompt:].startswith(record["output"])
    assert record["instruction"] in text[:prompt]


@pytest.mark.parametrize("record", [EN, ZH], ids=["en", "zh"])
@pytest.mark.parametrize("fmt", FORMATS[:6], ids=[f.id for f in FORMATS[:6]])
def test_masked_tokens_are_the_prompt_and_the_whole_response_keeps_its_loss(fmt, record):
    text, prompt = render_with_prompt(fmt, record)
    ids, mask = _mask_of(text, [(0, prompt)])
    masked = int((mask == 0).sum())
    assert mask[:masked].sum() == 0 and mask[masked:].all()  # one run of 0s at the start
    assert (encode_batch(TOKENIZER, [text])[0] == ids).all()  # the offsets' ids are the mixer's ids
    head = TOKENIZER.decode(ids[:masked].tolist())
    assert text[:prompt].startswith(head)  # every masked token is prompt text
    # ... and the next token already reaches into the response, which it starts.
    assert len(TOKENIZER.decode(ids[: masked + 1].tolist())) > prompt
    assert record["output"] in TOKENIZER.decode(ids[masked:].tolist())


def test_a_hand_made_document_masks_exactly_its_prompt_tokens():
    text = "Q: What is the capital of France?\nA: Paris."
    ids, offsets = encode_batch_with_offsets(TOKENIZER, [text])[0]
    pieces = [text[s:e] for s, e in offsets]
    prompt = text.index("Paris") - 1  # "...\nA:" ; the space belongs to the answer's first token
    mask = loss_mask(len(ids), token_spans(offsets, [(0, prompt)]))
    assert "".join(p for p, m in zip(pieces, mask) if not m) == text[:prompt]
    assert "".join(p for p, m in zip(pieces, mask) if m) == " Paris."


def test_a_template_that_changes_the_output_falls_back_to_where_the_output_appears():
    shouting = SurfaceFormat(id="shout", langs=("any",), template="{{ instruction }}\n{{ output | upper }}")
    text, prompt = render_with_prompt(shouting, {"instruction": "Say hi.", "output": "HI THERE"})
    assert text == "Say hi.\nHI THERE" and prompt == len("Say hi.\n")
    text, prompt = render_with_prompt(shouting, {"instruction": "Say hi.", "output": "hi there"})
    assert prompt == 0  # the output does not appear as given: nothing is masked


def test_packed_pairs_mask_each_prompt_and_keep_the_separators():
    fmt = next(f for f in FORMATS if "en" in f.langs or "any" in f.langs)
    records = [EN, {**EN, "instruction": "Name two even numbers.", "output": "2 and 4."}]
    rendered = [render_with_prompt(fmt, r) for r in records]
    texts, prompts = [t for t, _ in rendered], [p for _, p in rendered]
    for key in ("a", "b", "c", "d"):
        text = pack(texts, 7, key)
        spans = packed_prompt_spans(texts, prompts, 7, key)
        assert [text[s:e] for s, e in spans] == [t[:p] for t, p in zip(texts, prompts)]
        separator = text[len(texts[0]): len(text) - len(texts[1])]
        assert separator in PACK_SEPARATORS


def test_token_spans_shift_and_mask():
    # Byte-level BPE gives the bytes of one character (the 3rd and 4th tokens) the same offsets.
    offsets = np.array([[0, 2], [2, 3], [3, 4], [3, 4], [4, 9]])
    assert token_spans(offsets, [(0, 3)]) == [0, 2]
    assert token_spans(offsets, [(0, 4)]) == [0, 4]
    assert token_spans(offsets, [(0, 8), (3, 4)]) == [0, 4, 2, 4]  # the last token runs past the span: kept
    assert token_spans(offsets, [(5, 6)]) == []
    assert shifted([0, 2], 10) == [10, 12]
    assert loss_mask(5, [0, 2, 3, 4]).tolist() == [0, 0, 1, 0, 1]
    assert loss_mask(3, []).tolist() == [1, 1, 1]
