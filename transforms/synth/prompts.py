"""LLM prompts for the synthesis stage (templates/prompts/*.jinja), rendered in Jinja's sandbox.

The synthesis stage asks a model for four things: to answer an instruction
made from a page, grounded in that page; to invent new tasks from a list of
examples (Self-Instruct); to tell whether a task is a classification; and to
write instances for a task, input first or, for classification, label first
so labels come out balanced. It also asks for several varied question–answer
pairs about one document. A chat model gets each as the user turn after
the `system` prompt (transforms/synth/prompt_fit.py). Each prompt is a Jinja file a user may replace
without reading Python: `load_prompts(folder)` takes the folder's files over
the packaged ones of the same name.

As in transforms/mix/render.py, prompts render in Jinja's immutable sandbox with
StrictUndefined: a template can read its variables and call harmless string
methods but not reach Python internals, and each render is bounded in time and
size (transforms/sandbox.py), so a runaway loop fails with a TemplateLimitError
naming the file. Each is rendered once against probe
values when loaded, so a typo or a prompt that drops a variable fails up
front with the file named, not after a GPU job has started.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

from transforms.sandbox import TemplateLimitError, compile_template, sandboxed_environment

PACKAGED_FOLDER = "prompts"  # inside the `templates` package
PROMPT_SUFFIX = ".jinja"
# The reply that means "cannot answer from this"; the synthesis stage drops it.
NO_ANSWER = "NO_ANSWER"
# Self-Instruct shows 8 tasks (6 seed, 2 generated) and leaves "9." open.
SELF_INSTRUCT_TASKS = 8

# Every prompt, and the variables it is rendered with when loaded: it must
# render each probe and show every non-empty value in it (no_answer is
# offered, never required). grounded_answer is probed with and without a passage.
_PROBES: dict[str, tuple[dict[str, Any], ...]] = {
    "grounded_answer": (
        {"instruction": "PROBE-INSTRUCTION", "passage": "PROBE-PASSAGE"},
        {"instruction": "PROBE-INSTRUCTION", "passage": ""},
    ),
    "self_instruct": ({"tasks": ["PROBE-TASK-1", "PROBE-TASK-2", "PROBE-TASK-3"]},),
    "classification": ({"instruction": "PROBE-INSTRUCTION"},),
    "instances_input_first": ({"instruction": "PROBE-INSTRUCTION"},),
    "instances_output_first": ({"instruction": "PROBE-INSTRUCTION"},),
    "doc_qa": ({"document": "PROBE-DOCUMENT", "n_pairs": 7},),
    # The system turn of chat-format prompts (transforms/synth/prompt_fit.py).
    "system": ({},),
}
# A chat model answers in a turn of its own instead of continuing a few-shot text:
# Self-Instruct's prompts have a `<name>_chat` variant that asks for the reply's form.
CHAT_VARIANTS = ("self_instruct", "classification", "instances_input_first", "instances_output_first")
_PROBES.update({f"{name}_chat": _PROBES[name] for name in CHAT_VARIANTS})
PROMPT_NAMES = tuple(_PROBES)


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt: its `name` (the file stem), Jinja `source`, and the file it came from."""

    name: str
    source: str
    origin: str


_ENVIRONMENT = sandboxed_environment()


@functools.lru_cache(maxsize=64)
def _compiled(source: str, origin: str) -> jinja2.Template:
    """`source` compiled under its file's name, which syntax and limit errors show."""
    return compile_template(_ENVIRONMENT, source, origin)


# --------------------------------------------------------------------------- loading


def load_prompts(path: str | Path | None = None) -> dict[str, PromptTemplate]:
    """The prompts by name: the packaged templates/prompts/*.jinja, with the
    `<name>.jinja` files of folder `path` taking their place where present.

    A user file must be named after a known prompt (PROMPT_NAMES), compile,
    and render its probe values; raises ValueError naming the file and the
    problem otherwise. Read once per process and path.
    """
    return dict(_load_cached(None if path is None else str(path)))


@functools.lru_cache(maxsize=16)
def _load_cached(path: str | None) -> tuple[tuple[str, PromptTemplate], ...]:
    folder = resources.files("templates").joinpath(PACKAGED_FOLDER)
    prompts: dict[str, PromptTemplate] = {}
    for name in PROMPT_NAMES:
        source = folder.joinpath(name + PROMPT_SUFFIX)
        origin = f"templates/{PACKAGED_FOLDER}/{name}{PROMPT_SUFFIX}"
        if not source.is_file():
            raise ValueError(f"{origin}: packaged prompt missing; reinstall instructmix")
        prompts[name] = _checked(name, source.read_text(encoding="utf-8"), origin)
    if path is not None:
        prompts.update(_user_prompts(Path(path)))
    return tuple(prompts.items())


def _user_prompts(folder: Path) -> dict[str, PromptTemplate]:
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder; pass a folder of <name>{PROMPT_SUFFIX} prompt files")
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.name.endswith(PROMPT_SUFFIX))
    if not files:
        raise ValueError(
            f"{folder}: no {PROMPT_SUFFIX} files; name them after the prompts they replace: "
            + ", ".join(n + PROMPT_SUFFIX for n in PROMPT_NAMES)
        )
    prompts = {}
    for file in files:
        name = file.name.removesuffix(PROMPT_SUFFIX)
        if name not in _PROBES:
            raise ValueError(
                f"{file}: no prompt is called {name!r}; a file replaces the packaged prompt of the "
                f"same name: {', '.join(n + PROMPT_SUFFIX for n in PROMPT_NAMES)}"
            )
        try:
            source = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{file}: cannot read the prompt: {exc}") from None
        prompts[name] = _checked(name, source, str(file))
    return prompts


