"""The Self-Instruct instruction pool: "is this candidate's ROUGE-L against every pooled instruction < 0.7?"

Self-Instruct compares each new instruction with every seed and every accepted
machine instruction (rouge_score, a process pool, O(pool) per candidate). At
50 000 instructions that is 50 000 LCS computations per candidate. This index
answers the same question exactly while computing ROUGE-L for only the few
pool members that could reach the threshold.

The bound (why the prefilter never misses a member at or above the threshold)
-----------------------------------------------------------------------------
For a candidate a (|a| tokens) and a pool member b (|b| tokens), ROUGE-L F
with beta = 1 is F = 2·LCS/(|a|+|b|) (see `transforms.synth.rouge`). So

  (1) F >= t  <=>  LCS >= t·(|a|+|b|)/2, so LCS >= o(|b|) := ceil(t·(|a|+|b|)/2);
  (2) LCS <= min(|a|, |b|), so a member can only qualify when
      t·|a|/(2-t) <= |b| <= |a|·(2-t)/t   (length filter);
  (3) LCS <= |a ∩ b|, the multiset intersection (a common subsequence uses
      each shared token at most min(count in a, count in b) times).

Write each text as the set of its token occurrences, (token, 1), (token, 2), …
for the 1st, 2nd, … occurrence; the multiset intersection is then the plain set
intersection of those sets. If |a ∩ b| >= o, then any o-1 elements of a's set
cannot contain the whole intersection, so b contains at least one element of
any *prefix* of a's set of length |a| - o + 1 (prefix filtering, as in
AllPairs/PPJoin set-similarity joins). The index maps
(token occurrence, member length) -> member ids over *every* element of every
member, so for each admissible length |b| the candidates are the members of
that length listed under the first |a| - o(|b|) + 1 elements of the candidate.
More generally, a prefix of length |a| - o + k leaves o - k elements outside,
so b must hold at least k elements of it: probing a few more elements and
counting hits per member (k = 4 here) prunes far more than k = 1 for a few
more posting lists read. Any order of a's elements is sound; taking the rarest first (elements the pool
has never seen cost nothing) keeps the posting lists short. Only those members
get an exact LCS.

Floating point: the exact check uses the same expression as `rouge_l_f`
(a correctly rounded 2·LCS/(|a|+|b|), monotone in LCS), and the pruning bounds
use t minus 1e-9, so pruning is never stricter than the exact check.

`max_similarity` (best score and member over the whole pool, like the
paper's `most_similar` log) is exact too: it runs the same search at t, and if
nothing reaches t, again at a lower level: the best score s seen so far (the
search at s finds that member again, so it ends there), or, when nothing was
seen, t·0.6, t·0.36, … and finally "shares any token". A level that finds a
member at or above itself has verified every member that could beat it.
Members that share no token score 0.

Threshold semantics: novel means max ROUGE-L < threshold (REFERENCES.md);
the paper's code rejects only scores > 0.7, so an exact 0.7 differs.
Everything is deterministic: ties go to the member added first.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import chain

from transforms.synth.rouge import lcs_length_masked, rouge_tokens, token_masks

# Pruning uses a threshold this much lower than the exact check (see module docstring).
_SLACK = 1e-9
# When the search at the threshold verified nothing, max_similarity searches
# again at threshold·0.6, ·0.36, … until the level drops under _LAST_LEVEL, then
# over every member sharing a token.
_LEVEL_FACTOR = 0.6
_LAST_LEVEL = 0.1
# Probing this many elements past the minimal prefix and demanding as many more
# hits (k = 4 in the module docstring) cut exact LCS checks 20x on the benchmark
# pool at 30k members; 3 was the fastest of 0..7 there.
_EXTRA_PROBES = 3
# Posting keys pack (token id, occurrence, member length) into one int.
_OCC_BITS = 24
_LEN_BITS = 32


class NoveltyIndex:
    """Pool of instructions with exact "max ROUGE-L < threshold" queries (see module docstring).

    `tokenize` must return the same tokens for the same text; the default is
    `transforms.synth.rouge.rouge_tokens` (en words, zh characters).
    """

    def __init__(
        self,
        threshold: float = 0.7,
        texts: Iterable[str] = (),
        tokenize: Callable[[str], list[str]] = rouge_tokens,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"NoveltyIndex: threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._tokenize = tokenize
        self._vocab: dict[str, int] = {}
        self._texts: list[str] = []
        self._token_ids: list[tuple[int, ...]] = []
        # (element << _LEN_BITS | member length) -> member ids, in insertion order.
        self._postings: dict[int, list[int]] = {}
        # element -> number of members holding it, to probe the rarest first.
        self._df: dict[int, int] = {}
        self._sorted_lengths: list[int] = []
        for text in texts:
            self.add(text)

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> None:
        """Put `text` in the pool (no novelty check; see `add_if_novel`)."""
        member = len(self._texts)
        vocab = self._vocab
        ids = []
        for token in self._tokenize(text):
            tid = vocab.get(token)
            if tid is None:
                tid = vocab[token] = len(vocab)
            ids.append(tid)
        self._texts.append(text)
        self._token_ids.append(tuple(ids))
        length = len(ids)
        if length == 0:
            return  # scores 0 against everything; kept only so len() counts it
        if length >= 1 << _OCC_BITS:
            raise ValueError(f"NoveltyIndex.add: text has {length} tokens, more than {(1 << _OCC_BITS) - 1}")
        i = bisect.bisect_left(self._sorted_lengths, length)
        if i == len(self._sorted_lengths) or self._sorted_lengths[i] != length:
            self._sorted_lengths.insert(i, length)
        df, postings = self._df, self._postings
        for element in _elements(ids):
            df[element] = df.get(element, 0) + 1
            key = element << _LEN_BITS | length
            bucket = postings.get(key)
            if bucket is None:
                postings[key] = [member]
            else:
                bucket.append(member)

    def is_novel(self, text: str) -> bool:
        """True when every pooled instruction scores ROUGE-L < threshold against `text`."""
        score, _ = self._search(text, stop_at_threshold=True)
        return score < self.threshold

    def add_if_novel(self, text: str) -> bool:
        """Add `text` when it is novel; return whether it was added (the Self-Instruct accept step)."""
        if self.is_novel(text):
            self.add(text)
            return True
        return False

    def max_similarity(self, text: str) -> tuple[float, str | None]:
        """Exact best ROUGE-L of `text` against the pool and that member (None when nothing shares a token)."""
        score, member = self._search(text, stop_at_threshold=False)
        return score, (self._texts[member] if member >= 0 else None)

    # --- search ------------------------------------------------------------------

    def _search(self, text: str, stop_at_threshold: bool) -> tuple[float, int]:
        """(best score, member id or -1); with stop_at_threshold, returns at the first member >= threshold."""
        vocab = self._vocab
        ids = [vocab.get(token, -1) for token in self._tokenize(text)]
        la = len(ids)
        if la == 0 or not self._sorted_lengths:
            return 0.0, -1
        known = [i for i in ids if i >= 0]
        if not known:
            return 0.0, -1
        # Elements the pool has never seen come first in "rarest first" order and
        # have no postings, so they shorten every prefix for free.
        unseen = la - len(known)
        df = self._df
        elements = sorted(_elements(known), key=lambda e: (df.get(e, 0), e))
        masks = token_masks(ids)
        scores: dict[int, float] = {}
        best, best_member = 0.0, -1
        threshold = self.threshold
        level = threshold
        while True:
            for member in self._candidates(la, unseen, elements, level):
                if member in scores:
                    continue
                other = self._token_ids[member]
                score = 2 * lcs_length_masked(masks, la, other) / (la + len(other))
                scores[member] = score
                if score > best or (score == best and best_member > member):
                    best, best_member = score, member
                    if stop_at_threshold and score >= threshold:
                        return best, best_member
            if stop_at_threshold or best >= level or level == 0.0:
                return best, best_member
            if best > 0.0:
                # Searching at the best score seen finds that member again, so this level ends it.
                level = best
            else:
                level = level * _LEVEL_FACTOR if level * _LEVEL_FACTOR >= _LAST_LEVEL else 0.0

    def _candidates(self, la: int, unseen: int, elements: list[int], level: float) -> Iterable[int]:
        """Members that may reach ROUGE-L >= level against an la-token text with these elements.

        `elements` are the text's known token occurrences, rarest first, after
        `unseen` occurrences the pool has never seen. level 0.0 means "shares at
        least one token".
        """
        t = level - _SLACK
        lengths = self._sorted_lengths
        if t > 0:
            lo = bisect.bisect_left(lengths, math.floor(t * la / (2 - t)))
            hi = bisect.bisect_right(lengths, math.ceil(la * (2 - t) / t))
        else:
            lo, hi = 0, len(lengths)
        postings = self._postings
        for lb in lengths[lo:hi]:
            need = max(1, math.ceil(t * (la + lb) / 2)) if t > 0 else 1
            if need > min(la, lb):
                continue
            # Probe _EXTRA_PROBES elements past the minimal prefix (la - need + 1);
            # a member must then show up under `required` of the probed elements.
            probed = min(la, la - need + 1 + _EXTRA_PROBES)
            required = need - (la - probed)
            keys = [element << _LEN_BITS | lb for element in elements[: probed - unseen]]
            buckets = [b for b in map(postings.get, keys) if b]
            if len(buckets) < required:
                continue
            if required == 1:
                for bucket in buckets:
                    yield from bucket
            else:
                yield from (m for m, hits in Counter(chain.from_iterable(buckets)).items() if hits >= required)


def _elements(token_ids: Iterable[int]) -> list[int]:
    """Token occurrences as ints: the k-th occurrence of token id i is (i << _OCC_BITS) | k."""
    seen: dict[int, int] = {}
    out = []
    for tid in token_ids:
        k = seen.get(tid, 0) + 1
        seen[tid] = k
        out.append(tid << _OCC_BITS | k)
    return out
