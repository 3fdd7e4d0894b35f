"""The shard plan, coarse: the driver never looks at a document.

Pretraining files are cut, inside their tokenize tasks, into chunks of about
`chunk_tokens_for(shard_tokens)` tokens at document boundaries (`chunk_ends`).
The driver sees only each chunk's token total. From those it

1. gives every chunk its target ratio: the schedule at the chunk's position in
   the output (`chunk_ratios`; a constant ratio is a one-step schedule);
2. groups consecutive chunks into shards of about `shard_tokens` output tokens
   (`layout_shards`), so a shard reads whole chunks and each chunk is read by
   one shard;
3. sets, for every instruction source, how many of its tokens the stream holds
   by the end of each shard (`standalone_targets`): the cumulative target, never
   a per-shard quota, so rounding to whole instruction units does not pile up.

Before any shard is written, each target is bracketed by the unit boundaries
below and above it (`unit_bounds`, in tasks that read only the lengths of the
pieces of units the targets fall in), and for each cut the driver picks, per
source, the one that brings the instruction total closest to its target
(`choose_cuts`). So at every shard's end the stream holds its cumulative
instruction target to within about half a unit: the whole output ends there,
and a shard (the difference of two cuts) within about one unit. The
document-level order inside a shard is transforms.mix.interleave's. Time and
memory here are proportional to chunks + shards, not to documents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Chunks per shard, roughly: shards are whole chunks, so a shard's size varies by about one chunk.
CHUNKS_PER_SHARD = 16
# Chunks stay small enough to hold in one task's memory (text and token ids) whatever the shard size.
MAX_CHUNK_TOKENS = 4 << 20
# Rounds of "position -> ratio -> output tokens -> position"; the positions move by
# less than a ratio's change times a chunk's share, so a few rounds settle them.
POSITION_ROUNDS = 4

RatioAt = Callable[[np.ndarray], np.ndarray]


def chunk_tokens_for(shard_tokens: int) -> int:
    """The pretraining tokens a chunk closes at, for shards of `shard_tokens`."""
    return max(1, min(shard_tokens // CHUNKS_PER_SHARD, MAX_CHUNK_TOKENS))


def chunk_ends(lengths: np.ndarray, chunk_tokens: int) -> list[tuple[int, int]]:
    """(end document, exclusive; tokens) of each chunk of one file, in order.

    A chunk closes after the document that brings it to `chunk_tokens`, so a
    document is never split and one longer than `chunk_tokens` is a chunk of
    its own. One search per chunk, not a step per document.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    cum = np.cumsum(lengths)
    out: list[tuple[int, int]] = []
    start, base = 0, 0
    while start < len(lengths):
        end = int(np.searchsorted(cum, base + chunk_tokens, side="left")) + 1
        end = min(max(end, start + 1), len(lengths))
        out.append((end, int(cum[end - 1] - base)))
        start, base = end, int(cum[end - 1])
    return out


class ChunkCutter:
    """`chunk_ends`'s rule, one document at a time, for a task that streams a file."""

    def __init__(self, chunk_tokens: int):
        self.chunk_tokens = chunk_tokens
        self.tokens = 0

    def add(self, length: int) -> bool:
        """Count a document; True when the chunk closes after it."""
        self.tokens += int(length)
        if self.tokens >= self.chunk_tokens:
            self.tokens = 0
            return True
        return False


def chunk_ratios(chunk_tokens: np.ndarray, ratio_at: RatioAt) -> np.ndarray:
    """The target ratio of each pretraining chunk: the schedule at the chunk's midpoint in the output.

    A chunk of p pretraining tokens at ratio r takes p / (1 - r) output tokens,
    so positions depend on the ratios before them; a few rounds of the fixed
    point settle them (exact at once for a constant ratio).
    """
    p = np.asarray(chunk_tokens, dtype=np.float64)
    if not len(p):
        return np.zeros(0)
    total = p.sum() or 1.0
    ratios = ratio_at((np.cumsum(p) - p / 2) / total)
    for _ in range(POSITION_ROUNDS):
        out = p / (1 - ratios)
        ratios = ratio_at((np.cumsum(out) - out / 2) / (out.sum() or 1.0))
    return ratios


@dataclass
class ShardLayout:
    """Shards as ranges of the chunk stream, and what each must hold."""

    starts: np.ndarray  # first chunk of each shard; shard k is chunks [starts[k], starts[k+1])
    pretrain_tokens: np.ndarray  # per shard
    instruction_target: np.ndarray  # per shard, float: the schedule's instruction tokens for its chunks
    chunk_instruction_target: np.ndarray  # per chunk, float

    @property
    def shards(self) -> int:
        return len(self.starts) - 1

    def target_ratio(self) -> np.ndarray:
        """Each shard's target share of instruction tokens."""
        total = self.pretrain_tokens + self.instruction_target
        return np.divide(self.instruction_target, total, out=np.zeros(len(total)), where=total > 0)

    def cumulative_target(self) -> np.ndarray:
        """Instruction tokens the stream holds by the end of each shard."""
        return np.cumsum(self.instruction_target)


