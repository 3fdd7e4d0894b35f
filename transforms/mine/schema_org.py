"""schema.org items from a page's JSON-LD and microdata, as plain JSON-LD-shaped dicts.

Only the item types the markup miner reads are kept (`ROOT_TYPES`), together
with everything nested inside them. Either syntax comes out the same way:

    {"@type": "FAQPage", "mainEntity": [{"@type": "Question", "name": ..., ...}]}

`@type` is a bare type name ("Question", not "https://schema.org/Question"),
or a list of them when an item has several. `@context` is dropped. A JSON-LD
reference (`{"@id": "#q1"}`) under a property that leads down to what a miner
reads (mainEntity, acceptedAnswer, step, …) is replaced by the page's node of
that id, because Yoast and similar plugins publish an FAQPage whose questions
are separate `@graph` nodes; a node inlined that way is not returned again on
its own. A microdata item without properties keeps its text under
"textContent" (extruct's own name for it).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator

import lxml.etree
from extruct.w3cmicrodata import MicrodataExtractor
from resiliparse.parse.html import HTMLTree

# Types a miner starts from; what nests inside them is kept whatever its type.
ROOT_TYPES = frozenset(
    {"FAQPage", "QAPage", "Question", "Answer", "HowTo", "HowToStep", "HowToSection", "Recipe"}
)
# Whole-page items: never inlined into another item, so they are always items of their own.
CONTAINER_TYPES = frozenset({"FAQPage", "QAPage", "HowTo", "Recipe"})

# Bounds against hostile markup: real items nest a handful of levels and pages
# carry a few dozen items; these stop cycles and blow-ups, not real data.
MAX_NESTING = 24
MAX_ITEMS_PER_PAGE = 500
MAX_MICRODATA_ELEMENTS = 5000
MAX_INLINED = 2000

# Properties through which an item contains the items a miner reads.
_CHILD_PROPERTIES = frozenset(
    {
        "mainEntity",
        "hasPart",
        "acceptedAnswer",
        "suggestedAnswer",
        "step",
        "steps",
        "itemListElement",
        "recipeInstructions",
    }
)

JSON_LD_SELECTOR = 'script[type*="ld+json" i]'
MICRODATA_SELECTOR = "[itemscope][itemtype]"
_LD_JSON = re.compile(r"ld\+json", re.IGNORECASE)
_LD_JSON_BYTES = re.compile(rb"ld\+json", re.IGNORECASE)
_TYPE_PREFIX = re.compile(r"^(?:https?://(?:www\.)?schema\.org/|schema:)", re.IGNORECASE)
_WRAPPERS = re.compile(r"^\s*(?://\s*)?(?:<!--|<!\[CDATA\[)|(?://\s*)?(?:-->|\]\]>)\s*$")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_MICRODATA = MicrodataExtractor()


def extract_markup(html: str | bytes, tree: HTMLTree | None = None) -> list[dict]:
    """All wanted schema.org items of a page, JSON-LD first, then microdata.

    `tree` is the page already parsed from `html`, so it is parsed once.
    Scripts that are not valid JSON even after the usual repairs are skipped;
    the rest of the page is still read.
    """
    with_microdata = has_microdata(html)
    if tree is None:
        if not with_microdata and not (_LD_JSON if isinstance(html, str) else _LD_JSON_BYTES).search(html):
            return []
        tree = _parse(html)
    if tree is None or tree.document is None:
        return []
    selector = f"{JSON_LD_SELECTOR}, {MICRODATA_SELECTOR}" if with_microdata else JSON_LD_SELECTOR
    elements = tree.document.query_selector_all(selector).values()
    return markup_from_elements(
        [e for e in elements if is_json_ld_script(e)],
        [e for e in elements if with_microdata and is_microdata_item(e)],
    )


def has_microdata(html: str | bytes) -> bool:
    """Whether microdata is worth looking for: extruct is slow, so only when the page says itemscope."""
    return ("itemscope" if isinstance(html, str) else b"itemscope") in html


def is_microdata_item(element) -> bool:
    return element.has_attribute("itemscope") and element.has_attribute("itemtype")


def is_json_ld_script(element) -> bool:
    return element.tag == "script" and "ld+json" in (element.get_attribute("type") or "").lower()


def markup_from_elements(json_ld_scripts: list, microdata_elements: list) -> list[dict]:
    """Wanted items from already selected elements (JSON_LD_SELECTOR and
    MICRODATA_SELECTOR matches in document order); lets a caller that walks the
    page anyway share that one walk."""
    items = json_ld_items(json_ld_scripts)
    if microdata_elements:
        items.extend(microdata_items(microdata_elements))
    return items[:MAX_ITEMS_PER_PAGE]


def json_ld_items(scripts: list) -> list[dict]:
    """Wanted items from JSON-LD `<script>` elements; unparsable ones are skipped."""
    nodes: list[dict] = []
    for script in scripts:
        data = parse_json_ld(script.text or "")
        if data is not None:
            nodes.extend(_flatten_graph(data))
    if not nodes:
        return []
    normalizer = _JsonLdNormalizer(nodes)
    items = [normalizer.copy(item) for node in nodes for item in _wanted(node)]
    # A node inlined into another item (an FAQPage's questions) is not an item of its own.
    return [
        item for item in items if not (isinstance(item.get("@id"), str) and item["@id"] in normalizer.inlined)
    ]


def parse_json_ld(text: str) -> object | None:
    """The JSON value of one JSON-LD script, or None when it cannot be read.

    Tolerated: raw control characters in strings, `<!-- -->` / CDATA wrappers
    and trailing commas, all common in the wild. Anything else is skipped.
    """
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError):
        pass
    repaired = _TRAILING_COMMA.sub(r"\1", _WRAPPERS.sub("", text))
    if repaired == text:
        return None
    try:
        return json.loads(repaired, strict=False)
    except (ValueError, RecursionError):
        return None


def microdata_items(elements: list) -> list[dict]:
    """Wanted microdata items among `[itemscope][itemtype]` elements (document
    order), read by extruct from just their own elements.

    extruct parses with lxml and is slow, so only the outermost elements whose
    itemtype is wanted are serialized and handed to it, not the whole page.
    `itemref` pointing outside those elements is lost; it is rare.
    """
    fragments: list[str] = []
    last_root = None
    for element in elements[:MAX_MICRODATA_ELEMENTS]:
        if not _is_wanted_types(_type_names((element.get_attribute("itemtype") or "").split())):
            continue
        # Document order: a nested item comes after its ancestor, and kept roots
        # never overlap, so only the latest root can contain it.
        if last_root is not None and last_root.contains(element):
            continue
        last_root = element
        fragments.append(element.html)
        if len(fragments) >= MAX_ITEMS_PER_PAGE:
            break
    if not fragments:
        return []
    try:
        raw = _MICRODATA.extract("\n".join(fragments))
    except (ValueError, RecursionError, lxml.etree.LxmlError):
        return []
    items = [_microdata_to_json_ld(item, 0) for item in raw]
    return [item for item in items if isinstance(item, dict) and _is_wanted(item)]


def type_names(node: object) -> list[str]:
    """The bare type names of an item (empty for anything that is not an item)."""
    if not isinstance(node, dict):
        return []
    value = node.get("@type")
    return _type_names(value if isinstance(value, list) else [value])


def _parse(html: str | bytes) -> HTMLTree | None:
    try:
        return HTMLTree.parse_from_bytes(html) if isinstance(html, bytes) else HTMLTree.parse(html)
    except ValueError:  # lone surrogates (UnicodeEncodeError) or a parser failure
        return None


def _type_names(values: list) -> list[str]:
    return [_type_name(value) for value in values if isinstance(value, str) and value.strip()]


@functools.lru_cache(maxsize=4096)
def _type_name(value: str) -> str:
    """The bare type name: "https://schema.org/Question" and "schema:Question" are "Question"."""
    name = _TYPE_PREFIX.sub("", value.strip()).rstrip("/")
    return name.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _type_value(value: object) -> str | list[str]:
    names = _type_names(value if isinstance(value, list) else [value])
    return names[0] if len(names) == 1 else names


def _is_wanted_types(names: list[str]) -> bool:
    return any(name in ROOT_TYPES for name in names)


def _is_wanted(node: dict) -> bool:
    return _is_wanted_types(type_names(node))


def _flatten_graph(data: object) -> Iterator[dict]:
    """Top-level nodes of a JSON-LD document: lists and `@graph` containers unpacked."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            continue
        if isinstance(value, list):
            stack.extend((v, depth + 1) for v in reversed(value))
        elif isinstance(value, dict):
            graph = value.get("@graph")
            if isinstance(graph, (list, dict)):
                stack.append((graph, depth + 1))
            if "@type" in value or "@graph" not in value:
                yield value


