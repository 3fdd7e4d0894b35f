"""Pairs from schema.org markup (miner "markup"): the page states its own questions and steps.

- FAQPage: each Question → its acceptedAnswer (kind faq).
- QAPage, or a Question standing alone: the accepted answer, else the
  suggested answer with the most upvotes (kind qa). The question's title
  (`name`) is the instruction and its body (`text`), when it adds anything,
  the input, as in Alpaca's instruction + input; a question with only a body
  uses the body as the instruction.
- HowTo: one pair for the whole procedure, "How do I {task}?" → its numbered
  steps (kind howto), plus one pair per step (kind howto_step).
- Recipe: "How do I make {name}?" → its numbered recipeInstructions (kind recipe).

Instructions are phrased in Chinese when the page language is Chinese and in
English otherwise. Markup text often carries HTML; it is reduced to plain text
(paragraphs and list items become lines). Nothing is filtered by length or
language here; later stages do that. The same pair given twice (JSON-LD and
microdata describing one FAQ) is yielded once.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from resiliparse.extract.html2text import extract_plain_text

from transforms.mine.blocks import Page
from transforms.mine.schema_org import type_names
from transforms.questions import normalize_for_compare
from transforms.records import KIND_FAQ, KIND_HOWTO, KIND_HOWTO_STEP, KIND_QA, KIND_RECIPE, Candidate
from transforms.text import language_family

MINER = "markup"

# The site itself labels these as question/answer or steps, so they are the
# most trustworthy pairs we mine; steps lose a little because sites often pad
# them with tips, ads or "enjoy!" lines.
CONFIDENCE_QA = 0.95
CONFIDENCE_STEPS = 0.9

# Bounds on hostile markup; real step lists and FAQs are far smaller.
MAX_NESTING = 12
MAX_STEPS = 200

_LEADING_NUMBER = re.compile(
    r"^\s*(?:(?:step|étape|paso|schritt)\s*)?\d{1,3}\s*[.):：、-]\s+|^\s*[•\-*·]\s+", re.IGNORECASE
)
# "3." / "3、" / "3)" opening a step, not "1.5 cups".
_INLINE_NUMBER = re.compile(r"(?:^|(?<=\s))(\d{1,3})\s*[.、．)）](?!\d)\s*")
_EN_HOW_TO = re.compile(r"^\s*how\s+(?:to|do\s+(?:i|you))\s+", re.IGNORECASE)
_EN_HOW_TO_MAKE = re.compile(r"^\s*how\s+(?:to|do\s+(?:i|you))\s+make\s+", re.IGNORECASE)
_ZH_HOW_TO = re.compile(r"^(?:如何才能|怎样才能|怎么才能|怎么样|如何|怎么|怎样)")
_ZH_HOW_TO_MAKE = re.compile(r"^(?:如何做|怎么做|怎样做|如何制作|怎么制作|怎样制作)")
_END_PUNCTUATION = "?？.。!！:：;； "


def mine_markup(page: Page) -> Iterator[Candidate]:
    """Every pair the page's schema.org items spell out, in item order."""
    zh = language_family(page.lang) == "zh"
    seen: set[tuple[str, str, str, str]] = set()
    for item in page.markup:
        if not isinstance(item, dict):
            continue
        for candidate in _item_pairs(item, page, zh):
            key = (candidate.kind, candidate.instruction, candidate.input, candidate.output)
            if key not in seen:
                seen.add(key)
                yield candidate


def _item_pairs(item: dict, page: Page, zh: bool) -> Iterator[Candidate]:
    types = set(type_names(item))
    if "FAQPage" in types:
        for question in _as_list(item.get("mainEntity")) + _as_list(item.get("hasPart")):
            yield from _question_pair(question, KIND_FAQ)
    if "QAPage" in types:
        for question in _as_list(item.get("mainEntity")):
            yield from _question_pair(question, KIND_QA)
    elif "Question" in types and "FAQPage" not in types:
        yield from _question_pair(item, KIND_QA)
    if "Recipe" in types:
        yield from _recipe_pairs(item, page, zh)
    elif "HowTo" in types:
        yield from _howto_pairs(item, page, zh)


