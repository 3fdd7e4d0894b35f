"""FAQ-style question/answer pairs read from a page's visible structure (kind "faq").

Nine layouts, strongest first, each a small function below:

1. a question heading and the blocks up to the next heading of the same or
   higher level, or a "Q:" paragraph (`_question_headings`); outside FAQ
   sections the heading must end in "?"/"？", since "How to …" and "如何…"
   headings are howto's, must not be the page's headline, and its section
   must hold a sentence (a headline list has tags, sources and times only);
2. an accordion: <summary> question, <details> body (`_details`);
3. a definition list: <dt> question, <dd> answers (`_definition_lists`);
4. explicit markers "Q:"/"A:", "Question:"/"Answer:", "问："/"答："
   (`_inline_qa`), in one paragraph or across consecutive ones;
5. inside an FAQ section (a heading or page title such as "FAQ", "常见问题"),
   a question paragraph and the paragraphs that answer it (`_faq_paragraphs`);
6. a list whose items alternate between a question ("1. What is IMAP?") and
   the items that answer it, as help centres write FAQs without headings
   (`_question_list_items`); two answered questions in one list are needed, so
   a list of question links gives nothing;
7. in a list of questions, an item that is opened up: its first sentence asks
   and the rest of the item answers (`_expanded_question_items`), as a help
   centre's accordion of question links shows the one that is open; no more
   items may be opened than are bare questions (a headline list gives every
   item a subtitle);
8. a panel: one question announced as such ("This week's question: …?", "本期问题：…？")
   answered by several people, their answers set apart by divider lines ("=====",
   "———") and each usually signed (`_panel_answers`); like a thread, it gives the
   first answer, without its signature (more copies of one prompt add little);
9. an interview whose prompts open their paragraphs in bold, questions or statements
   (`_bold_prompts`): at least three answered, a tenth of the page's paragraphs, and
   half of them asking.

Layout 5 also reads question paragraphs outside FAQ sections when a page has
at least MIN_QUESTION_PARAGRAPH_RUN of them, each answered by the blocks after
it: a help page that sets its questions as plain (often bold) paragraphs.

Pairs inside an FAQ section get more confidence than a lone question heading:
the section title says the page's author meant them as questions and answers.
When two layouts find the same question, the first (stronger) one is kept.
An answer that ends in "..." / "…" is a teaser linking elsewhere and is
dropped, and rows of links ("About | Legal | Privacy") are left out of heading
answers; length, language and boilerplate checks are left to the filters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence

from templates import load_yaml
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
    render_blocks,
    section_end,
)
from transforms.questions import (
    ends_with_question_mark,
    find_answer_marker,
    has_question_mark,
    is_interrogative_form,
    is_question,
    normalize_for_compare,
    split_qa_prefix,
    strip_numbering,
    strip_qa_prefix,
    strip_site_suffix,
)
from transforms.records import KIND_FAQ, Candidate
from transforms.text import contains_spaceless, split_sentences, word_joiner

MINER = "faq_sections"

# Confidence per layout. Explicit FAQ structure (a section titled FAQ, an
# accordion, Q:/A: markers) is strong evidence; a question heading inside an
# article is often a rhetorical sub-title, so it scores lowest.
CONFIDENCE_HEADING_IN_FAQ = 0.85
CONFIDENCE_HEADING = 0.6  # "How does X work?" under an article
CONFIDENCE_HEADING_MARK_ONLY = 0.45  # "A change in guidelines?": a news sub-title
CONFIDENCE_DETAILS_IN_FAQ = 0.85
CONFIDENCE_DETAILS = 0.75
CONFIDENCE_DEFINITION_IN_FAQ = 0.8
CONFIDENCE_DEFINITION = 0.7
CONFIDENCE_MARKED_ANSWER = 0.8  # "Q: …" then "A: …"
CONFIDENCE_UNMARKED_ANSWER = 0.7  # "Q: …" then a plain paragraph
FAQ_SECTION_BONUS = 0.05
CONFIDENCE_FAQ_PARAGRAPH = 0.8
CONFIDENCE_FAQ_SENTENCE = 0.7  # "Is it free? Yes, …" in one FAQ paragraph
CONFIDENCE_QUESTION_LIST = 0.75  # "1. What is X?" then its answer, items of one list
# Answered questions a list needs before its items count as an FAQ.
MIN_QUESTION_LIST_PAIRS = 2
CONFIDENCE_QUESTION_PARAGRAPHS = 0.7  # answered question paragraphs on a page without an FAQ title
# Question paragraphs, each answered, that make a page an FAQ without an FAQ title: fewer
# are an article's rhetorical questions.
MIN_QUESTION_PARAGRAPH_RUN = 3
MIN_QUESTION_PARAGRAPH_SHARE = 0.1
_QUOTES = tuple("\"'“‘「『")
# A question paragraph is short; a longer paragraph ending in "?" is prose.
MAX_QUESTION_PARAGRAPH_CHARS = 150
MAX_QUESTION_PARAGRAPH_CHARS_CJK = 60
CONFIDENCE_EXPANDED_ITEM = 0.7
CONFIDENCE_PANEL = 0.65
CONFIDENCE_BOLD_PROMPT = 0.7
# A panel has several answers; a signature line is a name and a title.
MIN_PANEL_ANSWERS = 2
MAX_SIGNATURE_CHARS = 120
# "This week's question:", "Today's question:", "本期问题：" before a panel's question.
_PANEL_LABEL = re.compile(r"^[^:：?？]{0,40}(?:question|问题|话题)\s*[:：]\s*", re.IGNORECASE)
# A line of repeated dashes, equals signs, stars or em dashes that sets answers apart.
_DIVIDER = re.compile(r"^\s*(?:[=\-_*~—–·•]\s*){3,}$")
# Question items a list needs before an opened-up item counts (a list of questions, not posts).
MIN_QUESTION_ITEMS = 3
# The answer part of an opened-up item is at least a sentence.
MIN_EXPANDED_ANSWER_CHARS = 60
MIN_EXPANDED_ANSWER_CHARS_CJK = 20
# An answer under a lone question heading needs one block of prose: a sentence, or a line
# this long; a headline list has only tags, sources, times and counts under each headline.
MIN_PROSE_WORDS = 6
MIN_PROSE_CHARS_CJK = 15
# Short lines without final punctuation at the end of an answer are the next section's label
# or a panel's "Close" button, not answer text.
MAX_TRAILING_LABEL_CHARS = 12
_LABEL_ENDS = tuple(".!?:;…。！？：；)）")

# News and blog sidebars list question headlines over a cut-off teaser.
_TEASER_ENDS = ("...", "…", "...]", "…]")
# Short or word-less lines after a teaser: "2019-09-09 21:38", "Jul 25, 2019".
_MAX_TRAILER_CHARS = 12
_HAS_WORDS = re.compile(r"[^\W\d_]")
# Navigation rows and breadcrumbs that main-content extraction lets through.
_LINK_ROW_SEPARATOR = re.compile(r"\s[|·›>»/]\s|｜")
_MIN_LINK_ROW_PARTS = 3
_MAX_LINK_CHARS = 24
# Blocks that can carry answer text after a question paragraph.
_ANSWER_KINDS = frozenset({PARAGRAPH, LIST_ITEM, PRE, TABLE_ROW})

_FAQ_TITLES = [t.lower() for t in load_yaml("mining.yaml", "faq_titles")]
_FAQ_TITLE_SET = frozenset(_FAQ_TITLES)
# "Shipping FAQ", "FAQ about returns"; Chinese titles may touch the words around them
# ("产品常见问题", rule 3 of transforms/text.py).
_FAQ_TITLE_PREFIXES = tuple(t + " " for t in _FAQ_TITLES) + tuple(t for t in _FAQ_TITLES if contains_spaceless(t))
_FAQ_TITLE_SUFFIXES = tuple(" " + t for t in _FAQ_TITLES) + tuple(t for t in _FAQ_TITLES if contains_spaceless(t))
_TITLE_SEPARATORS: list[str] = load_yaml("mining.yaml", "title_separators")
# An FAQ title is a short label; longer headings that merely mention "FAQ" are prose.
_MAX_FAQ_TITLE_CHARS = 60


def mine_faq_sections(page: Page) -> Iterator[Candidate]:
    in_faq = faq_section_mask(page)
    seen: set[str] = set()
    layouts = (_question_headings, _details, _definition_lists, _inline_qa, _faq_paragraphs, _question_list_items,
               _expanded_question_items, _panel_answers, _bold_prompts)
    for layout in layouts:
        for candidate in layout(page, in_faq):
            key = normalize_for_compare(candidate.instruction)
            if key not in seen:
                seen.add(key)
                yield candidate


def is_link_row(text: str) -> bool:
    """A row of short links: "About | Legal | Privacy", "论坛 › 猫咪版块 › 喂养交流", "Asked 2y ago · 2 answers"."""
    parts = _LINK_ROW_SEPARATOR.split(text.strip())
    return len(parts) >= _MIN_LINK_ROW_PARTS and all(0 < len(p.strip()) <= _MAX_LINK_CHARS for p in parts)


def is_faq_title(text: str) -> bool:
    """True for headings such as "FAQ", "Shipping FAQs", "Frequently Asked Questions (FAQ)", "常见问题解答"."""
    if len(text) > 2 * _MAX_FAQ_TITLE_CHARS:
        return False
    label = " ".join(strip_numbering(text).strip(" :：").lower().split())
    if not label or len(label) > _MAX_FAQ_TITLE_CHARS:
        return False
    return (
        label in _FAQ_TITLE_SET
        or label.startswith(_FAQ_TITLE_PREFIXES)
        or label.endswith(_FAQ_TITLE_SUFFIXES)
    )


def faq_section_mask(page: Page) -> list[bool]:
    """Per block: does it sit in an FAQ section (under an FAQ heading, or on a page titled FAQ)?"""
    blocks = page.blocks
    if _title_is_faq(page.title):
        return [True] * len(blocks)
    mask = [False] * len(blocks)
    for i, block in enumerate(blocks):
        if block.kind == HEADING and is_faq_title(block.text):
            for j in range(i + 1, section_end(blocks, i)):
                mask[j] = True
    return mask


def _title_is_faq(title: str) -> bool:
    segments = [title]
    for sep in _TITLE_SEPARATORS:
        segments = [part for segment in segments for part in segment.split(sep)]
    return any(is_faq_title(segment) for segment in segments if segment.strip())


def _pair(question: str, answer: str, confidence: float) -> Candidate | None:
    """A Candidate, or None for an empty or teaser answer or one that only repeats the question."""
    question, answer = strip_qa_prefix(question), answer.strip()
    answer_key = normalize_for_compare(answer)
    if not question or not answer_key or answer_key == normalize_for_compare(question):
        return None
    if _is_teaser(answer):
        return None
    return Candidate(
        instruction=question, output=answer, kind=KIND_FAQ, miner=MINER, confidence=round(confidence, 2)
    )


def _is_teaser(answer: str) -> bool:
    """The answer's last real line is cut off with "..." (a timestamp or "Jul 25" may follow)."""
    for line in reversed(answer.splitlines()):
        line = line.strip()
        if len(line) > _MAX_TRAILER_CHARS and _HAS_WORDS.search(line):
            return line.endswith(_TEASER_ENDS)
    return False