def _checked(name: str, source: str, origin: str) -> PromptTemplate:
    if not source.strip():
        raise ValueError(f"{origin}: the prompt is empty")
    try:
        _compiled(source, origin)
    except TemplateSyntaxError as exc:
        raise ValueError(f"{origin}: prompt does not compile: {exc.message} (line {exc.lineno})") from None
    prompt = PromptTemplate(name=name, source=source, origin=origin)
    for probe in _PROBES[name]:
        try:
            text = _render(prompt, probe)
        except SecurityError as exc:
            raise ValueError(f"{origin}: prompt refused by the sandbox: {exc}") from None
        except TemplateLimitError:
            raise  # already names the file and the limit
        except ValueError as exc:
            raise ValueError(f"{origin}: {exc}") from None
        missing = [
            variable
            for variable, value in probe.items()
            if value != ""
            and not all(str(v) in text for v in (value if isinstance(value, list) else [value]))
        ]
        if missing:
            raise ValueError(
                f"{origin}: prompt leaves out {', '.join(missing)}; the {name} prompt must show "
                f"{', '.join(probe)} (whichever are given)"
            )
    return prompt


# --------------------------------------------------------------------------- rendering


def _render(prompt: PromptTemplate, variables: Mapping[str, Any]) -> str:
    context = {"no_answer": NO_ANSWER, **variables}
    try:
        text = _compiled(prompt.source, prompt.origin).render(context)
    except (SecurityError, TemplateLimitError):
        raise
    except TemplateError as exc:  # StrictUndefined, a filter on the wrong type, ...
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    text = text.strip()
    if not text:
        raise ValueError("the prompt rendered an empty text")
    return text


def render_prompt(name: str, prompts: Mapping[str, PromptTemplate] | None = None, **variables: Any) -> str:
    """Prompt `name` rendered with `variables`, from `prompts` (default: the packaged ones)."""
    table = prompts if prompts is not None else load_prompts()
    if name not in table:
        raise ValueError(f"unknown prompt {name!r}; known: {', '.join(PROMPT_NAMES)}")
    prompt = table[name]
    try:
        return _render(prompt, variables)
    except SecurityError as exc:
        raise SecurityError(f"{prompt.origin}: {exc}") from exc
    except TemplateLimitError:
        raise
    except ValueError as exc:
        raise ValueError(f"{prompt.origin}: {exc}") from exc


def _required_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def grounded_answer_prompt(
    instruction: str, passage: str = "", *, prompts: Mapping[str, PromptTemplate] | None = None
) -> str:
    """The prompt that answers `instruction` from `passage` (a FilledInstruction's
    grounding; "" asks for an answer without one), or replies NO_ANSWER.
    """
    return render_prompt(
        "grounded_answer",
        prompts,
        instruction=_required_text(instruction, "instruction"),
        passage=(passage or "").strip(),
    )


def _variant(name: str, chat: bool) -> str:
    return f"{name}_chat" if chat else name


def self_instruct_prompt(tasks: Sequence[str], *, prompts: Mapping[str, PromptTemplate] | None = None,
                         chat: bool = False) -> str:
    """ "Come up with a series of tasks:" with `tasks` numbered 1..n and "n+1." left open.

    Each task is put on one line (whitespace runs become one space, a
    trailing ":" is dropped), as Self-Instruct does, so the numbering holds.
    SELF_INSTRUCT_TASKS (8) is the usual number.
    """
    if isinstance(tasks, str) or not tasks:
        raise ValueError("tasks must be a non-empty list of task instructions")
    lines = [re.sub(r"\s+", " ", _required_text(task, "each task")).rstrip(":").strip() for task in tasks]
    return render_prompt(_variant("self_instruct", chat), prompts, tasks=lines)


def classification_prompt(instruction: str, *, prompts: Mapping[str, PromptTemplate] | None = None,
                          chat: bool = False) -> str:
    """The "Is it classification?" prompt for `instruction` (few-shot, or asked of a chat
    model); the model answers Yes or No."""
    return render_prompt(_variant("classification", chat), prompts,
                         instruction=_required_text(instruction, "instruction"))


def instance_prompt(
    instruction: str, output_first: bool, *, prompts: Mapping[str, PromptTemplate] | None = None,
    chat: bool = False,
) -> str:
    """The prompt that writes instances for `instruction`: label first (for
    classification tasks; the model continues with "Class label: …" blocks)
    or input first ("Example 1 … Output: …", or one "Output:" for tasks without
    input). Both end with "Task: <instruction>", as in Self-Instruct.
    """
    name = "instances_output_first" if output_first else "instances_input_first"
    return render_prompt(_variant(name, chat), prompts, instruction=_required_text(instruction, "instruction"))


def system_prompt(*, prompts: Mapping[str, PromptTemplate] | None = None) -> str:
    """The system turn a chat model gets before every request."""
    return render_prompt("system", prompts)


def doc_qa_prompt(document: str, n_pairs: int, *, prompts: Mapping[str, PromptTemplate] | None = None) -> str:
    """The prompt asking for `n_pairs` varied question–answer pairs about
    `document`, as a JSON array of {"question", "answer"} objects (or NO_ANSWER).
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    return render_prompt("doc_qa", prompts, document=_required_text(document, "document"), n_pairs=n_pairs)
