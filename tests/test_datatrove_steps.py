"""instructmix mining as datatrove PipelineSteps: the step on hand-made pages (English and
Chinese), and real datatrove pipelines on LocalPipelineExecutor over the real pages of
../shared/webdata/qa-dev, compared with `instructmix mine` on the same WARC."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

pytest.importorskip("datatrove", reason="datatrove is not installed (pip install 'instructmix[datatrove]')")

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter

from jobs.config import ConfigError, MineConfig
from jobs.datatrove_steps import (
    PAIR_DOCUMENT_SCHEMA,
    InstructionPairDeduplicator,
    InstructionPairMiner,
)
from transforms.records import PAIR_COLUMNS

EN_FAQ = """<!doctype html><html><head><title>Shipping FAQ</title></head><body>
<nav><a href="/">Home</a> <a href="/shop">Shop</a></nav>
<main><h1>Frequently asked questions</h1>
<h2>How long does shipping take to Europe?</h2>
<p>Standard shipping to most European countries takes five to seven business days, and express delivery
arrives within two business days after the order leaves our warehouse.</p>
<h2>Can I return an item after thirty days?</h2>
<p>Returns are accepted for sixty days from delivery as long as the item is unused and in its original
packaging; we refund the full price including the original shipping cost.</p>
</main><footer>Copyright 2024 Example Shop. All rights reserved.</footer></body></html>"""

ZH_FAQ = """<!doctype html><html><head><meta charset="utf-8"><title>常见问题</title></head><body>
<main><h1>常见问题</h1>
<h2>如何申请退款？</h2>
<p>登录账户后进入“我的订单”，选择需要退款的订单并点击“申请退款”，填写退款原因后提交，客服会在两个工作日内审核并原路退回款项。</p>
<h2>订单发货需要多长时间？</h2>
<p>现货商品会在付款后二十四小时内发货，预售商品以商品页面标注的时间为准，偏远地区的配送时间可能会延长一到三天。</p>
</main></body></html>"""

EN_TEXT = """Q: How do I reset my router to factory settings?
A: Hold the small reset button on the back of the router for ten seconds with a paper clip, wait for the
lights to blink, and the router restarts with the settings it had when it left the factory.

