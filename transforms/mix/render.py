"""Instruction records to text: surface formats (templates/formats.yaml) and packing.

A model that only ever sees "### Instruction:" learns that one layout, not
instruction following; so each record is rendered in one of many surface
formats ("Q:/A:", "问：/答：", "User:/Assistant:", plain paragraphs...), picked
by a stable hash so a rerun renders every record the same way.

Formats are data a user may edit or replace, so they are rendered in Jinja's
immutable sandbox: a template can read the record's fields and call harmless
string methods, but cannot reach Python internals (`''.__class__`) or mutate
anything (`history.append`), which raise `jinja2.exceptions.SecurityError`,
and under render limits (transforms/sandbox.py: 2 s and 1 MiB per render by
default), so a runaway loop or a 100 MB string stops with a TemplateLimitError
naming the format instead of holding a Spark task for minutes.
Every template is rendered once against probe records when the file is
loaded, so a typo (`{{ instrucion }}`) or a refused attribute fails at load
time with the file and the format named, not halfway through a Spark job.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

from templates import checked_entry, read_user_yaml
from transforms.sandbox import TemplateLimitError, compile_template, sandboxed_environment
from transforms.text import language_family

PACKAGED_FORMATS = "formats.yaml"  # inside the `templates` package
ANY_LANG = "any"

# The labels lid.176 gives (transforms/langid.py), the only codes a record's
# `lang` holds after language ID; a format for any other code could never be
# chosen, so it is an error.
_LID176_CODES = (
    "af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co "
    "cs cv cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif "
    "hr hsb ht hu hy ia id ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo "
    "lrc lt lv mai mg mhr min mk ml mn mr mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os "
    "pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta "
    "te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo wa war wuu xal xmf yi yo yue zh"
)
_LID176_LANGS = frozenset(_LID176_CODES.split())
# lid.176 calls much short Chinese Wu or Cantonese; it is written in the same
# characters and reads fine under Mandarin labels ("问：", "答："), so those
# records share the zh formats (`language_family`). A format declares `zh`,
# never these.
_FOLDED_LANGS = frozenset(code for code in _LID176_LANGS | {"cmn"} if language_family(code) != code)
KNOWN_FORMAT_LANGS = (_LID176_LANGS - _FOLDED_LANGS) | {ANY_LANG}

# Separators between the rendered pairs of one packed document: blank lines,
# as most pages separate Q&A items, and the horizontal rules of Markdown.
PACK_SEPARATORS = ("\n\n", "\n\n\n", "\n\n---\n\n", "\n\n***\n\n", "\n\n* * *\n\n")

_FORMAT_KEYS = ("id", "langs", "template")


@dataclass(frozen=True)
class SurfaceFormat:
    """One surface format: a Jinja `template` over a record, for records in `langs`.

    `langs` is a tuple of lid.176 codes or ("any",). Plain data, so a list of
    formats pickles cheaply into Spark closures; the compiled template is
    cached per process by its source text.
    """

    id: str
    langs: tuple[str, ...]
    template: str


# --------------------------------------------------------------------------- the sandbox

_ENVIRONMENT = sandboxed_environment()


@functools.lru_cache(maxsize=512)
def _compiled(source: str, fmt_id: str) -> jinja2.Template:
    """`source` compiled under the name "format '<id>'", which syntax and limit errors show."""
    return compile_template(_ENVIRONMENT, source, f"format {fmt_id!r}")


# --------------------------------------------------------------------------- loading


def load_formats(path: str | None = None) -> list[SurfaceFormat]:
    """The surface formats in `path`, or the packaged `templates/formats.yaml`.

    The file holds `formats:`, a list of mappings with `id`, `langs` and
    `template` (see the packaged file's header). Checked up front: ids
    unique, langs known, templates compile and render the probe records.
    Raises ValueError naming the file, the format id and the problem. Parsed
    once per process and path.
    """
    return list(_load_formats_cached(None if path is None else str(path)))


@functools.lru_cache(maxsize=16)
def _load_formats_cached(path: str | None) -> tuple[SurfaceFormat, ...]:
    if path is None:
        source, name = resources.files("templates").joinpath(PACKAGED_FORMATS), f"templates/{PACKAGED_FORMATS}"
    else:
        source, name = path, path
    data = read_user_yaml(source, name, "formats file")
    return tuple(parse_formats(data, name))


def parse_formats(data: Any, name: str) -> list[SurfaceFormat]:
    """Validated formats from parsed YAML; `name` is the file named in errors."""
    if not isinstance(data, Mapping) or not isinstance(data.get("formats"), list):
        raise ValueError(f"{name}: expected a top-level `formats:` list of formats")  # noqa: TRY004 - bad config
    formats: list[SurfaceFormat] = []
    seen: set[str] = set()
    for position, entry in enumerate(data["formats"], start=1):
        fmt = _parse_format(entry, name, position)
        where = f"{name}: format {fmt.id!r}"
        if fmt.id in seen:
            raise ValueError(f"{where}: duplicate id; every format needs its own id")
        seen.add(fmt.id)
        _check_renders(fmt, where)
        formats.append(fmt)
    if not formats:
        raise ValueError(f"{name}: `formats:` is empty; at least one format is needed")
    return formats


def _parse_format(entry: Any, name: str, position: int) -> SurfaceFormat:
    fmt_id, where = checked_entry(entry, name, "format", position, _FORMAT_KEYS)
    langs = entry.get("langs")
    if not isinstance(langs, list) or not langs or not all(isinstance(lang, str) for lang in langs):
        raise ValueError(
            f"{where}: `langs` must be a non-empty list such as [en], [zh] or [any], got {langs!r}"
        )
    for lang in langs:
        if lang in _FOLDED_LANGS:
            raise ValueError(
                f"{where}: lang {lang!r}: write {language_family(lang)!r}; {lang} records use the "
                f"{language_family(lang)} formats"
            )
        if lang not in KNOWN_FORMAT_LANGS:
            raise ValueError(f"{where}: unknown lang {lang!r}; use a lid.176 code (en, zh, de, ...) or 'any'")
    if ANY_LANG in langs and len(langs) > 1:
        raise ValueError(f"{where}: `langs` [any] already covers every language; list 'any' alone")
    template = entry.get("template")
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"{where}: `template` must be a non-empty Jinja string")
    try:
        _compiled(template, fmt_id)
    except TemplateSyntaxError as exc:
        raise ValueError(
            f"{where}: template does not compile: {exc.message} (template line {exc.lineno})"
        ) from None
    return SurfaceFormat(id=fmt_id, langs=tuple(dict.fromkeys(langs)), template=template)


# Every template must render these, and show every field it was given.
_PROBE_FULL = {
    "instruction": "PROBE-INSTRUCTION",
    "input": "PROBE-INPUT",
    "output": "PROBE-OUTPUT",
    "system": "PROBE-SYSTEM",
    "history": [("PROBE-USER-1", "PROBE-ASSISTANT-1"), ("PROBE-USER-2", "PROBE-ASSISTANT-2")],
}
_PROBE_BARE = {"instruction": "PROBE-INSTRUCTION", "output": "PROBE-OUTPUT"}


def _check_renders(fmt: SurfaceFormat, where: str) -> None:
    for probe in (_PROBE_FULL, _PROBE_BARE):
        try:
            text = render(fmt, probe)
        except TemplateLimitError as exc:
            raise TemplateLimitError(f"{where.removesuffix(f': format {fmt.id!r}')}: {exc}") from None
        except (SecurityError, ValueError) as exc:
            refused = "template refused by the sandbox: " if isinstance(exc, SecurityError) else ""
            raise ValueError(f"{where}: {refused}{str(exc).removeprefix(f'format {fmt.id!r}: ')}") from None
        missing = [
            name
            for name in ("system", "history", "instruction", "input", "output")
            if name in probe and not all(value in text for value in _probe_values(probe[name]))
        ]
        if missing:
            raise ValueError(
                f"{where}: template leaves out {', '.join(missing)}; a format must show instruction "
                "and output, and input, system and history when a record has them"
            )


def _probe_values(value: str | list) -> list[str]:
    return [value] if isinstance(value, str) else [turn for pair in value for turn in pair]


# --------------------------------------------------------------------------- choosing and rendering


def formats_for_language(formats: Sequence[SurfaceFormat], lang: str) -> list[SurfaceFormat]:
    """The formats a record in `lang` may take: its family's own formats plus the "any" ones."""
    family = language_family(lang)
    return [f for f in formats if ANY_LANG in f.langs or family in f.langs]


def _stable_fraction_index(purpose: bytes, seed: int, key: str, n: int) -> int:
    h = hashlib.blake2b(digest_size=8, person=purpose)
    h.update(str(seed).encode())
    h.update(b"\x00")
    h.update(key.encode("utf-8", "surrogatepass"))
    # 64 bits modulo a small n: the bias is below 1e-17.
    return int.from_bytes(h.digest(), "big") % n


def choose_format(formats: Sequence[SurfaceFormat], record_key: str, lang: str, seed: int) -> SurfaceFormat:
    """The format for one record: uniform over `formats_for_language`, by a
    blake2b hash of `seed` and `record_key`, so the same record and seed give
    the same format on any machine and in any order. Raises ValueError when
    no format fits (a user file without "any" formats, a language it lacks).
    """
    candidates = formats_for_language(formats, lang)
    if not candidates:
        raise ValueError(
            f"no surface format for language {lang!r} (record {record_key!r}): add a format with "
            f"langs [{language_family(lang) or ANY_LANG}] or [any] to the formats file"
        )
    return candidates[_stable_fraction_index(b"surface-format", seed, record_key, len(candidates))]


def render(fmt: SurfaceFormat, record: Mapping[str, Any]) -> str:
    """`record` in format `fmt`, with leading and trailing whitespace stripped.

    `record` holds `instruction` and `output`, and optionally `input`,
    `system` (strings, "" when absent) and `history` (pairs of
    [user, assistant], oldest first); other keys are ignored. Field values
    are never evaluated as Jinja. Raises ValueError naming the format for an
    unknown template variable or an empty result, SecurityError (naming it
    too) for what the sandbox refuses.
    """
    history = record.get("history") or ()
    if not all(
        isinstance(turn, Sequence) and not isinstance(turn, str) and len(turn) == 2 for turn in history
    ):
        raise ValueError(f"format {fmt.id!r}: `history` must be a list of [user, assistant] pairs")
    context = {
        "instruction": record.get("instruction") or "",
        "input": record.get("input") or "",
        "output": record.get("output") or "",
        "system": record.get("system") or "",
        "history": [tuple(turn) for turn in history],
    }
    try:
        text = _compiled(fmt.template, fmt.id).render(context)
    except TemplateLimitError:
        raise  # already names the format and the limit
    except SecurityError as exc:
        raise SecurityError(f"format {fmt.id!r}: {exc}") from exc
    except TemplateError as exc:  # StrictUndefined, a filter on the wrong type, ...
        raise ValueError(f"format {fmt.id!r}: {type(exc).__name__}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError) as exc:  # Python errors inside expressions
        raise ValueError(f"format {fmt.id!r}: {type(exc).__name__}: {exc}") from exc
    # Leading whitespace too: mostly left by an empty field at the template's
    # start ("{{ system }} {{ instruction }}"); a document never starts with it.
    text = text.strip()
    if not text:
        raise ValueError(f"format {fmt.id!r}: rendered an empty text")
    return text


# Rendered in place of a record's output to find where the response starts: no record holds it.
_RESPONSE_MARK = "\x00instructmix-response\x00"


def render_with_prompt(fmt: SurfaceFormat, record: Mapping[str, Any]) -> tuple[str, int]:
    """`render(fmt, record)` and the length of its prompt: the characters before the response.

    The record is rendered once more with a mark for its output; what comes before the mark is
    the prompt (system, history, instruction, input, and the format's own labels such as "A:").
    A template that changes the output itself (`output | upper`) hides the mark; the prompt is
    then what precedes the output's last occurrence in the text, or nothing (0) when the output
    does not appear as given.
    """
    text = render(fmt, record)
    marked = render(fmt, {**record, "output": _RESPONSE_MARK})
    cut = marked.find(_RESPONSE_MARK)
    if cut >= 0 and text.startswith(marked[:cut]):
        return text, cut
    output = str(record.get("output") or "").strip()
    where = text.rfind(output) if output else -1
    return text, max(where, 0)


def _pack_separator(seed: int, key: str) -> str:
    return PACK_SEPARATORS[_stable_fraction_index(b"pack-separator", seed, key, len(PACK_SEPARATORS))]


def pack(rendered: Sequence[str], seed: int, key: str) -> str:
    """Several rendered pairs as one document, joined by one separator from
    `PACK_SEPARATORS` chosen by a hash of `seed` and `key` (the document's id).
    """
    if not rendered:
        raise ValueError(f"pack: no rendered pairs for document {key!r}")
    return _pack_separator(seed, key).join(rendered)


def packed_prompt_spans(rendered: Sequence[str], prompt_chars: Sequence[int], seed: int, key: str) -> list[tuple[int, int]]:
    """The character spans of each pair's prompt in `pack(rendered, seed, key)`."""
    separator = _pack_separator(seed, key)
    spans, at = [], 0
    for text, prompt in zip(rendered, prompt_chars):
        if prompt:
            spans.append((at, at + prompt))
        at += len(text) + len(separator)
    return spans
