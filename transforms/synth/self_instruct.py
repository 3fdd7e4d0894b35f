"""The pure pieces of the Self-Instruct bootstrapping loop (Wang et al. 2022), for English and Chinese.

The loop (driven by jobs/, generation by vLLM) is:

1. `sample_prompt_tasks`: 8 tasks for one "Come up with a series of tasks:"
   prompt, 6 human seeds + 2 machine-generated (fewer early on);
2. `parse_generated_instructions`: the numbered list the model continued;
3. `instruction_rejection`: length, keywords, leading punctuation,
   "Write a program" (then `NoveltyIndex` for ROUGE-L < 0.7 against the pool);
4. `parse_classification_answer`: the few-shot "Is it classification?" reply;
5. `parse_instances`: examples generated output-first (classification) or
   input-first (everything else);
6. `instance_rejections` / `filter_instances`: drop input = output, empty or unfinished outputs,
   inputs given different outputs, duplicates, and keep at most 5.

Rules follow yizhongw/self-instruct (bootstrap_instructions.py,
prepare_for_finetuning.py) unless a comment says why not. Every drop is a
reason string (see `INSTRUCTION_REASONS`, `INSTANCE_REASONS`) that the job
counts as a stat.

Chinese: lengths are counted in Han/kana characters plus other words (Chinese
has no spaces; rule 3 of transforms/text.py, so Korean, which is spaced, keeps
the word rules), the keyword list has Chinese equivalents chosen so that ordinary
words that merely contain 图 or 画 survive, and the paper's "starts with a
non-ASCII character" rule, which exists to drop non-English output, is not
applied to Chinese.
"""

from __future__ import annotations

import random
import re
import string
import unicodedata
from collections.abc import Sequence

from templates import load_yaml
from transforms.decontaminate import BenchmarkIndex
from transforms.synth.novelty_index import NoveltyIndex
from transforms.text import count_chars_and_words, is_spaceless_dominant

INSTRUCTION_REASONS = (
    "too_short",
    "too_long",
    "leading_punctuation",
    "non_ascii_start",
    "write_a_program",
    "blacklisted_keyword",
)
INSTANCE_REASONS = (
    "empty_output",
    "input_equals_output",
    "incomplete",
    "conflicting_outputs",
    "duplicate",
    "over_limit",
)

# The paper keeps 3 < words <= 150 (str.split words).
EN_MIN_WORDS_EXCLUSIVE = 3
EN_MAX_WORDS = 150
# Chinese: Han/kana characters + other words. Over the 170 seed tasks BELLE
# translated from the Alpaca seeds, the median is 1.55 such units per English
# word, so "more than 3 words" becomes "more than 4 units" ("完善歌词。" is the
# translation of the 3-word "Complete the lyrics.", both rejected), and 150
# words about 233 units; 300 leaves the same slack the English bound has.
ZH_MIN_UNITS_EXCLUSIVE = 4
ZH_MAX_UNITS = 300
MAX_INSTANCES_PER_TASK = 5


def _is_chinese(text: str, lang: str) -> bool:
    """Character-counting rules for a spaceless `lang` ("zh", "zh-Hans", "ja", "yue", …) or Han/kana-dominant text.

    The text decides too: under the English rules a Chinese sentence is one
    "word" (too short) that starts with a non-ASCII character, so a language
    ID that says "en" for a short Chinese instruction must not reject it.
    """
    return is_spaceless_dominant(text, lang)


def _squash(text: str) -> str:
    return " ".join(text.split())


# --- 1. prompt tasks -------------------------------------------------------------


def sample_prompt_tasks(
    human_pool: Sequence[str],
    machine_pool: Sequence[str],
    rng: random.Random,
    n_human: int = 6,
    n_machine: int = 2,
) -> list[str]:
    """n_human + n_machine distinct tasks for one generation prompt, in random order.

    Early on the machine pool holds fewer than n_machine instructions; the
    missing places go to human seeds, as in the paper (which samples
    min(2, len(machine)) machine tasks and fills up to 8 with seeds).
    """
    if not human_pool and not machine_pool:
        raise ValueError("sample_prompt_tasks: both pools are empty; give at least one seed task")
    machine = rng.sample(list(machine_pool), min(n_machine, len(machine_pool)))
    wanted = n_human + n_machine - len(machine)
    human = rng.sample(list(human_pool), min(wanted, len(human_pool)))
    tasks = machine + human
    rng.shuffle(tasks)
    return tasks


# --- 2. generated instructions ---------------------------------------------------

