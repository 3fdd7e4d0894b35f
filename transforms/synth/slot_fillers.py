"""Slot values from a document's own text, and instruction templates filled with them.

An instruction about the page's own content ("What is photosynthesis?"
under a page that defines photosynthesis) can be answered from that page,
by a model given the passage or extractively (transforms/synth/extractive_answers.py);
so slot values come from the document, not from a generic list. Each value
keeps the sentence it came from, which becomes the instruction's grounding.

Everything here is regular expressions plus small word lists over en and zh
text: no model, no download, a few milliseconds per page. The cues are
deliberately conservative (a definition needs "X is a/an/the …" or "X是指…",
a person a title or a person verb, a Chinese place a 省/市/国 suffix), because
a wrong slot value makes a wrong instruction while a missed one only makes
one instruction fewer. Other languages get passages and sentences only.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from templates import load_yaml
from transforms.questions import ends_with_question_mark
from transforms.synth.instruction_templates import (
    SLOT_TYPES,
    TEXT_SLOT_TYPES,
    InstructionTemplate,
    choose_templates,
    fill,
    stable_rank,
)
from transforms.text import HAN, contains_han, family_of_text, rules_family, split_sentences

# A page gives at most this many values of one slot type: enough choice for a
# handful of instructions, bounded work on a huge page.
MAX_VALUES_PER_TYPE = 40
# Default passage bounds in characters: a paragraph, not a heading or a page.
# Chinese packs about 2.5x the content per character.
PASSAGE_CHARS = {"en": (200, 1500), "zh": (80, 600)}
SENTENCE_CHARS = {"en": (40, 250), "zh": (12, 100)}
REVIEW_CHARS = {"en": (20, 300), "zh": (6, 90)}

ENTITY_KINDS = ("person", "place", "organization", "other")

# The word lists below (function words, titles, professions, org and place
# heads, countries, Chinese surnames and suffixes, sentiment cues) are data a
# user may extend: templates/slot_fillers.yaml.
WORD_LISTS = "slot_fillers.yaml"

# Languages a sentence may be translated into, for the `language` slot. A
# document is never asked to be translated into its own language.
TARGET_LANGUAGES = {
    "en": ("French", "Spanish", "German", "Chinese", "Japanese", "Italian", "Portuguese", "Russian",
           "Korean", "Arabic"),
    "zh": ("英语", "日语", "法语", "德语", "西班牙语", "韩语", "俄语"),
}  # fmt: skip


@dataclass(frozen=True)
class Definition:
    """`sentence` defines `term` as `definition` ("Photosynthesis" / "the process by which …")."""

    term: str
    definition: str
    sentence: str


@dataclass(frozen=True)
class Entity:
    """A named thing: `kind` is one of ENTITY_KINDS; `sentence` is where it was found."""

    name: str
    kind: str
    sentence: str


@dataclass(frozen=True)
class Category:
    """A class of things ("fruits", "水果") with the `examples` the text lists for it, if any."""

    name: str
    examples: tuple[str, ...]
    sentence: str


@dataclass(frozen=True)
class SlotValue:
    """A value for a slot, the sentence (or passage) it came from, and the cue that found it.

    `cue` says how: "definition" for a term some sentence defines (preferred
    where an answer must come from the text), "capitalised", "quoted",
    "title", "suffix", "examples", "target_language", ...
    """

    value: str
    source_sentence: str
    cue: str = ""


@dataclass(frozen=True)
class FilledInstruction:
    """One instruction made from a template and a document.

    `slots` maps slot names to the values filled in; `grounding` is the text
    of the document that can answer it (the definition sentence for "What is
    {concept}?", the passage for a summary, the sentences the values came
    from otherwise) or "" when there is none; `extractive_answer` is the
    template's method for answering without a model, "" for none.
    """

    template_id: str
    task_type: str
    lang: str
    instruction: str
    slots: dict[str, str] = field(hash=False)
    grounding: str
    extractive_answer: str = ""


def _words(key: str) -> frozenset[str]:
    """A word list of templates/slot_fillers.yaml (a whitespace-separated string), as a set."""
    value = load_yaml(WORD_LISTS, key)
    if not isinstance(value, str):
        raise ValueError(f"templates/{WORD_LISTS}: {key} must be a string of whitespace-separated words")  # noqa: TRY004
    return frozenset(value.split())


def _phrases(key: str) -> tuple[str, ...]:
    """A list of phrases (or regular expressions) of templates/slot_fillers.yaml, in order."""
    value = load_yaml(WORD_LISTS, key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"templates/{WORD_LISTS}: {key} must be a list of strings; quote no/yes/on/off")
    return tuple(value)


def _chars(key: str) -> str:
    """A string of single characters of templates/slot_fillers.yaml."""
    value = load_yaml(WORD_LISTS, key)
    if not isinstance(value, str):
        raise ValueError(f"templates/{WORD_LISTS}: {key} must be a string of characters")  # noqa: TRY004
    return value


def _sentences_of(text: str, lang: str) -> list[str]:
    return split_sentences(text, lang)


# One document is read by several extractors (slot_values calls them all);
# its sentences, definitions and entities are worked out once. Python caches
# a str's hash, so a hit costs an identity check, not a rehash.
@functools.lru_cache(maxsize=4)
def _document_sentences(text: str, family: str) -> tuple[str, ...]:
    return tuple(split_sentences(text, family))


# =========================================================================== English word lists

_EN_FUNCTION_WORDS = _words("en.function_words")
_EN_GENERIC_HEADS = _words("en.generic_heads")
_EN_RANKING_WORDS = _words("en.ranking_words")
_EN_DEFINITION_OPENERS_TO_REJECT = _phrases("en.definition_openers_to_reject")
_EN_TITLES = _words("en.titles")
_EN_PERSON_VERBS = re.compile(
    r"^(?:'s\s+|’s\s+)?,?\s*(?:said|says|wrote|writes|argued|argues|explained|founded|co-founded|invented|"
    r"discovered|painted|composed|married|died|was\s+born|is\s+born|who\s+(?:was|is|had|has|became|won|"
    r"wrote|founded|invented|discovered|led|served))\b"
)
_EN_PROFESSIONS = sorted(_words("en.professions"))
_EN_PROFESSION_AFTER = re.compile(
    r"^,\s+(?:a|an|the)\s+(?:[A-Za-z\-]+\s+){0,3}?(?:" + "|".join(_EN_PROFESSIONS) + r")s?\b"
)
_EN_PROFESSION_PREDICATE = re.compile(
    r"^\s+(?:was|is|became)\s+(?:a|an|the)\s+(?:[A-Za-z\-]+\s+){0,3}?(?:"
    + "|".join(_EN_PROFESSIONS)
    + r")s?\b"
)
_EN_PROFESSION_BEFORE = re.compile(r"\b(?:" + "|".join(_EN_PROFESSIONS) + r")\s+$")
_EN_BY_PERSON = re.compile(
    r"\b(?:written|painted|composed|invented|discovered|founded|directed|designed|developed|created|"
    r"proposed|described|coined|led)\s+by\s+$"
)
_EN_ORG_HEADS = _words("en.org_heads")
_EN_ORG_OPENERS = _words("en.org_openers")
_EN_PLACE_HEADS = _words("en.place_heads")
# "to" only after a word of motion: "wrote to John Judge" names no place.
_EN_PLACE_CUE = re.compile(
    r"\b(?:[Ii]n|[Aa]t|[Nn]ear|[Aa]cross|[Tt]hroughout|[Vv]isited|[Vv]isiting|[Vv]isit|[Aa]round|"
    r"[Oo]utside|[Ii]nside|(?:went|go|goes|going|travell?ed|travel|moved|move|flew|fly|returned|return|came|come|"
    r"trip|journey|road|route|migrated|emigrated|sailed|relocated|back)\s+to)\s+(?:the\s+)?$"
)
# Evidence that settles a place named once after "in": "in Halifax, Nova Scotia", "the city of Lyon".
_EN_PLACE_AFTER = re.compile(r"^,\s+[A-Z][a-z]+")
_EN_PLACE_BEFORE = re.compile(r"\b(?:city|town|village|capital|province|state|region|island|port)\s+of\s+$")
# Adjectives of nationality after "in"/"from" are not places ("from Swiss …" is a typo at best).
_EN_NATIONALITY = re.compile(r"(?:ish|ese|ian|ean|can|Swiss|Dutch|Thai)$")
_EN_NOT_NAMES = _words("en.not_names")
_EN_COUNTRIES = _words("en.countries_words") | frozenset(_phrases("en.countries_multiword"))

_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿā-ž"
_CAP_WORD = (
    rf"(?:(?:St|Mt|Ft)\.|[{_UPPER}][{_LOWER}]+(?:-[A-Za-z{_LOWER}]+|['’](?!s\b)[A-Za-z{_LOWER}]+)*"
    rf"|[A-Z]{{2,}}[a-z]?|[A-Z]\.)"
)
_CAP_SEQUENCE = re.compile(
    rf"(?<![\w'’\-]){_CAP_WORD}(?:\s+(?:(?:of|the|de|da|van|von|der|del|du|la|le)\s+)*{_CAP_WORD})*"
)
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*")


# =========================================================================== Chinese word lists

_ZH_CJK_RUN = rf"[{HAN}]"
_ZH_BOUNDARY_CHARS = frozenset(_chars("zh.boundary_chars"))
_ZH_BOUNDARY_WORDS = _phrases("zh.boundary_words")
_ZH_LAST_BOUNDARY = re.compile(
    ".*(?:" + "|".join(_ZH_BOUNDARY_WORDS) + "|[" + "".join(sorted(_ZH_BOUNDARY_CHARS)) + "])", re.DOTALL
)
_ZH_PRONOUN_STARTS = _phrases("zh.pronoun_starts")
_ZH_TERM_BAD_ENDS = _phrases("zh.term_bad_ends")
_ZH_NOUNS_IN_HUI = _phrases("zh.nouns_in_hui")
_ZH_GENERIC_TERMS = _words("zh.generic_terms")
_ZH_NOT_IN_TERM = frozenset(_chars("zh.not_in_term"))
_ZH_DEFINITION_CLASSIFIERS = "种个类门位座家款项部本条名支所只套组批件"
_ZH_SURNAMES_COMPOUND = _phrases("zh.surnames_compound")
_ZH_SURNAMES = frozenset(_chars("zh.surnames"))
_ZH_PERSON_TITLES = _phrases("zh.person_titles")
_ZH_PERSON_VERBS = _phrases("zh.person_verbs")
_ZH_ORG_SUFFIXES = _phrases("zh.org_suffixes")
_ZH_GENERIC_ORG_PREFIXES = _words("zh.generic_org_prefixes")
_ZH_PLACE_SUFFIXES = _phrases("zh.place_suffixes")
# Longest name before each suffix (黑龙江省, 乌鲁木齐市, 新疆维吾尔自治区): a longer
# prefix means the cut is wrong ("条件断点可以节省"), so the match is dropped.
_ZH_PLACE_PREFIX_CHARS = {"省": (2, 3), "市": (2, 4), "县": (2, 4), "州": (1, 3), "镇": (2, 4), "村": (2, 4),
                          "岛": (2, 4), "国": (2, 4), "共和国": (2, 8), "自治区": (2, 5), "自治州": (2, 8),
                          "特别行政区": (2, 2)}  # fmt: skip
# Characters after 市/省/国 that make another word: 市场, 省钱, 国家, 国际.
# Characters before 市/省/县 that make a common word: 股市, 超市, 节省, 本省, 郊县.
_ZH_NOT_PLACE_BEFORE = {"市": "股城超都上夜街闹楼车菜门黑早", "省": "节反外本全各该两", "县": "郊各本全该两"}
_ZH_NOT_PLACE_NEXT = {"市": "场值面价盈销况", "省": "份钱时力去略事心电油下", "国": "家际内外民王籍旗土企产有立度务情学画语债",
                      "州": "长", "岛": "屿"}  # fmt: skip
_ZH_NOT_PLACES = frozenset(["联合国"])
_ZH_NOT_COUNTRY_PREFIXES = frozenset(_chars("zh.not_country_prefixes"))
_ZH_COUNTRIES = _words("zh.countries")
_ZH_PHRASE_BREAKER_WORDS = _words("zh.phrase_breaker_words")
_ZH_PHRASE_BREAKERS = re.compile(
    "|".join(sorted(_ZH_PHRASE_BREAKER_WORDS, key=len, reverse=True))
    + f"|[^{HAN}]|[的了在是和与及或到从于对把被向往为给由将让跟同也都就还又很最更其这那此该每各我你他她它说着过吗呢吧啊中上下里有个]"
)


# =========================================================================== definitions

_EN_DEFINITION = re.compile(
    r"^(?P<term>[A-Za-z0-9][\w'’\-]*(?:\s+[\w'’\-]+){0,6}?)"
    r"(?:\s*\([^()]{1,60}\))?"
    r"(?:,\s*(?:also\s+)?(?:known|called|referred\s+to)\s+as\s+[^,]{1,60},)?"
    r"\s+(?P<verb>is\s+defined\s+as|are\s+defined\s+as|refers\s+to|refer\s+to|means|is|are|was|were)\s+"
    r"(?P<definition>\S.*?)[.!]?$"
)
_EN_BE_DEFINITION_START = re.compile(r"^(?:a|an|the|one\s+of)\s", re.IGNORECASE)
_ZH_SO_CALLED = re.compile(
    r"^所谓(?P<term>[^，,。：:；;！？\s]{1,20}?)[，,]\s*(?P<verb>就是|是指|指的是|是)(?P<definition>.+?)[。！]?$"
)
_ZH_DEFINITION = re.compile(
    r"^(?P<term>[^，,。：:；;！？、\s（(]{1,24}?)"
    r"(?:[（(][^（）()]{1,40}[)）])?"
    r"(?:[，,](?:又称|也称|也叫|简称|俗称)[^，,。]{1,20}[，,])?"
    r"[，,]?(?P<verb>是指|指的是|被定义为|就是|是)(?P<definition>.+?)[。！]?$"
)
_LEADING_MARKERS = re.compile(r"^\s*(?:[-*•·]\s+|\d{1,2}[.)、]\s*|[\"'“‘「『])")


def definition_sentences(text: str, lang: str) -> list[Definition]:
    """The sentences of `text` that define a term, in order, one per term.

    English: "X is a/an/the …", "X was a …", "X refers to …", "X is defined
    as …", "X means …" at the start of a sentence, with an optional
    "(abbr.)" or ", also known as Y," after X. Chinese: "X是指…", "X指的是…",
    "所谓X，是指/就是…", "X是一种/一个…", and "X是…的…". Pronouns, clause
    openers ("Today is a …", "这是…") and judgement words ("The problem is
    a …", "原因是…") never make terms. "A volcano" is reported as "volcano",
    "The Great Wall of China" as "the Great Wall of China".
    """
    family = rules_family(lang)
    return list(_document_definitions(text, family)) if family else []


@functools.lru_cache(maxsize=4)
def _document_definitions(text: str, family: str) -> tuple[Definition, ...]:
    found: list[Definition] = []
    seen: set[str] = set()
    for sentence in _document_sentences(text, family):
        definition = _zh_definition(sentence) if family == "zh" else _en_definition(sentence, text)
        if definition and definition.term.casefold() not in seen:
            seen.add(definition.term.casefold())
            found.append(definition)
    return tuple(found)


def _en_definition(sentence: str, text: str) -> Definition | None:
    if ends_with_question_mark(sentence) or len(sentence) > 500:
        return None
    body = _LEADING_MARKERS.sub("", sentence).strip()
    match = _EN_DEFINITION.match(body)
    if not match:
        return None
    verb = " ".join(match.group("verb").split())
    definition = match.group("definition").strip().rstrip(".!").strip()
    if verb in ("is", "are", "was", "were") and not _EN_BE_DEFINITION_START.match(definition):
        return None
    if len(definition.split()) < 3 or len(definition) > 300:
        return None
    if definition.lower().startswith(_EN_DEFINITION_OPENERS_TO_REJECT):
        return None
    term = _en_clean_term(match.group("term"), text)
    if term is None:
        return None
    return Definition(term=term, definition=definition, sentence=sentence)


def _en_clean_term(raw: str, text: str) -> str | None:
    words = raw.split()
    if words[0] in ("A", "An", "a", "an"):
        words = words[1:]
    article = ""
    if words and words[0] in ("The", "the"):
        words = words[1:]
        article = "the " if words and words[0][:1].isupper() else ""
    if not words or len(words) > 6:
        return None
    lowered = [w.lower().strip("'’") for w in words]
    if (
        lowered[0] in _EN_FUNCTION_WORDS
        or lowered[-1] in _EN_FUNCTION_WORDS
        or lowered[0] in _EN_RANKING_WORDS
    ):
        return None
    if any(w in _EN_FUNCTION_WORDS and w not in ("of", "for", "in", "on", "the") for w in lowered):
        return None
    if lowered[-1] in _EN_GENERIC_HEADS or not any(ch.isalpha() for ch in words[-1]):
        return None
    term = " ".join(words)
    if len(term) > 60:
        return None
    # "Photosynthesis is …" starts a sentence; the term is "photosynthesis"
    # when the page writes it so elsewhere. Names ("Python") stay capitalised.
    # "Cellular respiration is …" is a common noun phrase: its other words are lower case.
    first = words[0]
    if not article and first[:1].isupper() and first[1:].islower():
        lower_form = first[0].lower() + term[1:]
        common = len(words) > 1 and all(w.islower() for w in words[1:])
        if common or re.search(r"(?<![\w'’\-])" + re.escape(lower_form) + r"(?![\w'’\-])", text):
            term = lower_form
    return article + term


def _zh_definition(sentence: str) -> Definition | None:
    if ends_with_question_mark(sentence) or len(sentence) > 300:
        return None
    body = _LEADING_MARKERS.sub("", sentence).strip()
    match = _ZH_SO_CALLED.match(body) or _ZH_DEFINITION.match(body)
    if not match:
        return None
    definition = match.group("definition").strip()
    verb = match.group("verb")
    if len(definition) < 4 or len(definition) > 200:
        return None
    if verb == "是" and not (
        (definition[0] == "一" and definition[1:2] in _ZH_DEFINITION_CLASSIFIERS)
        or _zh_ends_in_noun(definition)
    ):
        return None
    term = _zh_clean_term(match.group("term"))
    if term is None:
        return None
    return Definition(term=term, definition=definition, sentence=sentence)


def _zh_ends_in_noun(definition: str) -> bool:
    """ "…利用光能合成有机物的过程": the first clause ends in 的 + a short noun, as a definition does."""
    clause = re.split(r"[，,；;]", definition, maxsplit=1)[0]
    head = clause.rsplit("的", 1)
    return len(clause) >= 6 and len(head) == 2 and 1 <= len(head[1]) <= 6 and contains_han(head[1])


def _zh_clean_term(raw: str) -> str | None:
    term = raw.strip().strip("“”\"'「」『』")
    bare = term.strip("《》")
    if term.startswith("《") and term.endswith("》"):
        return term if 1 <= len(bare) <= 30 and "《" not in bare else None
    if not (2 <= len(bare) <= 10) or bare in _ZH_GENERIC_TERMS:
        return None
    if term.startswith(_ZH_PRONOUN_STARTS) or term.endswith(_ZH_TERM_BAD_ENDS):
        return None
    if term.endswith("会") and not term.endswith(_ZH_NOUNS_IN_HUI):
        return None
    if any(ch in _ZH_NOT_IN_TERM for ch in bare) or (contains_han(bare) and re.search(r"\d", bare)):
        return None
    if not (len(re.findall(_ZH_CJK_RUN, bare)) >= 2 or re.fullmatch(r"[A-Za-z][\w.+#\- ]*", bare)):
        return None
    return term


# =========================================================================== concepts and noun phrases


def concepts(text: str, lang: str) -> list[SlotValue]:
    """Terms a page is about, defined terms first (cue "definition").

    English adds capitalised multi-word phrases that are not people
    ("Industrial Revolution", "General Relativity"; cue "capitalised");
    Chinese adds 《》 titles (kept with their brackets; cue "book_title") and
    short “”-quoted terms (cue "quoted").
    """
    family = rules_family(lang)
    if not family:
        return []
    values = [SlotValue(d.term, d.sentence, "definition") for d in definition_sentences(text, family)]
    if family == "en":
        people = {e.name.casefold() for e in entities(text, family) if e.kind == "person"}
        for sentence in _document_sentences(text, family):
            for name, _start, with_the in _en_name_candidates(sentence):
                parts = name.split()
                if (
                    len(parts) >= 2
                    and name.casefold() not in people
                    and not _has_title(name)
                    and not any(p.isupper() and len(p) > 1 for p in parts)  # "C. RIGHT", shouting
                ):
                    values.append(SlotValue(("the " if with_the else "") + name, sentence, "capitalised"))
    else:
        for sentence in _document_sentences(text, family):
            for match in re.finditer(r"《([^《》\n]{1,30})》", sentence):
                values.append(SlotValue(f"《{match.group(1).strip()}》", sentence, "book_title"))
            for match in re.finditer(r"“([^“”\n]{2,12})”", sentence):
                quoted = match.group(1).strip()
                if re.fullmatch(rf"[{HAN}A-Za-z0-9·\- ]{{2,12}}", quoted) and quoted not in _ZH_GENERIC_TERMS:
                    values.append(SlotValue(quoted, sentence, "quoted"))
    return _unique(values)


def _has_title(name: str) -> bool:
    return name.split()[0].rstrip(".") in _EN_TITLES


# Determiners that are never pronouns: after "this"/"many" a verb may follow ("many believe").
_EN_DETERMINER_PHRASE = re.compile(
    r"\b(?:the|a|an|its|their|our|his|her|my|your)\s+"
    r"(?P<words>[a-z][a-z\-]+(?:\s+[a-z][a-z\-]+){0,4})(?P<next>\s*[^\sa-z]|$)?"
)
_EN_NOT_HEADS = _words("en.not_heads")


_EN_NOUN_PHRASE_ENDERS = _words("en.noun_phrase_enders")
_EN_ARTICLES = _words("en.articles")


def _en_noun_phrase(words: list[str], ended: bool) -> tuple[str, str]:
    """The phrase a determiner introduces: up to three words before a function
    word or punctuation. A run that goes on with more content words ("the plant
    grows fast") or hits a past form after its first word ("the box arrived")
    has a verb in it and gives only its first word. Returns the phrase and the
    word that stopped it ("" at punctuation).
    """
    phrase, stop = [], ""
    for index, word in enumerate(words):
        if word in _EN_FUNCTION_WORDS or word.endswith("ly") or (index and word.endswith("ed")):
            ended, stop = True, word
            if word in _EN_ARTICLES and len(phrase) >= 2:
                phrase.pop()  # "the team won the game": a verb takes an object
            break
        phrase.append(word)
    if not ended or len(phrase) > 3:
        phrase = phrase[:1]
    while phrase and (phrase[-1] in _EN_NOT_HEADS or len(phrase[-1]) < 3):
        phrase.pop()
    if not phrase or phrase[0] in _EN_NOT_HEADS:
        return "", stop
    return " ".join(phrase), stop


def noun_phrases(text: str, lang: str) -> list[SlotValue]:
    """Topic phrases: English phrases of two or three words after an article or
    possessive ("the water cycle" -> "water cycle"), Chinese phrases of 2–6
    characters that recur on the page (split at particles and function
    words); defined terms first in both.
    """
    family = rules_family(lang)
    if not family:
        return []
    values = [SlotValue(d.term, d.sentence, "definition") for d in definition_sentences(text, family)]
    sentences = _document_sentences(text, family)
    if family == "en":
        words = [w.lower() for w in _EN_WORD.findall(text)]
        recurring = Counter(itertools.pairwise(words)) + Counter(zip(words, words[1:], words[2:]))
        for sentence in sentences:
            for match in _EN_DETERMINER_PHRASE.finditer(sentence):
                phrase, stop = _en_noun_phrase(
                    match.group("words").split(), ended=match.group("next") is not None
                )
                if " " in phrase and (
                    stop in _EN_NOUN_PHRASE_ENDERS or recurring[tuple(phrase.split())] >= 2
                ):
                    values.append(SlotValue(phrase, sentence, "determiner"))
    else:
        chunks: Counter[str] = Counter()
        first_sentence: dict[str, str] = {}
        for sentence in sentences:
            for chunk in _ZH_PHRASE_BREAKERS.split(sentence):
                if 2 <= len(chunk) <= 6:
                    chunks[chunk] += 1
                    first_sentence.setdefault(chunk, sentence)
        # Two-character chunks are often verbs; they count only when frequent.
        for chunk, count in chunks.most_common():
            if count >= (2 if len(chunk) >= 3 else 4) and chunk not in _ZH_GENERIC_TERMS:
                values.append(SlotValue(chunk, first_sentence[chunk], "recurring"))
    return _unique(values)


# =========================================================================== entities


def entities(text: str, lang: str) -> list[Entity]:
    """People, places and organisations named in `text`, by surface cues, in order of first mention.

    English: capitalised word sequences; a title ("Dr.", "President") or a
    person verb ("said", "was born", ", a physicist") makes a person; a head
    word ("University", "Inc", "Museum") an organisation; a place word
    ("River", "City"), the countries list, "the city of X" or a preposition
    ("in", "near", "visited", "travelled to"; twice on the page, or once
    before ", Region") a place; other names mid-sentence are kind "other". Chinese:
    names ending in 省/市/县/州/国/岛… (places), 公司/大学/研究院/银行…
    (organisations), a surname before a title (王教授, 李明先生) or a person
    verb (是一位, 出生于), and "·" transliterations (阿尔伯特·爱因斯坦).
    """
    family = rules_family(lang)
    return list(_document_entities(text, family)) if family else []


@functools.lru_cache(maxsize=4)
def _document_entities(text: str, family: str) -> tuple[Entity, ...]:
    return tuple(_merge_entities(_zh_entities(text) if family == "zh" else _en_entities(text)))


_KIND_RANK = {"person": 0, "organization": 1, "place": 2, "other": 3}


def _merge_entities(found: Iterable[Entity]) -> list[Entity]:
    best: dict[str, Entity] = {}
    order: list[str] = []
    for entity in found:
        key = entity.name.casefold().removeprefix("the ")
        if key not in best:
            order.append(key)
            best[key] = entity
        elif _KIND_RANK[entity.kind] < _KIND_RANK[best[key].kind]:
            best[key] = Entity(best[key].name, entity.kind, best[key].sentence)
    merged = [best[key] for key in order if best[key].name.removeprefix("the ")]
    # "Olson said …" names a person; "Barbara Olson" elsewhere is that person in full.
    surnames = {e.name for e in merged if e.kind == "person" and " " not in e.name}
    merged = [
        Entity(e.name, "person", e.sentence) if e.kind == "other" and e.name.split()[-1] in surnames else e
        for e in merged
    ]
    full_names = {e.name.split()[-1] for e in merged if e.kind == "person" and " " in e.name}
    merged = [e for e in merged if not (e.kind == "person" and e.name in full_names)]
    # "Curie" after "Marie Curie": the same person, not a second name.
    named_words = {
        word.casefold() for e in merged if e.kind != "other" and " " in e.name for word in e.name.split()
    }
    return [e for e in merged if not (e.kind == "other" and e.name.casefold() in named_words)]


def _en_entities(text: str) -> list[Entity]:
    mentions: list[tuple[str, str, str]] = []
    for sentence in _document_sentences(text, "en"):
        for name, start, with_the in _en_name_candidates(sentence):
            kind, name = _en_entity_kind(name, sentence, start)
            if kind:
                # "the Royal Society", "the Netherlands": kept as the page writes them, so
                # "What is the Royal Society?" reads right. People take no article.
                article = "the " if with_the and kind != "person" else ""
                mentions.append((article + name, kind, sentence))
    # A name after "in"/"at" is a place when the page says so twice, or says
    # it once in a way that settles it.
    weak = Counter(name for name, kind, _ in mentions if kind == "weak_place")
    settled = {name for name, kind, _ in mentions if kind == "place"}
    return [
        Entity(name, "place" if weak[name] >= 2 or name in settled else "other", sentence)
        if kind == "weak_place"
        else Entity(name, kind, sentence)
        for name, kind, sentence in mentions
    ]


def _en_name_candidates(sentence: str) -> list[tuple[str, int, bool]]:
    """Capitalised sequences of `sentence` that may be names, with their
    offsets and whether "the" comes before them ("The Royal Society", "in
    the Netherlands").

    A sentence's first word is capitalised anyway, so it is dropped when it
    is a function word or an adverb ("The", "In", "Eventually") and a lone
    first word is skipped; title-case headings ("How To Bake Bread At Home")
    give nothing.
    """
    words = _EN_WORD.findall(sentence)
    if len(words) >= 4 and sum(w[0].isupper() for w in words) >= 0.6 * len(words):
        return []
    body_start = len(sentence) - len(_LEADING_MARKERS.sub("", sentence).lstrip())
    candidates = []
    for match in _CAP_SEQUENCE.finditer(sentence):
        name, start = match.group(0), match.start()
        at_sentence_start = start <= body_start + 1
        parts = name.split()
        first = parts[0].lower()
        with_the = first == "the" or sentence[:start].lower().endswith("the ")
        if first == "the" or (at_sentence_start and (first in _EN_FUNCTION_WORDS or first.endswith("ly"))):
            rest = re.sub(r"^(?:(?:of|the|de|da|van|von|der|del|du|la|le)\s+)+", "", " ".join(parts[1:]))
            start += len(name) - len(rest)
            name = rest
        elif at_sentence_start and len(parts) == 1:
            continue
        if re.search(r"\s[A-Z]\.$", name):  # "Washington D." cut from "Washington D.C."
            name = name[: name.rfind(" ")]
        name = name.strip()
        if len(name) < 2 or name in _EN_NOT_NAMES or (len(name.split()) == 1 and name.endswith(".")):
            continue
        candidates.append((name, start, with_the))
    return candidates


def _en_entity_kind(name: str, sentence: str, start: int) -> tuple[str, str]:
    before, after = sentence[:start], sentence[start + len(name) :]
    parts = name.split()
    if parts[0].rstrip(".") in _EN_TITLES:
        rest = parts[1:]
        if not rest or len(rest) > 3 or any(not w[:1].isupper() for w in rest):
            return ("other", name) if rest else ("", name)  # "Governor of Bahia" is a role
        return "person", " ".join(rest) if len(rest) >= 2 else name
    title_before = re.search(r"\b(" + "|".join(sorted(_EN_TITLES)) + r")\.?\s+$", before)
    if title_before:
        return "person", name if len(parts) >= 2 else f"{title_before.group(0).strip()} {name}"
    if parts[-1].rstrip(".") in _EN_ORG_HEADS or (parts[0] in _EN_ORG_OPENERS and len(parts) > 2):
        # "the Commission", "the Club": a head word alone names no organisation.
        return ("organization", name) if len(parts) >= 2 else ("other", name)
    if (
        _EN_PERSON_VERBS.match(after)
        or _EN_PROFESSION_AFTER.match(after)
        or _EN_PROFESSION_PREDICATE.match(after)
        or _EN_BY_PERSON.search(before)
        or (_EN_PROFESSION_BEFORE.search(before) and len(parts) >= 2)
    ):
        return "person", name
    if name in _EN_COUNTRIES or parts[-1] in _EN_PLACE_HEADS or parts[0] == "Mount":
        return "place", name
    if _EN_PLACE_BEFORE.search(before):
        return "place", name
    if (
        _EN_PLACE_CUE.search(before)
        and not after.startswith(("'s", "’s"))
        and not re.match(r"\s*\d", after)  # "in Flight 77"
        and " of " not in name
        and not name.isupper()  # "in NASA"
        and not (len(parts) == 1 and _EN_NATIONALITY.search(name))
    ):
        # One "in X" is weak evidence ("in Measure for Measure"); see _en_entities.
        return ("place", name) if _EN_PLACE_AFTER.match(after) else ("weak_place", name)
    return "other", name


def _zh_trim_left(prefix: str) -> str:
    """`prefix` after its last boundary character or word: "他毕业于清华" -> "清华"."""
    match = _ZH_LAST_BOUNDARY.match(prefix)
    return prefix[match.end() :] if match else prefix


def _zh_suffix_pattern(suffixes: Sequence[str], max_prefix: int) -> re.Pattern[str]:
    return re.compile(
        rf"(?P<prefix>[{HAN}A-Za-z0-9]{{0,{max_prefix}}}?)(?P<suffix>"
        + "|".join(map(re.escape, suffixes))
        + ")"
    )


_ZH_ORG_NAME = _zh_suffix_pattern(_ZH_ORG_SUFFIXES, 14)
_ZH_PLACE_NAME = _zh_suffix_pattern(_ZH_PLACE_SUFFIXES, 8)
_ZH_COUNTRY_NAME = re.compile("|".join(sorted(_ZH_COUNTRIES, key=len, reverse=True)))
# Longest first, so 出生于 is never read again as 生于 with "出" in the name.
_ZH_PERSON_CUE = re.compile(
    "|".join(re.escape(cue) for cue in sorted(_ZH_PERSON_TITLES + _ZH_PERSON_VERBS, key=len, reverse=True))
)


def _zh_suffix_names(sentence: str, pattern: re.Pattern[str]) -> Iterable[tuple[str, str, int]]:
    """(prefix, suffix, end) for each CJK name in `sentence` ending in one of `pattern`'s suffixes."""
    for match in pattern.finditer(sentence):
        yield _zh_trim_left(match.group("prefix")), match.group("suffix"), match.end()


def _zh_entities(text: str) -> list[Entity]:
    found: list[Entity] = []
    for sentence in _document_sentences(text, "zh"):
        mentions: list[tuple[int, Entity]] = []
        for name, start in _zh_people(sentence):
            mentions.append((start, Entity(name, "person", sentence)))
        for prefix, suffix, end in _zh_suffix_names(sentence, _ZH_ORG_NAME):
            if suffix == "联合国":
                mentions.append((end, Entity(suffix, "organization", sentence)))
            elif (
                2 <= len(prefix) <= 12
                and prefix not in _ZH_GENERIC_ORG_PREFIXES
                and not prefix.startswith(_ZH_PRONOUN_STARTS)
                and not re.search(r"\d", prefix)
            ):
                mentions.append((end, Entity(prefix + suffix, "organization", sentence)))
        for prefix, suffix, end in _zh_suffix_names(sentence, _ZH_PLACE_NAME):
            name = prefix + suffix
            if suffix == "州" and sentence[end : end + 1] in ("市", "省"):  # 杭州市, not 杭州 + 市
                name, end = name + sentence[end], end + 1
            country = next((c for c in _ZH_COUNTRIES if name.endswith(c)), "") if suffix == "国" else ""
            if country:
                continue  # the countries scan below finds it, without what came before ("力量法国")
            if _zh_is_place(prefix, suffix, sentence[end : end + 1]):
                mentions.append((end, Entity(name, "place", sentence)))
        for match in _ZH_COUNTRY_NAME.finditer(sentence):
            if sentence[match.end() : match.end() + 1] not in ("家", "际"):  # 发展中国家, 中国际
                mentions.append((match.start(), Entity(match.group(0), "place", sentence)))
        organizations = [e.name for _, e in mentions if e.kind == "organization"]
        for _, entity in sorted(mentions, key=lambda m: m[0]):
            # "北京" inside "北京大学" is the university's name, not a second place.
            if entity.kind == "place" and any(
                entity.name in org and entity.name != org for org in organizations
            ):
                continue
            found.append(entity)
    return found


def _zh_is_place(prefix: str, suffix: str, next_char: str) -> bool:
    low, high = _ZH_PLACE_PREFIX_CHARS[suffix]
    if not (low <= len(prefix) <= high) or not re.fullmatch(rf"[{HAN}]+", prefix):
        return False
    if next_char and next_char in _ZH_NOT_PLACE_NEXT.get(suffix, ""):
        return False
    if prefix[-1] in _ZH_NOT_PLACE_BEFORE.get(suffix, ""):
        return False
    if (
        prefix + suffix in _ZH_NOT_PLACES
        or prefix.startswith(_ZH_PRONOUN_STARTS)
        or prefix in _ZH_GENERIC_ORG_PREFIXES
    ):
        return False
    return suffix != "国" or prefix[-1] not in _ZH_NOT_COUNTRY_PREFIXES


def _zh_surname_name(window: str) -> str:
    """The personal name ending `window` (up to 3 characters before a title or verb), or ""."""
    for compound in _ZH_SURNAMES_COMPOUND:
        index = window.rfind(compound)
        if index >= 0 and len(window) - index <= 4:
            return window[index:]
    for length in (3, 2, 1):
        if len(window) >= length:
            candidate = window[-length:]
            if candidate[0] in _ZH_SURNAMES and not any(ch in _ZH_BOUNDARY_CHARS for ch in candidate[1:]):
                return candidate
    return ""


# Words that end a transliterated name's first part: "科学家梅尔文·卡尔文" is 梅尔文·卡尔文.
_ZH_BEFORE_FOREIGN_NAME = re.compile(
    ".*(?:教授|博士|院士|先生|女士|总统|主席|总理|首相|国王|女王|[家者员师长人手官生])"
)
_ZH_DOT_NAME = re.compile(rf"[{HAN}]{{1,8}}(?:·[{HAN}]{{1,8}}){{1,2}}(?![·{HAN}]*·)")
_ZH_TRANSLITERATION = frozenset(_chars("zh.transliteration"))
_ZH_NOT_NAMES = _words("zh.not_names")


def _zh_people(sentence: str) -> list[tuple[str, int]]:
    people: list[tuple[str, int]] = []
    for match in _ZH_DOT_NAME.finditer(sentence):
        parts = match.group(0).split("·")
        first = _zh_trim_left(parts[0])
        cut = _ZH_BEFORE_FOREIGN_NAME.match(first)
        first = first[cut.end() :] if cut else first
        # The name ends where its transliteration characters do: "爱因斯坦提出了…" -> 爱因斯坦.
        last = parts[-1]
        in_name = next((i for i, ch in enumerate(last) if ch not in _ZH_TRANSLITERATION), len(last))
        boundary = next((i for i, ch in enumerate(last) if ch in _ZH_BOUNDARY_CHARS), len(last))
        last = last[:in_name] if in_name >= 2 else last[:boundary]
        name = "·".join([first, *parts[1:-1], last])
        letters = name.replace("·", "")
        if first and last and sum(ch in _ZH_TRANSLITERATION for ch in letters) >= 0.6 * len(letters):
            people.append((name, match.start() + len(parts[0]) - len(first)))
    for match in _ZH_PERSON_CUE.finditer(sentence):
        if "·" in sentence[max(0, match.start() - 1) : match.start()]:
            continue
        name = _zh_surname_name(_zh_trim_left(sentence[max(0, match.start() - 3) : match.start()]))
        if not name or name in _ZH_NOT_NAMES:
            continue
        if len(name) == 1:
            if match.group(0) not in _ZH_PERSON_TITLES:
                continue
            name += match.group(0)  # "王教授": the surname alone is no name
        people.append((name, match.start() - len(name)))
    return people


# =========================================================================== categories

_EN_SUCH_AS = re.compile(r",?\s+(?:such\s+as|including|like|e\.g\.,?)\s+(?P<items>[^.;:!?()]+)")
_EN_TYPES_OF = re.compile(
    r"\b(?:types|kinds|sorts|forms|varieties|categories|examples)\s+of\s+(?P<category>(?:[a-z][\w\-]*\s+){0,2}?[a-z][\w\-]*)"
    r"(?P<rest>.*)$"
)
_EN_LIST_INTRO = re.compile(
    r"^\s*(?:,?\s*(?:are|include|includes|including|is)\s*:?\s+|\s*:\s*)(?P<items>[^.;!?()]+)"
)
_EN_ITEM_SPLIT = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+")
_EN_IRREGULAR_PLURALS = _words("en.irregular_plurals")
_ZH_INCLUDES = re.compile(
    rf"(?P<category>[{HAN}]{{2,12}}?)(?:的种类|的类型|的品种)?(?:主要)?(?:包括|包含|分为)(?:：|:)?(?P<items>[^。；;！？!?\n]+)"
)
_ZH_CATEGORY_OPENERS = re.compile(r"^(?:常见的|主要的|多种|各种|几种|这些|一些|主要|常见)")
_ZH_ITEM_OPENERS = re.compile(r"^(?:即|如|比如|例如|像|诸如|通常包括|包括)")
_ZH_ITEMS_THEN_CATEGORY = re.compile(
    rf"(?P<items>(?:[{HAN}A-Za-z0-9]{{1,8}}、)+[{HAN}A-Za-z0-9]{{1,8}})等(?P<category>[{HAN}]{{2,4}})(?=[，,。；;！？、）)]|$)"
)
_ZH_VARIOUS = re.compile(
    rf"各(?:种|类|式各样的|种各样的)(?P<category>[{HAN}]{{2,4}}?)(?=[，,。；;！？、）)的和与及等]|$)"
)
_ZH_ITEM_SPLIT = re.compile(r"[、，,]|以及|和|与|及|或者|或")


def categories(text: str, lang: str) -> list[Category]:
    """Classes of things with the examples the text gives for them, one per class name.

    English: "X such as A, B and C", "X, including A and B", "types/kinds of X
    (are|include|:) A, B and C" and a bare "types of X" (no examples); the
    class of "such as" must be plural ("fruits", "programming languages").
    Chinese: "X包括/包含/分为A、B和C", "A、B、C等X" and "各种X" (no examples).
    Examples are short (≤ 4 words / 8 characters), two or more, or none.
    """
    family = rules_family(lang)
    if not family:
        return []
    found: dict[str, Category] = {}
    for sentence in _document_sentences(text, family):
        for category in _zh_categories(sentence) if family == "zh" else _en_categories(sentence):
            key = category.name.casefold()
            if key not in found or (category.examples and not found[key].examples):
                found[key] = category
    return list(found.values())


def _en_categories(sentence: str) -> list[Category]:
    found = []
    for match in _EN_SUCH_AS.finditer(sentence):
        name = _en_category_name(sentence[max(0, match.start() - 80) : match.start()], match.start() <= 80)
        examples = _en_items(match.group("items"))
        if name and len(examples) >= 2 and _looks_plural(name):
            found.append(Category(name, examples, sentence))
    match = _EN_TYPES_OF.search(sentence)
    if match:
        words = []
        for word in match.group("category").split():
            if word in _EN_FUNCTION_WORDS:
                break
            words.append(word)
        if words and words[-1] not in _EN_NOT_HEADS and _looks_plural(" ".join(words)):
            listed = _EN_LIST_INTRO.match(match.group("rest"))
            examples = _en_items(listed.group("items")) if listed else ()
            found.append(Category(" ".join(words), examples if len(examples) >= 2 else (), sentence))
    return found


def _en_category_name(before: str, from_sentence_start: bool) -> str:
    """The class named just before "such as": up to three words, a common noun phrase."""
    all_words = before.split()
    words: list[str] = []
    for word in reversed(all_words):
        if (
            word.lower() in _EN_FUNCTION_WORDS
            or not re.fullmatch(r"[A-Za-z][\w\-]*", word)
            or len(words) == 3
        ):
            break
        words.insert(0, word)
    if words and from_sentence_start and len(words) == len(all_words) and words[0][1:].islower():
        words[0] = words[0].lower()  # "Renewable energy sources, such as …" opens the sentence
    # Capitalised words are names, not the class: "9pm Studios consulting services" -> "consulting services".
    while words and (words[0].lower() in _EN_NOT_HEADS or not words[0][:1].islower()):
        words.pop(0)
    return " ".join(words)


def _looks_plural(name: str) -> bool:
    head = name.split()[-1].lower()
    return head in _EN_IRREGULAR_PLURALS or (head.endswith("s") and not head.endswith(("ss", "us", "is")))


_EN_PREPOSITIONS = _words("en.prepositions")


def _en_items(raw: str) -> tuple[str, ...]:
    items = []
    for piece in _EN_ITEM_SPLIT.split(raw.strip()):
        piece = re.sub(r"\b(?:etc|and so on|among others)\.?$", "", piece.strip()).strip(" ,")
        words, stop = [], ""
        for word in piece.split():
            if word.lower() in _EN_FUNCTION_WORDS and word.lower() not in ("of", "the", "de"):
                stop = word.lower()
                break
            words.append(word)
        if stop in _EN_PREPOSITIONS and len(words) >= 2:
            words.pop()  # "bacteria depend on it": the sentence went on with a verb
        if not words or len(words) > 4:
            break
        if items and len(words) == 1 and words[0].endswith("ing") and not items[0].endswith("ing"):
            break  # "Klingon and making …": the list is over
        items.append(" ".join(words))
        if stop:
            break  # the list ended where the sentence went on
    return tuple(dict.fromkeys(items))


def _zh_categories(sentence: str) -> list[Category]:
    found = []
    for match in _ZH_INCLUDES.finditer(sentence):
        name = _ZH_CATEGORY_OPENERS.sub("", _zh_trim_left(match.group("category")))
        if name in _ZH_GENERIC_TERMS or name.endswith(_ZH_TERM_BAD_ENDS):
            continue
        items = match.group("items")
        if "、" not in items and not re.search("和|与|及", items):
            continue
        examples = _zh_items(items)
        if 2 <= len(name) <= 8 and not name.startswith(_ZH_PRONOUN_STARTS) and len(examples) >= 2:
            found.append(Category(name, examples, sentence))
    for match in _ZH_ITEMS_THEN_CATEGORY.finditer(sentence):
        first, _, rest = match.group("items").partition("、")
        examples = _zh_items(_zh_trim_left(first) + "、" + rest)  # "我买了苹果、…" lists 苹果
        if len(examples) >= 2 and match.group("category") not in _ZH_GENERIC_TERMS:
            found.append(Category(match.group("category"), examples, sentence))
    for match in _ZH_VARIOUS.finditer(sentence):
        name = match.group("category")
        if name not in _ZH_GENERIC_TERMS and name[-1] not in _ZH_BOUNDARY_CHARS:
            found.append(Category(name, (), sentence))
    return found


def _zh_items(raw: str) -> tuple[str, ...]:
    items = []
    for piece in _ZH_ITEM_SPLIT.split(raw):
        piece = _ZH_ITEM_OPENERS.sub("", re.sub(r"(?:等等|等)$", "", piece.strip())).strip("“”\"'《》 ")
        if not piece:
            continue
        if not (2 <= len(piece) <= 8) or any(ch in "的了是在：:" for ch in piece) or re.search(r"\d", piece):
            break
        items.append(piece)
    return tuple(dict.fromkeys(items))


# =========================================================================== passages, sentences, reviews

_SENTENCE_END = re.compile(r"[.!?。！？…][\"'”’」』）)]*$")


def _paragraphs(text: str, family: str) -> list[str]:
    """Paragraphs of `text`: lines, except that hard-wrapped lines inside a
    blank-line-separated block (most not ending a sentence) are joined.
    """
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if len(lines) > 1 and sum(not _SENTENCE_END.search(line) for line in lines[:-1]) >= 0.6 * (
            len(lines) - 1
        ):
            paragraphs.append(("" if family == "zh" else " ").join(lines))
        else:
            paragraphs.extend(lines)
    return paragraphs


def passages(text: str, lang: str, min_chars: int | None = None, max_chars: int | None = None) -> list[str]:
    """Paragraph-sized chunks of `text`: each paragraph of two or more sentences
    that ends like prose and is `min_chars`..`max_chars` long; a longer one is
    cut at sentence boundaries into chunks of at most `max_chars`. Defaults by
    language: en 200..1500, zh 80..600 (other languages use the en bounds).
    """
    family = rules_family(lang) or "en"
    low, high = PASSAGE_CHARS[family]
    low = low if min_chars is None else min_chars
    high = high if max_chars is None else max_chars
    joiner = "" if family == "zh" else " "
    chunks: list[str] = []
    for paragraph in _paragraphs(text, family):
        if not _SENTENCE_END.search(paragraph) or len(paragraph) < low:
            continue
        sentences = _sentences_of(paragraph, lang or family)
        if len(sentences) < 2:
            continue
        if len(paragraph) <= high:
            chunks.append(paragraph)
            continue
        current: list[str] = []
        for sentence in sentences:
            if current and len(joiner.join([*current, sentence])) > high:
                chunks.append(joiner.join(current))
                current = []
            current.append(sentence)
        if current:
            chunks.append(joiner.join(current))
    return list(dict.fromkeys(c for c in chunks if low <= len(c) <= high and _SENTENCE_END.search(c)))


def sentences(text: str, lang: str) -> list[str]:
    """Standalone statements of `text` fit to be rewritten or translated: of
    moderate length (en 40–250, zh 12–100 characters), ending in "." / "。"
    (or "!"), not questions, not headings, no links.
    """
    family = rules_family(lang) or "en"
    low, high = SENTENCE_CHARS[family]
    found = []
    for sentence in _sentences_of(text, lang or family):
        if not (low <= len(sentence) <= high) or not sentence.rstrip("\"'”’」』）)").endswith(
            (".", "!", "。", "！")
        ):
            continue
        if (
            "http" in sentence
            or "www." in sentence
            or sum(ch.isdigit() for ch in sentence) > 0.3 * len(sentence)
        ):
            continue
        if family == "zh":
            if len(re.findall(_ZH_CJK_RUN, sentence)) < 0.5 * len(sentence):
                continue
        elif not (sentence[0].isupper() or sentence[0] in "\"“'‘") or not (6 <= len(sentence.split()) <= 45):
            continue
        found.append(sentence)
    return list(dict.fromkeys(found))


_EN_POSITIVE = _words("en.positive")
_EN_NEGATIVE = _words("en.negative")
_EN_NEGATORS = _words("en.negators")
_EN_OPINION_MARKERS = re.compile(
    r"\b(?:I|I'm|I've|I'd|my|we|our|us|me|you|staff|service|product|price|quality|food|room|hotel|delivery|"
    r"experience|movie|film|book|app|restaurant|seller|customer|purchase|bought|ordered|stayed)\b|!",
    re.IGNORECASE,
)
_EN_INTENSIFIERS = re.compile(
    r"\b(?:very|really|so|absolutely|highly|totally|super|extremely|definitely|truly|incredibly|completely|"
    r"too)\b|!",
    re.IGNORECASE,
)
_EN_TOKEN = re.compile(r"[a-z]+(?:['’][a-z]+)?")
_ZH_POSITIVE = _phrases("zh.positive")
_ZH_NEGATIVE = _phrases("zh.negative")
_ZH_CUE = re.compile(
    "|".join(
        re.escape(w) if w != "好" else "好(?![像几多久些在让的处友转])"
        for w in sorted(_ZH_POSITIVE + _ZH_NEGATIVE, key=len, reverse=True)
    )
)
_ZH_POSITIVE_SET = frozenset(_ZH_POSITIVE)
_ZH_NEGATION_BEFORE = re.compile(r"(?:不|没|没有|别|毫不|并不)(?:是)?(?:很|太|够|怎么|算|大)?$")
_ZH_OPINION_MARKERS = re.compile(
    r"我|！|!|这家|这款|这个|这部|店|产品|服务|质量|味道|物流|客服|酒店|电影|餐厅|东西|商品|体验|性价比|买|入住"
)
_ZH_INTENSIFIERS = re.compile(r"非常|很|太|特别|超|真|十分|极其|相当|挺|好好|！|!")


def sentiment_counts(text: str, lang: str) -> tuple[int, int]:
    """(positive, negative) cue-word hits in `text`; a negator just before a cue
    ("not good", "不满意" aside, "不好") counts it for the other side.
    """
    family = family_of_text(text, lang)
    positive = negative = 0
    if family == "zh":
        for match in _ZH_CUE.finditer(text):
            is_positive = match.group(0) in _ZH_POSITIVE_SET
            if _ZH_NEGATION_BEFORE.search(text[max(0, match.start() - 4) : match.start()]):
                is_positive = not is_positive
            positive, negative = (positive + 1, negative) if is_positive else (positive, negative + 1)
        return positive, negative
    tokens = _EN_TOKEN.findall(text.lower().replace("’", "'"))
    for index, token in enumerate(tokens):
        if token in _EN_POSITIVE or token in _EN_NEGATIVE:
            is_positive = token in _EN_POSITIVE
            window = tokens[max(0, index - 3) : index]
            if any(w in _EN_NEGATORS or w.endswith("n't") for w in window):
                is_positive = not is_positive
            positive, negative = (positive + 1, negative) if is_positive else (positive, negative + 1)
    return positive, negative


def sentiment_polarity(text: str, lang: str) -> int:
    """+1 when `text`'s sentiment cues are all positive, -1 when all negative, 0 when none or mixed."""
    positive, negative = sentiment_counts(text, lang)
    if positive and not negative:
        return 1
    if negative and not positive:
        return -1
    return 0


def reviews(text: str, lang: str) -> list[str]:
    """Opinionated sentences with a clear, one-sided sentiment (see
    `sentiment_polarity`), fit for "Is this review positive or negative?".

    A sentence needs a sign of a personal opinion or of a review's subject
    (I / my / we / "!" / service, food, hotel …; zh 我 / ！ / 服务, 味道 …)
    and either two cue words or an intensifier ("really", "so", "非常",
    "太", "!"), so a factual sentence that happens to say "good" is not taken
    for a review.
    """
    family = rules_family(lang)
    if not family:
        return []
    low, high = REVIEW_CHARS[family]
    markers = _ZH_OPINION_MARKERS if family == "zh" else _EN_OPINION_MARKERS
    intensifiers = _ZH_INTENSIFIERS if family == "zh" else _EN_INTENSIFIERS
    found = []
    for sentence in _document_sentences(text, family):
        if not (low <= len(sentence) <= high) or ends_with_question_mark(sentence):
            continue
        positive, negative = sentiment_counts(sentence, family)
        if (positive and negative) or not (positive or negative):
            continue
        if markers.search(sentence) and (positive + negative >= 2 or intensifiers.search(sentence)):
            found.append(sentence)
    return list(dict.fromkeys(found))


# =========================================================================== slot values


_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")


def _unique(values: Iterable[SlotValue]) -> list[SlotValue]:
    """`values` without repeats (case-insensitive) and invisible characters, at most MAX_VALUES_PER_TYPE."""
    seen: set[str] = set()
    unique = []
    for value in values:
        clean = _INVISIBLE.sub("", value.value).strip()
        if clean != value.value:
            value = SlotValue(clean, value.source_sentence, value.cue)
        key = clean.casefold().removeprefix("the ")
        if clean and key not in seen:
            seen.add(key)
            unique.append(value)
    return unique[:MAX_VALUES_PER_TYPE]


def slot_values(text: str, lang: str) -> dict[str, list[SlotValue]]:
    """Values for every slot type in SLOT_TYPES (a key for each, lists possibly empty).

    A named thing that some sentence defines ("Marie Curie was a Polish
    physicist …") carries that definition sentence as its source, so "Who
    was {person}?" is grounded in it. `language` values come from
    TARGET_LANGUAGES, never from the text. Other languages than en and zh get
    only passages and sentences.
    """
    family = rules_family(lang)
    values: dict[str, list[SlotValue]] = {slot_type: [] for slot_type in SLOT_TYPES}
    values["passage"] = _unique(SlotValue(p, p, "paragraph") for p in passages(text, lang or "en"))
    values["sentence"] = _unique(SlotValue(s, s, "statement") for s in sentences(text, lang or "en"))
    if not family:
        return values
    definitions = definition_sentences(text, family)
    defining = {d.term.casefold(): d.sentence for d in definitions}
    values["concept"] = concepts(text, family)
    values["noun_phrase"] = noun_phrases(text, family)
    found = entities(text, family)

    def entity_value(entity: Entity, cue: str) -> SlotValue:
        return SlotValue(entity.name, defining.get(entity.name.casefold(), entity.sentence), cue)

    values["entity"] = _unique(entity_value(e, e.kind) for e in found)
    for kind in ("person", "place", "organization"):
        values[kind] = _unique(entity_value(e, kind) for e in found if e.kind == kind)
    countries = _ZH_COUNTRIES if family == "zh" else _EN_COUNTRIES
    values["country"] = _unique(
        entity_value(e, "country")
        for e in found
        if e.kind == "place" and e.name.removeprefix("the ") in countries
    )
    # A class without examples ("各种变化") makes a poor "List some …" unless the page is about it.
    lowered = text.casefold()
    values["category"] = _unique(
        SlotValue(c.name, c.sentence, "examples" if c.examples else "mention")
        for c in categories(text, family)
        if c.examples or lowered.count(c.name.casefold()) >= 2
    )
    values["review"] = _unique(SlotValue(r, r, "review") for r in reviews(text, family))
    values["language"] = [SlotValue(name, "", "target_language") for name in TARGET_LANGUAGES[family]]
    return values


# =========================================================================== filling templates


# The entity kinds each extraction method lists.
_ENTITY_KINDS_OF_METHOD = {
    "people": ("person",),
    "places": ("place",),
    "organizations": ("organization",),
    "entities": ("person", "place", "organization"),
}


class _AnswerSupport:
    """Which slot values let a template's extractive method answer from the page.

    Cheap checks on what `slot_values` already found (a defined term, a
    passage that names a person); transforms/synth/extractive_answers.py does the
    real work and may still decline.
    """

    def __init__(self, family: str, values: Mapping[str, list[SlotValue]]):
        self.family = family
        self.defined = {v.value.casefold() for v in values["concept"] if v.cue == "definition"}
        self.definition_sentences = [v.source_sentence for v in values["concept"] if v.cue == "definition"]
        self.names = {
            kind: [v.value.casefold().removeprefix("the ") for v in values[kind]]
            for kind in ("person", "place", "organization")
        }

    def fits(self, method: str, value: SlotValue) -> bool:
        if method in ("definition", "definitions"):
            return value.value.casefold() in self.defined
        if method in _ENTITY_KINDS_OF_METHOD:
            text = value.value.casefold()
            return any(name in text for kind in _ENTITY_KINDS_OF_METHOD[method] for name in self.names[kind])
        if method == "defined_terms":
            return any(sentence in value.value for sentence in self.definition_sentences)
        if method == "examples":
            return value.cue == "examples"
        if method == "lead":
            return len(_sentences_of(value.value, self.family)) >= 3
        return True


def fill_from_document(
    templates: Sequence[InstructionTemplate],
    text: str,
    lang: str,
    seed: int,
    key: str,
    limit: int,
    *,
    answerable_only: bool = False,
) -> list[FilledInstruction]:
    """Up to `limit` instructions for one document, as varied as its values allow.

    Templates come in `choose_templates` order (a stable shuffle by `seed`
    and `key`, the document id) and are taken round-robin over task types,
    so a document gives an explain, a list, a summarize … before a second
    of any type. A template is skipped when the page lacks values for its
    slots (two different ones for {a} and {b}). Values least used so far on
    the page come first, ties broken by a stable hash; templates with an
    extractive method prefer values it can answer from (a defined term, a
    passage naming people), and with `answerable_only` take only those
    templates and values, for the model-free "template_only" mode. The same
    inputs always give the same list.
    """
    family = rules_family(lang)
    if limit <= 0 or not family or not text.strip():
        return []
    remaining = choose_templates(templates, family, seed, key)
    if answerable_only:
        remaining = [t for t in remaining if t.extractive_answer]
    if not remaining:
        return []
    values = slot_values(text, family)
    support = _AnswerSupport(family, values)
    uses: Counter[str] = Counter()
    filled: list[FilledInstruction] = []
    produced: set[str] = set()
    while remaining and len(filled) < limit:
        types_this_round: set[str] = set()
        for template in list(remaining):
            if template.task_type in types_this_round or len(filled) >= limit:
                continue
            remaining.remove(template)
            chosen = _choose_values(template, values, uses, support, seed, key, answerable_only)
            if chosen is None:
                continue
            slots = {slot: value.value for slot, value in chosen.items()}
            instruction = fill(template, slots)
            if instruction in produced:
                continue
            produced.add(instruction)
            types_this_round.add(template.task_type)
            uses.update(slots.values())
            filled.append(
                FilledInstruction(
                    template_id=template.id,
                    task_type=template.task_type,
                    lang=family,
                    instruction=instruction,
                    slots=slots,
                    grounding=_grounding(template, chosen, family),
                    extractive_answer=template.extractive_answer,
                )
            )
    return filled


def _choose_values(
    template: InstructionTemplate,
    values: Mapping[str, list[SlotValue]],
    uses: Counter[str],
    support: _AnswerSupport,
    seed: int,
    key: str,
    answerable_only: bool,
) -> dict[str, SlotValue] | None:
    """One value per slot, all different, or None when the page lacks them."""
    method = template.extractive_answer
    chosen: dict[str, SlotValue] = {}
    for slot, slot_type in template.slots:
        taken = {v.value.casefold() for v in chosen.values()}
        ranked = []
        for value in values.get(slot_type, ()):
            if value.value.casefold() in taken:
                continue
            misfit = int(bool(method) and not support.fits(method, value))
            if misfit and answerable_only:
                continue
            rank = stable_rank("slot-value", seed, key, template.id, slot, value.value)
            # An extractive template wants what it can answer first; others spread values first.
            order = (misfit, uses[value.value], rank) if method else (uses[value.value], rank)
            ranked.append((order, value))
        if not ranked:
            return None
        chosen[slot] = min(ranked, key=lambda pair: pair[0])[1]
    return chosen


def _grounding(template: InstructionTemplate, chosen: Mapping[str, SlotValue], family: str) -> str:
    """The text carried whole (a passage, a review), else the sentences the values came from."""
    for slot, slot_type in template.slots:
        if slot_type in TEXT_SLOT_TYPES:
            return chosen[slot].source_sentence
    sources = [v.source_sentence for v in chosen.values() if v.source_sentence]
    return ("" if family == "zh" else " ").join(dict.fromkeys(sources))
