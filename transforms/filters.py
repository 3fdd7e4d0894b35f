"""Quality filters over a mined pair: each check keeps (None) or names a drop reason.

Reasons are data, as in datatrove: a check returns a short string such as
"output_too_short", and the job counts it as `drop:<reason>`, so every dropped
pair is explained without extra code. `reject_reason` runs the checks in a
fixed order (cheapest first) and returns the first reason, or None to keep.

Every check has the same signature, `(instruction, input_, output, lang, cfg)`;
the language-agreement check needs fastText predictions for the instruction
and the output, which the job computes in batches (`LanguageIdentifier
.identify_many`) and passes in, so this module stays model-free and pure.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from templates import load_yaml
from transforms.questions import has_question_mark
from transforms.text import (
    alphanumeric_only,
    contains_han,
    count_chars_and_words,
    has_words,
    is_cjk_dominant,
    language_script,
    same_language,
    split_sentences,
)

# Drop reasons, in the order `reject_reason` can emit them; the job may use this
# list to report zero counts too.
REASONS = (
    "empty",
    "instruction_too_short",
    "instruction_too_long",
    "input_too_long",
    "output_too_short",
    "output_too_long",
    "output_too_many_lines",
    "output_repeats_instruction",
    "answer_is_question",
    "boilerplate",
    "link_list",
    "bad_words",
    "harmful",
    "lang_mismatch",
)

# importlib.resources, not __file__: on a Spark cluster this package is imported
# from a shipped zip, where a Path next to the module does not exist.
WORDLIST_DIR = resources.files("templates") / "wordlists"
# Boilerplate phrases and menu words (templates/filters.yaml).
FILTER_PHRASES = "filters.yaml"


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """Thresholds for every check; defaults suit FAQ/QA/how-to pairs in en and zh.

    Length bounds come in characters for every text, plus a lower character
    bound for CJK-dominant text (a Chinese character carries roughly a word:
    "什么是光合作用？" is a full question in 8 characters) and a word bound for
    space-separated text (a 40-character URL is one "word", not an answer).
    """

    # WebFAQ (padas-lab-de/webfaq, cli/extract.py) keeps questions >= 10 chars
    # and answers >= 30 chars; we keep 10 for instructions and relax answers
    # to 20 because our miners also emit short how-to steps.
    instruction_min_chars: int = 10
    instruction_max_chars: int = 1000
    output_min_chars: int = 20
    output_max_chars: int = 5000
    input_max_chars: int = 5000
    # CJK-dominant text: about half the Latin bound.
    instruction_min_chars_cjk: int = 5
    output_min_chars_cjk: int = 10
    # Space-separated text: "Define entropy." is the shortest useful instruction.
    instruction_min_words: int = 2
    output_min_words: int = 4
    # WebFAQ drops answers with >= 10 newlines; recipes and how-to lists need
    # more, and nav-like lists are caught by `check_link_list` instead.
    output_max_newlines: int = 40
    # A share of CJK characters among non-space characters at or above this
    # makes a text CJK-dominant (also implied by a zh/ja/ko `lang`).
    cjk_share: float = 0.3
    # answer_is_question: a question-mark ending rejects only answers this
    # short (WebFAQ rejects any "?" in the answer, which would drop
    # "Why? Because ..." explanations); longer answers are rejected when more
    # than `question_sentence_share` of at least two sentences are questions.
    question_answer_max_chars: int = 200
    question_sentence_share: float = 0.5
    # link_list: at least this many lines, this share of them short (<= 3
    # words or <= 6 CJK characters, no digits, no sentence-final punctuation).
    link_list_min_lines: int = 6
    link_list_short_share: float = 0.8
    # lang_mismatch: fastText (lid.176) is unreliable on short text. On the
    # Alpaca and BELLE seed tasks its wrong calls on same-language pairs scored
    # 0.55-0.78 ("Instability : Turmoil :: Change : Revolution" fr 0.58, a
    # budget list fr 0.59, SQL en 0.57), while real cross-language answers
    # score above 0.9 on both sides; disagreement counts only from here up.
    lang_min_confidence: float = 0.8
    # ... and between two languages of one script only from here up: recipe
    # FAQs gave "Can I reheat sautéed broccoli?" fr 0.86, an all-caps English
    # heading pt 0.93.
    lang_min_confidence_same_script: float = 0.95
    # Directory holding bad_words_<lang>.txt; None means the packaged lists.
    wordlist_dir: str | None = None

    def __post_init__(self) -> None:
        for lo, hi in (
            ("instruction_min_chars", "instruction_max_chars"),
            ("output_min_chars", "output_max_chars"),
            ("instruction_min_chars_cjk", "instruction_max_chars"),
            ("output_min_chars_cjk", "output_max_chars"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(
                    f"filters: {lo} ({getattr(self, lo)}) must not exceed {hi} ({getattr(self, hi)})"
                )
        for name in (
            "cjk_share",
            "question_sentence_share",
            "link_list_short_share",
            "lang_min_confidence",
            "lang_min_confidence_same_script",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"filters: {name} must be in [0, 1], got {value}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> FilterConfig:
        """Build from a config section (YAML); an unknown key is an error naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"filters: unknown key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)


