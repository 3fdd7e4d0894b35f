"""Exact and near-duplicate keys for mined pairs, computed per record.

The job deduplicates in two shuffles and never compares pairs inside Python:

1. exact: group by `exact_key(instruction, input, output)`, keep the best-ranked
   pair, ranked by (confidence descending, id ascending);
2. near: explode `lsh_band_keys(minhash_signature(pair_dedup_text(...)))`,
   group by band key, and drop all but the best-ranked member of every group
   that holds more than one (`near_duplicate_losers` over (-confidence, id)).

`kept_pair_indexes` applies the same two rules to pairs held in one
process (the datatrove step, within one task), so both engines keep the same
pairs of the same input.

Normalisation (`normalize_for_dedup`) makes copies that differ only in case,
width, punctuation or whitespace identical, for every script.

MinHash shingles are character 5-grams of the normalised text, for every
language: Chinese needs no word segmentation, mixed-language pairs hash one
way, and on short texts (most answers are under 100 words) character shingles
give many more set elements than word 3-grams, so the Jaccard estimate is
steadier. Changing one word of a 60-word answer keeps Jaccard near 0.9 (in
our test answer 99.6 % of single-word edits still share a band key; one
changed character in a 110-character Chinese answer, 92 %).
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from transforms.text import alphanumeric_only

NUM_PERM = 128
NGRAM = 5
SEED = 1
# datasketch.lsh._optimal_param(threshold=0.8, num_perm=128, weights 0.5/0.5)
# returns (b=9, r=13), using 117 of the 128 permutations. The S-curve
# P(candidate) = 1 - (1 - J^13)^9 gives: J=0.95 -> 99.9 %, J=0.9 -> 93 %,
# J=0.8 -> 40 %, J=0.7 -> 8 %, J=0.5 -> 0.1 %.
LSH_BANDS = 9
LSH_ROWS = 13


def normalize_for_dedup(text: str) -> str:
    """NFKC (full-width to half-width, compatibility forms), casefold, letters and digits only
    (punctuation, symbols, spaces and underscores go; combining marks too, alike in both copies)."""
    return alphanumeric_only(unicodedata.normalize("NFKC", text).casefold())


def pair_dedup_text(instruction: str, input_: str, output: str) -> str:
    """The text a pair is MinHashed on: its fields in order (normalisation drops the line breaks)."""
    return f"{instruction}\n{input_}\n{output}"


def exact_key(instruction: str, input_: str, output: str) -> str:
    """Hex hash of the normalised fields; equal for copies differing only in case/width/punctuation."""
    return _exact_key_of_normalized([normalize_for_dedup(part) for part in (instruction, input_, output)])


def _exact_key_of_normalized(parts: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def pair_dedup_keys(pairs: Sequence[tuple[str, str, str]]) -> list[tuple[str, list[int]]]:
    """(`exact_key`, `lsh_band_keys` of the MinHash of `pair_dedup_text`) of each
    (instruction, input, output), for a batch (a page's pairs).

    Each field is normalised once for both keys: normalising the joined text gives the joined
    normalised fields, since the separator goes and nothing composes across it. One numpy pass
    bands the whole batch.
    """
    if not pairs:
        return []
    normalized = [[normalize_for_dedup(part) for part in pair] for pair in pairs]
    hashes = [shingle_hashes("".join(parts)) for parts in normalized]
    bands = lsh_band_keys_many(_signatures_from_hashes(hashes, NUM_PERM, SEED, columns=LSH_BANDS * LSH_ROWS))
    return [(_exact_key_of_normalized(parts), keys) for parts, keys in zip(normalized, bands)]


# --- MinHash --------------------------------------------------------------------

# FNV-1a style mixing over code points, vectorised over all n-gram windows,
# then the 64-bit MurmurHash3 finaliser. Deterministic across processes and
# machines (unlike Python's salted `hash`), so executors agree on signatures.
_FNV_PRIME = np.uint64(0x100000001B3)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_EMPTY_SLOT = np.uint32(0xFFFFFFFF)


def _fmix64(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def shingle_hashes(normalized: str, ngram: int = NGRAM) -> np.ndarray:
    """32-bit hashes of every character `ngram`-gram (the whole text if shorter; empty if blank)."""
    if not normalized:
        return np.empty(0, dtype=np.uint32)
    cps = np.frombuffer(normalized.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    n = min(ngram, len(cps))
    windows = len(cps) - n + 1
    h = np.full(windows, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h ^= cps[k : k + windows]
            h *= _FNV_PRIME
        h = _fmix64(h)
    return (h & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


@functools.lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch 2's affine32 permutation parameters for (num_perm, seed): odd `a` and any `b`,
    drawn in that order from RandomState(seed), so signatures equal MinHash.update_batch's
    (tests/test_dedup.py compares them). Drawn here because importing datasketch imports scipy
    (through its LSH), a quarter of a second of every Spark worker's start."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _signatures_from_hashes(
    hashes: list[np.ndarray], num_perm: int, seed: int, columns: int | None = None
) -> np.ndarray:
    """Row i = min over shingles of datasketch's affine32 permutation of hashes[i].

    `columns`: only the first this many permutations (each column is computed on its own, so
    they equal the full signature's); LSH bands read 117 of the 128.
    """
    a, b = _permutations(num_perm, seed)
    a, b = a[:columns], b[:columns]
    out = np.full((len(hashes), len(a)), _EMPTY_SLOT, dtype=np.uint32)
    # One (shingles x num_perm) block per text: measured faster than a single
    # block for the batch reduced with np.minimum.reduceat (cache-bound).
    with np.errstate(over="ignore"):
        for i, h in enumerate(hashes):
            if len(h):
                block = np.multiply.outer(_fmix32(h.copy()), a)
                block += b
                block.min(axis=0, out=out[i])
    return out


def minhash_signatures(
    texts: Iterable[str], num_perm: int = NUM_PERM, ngram: int = NGRAM, seed: int = SEED
) -> np.ndarray:
    """uint32[len(texts), num_perm] MinHash signatures of a batch (an Arrow batch, a partition)."""
    hashes = [shingle_hashes(normalize_for_dedup(t), ngram) for t in texts]
    return _signatures_from_hashes(hashes, num_perm, seed)


def minhash_signature(
    text: str, num_perm: int = NUM_PERM, ngram: int = NGRAM, seed: int = SEED
) -> np.ndarray:
    """The MinHash signature (uint32[num_perm]) of `text`; all 0xFFFFFFFF for blank text.

    Identical to a datasketch `MinHash(num_perm, seed)` fed the 32-bit
    shingle hashes through `update_batch` with an identity hash function
    (see `minhash`), computed directly in numpy, which is about 1.5x faster.
    """
    return minhash_signatures([text], num_perm, ngram, seed)[0]


def _identity(x: int) -> int:
    return x


def minhash(text: str, num_perm: int = NUM_PERM, ngram: int = NGRAM, seed: int = SEED):
    """The same signature as a datasketch `MinHash`, for its jaccard/merge/LSH tools."""
    from datasketch import MinHash

    return MinHash(
        num_perm=num_perm,
        seed=seed,
        hashfunc=_identity,
        hashvalues=minhash_signature(text, num_perm, ngram, seed),
        permutations=MinHash(num_perm=num_perm, seed=seed).permutations,
        scheme="affine32",
    )


def signature_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures (share of equal slots)."""
    if len(a) != len(b):
        raise ValueError(f"signatures differ in length: {len(a)} vs {len(b)}")
    return float(np.count_nonzero(np.asarray(a) == np.asarray(b))) / len(a)


def lsh_band_keys_many(
    signatures: np.ndarray, bands: int = LSH_BANDS, rows: int = LSH_ROWS
) -> list[list[int]]:
    """`lsh_band_keys` for each row of a uint32[n, num_perm] signature matrix."""
    sigs = np.atleast_2d(np.asarray(signatures, dtype=np.uint32))
    if bands * rows > sigs.shape[1]:
        raise ValueError(
            f"lsh_band_keys: bands*rows = {bands * rows} exceeds signature length {sigs.shape[1]}"
        )
    wide = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    # Salt each band's hash with its index, so equal rows in different bands differ.
    salts = _FNV_OFFSET ^ (np.arange(1, bands + 1, dtype=np.uint64) * _GOLDEN)
    keys = np.broadcast_to(salts, (len(sigs), bands)).copy()
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys ^= wide[:, :, r]
            keys *= _FNV_PRIME
        keys = _fmix64(keys)
    signed = keys.view(np.int64)
    blank = np.all(sigs == _EMPTY_SLOT, axis=1)
    return [[] if blank[i] else signed[i].tolist() for i in range(len(sigs))]


def lsh_band_keys(signature: np.ndarray, bands: int = LSH_BANDS, rows: int = LSH_ROWS) -> list[int]:
    """One signed 64-bit key per band (fits a Spark LongType); [] for a blank text's signature.

    Each key hashes the band index with the band's rows, so equal rows in
    different bands give different keys. Two pairs sharing any key are
    near-duplicate candidates.
    """
    return lsh_band_keys_many(np.asarray(signature)[None, :], bands, rows)[0]


def group_losers(ids: Iterable[Hashable]) -> list:
    """Ids of one band group to drop: all but the smallest."""
    unique = sorted(set(ids))
    return unique[1:]


def near_duplicate_losers(buckets: Iterable[Iterable[Hashable]]) -> set:
    """Ids to drop given groups of ids that share a band key: every group keeps its smallest id.

    An id survives only if it is the smallest of every group it is in, so the
    smallest id of any connected component (linked through shared groups)
    always survives. This is a per-group rule, not a full connected-component
    pass: with groups {A, C} and {B, C} (A < B < C) both A and B survive,
    which is right when A and B are not themselves similar. It needs one
    group-by and no iteration, so a Spark job runs it as one flatMap.
    """
    losers: set = set()
    for group in buckets:
        losers.update(group_losers(group))
    return losers


def _rank(row: Mapping) -> tuple[float, str]:
    return (-float(row["confidence"]), str(row["id"]))


def kept_pair_indexes(rows: Sequence[Mapping], exact: bool = True, near: bool = True) -> tuple[list[int], int, int]:
    """(indexes of the rows kept, ascending; exact duplicates dropped; near duplicates dropped).

    The rule of `jobs.mine.deduplicate` over rows held in memory (each with `id`,
    `confidence`, `exact_key` and `band_keys`): one pair per exact key, the best-ranked
    by (confidence descending, id ascending); then, among those, every member of a band
    group but its best-ranked one is dropped.
    """
    kept = list(range(len(rows)))
    exact_dropped = near_dropped = 0
    if exact:
        best: dict[str, int] = {}
        for i in kept:
            j = best.get(rows[i]["exact_key"])
            if j is None or _rank(rows[i]) < _rank(rows[j]):
                best[rows[i]["exact_key"]] = i
        exact_dropped = len(kept) - len(best)
        kept = sorted(best.values())
    if near:
        buckets: dict[tuple[int, int], list[tuple[float, str]]] = {}
        for i in kept:
            for band, key in enumerate(rows[i]["band_keys"]):
                buckets.setdefault((band, key), []).append(_rank(rows[i]))
        losers = {member_id for _, member_id in near_duplicate_losers(buckets.values())}
        before = len(kept)
        kept = [i for i in kept if str(rows[i]["id"]) not in losers]
        near_dropped = before - len(kept)
    return kept, exact_dropped, near_dropped
