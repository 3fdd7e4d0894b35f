"""A thread's question and its answer, from the posts the page's markup delimits (kind "qa").

question_pages falls back to this when its heading-and-cue rules find nothing
on a page whose markup repeats a post body (`Page.posts`, see thread_posts.py):
forum threads whose title is not a question, boards without answer cues.

1. The posts: link lists among them (an ad or "related threads" box styled as a
   post) are dropped; a thread needs a first post and a reply.
2. The question, in this order:
   - the page's question heading or title question, when it has one;
   - the first sentence of the first post that asks: it ends in "?"/"？" and is
     not a few words, or it asks for help without a question mark ("I don't
     know how to …", "请问…", `threads.request_starts` in templates/mining.yaml).
     A question of a few words ("Any ideas?") takes the sentence before it along;
   - none: a thread that asks nothing is a discussion, not a question.
   The first post is the input (the question's context).
3. The answer: a reply marked accepted or best, else the first substantive
   reply. A reply loses quoted text (blocks that repeat an earlier post) and
   the "X said:" line above it, and its leading author lines; then a reply
   with too little prose, one that thanks ("Thanks, that worked"), or a short
   one that asks back ("Which version?") is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from templates import load_yaml
from transforms.mine.blocks import (
    LIST_ITEM,
    MAX_BYLINE_CHARS,
    PARAGRAPH,
    PRE,
    TABLE_ROW,
    Block,
    Page,
    Post,
    render_blocks,
    without_byline,
)
from transforms.questions import (
    compile_phrase,
    ends_with_question_mark,
    matches_any,
    normalize_for_compare,
    strip_discourse_opener,
)
from transforms.records import KIND_QA, Candidate
from transforms.text import CLAUSE_ENDS, contains_cjk, contains_han, split_sentences, word_joiner

MINER = "threads"

# The asker or the site picked the answer; a reply to a question the title asks is the usual
# forum shape; a question read out of the first post may be one of several it asks.
CONFIDENCE_ACCEPTED = 0.8
CONFIDENCE_TITLE_QUESTION = 0.7
CONFIDENCE_POST_QUESTION = 0.6

# A reply needs a sentence or two of prose to answer anything ("Try X." is 6 characters);
# Chinese says as much in about a third of the characters.
MIN_REPLY_CHARS = 60
MIN_REPLY_CHARS_CJK = 20
# A reply this short that ends in "?" asks back; one that opens with thanks thanks.
MAX_ASK_BACK_CHARS = 200
MAX_THANKS_CHARS = 200
# Shorter question sentences ("Any ideas?", "Why?") lean on the sentence before them.
MIN_QUESTION_WORDS = 4
MIN_QUESTION_CHARS_CJK = 6
# A quoted block repeats an earlier post; shorter blocks ("Thanks!") repeat by chance.
MIN_QUOTED_KEY_CHARS = 20
# A post that is mostly short list items without sentence punctuation is a list of links.
LINK_LIST_SHARE = 0.6
MAX_LINK_ITEM_CHARS = 120


def _setting(key: str) -> list[str]:
    return load_yaml("mining.yaml", f"threads.{key}")


_QUOTE_HEADERS = [compile_phrase(p) for p in _setting("quote_headers")]
_THANKS = re.compile("^(?:" + "|".join(re.escape(t.lower()) for t in _setting("thanks_openers")) + ")(?![a-z])")
_REQUEST_STARTS = tuple(s.lower() for s in _setting("request_starts"))
_REQUEST_WORDS_ZH = tuple(_setting("request_words_zh"))
_PROSE_KINDS = frozenset({PARAGRAPH, LIST_ITEM, PRE, TABLE_ROW})
_APOSTROPHES = re.compile("[’‘`]")


def thread_pair(page: Page, title_question: str | None) -> Candidate | None:
    """The thread's question and answer, or None (see the module docstring).

    `title_question` is the page's question heading or title question, if it has one.
    """
    posts = [post for post in page.posts if not _is_link_list(post.blocks)]
    if len(posts) < 2:
        return None
    first = without_byline(posts[0].blocks)
    body = render_blocks(first)
    if title_question:
        question, confidence = title_question, CONFIDENCE_TITLE_QUESTION
    else:
        question, confidence = _asked_in(first, page.lang), CONFIDENCE_POST_QUESTION
        if not question:
            return None
    answer = _answer(posts, page.lang)
    if answer is None:
        return None
    reply, accepted = answer
    output = render_blocks(reply)
    if normalize_for_compare(output) in ("", normalize_for_compare(body)):
        return None
    if normalize_for_compare(body) == normalize_for_compare(question):
        body = ""
    return Candidate(
        instruction=question, input=body, output=output, kind=KIND_QA, miner=MINER,
        confidence=CONFIDENCE_ACCEPTED if accepted else confidence,
    )


def _asked_in(blocks: Sequence[Block], lang: str) -> str | None:
    """The first question or help request among the sentences of a post's prose blocks."""
    for block in blocks:
        if block.kind not in (PARAGRAPH, LIST_ITEM):
            continue
        sentences = split_sentences(block.text, lang)
        for i, sentence in enumerate(sentences):
            if not (_is_request(sentence) or ends_with_question_mark(sentence)):
                continue
            if _is_short(sentence):
                if i == 0 or ends_with_question_mark(sentences[i - 1]):
                    continue  # "Why?" alone, or after another question
                sentence = word_joiner(sentence).join([sentences[i - 1], sentence])
            return strip_discourse_opener(sentence)
    return None


