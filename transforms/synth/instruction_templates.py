"""Instruction templates (templates/instructions/*.yaml): typed slots filled from a document.

Pretraining wants many instruction-shaped samples of many task types more
than it wants perfect answers, so the synthesis stage fills short templates
("What is {concept}?", "解释{a}和{b}之间的区别。") with values found in the
document itself (transforms/synth/slot_fillers.py). Templates are data a user edits:
each declares its task type, its language and the type of every slot, and
may name the extractive method that answers it without a model
(transforms/synth/extractive_answers.py).

Filling is plain `str.format` substitution, not Jinja: a template is a
sentence with holes, and a slot value (a passage scraped from the web) is
never evaluated. Every file is checked when it is loaded, so a typo fails
up front with the file and the template id named, not halfway through a job.
"""

from __future__ import annotations

import functools
import hashlib
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from templates import checked_entry, read_user_yaml
from transforms.text import contains_han, language_family

PACKAGED_FOLDER = "instructions"  # inside the `templates` package
TEMPLATE_SUFFIXES = (".yaml", ".yml")

# What an instruction asks for. Diversity across these matters more to a
# pretraining mix than the polish of any one answer.
TASK_TYPES = (
    "answer",  # a factual question about something the document names
    "classify",  # pick a label: sentiment, topic, fact or opinion
    "compare",  # differences, similarities, reasoning between two things
    "explain",  # what is / how does / why does a concept
    "extract",  # pull names, terms, keywords out of a given text
    "list",  # examples of a category, facts, points
    "rewrite",  # paraphrase, simplify, change register
    "summarize",  # shorten a given text
    "translate",  # into another language
    "write",  # open-ended generation about a topic
)

# The slot fillers read documents in these languages only.
TEMPLATE_LANGS = ("en", "zh")

# Slot types, and where transforms/synth/slot_fillers.py finds their values.
SLOT_TYPES = (
    "concept",  # a defined term, a capitalised multi-word phrase, a 《》/“” name
    "entity",  # any named thing: person, place, organisation or other
    "person",
    "place",
    "organization",
    "country",  # a place on the countries list
    "noun_phrase",  # a topic phrase ("water cycle", "光合作用")
    "category",  # a plural class with examples nearby ("fruits such as ...")
    "passage",  # a paragraph, inserted whole
    "sentence",  # one declarative sentence, inserted whole
    "review",  # one opinionated sentence with a clear sentiment
    "language",  # a target language name from a fixed list, never from the text
)
# Slot types whose value is text the instruction carries whole; that text is
# then the instruction's grounding.
TEXT_SLOT_TYPES = ("passage", "sentence", "review")
# Slot types naming one thing a definition sentence may define.
TERM_SLOT_TYPES = ("concept", "entity", "person", "place", "organization", "country", "noun_phrase")

# Extractive answer methods a template may declare, and the slots each needs
# (exactly these, in any order). transforms/synth/extractive_answers.py implements
# each; a template without one is answered only by a model.
EXTRACTIVE_ANSWERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "definition": (TERM_SLOT_TYPES,),  # the sentence defining the term
    "definitions": (TERM_SLOT_TYPES, TERM_SLOT_TYPES),  # both terms' definition sentences
    "lead": (("passage",),),  # the passage's first sentences
    "people": (("passage", "sentence"),),
    "places": (("passage", "sentence"),),
    "organizations": (("passage", "sentence"),),
    "entities": (("passage", "sentence"),),
    "defined_terms": (("passage", "sentence"),),  # the terms the text defines
    "examples": (("category",),),  # the examples listed with the category
    "sentiment": (("review",),),  # positive / negative by cue words
}

_KEYS = ("id", "task_type", "lang", "template", "slots", "extractive_answer")
_REQUIRED_KEYS = ("id", "task_type", "lang", "template", "slots")


@dataclass(frozen=True)
class InstructionTemplate:
    """One template: `template` with `{slot}` holes, `slots` as (name, type) pairs in declaration order.

    Plain data (tuples, strings), so a list of templates pickles cheaply into
    Spark or Ray closures and hashes. `extractive_answer` names the method in
    `EXTRACTIVE_ANSWERS` that answers it without a model, or "" for none.
    """

    id: str
    task_type: str
    lang: str
    template: str
    slots: tuple[tuple[str, str], ...]
    extractive_answer: str = ""

    @property
    def slot_types(self) -> dict[str, str]:
        """{slot name: slot type}."""
        return dict(self.slots)


# --------------------------------------------------------------------------- loading


def load_instruction_templates(path: str | Path | None = None) -> list[InstructionTemplate]:
    """The templates in `path` (a YAML file or a folder of them), or the packaged
    templates/instructions/ folder.

    Each file holds `templates:`, a list of mappings with `id`, `task_type`,
    `lang`, `template`, `slots` and optionally `extractive_answer` (see the
    packaged files' header). Checked up front: ids unique across all files,
    task types, languages and slot types known, every `{slot}` in the text
    declared under `slots` and every declared slot used, extractive methods
    known and given the slots they need. Raises ValueError naming the file,
    the template id and the problem. Read once per process and path; works
    from a checkout, a wheel and a zip on sys.path alike.
    """
    return list(_load_cached(None if path is None else str(path)))


