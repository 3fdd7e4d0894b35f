"""A tiny random-weight Llama and its byte-level BPE tokenizer, built offline.

Tests and benchmarks run the real vLLM engine on it: nothing is downloaded,
ever. Hidden size 128 with 2 heads gives head dim 64 (vLLM's CPU backend needs
>= 32). Deterministic: fixed seeds, tokenizer trained on the project's own text.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_tiny_llm(out: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists():
        return out
    lines = []
    for path in sorted((REPO / "templates").rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".jinja", ".jsonl"):
            lines.extend(path.read_text(encoding="utf-8").splitlines())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=0, eos_token_id=1, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    return out