def _is_request(sentence: str) -> bool:
    if contains_han(sentence):
        return any(word in sentence for word in _REQUEST_WORDS_ZH)
    lowered = _APOSTROPHES.sub("'", strip_discourse_opener(sentence).lower())
    return lowered.startswith(_REQUEST_STARTS)


def _is_short(sentence: str) -> bool:
    if contains_cjk(sentence):
        return len(normalize_for_compare(sentence)) < MIN_QUESTION_CHARS_CJK
    return len(sentence.split()) < MIN_QUESTION_WORDS


def _answer(posts: Sequence[Post], lang: str) -> tuple[list[Block], bool] | None:
    """(the reply's blocks, whether it is marked accepted) for the first accepted reply, else
    the first substantive one."""
    seen = _block_keys(posts[0].blocks)
    replies = []
    for post in posts[1:]:
        blocks = without_byline(_without_quotes(post.blocks, seen))
        seen |= _block_keys(post.blocks)
        if _is_substantive(blocks):
            replies.append((blocks, post.accepted))
    accepted = [reply for reply in replies if reply[1]]
    return (accepted or replies or [None])[0]


def _block_keys(blocks: Sequence[Block]) -> set[str]:
    return {key for key in (normalize_for_compare(b.text) for b in blocks) if len(key) >= MIN_QUOTED_KEY_CHARS}


def _without_quotes(blocks: Sequence[Block], earlier: set[str]) -> list[Block]:
    """`blocks` without those that repeat an earlier post and the quote headers above them."""
    kept = [b for b in blocks if normalize_for_compare(b.text) not in earlier]
    return [b for b in kept if not (len(b.text) <= MAX_BYLINE_CHARS * 2 and matches_any(_QUOTE_HEADERS, b.text.strip()))]


def _is_substantive(blocks: Sequence[Block]) -> bool:
    text = render_blocks(blocks)
    prose = sum(len(b.text) for b in blocks if b.kind in _PROSE_KINDS)
    if prose < (MIN_REPLY_CHARS_CJK if contains_cjk(text) else MIN_REPLY_CHARS):
        return False
    if len(text) <= MAX_ASK_BACK_CHARS and ends_with_question_mark(text):
        return False
    return not (len(text) <= MAX_THANKS_CHARS and _THANKS.match(text.lower()))


def _is_link_list(blocks: Sequence[Block]) -> bool:
    total = sum(len(b.text) for b in blocks)
    items = [b for b in blocks if b.kind == LIST_ITEM]
    listed = sum(len(b.text) for b in items)
    if not items or listed < LINK_LIST_SHARE * total:
        return False
    return all(len(b.text) <= MAX_LINK_ITEM_CHARS and not b.text.rstrip().endswith(CLAUSE_ENDS) for b in items)

