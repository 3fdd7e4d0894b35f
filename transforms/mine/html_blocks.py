"""HTML page → `Page`: main-content blocks, definition and details pairs, schema.org markup.

The page is parsed once (lexbor, via resiliparse). Resiliparse's main-content
extraction drops navigation, footers, sidebars and comments, and hands back a
tiny "minimal HTML": `<h1>`-`<h6>`, `<p>`, nested `<ul>`/`<ol>`/`<li>`, `<pre>`
and `<br>`, entity-escaped, with all other text as untagged lines (table rows
come out as one line, cells separated by tabs). `blocks_from_minimal_html`
reads that format with one regex; nothing walks the DOM in Python, because
that is about fifty times slower than resiliparse's C extraction.

Minimal HTML loses `<dl>` and `<details>` structure (a summary runs into its
answer on one line), so those are read from the DOM separately: DT/DD and
SUMMARY/DETAILS_BODY blocks sharing a `group`. They replace the lines the main
stream already holds for them, in place (see `splice_structured_groups`); one
whose text the main stream lacks entirely (resiliparse judged it boilerplate,
or it sat in a block resiliparse dropped) goes at the end of the page, unless
our own ancestor check calls it boilerplate.

Block conventions: text is entity-unescaped with whitespace collapsed to single
spaces (PRE keeps its lines and indentation). A `<br>` inside `<p>` splits it
into separate PARAGRAPH blocks; inside a heading or list item it is a space.
Everything inside an `<li>` up to its nested list is that item's text (its
`<p>`s and headings included); text after a nested list becomes another
LIST_ITEM with the same order and group. An `<li>` outside any list is an item
of an implicit unordered list. TABLE_ROW text is the row's non-empty cells
joined by single tabs (a row with one non-empty cell is a PARAGRAPH). DD and
DETAILS_BODY blocks are one per line of the element's text; list items inside
them keep their "•" / "1." markers.
`group` ids are unique per page across lists, definition groups and details.
"""

from __future__ import annotations

import html as html_lib
import itertools
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree, NodeType

from transforms.mine.blocks import (
    DD,
    DETAILS_BODY,
    DT,
    HEADING,
    LIST_ITEM,
    PARAGRAPH,
    PRE,
    SUMMARY,
    TABLE_ROW,
    Block,
    Page,
)
from transforms.mine.schema_org import (
    JSON_LD_SELECTOR,
    MICRODATA_SELECTOR,
    is_json_ld_script,
    is_microdata_item,
    markup_from_elements,
)
from transforms.mine.thread_posts import thread_posts
from transforms.text import contains_spaceless

# Resiliparse's main-content pass costs O(nodes x depth): 100 000 nested <div>s
# take minutes. Real pages stay far below this depth (none of the test pages
# reaches it); deeper ones are broken markup and are extracted without the
# boilerplate pass rather than not at all.
MAX_MAIN_CONTENT_DEPTH = 256
_TOO_DEEP_SELECTOR = "*" + " > *" * MAX_MAIN_CONTENT_DEPTH
# Resiliparse indents each list line by two spaces per open list, so output
# grows with items x list depth (20 000 nested lists: over a gigabyte). Real
# pages nest lists at most about 6 deep; past this, lists become plain lines.
MAX_LIST_DEPTH = 16
_TOO_DEEP_LISTS_SELECTOR = " ".join(["li"] * MAX_LIST_DEPTH)

