"""The mixing rule, exactly: source shares by tokens, the coarse shard plan, cuts, order, completeness."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.mix.interleave import ShardInterleaver, SourcePicker, interleave_shard
from transforms.mix.plan import (
    ChunkCutter,
    choose_cuts,
    chunk_ends,
    chunk_ratios,
    layout_shards,
    locate,
    monotone_cuts,
    standalone_targets,
    unit_bounds,
)
from transforms.mix.schedule import RatioSchedule


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


# --- the coarse plan ---------------------------------------------------------------------


def test_chunks_close_after_the_document_that_fills_them_streamed_or_at_once():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 900, size=5000)
    ends = chunk_ends(lengths, 2000)
    cutter = ChunkCutter(2000)
    streamed = [i + 1 for i, n in enumerate(lengths) if cutter.add(int(n))]
    if streamed[-1] != len(lengths):
        streamed.append(len(lengths))
    assert [e for e, _ in ends] == streamed
    assert sum(t for _, t in ends) == lengths.sum()
    starts = [0] + [e for e, _ in ends[:-1]]
    for (end, tokens), start in zip(ends[:-1], starts):
        assert tokens >= 2000 and lengths[start:end - 1].sum() < 2000  # closed by its last document
    assert chunk_ends(np.asarray([5000, 10, 10]), 100) == [(1, 5000), (3, 20)]  # a long page is a chunk alone


def test_shards_are_whole_consecutive_chunks_and_a_short_tail_joins_the_last():
    chunks = np.full(100, 1000)
    layout = layout_shards(chunks, RatioSchedule.constant(0.2).at_many, shard_tokens=10_000)
    assert layout.starts[0] == 0 and layout.starts[-1] == 100 and np.all(np.diff(layout.starts) > 0)
    assert layout.pretrain_tokens.sum() == 100_000
    # 1000 pretraining tokens + 250 instruction tokens per chunk: 8 chunks make 10,000 output tokens,
    # and the 4 chunks left over (5,000 tokens) are not under half a shard, so they stay a shard.
    assert list(np.diff(layout.starts)) == [8] * 12 + [4]
    assert np.allclose(layout.target_ratio(), 0.2)
    short_tail = layout_shards(np.full(98, 1000), RatioSchedule.constant(0.2).at_many, shard_tokens=10_000)
    assert list(np.diff(short_tail.starts)) == [8] * 11 + [10]


def _simulate(pretrain, units, weights, ratio_at, shard_tokens, chunk_tokens):
    """What the driver and the write tasks do, in memory: per shard, its documents in order."""
    chunk_lengths, chunk_docs = [], []
    for f, lengths in enumerate(pretrain):
        start = 0
        for end, tokens in chunk_ends(lengths, chunk_tokens):
            chunk_lengths.append(tokens)
            chunk_docs.append([(("p", f, i), int(lengths[i]), 0) for i in range(start, end)])
            start = end
    layout = layout_shards(np.asarray(chunk_lengths), ratio_at, shard_tokens)
    targets = standalone_targets(layout, weights)
    cuts = np.zeros((len(units), layout.shards + 1), dtype=np.int64)
    cums = [np.concatenate([[0], np.cumsum(u)]) for u in units]
    bounds = np.asarray([[unit_bounds(u, t) for t in targets[s]] for s, u in enumerate(units)])  # [s, k, 2]
    for k in range(layout.shards):
        below = [cums[s][bounds[s, k, 0]] for s in range(len(units))]
        above = [cums[s][bounds[s, k, 1]] for s in range(len(units))]
        up = choose_cuts(below, above, targets[:, k])
        cuts[:, k + 1] = np.where(up, bounds[:, k, 1], bounds[:, k, 0])
    for s in range(len(units)):
        cuts[s, 1:] = cuts[s, 1:][monotone_cuts(cums[s][cuts[s, 1:]])]
    shards = []
    for k in range(layout.shards):
        pages = [d for j in range(layout.starts[k], layout.starts[k + 1]) for d in chunk_docs[j]]
        streams = [[(("u", s, i), int(units[s][i])) for i in range(cuts[s, k], cuts[s, k + 1])] for s in range(len(units))]
        unit_tokens = [sum(n for _, n in st) for st in streams]
        pre = sum(n for _, n, _ in pages)
        share = sum(unit_tokens) / (pre + sum(unit_tokens))
        order = list(interleave_shard(pages, streams, unit_tokens, share))
        shards.append((order, pre, sum(unit_tokens)))
    return layout, cuts, shards


@pytest.mark.parametrize("ratio", [0.01, 0.05, 0.10, 0.3])
def test_every_shard_within_half_a_point_and_the_whole_within_a_tenth(ratio):
    rng = np.random.default_rng(42)
    pretrain = [rng.integers(30, 3000, size=n) for n in (4000, 2500, 7000)]
    units = [rng.integers(20, 600, size=200_000), rng.integers(40, 300, size=200_000)]
    _, cuts, shards = _simulate(pretrain, units, [0.7, 0.3], RatioSchedule.constant(ratio).at_many,
                                     400_000, 25_000)
    assert len(shards) > 5
    for _, pre, inst in shards:
        assert abs(inst / (pre + inst) - ratio) <= 0.005
    pre_total = sum(p for _, p, _ in shards)
    inst_total = sum(i for _, _, i in shards)
    # The rounding of the last source only: half of its longest unit, over the whole output.
    assert abs(inst_total - ratio * (pre_total + inst_total)) <= 300 / (1 - ratio)
    used = [int(units[s][: cuts[s, -1]].sum()) for s in range(2)]
    assert abs(used[0] / sum(used) - 0.7) < 0.002


def test_a_shard_holds_its_pages_in_order_and_every_unit_once():
    rng = np.random.default_rng(7)
    pretrain = [rng.integers(10, 500, size=300), rng.integers(10, 500, size=200)]
    units = [rng.integers(10, 100, size=5000), rng.integers(10, 60, size=5000)]
    _, cuts, shards = _simulate(pretrain, units, [0.5, 0.5], RatioSchedule.constant(0.05).at_many, 5000, 300)
    pages = [item for order, _, _ in shards for item in order if item[0] == "p"]
    assert pages == [("p", 0, i) for i in range(300)] + [("p", 1, i) for i in range(200)]
    placed = [item for order, _, _ in shards for item in order if item[0] == "u"]
    assert sorted(placed) == sorted(("u", s, i) for s in range(2) for i in range(cuts[s, -1]))
    again = _simulate(pretrain, units, [0.5, 0.5], RatioSchedule.constant(0.05).at_many, 5000, 300)[2]
    assert again == shards


def test_inside_a_shard_every_prefix_stays_near_its_share():
    pages = [(("p", i), n, 0) for i, n in enumerate(np.random.default_rng(1).integers(100, 1500, size=400))]
    units = [[(("u", i), 120) for i in range(110)]]
    pre = sum(n for _, n, _ in pages)
    share = 13_200 / (pre + 13_200)
    lengths = {p[0]: p[1] for p in pages} | {u[0]: u[1] for u in units[0]}
    inst = total = 0
    for item in interleave_shard(pages, units, [13_200], share):
        total += lengths[item]
        inst += lengths[item] if item[0] == "u" else 0
        assert abs(inst - share * total) <= 1500
    assert inst == 13_200


def test_pages_carrying_pairs_count_towards_the_share():
    pages = [(("p", 0), 1000, 100), (("p", 1), 1000, 0), (("p", 2), 1000, 0)]
    units = [[(("u", 0), 100)]]
    order = list(interleave_shard(pages, units, [100], 200 / 3200))
    # The first page's 100 attached tokens already meet the share; the unit waits for the second page.
    assert order.index(("u", 0)) >= 2


def test_units_either_side_of_a_target_and_the_piece_it_falls_in():
    lengths = np.asarray([10, 10, 50, 10])
    assert [unit_bounds(lengths, t) for t in (0, 4, 20, 44, 80, 1000)] == [(0, 0), (0, 1), (2, 2), (2, 3), (4, 4), (4, 4)]
    ends = np.asarray([100.0, 100.0, 250.0])  # the second piece is empty
    assert [locate(ends, t) for t in (0, 100, 100.5, 250, 999)] == [0, 0, 2, 2, 2]


def test_a_schedule_sets_each_chunks_target_by_its_place_in_the_output():
    schedule = RatioSchedule.from_spec({"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 1.0, "ratio": 0.08}]})
    ratios = chunk_ratios(np.full(1000, 1000), schedule.at_many)
    assert np.all(np.diff(ratios) >= 0) and ratios[0] == 0.02 and ratios[-1] == 0.08
    # Half of the OUTPUT tokens are at 2 %: the later chunks are longer in output, so fewer of them.
    out = 1000 / (1 - ratios)
    switch = int(np.argmax(ratios > 0.02))
    assert abs(out[:switch].sum() / out.sum() - 0.5) < 0.002
    rng = np.random.default_rng(11)
    pretrain = [rng.integers(30, 3000, size=6000)]
    units = [rng.integers(20, 600, size=100_000)]
    layout, _, shards = _simulate(pretrain, units, [1.0], schedule.at_many, 200_000, 12_500)
    realized = [inst / (pre + inst) for _, pre, inst in shards]
    for got, want in zip(realized, layout.target_ratio()):
        assert abs(got - want) <= 0.005
    assert realized[0] < 0.03 and realized[-1] > 0.07


def test_a_parquet_file_is_cut_into_chunks_of_whole_row_groups():
    from transforms.mix.plan import row_group_chunks

    assert row_group_chunks([40, 40, 40, 40, 10], 100) == [(0, 3), (3, 5)]
    assert row_group_chunks([500], 100) == [(0, 1)]  # a row group is never split
    assert row_group_chunks([], 100) == [(0, 0)]  # an empty file is still one (empty) chunk
    assert row_group_chunks([50, 50], 100) == [(0, 2)]


def test_choosing_each_sources_side_keeps_the_instruction_total_within_half_a_unit():
    rng = np.random.default_rng(9)
    units = [rng.integers(50, 400, size=3000), rng.integers(50, 400, size=3000), rng.integers(50, 400, size=3000)]
    cums = [np.concatenate([[0], np.cumsum(u)]) for u in units]
    worst_alone = worst_chosen = 0.0
    for total in np.linspace(0, 150_000, 120)[1:]:
        targets = np.asarray([0.5, 0.2, 0.3]) * total
        below = [cums[s][unit_bounds(u, t)[0]] for s, (u, t) in enumerate(zip(units, targets))]
        above = [cums[s][unit_bounds(u, t)[1]] for s, (u, t) in enumerate(zip(units, targets))]
        up = choose_cuts(below, above, targets)
        worst_chosen = max(worst_chosen, abs(np.where(up, above, below).sum() - total))
        nearest = np.where(np.asarray(above) - targets < targets - np.asarray(below), above, below)
        worst_alone = max(worst_alone, abs(nearest.sum() - total))
    assert worst_chosen <= 200 and worst_chosen < worst_alone / 2  # half a unit, not half a unit per source
    # Three sources whose nearest boundaries all lie above: one of them goes below instead.
    assert list(choose_cuts([85, 0, 0], [255, 90, 150], [213, 58, 117])) == [True, False, True]


def test_a_cut_that_would_go_back_takes_the_later_cuts_place():
    assert list(monotone_cuts(np.asarray([10, 30, 20, 40]))) == [0, 2, 2, 3]
    assert unit_bounds(np.asarray([10, 10]), 10) == (1, 1) and unit_bounds(np.asarray([10, 10]), 15) == (1, 2)