def _wanted(node: dict) -> Iterator[dict]:
    """The outermost wanted items in `node`: itself, or ones nested in unwanted
    wrappers (a WebPage whose mainEntity is an FAQPage, an ItemList of Recipes)."""
    stack = [(node, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            continue
        if isinstance(value, dict):
            if _is_wanted(value):
                yield value
                continue
            stack.extend(
                (v, depth + 1) for v in reversed(list(value.values())) if isinstance(v, (dict, list))
            )
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in reversed(value) if isinstance(v, (dict, list)))


class _JsonLdNormalizer:
    """Copies wanted JSON-LD items into the module's shape (bare type names, no
    `@context`, unprefixed keys), inlining reference-only dicts (`{"@id": "#q1"}`)
    with the wanted node of that id.

    Only references under the properties that lead down to what a miner reads
    (`_CHILD_PROPERTIES`) are followed: a Question's `mainEntityOfPage` points
    back up at its FAQPage and must stay a reference. Only wanted nodes below
    page level (not CONTAINER_TYPES) are inlined, never one already on the
    current path, and at most MAX_INLINED times per page, so a web of
    cross-references cannot multiply out.
    """

    def __init__(self, nodes: list[dict]) -> None:
        self.by_id = {
            node["@id"]: node
            for node in nodes
            if isinstance(node.get("@id"), str)
            and len(node) > 1
            and _is_wanted(node)
            and not CONTAINER_TYPES.intersection(type_names(node))
        }
        self.inlined: set[str] = set()
        self.budget = MAX_INLINED

    def copy(self, node: dict | list, depth: int = 0, path: frozenset = frozenset(), follow: bool = False):
        if depth > MAX_NESTING:
            return None
        if isinstance(node, list):
            return [self.copy(v, depth + 1, path, follow) if isinstance(v, (dict, list)) else v for v in node]
        ref = node.get("@id")
        if isinstance(ref, str) and self.by_id:
            target = self.by_id.get(ref)
            reference_only = len(node) <= 2 and set(node) <= {"@id", "@type"}
            if follow and target is not None and reference_only and ref not in path and self.budget > 0:
                self.budget -= 1
                self.inlined.add(ref)
                node = target
            path = path | {ref}
        out = {}
        for key, value in node.items():
            if key == "@type":
                out["@type"] = _type_value(value)
                continue
            if key == "@context":
                continue
            if ":" in key:
                key = _TYPE_PREFIX.sub("", key)
            if isinstance(value, (dict, list)):
                value = self.copy(value, depth + 1, path, key in _CHILD_PROPERTIES)
            out[key] = value
        return out


def _microdata_to_json_ld(value: object, depth: int) -> object:
    """extruct's {"type", "properties"} items to JSON-LD shape, bare type names."""
    if depth > MAX_NESTING:
        return None
    if isinstance(value, list):
        return [_microdata_to_json_ld(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict = {}
    raw_types = value.get("type")
    if raw_types:
        out["@type"] = _type_value(raw_types)
    if value.get("id"):
        out["@id"] = value["id"]
    properties = value.get("properties")
    if isinstance(properties, dict):
        for key, prop in properties.items():
            out[_TYPE_PREFIX.sub("", key)] = _microdata_to_json_ld(prop, depth + 1)
    elif "value" in value:
        out["textContent"] = value["value"]
    return out