# dl/details groups read per page, and ancestors checked for boilerplate: both
# bound the work on hostile pages; real pages have a handful of groups.
MAX_STRUCTURED_GROUPS = 200
# Main-content extraction sometimes keeps next to nothing of a page whose content is all in
# list items, tabs or collapsed panels (help centres, FAQ accordions). When it keeps fewer
# than this many characters of minimal HTML, and less than this share of the whole page's,
# the page is read whole instead, boilerplate included (`Page.whole_page`). A short page
# that is short all over keeps its main content.
MIN_MAIN_CONTENT_CHARS = 400
MAX_COLLAPSED_SHARE = 0.2
MAX_STRUCTURED_CANDIDATES = 1000
# Bold paragraph openings read per page, and how long one must be to be a prompt rather than
# a label ("Note:", "Tip"): words, or characters of CJK text.
MAX_BOLD_LEADS = 500
MIN_BOLD_LEAD_WORDS = 4
MIN_BOLD_LEAD_CHARS_CJK = 8
BOILERPLATE_ANCESTOR_STEPS = 32
# A dl/details replaces main-stream lines when they spell at least this share of
# its text; resiliparse sometimes drops a piece (a share button, a hidden span).
MIN_SPLICE_COVERAGE = 0.5

_BOILERPLATE_TAGS = frozenset({"nav", "footer", "aside", "header"})
_BOILERPLATE_NAMES = re.compile(r"nav|menu|footer|sidebar|comment|breadcrumb|cookie", re.IGNORECASE)
_MINIMAL_HTML_TAG = re.compile(r"<(/?)(h[1-6]|p|ul|ol|li|pre|br)>")
_LIST_MARKER = re.compile(r"^(?:•|\d+\.)\s*")


def html_to_page(html: str | bytes, url: str = "") -> Page:
    """A page's title, main-content blocks and schema.org markup.

    Bytes are decoded with the charset the page declares, else a detected one.
    Never raises for bad input: empty, undecodable or unparsable HTML gives a
    Page without blocks.
    """
    text = decode_html(html) if isinstance(html, (bytes, bytearray, memoryview)) else html
    if not text or not text.strip():
        return Page(url=url)
    text, tree = _parse(text)
    if tree is None or tree.body is None:
        return Page(url=url)
    # Microdata is always selected: the attribute test in the walk costs a fifth of what looking
    # for "itemscope" in the page's text did, and it also finds ITEMSCOPE written in capitals.
    found = select_page_elements(tree, microdata=True)
    new_group = itertools.count(1).__next__
    reduced = main_content_html(
        tree, boilerplate_pass=not found.too_deep, list_markup=not found.lists_too_deep
    )
    whole_page = False
    if len(reduced) < MIN_MAIN_CONTENT_CHARS and not found.too_deep:
        whole = main_content_html(tree, boilerplate_pass=False, list_markup=not found.lists_too_deep)
        if len(reduced) < MAX_COLLAPSED_SHARE * len(whole):
            reduced, whole_page = whole, True
    blocks = blocks_from_minimal_html(reduced, new_group)
    blocks = splice_structured_groups(blocks, structured_groups(found.structured, new_group))
    markup = markup_from_elements(found.json_ld_scripts, found.microdata)
    posts = thread_posts(tree, lambda post_html: blocks_from_minimal_html(post_html, new_group))
    return Page(url=url, title=tree.title or "", blocks=blocks, markup=markup, whole_page=whole_page, posts=posts,
                bold_leads=bold_leads(tree))


def bold_leads(tree: HTMLTree) -> frozenset[str]:
    """Texts of <b>/<strong> elements that open their paragraph, whitespace collapsed (an
    interview's prompts; minimal HTML drops bold). Labels of a word or two are left out."""
    if tree.body is None:
        return frozenset()
    leads = set()
    for element in tree.body.query_selector_all("p > b, p > strong").values()[:MAX_BOLD_LEADS]:
        text = _clean(element.text)
        short = len(text) < MIN_BOLD_LEAD_CHARS_CJK if contains_spaceless(text) else len(text.split()) < MIN_BOLD_LEAD_WORDS
        if short:
            continue
        if _clean(element.parent.text).startswith(text):
            leads.add(text)
    return frozenset(leads)