@functools.lru_cache(maxsize=16)
def _load_cached(path: str | None) -> tuple[InstructionTemplate, ...]:
    if path is None:
        folder = resources.files("templates").joinpath(PACKAGED_FOLDER)
        files = _template_files(folder)
        shown = f"templates/{PACKAGED_FOLDER}"
        named = [(f"{shown}/{f.name}", f) for f in files]
    else:
        chosen = Path(path)
        if chosen.is_dir():
            named = [(str(f), f) for f in _template_files(chosen)]
            shown = str(chosen)
        elif chosen.is_file():
            named, shown = [(str(chosen), chosen)], str(chosen)
        else:
            raise ValueError(f"{path}: no such instruction template file or folder")
    if not named:
        raise ValueError(f"{shown}: no {' or '.join(TEMPLATE_SUFFIXES)} instruction template files in it")
    templates: list[InstructionTemplate] = []
    first_seen: dict[str, str] = {}
    for name, source in named:
        data = read_user_yaml(source, name, "template file")
        for template in parse_instruction_templates(data, name):
            if template.id in first_seen:
                raise ValueError(
                    f"{name}: template {template.id!r}: duplicate id, already used in "
                    f"{first_seen[template.id]}; every template needs its own id"
                )
            first_seen[template.id] = name
            templates.append(template)
    return tuple(templates)


def _template_files(folder: Path | Traversable) -> list[Path | Traversable]:
    return sorted(
        (f for f in folder.iterdir() if f.is_file() and f.name.endswith(TEMPLATE_SUFFIXES)),
        key=lambda f: f.name,
    )


def parse_instruction_templates(data: Any, name: str) -> list[InstructionTemplate]:
    """Validated templates from one parsed YAML file; `name` is the file named in errors."""
    if not isinstance(data, Mapping) or not isinstance(data.get("templates"), list):
        raise ValueError(f"{name}: expected a top-level `templates:` list of instruction templates")  # noqa: TRY004
    templates: list[InstructionTemplate] = []
    seen: set[str] = set()
    for position, entry in enumerate(data["templates"], start=1):
        template = _parse_template(entry, name, position)
        if template.id in seen:
            raise ValueError(
                f"{name}: template {template.id!r}: duplicate id; every template needs its own id"
            )
        seen.add(template.id)
        templates.append(template)
    if not templates:
        raise ValueError(f"{name}: `templates:` is empty; at least one template is needed")
    return templates


