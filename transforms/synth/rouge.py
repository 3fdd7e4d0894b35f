"""ROUGE-L for the Self-Instruct novelty filter: tokens, LCS length, F-measure.

Self-Instruct (yizhongw/self-instruct, bootstrap_instructions.py) scores a new
instruction against every pooled one with `rouge_score`'s
`RougeScorer(["rougeL"], use_stemmer=False)` and keeps it only when the best
F-measure stays under 0.7. `rouge_score` is not a dependency here, so this
module reimplements the two parts that matter:

* Tokens (`rouge_tokens`). rouge_score lowercases and keeps runs of
  `[a-z0-9]`, which deletes every Chinese character: two Chinese
  instructions would always score 0 and nothing would ever be a duplicate.
  Here a token is a lowercase run of letters/digits (so ASCII English
  tokenizes exactly like rouge_score), except that each Han or kana character
  is a token of its own, because Chinese and Japanese put no spaces between
  words and a per-character LCS is the usual Chinese ROUGE. Mixed text gets
  both ("用Python写" -> 用, python, 写). Text is NFKC-normalised first so
  full-width letters and digits match their ASCII forms. Hangul is written
  with spaces and stays word-level. Accented Latin letters stay inside their
  word ("café" is one token; rouge_score would split it into "caf").
* F-measure (`rouge_l_f`). With precision P = LCS/|a|, recall R = LCS/|b| and
  rouge_score's default beta = 1, F = 2PR/(P+R) simplifies to
  2·LCS/(|a|+|b|). It is computed in that closed form, so the value is the
  correctly rounded quotient of two integers; `NoveltyIndex` relies on that
  (monotone in LCS) to prune soundly.

The LCS length uses the bit-parallel algorithm of Allison & Dix (1986) /
Crochemore et al. (2001): one bit per token of one side, a handful of integer
operations per token of the other side, instead of an O(n·m) table of Python
objects: 2.4 µs instead of 27 µs for two 14-token instructions, and Python
integers grow as needed, so there is no length limit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Mapping, Sequence

from transforms.text import SPACELESS

# Han and kana, the scripts written without spaces (rule 3 of transforms/text.py),
# are tokenized per character.
_TOKEN = re.compile(f"[{SPACELESS}]|[^\\W_{SPACELESS}]+")


def rouge_tokens(text: str) -> list[str]:
    """ROUGE tokens of `text`: lowercase letter/digit runs, one token per Han/kana character."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _TOKEN.findall(text.lower())


def token_masks(tokens: Sequence[Hashable]) -> dict[Hashable, int]:
    """Bit i of `masks[t]` is set where `tokens[i] == t` (the bit-parallel LCS pattern side)."""
    masks: dict[Hashable, int] = {}
    for i, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << i)
    return masks


def lcs_length_masked(masks: Mapping[Hashable, int], n: int, other: Sequence[Hashable]) -> int:
    """LCS length of the n-token sequence behind `masks` (see `token_masks`) and `other`.

    Split out so a caller comparing one sequence against many builds the masks once.
    """
    full = (1 << n) - 1
    v = full
    for token in other:
        m = masks.get(token)
        if m:
            u = v & m
            # Crochemore et al. 2001: V' = (V + (V & M)) | (V & ~M); V & ~M == V - U.
            v = ((v + u) | (v - u)) & full
    return n - v.bit_count()


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if not a or not b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    # Bits for the shorter side keep the integers small; iterate over the longer.
    return lcs_length_masked(token_masks(b), len(b), a)


def rouge_l_f(a_tokens: Sequence[Hashable], b_tokens: Sequence[Hashable]) -> float:
    """ROUGE-L F-measure (beta = 1) of two token sequences: 2·LCS / (|a| + |b|); 0.0 if either is empty."""
    total = len(a_tokens) + len(b_tokens)
    if not a_tokens or not b_tokens:
        return 0.0
    return 2 * lcs_length(a_tokens, b_tokens) / total


def rouge_l(text_a: str, text_b: str) -> float:
    """ROUGE-L F-measure of two texts under `rouge_tokens`."""
    return rouge_l_f(rouge_tokens(text_a), rouge_tokens(text_b))