DEFAULT_FILTER_CONFIG = FilterConfig()

# --- text measures -----------------------------------------------------------

# Length bounds are rule 2 of transforms/text.py (a CJK character, Hangul
# included, carries much more than a Latin letter); word counts are rule 3
# (each Han/kana character one word, other text split at spaces).


# --- checks --------------------------------------------------------------------


def _length_reason(text: str, field: str, lang: str, cfg: FilterConfig) -> str | None:
    n = len(text)
    max_chars = {"instruction": cfg.instruction_max_chars, "output": cfg.output_max_chars}[field]
    if n > max_chars:
        return f"{field}_too_long"
    cjk_text = is_cjk_dominant(text, lang, cfg.cjk_share)
    if cjk_text:
        min_chars = cfg.instruction_min_chars_cjk if field == "instruction" else cfg.output_min_chars_cjk
        if n < min_chars:
            return f"{field}_too_short"
        return None
    min_chars = cfg.instruction_min_chars if field == "instruction" else cfg.output_min_chars
    min_words = cfg.instruction_min_words if field == "instruction" else cfg.output_min_words
    if n < min_chars:
        return f"{field}_too_short"
    if not has_words(text, min_words):
        return f"{field}_too_short"
    return None


def check_lengths(instruction: str, input_: str, output: str, lang: str, cfg: FilterConfig) -> str | None:
    """Character bounds for all texts, CJK-aware lower bounds, word bounds, output line cap."""
    instruction, output = instruction.strip(), output.strip()
    if not instruction or not output:
        return "empty"
    reason = _length_reason(instruction, "instruction", lang, cfg)
    if reason:
        return reason
    if len(input_) > cfg.input_max_chars:
        return "input_too_long"
    reason = _length_reason(output, "output", lang, cfg)
    if reason:
        return reason
    if output.count("\n") > cfg.output_max_newlines:
        return "output_too_many_lines"
    return None


def check_output_repeats_instruction(
    instruction: str, input_: str, output: str, lang: str, cfg: FilterConfig
) -> str | None:
    """An answer that only restates the question, or most of it (a heading mined as its own body).

    A short answer quoted from a long instruction ("extract the idiom from this
    passage: ...") is an ordinary extraction answer, so the answer must cover
    at least half of the instruction.
    """
    q = alphanumeric_only(instruction).casefold()
    # Case folding never shortens a text, so an output whose first characters already hold
    # more letters and digits than q cannot lie inside q; most outputs are decided on a prefix.
    if len(alphanumeric_only(output[: 2 * len(instruction) + 16])) > len(q):
        return None
    a = alphanumeric_only(output).casefold()
    if a and a in q and 2 * len(a) >= len(q):
        return "output_repeats_instruction"
    return None