# "10. …", "10) …", "10、…", "Task 10: …", "任务10：…", "**10.** …", "- 10. …".
_ITEM = re.compile(
    r"^[ \t]*(?:[-*>#]+[ \t]*)?(?:\*\*)?"
    r"(?:(?:task|instruction|任务|指令)[ \t]*#?[ \t]*)?"
    r"(\d{1,3})[ \t]*[.:：)）、．][ \t]*(?:\*\*)?[ \t]*(.*)$",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^(?:task|instruction|任务|指令)[ \t]*[:：][ \t]*", re.IGNORECASE)
# The model has moved on from listing tasks: examples, or the prompt again.
_NOT_A_TASK = re.compile(
    r"^[ \t]*(?:(?:input|output|输入|输出)[ \t]*\d*[ \t]*[:：]"
    r"|(?:example|示例)[ \t]*\d*[ \t]*[:：]?[ \t]*$"
    r"|come up with|(?:请)?列出一系列任务)",
    re.IGNORECASE,
)


def parse_generated_instructions(text: str, start_index: int | None = 9, truncated: bool = False) -> list[str]:
    """Instructions from a completion that continues a numbered task list at `start_index`.

    The prompt lists 8 tasks and ends with "9.", so the completion is
    " <task 9>\\n10. <task 10>\\n…"; a completion that repeats "9." first, or
    numbers as "Task 10:" / "10)" / "10、" / "任务10：", parses the same. A task
    may continue on the next lines (joined with spaces). Parsing stops at
    garbage: a number out of sequence (the model restarted a list), a blank
    line not followed by the next number (the paper stops generation at
    "\\n\\n"), or an Input/Output/Example line. With `truncated` (the
    generation hit max_tokens) the last task is dropped, as it may be cut off;
    the paper drops the whole completion instead. `start_index=None` takes the
    sequence from the first numbered line, whatever its number: a chat model
    answers in a turn of its own and may number its new tasks from 1.
    """
    items: list[list[str]] = []
    expected = start_index
    pending_blank = False
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            pending_blank = bool(items)
            continue
        match = _ITEM.match(line)
        if match and expected is None:
            expected = int(match.group(1))
        if match and int(match.group(1)) == expected:
            items.append([match.group(2)])
            expected += 1
            pending_blank = False
        elif match or pending_blank or _NOT_A_TASK.match(line):
            break
        elif not items:
            items.append([stripped])  # the rest of the prompt's "9." line
            expected = None if expected is None else expected + 1
        else:
            items[-1].append(stripped)
    if truncated and items:
        items.pop()
    out = []
    for parts in items:
        instruction = _clean_instruction(" ".join(parts))
        if instruction:
            out.append(instruction)
    return out


def _clean_instruction(text: str) -> str:
    text = _squash(text.replace("**", ""))
    text = _LABEL.sub("", text)
    # The paper applies str.capitalize(), which also lowercases the rest
    # ("Use the NumPy API" -> "Use the numpy api"); only the first letter here.
    if text[:1].isascii() and text[:1].islower():
        text = text[0].upper() + text[1:]
    return text


# --- 3. instruction filter -------------------------------------------------------

# The paper's keyword list and its Chinese equivalents (regular expressions):
# templates/self_instruct.yaml. English matches as whole words, case-insensitive,
# with ASCII word edges (a Han character is a word character for \b).
EN_BLACKLIST = tuple(load_yaml("self_instruct.yaml", "blacklist.en"))
ZH_BLACKLIST = tuple(load_yaml("self_instruct.yaml", "blacklist.zh"))
_EN_BLACKLIST = re.compile(
    r"(?<![A-Za-z0-9_])(?:" + "|".join(EN_BLACKLIST) + r")(?![A-Za-z0-9_])", re.IGNORECASE
)
_ZH_BLACKLIST = re.compile("|".join(ZH_BLACKLIST))
# The paper drops instructions starting with "Write a program" (the model kept
# appending it to other tasks, leaving unclear whether to write code or answer).
_ZH_WRITE_A_PROGRAM = re.compile(r"^(?:请你?|你能|帮我)?(?:编写|写|编)出?(?:一个|一段|个)?程序")
# A Chinese instruction may open with a book title or a quotation: 《红楼梦》…, “双减”…
_OPENING_CATEGORIES = ("Ps", "Pi")


def instruction_rejection(instruction: str, lang: str = "") -> str | None:
    """Why a generated instruction is dropped (one of `INSTRUCTION_REASONS`), or None to keep it.

    `lang` "zh" (or "zh-*", "ja"), or Han/kana-dominant text whatever `lang`
    says, switches to character counting and the Chinese rules.
    """
    text = instruction.strip()
    chinese = _is_chinese(text, lang)
    if chinese:
        chars, words = count_chars_and_words(text)
        size, low, high = chars + words, ZH_MIN_UNITS_EXCLUSIVE, ZH_MAX_UNITS
    else:
        size, low, high = len(text.split()), EN_MIN_WORDS_EXCLUSIVE, EN_MAX_WORDS
    if size <= low:
        return "too_short"
    if size > high:
        return "too_long"
    first = text[0]
    if chinese:
        category = unicodedata.category(first)
        if category[0] in "PS" and category not in _OPENING_CATEGORIES:
            return "leading_punctuation"
    else:
        if first in string.punctuation:
            return "leading_punctuation"
        if not first.isascii():
            return "non_ascii_start"
    if text.lower().startswith("write a program") or _ZH_WRITE_A_PROGRAM.match(text):
        return "write_a_program"
    if _EN_BLACKLIST.search(text) or _ZH_BLACKLIST.search(text):
        return "blacklisted_keyword"
    return None


# --- 4. classification or not ----------------------------------------------------

_ANSWER_PREFIX = re.compile(
    r"^(?:is it (?:a )?classification(?: task)?\??|是否(?:为|是)?分类任务[?？]?|(?:answer|答案|回答|答)[ \t]*[:：])[ \t]*",
    re.IGNORECASE,
)
_YES_NO = re.compile(r"(yes|no|true|false)\b", re.IGNORECASE)



def new_instruction_rejection(
    instruction: str, lang: str, novelty: NoveltyIndex, benchmarks: BenchmarkIndex | None = None,
) -> str | None:
    """Why a generated instruction does not join the pool, or None to keep it: the instruction
    rules (`instruction_rejection`), an n-gram of an evaluation set (`contaminated.<benchmark>`:
    it would otherwise also become a demonstration of later rounds), or a near-copy of one the
    pool holds (`not_novel`)."""
    reason = instruction_rejection(instruction, lang)
    if reason is None and benchmarks is not None:
        reason = benchmarks.contamination(instruction)
    if reason is None and not novelty.is_novel(instruction):
        reason = "not_novel"
    return reason

def parse_classification_answer(text: str) -> bool | None:
    """True for Yes/是, False for No/否/不是, None when the reply says neither.

    The paper reads the 3-token completion after "Is it classification?" and
    treats anything but "Yes" as No; None lets the job count unparseable
    replies instead of silently calling them generation tasks.
    """
    s = _ANSWER_PREFIX.sub("", text.strip().lstrip("*\"'“ \t")).strip().lstrip("*\"'“ \t")
    match = _YES_NO.match(s)
    if match:
        return match.group(1).lower() in ("yes", "true")
    if s.startswith(("不是", "否", "不")):
        return False
    if s.startswith(("是", "对")):
        return True
    return None


# --- 5. instances -----------------------------------------------------------------

# A generated example may run into the next few-shot task.
_NEXT_TASK = re.compile(r"\n[ \t]*(?:Task|任务)[ \t]*[:：]")
_CLASS_LABEL = re.compile(r"^[ \t]*(?:Class label|类别标签|类别|标签)[ \t]*[:：]", re.MULTILINE)
# Numbered block markers at a line start: "Example 1", "Example 2.", "示例1：",
# "例子 2", "例1". Unnumbered "Example:" is content, not a marker: the seed
# output of "black sheep" ends with "Example: He's the black sheep of the
# family." (the paper's regex splits there).
_EXAMPLE = re.compile(r"^[ \t]*(?:Example|示例|例子|例)[ \t]*\d+[ \t]*[.:：]?", re.MULTILINE)
# As the paper: "Output:", "Output 2:" anywhere; Chinese with either colon.
_OUTPUT = re.compile(r"(?:Output|输出)\s*\d*\s*[:：]")
_INPUT = re.compile(r"(?:Input|输入)\s*\d*\s*[:：]")
_INPUT_PREFIX = re.compile(r"^\s*(?:Input|输入)\s*\d*\s*[:：]")


def parse_instances(text: str, output_first: bool, truncated: bool = False,
                    bare_reply_is_output: bool = False) -> list[tuple[str, str]]:
    """(input, output) pairs from an instance-generation completion.

    output_first (classification tasks): "Class label: X\\n<input lines>"
    repeated (类别标签：/类别：/标签：), the label becomes the output.
    Otherwise: "Example N" blocks of "<input>\\nOutput: <output>"
    (示例/例子, 输出：), or one "Output:" pair; the input keeps its field names
    ("Sentence: …") but loses a leading "Input:". Without any marker there is
    nothing to parse (the paper returns no instances either), except with
    `bare_reply_is_output`: a chat model often carries the task out in its own
    turn instead of writing examples, and for a task without input ("If the task
    doesn't require additional input, you can generate the output directly")
    that reply is the output. With `truncated` the last pair is dropped, as in
    the paper.
    """
    text = _NEXT_TASK.split(text.replace("\r\n", "\n"))[0].strip()
    pairs = _parse_output_first(text) if output_first else _parse_input_first(text)
    if not pairs and bare_reply_is_output and not output_first and text:
        pairs = [("", text)]
    if truncated and pairs:
        pairs.pop()
    return pairs


def _parse_output_first(text: str) -> list[tuple[str, str]]:
    pairs = []
    for block in _CLASS_LABEL.split(text)[1:]:
        lines = block.strip("\n").split("\n")
        label = lines[0].strip()
        rest = lines[1:]
        if not label and rest:  # "Class label:\nPositive\n…"
            label, rest = rest[0].strip(), rest[1:]
        pairs.append(("\n".join(rest).strip(), label))
    return pairs


def _parse_input_first(text: str) -> list[tuple[str, str]]:
    if _EXAMPLE.search(text):
        blocks = [b.strip() for b in _EXAMPLE.split(text)]
        # Text before "Example 1" is a preamble ("Here are some examples:")
        # unless it already holds a pair (the model skipped "Example 1").
        if not _OUTPUT.search(blocks[0]):
            blocks = blocks[1:]
        return [_input_output(b) for b in blocks if b]
    if _OUTPUT.search(text):
        return [_input_output(text)]
    return []


def _input_output(block: str) -> tuple[str, str]:
    parts = _OUTPUT.split(block, maxsplit=1)
    if len(parts) == 2:
        input_, output = parts
    else:
        input_, output = "", block
    output = _INPUT.split(output, maxsplit=1)[0]  # a second pair ran on: keep the first
    input_ = _INPUT_PREFIX.sub("", input_)
    return input_.strip(), output.strip()


# --- 6. instance filter -----------------------------------------------------------


def instance_rejection(input_: str, output: str) -> str | None:
    """Why one generated (input, output) pair is dropped on its own, or None.

    "incomplete": an output ending with a colon ("Here are the steps:") was
    cut before its content. The paper checks inputs too, but an input ending
    with a colon is often a slot to fill: real seed inputs
    "Instability : Turmoil:: Change :" and "Atheism:\nChristianity:\n…".
    """
    inp, out = _squash(input_), _squash(output)
    if not out:
        return "empty_output"
    if inp == out:
        return "input_equals_output"
    if out.endswith((":", "：")):
        return "incomplete"
    return None


def instance_rejections(
    instances: Sequence[tuple[str, str]],
    rng: random.Random | None = None,
    max_instances: int = MAX_INSTANCES_PER_TASK,
) -> list[str | None]:
    """One reason or None per (input, output) pair of one task, all rules applied.

    After `instance_rejection`: every pair whose non-empty input also appears
    with a different output is dropped ("conflicting_outputs"; the paper drops
    the whole task there, we keep the task's other inputs; an empty input
    with several outputs is a no-input task with several answers and stays);
    repeats of a kept pair are "duplicate"; of the rest at most
    `max_instances` stay, a random sample with `rng` (the paper samples) or
    the first ones without.
    """
    reasons: list[str | None] = [instance_rejection(i, o) for i, o in instances]
    keys = [(_squash(i), _squash(o)) for i, o in instances]
    outputs_by_input: dict[str, set[str]] = {}
    for (inp, out), reason in zip(keys, reasons):
        if reason is None and inp:
            outputs_by_input.setdefault(inp, set()).add(out)
    seen: set[tuple[str, str]] = set()
    for n, ((inp, _), reason) in enumerate(zip(keys, reasons)):
        if reason is not None:
            continue
        if inp and len(outputs_by_input[inp]) > 1:
            reasons[n] = "conflicting_outputs"
        elif keys[n] in seen:
            reasons[n] = "duplicate"
        else:
            seen.add(keys[n])
    kept = [n for n, reason in enumerate(reasons) if reason is None]
    if len(kept) > max_instances:
        chosen = set(rng.sample(kept, max_instances)) if rng is not None else set(kept[:max_instances])
        for n in kept:
            if n not in chosen:
                reasons[n] = "over_limit"
    return reasons


def filter_instances(
    instances: Sequence[tuple[str, str]],
    rng: random.Random | None = None,
    max_instances: int = MAX_INSTANCES_PER_TASK,
) -> tuple[list[tuple[str, str]], list[str]]:
    """(kept pairs, one reason per dropped pair): `instance_rejections` split for a job's counters."""
    reasons = instance_rejections(instances, rng, max_instances)
    kept = [pair for pair, reason in zip(instances, reasons) if reason is None]
    return kept, [reason for reason in reasons if reason is not None]
