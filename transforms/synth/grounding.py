"""Is a model's pair about its passage? The checks a model-written pair passes besides the filters.

A small or careless model answers from its own imagination, asks about "the
text" instead of its subject, or writes a statement where a question was asked
for. Self-Instruct has no passage to hold it to, but `template` and `doc_qa`
pairs are grounded by design, so they are held to their passage:

* `answer_wrong_language`: the answer is in another script than its instruction;
* `answer_off_passage`: fewer than MIN_ANSWER_SHARE of the answer's content
  units occur in the passage (Instruction Pre-Training and Bonito keep only
  answers a reader could find in the text; a paraphrase keeps its content words);
* `question_off_passage` (doc_qa): the question shares no content unit with it;
* `not_a_question` (doc_qa): neither a "?" nor an interrogative form
  (transforms.questions.is_question);
* `question_about_the_document` (doc_qa): it asks about "the passage", "the
  author", 本文 … (templates/filters.yaml `document_references`).

Content units are English words of three or more letters outside the function
words (templates/slot_fillers.yaml `en.function_words`) and, for Han text,
character bigrams. An answer in another script than its passage (a translation)
is not compared.
"""

from __future__ import annotations

import re

from templates import load_yaml
from transforms.text import HAN, family_of_text

# A paraphrase keeps most of its content words; an invented answer keeps few
# (SmolLM2-135M's invented doc_qa answers shared 0–25 %). The default of the
# synth config's `min_answer_share`.
MIN_ANSWER_SHARE = 0.4
_WORD = re.compile(r"[^\W_]{3,}")
_HAN_RUN = re.compile(f"[{HAN}]+")


def _words(key: str) -> frozenset[str]:
    return frozenset(load_yaml("slot_fillers.yaml", key).split())


_FUNCTION_WORDS = _words("en.function_words")
_REFERENCES = {lang: tuple(load_yaml("filters.yaml", f"document_references.{lang}")) for lang in ("en", "zh")}


def content_units(text: str) -> set[str]:
    """Lower-cased content words and Han bigrams (a lone Han character stands for itself)."""
    lowered = text.lower()
    units = {w for w in _WORD.findall(_HAN_RUN.sub(" ", lowered)) if w not in _FUNCTION_WORDS}
    for run in _HAN_RUN.findall(lowered):
        units.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return units


def passage_share(text: str, passage_units: set[str]) -> float:
    """The share of `text`'s content units that occur in the passage (1.0 for a text without any)."""
    units = content_units(text)
    return len(units & passage_units) / len(units) if units else 1.0


def answer_rejection(answer: str, passage: str, instruction: str = "",
                     min_share: float = MIN_ANSWER_SHARE) -> str | None:
    """Why a model's answer to `instruction` from `passage` is not kept, or None.

    `answer_wrong_language`: written in another script than the instruction (the
    prompt asks for the instruction's language); `answer_off_passage`: in the
    passage's script but sharing too little with it. An answer in the
    instruction's script that differs from the passage's (a translation) is
    not compared with the passage.
    """
    answer_family = family_of_text(answer)
    if instruction and answer_family != family_of_text(instruction):
        return "answer_wrong_language"
    if not passage or answer_family != family_of_text(passage):
        return None
    return "answer_off_passage" if passage_share(answer, content_units(passage)) < min_share else None


def question_answer_rejection(question: str, answer: str, passage: str, lang: str,
                              min_share: float = MIN_ANSWER_SHARE) -> str | None:
    """The first reason a doc_qa pair is not about `passage`, or None."""
    from transforms.questions import is_question

    if not is_question(question, lang):
        return "not_a_question"
    lowered = question.lower()
    references = _REFERENCES["zh" if family_of_text(question) == "zh" else "en"]
    if any(re.search(rf"(?<!\w){re.escape(ref)}(?!\w)", lowered) if ref.isascii() else ref in lowered
           for ref in references):
        return "question_about_the_document"
    passage_units = content_units(passage)
    question_units = content_units(question)
    if question_units and not question_units & passage_units:
        return "question_off_passage"
    return answer_rejection(answer, passage, min_share=min_share)