def decode_html(data: bytes | bytearray | memoryview) -> str:
    """Text of an HTML document in an unknown encoding; undecodable bytes are dropped.

    The charset the page declares wins when the bytes decode with it; pages
    often lie (GBK served as "utf-8"), and then the content decides.
    """
    data = bytes(data)
    declared = detect_encoding(data, from_html_meta=True) or "utf-8"
    try:
        # Strict decoding is twice as fast as bytes_to_str and proves the label right.
        return data.decode("utf-8-sig" if declared == "utf-8" else declared)
    except (UnicodeDecodeError, LookupError):
        pass
    detected = detect_encoding(data, from_html_meta=False) or declared
    return bytes_to_str(data, detected, fallback_encodings=(declared, "utf-8", "cp1252"))


@dataclass(slots=True)
class PageElements:
    """What one selector walk over the page found (walks cost ~0.7 ms/MB each, so there is one)."""

    structured: list = field(default_factory=list)  # dl and details elements
    json_ld_scripts: list = field(default_factory=list)
    microdata: list = field(default_factory=list)
    too_deep: bool = False
    lists_too_deep: bool = False


def select_page_elements(tree: HTMLTree, microdata: bool) -> PageElements:
    """dl/details, JSON-LD scripts, microdata items (when `microdata`) and the nesting-limit flags."""
    selectors = ["dl", "details", JSON_LD_SELECTOR, _TOO_DEEP_SELECTOR, _TOO_DEEP_LISTS_SELECTOR]
    if microdata:
        selectors.append(MICRODATA_SELECTOR)
    found = PageElements()
    for element in tree.document.query_selector_all(", ".join(selectors)).values():
        tag = element.tag
        known = True
        if tag in ("dl", "details"):
            found.structured.append(element)
        elif is_json_ld_script(element):
            found.json_ld_scripts.append(element)
        else:
            known = False
        if microdata and is_microdata_item(element):
            found.microdata.append(element)
            known = True
        if not known and not found.too_deep:
            # Only the nesting-limit selectors match anything else.
            found.lists_too_deep = True
            found.too_deep = element.matches(_TOO_DEEP_SELECTOR)
    return found


def main_content_html(tree: HTMLTree, boilerplate_pass: bool = True, list_markup: bool = True) -> str:
    """Resiliparse's boilerplate-free minimal HTML for a parsed page.

    Pathologically deep pages (see MAX_MAIN_CONTENT_DEPTH, MAX_LIST_DEPTH and
    `select_page_elements`) are extracted without the boilerplate pass or
    without list markup rather than taking minutes.
    """
    return extract_plain_text(
        tree,
        preserve_formatting="minimal_html",
        main_content=boilerplate_pass,
        comments=False,
        # Without bullets resiliparse leaves out the list tags themselves.
        list_bullets=list_markup,
        # Image alt texts and captions become stray lines between a heading
        # and its text; no miner wants them.
        alt_texts=False,
    )


def blocks_from_minimal_html(reduced: str, new_group: Callable[[], int] | None = None) -> list[Block]:
    """Blocks from resiliparse's minimal HTML (see the module docstring for the rules)."""
    reader = _MinimalHtmlReader(new_group or itertools.count(1).__next__)
    # split() with the tag's two groups: text, "/" or "", tag name, text, ...
    tokens = _MINIMAL_HTML_TAG.split(reduced)
    text, tag = reader.text, reader.tag
    for i in range(0, len(tokens) - 1, 3):
        chunk = tokens[i]
        # Most chunks are the newlines between two tags; skip the call for those.
        if chunk and (reader.mode or reader.in_item or not chunk.isspace()):
            text(chunk)
        tag(tokens[i + 2], tokens[i + 1] == "/")
    if tokens[-1]:
        text(tokens[-1])
    reader.finish()
    return reader.blocks


class _List:
    __slots__ = ("count", "group", "implicit", "item_open", "ordered")

    def __init__(self, group: int, ordered: bool, implicit: bool = False) -> None:
        self.group = group
        self.ordered = ordered
        self.count = 0
        self.item_open = False
        self.implicit = implicit


