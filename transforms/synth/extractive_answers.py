"""Answers to filled templates without a model: the "template_only" synthesis mode.

Many instructions made from a page can be answered by quoting the page:
"What is photosynthesis?" by the sentence that defines it, "Summarize this
paragraph" by its opening sentences, "Find the people mentioned in …" by the
names in it, "Is this review positive or negative?" by its cue words. These
answers are plain, but they are right and cost nothing, and pretraining
wants many instruction-shaped samples more than polished ones.

Each template names its method (`extractive_answer` in
templates/instructions/*.yaml); the method re-reads the instruction's
grounding, so an answer is only ever text the page says. When the grounding
cannot answer, the result is None with a reason, as in
transforms/filters.py: the caller counts `drop:<reason>` and every dropped
instruction is explained. Translation always drops: it needs a model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from transforms.synth.slot_fillers import (
    FilledInstruction,
    categories,
    definition_sentences,
    entities,
    sentiment_polarity,
)
from transforms.text import split_sentences

# Why an instruction got no extractive answer, in the order they are checked.
REASONS = (
    "translate_needs_a_model",
    "no_extractive_method",
    "unknown_extractive_method",
    "no_grounding",
    "no_definition_in_grounding",
    "passage_too_short_to_summarize",
    "no_names_in_grounding",
    "no_defined_terms_in_grounding",
    "too_few_examples",
    "no_clear_sentiment",
)

SENTIMENT_LABELS = {"en": ("positive", "negative"), "zh": ("正面", "负面")}
# A summary is the passage's lead: its first sentence, and the next ones
# while the lead stays within this many characters and this share of the
# passage. A first sentence over the share leaves no summary to give.
LEAD_MAX_CHARS = {"en": 320, "zh": 120}
LEAD_MAX_SHARE = 0.6
LEAD_DEFAULT_SENTENCES = 2

_ENTITY_KIND = {"people": ("person",), "places": ("place",), "organizations": ("organization",),
                "entities": ("person", "place", "organization")}  # fmt: skip
_KIND_LABELS = {
    "en": {"person": "person", "place": "place", "organization": "organization"},
    "zh": {"person": "人物", "place": "地点", "organization": "机构"},
}

# Number words a template may ask for ("Give three examples", "用一句话概括").
_EN_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
               "nine": 9, "ten": 10}  # fmt: skip
_ZH_NUMBERS = {
    "一": 1,
    "两": 2,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_EN_COUNT = re.compile(r"\b(" + "|".join(_EN_NUMBERS) + r"|\d{1,2})\b", re.IGNORECASE)
_ZH_COUNT = re.compile(r"([" + "".join(_ZH_NUMBERS) + r"]|\d{1,2})\s*(?:个|种|句|条|项|样|类|点|位|段)")


def answer_extractively(filled: FilledInstruction) -> str | None:
    """The answer to `filled` quoted from its grounding, or None when the
    grounding cannot answer it (see `answer_with_reason` for why).
    """
    return answer_with_reason(filled)[0]


def answer_with_reason(filled: FilledInstruction) -> tuple[str | None, str]:
    """(answer, "") or (None, reason) with reason one of REASONS."""
    if filled.task_type == "translate":
        return None, "translate_needs_a_model"
    method = filled.extractive_answer
    if not method:
        return None, "no_extractive_method"
    if method not in _METHODS:
        return None, "unknown_extractive_method"
    if not filled.grounding.strip():
        return None, "no_grounding"
    return _METHODS[method](filled)


def requested_count(filled: FilledInstruction) -> int | None:
    """The number the instruction's own words ask for ("three examples" -> 3,
    "用一句话" -> 1), ignoring the slot values filled in; None when it names none.
    """
    text = filled.instruction
    for value in sorted(filled.slots.values(), key=len, reverse=True):
        text = text.replace(value, " ")
    pattern, numbers = (_ZH_COUNT, _ZH_NUMBERS) if filled.lang == "zh" else (_EN_COUNT, _EN_NUMBERS)
    match = pattern.search(text)
    if not match:
        return None
    word = match.group(1).lower()
    return int(word) if word.isdigit() else numbers[word]


# --------------------------------------------------------------------------- the methods


def _term_values(filled: FilledInstruction) -> list[str]:
    return list(filled.slots.values())


def _definition_of(term: str, grounding: str, lang: str) -> str | None:
    wanted = term.casefold().removeprefix("the ")
    for definition in definition_sentences(grounding, lang):
        if definition.term.casefold().removeprefix("the ") == wanted:
            return definition.sentence
    return None


def _definition(filled: FilledInstruction) -> tuple[str | None, str]:
    sentence = _definition_of(_term_values(filled)[0], filled.grounding, filled.lang)
    return (sentence, "") if sentence else (None, "no_definition_in_grounding")


def _definitions(filled: FilledInstruction) -> tuple[str | None, str]:
    terms = _term_values(filled)
    found = [s for s in (_definition_of(term, filled.grounding, filled.lang) for term in terms) if s]
    if len(found) < len(terms):
        return None, "no_definition_in_grounding"
    return ("" if filled.lang == "zh" else " ").join(dict.fromkeys(found)), ""


def _lead(filled: FilledInstruction) -> tuple[str | None, str]:
    passage = filled.grounding.strip()
    sentences = split_sentences(passage, filled.lang)
    joiner = "" if filled.lang == "zh" else " "
    limit = min(LEAD_MAX_CHARS.get(filled.lang, LEAD_MAX_CHARS["en"]), LEAD_MAX_SHARE * len(passage))
    if len(sentences) < 2 or len(sentences[0]) > LEAD_MAX_SHARE * len(passage):
        return None, "passage_too_short_to_summarize"
    lead = [sentences[0]]
    for sentence in sentences[1 : requested_count(filled) or LEAD_DEFAULT_SENTENCES]:
        if len(joiner.join([*lead, sentence])) > limit:
            break
        lead.append(sentence)
    return joiner.join(lead), ""


def _names(filled: FilledInstruction) -> tuple[str | None, str]:
    kinds = _ENTITY_KIND[filled.extractive_answer]
    found = [e for e in entities(filled.grounding, filled.lang) if e.kind in kinds]
    if not found:
        return None, "no_names_in_grounding"
    if len(kinds) == 1:
        return _as_list([e.name for e in found]), ""
    labels = _KIND_LABELS.get(filled.lang, _KIND_LABELS["en"])
    paren = ("（", "）") if filled.lang == "zh" else (" (", ")")
    return _as_list([f"{e.name}{paren[0]}{labels[e.kind]}{paren[1]}" for e in found]), ""


def _defined_terms(filled: FilledInstruction) -> tuple[str | None, str]:
    terms = [d.term for d in definition_sentences(filled.grounding, filled.lang)]
    return (_as_list(terms), "") if terms else (None, "no_defined_terms_in_grounding")


def _examples(filled: FilledInstruction) -> tuple[str | None, str]:
    wanted_name = _term_values(filled)[0].casefold()
    listed = next(
        (c.examples for c in categories(filled.grounding, filled.lang) if c.name.casefold() == wanted_name),
        (),
    )
    count = requested_count(filled)
    if len(listed) < max(2, count or 0):
        return None, "too_few_examples"
    return _as_list(listed[:count] if count else listed), ""


def _sentiment(filled: FilledInstruction) -> tuple[str | None, str]:
    polarity = sentiment_polarity(filled.grounding, filled.lang)
    if polarity == 0:
        return None, "no_clear_sentiment"
    positive, negative = SENTIMENT_LABELS.get(filled.lang, SENTIMENT_LABELS["en"])
    return (positive if polarity > 0 else negative), ""


def _as_list(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in dict.fromkeys(items))


_METHODS: dict[str, Callable[[FilledInstruction], tuple[str | None, str]]] = {
    "definition": _definition,
    "definitions": _definitions,
    "lead": _lead,
    "people": _names,
    "places": _names,
    "organizations": _names,
    "entities": _names,
    "defined_terms": _defined_terms,
    "examples": _examples,
    "sentiment": _sentiment,
}
# The methods a template file may name (tests check that every one is here).
METHODS = tuple(_METHODS)