_QUESTION_END = re.compile(r"[?？][\"'”’)）」』]*$")
# "Write three quiz questions about ...", "设计一份问卷": a verb asking for
# questions, not a heading such as "Frequently asked questions".
_ASKS_FOR_QUESTIONS = re.compile(
    r"\b(?:write|create|generate|give|list|suggest|make|come up with|prepare|draft|design)\b"
    r".{0,40}?\b(?:questions?|quiz(?:zes)?|riddles?|questionnaires?)\b"
    r"|(?:写|设计|出|列出|创建|生成|提出|准备|编)[^。？?]{0,15}?(?:问题|问卷|谜语|考题|试题)",
    re.IGNORECASE,
)
# Instructions that ask for a list of short items ("Name five ...", "有哪些付款方式？").
_ASKS_FOR_LIST = re.compile(
    r"\b(?:list|lists|examples?|names?|types|kinds|which|options)\b|列出|列举|清单|哪些|有什么|名单|例子",
    re.IGNORECASE,
)


def check_answer_is_question(
    instruction: str, input_: str, output: str, lang: str, cfg: FilterConfig
) -> str | None:
    """The "answer" is itself a question: a short one, or mostly question sentences.

    Typical sources: a follow-up question mined as the answer to the previous
    FAQ item, or a list of "People also ask" questions under a heading. An
    instruction that asks for questions ("Write three quiz questions about
    ...", "设计一份问卷") expects them, so it is exempt.
    """
    if _ASKS_FOR_QUESTIONS.search(instruction) and not _QUESTION_END.search(instruction.strip()):
        return None
    text = output.strip()
    if _QUESTION_END.search(text) and len(text) <= cfg.question_answer_max_chars:
        return "answer_is_question"
    if not has_question_mark(text):
        return None
    sentences = split_sentences(text)
    if len(sentences) >= 2:
        questions = sum(1 for s in sentences if _QUESTION_END.search(s.strip()))
        if questions > cfg.question_sentence_share * len(sentences):
            return "answer_is_question"
    return None


# Phrases that mark page furniture wherever they occur, each with a literal
# anchor that every match contains (a substring test skips the regex for almost
# every text): templates/filters.yaml, which says why each is safe.
_BOILERPLATE_PHRASES: tuple[tuple[str, str], ...] = tuple(
    (anchor, pattern) for anchor, pattern in load_yaml(FILTER_PHRASES, "boilerplate_phrases")
)
_BOILERPLATE = tuple((anchor, re.compile(pattern)) for anchor, pattern in _BOILERPLATE_PHRASES)


def boilerplate_phrase(text: str) -> str | None:
    """The first page-furniture phrase found in `text`, or None."""
    lowered = text.lower()
    for anchor, pattern in _BOILERPLATE:
        if anchor in lowered:
            match = pattern.search(lowered)
            if match:
                return match.group(0)
    return None


# Words that mark a menu or link bar when they stand alone as a line or between
# separators ("登录 | 注册", "Home › Products › FAQ"): templates/filters.yaml.
_NAV_SEGMENTS = frozenset(load_yaml(FILTER_PHRASES, "nav_segments"))
# Separators of menus and breadcrumbs. "/" and ">" count only between spaces,
# so paths ("/home/user") and comparisons ("a>b") are not split. Every separator starts
# with a space or a bar; the lookahead says so, and re then skips the other positions
# without trying each branch there (half the time of the bare alternation).
_NAV_SPLIT = re.compile(r"(?=[\s|·•»›])(?:\n|\s*[|·•»›]\s*|\s+[/>]\s+|\s{3,})")
_NAV_STRIP = " \t-–—:：,，.。!！*#[]()（）【】<>«»"


def check_boilerplate(instruction: str, input_: str, output: str, lang: str, cfg: FilterConfig) -> str | None:
    """Cookie notices, copyright lines, "click here", "上一篇/下一篇", menu bars."""
    for text in (instruction, input_, output):
        if not text:
            continue
        if boilerplate_phrase(text):
            return "boilerplate"
        for segment in _NAV_SPLIT.split(text):
            if segment.strip(_NAV_STRIP).casefold() in _NAV_SEGMENTS:
                return "boilerplate"
    return None


_SENTENCE_FINAL = tuple(".!?。！？:：;；")
_HAS_DIGIT = re.compile(r"\d")


