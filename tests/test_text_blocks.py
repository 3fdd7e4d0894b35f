"""text_to_page: WET / JSONL text lines → blocks."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import WEBDATA
from transforms.mine.blocks import HEADING, LIST_ITEM, PARAGRAPH
from transforms.mine.text_blocks import text_to_page


def _rows(text: str) -> list[tuple]:
    return [(b.kind, b.text, b.level, b.order) for b in text_to_page(text).blocks]


def test_page_fields():
    page = text_to_page("Hello\n\n  world  \n", url="https://x", title="T")
    assert (page.url, page.title) == ("https://x", "T")
    assert [(b.kind, b.text) for b in page.blocks] == [(PARAGRAPH, "Hello"), (PARAGRAPH, "world")]


def test_markdown_headings():
    assert _rows("# Title\n## Sub section ##\n####### seven is not a heading\n#hashtag") == [
        (HEADING, "Title", 1, 0),
        (HEADING, "Sub section", 2, 0),
        (PARAGRAPH, "####### seven is not a heading", 0, 0),
        (PARAGRAPH, "#hashtag", 0, 0),
    ]
    long_line = "# " + "word " * 40
    assert _rows(long_line)[0][0] == PARAGRAPH


def test_numbered_and_step_lines_are_ordered_items():
    rows = _rows(
        "1. Boil water.\n2) Add the eggs\n3、等待十分钟\nStep 4: Cool them\n第5步：剥壳\n第六步 装盘"
    )
    assert rows == [
        (LIST_ITEM, "Boil water.", 1, 1),
        (LIST_ITEM, "Add the eggs", 1, 2),
        (LIST_ITEM, "等待十分钟", 1, 3),
        (LIST_ITEM, "Cool them", 1, 4),
        (LIST_ITEM, "剥壳", 1, 5),
        (LIST_ITEM, "装盘", 1, 6),
    ]
    assert len({b.group for b in text_to_page("1. a\n2. b\n3. c").blocks}) == 1


def test_numbers_that_are_not_list_markers():
    assert [r[0] for r in _rows("1.5 kg of flour\n2019. It was a good year.\n12 eggs\nStep 3")] == [
        PARAGRAPH
    ] * 4


def test_bullets_are_unordered_items():
    rows = _rows("- flour\n• sugar\n* butter\n-not a bullet")
    assert rows[:3] == [(LIST_ITEM, "flour", 1, 0), (LIST_ITEM, "sugar", 1, 0), (LIST_ITEM, "butter", 1, 0)]
    assert rows[3][0] == PARAGRAPH


def test_list_groups_break_on_paragraphs_style_and_restart():
    blocks = text_to_page("1. a\n2. b\ntext\n1. c\n2. d\n1. e\n- f\n- g").blocks
    groups = [b.group for b in blocks]
    assert groups[0] == groups[1] and groups[2] == 0
    assert groups[3] == groups[4] != groups[0]
    assert groups[5] != groups[4]  # numbering restarts at 1
    assert groups[6] == groups[7] != groups[5]  # bullets after numbers


def test_empty_text():
    assert text_to_page("").blocks == []
    assert text_to_page("\n \n\t").blocks == []


def test_real_ccnet_records():
    folder = WEBDATA / "text" / "dolma-ccnet-cc_en_head"
    files = sorted(folder.glob("*.jsonl.gz")) if folder.is_dir() else []
    if not files:
        pytest.skip(f"real web data not found at {folder} (set INSTRUCTMIX_WEBDATA)")
    records = 0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                page = text_to_page(record["text"], url=record.get("metadata", {}).get("url", ""))
                records += 1
                assert page.blocks, "every CCNet record has text"
                assert "\n" not in "".join(b.text for b in page.blocks)
                assert all(b.text == b.text.strip() and b.text for b in page.blocks)
    assert records >= 10
