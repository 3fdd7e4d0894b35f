"""The mixing rule: which document comes next, stated so it can be tested exactly.

Two greedy rules in the spirit of Megatron's blended dataset (pick whatever is
furthest behind its target), both on TOKENS:

* `SourcePicker` chooses the instruction source whose token count is furthest
  below `weight * instruction tokens so far`.
* `ShardInterleaver` decides, inside one output shard, whether the next document
  is the next pretraining document or the next instruction document: whichever
  leaves the shard's instruction-token share closest to the target ratio. So
  every prefix of every shard stays within about one document of the target and
  a shard of T tokens ends within max(r*p, (1-r)*i)/T of it (p, i: the lengths
  of the longest pretraining and instruction documents).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


class SourcePicker:
    """Megatron-style weighted choice among instruction sources, on tokens, deterministic."""

    def __init__(self, weights: Sequence[float]):
        total = float(sum(weights))
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError(f"instruction weights must be >= 0 with a positive sum, got {list(weights)}")
        self.weights = [w / total for w in weights]
        self.tokens = [0] * len(weights)

    def pick(self, available: Sequence[bool]) -> int | None:
        """Index of the source furthest behind its share (lowest index on ties), or None if all are spent."""
        total = sum(self.tokens)
        best, best_gap = None, None
        for s, (w, used) in enumerate(zip(self.weights, self.tokens)):
            if not available[s] or w == 0:
                continue
            gap = w * total - used
            if best_gap is None or gap > best_gap:
                best, best_gap = s, gap
        return best

    def consume(self, source: int, tokens: int) -> None:
        self.tokens[source] += tokens


class ShardInterleaver:
    """Greedy minimum-error interleave of two streams inside one shard.

    A pretraining document may carry instruction tokens of its own (pairs
    appended to the page they were mined from), so each step adds a
    (pretraining tokens, instruction tokens) pair.
    """

    def __init__(self, ratio: float):
        if not 0 < ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        self.ratio = ratio
        self.pretrain_tokens = 0
        self.instruction_tokens = 0

    @property
    def tokens(self) -> int:
        return self.pretrain_tokens + self.instruction_tokens

    def error_after(self, pretrain: int, instruction: int) -> float:
        i = self.instruction_tokens + instruction
        return abs(i - self.ratio * (self.tokens + pretrain + instruction))

    def prefer_instruction(
        self, pretrain_length: int | None, instruction_length: int | None, attached_length: int = 0
    ) -> bool:
        """True when the next document should be the instruction one (pretraining wins ties).

        `attached_length` is the instruction tokens riding on the next pretraining document.
        """
        if instruction_length is None:
            return False
        if pretrain_length is None:
            return True
        return self.error_after(0, instruction_length) < self.error_after(pretrain_length, attached_length)

    def add(self, pretrain: int, instruction: int) -> None:
        self.pretrain_tokens += pretrain
        self.instruction_tokens += instruction


def interleave_shard(
    pretrain: Iterable[tuple[T, int, int]],
    units: Sequence[Iterable[tuple[T, int]]],
    unit_tokens: Sequence[int],
    share: float,
) -> Iterator[T]:
    """One shard's documents in order: its pretraining documents in stream order, with
    every one of its instruction units placed among them by the two rules above.

    `pretrain` yields (item, pretraining tokens, instruction tokens riding on it);
    `units[s]` yields (item, tokens) of source s, `unit_tokens[s]` tokens in all;
    `share` is the shard's whole instruction share (the plan knows it exactly), so
    the units spread over the whole shard and the last of them lands near its end.
    Units left when the pages run out follow them.
    """
    pages = iter(pretrain)
    page = next(pages, None)
    if not 0 < share < 1 or not any(t > 0 for t in unit_tokens):
        while page is not None:
            yield page[0]
            page = next(pages, None)
        for stream in units:
            for item, _ in stream:
                yield item
        return
    streams = [iter(u) for u in units]
    heads = [next(s, None) for s in streams]
    picker = SourcePicker([max(int(t), 0) for t in unit_tokens])
    inter = ShardInterleaver(share)
    while True:
        source = picker.pick([h is not None for h in heads])
        head = heads[source] if source is not None else None
        if head is None and any(h is not None for h in heads):  # a source the picker gives no weight
            source = next(s for s, h in enumerate(heads) if h is not None)
            head = heads[source]
        if inter.prefer_instruction(page[1] if page else None, head[1] if head else None, page[2] if page else 0):
            yield head[0]
            inter.add(0, head[1])
            picker.consume(source, head[1])
            heads[source] = next(streams[source], None)
        elif page is not None:
            yield page[0]
            inter.add(page[1], page[2])
            page = next(pages, None)
        else:
            return