def check_link_list(instruction: str, input_: str, output: str, lang: str, cfg: FilterConfig) -> str | None:
    """Outputs that are a column of link labels ("Kitchen / Bathroom / Garden / …").

    Menus with the usual words ("Home", "登录") already fail `check_boilerplate`;
    this catches the rest by shape. Lines with digits do not count as short,
    so ingredient lists ("2 eggs", "200 g flour") mostly survive, and an
    instruction that asks for a list ("Name some Italian dishes", "有哪些
    付款方式？") is exempt, since a column of short names is then the answer.
    """
    if _ASKS_FOR_LIST.search(instruction):
        return None
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if len(lines) < cfg.link_list_min_lines:
        return None
    short = 0
    for line in lines:
        if line.endswith(_SENTENCE_FINAL) or _HAS_DIGIT.search(line):
            continue
        chars, words = count_chars_and_words(line)
        if (chars <= 6 and words == 0) or (chars == 0 and words <= 3):
            short += 1
    if short >= cfg.link_list_short_share * len(lines):
        return "link_list"
    return None


def _read_terms(path: Path | Traversable) -> list[str]:
    if not path.is_file():
        return []
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            terms.append(line)
    return terms


@functools.lru_cache(maxsize=4)
def _bad_word_terms(wordlist_dir: str | None) -> tuple[list[str], list[str]]:
    """(English terms, Chinese terms), casefolded, whitespace runs made one space."""
    base = Path(wordlist_dir) if wordlist_dir else WORDLIST_DIR
    en_terms = sorted({" ".join(t.casefold().split()) for t in _read_terms(base / "bad_words_en.txt")})
    zh_terms = sorted({t.casefold() for t in _read_terms(base / "bad_words_zh.txt")})
    if not en_terms and not zh_terms:
        raise FileNotFoundError(
            f"filters: no bad-word lists found in {base} (expected bad_words_en.txt / bad_words_zh.txt); "
            "set wordlist_dir to a folder holding them"
        )
    return en_terms, zh_terms


@functools.lru_cache(maxsize=4)
def bad_word_patterns(wordlist_dir: str | None = None) -> tuple[re.Pattern | None, re.Pattern | None]:
    """(English word-boundary pattern, Chinese substring pattern), compiled once per process.

    English terms match case-insensitively on word boundaries with an optional
    plural; Chinese has no word boundaries, so its terms match as substrings.
    """
    en_terms, zh_terms = _bad_word_terms(wordlist_dir)
    en = _term_pattern(en_terms, bounded=True) if en_terms else None
    zh = re.compile(_trie_pattern(zh_terms), re.IGNORECASE) if zh_terms else None
    return en, zh


# Characters after which lower-casing a text no longer preserves what a case-insensitive
# pattern of ASCII terms finds in it: re matches "i" to "ı" and "İ", "s" to "ſ" and "k" to the
# Kelvin sign, and "İ".lower() is two characters. tests/test_filters.py derives this set from
# re and str over all of Unicode.
_LOWERING_UNSAFE = re.compile("[\u0130\u0131\u017f\u212a]")


@dataclass(frozen=True, slots=True)
class TermSearch:
    """A term list's pattern, with the shortcuts that reach its verdict sooner on most texts.

    Searching every text with the case-insensitive pattern was a sixth of the filters' time.
    Two shortcuts give the same verdict, and each applies only where that holds:
    - `han`: a class of Han characters, one of which every match must hold (each term's first
      Han character; Han has no case, so a case-insensitive match holds it literally). A text
      without one cannot match: English text skips the Chinese list. None when some term has
      no Han character.
    - `lowered`: the pattern without IGNORECASE, for the lower-cased text. Used when every term
      is ASCII and the text holds no `_LOWERING_UNSAFE` character: then lower-casing maps each
      character to one character, with the same word and space classes, and it matches an
      ASCII term's letter exactly when ignoring case does.
    """

    pattern: re.Pattern
    han: re.Pattern | None
    lowered: re.Pattern | None

    @classmethod
    def of(cls, pattern: re.Pattern, terms: list[str]) -> TermSearch:
        first_han = [next((ch for ch in term if contains_han(ch)), None) for term in terms]
        han = None if None in first_han else re.compile("[" + re.escape("".join(sorted(set(first_han)))) + "]")
        lowered = None
        if pattern.flags & re.IGNORECASE and all(term.isascii() for term in terms):
            lowered = re.compile(pattern.pattern, pattern.flags & ~re.IGNORECASE)
        return cls(pattern, han, lowered)

    def search(self, text: str) -> bool:
        if self.han is not None and self.han.search(text) is None:
            return False
        if self.lowered is not None and (text.isascii() or _LOWERING_UNSAFE.search(text) is None):
            return self.lowered.search(text.lower()) is not None
        return self.pattern.search(text) is not None


