"""Step-by-step procedures (kinds "howto" and "howto_step").

A heading (or, failing that, the page title) that names a task, "How to X",
"How do I X", "如何X", "怎么X", "X的方法", "X教程" (`howto.title_patterns` in
templates/mining.yaml), followed within its section by at least MIN_STEPS
steps. Steps are, in order of preference:

1. "Step N" / "第N步" / "步骤N" blocks (headings, paragraphs or list items);
   each step runs to the next marker, and stops at a heading as high as its
   own (or any heading, for a paragraph marker); numbering that restarts
   ("Step 1" again, a second method) ends the run;
2. numbered headings or paragraphs ("1. Examine the blooms", "2.点击“确定”",
   "3预览效果"), numbered 1, 2, 3 … without a gap; each runs like a marker step;
3. the first ordered list (LIST_ITEM, order > 0) that reads like steps; a
   breadcrumb, a table of contents, a list of links to other how-tos,
   questions or headlines, or one of one- and two-word items reads like
   navigation and is skipped (the same test applies to numbered blocks);
4. a procedure told in prose: paragraphs that open with a sequence word
   ("First, …", "Then …", "Next …", "首先…", "然后…";
   `howto.sequence_openers`), at least MIN_SEQUENCE_STEPS of them and the first
   a "first" word; each step runs to the next such paragraph, and the last one
   keeps only the code or list right after it.

Without a how-to heading, a short paragraph right before the steps that names
the task and counts them ("Set up the router in 3 steps", "编辑词条只需四步",
`howto.lead_in_patterns`) is the task; failing that, the page title.

Each procedure gives one "howto" pair, "How do I x?" → "1. …\\n2. …", and one
"howto_step" pair per step, "How do I x? What is step 2?" → that step with its
explanation. Phrasings come from templates/mining.yaml and are picked by a hash
of the page URL and the step number, so runs are reproducible and no single
phrasing dominates. A section stops at the next how-to heading of any level,
so a parent heading does not take a nested task's steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from templates import load_yaml
from transforms.mine.blocks import HEADING, LIST_ITEM, PARAGRAPH, Block, Page, render_blocks
from transforms.questions import (
    compile_phrase,
    is_question,
    normalize_for_compare,
    strip_site_suffix,
)
from transforms.records import KIND_HOWTO, KIND_HOWTO_STEP, Candidate
from transforms.text import contains_spaceless, family_of_text, split_sentences

MINER = "howto"

# Explicit "Step N" markers are the strongest sign of a procedure; an ordered
# list under a how-to heading is nearly as good. Steps found under the page
# title alone could sit anywhere on the page, so they lose a little.
CONFIDENCE_STEP_MARKERS = 0.8
CONFIDENCE_ORDERED_LIST = 0.75
TITLE_ONLY_PENALTY = 0.1
# A single step, out of its procedure, is a weaker instruction.
CONFIDENCE_STEP = 0.6
CONFIDENCE_LIST_STEP = 0.55
MIN_STEPS = 2
# Steps are sentences with a verb: "Preheat the oven to 200 °C". Navigation
# lists are one or two words per item ("Home", "Contact us").
MIN_MEDIAN_STEP_WORDS = 3
MIN_MEDIAN_STEP_CHARS_CJK = 4
# Headlines in a list of related links are long Title Case lines.
HEADLINE_MIN_WORDS = 4
CONFIDENCE_NUMBERED_BLOCKS = 0.75
CONFIDENCE_SEQUENCE = 0.6  # "First … Then … Next …" in prose: the step boundaries are a reading
# A procedure told in prose needs this many sequence-word paragraphs ("First", "Then", "Next").
MIN_SEQUENCE_STEPS = 3
# A lead-in names the task in a short line; the steps start right after it.
MAX_LEAD_IN_CHARS = 60
LEAD_IN_WINDOW = 2
# Task names longer than this are sentences, not titles.
MAX_TASK_WORDS = 14
MAX_TASK_CHARS_CJK = 30


def _setting(key: str) -> Any:
    return load_yaml("mining.yaml", f"howto.{key}")


# (language, task form) pairs the title patterns define; each needs its own
# instruction and step phrasings, looked up here so an edited YAML that lacks
# one fails at import with the missing key named.
_TASK_FORMS = [(lang, form) for lang, forms in _setting("title_patterns").items() for form in forms]
_PLACEHOLDER = re.compile(r"\{\w+\}")


def _anchor(phrase: str) -> str:
    """The phrase's longest literal word, lower-cased: text without it cannot match the phrase.

    Checking it first skips most regexes, since most headings name no task.
    """
    return max(_PLACEHOLDER.sub(" ", phrase).lower().split(), key=len, default="")


_TITLE_PATTERNS = sorted(
    (
        (compile_phrase(phrase), _anchor(phrase), lang, form)
        for lang, form in _TASK_FORMS
        for phrase in _setting(f"title_patterns.{lang}.{form}")
    ),
    key=lambda entry: -len(entry[0].pattern),  # longest first: "怎样才能{task}" before "怎样{task}"
)
_INSTRUCTIONS = {(lang, form): _setting(f"instructions.{lang}.{form}") for lang, form in _TASK_FORMS}
_STEP_INSTRUCTIONS = {
    (lang, form): _setting(f"step_instructions.{lang}.{form}") for lang, form in _TASK_FORMS
}
_STEP_MARKERS = [
    compile_phrase(phrase, prefix=True)
    for lang in _setting("step_markers")
    for phrase in _setting(f"step_markers.{lang}")
]
_LEAD_IN_PATTERNS = sorted(
    (
        (compile_phrase(phrase), _anchor(phrase), lang, form)
        for lang, forms in _setting("lead_in_patterns").items()
        for form in forms
        for phrase in _setting(f"lead_in_patterns.{lang}.{form}")
    ),
    key=lambda entry: -len(entry[0].pattern),
)
for _lang, _form in {(lang, form) for _, _, lang, form in _LEAD_IN_PATTERNS} - set(_TASK_FORMS):
    raise KeyError(f"templates/mining.yaml: howto.lead_in_patterns.{_lang}.{_form} has no title_patterns form")


def _opener_pattern(kind: str) -> re.Pattern[str]:
    words = [w for lang in ("en", "zh") for w in _setting(f"sequence_openers.{kind}.{lang}")]
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    # English words end at a non-letter ("Then," "Next is"); Chinese ones touch the next word.
    return re.compile(rf"^\s*(?:{alternatives})(?![A-Za-z])", re.IGNORECASE)


_FIRST_OPENER = _opener_pattern("first")
_THEN_OPENER = _opener_pattern("then")
# "1. ", "2)", "3、", "4．", and on headings "3预览效果" (a digit against CJK text).
_BLOCK_NUMBER = re.compile(r"^\s*(\d{1,2})(?:[.．、)）:：]\s*|\s+(?=\S)|(?=[\u4e00-\u9fff]))")
_SUBTITLE = re.compile(r"(?::\s|：).*$")
_TRAILING_PARENTHETICAL = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")
_ZH_DIGITS = dict(zip("零一二三四五六七八九", range(10), strict=True)) | {"两": 2}


@dataclass(frozen=True, slots=True)
class HowtoTask:
    """The task a how-to title names: "tie a tie" (en, verb phrase) or "Python安装" (zh, noun phrase)."""

    text: str
    lang: str
    form: str  # "verb_phrase" or "noun_phrase": which templates fit it


@dataclass(slots=True)
class Step:
    summary: str  # one line for the procedure's numbered list
    detail: list[Block]  # the step's own text: its marker line or list item, then its explanation
    first: int = 0  # index of the step's first block on the page


def mine_howto(page: Page) -> Iterator[Candidate]:
    found_any = False
    for task, start, end in _howto_sections(page.blocks):
        for candidate in _procedure_pairs(page, task, start, end, penalty=0.0):
            found_any = True
            yield candidate
    if not found_any:
        for task, start in _lead_ins(page.blocks):
            for candidate in _procedure_pairs(page, task, start, len(page.blocks), penalty=0.0, window=LEAD_IN_WINDOW):
                found_any = True
                yield candidate
    if not found_any:
        task = parse_howto_title(strip_site_suffix(page.title))
        if task:
            yield from _procedure_pairs(page, task, 0, len(page.blocks), penalty=TITLE_ONLY_PENALTY)


def _lead_ins(blocks: Sequence[Block]) -> Iterator[tuple[HowtoTask, int]]:
    """(task, index after it) for short paragraphs that name a task and count its steps."""
    for i, block in enumerate(blocks):
        text = block.text.strip()
        if block.kind != PARAGRAPH or len(text) > MAX_LEAD_IN_CHARS:
            continue
        lowered = text.lower()
        for pattern, anchor, lang, form in _LEAD_IN_PATTERNS:
            match = anchor in lowered and pattern.match(text)
            if match:
                task = match.group("task").strip(" ,.;:，。；：")
                if task:
                    yield HowtoTask(_lowercase_first_word(task) if lang == "en" else task, lang, form), i + 1
                break


def parse_howto_title(text: str) -> HowtoTask | None:
    """The task named by a how-to heading or title, or None.

    "How to Tie a Tie (with Pictures)" → HowtoTask("tie a Tie", "en", "verb_phrase");
    "Python安装教程：详细步骤" → HowtoTask("Python安装", "zh", "noun_phrase").
    """
    cleaned = _SUBTITLE.sub("", text.strip()).strip().rstrip("?？").strip()
    cleaned = _TRAILING_PARENTHETICAL.sub("", cleaned).strip().rstrip("?？").strip()
    lowered = cleaned.lower()
    for pattern, anchor, lang, form in _TITLE_PATTERNS:
        match = anchor in lowered and pattern.match(cleaned)
        if not match:
            continue
        task = match.group("task").strip(" ,.;，。；")
        if lang == "en" and task[:1].isalpha() and 1 <= len(task.split()) <= MAX_TASK_WORDS:
            return HowtoTask(_lowercase_first_word(task), lang, form)
        if lang == "zh" and 2 <= len(task) <= MAX_TASK_CHARS_CJK:
            return HowtoTask(task, lang, form)
    return None


def _lowercase_first_word(task: str) -> str:
    """Lower-case a plainly capitalised first word: "Tie a Tie" → "tie a Tie".

    "USB…", "iPhone…", "PowerShell…" keep their case; words after the first are
    left alone, since title case cannot be told from proper nouns ("Python").
    """
    first = task.split()[0]
    if len(first) > 1 and first[0].isupper() and first[1:].islower():
        return task[0].lower() + task[1:]
    return task


def _howto_sections(blocks: Sequence[Block]) -> Iterator[tuple[HowtoTask, int, int]]:
    tasks = {i: parse_howto_title(b.text) for i, b in enumerate(blocks) if b.kind == HEADING}
    for i, task in tasks.items():
        if task is None:
            continue
        end = len(blocks)
        for j in range(i + 1, len(blocks)):
            if blocks[j].kind == HEADING and (blocks[j].level <= blocks[i].level or tasks.get(j)):
                end = j
                break
        yield task, i + 1, end


def _procedure_pairs(
    page: Page, task: HowtoTask, start: int, end: int, penalty: float, window: int | None = None
) -> Iterator[Candidate]:
    """The procedure's pairs; with `window`, its steps must start within that many blocks of `start`."""
    sources = (
        (lambda: _marker_steps(page.blocks, start, end, _parse_step_marker), CONFIDENCE_STEP_MARKERS, CONFIDENCE_STEP),
        (lambda: _numbered_block_steps(page, start, end), CONFIDENCE_NUMBERED_BLOCKS, CONFIDENCE_LIST_STEP),
        (lambda: _ordered_list_steps(page, start, end), CONFIDENCE_ORDERED_LIST, CONFIDENCE_LIST_STEP),
        (lambda: _sequence_steps(page.blocks, start, end), CONFIDENCE_SEQUENCE, CONFIDENCE_LIST_STEP),
    )
    for find, confidence, step_confidence in sources:
        steps = find()
        if len(steps) >= MIN_STEPS and (window is None or steps[0].first - start < window):
            break
    else:
        return
    output = "\n".join(f"{n}. {step.summary}" for n, step in enumerate(steps, start=1))
    yield Candidate(
        instruction=_instruction(task, page.url, 0),
        output=output,
        kind=KIND_HOWTO,
        miner=MINER,
        confidence=round(confidence - penalty, 2),
    )
    for n, step in enumerate(steps, start=1):
        detail = render_blocks(step.detail)
        if normalize_for_compare(detail):
            yield Candidate(
                instruction=_instruction(task, page.url, n),
                output=detail,
                kind=KIND_HOWTO_STEP,
                miner=MINER,
                confidence=round(step_confidence - penalty, 2),
            )


