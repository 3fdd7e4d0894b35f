"""A Q&A page's question and its first answer (kind "qa"): forums, Stack Exchange, 知乎, 百度知道.

The rule, conservative on purpose because a news headline can end in "?" too:

1. The question is the first level-1 heading when it is a question (else the
   first block, if it is a question heading); failing that, the page title
   without its site suffix (" - Stack Overflow", " | 知乎", "_百度知道") and
   without a leading tag ("python - How do I …?").
2. The page must then show an answer cue after the question: a short block
   such as "Answer", "3 Answers", "Accepted", "5 个回答", "最佳答案"
   (`question_pages.answer_cues` in templates/mining.yaml).
   - input: the question body, i.e. the blocks between the question heading
     and the cue, minus post chrome ("Share", "asked 3 years ago"); empty when
     the question came from the title alone, since what precedes the cue may
     then be site navigation;
   - output: the first answer, i.e. the blocks after the cue up to post chrome
     ("Share", "编辑于…"), another cue or a heading as high as the cue; it
     starts after a vote line ("12 人赞同了该回答") if one is among its first
     three blocks, which skips the author's name and bio, and after any
     headings or chrome there (author headings, "Sorted by: …").
3. Without a cue, when the question is a heading and the URL looks like a Q&A
   site or forum (/questions/, /thread, zhidao.baidu.com, …): the text up to
   the next heading is split into posts at post chrome (dates, "Share", vote
   counts, "answered by …"); the first post is the body (input), the second
   the answer (output); a thread with no second post gives nothing.
4. Failing that, a page whose markup delimits a thread's posts (`Page.posts`)
   goes to the thread rule of threads.py: the question from the title or else
   the first post, the accepted or first substantive reply as the answer. (It
   comes after rule 3 because on some Q&A sites the repeated post bodies are
   the answers only, and the question sits elsewhere.)
5. Failing that, a question heading asked in the first person ("How do I …",
   "请问…") takes the first run of prose as its output, with an empty input.
The answer of rules 3 and 5 must hold at least a paragraph's worth of prose. A
headline such as "Will rates fall again?" on a news URL fires neither way.

Posts and answers lose their leading author lines ("OldRowFarmer Master
Gardener", "电子工程师老周"): up to two short blocks without final punctuation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence

from templates import load_yaml
from transforms.mine.blocks import (
    HEADING,
    LIST_ITEM,
    PARAGRAPH,
    PRE,
    TABLE_ROW,
    Block,
    Page,
    render_blocks,
    without_byline,
)
from transforms.mine.miners.faq_sections import is_link_row
from transforms.mine.miners.threads import thread_pair
from transforms.questions import (
    compile_phrase,
    is_question,
    matches_any,
    normalize_for_compare,
    strip_qa_prefix,
    strip_site_suffix,
)
from transforms.records import KIND_QA, Candidate
from transforms.text import contains_cjk, contains_han, rules_family

MINER = "question_pages"

# An accepted / best answer was picked by the asker or the site: strongest.
# A plain answer cue is nearly as good. Without a cue the page type is inferred
# from the URL or the question's wording, and body and answer are not separated.
CONFIDENCE_ACCEPTED = 0.85
CONFIDENCE_ANSWER_CUE = 0.8
CONFIDENCE_QA_URL = 0.65
CONFIDENCE_FIRST_PERSON = 0.55

# "Substantial prose" for the cue-less rule: about one real paragraph.
# Chinese carries roughly 2.5x the content per character of English.
MIN_PROSE_CHARS = 200
MIN_PROSE_CHARS_CJK = 80
# Answer cues, author lines and post chrome are short; a longer block is content.
MAX_CUE_CHARS = 40
MAX_CHROME_CHARS = 60  # "Asked 2 years ago · Viewed 14k times · 2 answers"
# Author name, bio and vote line come before an answer's text on 知乎-style pages.
PREAMBLE_WINDOW = 3


def _setting(key: str) -> list[str]:
    return load_yaml("mining.yaml", f"question_pages.{key}")


_ANSWER_CUES = [compile_phrase(p) for p in _setting("answer_cues")]
_ACCEPTED_CUES = [compile_phrase(p) for p in _setting("accepted_cues")]
_FOOTER = [compile_phrase(p) for p in _setting("footer_markers")]
_POST_HEADERS = [compile_phrase(p, prefix=True) for p in _setting("post_headers")]
_PREAMBLE = [compile_phrase(p) for p in _setting("answer_preamble")]
_QA_URL_HINTS = tuple(h.lower() for h in _setting("qa_url_hints"))
_FIRST_PERSON_EN = tuple(s.lower() for s in _setting("first_person.en_starts"))
_FIRST_PERSON_ZH = tuple(_setting("first_person.zh_words"))

# A Q&A page may set an author's name as a heading above the answer.
_BYLINE_KINDS = (PARAGRAPH, HEADING)
_ZERO_COUNT = re.compile(r"^\D{0,3}0(?![\d,.])")
_PROSE_KINDS = frozenset({PARAGRAPH, LIST_ITEM, PRE, TABLE_ROW})
# A tag before the question in a title ("c# - How do I …?", "ruby on rails - Why …?") is a few words.
_MAX_TAG_WORDS = 3


def mine_question_pages(page: Page) -> Iterator[Candidate]:
    found = _page_question(page)
    headed = found is not None and found[1] >= 0
    qa_url = _looks_like_qa_url(page.url)
    candidate = _cue_pair(page, *found) if found else None
    if candidate is None and headed and qa_url:
        candidate = _qa_url_pair(page, *found)
    if candidate is None and page.posts:
        candidate = thread_pair(page, found[0] if found else None)
    if candidate is None and headed and not qa_url:
        candidate = _first_person_pair(page, *found)
    if candidate:
        yield candidate


def _cue_pair(page: Page, question: str, question_index: int) -> Candidate | None:
    """Rule 2: the question heading or title, then an answer cue."""
    blocks = page.blocks
    start = question_index + 1 if question_index >= 0 else 0
    cue = _first_answer_cue(blocks, start)
    if cue is None:
        return None
    # Without a question heading, what precedes the cue may be site navigation.
    body = [b for b in blocks[start:cue] if not _is_chrome(b)] if question_index >= 0 else []
    answer = _first_answer(blocks, cue)
    accepted = _matches(_ACCEPTED_CUES, blocks[cue], MAX_CUE_CHARS)
    confidence = CONFIDENCE_ACCEPTED if accepted else CONFIDENCE_ANSWER_CUE
    return _pair(question, render_blocks(body), render_blocks(answer), confidence)


def _page_question(page: Page) -> tuple[str, int] | None:
    """(question, index of its heading or -1 when it comes from the title)."""
    blocks = page.blocks
    headline = next((i for i, b in enumerate(blocks) if b.kind == HEADING and b.level == 1), None)
    if headline is None and blocks and blocks[0].kind == HEADING:
        headline = 0
    if headline is not None and is_question(strip_qa_prefix(blocks[headline].text), page.lang):
        return strip_qa_prefix(blocks[headline].text), headline
    title = _title_question(page.title, page.lang)
    if title is None:
        return None
    # A heading that repeats the title marks where the question ends.
    key = normalize_for_compare(title)
    heading = next(
        (i for i, b in enumerate(blocks) if b.kind == HEADING and normalize_for_compare(b.text) == key), -1
    )
    return title, heading


def _title_question(title: str, lang: str) -> str | None:
    text = strip_site_suffix(title)
    tag, sep, rest = text.partition(" - ")
    if sep and len(tag.split()) <= _MAX_TAG_WORDS and not is_question(tag, lang) and is_question(rest, lang):
        text = rest.strip()
    return text if text and is_question(text, lang) else None


def _first_answer_cue(blocks: Sequence[Block], start: int) -> int | None:
    for i in range(start, len(blocks)):
        if _matches(_ANSWER_CUES, blocks[i], MAX_CUE_CHARS):
            # "0 Answers" / "0 个回答" announces that nobody answered.
            return None if _ZERO_COUNT.match(blocks[i].text) else i
    return None


def _first_answer(blocks: Sequence[Block], cue: int) -> list[Block]:
    stop_level = blocks[cue].level if blocks[cue].kind == HEADING else 2
    window_end = min(cue + 1 + PREAMBLE_WINDOW, len(blocks))
    start = cue + 1
    for i in range(cue + 1, window_end):
        if _matches(_PREAMBLE, blocks[i], MAX_CHROME_CHARS):
            start = i + 1
    # An answer's header: author-name headings, sort controls.
    while start < window_end and (blocks[start].kind == HEADING or _is_chrome(blocks[start])):
        start += 1
    answer = []
    for block in blocks[start:]:
        if block.kind == HEADING and block.level <= stop_level:
            break
        if _is_chrome(block) or _matches(_ANSWER_CUES, block, MAX_CUE_CHARS):
            break
        answer.append(block)
    return without_byline(answer, kinds=_BYLINE_KINDS)


def _qa_url_pair(page: Page, question: str, question_index: int) -> Candidate | None:
    """Rule 3: on a Q&A URL, the first post under the question heading is its body, the second
    the answer."""
    posts = _posts(_question_region(page, question_index))
    if len(posts) < 2:
        return None
    return _prose_pair(question, posts[0], posts[1], CONFIDENCE_QA_URL)


def _first_person_pair(page: Page, question: str, question_index: int) -> Candidate | None:
    """Rule 5: a first-person question heading takes the first run of prose as its answer."""
    if not _is_first_person(question, page.lang):
        return None
    posts = _posts(_question_region(page, question_index))
    return _prose_pair(question, [], posts[0], CONFIDENCE_FIRST_PERSON) if posts else None


def _question_region(page: Page, question_index: int) -> list[Block]:
    """The blocks after the question heading, up to the next heading (a sidebar or the next topic)."""
    region = []
    for block in page.blocks[question_index + 1 :]:
        if block.kind == HEADING:
            break
        region.append(block)
    return region


def _prose_pair(question: str, body: list[Block], answer: list[Block], confidence: float) -> Candidate | None:
    """The pair, when the answer holds enough prose."""
    output = render_blocks(answer)
    prose = sum(len(b.text) for b in answer if b.kind in _PROSE_KINDS)
    # Dense scripts (rule 2 of transforms/text.py) say as much in fewer characters.
    if prose < (MIN_PROSE_CHARS_CJK if contains_cjk(output) else MIN_PROSE_CHARS):
        return None
    return _pair(question, render_blocks(body), output, confidence)


def _posts(blocks: Sequence[Block]) -> list[list[Block]]:
    """Runs of blocks between post chrome (dates, "Share", vote counts), or from a block that
    opens with a post header ("Feb 20, 2007 #2 …"), author lines dropped."""
    posts: list[list[Block]] = [[]]
    for block in blocks:
        if _is_chrome(block):
            posts.append([])
            continue
        header = next((m for m in (p.match(block.text) for p in _POST_HEADERS) if m), None)
        if header:
            posts.append([])
            # The forum's list of posts is layout, not a list in the text.
            block = dataclasses.replace(block, kind=PARAGRAPH, text=block.text[header.end():].strip())
        posts[-1].append(block)
    return [post for post in (without_byline(p, kinds=_BYLINE_KINDS) for p in posts) if post]



def _looks_like_qa_url(url: str) -> bool:
    lowered = url.lower()
    return any(hint in lowered for hint in _QA_URL_HINTS)


def _is_first_person(question: str, lang: str) -> bool:
    if rules_family(lang) == "zh" or contains_han(question):
        return any(word in question for word in _FIRST_PERSON_ZH)
    lowered = " ".join(question.lower().replace("’", "'").split())
    return lowered.startswith(_FIRST_PERSON_EN)


def _is_chrome(block: Block) -> bool:
    return (
        _matches(_FOOTER, block, MAX_CHROME_CHARS)
        or _matches(_PREAMBLE, block, MAX_CHROME_CHARS)
        or is_link_row(block.text)
    )


def _matches(patterns: list[re.Pattern[str]], block: Block, max_chars: int) -> bool:
    text = block.text.strip()
    return 0 < len(text) <= max_chars and matches_any(patterns, text)


def _pair(question: str, body: str, answer: str, confidence: float) -> Candidate | None:
    answer_key = normalize_for_compare(answer)
    if not answer_key or answer_key == normalize_for_compare(question):
        return None
    if normalize_for_compare(body) == normalize_for_compare(question):
        body = ""  # a body that only repeats the title adds nothing
    return Candidate(
        instruction=question, input=body, output=answer, kind=KIND_QA, miner=MINER, confidence=confidence
    )
