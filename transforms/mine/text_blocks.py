"""Plain text (WET records, JSONL `text` fields) → `Page`, one block per non-empty line.

Plain text has no markup, so structure is read from line openings only:

- "# Title" … "###### Title" (markdown, at most MAX_HEADING_CHARS) → HEADING with its level;
- "1. …", "1) …", "1、…", "Step 3: …", "第3步 …" / "第三步：…" → LIST_ITEM with `order`
  (the number; the marker is dropped);
- "- …", "• …", "* …" → LIST_ITEM with order 0;
- anything else → PARAGRAPH.

Consecutive list items form one list (`group`, level 1); a list ends at any
other block, at a switch between numbered and bulleted items, or when the
numbering starts again at 1.
"""

from __future__ import annotations

import itertools
import re

from transforms.mine.blocks import HEADING, LIST_ITEM, PARAGRAPH, Block, Page

# Longer "#" lines are hashtags or comments, not headings.
MAX_HEADING_CHARS = 120

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*$")
# "1. ", "1.Mix", "1) ", "1、" but not "1.5 kg" or "2019. It was".
_NUMBERED = re.compile(r"^(\d{1,3})(?:[.．](?!\d)|[)、）])\s*(\S.*)$")
_STEP = re.compile(r"^step\s*(\d{1,3})\s*[:：.)\-–—]?\s*(.*)$", re.IGNORECASE)
_ZH_STEP = re.compile(r"^第\s*([0-9]{1,3}|[一二三四五六七八九十]{1,3})\s*步\s*[:：、，,.。]?\s*(.*)$")
_BULLET = re.compile(r"^[-•*·]\s+(.+)$")
_ZH_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def text_to_page(text: str, url: str = "", title: str = "") -> Page:
    """A Page of `text`'s lines (see the module docstring for the rules)."""
    blocks: list[Block] = []
    new_group = itertools.count(1).__next__
    group, last_order = 0, -1
    for raw in (text or "").splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        block = line_block(line)
        if block.kind == LIST_ITEM:
            numbered = block.order > 0
            continues = (
                group and (last_order > 0) == numbered and not (numbered and block.order <= last_order)
            )
            if not continues:
                group = new_group()
            last_order = block.order
            block = Block(LIST_ITEM, block.text, level=1, order=block.order, group=group)
        else:
            group, last_order = 0, -1
        blocks.append(block)
    return Page(url=url, title=title, blocks=blocks)


def line_block(line: str) -> Block:
    """The block one whitespace-collapsed line stands for (list items get no group here)."""
    match = _HEADING.match(line)
    if match and len(line) <= MAX_HEADING_CHARS:
        return Block(HEADING, match.group(2), level=len(match.group(1)))
    for pattern in (_NUMBERED, _STEP, _ZH_STEP):
        match = pattern.match(line)
        if match and match.group(2):
            return Block(LIST_ITEM, match.group(2), order=_number(match.group(1)))
    match = _BULLET.match(line)
    if match:
        return Block(LIST_ITEM, match.group(1))
    return Block(PARAGRAPH, line)


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    # Chinese numerals up to 99: 三, 十二, 二十, 二十三.
    tens, _, ones = text.rpartition("十")
    if "十" not in text:
        return _ZH_DIGITS.get(text, 0)
    return (_ZH_DIGITS.get(tens, 0) if tens else 1) * 10 + _ZH_DIGITS.get(ones, 0)