# -- questions ----------------------------------------------------------------


def _question_pair(question: object, kind: str) -> Iterator[Candidate]:
    if not isinstance(question, dict):
        return
    instruction, input_ = question_text(question)
    answer = best_answer(question)
    if instruction and answer:
        yield Candidate(instruction, answer, kind, MINER, CONFIDENCE_QA, input=input_)


def question_text(question: dict) -> tuple[str, str]:
    """(instruction, input): the title, and the body when it says more than the title."""
    name = plain_text(question.get("name"))
    body = plain_text(question.get("text"))
    if not name:
        return body, ""
    if not body or normalize_for_compare(body) in normalize_for_compare(name):
        return name, ""
    return name, body


def best_answer(question: dict) -> str:
    """The accepted answer's text, else the most upvoted suggested answer's (first on ties)."""
    for answer in _as_list(question.get("acceptedAnswer")):
        text = _answer_text(answer)
        if text:
            return text
    best, best_votes = "", -1
    for answer in _as_list(question.get("suggestedAnswer")):
        text = _answer_text(answer)
        votes = _upvotes(answer)
        if text and votes > best_votes:
            best, best_votes = text, votes
    return best


def _answer_text(answer: object) -> str:
    if isinstance(answer, dict):
        return plain_text(answer.get("text"))
    return plain_text(answer)


def _upvotes(answer: object) -> int:
    value = answer.get("upvoteCount") if isinstance(answer, dict) else None
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(float(str(value).replace(",", "").strip()))
    except (TypeError, ValueError, OverflowError):
        return 0


# -- steps --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    text: str
    name: str = ""  # a title distinct from the text ("Preheat", then the text)
    section: str = ""  # the HowToSection it belongs to ("For the sauce")


def _howto_pairs(item: dict, page: Page, zh: bool) -> Iterator[Candidate]:
    task = _task(_item_name(item, page), zh, _ZH_HOW_TO, _EN_HOW_TO)
    steps = flatten_steps(item.get("step")) or flatten_steps(item.get("steps"))
    if not task or not steps:
        return
    instruction = f"如何{task}？" if zh else f"How do I {task}?"
    yield Candidate(instruction, numbered_steps(steps, zh), KIND_HOWTO, MINER, CONFIDENCE_STEPS)
    total = len(steps)
    for number, step in enumerate(steps, 1):
        yield Candidate(
            _step_instruction(task, number, total, step, zh),
            step.text,
            KIND_HOWTO_STEP,
            MINER,
            CONFIDENCE_STEPS,
        )


def _step_instruction(task: str, number: int, total: int, step: Step, zh: bool) -> str:
    if zh:
        return f"{task}的第{number}步：{step.name}" if step.name else f"{task}的第{number}步是什么？"
    if step.name:
        return f"Step {number} of {total} to {task}: {step.name}"
    return f"What is step {number} of {total} to {task}?"


def _recipe_pairs(item: dict, page: Page, zh: bool) -> Iterator[Candidate]:
    name = _task(_item_name(item, page), zh, _ZH_HOW_TO_MAKE, _EN_HOW_TO_MAKE, lower_first=False)
    steps = flatten_steps(item.get("recipeInstructions"))
    if not name or not steps:
        return
    instruction = f"怎么做{name}？" if zh else f"How do I make {name}?"
    yield Candidate(instruction, numbered_steps(steps, zh), KIND_RECIPE, MINER, CONFIDENCE_STEPS)


def flatten_steps(value: object, section: str = "", depth: int = 0) -> list[Step]:
    """Steps in order from HowTo.step / Recipe.recipeInstructions.

    Accepts what sites publish: one string (one step per line, leading "1." /
    "Step 1:" dropped), a list of strings, HowToStep items (text, else their
    HowToDirection items, else their name), and HowToSection / ItemList items
    whose itemListElement holds the steps.
    """
    steps: list[Step] = []
    if depth > MAX_NESTING:
        return steps
    for entry in _as_list(value):
        if len(steps) >= MAX_STEPS:
            break
        if isinstance(entry, dict):
            steps.extend(_dict_steps(entry, section, depth))
        else:
            steps.extend(Step(line, section=section) for line in _step_lines(plain_text(entry)))
    return steps[:MAX_STEPS]