class _MinimalHtmlReader:
    """State machine over minimal-HTML tags: the open block and the open lists."""

    def __init__(self, new_group: Callable[[], int]) -> None:
        self.new_group = new_group
        self.blocks: list[Block] = []
        self.lists: list[_List] = []
        self.in_item = False  # the innermost open list has an open <li>
        self.mode = ""  # "", "p", "h", "pre": the open non-list block
        self.heading_level = 0
        self.parts: list[str] = []

    # -- input ---------------------------------------------------------------

    def text(self, text: str) -> None:
        if self.mode or self.in_item:
            self.parts.append(text)
        elif not text.isspace():
            if self.lists and self.lists[-1].implicit:
                self._pop_list()
            self._loose_lines(text)

    def tag(self, name: str, closing: bool) -> None:
        if name == "li":
            self._item_tag(closing)
        elif name in ("ul", "ol"):
            self._list_tag(name == "ol", closing)
        elif self.in_item:
            # Paragraphs, headings and code inside a list item are the item's text.
            self.parts.append(" ")
        elif name == "br":
            self._line_break()
        else:
            self._block_tag(name, closing)

    def finish(self) -> None:
        if self.in_item:
            self._flush_item()
        else:
            self._end_block()

    # -- lists ---------------------------------------------------------------

    def _list_tag(self, ordered: bool, closing: bool) -> None:
        self._close_implicit_lists()
        if self.in_item:
            self._flush_item()
        else:
            self._end_block()
        if not closing:
            self.lists.append(_List(self.new_group(), ordered))
            self.in_item = False
        elif self.lists:
            self._pop_list()

    def _item_tag(self, closing: bool) -> None:
        if self.in_item:
            self._flush_item()
        else:
            self._end_block()
        if not self.lists:
            if closing:
                return
            self.lists.append(_List(self.new_group(), ordered=False, implicit=True))
        current = self.lists[-1]
        current.item_open = self.in_item = not closing
        if not closing:
            current.count += 1

    def _pop_list(self) -> None:
        self.lists.pop()
        self.in_item = bool(self.lists) and self.lists[-1].item_open

    def _close_implicit_lists(self) -> None:
        while self.lists and self.lists[-1].implicit and not self.lists[-1].item_open:
            self._pop_list()

    def _flush_item(self) -> None:
        text = _clean("".join(self.parts))
        self.parts = []
        if text:
            current = self.lists[-1]
            self.blocks.append(
                Block(
                    LIST_ITEM,
                    text,
                    level=len(self.lists),
                    order=current.count if current.ordered else 0,
                    group=current.group,
                )
            )

    # -- other blocks --------------------------------------------------------

    def _block_tag(self, name: str, closing: bool) -> None:
        if self.lists:
            self._close_implicit_lists()
        self._end_block()
        if closing:
            return
        if name == "p":
            self.mode = "p"
        elif name == "pre":
            self.mode = "pre"
        else:
            self.mode = "h"
            self.heading_level = int(name[1])

    def _end_block(self) -> None:
        if self.mode or self.parts:
            self._flush_block()
            self.mode = ""

    def _line_break(self) -> None:
        if self.mode == "p":
            self._flush_block()
        elif self.mode == "pre":
            self.parts.append("\n")
        elif self.mode == "h":
            self.parts.append(" ")

    def _flush_block(self) -> None:
        raw = "".join(self.parts)
        self.parts = []
        if self.mode == "pre":
            text = _clean_pre(raw)
            if text:
                self.blocks.append(Block(PRE, text))
        elif self.mode:
            text = _clean(raw)
            if text:
                if self.mode == "h":
                    self.blocks.append(Block(HEADING, text, level=self.heading_level))
                else:
                    self.blocks.append(Block(PARAGRAPH, text))
        elif raw:
            self._loose_lines(raw)

    def _loose_lines(self, text: str) -> None:
        """Text outside any tag: divs, table rows (tab-separated cells), dt/dd, summary."""
        for line in text.split("\n"):
            if "\t" in line:
                cells = [cell for cell in (_clean(c) for c in line.split("\t")) if cell]
                if len(cells) > 1:
                    self.blocks.append(Block(TABLE_ROW, "\t".join(cells)))
                    continue
            line = _clean(line)
            if line:
                self.blocks.append(Block(PARAGRAPH, line))


