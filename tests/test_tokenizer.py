import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, SAMPLES
from transforms.tokenizer import count_tokens, encode_batch, load_tokenizer, vocab_size

SAMPLE_TOKENIZER = SAMPLES / "tokenizer.json"
TEXTS = [
    "How do I reset my password? Open the sign-in page and choose 'Forgot password'.",
    "如何重置密码？打开登录页面，点击“忘记密码”。",
    "",
    "Emoji 🙂, tabs\tand\nnewlines, ünïcödé.",
]


def test_loads_the_sample_file_or_its_folder_once_per_process():
    tok = load_tokenizer(str(SAMPLE_TOKENIZER))
    assert load_tokenizer(str(SAMPLES)) is tok
    assert load_tokenizer(str(SAMPLES / ".." / "samples" / "tokenizer.json")) is tok


def test_sample_tokenizer_is_small_byte_level_bpe():
    tok = load_tokenizer(str(SAMPLE_TOKENIZER))
    assert 1000 < vocab_size(tok) <= 8000
    assert SAMPLE_TOKENIZER.stat().st_size < 1_000_000
    assert tok.token_to_id("<|endoftext|>") == 0
    # Byte-level: every text round-trips, none has an unknown token.
    for text, ids in zip(TEXTS, encode_batch(tok, TEXTS)):
        assert tok.decode(ids.tolist()) == text
        assert ids.max(initial=0) < vocab_size(tok)


def test_encode_batch_gives_uint32_without_special_tokens():
    tok = load_tokenizer(str(SAMPLE_TOKENIZER))
    arrays = encode_batch(tok, TEXTS)
    assert [a.dtype for a in arrays] == [np.dtype(np.uint32)] * len(TEXTS)
    assert len(arrays[2]) == 0
    assert all(0 not in a for a in arrays)  # <|endoftext|> is the mixer's to add
    assert count_tokens(tok, TEXTS) == [len(a) for a in arrays]
    assert count_tokens(tok, []) == [] and encode_batch(tok, []) == []
    assert count_tokens(tok, ["a"]) == [1]


def test_missing_path_says_a_tokenizer_json_is_needed(tmp_path):
    with pytest.raises(FileNotFoundError, match="gpt2: no such tokenizer file or folder.*tokenizer.json"):
        load_tokenizer("gpt2")
    (tmp_path / "tokenizer.model").write_bytes(b"\x00")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: folder holds no tokenizer.json.*SentencePiece"):
        load_tokenizer(str(tmp_path))


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(ValueError, match=f"{bad}: not a readable tokenizers file"):
        load_tokenizer(str(bad))


def test_committed_tokenizer_is_what_the_build_script_writes(tmp_path):
    out = tmp_path / "tokenizer.json"
    subprocess.run(
        [sys.executable, str(SAMPLES / "build_tokenizer.py"), "--out", str(out)], check=True, cwd=REPO,
        capture_output=True, env={**os.environ, "RAYON_NUM_THREADS": "3"},  # another thread count
    )  # fmt: skip
    assert out.read_bytes() == SAMPLE_TOKENIZER.read_bytes(), "rerun samples/build_tokenizer.py"
