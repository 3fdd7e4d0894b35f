"""The posts of a thread page, read from the elements forum and Q&A software wraps each post in.

Main-content extraction flattens a thread into one stream of lines in which a
post's date, author, rank and text run together, so a miner cannot tell where
one post ends. The markup can: vBulletin, XenForo, phpBB, Discourse, Discuz!,
Stack Exchange, 百度知道 and the like repeat one element per post whose class
or id says "post body" ("postbody", "messageContent", "js-post-body",
"post_message_123", "answer-text"). The vocabulary is in templates/mining.yaml
(`threads`); it names what forum software writes, not sites.

The rule: among the elements whose class or id matches, those of one kind
(tag and matching class tokens) that repeat most often, at least twice, are the
thread's posts, in page order. Each post's text is extracted on its own, with
quoted posts and signatures left out; a post whose container is marked as the
accepted or best answer is flagged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from resiliparse.extract.html2text import extract_plain_text

from templates import load_yaml
from transforms.mine.blocks import Post

# A thread page shows at most a few dozen posts; past this, later posts never hold the answer
# a miner picks and extracting them costs time.
MAX_THREAD_POSTS = 40
# The accepted-answer mark sits on the post's container, a few levels above the body.
ACCEPTED_ANCESTOR_STEPS = 4


def _setting(key: str) -> list[str]:
    return load_yaml("mining.yaml", f"threads.{key}")


_POST_WORDS = [w.lower() for w in _setting("post_words")]
_BODY_WORDS = [w.lower() for w in _setting("body_words")]
_BODY_CLASSES = frozenset(c.lower() for c in _setting("body_classes"))
_BODY_IDS = [i.lower() for i in _setting("body_ids")]
_CONTAINER_IDS = [i.lower() for i in _setting("container_ids")]
_ACCEPTED_CLASSES = frozenset(c.lower() for c in _setting("accepted_classes"))
_SKIP_INSIDE = list(_setting("skip_inside"))

_BODY_TOKEN = re.compile(
    "(?:" + "|".join(map(re.escape, _POST_WORDS)) + ")[-_]?(?:" + "|".join(map(re.escape, _BODY_WORDS)) + ")",
    re.IGNORECASE,
)
_BODY_ID = re.compile("^(?:" + "|".join(map(re.escape, _BODY_IDS)) + r")[-_]?\d+$", re.IGNORECASE)
_CONTAINER_ID = re.compile("^(?:" + "|".join(map(re.escape, _CONTAINER_IDS)) + r")[-_]?\d+$", re.IGNORECASE)
# Candidates for the selector walk; `_post_kind` decides in Python. Each substring selector
# costs about 0.1 ms a page, so a class or id prefix another selector already covers
# ("postmessage" under "post") is left out.
POST_BODY_SELECTOR = ",".join(
    [f"[class*={w} i]" for w in _POST_WORDS]
    + [f"[class*={c} i]" for c in sorted(_BODY_CLASSES) if not any(w in c for w in _POST_WORDS)]
    + [f"[id^={i} i]" for i in sorted(set(_BODY_IDS + _CONTAINER_IDS))
       if not any(i != o and i.startswith(o) for o in _BODY_IDS + _CONTAINER_IDS)]
)
# A post body beats a whole post's container that repeats as often (it leaves out author lines).
_BODY, _CONTAINER = 1, 0


def thread_posts(tree, blocks_of: Callable[[str], list]) -> list[Post]:
    """The posts of the thread on a parsed page, or [] when its markup repeats no post body.

    `blocks_of` turns an element's minimal HTML into blocks (html_blocks passes its reader).
    """
    if tree.body is None:
        return []
    groups: dict[tuple, list] = {}
    # A page repeats a few class values over its elements: each is judged once.
    class_tokens: dict[str, tuple[str, ...]] = {}
    for element in tree.body.query_selector_all(POST_BODY_SELECTOR).values():
        kind = _post_kind(element, class_tokens)
        if kind is not None:
            groups.setdefault(kind, []).append(element)
    members = max(groups.items(), key=lambda item: (len(item[1]), item[0][0]), default=(None, []))[1]
    if len(members) < 2:
        return []
    posts = []
    for element in _outermost(members[: MAX_THREAD_POSTS]):
        blocks = blocks_of(_post_html(element))
        if blocks:
            posts.append(Post(blocks=blocks, accepted=_is_accepted(element)))
    return posts if len(posts) >= 2 else []


def _post_kind(element, class_tokens: dict[str, tuple[str, ...]]) -> tuple | None:
    """(_BODY or _CONTAINER, tag, the class tokens or id pattern that matched), or None.

    `class_tokens` caches the matching tokens of each class value seen on the page.
    """
    class_attr = element.getattr("class") or ""
    tokens = class_tokens.get(class_attr)
    if tokens is None:
        tokens = class_tokens[class_attr] = tuple(
            sorted(t.lower() for t in class_attr.split() if t.lower() in _BODY_CLASSES or _BODY_TOKEN.search(t))
        )
    if tokens:
        return _BODY, element.tag, tokens
    element_id = element.getattr("id") or ""
    for rank, pattern in ((_BODY, _BODY_ID), (_CONTAINER, _CONTAINER_ID)):
        if pattern.match(element_id):
            return rank, element.tag, (re.sub(r"\d+$", "", element_id.lower()),)
    return None


def _outermost(elements: list) -> list:
    """`elements` without those nested inside another of them (a body inside a body)."""
    return [e for e in elements if not any(o is not e and o.contains(e) for o in elements)]


def _post_html(element) -> str:
    """The post's own text as minimal HTML, signatures and edit notes inside it left out.

    Only the element's content is extracted, inside a <div>: a post that is itself an <li> or
    a <td> would otherwise come out as one list item, or lose its cell outside a table.
    """
    outer = element.html
    inner = outer[outer.find(">") + 1 : outer.rfind("</")] if outer.endswith(">") else outer
    return extract_plain_text(
        f"<div>{inner}</div>", preserve_formatting="minimal_html", main_content=False, list_bullets=True,
        alt_texts=False, skip_elements=_SKIP_INSIDE,
    )


def _is_accepted(element) -> bool:
    node = element
    for _ in range(ACCEPTED_ANCESTOR_STEPS + 1):
        if node is None or not hasattr(node, "getattr"):
            return False
        if node.getattr("itemprop") == "acceptedAnswer":
            return True
        if any(token.lower() in _ACCEPTED_CLASSES for token in (node.getattr("class") or "").split()):
            return True
        node = node.parent
    return False
