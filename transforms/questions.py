"""Question detection and the text clean-up every question miner shares.

English and Chinese get real rules; other languages only count a trailing
"?"/"？" as a question, because word lists for them would be guesses. The word
lists live in templates/mining.yaml (`questions`, `qa_prefixes`,
`title_separators`) so they can be extended without touching code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from templates import load_yaml
from transforms.text import (
    CLOSERS,
    alphanumeric_only,
    contains_cjk,
    contains_han,
    family_of_text,
    rules_family,
)


def _words(key: str) -> list[str]:
    return load_yaml("mining.yaml", key)


_WH_WORDS = frozenset(_words("questions.en.wh_words"))
_HOW_QUANTITIES = frozenset(_words("questions.en.how_quantities"))
_AUXILIARIES = frozenset(_words("questions.en.auxiliaries"))
_SUBJECTS = frozenset(_words("questions.en.subjects"))
_ZH_INTERROGATIVES = tuple(_words("questions.zh.interrogatives"))
_ZH_FINAL_PARTICLES = tuple(_words("questions.zh.final_particles"))
_ZH_NOT_INTERROGATIVE = tuple(sorted(_words("questions.zh.not_interrogative"), key=len, reverse=True))
_ZH_CONCESSIVE = tuple(_words("questions.zh.concessive"))
_EN_OPENERS = frozenset(_words("questions.en.discourse_openers"))
_ZH_OPENERS = tuple(sorted(_words("questions.zh.discourse_openers"), key=len, reverse=True))
_QUESTION_PREFIXES = _words("qa_prefixes.question")
_ANSWER_PREFIXES = _words("qa_prefixes.answer")
_TITLE_SEPARATORS = _words("title_separators")

_QUESTION_MARKS = ("?", "？")
# A text ending in one of these is a statement or an exclamation, whatever its
# first word is ("How it works is simple.").
_STATEMENT_ENDS = tuple(".。!！…;；")

_EN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def normalize_for_compare(text: str) -> str:
    """Lower-cased letters and digits only, so "Why is it?" and "why is it" compare equal."""
    return alphanumeric_only(text.lower())


def has_question_mark(text: str) -> bool:
    """Whether `text` holds a "?" or "？": a cheap test before splitting it into sentences, since
    no sentence of a text without one can end as a question."""
    return "?" in text or "？" in text


def ends_with_question_mark(text: str) -> bool:
    return text.strip().rstrip(CLOSERS).rstrip().endswith(_QUESTION_MARKS)


def is_question(text: str, lang: str) -> bool:
    """True when `text` (a heading, title or sentence) asks something.

    A trailing "?"/"？" always counts. Without one, English needs an
    interrogative start (see `questions.en` in templates/mining.yaml) and
    Chinese an interrogative word or a final 吗/呢; text ending in "." / "。" /
    "!" is never a question. Pages of unknown language get the Chinese rules
    when the text is CJK and the English rules otherwise.
    """
    text = text.strip().rstrip(CLOSERS).strip()
    if not text:
        return False
    if text.endswith(_QUESTION_MARKS):
        return True
    if text.endswith(_STATEMENT_ENDS):
        return False
    family = rules_family(lang)
    if family == "zh" or (not family and not lang and contains_han(text)):
        return _is_zh_question_form(text)
    if family == "en" or not lang:
        return _is_en_question_form(text)
    return False


_ZH_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (kind, tuple(words)) for kind, words in load_yaml("mining.yaml", "questions.zh.kinds").items())


def question_kind(text: str, lang: str = "") -> str:
    """What a question asks for: why, how, what, when, where, who, which, quantity
    ("how many", 多少), yes_no ("Is it…?", 吗), or other.

    English reads the first interrogative among the first three words (after a
    discourse opener: "So, why…"); Chinese the first of templates/mining.yaml's
    `questions.zh.kinds` found anywhere. The synthesis stage uses it as the task
    type of a model-written question, so a chart of task types says what was asked.
    """
    text = strip_discourse_opener(strip_qa_prefix(text.strip()))
    if family_of_text(text, lang) == "zh":
        return next((kind for kind, words in _ZH_KINDS if any(w in text for w in words)), "other")
    words = _EN_WORD.findall(text.lower().replace("’", "'"))[:3]
    for i, word in enumerate(words):
        word = word.removesuffix("'s")
        if word in _WH_WORDS:
            follows = words[i + 1] if i + 1 < len(words) else ""
            if word == "how" and follows in _HOW_QUANTITIES:
                return "quantity"
            return {"whom": "who", "whose": "who"}.get(word, word)
    return "yes_no" if words and words[0] in _AUXILIARIES else "other"


def is_interrogative_form(text: str, lang: str) -> bool:
    """Question by its words alone, whatever its final punctuation.

    Lets a miner tell "Why does ice float?" (a real question) from "You did
    what?" (an echo) when both end in "?".
    """
    text = text.strip().rstrip(CLOSERS).rstrip("?？").strip()
    if not rules_family(lang) and lang:
        return False
    family = family_of_text(text, lang)
    return _is_zh_question_form(text) if family == "zh" else _is_en_question_form(text)


def strip_discourse_opener(text: str) -> str:
    """Drop a leading "So" / "But" / "那么，": "So why does it …?" → "Why does it …?".

    The opener ties a sentence to the one before it; an instruction stands
    alone. Chinese openers need a comma after them ("那么，"), so "那些" stays.
    """
    text = text.strip()
    for opener in _ZH_OPENERS:
        if text.startswith(opener) and text[len(opener) : len(opener) + 1] in ("，", ","):
            return text[len(opener) + 1 :].strip()
    first, _, rest = text.partition(" ")
    if rest and first.rstrip(",").lower() in _EN_OPENERS and rest[:1].isalpha():
        return rest[0].upper() + rest[1:]
    return text


def _is_en_question_form(text: str) -> bool:
    words = _EN_WORD.findall(text.lower().replace("’", "'"))
    if len(words) < 2:
        return False
    first, second = words[0], words[1]
    if first.endswith("'s") and first[:-2] in _WH_WORDS:  # "What's the difference"
        return True
    if first in _WH_WORDS:
        return second in _AUXILIARIES or second == "to" or (first == "how" and second in _HOW_QUANTITIES)
    return first in _AUXILIARIES and second in _SUBJECTS


def _is_zh_question_form(text: str) -> bool:
    if text.endswith(_ZH_FINAL_PARTICLES):
        return True
    if any(word in text for word in _ZH_CONCESSIVE):
        return False
    for phrase in _ZH_NOT_INTERROGATIVE:
        text = text.replace(phrase, "")
    return any(word in text for word in _ZH_INTERROGATIVES)


# "1.", "2)", "(3)", "[4]", "10、", "一、", "（二）", "#5": list numbering that
# FAQ pages put before questions. Up to three digits, so "2019: …" is a year.
_NUMBERING = re.compile(
    r"^\s*(?:[(（\[]?\d{1,3}[)）\]]|\d{1,3}[.．、:：](?!\d)|#\d{1,3}[.:)]?"
    r"|[一二三四五六七八九十]{1,3}[、.．]|[(（][一二三四五六七八九十]{1,3}[)）])\s*"
)


def _prefix_pattern(words: Iterable[str], *, allow_dot: bool) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    # "Q:", "Q1：", "Question 2:", "[Q]", "【问】"; "Q." / "Q1." only with
    # allow_dot, since "A." starts ordinary sentences and lettered options.
    colon = r"\s*\d{0,3}\s*[:：]\s*"
    bracketed = r"[\[【]\s*(?:" + alternatives + r")\s*\d{0,3}\s*[\]】]\s*[:：]?\s*"
    dotted = r"\s*\d{0,3}[.．)]\s+" if allow_dot else None
    forms = [r"(?:" + alternatives + r")" + colon, bracketed]
    if dotted:
        forms.append(r"(?:" + alternatives + r")" + dotted)
    return re.compile(r"^\s*(?:" + "|".join(forms) + r")", re.IGNORECASE)


_QUESTION_PREFIX = _prefix_pattern(_QUESTION_PREFIXES, allow_dot=True)
_ANSWER_PREFIX = _prefix_pattern(_ANSWER_PREFIXES, allow_dot=False)
# An answer marker inside a paragraph: after sentence-ending punctuation or a
# line break, so "Plan A: …" is not one.
_INLINE_ANSWER_MARKER = re.compile(
    r"(?:(?<=[?？.。!！])\s*|\n\s*)(?=(?:"
    + "|".join(re.escape(w) for w in sorted(_ANSWER_PREFIXES, key=len, reverse=True))
    + r")\s*\d{0,3}\s*[:：])",
    re.IGNORECASE,
)


def strip_numbering(text: str) -> str:
    match = _NUMBERING.match(text)
    return (text[match.end() :] if match else text).strip()


# Every miner asks this of the same blocks (about 200 calls a page, 60 distinct texts).
@functools.lru_cache(maxsize=4096)
def split_qa_prefix(text: str) -> tuple[str, str]:
    """("question" | "answer" | "", rest): which Q/A marker `text` starts with, and the text after it.

    Numbering before the marker ("3. Q: …") is dropped too.
    """
    unnumbered = strip_numbering(text)
    for role, pattern in (("question", _QUESTION_PREFIX), ("answer", _ANSWER_PREFIX)):
        match = pattern.match(unnumbered)
        if match and unnumbered[match.end() :].strip():
            return role, unnumbered[match.end() :].strip()
    return "", text.strip()


def strip_qa_prefix(text: str) -> str:
    """`text` without list numbering and a leading "Q:"/"A:"/"问："-style marker."""
    role, rest = split_qa_prefix(text)
    return rest if role else strip_numbering(text)


def find_answer_marker(text: str) -> int:
    """Index in `text` where an inline answer marker ("A:", "答：") starts, or -1.

    For one-paragraph pairs such as "Q: Is it free? A: Yes." The marker must
    follow sentence-ending punctuation or a line break, so "Plan A: …" is not one.
    """
    match = _INLINE_ANSWER_MARKER.search(text)
    return match.end() if match else -1


# Placeholders of templates/mining.yaml phrases; see the file's header.
_PLACEHOLDERS = {
    "{n}": r"(?P<n>\d[\d,.]*\s*[kKmMwW万千]?\+?|[一二三四五六七八九十百两]+)",
    "{any}": r"(?P<any>.*)",
    "{task}": r"(?P<task>.+?)",
    # "2025-02-17 21:04", "2019年9月9日", "Jul 9, 2024", "9 July 2024"
    "{date}": r"(?:\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?|[A-Za-z]{3,9}\.?\s\d{1,2},?\s\d{4}"
    r"|\d{1,2}\s[A-Za-z]{3,9}\.?\s\d{4})(?:,?\s*(?:at\s)?\d{1,2}:\d{2}(?::\d{2})?)?",
}
_PLACEHOLDER_SPLIT = re.compile("(" + "|".join(re.escape(p) for p in _PLACEHOLDERS) + ")")


def compile_phrase(phrase: str, *, prefix: bool = False) -> re.Pattern[str]:
    """Regex for a templates/mining.yaml phrase such as "{n} Answers" or "How to {task}".

    Case-insensitive; a space in the phrase matches any run of spaces or none
    ("{n} 个回答" matches "3个回答"). The whole text must match, or with
    `prefix` its start up to a non-alphanumeric character ("Step 2: …").
    """
    parts = []
    for piece in _PLACEHOLDER_SPLIT.split(phrase.strip()):
        if piece in _PLACEHOLDERS:
            parts.append(_PLACEHOLDERS[piece])
        else:
            parts.append(r"\s*".join(re.escape(word) for word in piece.split(" ")))
    ending = r"(?![0-9A-Za-z])" if prefix else r"\s*[:：]?\s*$"
    return re.compile(r"^\s*" + "".join(parts) + ending, re.IGNORECASE)


def matches_any(patterns: Iterable[re.Pattern[str]], text: str) -> bool:
    return any(pattern.match(text) for pattern in patterns)


# "Title - Section - Site" has two; a third segment is usually part of the title.
_MAX_SUFFIX_SEGMENTS = 2
# Site names are short: "Stack Overflow", "Mathematics Stack Exchange", "CSDN博客", "百度知道".
_MAX_SITE_NAME_WORDS = 5
_MAX_SITE_NAME_CHARS = 40
_MAX_SITE_NAME_CHARS_CJK = 12
# 知乎 prefixes titles with unread counts: "(3 封私信 / 80 条消息) …".
_MESSAGE_COUNTER = re.compile(r"^[(（][^()（）]*\d[^()（）]*[)）]\s*")


def strip_site_suffix(title: str) -> str:
    """`title` without a trailing site name ("… - Stack Overflow", "… | 知乎", "…_百度知道").

    Drops up to two trailing segments after a separator listed in
    `title_separators` (templates/mining.yaml) when the segment is short (≤ 5
    words, or ≤ 12 CJK characters), is not itself a question, and is shorter
    than what stays, unless what stays already ends in "?". "_" counts only
    before CJK text. A leading message counter "(3 条消息) " is dropped too.
    """
    text = _MESSAGE_COUNTER.sub("", title.strip())
    for _ in range(_MAX_SUFFIX_SEGMENTS):
        cut = max(((text.rfind(sep), sep) for sep in _TITLE_SEPARATORS), key=lambda found: found[0])
        index, sep = cut
        if index <= 0:
            break
        head, tail = text[:index].strip(), text[index + len(sep) :].strip()
        if not head or not _looks_like_site_name(tail, sep):
            break
        if len(head) <= len(tail) and not ends_with_question_mark(head):
            break
        text = head
    return text


def _looks_like_site_name(segment: str, separator: str) -> bool:
    if not segment or ends_with_question_mark(segment):
        return False
    # Dense scripts (rule 2 of transforms/text.py) are measured in characters.
    if separator.strip() == "_":
        return contains_cjk(segment) and len(segment) <= _MAX_SITE_NAME_CHARS_CJK
    if contains_cjk(segment):
        return len(segment) <= _MAX_SITE_NAME_CHARS_CJK
    return len(segment.split()) <= _MAX_SITE_NAME_WORDS and len(segment) <= _MAX_SITE_NAME_CHARS