def _instruction(task: HowtoTask, url: str, step: int) -> str:
    """Step 0 is the whole procedure; a hash of (url, step) picks the phrasing."""
    phrasings = (_STEP_INSTRUCTIONS if step else _INSTRUCTIONS)[task.lang, task.form]
    digest = hashlib.blake2b(f"{url}\x00{step}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    phrasing = phrasings[int.from_bytes(digest, "big") % len(phrasings)]
    return phrasing.replace("{task}", task.text).replace("{n}", str(step))


def _marker_steps(
    blocks: Sequence[Block], start: int, end: int, parse: Callable[[Block], tuple[int, str] | None],
    kinds: frozenset[str] = frozenset({HEADING, PARAGRAPH, LIST_ITEM}), consecutive: bool = False,
) -> list[Step]:
    """Steps that open with a number `parse` reads off a block; with `consecutive`, numbered
    1, 2, 3 … without a gap and all of one block kind."""
    markers: list[tuple[int, str]] = []  # (block index, text after the marker)
    previous = 0
    for i in range(start, end):
        if blocks[i].kind not in kinds:
            continue
        parsed = parse(blocks[i])
        if parsed is None:
            continue
        number, rest = parsed
        if number <= previous:  # numbering restarts: a second method
            break
        if consecutive and (number != previous + 1 or (markers and blocks[i].kind != blocks[markers[0][0]].kind)):
            if markers:
                break
            continue
        markers.append((i, rest))
        previous = number
    steps = []
    for k, (i, rest) in enumerate(markers):
        stop = markers[k + 1][0] if k + 1 < len(markers) else end
        explanation = []
        for block in blocks[i + 1 : stop]:
            if block.kind == HEADING and (blocks[i].kind != HEADING or block.level <= blocks[i].level):
                break
            explanation.append(block)
        summary = rest or _first_sentence(explanation)
        if not summary:
            continue
        head = [Block(PARAGRAPH, rest)] if rest else []
        steps.append(Step(summary=summary, detail=head + explanation, first=i))
    return steps


def _numbered_block_steps(page: Page, start: int, end: int) -> list[Step]:
    steps = _marker_steps(page.blocks, start, end, _parse_block_number, frozenset({HEADING, PARAGRAPH}),
                          consecutive=True)
    if len(steps) < MIN_STEPS:
        return []
    # Title Case step headings ("Know When to Plant Them") read like link titles; with text
    # under most of them they are a guide's sections, not a list of links.
    explained = sum(len(step.detail) > 1 for step in steps)
    if explained * 2 <= len(steps) and _reads_like_navigation([s.summary for s in steps], page):
        return []
    return steps


def _parse_block_number(block: Block) -> tuple[int, str] | None:
    match = _BLOCK_NUMBER.match(block.text)
    if not match or (block.kind != HEADING and not match.group(0).strip(" \t").endswith(tuple(".．、)）:："))):
        return None  # a paragraph opening with "3 cups" is not step 3
    rest = block.text[match.end() :].strip()
    return (int(match.group(1)), rest) if rest else None


def _sequence_steps(blocks: Sequence[Block], start: int, end: int) -> list[Step]:
    """Paragraphs opening with "First", then "Then" / "Next" / "Finally" …; see the module docstring."""
    openers = []
    for i in range(start, end):
        if blocks[i].kind == HEADING:
            break
        if blocks[i].kind != PARAGRAPH:
            continue
        if _FIRST_OPENER.match(blocks[i].text) or (openers and _THEN_OPENER.match(blocks[i].text)):
            openers.append(i)
    if len(openers) < MIN_SEQUENCE_STEPS:
        return []
    steps = []
    for k, i in enumerate(openers):
        if k + 1 < len(openers):
            detail = list(blocks[i : openers[k + 1]])
        else:
            detail = [blocks[i]]
            for block in blocks[i + 1 : end]:
                if block.kind in (PARAGRAPH, HEADING):
                    break
                detail.append(block)
        steps.append(Step(summary=_first_sentence(detail), detail=detail, first=i))
    return steps


def _parse_step_marker(block: Block) -> tuple[int, str] | None:
    text = block.text
    for pattern in _STEP_MARKERS:
        match = pattern.match(text)
        if match:
            number = _parse_number(match.group("n"))
            if number is not None:
                return number, text[match.end() :].lstrip(" :：.．、-–—)）\t").strip()
    return None


def _parse_number(text: str) -> int | None:
    """Arabic or Chinese numerals up to 99: "3", "十二", "二十"; "1.2" (a sub-step) is None."""
    text = text.strip().rstrip(".,")
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, units = text.partition("十")
        tens_value = _ZH_DIGITS.get(tens) if tens else 1
        units_value = _ZH_DIGITS.get(units) if units else 0
        if tens_value is None or units_value is None:
            return None
        return tens_value * 10 + units_value
    return _ZH_DIGITS.get(text) if len(text) == 1 else None


def _first_sentence(blocks: Sequence[Block]) -> str:
    for block in blocks:
        if block.text.strip():
            return split_sentences(block.text, family_of_text(block.text))[0]
    return ""


def _ordered_list_steps(page: Page, start: int, end: int) -> list[Step]:
    blocks = page.blocks
    tried: set[int] = set()
    for i in range(start, end):
        block = blocks[i]
        if block.kind != LIST_ITEM or block.order <= 0 or block.group in tried:
            continue
        tried.add(block.group)
        steps = _list_steps(blocks, i, end)
        if len(steps) >= MIN_STEPS and not _reads_like_navigation([s.summary for s in steps], page):
            return steps
    return []


def _list_steps(blocks: Sequence[Block], first: int, end: int) -> list[Step]:
    """Top-level items of the list that starts at `first`, each with its nested items.

    An item's text after its nested list arrives as another item with the same
    `order` (see transforms/mine/html_blocks.py); it continues that step.
    """
    top = blocks[first]
    steps: list[Step] = []
    last_order = 0
    for block in blocks[first:end]:
        if block.kind != LIST_ITEM:
            break
        if block.group == top.group and block.level == top.level:
            if steps and block.order == last_order:
                steps[-1].detail.append(Block(PARAGRAPH, block.text))
                continue
            steps.append(Step(summary=block.text.strip(), detail=[Block(PARAGRAPH, block.text)]))
            last_order = block.order
        elif block.level > top.level and steps:
            # Nested items keep their bullets, indented relative to the step.
            steps[-1].detail.append(dataclasses.replace(block, level=block.level - top.level))
        else:
            break
    return [s for s in steps if s.summary]


def _reads_like_navigation(items: list[str], page: Page) -> bool:
    """A breadcrumb (its last item is the page's own title or a heading), a
    table of contents (most items repeat headings), a list of links to other
    how-tos, questions or headlines, or items too short to be instructions."""
    title = strip_site_suffix(page.title)
    own_names = {normalize_for_compare(b.text) for b in page.blocks if b.kind == HEADING}
    own_names |= {normalize_for_compare(title), normalize_for_compare(_TRAILING_PARENTHETICAL.sub("", title))}
    if normalize_for_compare(items[-1]) in own_names:
        return True
    majority = len(items) / 2
    if sum(normalize_for_compare(item) in own_names for item in items) > majority:
        return True
    if sum(_reads_like_link_title(item, page.lang) for item in items) > majority:
        return True
    if contains_spaceless("".join(items)):  # no words to count (rule 3 of transforms/text.py)
        return (
            statistics.median(len(normalize_for_compare(item)) for item in items) < MIN_MEDIAN_STEP_CHARS_CJK
        )
    return statistics.median(len(item.split()) for item in items) < MIN_MEDIAN_STEP_WORDS


def _reads_like_link_title(item: str, lang: str) -> bool:
    """Another how-to, a question, or an English headline ("Aaron Hernandez Is An
    Idiot, But …"): four words or more, every word of four letters or more
    capitalised. Steps are sentences; short UI steps ("Click Save") stay."""
    if parse_howto_title(item) or is_question(item, lang):
        return True
    words = [w for w in item.split() if w[:1].isalpha()]
    long_words = [w for w in words if len(w) >= 4]
    return len(words) >= HEADLINE_MIN_WORDS and bool(long_words) and all(w[0].isupper() for w in long_words)
