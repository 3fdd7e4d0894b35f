"""The page model every miner reads: a title plus an ordered list of text blocks.

HTML pages, WET records and plain-text JSONL all become a `Page`, so a miner is
written once against blocks and never sees raw markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from transforms.text import CLAUSE_ENDS

# Block kinds. Headings carry their level (1-6); list items carry their list's
# nesting depth in `level`, their 1-based position in `order` (0 when the list
# is unordered) and the list they belong to in `group`.
HEADING = "heading"
PARAGRAPH = "paragraph"
LIST_ITEM = "list_item"
PRE = "pre"
TABLE_ROW = "table_row"
DT = "dt"  # definition term; `group` pairs it with the DD blocks that follow it
DD = "dd"
SUMMARY = "summary"  # <details><summary>; `group` pairs it with its DETAILS_BODY
DETAILS_BODY = "details_body"

BLOCK_KINDS = (HEADING, PARAGRAPH, LIST_ITEM, PRE, TABLE_ROW, DT, DD, SUMMARY, DETAILS_BODY)


@dataclass(frozen=True, slots=True)
class Block:
    kind: str
    text: str
    level: int = 0
    order: int = 0
    group: int = 0


@dataclass(frozen=True, slots=True)
class Post:
    """One post of a forum or Q&A thread, as the page's markup delimits it (`thread_posts.py`).

    `accepted` is true when the post's container is marked as the accepted or best answer.
    """

    blocks: list[Block]
    accepted: bool = False


@dataclass(slots=True)
class Page:
    """One document after extraction.

    `markup` holds schema.org items (JSON-LD and microdata) as plain dicts in
    JSON-LD shape (`@type`, properties), whatever syntax the page used.
    """

    url: str
    title: str = ""
    blocks: list[Block] = field(default_factory=list)
    markup: list[dict] = field(default_factory=list)
    lang: str = ""
    lang_score: float = 0.0
    # True when main-content extraction kept too little and the blocks are the whole page,
    # navigation and sidebars included (`html_blocks.MIN_MAIN_CONTENT_CHARS`): miners then
    # trust explicit Q&A structure only, not a lone question heading.
    whole_page: bool = False
    # The thread's posts in page order, when the markup repeats a post-body container
    # (forum software, Q&A sites); empty for other pages and for text input.
    posts: list[Post] = field(default_factory=list)
    # Bold text that opens a paragraph (<p><strong>Prompt?</strong> answer…</p>), whitespace
    # collapsed: an interview's prompts. Empty for text input.
    bold_leads: frozenset[str] = frozenset()

    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks)


# A post's author lines, above its text: a name, a rank, a title.
MAX_BYLINE_BLOCKS = 2
MAX_BYLINE_CHARS = 40


def without_byline(blocks: Sequence[Block], kinds: tuple[str, ...] = (PARAGRAPH,)) -> list[Block]:
    """`blocks` without leading author lines ("OldRowFarmer Master Gardener", "电子工程师老周"):
    up to MAX_BYLINE_BLOCKS short blocks of `kinds` that end in no punctuation, while text follows."""
    start = 0
    while start < min(MAX_BYLINE_BLOCKS, len(blocks) - 1) and _is_byline(blocks[start], kinds):
        start += 1
    return list(blocks[start:])


def _is_byline(block: Block, kinds: tuple[str, ...]) -> bool:
    text = block.text.strip()
    return block.kind in kinds and len(text) <= MAX_BYLINE_CHARS and not text.endswith(CLAUSE_ENDS)


def render_blocks(blocks: Sequence[Block]) -> str:
    """Blocks as plain text, one block a line; list items keep their "1. " / "- " and nesting indent."""
    lines = []
    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if block.kind == LIST_ITEM:
            marker = f"{block.order}. " if block.order > 0 else "- "
            text = "  " * max(block.level - 1, 0) + marker + text
        lines.append(text)
    return "\n".join(lines)


def section_end(blocks: Sequence[Block], heading_index: int) -> int:
    """Index of the next heading of the same or a higher level (or len(blocks))."""
    level = blocks[heading_index].level
    for j in range(heading_index + 1, len(blocks)):
        if blocks[j].kind == HEADING and blocks[j].level <= level:
            return j
    return len(blocks)
