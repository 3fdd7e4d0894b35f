"""The mixing rule, exactly: source shares by tokens, shard ratios, order, completeness."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.mix.interleave import ShardInterleaver, SourcePicker
from transforms.mix.plan import plan_shards


def test_source_picker_follows_weights_exactly_with_equal_lengths():
    picker = SourcePicker([0.7, 0.3])
    counts = [0, 0]
    for _ in range(1000):
        s = picker.pick([True, True])
        counts[s] += 1
        picker.consume(s, 10)
    assert counts == [700, 300]


def test_source_picker_shares_tokens_not_documents():
    picker = SourcePicker([1, 1])
    lengths = [100, 10]  # source 0 has ten times longer documents
    for _ in range(2000):
        s = picker.pick([True, True])
        picker.consume(s, lengths[s])
    assert abs(picker.tokens[0] - picker.tokens[1]) <= max(lengths)


def test_source_picker_skips_spent_sources_and_rejects_bad_weights():
    picker = SourcePicker([0.5, 0.5])
    assert picker.pick([False, True]) == 1
    assert picker.pick([False, False]) is None
    with pytest.raises(ValueError, match="weights"):
        SourcePicker([0, 0])


def test_interleaver_prefers_pretraining_on_an_empty_shard_and_keeps_prefixes_close():
    inter = ShardInterleaver(0.05)
    assert not inter.prefer_instruction(1000, 200)
    rng = np.random.default_rng(0)
    pre = rng.integers(50, 2000, size=3000)
    ins = rng.integers(20, 400, size=3000)
    p = i = 0
    worst = 0.0
    while p < len(pre):
        if inter.prefer_instruction(int(pre[p]), int(ins[i])):
            inter.add(0, int(ins[i]))
            i += 1
        else:
            inter.add(int(pre[p]), 0)
            p += 1
        worst = max(worst, abs(inter.instruction_tokens - 0.05 * inter.tokens))
    # Every prefix within one document of the target (in tokens).
    assert worst <= max(0.05 * pre.max(), 0.95 * ins.max())


@pytest.mark.parametrize("ratio", [0.01, 0.05, 0.10, 0.3])
def test_every_shard_within_half_a_point_and_the_whole_within_a_tenth(ratio):
    rng = np.random.default_rng(42)
    pretrain = [rng.integers(30, 3000, size=n) for n in (4000, 2500, 7000)]
    units = [rng.integers(20, 600, size=200_000), rng.integers(40, 300, size=200_000)]
    shards, used = plan_shards(pretrain, units, [0.7, 0.3], ratio, shard_tokens=400_000)
    assert len(shards) > 5
    for shard in shards:
        assert abs(shard.instruction_tokens / shard.tokens - ratio) <= 0.005
    total = sum(s.tokens for s in shards)
    assert abs(sum(s.instruction_tokens for s in shards) / total - ratio) <= 0.001
    # Instruction tokens split 70/30 between the sources, within a few documents.
    used_tokens = [int(units[s][: used[s]].sum()) for s in range(2)]
    assert abs(used_tokens[0] / sum(used_tokens) - 0.7) < 0.01


def test_plan_uses_every_pretraining_document_once_in_order_and_is_deterministic():
    rng = np.random.default_rng(7)
    pretrain = [rng.integers(10, 500, size=300), rng.integers(10, 500, size=200)]
    units = [rng.integers(10, 100, size=5000)]
    shards, _ = plan_shards(pretrain, units, [1.0], 0.05, shard_tokens=5000)
    seen = [(which, i) for s in shards for kind, which, a, b in s.runs if kind == 0 for i in range(a, b)]
    assert seen == [(0, i) for i in range(300)] + [(1, i) for i in range(200)]
    again, _ = plan_shards(pretrain, units, [1.0], 0.05, shard_tokens=5000)
    assert [s.runs for s in again] == [s.runs for s in shards]


def test_a_short_last_shard_is_merged_into_the_previous_one():
    pretrain = [np.full(105, 100)]
    units = [np.full(1000, 50)]
    shards, _ = plan_shards(pretrain, units, [1.0], 0.1, shard_tokens=5000)
    assert all(s.tokens >= 2500 for s in shards)


def test_pairs_riding_on_a_page_are_left_off_when_they_would_overshoot():
    inter = ShardInterleaver(0.05)
    inter.add(1000, 0)
    assert inter.attached_part(100, 300) == 0  # 300 instruction tokens would put the shard far above 5 %
    assert inter.attached_part(100, 50) == 50  # 50 brings it closer to 5 % than the bare page would
    # The page with its 50 attached tokens (error 7.5) beats a 200-token instruction document (error 140).
    assert not inter.prefer_instruction(100, 200, attached_length=50)
