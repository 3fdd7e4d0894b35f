"""Train the small byte-level BPE tokenizer that the demo and tests count tokens with.

    .venv/bin/python samples/build_tokenizer.py                  # rewrites samples/tokenizer.json
    .venv/bin/python samples/build_tokenizer.py --out PATH [--vocab-size N]

A real mix counts with the pretrained model's own `tokenizer.json`; this one
only has to exist offline and behave like a real byte-level BPE (GPT-2 style:
any text encodes, nothing maps to "unknown"). It is trained on the bundled
text: the visible text of `samples/pages/*` and the fields of
`samples/alpaca-sample.json`. Rerunning gives the same file byte for byte
(`tests/test_tokenizer.py` checks the committed one is current). The corpus
is small, so training stops when no pair occurs twice, before
`--vocab-size` is reached.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from resiliparse.extract.html2text import extract_plain_text
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SAMPLES = Path(__file__).resolve().parent
DEFAULT_OUT = SAMPLES / "tokenizer.json"
DEFAULT_VOCAB_SIZE = 8000
# The mixer's end-of-document token, as GPT-2 spells it; id 0.
SPECIAL_TOKENS = ["<|endoftext|>"]


def training_texts(samples: Path = SAMPLES) -> list[str]:
    """Page texts (HTML through resiliparse, .txt as is) then Alpaca fields, in file-name order."""
    texts = []
    for page in sorted((samples / "pages").iterdir()):
        if page.suffix == ".html":
            texts.append(extract_plain_text(page.read_text(encoding="utf-8"), main_content=False))
        elif page.suffix == ".txt":
            texts.append(page.read_text(encoding="utf-8"))
    for record in json.loads((samples / "alpaca-sample.json").read_text(encoding="utf-8")):
        texts.extend(record.get(field, "") for field in ("system", "instruction", "input", "output"))
        texts.extend(turn for pair in record.get("history", []) for turn in pair)
    return [text for text in texts if text.strip()]


def build_tokenizer(texts: list[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    """A byte-level BPE trained on `texts`; all 256 bytes are in the vocabulary."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,  # pairs seen once would turn whole sample sentences into tokens
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write tokenizer.json")
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    args = parser.parse_args()
    tokenizer = build_tokenizer(training_texts(), args.vocab_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(args.out), pretty=False)
    print(f"{args.out}: vocab {tokenizer.get_vocab_size()}, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