def _parse_template(entry: Any, name: str, position: int) -> InstructionTemplate:
    template_id, where = checked_entry(entry, name, "template", position, _KEYS, expected=_REQUIRED_KEYS)
    missing = [key for key in _REQUIRED_KEYS if key not in entry]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    task_type = entry["task_type"]
    if task_type not in TASK_TYPES:
        raise ValueError(f"{where}: unknown task_type {task_type!r}; use one of {', '.join(TASK_TYPES)}")
    lang = entry["lang"]
    if lang not in TEMPLATE_LANGS:
        raise ValueError(
            f"{where}: unknown lang {lang!r}; use one of {', '.join(TEMPLATE_LANGS)} "
            "(the languages the slot fillers read)"
        )
    text = entry["template"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: `template` must be a non-empty string with {{slot}} holes")
    slots = _parse_slots(entry["slots"], where)
    used = _slot_names_in(text, where)
    undeclared = [slot for slot in used if slot not in dict(slots)]
    if undeclared:
        raise ValueError(
            f"{where}: slot(s) {', '.join('{' + s + '}' for s in undeclared)} used in the template but "
            "not declared under `slots`; declare each with its type, e.g. `slots: {concept: concept}`"
        )
    unused = [slot for slot, _ in slots if slot not in used]
    if unused:
        raise ValueError(
            f"{where}: slot(s) {', '.join(unused)} declared under `slots` but not used in the template"
        )
    _check_language(text, slots, lang, where)
    method = entry.get("extractive_answer") or ""
    _check_extractive_answer(method, task_type, slots, where)
    return InstructionTemplate(
        id=template_id, task_type=task_type, lang=lang, template=text.strip(), slots=slots,
        extractive_answer=method,
    )  # fmt: skip


def _parse_slots(slots: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(slots, Mapping) or not slots:
        raise ValueError(
            f"{where}: `slots` must map each slot name to its type, e.g. {{concept: concept}}; a template "
            "without slots would give every document the same instruction"
        )
    parsed = []
    for slot, slot_type in slots.items():
        if not isinstance(slot, str) or not slot.isidentifier():
            raise ValueError(f"{where}: slot name {slot!r} must be an identifier (letters, digits, '_')")
        if slot_type not in SLOT_TYPES:
            raise ValueError(
                f"{where}: slot {slot!r} has unknown type {slot_type!r}; use one of {', '.join(SLOT_TYPES)}"
            )
        parsed.append((slot, slot_type))
    return tuple(parsed)


def _slot_names_in(text: str, where: str) -> list[str]:
    """The `{name}` fields of `text`, in order; only bare names are allowed."""
    names: list[str] = []
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:  # a lone "{" or "}"
        raise ValueError(
            f"{where}: template braces do not pair up ({exc}); write {{{{ or }}}} for a literal brace"
        ) from None
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            shown = (
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
            raise ValueError(
                f"{where}: {shown} is not a slot; a slot is a bare name in braces such as {{concept}}"
            )
        if field not in names:
            names.append(field)
    return names


def _check_language(text: str, slots: tuple[tuple[str, str], ...], lang: str, where: str) -> None:
    bare = text
    for slot, _ in slots:
        bare = bare.replace("{" + slot + "}", "")
    if lang == "zh" and not contains_han(bare):
        raise ValueError(f"{where}: lang is zh but the template has no Chinese words outside its slots")
    if lang == "en" and contains_han(bare):
        raise ValueError(f"{where}: lang is en but the template holds Chinese characters; is it zh?")


def _check_extractive_answer(
    method: Any, task_type: str, slots: tuple[tuple[str, str], ...], where: str
) -> None:
    if not method:
        return
    if method not in EXTRACTIVE_ANSWERS:
        raise ValueError(
            f"{where}: unknown extractive_answer {method!r}; use one of {', '.join(EXTRACTIVE_ANSWERS)} "
            "or leave it out for model-only templates"
        )
    if task_type == "translate":
        raise ValueError(
            f"{where}: a translate template cannot be answered extractively; drop extractive_answer"
        )
    needed = EXTRACTIVE_ANSWERS[method]
    types = [slot_type for _, slot_type in slots]
    remaining = list(types)
    fits = len(types) == len(needed)
    for allowed in needed:
        match = next((t for t in remaining if t in allowed), None)
        if match is None:
            fits = False
            break
        remaining.remove(match)
    if not fits:
        wanted = " + ".join("one of (" + ", ".join(allowed) + ")" for allowed in needed)
        raise ValueError(
            f"{where}: extractive_answer {method!r} needs exactly these slots: {wanted}; the template has "
            f"{', '.join(types)}"
        )


# --------------------------------------------------------------------------- filling and choosing


def fill(template: InstructionTemplate, values: Mapping[str, str]) -> str:
    """`template` with each `{slot}` replaced by `values[slot]`, stripped.

    Values must cover exactly the template's slots and be non-empty strings;
    they are inserted verbatim (braces in a value stay braces). Raises
    ValueError naming the template otherwise.
    """
    names = [slot for slot, _ in template.slots]
    missing = [slot for slot in names if slot not in values]
    extra = sorted(set(values) - set(names))
    if missing or extra:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(extra)}"] if extra else []
        )
        raise ValueError(
            f"template {template.id!r}: slot values {'; '.join(problems)} (slots: {', '.join(names)})"
        )
    for slot in names:
        value = values[slot]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"template {template.id!r}: slot {slot!r} needs a non-empty string, got {value!r}"
            )
    # Safe: loading allowed only bare `{name}` fields, and format_map never
    # re-parses the values it inserts.
    return template.template.format_map({slot: values[slot].strip() for slot in names}).strip()


def stable_rank(purpose: str, seed: int, *parts: str) -> int:
    """A 64-bit blake2b hash of `purpose`, `seed` and `parts`: the same on any machine and in any order."""
    h = hashlib.blake2b(digest_size=8, person=purpose.encode()[:16])
    h.update(str(seed).encode())
    for part in parts:
        h.update(b"\x00")
        h.update(part.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big")


def choose_templates(
    templates: Sequence[InstructionTemplate], lang: str, seed: int, key: str
) -> list[InstructionTemplate]:
    """The templates of `lang`'s family, in an order given by a blake2b hash of
    `seed`, `key` (the document's id) and each template id.

    Each document gets its own shuffle, so over many documents every template
    leads about equally often and no single phrasing dominates; the same
    document and seed always give the same order. Empty for a language
    without templates (the caller counts the document as skipped).
    """
    family = language_family(lang)
    return sorted(
        (t for t in templates if t.lang == family),
        key=lambda t: (stable_rank("instr-template", seed, key, t.id), t.id),
    )


def templates_by_type(templates: Iterable[InstructionTemplate]) -> dict[tuple[str, str], int]:
    """{(task_type, lang): number of templates}: the spread a template set offers."""
    counts: dict[tuple[str, str], int] = {}
    for t in templates:
        counts[(t.task_type, t.lang)] = counts.get((t.task_type, t.lang), 0) + 1
    return dict(sorted(counts.items()))
