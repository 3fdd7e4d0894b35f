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

from collections.abc import Sequence


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
    """Greedy minimum-error interleave of two streams inside one shard."""

    def __init__(self, ratio: float):
        if not 0 < ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        self.ratio = ratio
        self.pretrain_tokens = 0
        self.instruction_tokens = 0

    @property
    def tokens(self) -> int:
        return self.pretrain_tokens + self.instruction_tokens

    def error_after(self, instruction: bool, length: int) -> float:
        """|instruction tokens - ratio * all tokens| once a document of `length` tokens is added."""
        i = self.instruction_tokens + (length if instruction else 0)
        return abs(i - self.ratio * (self.tokens + length))

    def prefer_instruction(self, pretrain_length: int | None, instruction_length: int | None) -> bool:
        """True when the next document should be the instruction one (pretraining wins ties)."""
        if instruction_length is None:
            return False
        if pretrain_length is None:
            # Only instruction documents are left: take one only if it brings the shard closer.
            return self.error_after(True, instruction_length) < abs(self.instruction_tokens - self.ratio * self.tokens)
        return self.error_after(True, instruction_length) < self.error_after(False, pretrain_length)

    def add(self, instruction: bool, length: int) -> None:
        if instruction:
            self.instruction_tokens += length
        else:
            self.pretrain_tokens += length
