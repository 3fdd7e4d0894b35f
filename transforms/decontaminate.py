"""Benchmark decontamination: exact n-gram overlap between a pair and evaluation sets.

A pair is contaminated when any field (instruction, input, output, each on its own)
shares one n-gram of `ngram` tokens (13, as GPT-3, dolma and datatrove use) with a
benchmark item, after both are normalised the same way. The rule in one sentence:
*drop a pair if one of its word 13-grams (character 13-grams in Chinese) occurs in
a benchmark.*

Normalisation (`normalize`): NFKC (full-width letters and digits become ASCII,
compatibility ideographs their unified form), casefold, apostrophes removed
("don't" = "dont"), every other punctuation mark or symbol becomes a space,
whitespace collapsed. So re-cased, re-punctuated and full-width copies of an item
match, and "end.Start" equals "end. Start".

Tokens (`tokens`): each Han or kana character is one token (Chinese and Japanese put
no spaces between words; transforms.text rule 3); everything else is split on
words (runs of letters and digits; Korean is spaced, so Hangul words stay whole).

Short items: a benchmark item with fewer than `ngram` tokens would never match a
13-gram, so, as GPT-3's appendix C and datatrove do, it contributes its whole
token sequence as one gram of its own length; items shorter than `min_ngram`
tokens (8 by default) contribute nothing. The floor exists because very short
items ("Yes", "positive", "What is 2 + 2?", "中国的首都") are ordinary phrases:
matching them would drop innocent pairs by the thousand, and an 8-token span is
rarely shared by chance (8 Chinese characters are about 4-5 words: a short
phrase, still specific). A pair is then checked against grams of every length
the index holds (13, and each short length from 8 to 12 that occurs).

Hashes: each token is hashed with blake2b (64 bits, unsalted, so every process and
machine agrees, unlike Python's `hash`), and a gram is a polynomial of its token
hashes mod 2^64, finished with splitmix64: rolling over a text costs a few numpy
operations per gram length, not per gram.

The index (`BenchmarkIndex`): the sorted uint64 gram hashes of every benchmark and,
beside each, the id of the benchmark it came from (a gram in two benchmarks is two
entries). Lookup is `np.searchsorted`; both arrays are plain `.npy` files opened
memory-mapped, so one copy in the page cache serves every worker process on a
machine and tens of benchmarks cost tens of MB. `bench/bench_decontaminate.py`
measures it against a Python set of the same hashes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transforms.text import SPACELESS

DEFAULT_NGRAM = 13
DEFAULT_MIN_NGRAM = 8
# The drop reason of a contaminated pair: `contaminated.<benchmark>`, one counter per
# benchmark in every stage (`mine.pairs.drop.contaminated.mmlu`, transforms/stats.py).
CONTAMINATED = "contaminated"
# What a benchmark's name may hold: it is a part of a counter name (no dots).
BENCHMARK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

# Apostrophes joined inside words; every other non-word character separates tokens.
_APOSTROPHES = str.maketrans("", "", "'’‘`´ʼ")
# One Han or kana character, or a run of letters/digits of any other script.
_TOKEN = re.compile(rf"[{SPACELESS}]|[^\W_{SPACELESS}]+")

_MASK = (1 << 64) - 1
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial's base


def drop_reason(benchmark: str) -> str:
    """The counted reason of a pair dropped for sharing an n-gram with `benchmark`."""
    return f"{CONTAMINATED}.{benchmark}"


def normalize(text: str) -> str:
    """NFKC, casefolded, apostrophes removed, other punctuation and symbols to spaces, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    return " ".join(_TOKEN.findall(text))


def tokens(text: str) -> list[str]:
    """The normalised tokens of `text`: Han/kana characters one each, other scripts by words."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES))


@functools.lru_cache(maxsize=1 << 18)
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


def token_hashes(toks: Sequence[str]) -> np.ndarray:
    return np.fromiter((_token_hash(t) for t in toks), dtype=np.uint64, count=len(toks))


def _splitmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def gram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """The 64-bit hash of every window of `n` consecutive token hashes (empty when fewer)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = hashes[:count].copy()
        for k in range(1, n):
            h = h * _BASE + hashes[k:k + count]
        return _splitmix(h ^ np.uint64(n))