def _question_headings(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 1. Outside FAQ sections the heading must end in "?" and must be
    neither level 1 nor the page title: that is the page's headline, and
    whether the page answers it is question_pages' call. On a whole page
    (`Page.whole_page`) only FAQ sections count: its other question headings
    are mostly headline lists."""
    blocks = page.blocks
    headline = normalize_for_compare(strip_site_suffix(page.title))
    for i, block in enumerate(blocks):
        if block.kind != HEADING:
            continue
        question = strip_qa_prefix(block.text)
        if in_faq[i]:
            if not is_question(question, page.lang):
                continue
            confidence = CONFIDENCE_HEADING_IN_FAQ
        else:
            if page.whole_page or block.level <= 1 or not ends_with_question_mark(question):
                continue
            if normalize_for_compare(question) == headline:
                continue
            interrogative = is_interrogative_form(question, page.lang)
            confidence = CONFIDENCE_HEADING if interrogative else CONFIDENCE_HEADING_MARK_ONLY
        answer_blocks = []
        for following in blocks[i + 1 : section_end(blocks, i)]:
            role, rest = split_qa_prefix(following.text)
            if role == "question":  # a "Q:" paragraph starts the next pair
                break
            if is_link_row(following.text):  # the page footer after the last answer
                continue
            answer_blocks.append(dataclasses.replace(following, text=rest) if role else following)
        if all(b.kind == HEADING for b in answer_blocks):
            continue
        if not in_faq[i] and not any(_reads_as_prose(b) for b in answer_blocks):
            continue  # a headline list: tags, source, "5小时前", "132 跟贴" under each headline
        candidate = _pair(block.text, render_blocks(answer_blocks), confidence)
        if candidate:
            yield candidate


def _details(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 2: a <summary> that asks, answered by the DETAILS_BODY blocks of its group."""
    yield from _grouped_answers(
        page, in_faq, SUMMARY, DETAILS_BODY, CONFIDENCE_DETAILS_IN_FAQ, CONFIDENCE_DETAILS
    )


def _definition_lists(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 3: a <dt> that asks, answered by the DD blocks of its group. Glossary
    terms ("Latency") are not questions and are skipped."""
    yield from _grouped_answers(page, in_faq, DT, DD, CONFIDENCE_DEFINITION_IN_FAQ, CONFIDENCE_DEFINITION)


def _grouped_answers(
    page: Page,
    in_faq: list[bool],
    question_kind: str,
    answer_kind: str,
    in_faq_confidence: float,
    confidence: float,
) -> Iterator[Candidate]:
    blocks = page.blocks
    for i, block in enumerate(blocks):
        if block.kind != question_kind or not is_question(strip_qa_prefix(block.text), page.lang):
            continue
        answer_blocks = []
        for following in blocks[i + 1 :]:
            if following.kind != answer_kind or following.group != block.group:
                break
            answer_blocks.append(following)
        candidate = _pair(
            block.text, render_blocks(answer_blocks), in_faq_confidence if in_faq[i] else confidence
        )
        if candidate:
            yield candidate


def _inline_qa(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 4: "Q:"-marked paragraphs.

    The answer is the rest of the same paragraph after an "A:" marker, or else
    the next paragraph (its "A:" dropped). Further unmarked paragraphs belong to
    the answer only while another "Q:" follows before the next heading, so the
    last pair of a run does not swallow the article after it; list items right
    after the answer are always kept ("A: Three ways:" + items).
    """
    blocks = page.blocks
    for i, block in enumerate(blocks):
        if block.kind not in (PARAGRAPH, LIST_ITEM):
            continue
        role, rest = split_qa_prefix(block.text)
        if role != "question":
            continue
        bonus = FAQ_SECTION_BONUS if in_faq[i] else 0.0
        marker = find_answer_marker(rest)
        if marker >= 0:
            candidate = _pair(
                rest[:marker], split_qa_prefix(rest[marker:])[1], CONFIDENCE_MARKED_ANSWER + bonus
            )
        else:
            candidate = _marked_answer_after(blocks, i, rest, bonus)
        if candidate:
            yield candidate


def _marked_answer_after(blocks: Sequence[Block], i: int, question: str, bonus: float) -> Candidate | None:
    if i + 1 >= len(blocks) or blocks[i + 1].kind not in _ANSWER_KINDS:
        return None
    first_role, first_text = split_qa_prefix(blocks[i + 1].text)
    if first_role == "question":
        return None
    answer = [dataclasses.replace(blocks[i + 1], text=first_text)]
    more_questions_follow = _question_marker_ahead(blocks, i + 2)
    for following in blocks[i + 2 :]:
        if following.kind not in _ANSWER_KINDS or split_qa_prefix(following.text)[0]:
            break
        if not more_questions_follow and following.kind != LIST_ITEM:
            break
        answer.append(following)
    confidence = (CONFIDENCE_MARKED_ANSWER if first_role == "answer" else CONFIDENCE_UNMARKED_ANSWER) + bonus
    return _pair(question, render_blocks(answer), confidence)


def _question_marker_ahead(blocks: Sequence[Block], start: int) -> bool:
    for block in blocks[start:]:
        if block.kind == HEADING:
            return False
        if split_qa_prefix(block.text)[0] == "question":
            return True
    return False


def _faq_paragraphs(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 5, inside FAQ sections: a paragraph that is a question, answered
    by the following blocks up to the next question paragraph or heading; or a
    paragraph that opens with a question sentence and answers it in the rest.
    Outside them, only short question paragraphs, and only on a page with
    MIN_QUESTION_PARAGRAPH_RUN answered ones."""
    blocks = page.blocks
    answered = _answered_question_paragraphs(page, in_faq)
    for i, block in enumerate(blocks):
        if i in answered:
            candidate = _pair(block.text, render_blocks(answered[i]), CONFIDENCE_QUESTION_PARAGRAPHS)
            if candidate:
                yield candidate
            continue
        if not in_faq[i] or block.kind != PARAGRAPH or split_qa_prefix(block.text)[0]:
            continue
        if _is_question_paragraph(block, page.lang):
            answer = _paragraph_answer(blocks, i, page.lang)
            candidate = _pair(block.text, render_blocks(answer), CONFIDENCE_FAQ_PARAGRAPH)
        else:
            sentences = split_sentences(block.text, page.lang)
            if (
                len(sentences) < 2
                or not is_question(sentences[0], page.lang)
                or is_question(sentences[1], page.lang)
            ):
                continue
            joiner = word_joiner(block.text)
            candidate = _pair(sentences[0], joiner.join(sentences[1:]), CONFIDENCE_FAQ_SENTENCE)
        if candidate:
            yield candidate


def _list_items(page: Page) -> list[list[int]]:
    """The page's lists: the indexes of each list's items (one `group`), in page order."""
    lists: dict[int, list[int]] = {}
    for i, block in enumerate(page.blocks):
        if block.kind == LIST_ITEM and block.group:
            lists.setdefault(block.group, []).append(i)
    return list(lists.values())


def _question_list_items(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 6: in one list, a numbered or marked item (any item inside an FAQ section) that
    ends in "?"/"？", and the items after it up to the next such item; only for lists with
    MIN_QUESTION_LIST_PAIRS answered questions."""
    for items in _list_items(page):
        pairs: list[tuple[int, list[Block]]] = []
        for i in items:
            block = page.blocks[i]
            question = strip_qa_prefix(block.text)
            # Numbered, marked or in an FAQ section: a forum's posts are list items too.
            if ends_with_question_mark(question) and (question != block.text or in_faq[i]):
                pairs.append((i, []))
            elif pairs and not is_link_row(block.text):
                pairs[-1][1].append(block)
        answered = [(i, answer) for i, answer in pairs if answer]
        if len(answered) < MIN_QUESTION_LIST_PAIRS:
            continue
        for i, answer in answered:
            bonus = FAQ_SECTION_BONUS if in_faq[i] else 0.0
            candidate = _pair(strip_qa_prefix(page.blocks[i].text), render_blocks(answer),
                              CONFIDENCE_QUESTION_LIST + bonus)
            if candidate:
                yield candidate


def _reads_as_prose(block: Block) -> bool:
    """A sentence, not a fragment of item metadata: it ends like a sentence or is long enough."""
    text = block.text.strip()
    if block.kind == HEADING or not text:
        return False
    if text.endswith(_LABEL_ENDS):
        return True
    return len(text) >= MIN_PROSE_CHARS_CJK if contains_spaceless(text) else len(text.split()) >= MIN_PROSE_WORDS


def _paragraph_answer(blocks: Sequence[Block], i: int, lang: str) -> list[Block]:
    """The blocks after question paragraph `i` up to the next question or heading, less trailing labels."""
    answer = []
    for following in blocks[i + 1 :]:
        if following.kind not in _ANSWER_KINDS or _opens_with_question(following, lang):
            break
        answer.append(following)
    while answer and _is_label(answer[-1]):
        answer.pop()
    return answer


def _is_label(block: Block) -> bool:
    text = block.text.strip()
    return len(text) <= MAX_TRAILING_LABEL_CHARS and not text.endswith(_LABEL_ENDS)


def _answered_question_paragraphs(page: Page, in_faq: list[bool]) -> dict[int, list[Block]]:
    """Short question paragraphs outside FAQ sections and their answers, when the page has
    MIN_QUESTION_PARAGRAPH_RUN of them and they are dense enough to be the page's layout.

    A thread's posts (`Page.posts`) are left to the thread rule: a post that asks and then
    explains itself is not an FAQ. Stories ask in dialogue now and then; an FAQ asks every
    few paragraphs, so answered questions must be at least MIN_QUESTION_PARAGRAPH_SHARE of
    the page's paragraphs (on the dev set: FAQ and interview pages 0.21-0.29, stories and
    news with a few questions in them 0.01-0.05).
    """
    if page.posts:
        return {}
    blocks = page.blocks
    asked = [i for i, block in enumerate(blocks) if not in_faq[i] and _is_short_question_paragraph(block, page.lang)]
    answered = {i: answer for i in asked if (answer := _paragraph_answer(blocks, i, page.lang))}
    if len(answered) < MIN_QUESTION_PARAGRAPH_RUN:
        return {}
    paragraphs = sum(1 for block in blocks if block.kind == PARAGRAPH)
    return answered if len(answered) >= MIN_QUESTION_PARAGRAPH_SHARE * paragraphs else {}


def _is_short_question_paragraph(block: Block, lang: str) -> bool:
    """A paragraph that only asks: short, not quoted dialogue, every sentence a question."""
    # It must end in "?"/"？": most paragraphs are ruled out before any other test.
    if block.kind != PARAGRAPH or not has_question_mark(block.text) or split_qa_prefix(block.text)[0]:
        return False
    question = strip_numbering(block.text)
    if not ends_with_question_mark(question) or question.startswith(_QUOTES) \
            or len(question) > _question_char_limit(question):
        return False
    return all(is_question(sentence, lang) for sentence in split_sentences(question, lang))


def _expanded_question_items(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 7: in a list with MIN_QUESTION_ITEMS items that open with a question, an item whose
    first sentence asks and whose rest answers it."""
    for indexes in _list_items(page):
        bare, opened = [], []
        for item in (page.blocks[i] for i in indexes):
            sentences = split_sentences(strip_qa_prefix(item.text), page.lang)
            if not sentences or not _is_short_question(sentences[0], page.lang):
                continue
            question = sentences[0]
            rest = item.text[item.text.find(question) + len(question) :].strip() if question in item.text else ""
            (opened if rest else bare).append((question, rest))
        # A headline list gives every item a subtitle; an accordion opens one or two of many.
        if len(bare) + len(opened) < MIN_QUESTION_ITEMS or len(opened) > len(bare):
            continue
        for question, rest in opened:
            limit = MIN_EXPANDED_ANSWER_CHARS_CJK if contains_spaceless(question) else MIN_EXPANDED_ANSWER_CHARS
            if len(rest) < limit or is_question(split_sentences(rest, page.lang)[0], page.lang):
                continue
            candidate = _pair(question, rest, CONFIDENCE_EXPANDED_ITEM)
            if candidate:
                yield candidate


def _panel_answers(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 8: a paragraph "… question: <question>", then answers between divider lines up
    to the next heading; MIN_PANEL_ANSWERS are needed. (Without the label, a short question
    before "******" is as often a story's scene break.)"""
    blocks = page.blocks
    for i, block in enumerate(blocks):
        label = _PANEL_LABEL.match(block.text) if block.kind == PARAGRAPH else None
        if not label:
            continue
        question = block.text[label.end() :].strip()
        if not _is_short_question(question, page.lang):
            continue
        answers: list[list[Block]] = [[]]
        for following in blocks[i + 1 :]:
            if following.kind == HEADING:
                break
            if _DIVIDER.match(following.text):
                answers.append([])
            elif following.kind in _ANSWER_KINDS:
                answers[-1].append(following)
        signed = [_without_signature(answer) for answer in answers if answer]
        if len(answers) < MIN_PANEL_ANSWERS + 1 or len(signed) < MIN_PANEL_ANSWERS:
            continue  # no dividers, or fewer answers than a panel
        first = next((answer for answer in signed if any(_reads_as_prose(b) for b in answer)), None)
        candidate = _pair(question, render_blocks(first), CONFIDENCE_PANEL) if first else None
        if candidate:
            yield candidate


def _bold_prompts(page: Page, in_faq: list[bool]) -> Iterator[Candidate]:
    """Layout 9: an interview whose prompts open their paragraphs in bold (`Page.bold_leads`),
    questions or statements, each answered by the text after it up to the next prompt or
    heading. Needs MIN_QUESTION_PARAGRAPH_RUN answered prompts, a tenth of the page's
    paragraphs, and at least half of the prompts asking."""
    if not page.bold_leads or page.posts:
        return
    blocks = page.blocks
    prompts: list[tuple[int, str, str]] = []  # (block, prompt, the rest of its block)
    for i, block in enumerate(blocks):
        if block.kind != PARAGRAPH:
            continue
        lead = next((b for b in page.bold_leads if block.text.startswith(b)), None)
        rest = block.text[len(lead) :].strip() if lead else ""
        # A prompt is a whole sentence; a bold name that the sentence goes on from
        # ("**Chicken Pasta** is the ultimate …") is emphasis.
        if lead and lead.endswith(_LABEL_ENDS) and not rest[:1].islower():
            prompts.append((i, lead, rest))
    pairs = []
    for k, (i, prompt, rest) in enumerate(prompts):
        stop = prompts[k + 1][0] if k + 1 < len(prompts) else len(blocks)
        answer = [Block(PARAGRAPH, rest)] if rest else []
        for following in blocks[i + 1 : stop]:
            if following.kind == HEADING or following.kind not in _ANSWER_KINDS:
                break
            answer.append(following)
        if any(_reads_as_prose(b) for b in answer):
            pairs.append((prompt, answer))
    paragraphs = sum(1 for block in blocks if block.kind == PARAGRAPH)
    asking = sum(1 for prompt, _ in pairs if ends_with_question_mark(prompt))
    if len(pairs) < MIN_QUESTION_PARAGRAPH_RUN or len(pairs) < MIN_QUESTION_PARAGRAPH_SHARE * paragraphs:
        return
    if asking * 2 < len(pairs):
        return  # bold sentences opening paragraphs, mostly statements: an article's emphasis
    for prompt, answer in pairs:
        candidate = _pair(prompt, render_blocks(answer), CONFIDENCE_BOLD_PROMPT)
        if candidate:
            yield candidate


def _without_signature(answer: list[Block]) -> list[Block]:
    """The answer without its last line when that line signs it ("Donna Abood, principal, Avison Young")."""
    last = answer[-1].text.strip()
    if len(answer) > 1 and len(last) <= MAX_SIGNATURE_CHARS and not last.endswith(_LABEL_ENDS):
        return answer[:-1]
    return answer


def _is_short_question(text: str, lang: str) -> bool:
    return len(text) <= _question_char_limit(text) and is_question(text, lang)


def _question_char_limit(text: str) -> int:
    """How long a standalone question may be; dense scripts say as much in fewer characters."""
    return MAX_QUESTION_PARAGRAPH_CHARS_CJK if contains_spaceless(text) else MAX_QUESTION_PARAGRAPH_CHARS


def _is_question_paragraph(block: Block, lang: str) -> bool:
    return block.kind == PARAGRAPH and (
        split_qa_prefix(block.text)[0] == "question" or is_question(strip_numbering(block.text), lang)
    )


def _opens_with_question(block: Block, lang: str) -> bool:
    """A question paragraph, or one that asks first and answers after ("Is it free? Yes.")."""
    if _is_question_paragraph(block, lang):
        return True
    sentences = split_sentences(block.text, lang) if block.kind == PARAGRAPH else []
    return len(sentences) > 1 and is_question(sentences[0], lang)