Q: Why does my wireless signal drop in the evening?
A: In the evening many neighbours use the same wireless channel, so interference rises; choosing a less
crowded channel in the router settings or switching to the five gigahertz band usually fixes it.
"""


def _mine(step: InstructionPairMiner, *docs: Document) -> list[Document]:
    return list(step.run(iter(docs)))


def _stats(step) -> dict[str, float]:
    return {name: stat.total for name, stat in step.stats.stats.items()}


def test_english_and_chinese_pages_become_one_document_per_pair_with_the_mine_columns():
    step = InstructionPairMiner()
    pairs = _mine(
        step,
        Document(text=EN_FAQ, id="rec-en", metadata={"url": "https://shop.example/faq", "file_path": "crawl/a.warc.gz"}),
        Document(text=ZH_FAQ, id="rec-zh", metadata={"url": "https://shop.example/zh/faq"}),
    )
    by_lang = {lang: [p for p in pairs if p.metadata["lang"] == lang] for lang in ("en", "zh")}
    assert [p.metadata["instruction"] for p in by_lang["en"]] == [
        "How long does shipping take to Europe?", "Can I return an item after thirty days?"]
    assert [p.metadata["instruction"] for p in by_lang["zh"]] == ["如何申请退款？", "订单发货需要多长时间？"]
    first = by_lang["en"][0]
    # Every column of `instructmix mine`'s output but the id (the Document's own), and the dedup keys.
    assert set(first.metadata) == (set(PAIR_COLUMNS) - {"id"}) | {"exact_key", "band_keys"}
    assert first.metadata["source_url"] == "https://shop.example/faq"
    assert first.metadata["source_file"] == "crawl/a.warc.gz"
    assert first.metadata["source_record"] == "rec-en"
    assert first.metadata["kind"] == "faq" and first.metadata["miner"] == "faq_sections"
    # The plain_blank_line surface format: instruction, blank line, output.
    assert first.text == f"{first.metadata['instruction']}\n\n{first.metadata['output']}"
    assert by_lang["zh"][0].text.startswith("如何申请退款？\n\n登录账户后")
    # The id is the pair's content hash: the same page mined again gives the same ids.
    again = _mine(InstructionPairMiner(), Document(text=EN_FAQ, id="x", metadata={"url": "https://shop.example/faq"}))
    assert [p.id for p in again] == [p.id for p in by_lang["en"]]

    stats = _stats(step)
    assert stats["total"] == 2 and stats["forwarded"] == 4
    assert stats["mine.documents.read"] == 2
    assert stats["mine.documents.lang.en"] == 1 and stats["mine.documents.lang.zh"] == 1
    assert stats["mine.pairs.mined.faq_sections/faq"] == 4


def test_plain_text_drops_and_empty_documents_are_counted_under_the_mine_names():
    step = InstructionPairMiner({"languages": ["zh"]}, content="auto")
    pairs = _mine(
        step,
        Document(text=EN_TEXT, id="t1", metadata={"url": "https://help.example/router"}),
        Document(text="   ", id="t2", metadata={}),
    )
    assert pairs == []  # English Q/A pairs, but only Chinese is wanted
    stats = _stats(step)
    assert stats["mine.pairs.drop.language_not_wanted"] == 2
    assert stats["mine.documents.skip.empty_record"] == 1
    assert stats["mine.documents.read"] == 1 and stats["dropped"] == 2

    text_pairs = _mine(InstructionPairMiner(content="text"), Document(text=EN_TEXT, id="t1", metadata={}))
    assert [p.metadata["instruction"] for p in text_pairs] == [
        "How do I reset my router to factory settings?", "Why does my wireless signal drop in the evening?"]
    # "auto" reads it as text: it does not open like a page.
    auto_pairs = _mine(InstructionPairMiner(content="auto"), Document(text=EN_TEXT, id="t1", metadata={}))
    assert [p.id for p in auto_pairs] == [p.id for p in text_pairs]


def test_the_deduplicator_keeps_the_most_confident_copy_within_a_rank():
    pairs = _mine(
        InstructionPairMiner(),
        Document(text=EN_FAQ, id="a", metadata={"url": "https://shop.example/faq"}),
        Document(text=EN_FAQ, id="b", metadata={"url": "https://mirror.example/faq"}),
    )
    assert len(pairs) == 4  # ids differ (the page URL is part of the id), the text does not
    step = InstructionPairDeduplicator()
    kept = list(step.run(iter(pairs)))
    assert len(kept) == 2
    # Equal confidence: the smaller id of each exact group stays, as in `instructmix mine`.
    for doc in kept:
        twins = [p for p in pairs if p.metadata["exact_key"] == doc.metadata["exact_key"]]
        assert doc.id == min(p.id for p in twins)
    stats = _stats(step)
    assert stats["mine.pairs.drop.exact_duplicate"] == 2 and stats["mine.pairs.drop.near_duplicate"] == 0
    off = InstructionPairDeduplicator({"dedup": {"exact": False, "near": False}})
    assert len(list(off.run(iter(pairs)))) == 4


def test_configuration_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="miners"):
        InstructionPairMiner({"miners": ["nope"]})
    with pytest.raises(ValueError, match="content"):
        InstructionPairMiner(content="pdf")
    with pytest.raises(ValueError, match="text_format"):
        InstructionPairMiner(text_format="nope")
    path = tmp_path / "mine.yaml"
    path.write_text("languages: [zh]\nmin_lang_score: 0.7\n")
    assert InstructionPairMiner(path).config == MineConfig(languages=["zh"], min_lang_score=0.7)


def test_a_benchmark_item_on_a_page_is_dropped_and_counted_per_benchmark(tmp_path):
    """decontaminate: in the step's config works as in `instructmix mine`; a bad file fails at construction."""
    bench = tmp_path / "shop-eval.jsonl"
    bench.write_text(json.dumps({"question": "Can I return an item after thirty days?",
                                 "answer": "Returns are accepted for sixty days from delivery as long as the item "
                                           "is unused and in its original packaging"}) + "\n")
    step = InstructionPairMiner({"decontaminate": {"benchmarks": [str(bench)]}})
    pairs = _mine(step, Document(text=EN_FAQ, id="rec-en", metadata={"url": "https://shop.example/faq"}))
    assert [p.metadata["instruction"] for p in pairs] == ["How long does shipping take to Europe?"]
    assert _stats(step)["mine.pairs.drop.contaminated.shop-eval"] == 1
    with pytest.raises(ConfigError, match="missing.jsonl"):
        InstructionPairMiner({"decontaminate": {"benchmarks": [str(tmp_path / "missing.jsonl")]}})


# --------------------------------------------------------------------------- real pipelines, real pages