def layout_shards(chunk_tokens: np.ndarray, ratio_at: RatioAt, shard_tokens: int) -> ShardLayout:
    """Consecutive chunks grouped into shards of at least `shard_tokens` output tokens (expected).

    A last shard under half of `shard_tokens` joins the one before it, so no
    shard is a remnant whose ratio means little.
    """
    p = np.asarray(chunk_tokens, dtype=np.int64)
    ratios = chunk_ratios(p, ratio_at)
    inst = p * ratios / (1 - ratios) if len(p) else np.zeros(0)
    cum_out = np.cumsum(p + inst)
    starts = [0]
    base = 0.0
    while starts[-1] < len(p):
        end = int(np.searchsorted(cum_out, base + shard_tokens, side="left")) + 1
        end = min(max(end, starts[-1] + 1), len(p))
        starts.append(end)
        base = float(cum_out[end - 1])
    if len(starts) > 2:
        last = cum_out[-1] - (cum_out[starts[-2] - 1] if starts[-2] else 0.0)
        if last < shard_tokens / 2:
            del starts[-2]
    starts_arr = np.asarray(starts, dtype=np.int64)
    pre_cum = np.concatenate([[0], np.cumsum(p)])
    inst_cum = np.concatenate([[0.0], np.cumsum(inst)])
    return ShardLayout(
        starts=starts_arr,
        pretrain_tokens=np.diff(pre_cum[starts_arr]).astype(np.int64),
        instruction_target=np.diff(inst_cum[starts_arr]),
        chunk_instruction_target=inst,
    )


def standalone_targets(layout: ShardLayout, weights: list[float], attached: np.ndarray | None = None) -> np.ndarray:
    """[source, shard] cumulative standalone instruction tokens by the end of each shard.

    `attached[source, shard]`: instruction tokens riding on that shard's pages
    (placement: source_document), which count towards the source's share.
    Never decreasing, so cuts move forward only.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    want = np.outer(w, layout.cumulative_target())
    if attached is not None and attached.size:
        want = want - np.cumsum(attached, axis=1)
    return np.maximum.accumulate(np.maximum(want, 0.0), axis=1)


def locate(piece_ends: np.ndarray, tokens):
    """The piece (of a source's unit stream, by cumulative end tokens) each cut at `tokens` falls in."""
    return np.minimum(np.searchsorted(piece_ends, tokens, side="left"), max(len(piece_ends) - 1, 0))


# Instruction records per chunk of a Parquet instruction file, at most (whole row groups).
RECORDS_PER_CHUNK = 100_000


def row_group_chunks(rows_per_group: list[int], records_per_chunk: int | None = None) -> list[tuple[int, int]]:
    """Consecutive row groups of one Parquet file, (first, end) each, closed once a chunk holds
    `records_per_chunk` (RECORDS_PER_CHUNK) rows: a large instruction file is several tasks."""
    records_per_chunk = records_per_chunk or RECORDS_PER_CHUNK
    out: list[tuple[int, int]] = []
    first, rows = 0, 0
    for group, n in enumerate(rows_per_group):
        rows += n
        if rows >= records_per_chunk:
            out.append((first, group + 1))
            first, rows = group + 1, 0
    if first < len(rows_per_group) or not out:
        out.append((first, len(rows_per_group)))
    return out


def unit_bounds(lengths: np.ndarray, tokens: float) -> tuple[int, int]:
    """The unit boundaries either side of `tokens`: (units whose total is the largest not above
    it, units whose total is the smallest not below it); equal when one falls on it."""
    cum = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))])
    i = int(np.searchsorted(cum, tokens, side="left"))
    if i >= len(cum):
        return len(cum) - 1, len(cum) - 1
    return (i if cum[i] == tokens else i - 1), i


def choose_cuts(below: np.ndarray, above: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For one cut, each source's choice between the boundary below its target and the one above
    (True: above), so that the instruction total comes closest to the sum of the targets.

    Starts from each source's nearest boundary and flips, one source at a time, whichever
    choice brings the total closest, until none does: with S sources the total ends within
    half a unit of the finest source that could still flip, usually far closer, where
    rounding each source alone can be off by half a unit per source.
    """
    below, above, targets = (np.asarray(x, dtype=np.float64) for x in (below, above, targets))
    up = (above - targets) < (targets - below)
    goal = float(targets.sum())
    for _ in range(len(targets)):
        chosen = np.where(up, above, below)
        error = float(chosen.sum()) - goal
        flipped = error - chosen + np.where(up, below, above)  # the total's error after flipping each source
        best = int(np.argmin(np.abs(flipped)))
        if abs(flipped[best]) >= abs(error):
            break
        up[best] = not up[best]
    return up


def monotone_cuts(tokens: np.ndarray) -> np.ndarray:
    """Indices (into the per-cut choices of one source) that make its cuts never go back:
    where a cut would fall below the one before it (shards shorter than a unit or two), the
    earlier cut takes the later one's place, so the last cut, which decides the whole output,
    never moves."""
    tokens = np.asarray(tokens)
    index = np.arange(len(tokens))
    for k in range(len(tokens) - 2, -1, -1):
        if tokens[index[k]] > tokens[index[k + 1]]:
            index[k] = index[k + 1]
    return index