def _grams_of_lengths(hashes: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """`gram_hashes(hashes, n)` for every n in `lengths` (ascending), concatenated: the polynomial of
    length n is the one of length n - 1 times the base plus the next token, so all lengths up to
    the longest cost one pass of vector operations, not one per length."""
    wanted = set(lengths)
    out = []
    with np.errstate(over="ignore"):
        h = hashes.copy()
        for n in range(1, max(lengths) + 1):
            count = len(hashes) - n + 1
            if count <= 0:
                break
            if n > 1:
                h = h[:count] * _BASE + hashes[n - 1:n - 1 + count]
            if n in wanted:
                out.append(h ^ np.uint64(n))
        if not out:
            return np.empty(0, dtype=np.uint64)
        return _splitmix(out[0] if len(out) == 1 else np.concatenate(out))


def item_grams(text: str, ngram: int = DEFAULT_NGRAM, min_ngram: int = DEFAULT_MIN_NGRAM) -> np.ndarray:
    """A benchmark item's gram hashes: its `ngram`-grams, or, when it has fewer tokens, its whole
    token sequence as one gram (if at least `min_ngram` tokens long; see the module docstring)."""
    toks = tokens(text)
    if len(toks) < min_ngram:
        return np.empty(0, dtype=np.uint64)
    return gram_hashes(token_hashes(toks), min(ngram, len(toks)))


def benchmark_texts(record: object, fields: Sequence[str] | None = None) -> Iterator[str]:
    """The benchmark text of one record: every string in it, recursively through lists and
    dicts, or only under the top-level keys `fields` when given. Each string is one item."""
    if fields:
        if not isinstance(record, Mapping):
            return
        for key in fields:
            if key in record:
                yield from benchmark_texts(record[key])
        return
    if isinstance(record, str):
        yield record
    elif isinstance(record, Mapping):
        for value in record.values():
            yield from benchmark_texts(value)
    elif isinstance(record, (list, tuple)):
        for value in record:
            yield from benchmark_texts(value)


@dataclass
class BenchmarkIndex:
    """Sorted gram hashes of the benchmarks and, beside each, its benchmark's id (see module docstring)."""

    hashes: np.ndarray  # uint64, sorted
    benchmark_ids: np.ndarray  # uint16, benchmark of each hash
    names: list[str]
    ngram: int = DEFAULT_NGRAM
    min_ngram: int = DEFAULT_MIN_NGRAM
    lengths: tuple[int, ...] = (DEFAULT_NGRAM,)  # gram lengths present (ngram and short items' lengths)
    # A bitmap of the hashes' top bits (`presence_bitmap`): most grams of clean text miss it, and
    # one lookup there is cheaper than a binary search. Built from `hashes` when not given.
    bitmap: np.ndarray | None = None

    HASHES_FILE = "hashes.npy"
    IDS_FILE = "benchmark_ids.npy"
    BITMAP_FILE = "bitmap.npy"
    META_FILE = "index.json"

    def __post_init__(self) -> None:
        if self.bitmap is None:
            self.bitmap = presence_bitmap(self.hashes)
        self._shift = np.uint64(64 - int(np.log2(len(self.bitmap) * 8)))

    @classmethod
    def build(cls, benchmarks: Iterable[tuple[str, Iterable[str]]], ngram: int = DEFAULT_NGRAM,
              min_ngram: int = DEFAULT_MIN_NGRAM) -> BenchmarkIndex:
        """The index of (name, item texts) per benchmark, in the order given (ids follow it)."""
        names: list[str] = []
        parts: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        lengths = {ngram}
        for bid, (name, texts) in enumerate(benchmarks):
            names.append(name)
            grams = []
            for text in texts:
                toks = tokens(text)
                if len(toks) < min_ngram:
                    continue
                n = min(ngram, len(toks))
                lengths.add(n)
                grams.append(gram_hashes(token_hashes(toks), n))
            unique = np.unique(np.concatenate(grams)) if grams else np.empty(0, dtype=np.uint64)
            parts.append(unique)
            ids.append(np.full(len(unique), bid, dtype=np.uint16))
        hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
        bench = np.concatenate(ids) if ids else np.empty(0, dtype=np.uint16)
        order = np.lexsort((bench, hashes))
        return cls(hashes[order], bench[order], names, ngram, min_ngram, tuple(sorted(lengths)))

    def __len__(self) -> int:
        return len(self.hashes)

    def text_grams(self, text: str) -> np.ndarray:
        """Every gram hash of `text` at every length the index holds."""
        toks = tokens(text)
        if len(toks) < self.lengths[0]:
            return np.empty(0, dtype=np.uint64)
        return _grams_of_lengths(token_hashes(toks), self.lengths)

    def lookup(self, grams: np.ndarray) -> np.ndarray:
        """The index positions of those of `grams` that are in the index (the first entry of each)."""
        if not len(grams):
            return np.empty(0, dtype=np.int64)
        top = grams >> self._shift
        q = grams[((self.bitmap[top >> np.uint64(3)] >> (top & np.uint64(7)).astype(np.uint8)) & 1).astype(bool)]
        if not len(q):
            return np.empty(0, dtype=np.int64)
        q.sort()  # numpy's binary search starts from the previous key's place when keys ascend
        pos = np.searchsorted(self.hashes, q)
        pos[pos == len(self.hashes)] = 0
        return pos[self.hashes[pos] == q]

    def matches(self, *texts: str) -> list[str]:
        """The benchmarks (in index order) sharing a gram with any of `texts`; [] when clean."""
        if not len(self.hashes):
            return []
        found: set[int] = set()
        for text in texts:
            if not text:
                continue
            for p in self.lookup(self.text_grams(text)).tolist():
                # A gram in several benchmarks sits in consecutive entries.
                h = self.hashes[p]
                while p < len(self.hashes) and self.hashes[p] == h:
                    found.add(int(self.benchmark_ids[p]))
                    p += 1
        return [self.names[i] for i in sorted(found)]

    def contamination(self, *fields: str) -> str | None:
        """The drop reason of a pair given its fields (instruction, input, output, each checked on
        its own): `contaminated.<first benchmark it matches>`, or None when clean.

        A pair matching several benchmarks is counted once, under the first in the
        config's order, so the drop counters add up to the pairs dropped.
        """
        found = self.matches(*fields)
        return drop_reason(found[0]) if found else None

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / self.HASHES_FILE, self.hashes)
        np.save(folder / self.IDS_FILE, self.benchmark_ids)
        np.save(folder / self.BITMAP_FILE, self.bitmap)
        meta = {"names": self.names, "ngram": self.ngram, "min_ngram": self.min_ngram, "lengths": list(self.lengths)}
        (folder / self.META_FILE).write_text(json.dumps(meta, ensure_ascii=False))

    @classmethod
    def open(cls, folder: str | Path) -> BenchmarkIndex:
        """The index saved in `folder`, its arrays memory-mapped (read-only, shared through the page cache)."""
        folder = Path(folder)
        meta = json.loads((folder / cls.META_FILE).read_text())
        return cls(_mapped(folder / cls.HASHES_FILE), _mapped(folder / cls.IDS_FILE),
                   list(meta["names"]), int(meta["ngram"]), int(meta["min_ngram"]), tuple(meta["lengths"]),
                   _mapped(folder / cls.BITMAP_FILE))

    def sizes(self) -> dict[str, int]:
        """Distinct grams per benchmark (for the stats' details and the report)."""
        counts = np.bincount(np.asarray(self.benchmark_ids, dtype=np.int64), minlength=len(self.names))
        return {name: int(c) for name, c in zip(self.names, counts)}


def presence_bitmap(hashes: np.ndarray) -> np.ndarray:
    """One bit per value of the hashes' top bits, set where some hash has them: about 16 bits
    per hash (at least 2^16), so about 6 % of the bits are set and a clean gram is ruled
    out by one memory access 94 % of the time."""
    bits = max(16, int(np.ceil(np.log2(max(len(hashes), 1) * 16))))
    present = np.zeros(1 << bits, dtype=bool)
    present[np.asarray(hashes) >> np.uint64(64 - bits)] = True
    return np.packbits(present, bitorder="little")


def _mapped(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:  # numpy cannot map a zero-length array: benchmarks with no usable item
        return np.load(path)