def _dict_steps(entry: dict, section: str, depth: int) -> list[Step]:
    types = set(type_names(entry))
    children = entry.get("itemListElement") or entry.get("steps") or entry.get("step")
    text = plain_text(entry.get("text"))
    name = plain_text(entry.get("name"))
    if children and ("HowToSection" in types or "ItemList" in types or not text):
        if "HowToStep" not in types:
            return flatten_steps(children, name or section, depth + 1)
        # A HowToStep whose text sits in HowToDirection / HowToTip children.
        text = text or " ".join(step.text for step in flatten_steps(children, section, depth + 1))
    if not text:
        text, name = name, ""
    text = _LEADING_NUMBER.sub("", " ".join(text.split("\n")))
    if not text:
        return []
    if name:
        text_key, name_key = normalize_for_compare(text), normalize_for_compare(name)
        if text_key.startswith(name_key) or name_key.startswith(text_key):
            name = ""
    return [Step(text, name.rstrip(_END_PUNCTUATION), section)]


def _step_lines(text: str) -> list[str]:
    """Steps of one instructions string: split at "1.", "2.", "3." … when the text
    numbers its steps in sequence (even on one line: "1.切丁 2.翻炒"), else one per line."""
    cuts = []
    for match in _INLINE_NUMBER.finditer(text):
        if int(match.group(1)) == len(cuts) + 1:
            cuts.append(match)
    if len(cuts) >= 2:
        ends = [cut.start() for cut in cuts[1:]] + [len(text)]
        parts = [text[: cuts[0].start()]] + [text[cut.end() : end] for cut, end in zip(cuts, ends)]
        return [" ".join(part.split()) for part in parts if part.strip()]
    return [line for line in (_LEADING_NUMBER.sub("", raw).strip() for raw in text.split("\n")) if line]


def numbered_steps(steps: list[Step], zh: bool = False) -> str:
    """One line per step, "1. …", numbered through the whole list, each section's name above its steps."""
    lines: list[str] = []
    show_sections = len({step.section for step in steps}) > 1 or any(step.section for step in steps)
    section = None
    for number, step in enumerate(steps, 1):
        if show_sections and step.section != section:
            section = step.section
            if section:
                lines.append(section if section.endswith((":", "：")) else section + ("：" if zh else ":"))
        lines.append(f"{number}. {step.text}")
    return "\n".join(lines)


# -- text ---------------------------------------------------------------------


def plain_text(value: object) -> str:
    """Markup text as plain lines: HTML tags dropped, entities decoded, spaces collapsed.

    Some sites escape their HTML twice ("&lt;p&gt;"); that is decoded first.
    """
    if isinstance(value, list):
        return "\n".join(filter(None, (plain_text(v) for v in value[:MAX_STEPS])))
    if isinstance(value, dict):
        value = value.get("@value", value.get("text", ""))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        return ""
    if "&lt;" in value and "<" not in value:
        value = html_lib.unescape(value)
    if "<" in value:
        value = extract_plain_text(value, preserve_formatting=True, list_bullets=True, alt_texts=False)
    elif "&" in value:
        value = html_lib.unescape(value)
    lines = (" ".join(line.split()) for line in value.split("\n"))
    return "\n".join(line for line in lines if line)


def _item_name(item: dict, page: Page) -> str:
    """The item's name; the page title when the item has none."""
    return plain_text(item.get("name")) or plain_text(item.get("headline")) or page.title.strip()


def _task(name: str, zh: bool, zh_prefix: re.Pattern, en_prefix: re.Pattern, lower_first: bool = True) -> str:
    """The task as it reads after "How do I" / "如何": "How to Tie a Tie?" → "tie a Tie"."""
    name = " ".join(name.split()).rstrip(_END_PUNCTUATION)
    if zh:
        return zh_prefix.sub("", name).strip()
    name = en_prefix.sub("", name).strip()
    first, _, _ = name.partition(" ")
    if lower_first and len(first) > 1 and first[0].isupper() and first[1:].islower():
        name = name[0].lower() + name[1:]
    return name


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