def _clean(text: str) -> str:
    if "&" in text:
        text = html_lib.unescape(text)
    return " ".join(text.split())


def _clean_pre(text: str) -> str:
    if "&" in text:
        text = html_lib.unescape(text)
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n")


# -- <dl> and <details> ---------------------------------------------------------


def structured_groups(elements: list, new_group: Callable[[], int]) -> list[list[Block]]:
    """DT/DD and SUMMARY/DETAILS_BODY block groups from dl and details elements
    (in document order), boilerplate skipped.

    A dl or details nested in another one is part of the outer one's text.
    """
    groups: list[list[Block]] = []
    last_root = None
    for element in elements[:MAX_STRUCTURED_CANDIDATES]:
        if last_root is not None and last_root.contains(element):
            continue
        if _in_boilerplate(element):
            continue
        last_root = element
        found = (
            _definition_groups(element, new_group)
            if element.tag == "dl"
            else _details_group(element, new_group)
        )
        groups.extend(found)
        if len(groups) >= MAX_STRUCTURED_GROUPS:
            break
    return groups[:MAX_STRUCTURED_GROUPS]


def _definition_groups(dl, new_group: Callable[[], int]) -> list[list[Block]]:
    """One group per term: its DT block(s) then the DD lines that follow."""
    groups: list[list[Block]] = []
    current: list[Block] = []
    group = 0
    for child in _definition_children(dl):
        if child.tag == "dt":
            text = _clean(child.text or "")
            if not text:
                continue
            if not current or any(b.kind == DD for b in current):
                current = []
                groups.append(current)
                group = new_group()
            current.append(Block(DT, text, group=group))
        elif current:
            current.extend(Block(DD, line, group=group) for line in _element_lines(child.html))
    return [g for g in groups if any(b.kind == DD for b in g)]


def _definition_children(dl) -> Iterator:
    """dt/dd children of a dl, looking through the <div> wrappers HTML allows."""
    for child in _element_children(dl):
        if child.tag in ("dt", "dd"):
            yield child
        elif child.tag == "div":
            yield from (c for c in _element_children(child) if c.tag in ("dt", "dd"))


def _details_group(details, new_group: Callable[[], int]) -> list[list[Block]]:
    summary = None
    body_html: list[str] = []
    child = details.first_child
    while child is not None:
        if summary is None and child.type == NodeType.ELEMENT and child.tag == "summary":
            summary = child
        elif child.type in (NodeType.ELEMENT, NodeType.TEXT):
            body_html.append(child.html)
        child = child.next
    question = _clean(summary.text or "") if summary is not None else ""
    body = _element_lines("".join(body_html))
    if not question or not body:
        return []
    group = new_group()
    return [
        [Block(SUMMARY, question, group=group)] + [Block(DETAILS_BODY, line, group=group) for line in body]
    ]


def _element_children(element) -> Iterator:
    # child_nodes indexing is linear per access in resiliparse; walking siblings is not.
    child = element.first_child
    while child is not None:
        if child.type == NodeType.ELEMENT:
            yield child
        child = child.next


def _element_lines(fragment: str) -> list[str]:
    """Cleaned non-empty text lines of an HTML fragment (paragraphs, <br>s and list items split lines)."""
    text = extract_plain_text(fragment, preserve_formatting=True, list_bullets=True, alt_texts=False)
    return [line for line in (_clean(raw) for raw in text.split("\n")) if line]


