"""The shard plan: which pretraining documents and instruction units go into which shard.

Stated in a sentence: documents are taken in stream order, an instruction unit is
placed whenever the running instruction share is below the target (picking the
source furthest behind its weight), and a shard is cut once it is full and its
share is within CUT_TOLERANCE of the target. Pure arithmetic on token lengths, so
it is tested exactly and runs the same on a driver or in a task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from transforms.mix.interleave import ShardInterleaver, SourcePicker

# A shard is closed at a point where its instruction share is within this of the target...
CUT_TOLERANCE = 0.002
# ... unless it has grown this much past shard_tokens without reaching such a point.
OVERSIZE_FACTOR = 2.0



@dataclass
class ShardPlan:
    runs: list[list[int]] = field(default_factory=list)  # [kind, source/file, start, end); kind 0 pretrain, 1 instruction
    docs: int = 0
    tokens: int = 0
    instruction_docs: int = 0
    instruction_tokens: int = 0
    attached_tokens: int = 0  # instruction tokens appended to pretraining documents (placement: source_document)
    detached: list[list[int]] = field(default_factory=list)  # [file, doc] whose pairs were left off to keep the ratio

    def add(self, kind: int, which: int, index: int, length: int, attached: int = 0) -> None:
        last = self.runs[-1] if self.runs else None
        if last and last[0] == kind and last[1] == which and last[3] == index:
            last[3] = index + 1
        else:
            self.runs.append([kind, which, index, index + 1])
        self.docs += 1
        self.tokens += length + attached
        self.attached_tokens += attached
        self.instruction_tokens += attached
        if kind == 1:
            self.instruction_docs += 1
            self.instruction_tokens += length

    def merge(self, other: ShardPlan) -> None:
        for kind, which, start, end in other.runs:
            self.runs.append([kind, which, start, end])
        self.docs += other.docs
        self.tokens += other.tokens
        self.instruction_docs += other.instruction_docs
        self.instruction_tokens += other.instruction_tokens
        self.attached_tokens += other.attached_tokens
        self.detached.extend(other.detached)


def plan_shards(
    pretrain_lengths: list[np.ndarray], unit_lengths: list[np.ndarray], weights: list[float], ratio: float,
    shard_tokens: int, attached_lengths: list[np.ndarray] | None = None,
) -> tuple[list[ShardPlan], list[int]]:
    """Interleave by the rules of transforms.mix.interleave; returns the shards and units used per source.

    `attached_lengths[f][i]` are instruction tokens appended to pretraining
    document i of file f; they count towards the ratio like standalone ones.
    A shard is cut once it holds `shard_tokens` and its ratio is within
    CUT_TOLERANCE of the target (the running error crosses zero every few
    documents), or at OVERSIZE_FACTOR * shard_tokens regardless. A final shard
    shorter than half of `shard_tokens` is merged into the one before it, so no
    shard is a few documents whose ratio means nothing.
    """
    if attached_lengths is None:
        attached_lengths = [np.zeros(len(lengths), dtype=np.int64) for lengths in pretrain_lengths]
    picker = SourcePicker(weights) if sum(weights) > 0 else None
    next_unit = [0] * len(unit_lengths)
    shards: list[ShardPlan] = []
    shard, inter = ShardPlan(), ShardInterleaver(ratio)
    docs = iter(
        (f, i, int(n), int(a))
        for f, (lengths, attached) in enumerate(zip(pretrain_lengths, attached_lengths))
        for i, (n, a) in enumerate(zip(lengths, attached))
    )
    pending = next(docs, None)
    while True:
        source = picker.pick([next_unit[s] < len(u) for s, u in enumerate(unit_lengths)]) if picker else None
        unit_len = int(unit_lengths[source][next_unit[source]]) if source is not None else None
        pre_len, attached = (pending[2], pending[3]) if pending else (None, 0)
        if inter.prefer_instruction(pre_len, unit_len, attached):
            shard.add(1, source, next_unit[source], unit_len)
            inter.add(0, unit_len)
            picker.consume(source, unit_len)
            next_unit[source] += 1
        elif pending is not None:
            kept = inter.attached_part(pre_len, attached)
            if attached and not kept:
                shard.detached.append([pending[0], pending[1]])
            shard.add(0, pending[0], pending[1], pre_len, kept)
            inter.add(pre_len, kept)
            pending = next(docs, None)
        else:
            break
        if inter.tokens >= shard_tokens and (
            inter.error() <= CUT_TOLERANCE * inter.tokens or inter.tokens >= OVERSIZE_FACTOR * shard_tokens
        ):
            shards.append(shard)
            shard, inter = ShardPlan(), ShardInterleaver(ratio)
    if shard.docs:
        if shards and shard.tokens < shard_tokens // 2:
            shards[-1].merge(shard)
        else:
            shards.append(shard)
    return shards, next_unit