@functools.lru_cache(maxsize=4)
def bad_word_searches(wordlist_dir: str | None = None) -> tuple[TermSearch, ...]:
    """`bad_word_patterns` as TermSearches (the lists that are not empty)."""
    en_terms, zh_terms = _bad_word_terms(wordlist_dir)
    en, zh = bad_word_patterns(wordlist_dir)
    return tuple(TermSearch.of(pattern, terms) for pattern, terms in ((en, en_terms), (zh, zh_terms)) if terms)


def _trie_pattern(terms: list[str]) -> str:
    """One regex matching any of `terms`, factored by shared prefixes: "c(?:um(?:shot|slut)|unt)".

    Python's re tries every branch of a flat alternation at every position;
    the factored form makes the 100-term English list about 4x faster. A space
    in a term matches any run of whitespace; longer terms win, as in a flat
    alternation sorted longest first.
    """
    trie: dict = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        end = "" in node
        branches = [
            (r"\s+" if ch == " " else re.escape(ch)) + build(child)
            for ch, child in sorted(node.items())
            if ch
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and not end else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if end else body

    return "(?:" + build(trie) + ")"


def find_bad_words(text: str, wordlist_dir: str | None = None) -> list[str]:
    """Every listed term found in `text` (for debugging and reports)."""
    en, zh = bad_word_patterns(wordlist_dir)
    found = [m.group(0) for m in en.finditer(text)] if en is not None else []
    if zh is not None:
        found += [m.group(0) for m in zh.finditer(text)]
    return found


def check_bad_words(instruction: str, input_: str, output: str, lang: str, cfg: FilterConfig) -> str | None:
    """Slurs, explicit sexual terms, weapon/drug-synthesis cues (both lists, any language)."""
    searches = bad_word_searches(cfg.wordlist_dir)
    for text in (instruction, input_, output):
        if text and any(search.search(text) for search in searches):
            return "bad_words"
    return None


def _read_rules(path: Path | Traversable) -> list[tuple[list[str], list[str]]]:
    rules = []
    for line in _read_terms(path):
        subjects, sep, cues = line.partition(";")
        if not sep:
            raise ValueError(f"{path}: rule {line!r} needs the form 'subject|subject ; cue|cue'")
        rules.append(
            (
                [" ".join(t.casefold().split()) for t in subjects.split("|") if t.strip()],
                [" ".join(t.casefold().split()) for t in cues.split("|") if t.strip()],
            )
        )
    return rules


@functools.lru_cache(maxsize=4)
def harmful_rule_patterns(
    wordlist_dir: str | None = None,
) -> tuple[list[tuple[re.Pattern, re.Pattern]], list[TermSearch]]:
    """(subject pattern, cue pattern) per rule of harmful_rules_{en,zh}.txt, and searches for
    any rule's cue (one English, one Chinese), compiled once per process: a pair in which no cue
    occurs, almost every pair, costs two searches instead of two per rule."""
    base = Path(wordlist_dir) if wordlist_dir else WORDLIST_DIR
    compiled, any_cue = [], []
    for name, bounded in (("harmful_rules_en.txt", True), ("harmful_rules_zh.txt", False)):
        rules = _read_rules(base / name)
        cues = sorted({cue for _, rule_cues in rules for cue in rule_cues})
        for subjects, rule_cues in rules:
            compiled.append((_term_pattern(subjects, bounded), _term_pattern(rule_cues, bounded)))
        if cues:
            any_cue.append(TermSearch.of(_term_pattern(cues, bounded), cues))
    return compiled, any_cue


def _term_pattern(terms: list[str], bounded: bool) -> re.Pattern:
    """English terms on word boundaries, any case, with an optional plural; Chinese ones as substrings."""
    if bounded:
        return re.compile(r"\b" + _trie_pattern(terms) + r"(?:s|es)?\b", re.IGNORECASE)
    return re.compile(_trie_pattern(terms))


def check_harmful(instruction: str, input_: str, output: str, lang: str, cfg: FilterConfig) -> str | None:
    """A subject and a cue of one harmful rule anywhere in the pair ("pills" + "no prescription needed").

    The rules (wordlists/harmful_rules_*.txt) cover selling prescription
    drugs without a prescription, encouraging overdose, smuggling drugs past
    customs, and selling sedatives for drugging someone.
    """
    text = f"{instruction}\n{input_}\n{output}"
    rules, any_cue = harmful_rule_patterns(cfg.wordlist_dir)
    if not any(search.search(text) for search in any_cue):
        return None
    for subject, cue in rules:
        if cue.search(text) and subject.search(text):
            return "harmful"
    return None


# --- language agreement ---------------------------------------------------------
# Which labels name one language (`same_language`) and which script each is
# written in (`language_script`) are text facts: transforms/text.py.


def lang_agreement(
    instruction_lang: str,
    instruction_score: float,
    output_lang: str,
    output_score: float,
    min_confidence: float = DEFAULT_FILTER_CONFIG.lang_min_confidence,
    same_script_min_confidence: float = DEFAULT_FILTER_CONFIG.lang_min_confidence_same_script,
) -> str | None:
    """None when question and answer may be in the same language, else "lang_mismatch".

    Rule: they disagree only when the two labels name different languages
    (sibling codes such as zh/wuu/yue folded together) and both predictions
    are confident: >= `min_confidence` when the languages use different
    scripts (en vs zh), >= `same_script_min_confidence` when they share one
    (en vs fr). fastText on a short question is often unsure and sometimes
    confidently wrong between languages of one script ("Can I reheat sautéed
    broccoli?" is fr at 0.86), while a script change is hard to get wrong.
    Anything less abstains, as does a blank text (label ""): dropping good
    pairs on weak evidence costs more than keeping a rare mixed pair.
    """
    if not instruction_lang or not output_lang or same_language(instruction_lang, output_lang):
        return None
    if language_script(instruction_lang) == language_script(output_lang):
        min_confidence = max(min_confidence, same_script_min_confidence)
    if instruction_score < min_confidence or output_score < min_confidence:
        return None
    return "lang_mismatch"


def check_lang_agreement(
    instruction_lang: tuple[str, float], output_lang: tuple[str, float], cfg: FilterConfig
) -> str | None:
    """`lang_agreement` on `(label, probability)` predictions from langid, with cfg's thresholds."""
    return lang_agreement(
        *instruction_lang,
        *output_lang,
        min_confidence=cfg.lang_min_confidence,
        same_script_min_confidence=cfg.lang_min_confidence_same_script,
    )


# --- the pipeline ----------------------------------------------------------------

PairCheck = Callable[[str, str, str, str, FilterConfig], "str | None"]

# Cheapest first; the first reason wins, so each dropped pair is counted once.
PAIR_CHECKS: tuple[PairCheck, ...] = (
    check_lengths,
    check_output_repeats_instruction,
    check_answer_is_question,
    check_boilerplate,
    check_link_list,
    check_bad_words,
    check_harmful,
)


def reject_reason(
    instruction: str,
    input_: str,
    output: str,
    lang: str = "",
    cfg: FilterConfig = DEFAULT_FILTER_CONFIG,
    *,
    instruction_lang: tuple[str, float] | None = None,
    output_lang: tuple[str, float] | None = None,
) -> str | None:
    """First drop reason for a pair, or None to keep it.

    `lang` is the pair's language (a CJK code relaxes the length bounds);
    `instruction_lang` / `output_lang` are langid predictions, and when both
    are given the pair must pass `lang_agreement` as well.
    """
    for check in PAIR_CHECKS:
        reason = check(instruction, input_, output, lang, cfg)
        if reason:
            return reason
    if instruction_lang is not None and output_lang is not None:
        return check_lang_agreement(instruction_lang, output_lang, cfg)
    return None