def _in_boilerplate(element) -> bool:
    """True inside nav/footer/aside/header, or an element whose class or id names a menu,
    footer, sidebar, comments, breadcrumbs or a cookie banner (checked up to
    BOILERPLATE_ANCESTOR_STEPS ancestors, stopping at <body>)."""
    node = element
    for _ in range(BOILERPLATE_ANCESTOR_STEPS):
        if node is None or node.type != NodeType.ELEMENT:
            return False
        tag = node.tag
        if tag in ("body", "html"):
            return False
        if tag in _BOILERPLATE_TAGS:
            return True
        names = f"{node.class_name or ''} {node.id or ''}"
        if names != " " and _BOILERPLATE_NAMES.search(names):
            return True
        node = node.parent
    return False


def splice_structured_groups(blocks: list[Block], groups: list[list[Block]]) -> list[Block]:
    """Main-stream blocks with each dl/details group put in place of the lines that held its text.

    A group's place is the first block, after the previous group's place, that
    starts with the group's first text, compared without whitespace (so a
    summary run together with its answer on one line still matches). From
    there, blocks are taken while each one continues the group's text; the
    group replaces them when they cover at least MIN_SPLICE_COVERAGE of it.
    Groups with no such place are appended after the main stream.
    """
    if not groups:
        return blocks
    keys = [_compare_key(b.text) for b in blocks]
    # "\x00" before every key: a find() for "\x00" + prefix only hits block starts.
    starts = []
    position = 0
    for key in keys:
        starts.append(position)
        position += len(key) + 1
    joined = "".join("\x00" + key for key in keys)

    placed: list[tuple[int, int, list[Block]]] = []
    unplaced: list[list[Block]] = []
    cursor = 0
    for group in groups:
        span = _find_span(group, keys, starts, joined, cursor)
        if span is None:
            unplaced.append(group)
        else:
            placed.append((span[0], span[1], group))
            cursor = span[1]

    out: list[Block] = []
    previous = 0
    for first, end, group in placed:
        out.extend(blocks[previous:first])
        out.extend(group)
        previous = end
    out.extend(blocks[previous:])
    for group in unplaced:
        out.extend(group)
    return out


def _find_span(
    group: list[Block], keys: list[str], starts: list[int], joined: str, cursor: int
) -> tuple[int, int] | None:
    """(first, end) of the main-stream blocks that hold `group`'s text, or None.

    The anchor is the group's first text, or its second or third when
    resiliparse dropped the first ones (a <dt> with a class it dislikes).
    """
    group_keys = [_compare_key(_LIST_MARKER.sub("", b.text)) for b in group]
    search_start = starts[cursor] if cursor < len(starts) else len(joined)
    for anchor in range(min(len(group), 3)):
        if not group_keys[anchor]:
            continue
        target = "".join(group_keys[anchor:])
        probe = "\x00" + group_keys[anchor][:48]
        search_from = search_start
        for _ in range(3):  # a short text ("Yes") may also open unrelated lines
            hit = joined.find(probe, search_from)
            if hit < 0:
                break
            first = bisect_right(starts, hit) - 1
            covered, end = 0, first
            while end < len(keys) and covered < len(target):
                if not target.startswith(keys[end], covered):
                    break
                covered += len(keys[end])
                end += 1
            if end > first and covered >= MIN_SPLICE_COVERAGE * len(target):
                return first, end
            search_from = hit + 1
    return None


def _compare_key(text: str) -> str:
    return "".join(text.split())


def _parse(text: str) -> tuple[str, HTMLTree | None]:
    """The parsed tree, and the text it was parsed from (lone surrogates replaced)."""
    try:
        return text, HTMLTree.parse(text)
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    except ValueError:
        return text, None
    try:
        return text, HTMLTree.parse(text)
    except ValueError:
        return text, None
