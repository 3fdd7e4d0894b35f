"""Prompts measured with the real model's tokenizer and made to fit: transforms/synth/prompt_fit.py."""

from __future__ import annotations

import pytest

from transforms.synth.prompt_fit import PromptEncoder, PromptFitter, default_prompt_format
from transforms.synth.prompts import (
    doc_qa_prompt,
    grounded_answer_prompt,
    self_instruct_prompt,
    system_prompt,
)


@pytest.fixture(scope="module")
def smol_tokenizer(smollm2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2, local_files_only=True)


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_llm):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm, local_files_only=True)


def _long_passage(n: int) -> str:
    return " ".join(f"Sentence number {i} tells how the river town of Elmsford built bridge {i}." for i in range(n))


def test_a_chat_model_gets_a_system_and_a_user_turn_and_the_ids_are_what_the_template_writes(smol_tokenizer):
    assert default_prompt_format(smol_tokenizer) == "chat"
    encoder = PromptEncoder(smol_tokenizer, "chat", system_prompt())
    prompt = encoder.encode("What is the capital of France?")
    assert prompt.text.startswith("<|im_start|>system\n" + system_prompt())
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt.text
    assert prompt.text.endswith("<|im_start|>assistant\n")  # the answer's turn is open
    assert prompt.token_ids == smol_tokenizer.encode(prompt.text, add_special_tokens=False)
    assert smol_tokenizer.decode(prompt.token_ids) == prompt.text


def test_completion_format_sends_the_prompt_text_itself(smol_tokenizer, tiny_tokenizer):
    assert default_prompt_format(tiny_tokenizer) == "completion"
    for tokenizer in (smol_tokenizer, tiny_tokenizer):
        prompt = PromptEncoder(tokenizer, "completion", system_prompt()).encode("Name three rivers.")
        assert prompt.text == "Name three rivers."
        assert prompt.token_ids == tokenizer.encode("Name three rivers.")


def test_chat_format_for_a_model_without_a_chat_template_is_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="no chat template"):
        PromptEncoder(tiny_tokenizer, "chat")
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        PromptEncoder(tiny_tokenizer, "instruct")


def test_max_tokens_that_leave_no_room_for_a_prompt_are_refused_naming_both_settings(smol_tokenizer):
    encoder = PromptEncoder(smol_tokenizer, "chat")
    with pytest.raises(ValueError, match=r"max_tokens \(512\).*max_model_len \(512\)"):
        PromptFitter(encoder, 512, 512)


def test_a_long_passage_keeps_its_first_whole_sentences_and_the_prompt_fits(smol_tokenizer):
    fitter = PromptFitter(PromptEncoder(smol_tokenizer, "chat", system_prompt()), 512, 192)
    passage = _long_passage(60)
    instruction = "How many bridges did Elmsford build?"
    prompt, cut = fitter.with_passage(lambda p: grounded_answer_prompt(instruction, p), passage)
    assert cut and len(prompt) <= 320 == fitter.max_prompt_tokens
    shown = prompt.text.split('"""')[1].strip()
    assert passage.startswith(shown) and shown.endswith(".") and len(shown) < len(passage)
    # One more sentence would not have fitted: the cut keeps as much as the room allows.
    more = passage[: passage.index(".", len(shown) + 1) + 1]
    assert len(fitter.encoder.encode(grounded_answer_prompt(instruction, more))) > fitter.max_prompt_tokens
    short, cut = fitter.with_passage(lambda p: grounded_answer_prompt(instruction, p), _long_passage(2))
    assert not cut and _long_passage(2) in short.text


def test_what_cannot_fit_even_with_one_sentence_is_refused(smol_tokenizer):
    fitter = PromptFitter(PromptEncoder(smol_tokenizer, "chat", system_prompt()), 512, 192)
    one_long_sentence = "word " * 2000
    assert fitter.with_passage(lambda p: grounded_answer_prompt("Summarize this.", p), one_long_sentence) is None
    assert fitter.whole(doc_qa_prompt(one_long_sentence, 3)) is None


def test_a_self_instruct_prompt_too_long_shows_fewer_example_tasks(smol_tokenizer):
    fitter = PromptFitter(PromptEncoder(smol_tokenizer, "chat", system_prompt()), 512, 192)
    tasks = [f"Task {i}: " + "describe the history of a harbour town in great detail " * 4 for i in range(8)]
    prompt, shown = fitter.with_fewer(lambda ts: self_instruct_prompt(ts), tasks)
    assert 1 <= shown < 8 and len(prompt) <= fitter.max_prompt_tokens
    assert f"\n{shown}. Task" in prompt.text and f"\n{shown + 1}." in prompt.text  # the open number follows
    assert fitter.with_fewer(lambda ts: self_instruct_prompt(ts), ["word " * 1000]) is None


def test_the_room_for_a_chunk_leaves_the_prompt_within_the_context(smol_tokenizer):
    from transforms.synth.doc_qa import chunk_document

    fitter = PromptFitter(PromptEncoder(smol_tokenizer, "chat", system_prompt()), 512, 128)
    room = fitter.passage_room(lambda d: doc_qa_prompt(d, 99))
    assert 16 < room < 384
    chunks = chunk_document(_long_passage(80), room, fitter.encoder.count)
    assert len(chunks) > 2
    for chunk in chunks:
        assert len(fitter.encoder.encode(doc_qa_prompt(chunk, 5))) <= fitter.max_prompt_tokens