def _pages_as_parquet(warc: str, path: Path) -> int:
    """The WARC's pages as `instructmix mine` reads them (its own WARC reader and charset
    rules), as a Parquet shard that datatrove's ParquetReader gives out unchanged."""
    from collections import Counter

    from transforms.io.documents import iter_documents

    rows = [
        {"text": d.html if d.html is not None else d.text, "id": d.source_record, "url": d.url,
         "file_path": d.source_file}
        for d in iter_documents(warc, Counter())
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return len(rows)


def _pairs(folder: Path) -> list[dict]:
    return ds.dataset(str(folder), format="parquet").to_table().to_pylist()


@pytest.fixture(scope="module")
def mined_qa_dev(webdata, spark, tmp_path_factory):
    """`instructmix mine` on qa-dev's WARC: (its output, its candidates before the job-wide dedup)."""
    from jobs.mine import WORK_DIR, run_mine

    mined = tmp_path_factory.mktemp("mined") / "out"
    run_mine([str(webdata / "qa-dev" / "pages.warc.gz")], str(mined), spark=spark, keep_work=True)
    after_dedup = _pairs(mined)
    # The checkpoints kept by keep_work (--keep-work): every pair before the dedup.
    candidates = _pairs(next((mined / WORK_DIR).glob("*/extract")))
    assert len(candidates) > len(after_dedup) > 100
    return after_dedup, candidates


@pytest.mark.spark
def test_one_rank_of_miner_and_dedup_gives_the_rows_of_instructmix_mine(webdata, mined_qa_dev, tmp_path):
    """The pages exactly as `instructmix mine` reads them, through the miner and the
    within-rank dedup in one task: one rank is then the whole job, so every row is the same."""
    after_dedup, _ = mined_qa_dev
    pages = tmp_path / "pages"
    pages.mkdir()
    assert _pages_as_parquet(str(webdata / "qa-dev" / "pages.warc.gz"), pages / "pages.parquet") == 92
    out = tmp_path / "datatrove"
    LocalPipelineExecutor(
        pipeline=[
            ParquetReader(str(pages)),
            InstructionPairMiner(),
            InstructionPairDeduplicator(),
            ParquetWriter(str(out / "pairs"), expand_metadata=True, schema=PAIR_DOCUMENT_SCHEMA),
        ],
        tasks=1, workers=1, logging_dir=str(out / "logs"),
    ).run()
    ours = _pairs(out / "pairs")
    key = lambda r: r["id"]
    assert sorted(({c: r[c] for c in PAIR_COLUMNS} for r in ours), key=key) == sorted(after_dedup, key=key)
    assert all(r["text"].startswith(r["instruction"]) for r in ours)
    # Written this way, the pairs are an instruction source of `instructmix mix` as they are.
    from collections import Counter

    from transforms.io.mix_inputs import iter_instruction_records

    skips: Counter = Counter()
    assert len(list(iter_instruction_records(str(out / "pairs"), skips))) == len(ours) and not skips


@pytest.mark.spark
def test_datatrove_warc_reader_pages_give_the_pairs_instructmix_mine_found_on_them(webdata, mined_qa_dev, tmp_path):
    """What a FineWeb pipeline runs: datatrove's own WarcReader on the same file. Each page it
    gives out yields exactly the pairs `instructmix mine` found on it before the dedup."""
    for module in ("warcio", "cchardet", "magic"):  # WarcReader's own dependencies (datatrove[io])
        pytest.importorskip(module)
    from datatrove.pipeline.readers import WarcReader

    _, candidates = mined_qa_dev
    read_urls = {doc.metadata["url"] for doc in WarcReader(str(webdata / "qa-dev"), glob_pattern="pages.warc.gz").run()}
    out = tmp_path / "datatrove"
    LocalPipelineExecutor(
        pipeline=[
            WarcReader(str(webdata / "qa-dev"), glob_pattern="pages.warc.gz"),
            InstructionPairMiner(),
            ParquetWriter(str(out / "pairs"), expand_metadata=True, schema=PAIR_DOCUMENT_SCHEMA),
        ],
        tasks=1, workers=1, logging_dir=str(out / "logs"),
    ).run()
    warc_pairs = _pairs(out / "pairs")
    # 70 of the 92 pages with libmagic 5: this WARC has no WARC-Identified-Payload-Type, and
    # WarcReader then drops pages libmagic calls application/javascript (see README).
    assert len(read_urls) >= 60
    expected = {(r["source_url"], r["kind"], r["instruction"], r["input"], r["output"])
                for r in candidates if r["source_url"] in read_urls}
    got = {(r["source_url"], r["kind"], r["instruction"], r["input"], r["output"]) for r in warc_pairs}
    assert got == expected and len(got) > 100
    assert {r["id"] for r in warc_pairs} <= {r["id"] for r in candidates}
