"""Document-grounded QA synthesis, the pure parts: chunks that fit the context, how many pairs to keep, parsing.

The job sends each chunk of a web document to the model with a "write
question-answer pairs about this text" prompt (Nemotron-CC's Diverse QA),
ideally with `QA_PAIRS_JSON_SCHEMA` as a vLLM structured-output constraint,
parses the reply with `parse_qa_pairs`, and keeps `pairs_to_keep` of them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from transforms.text import sentence_pieces

# The reply format asked of the model. An object wrapping the list rather than
# a bare array: OpenAI-style `response_format={"type": "json_schema", ...}`
# requires an object at the root, so the same schema works with vLLM's
# OpenAI-compatible server, offline `StructuredOutputsParams(json=...)`, and
# hosted APIs. No minItems/maxItems: not every structured-output backend
# enforces them, and an empty list is simply parsed as no pairs.
QA_PAIRS_JSON_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "question": {"type": "string"},
                    "answer": {"type": "string"},
                },
                "required": ["question", "answer"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["pairs"],
    "additionalProperties": False,
}

# Nemotron-CC (NeMo Curator NemotronCCDiverseQAPostprocessor): keep
# randint(1, max(1, int(10 * tokens / 150))) pairs, so short documents get
# few pairs appended and long ones more.
MAX_PAIRS_PER_STEP = 10
TOKENS_PER_STEP = 150


# --- chunks ---------------------------------------------------------------------

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
_WORD = re.compile(r"\s+")


def chunk_document(
    text: str,
    max_tokens: int,
    count_tokens: Callable[[str], int],
    overlap: int = 0,
) -> list[str]:
    """Consecutive chunks of `text`, each at most `max_tokens` by `count_tokens`, cut at sentence ends.

    Paragraphs, lines and sentences are packed greedily and keep their
    original separators; a sentence longer than `max_tokens` is cut between
    words, and a run without spaces (Chinese without punctuation) between
    characters. `overlap` > 0 starts each chunk with the last whole sentences
    of the previous one, up to that many tokens; the default is 0 because
    QA pairs from overlapping text repeat each other. Any tokenizer fits:
    `count_tokens` is called on sentences and on each finished chunk (which
    is re-packed if the tokenizer is not additive across the joins).
    """
    if max_tokens < 1:
        raise ValueError(f"chunk_document: max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise ValueError(f"chunk_document: overlap must be in [0, max_tokens), got {overlap}")
    text = text.strip()
    if not text:
        return []
    if count_tokens(text) <= max_tokens:
        return [text]
    atoms = _atoms(text, max_tokens, count_tokens)  # (separator before, text, tokens)
    chunks: list[str] = []
    current: list[tuple[str, str, int]] = []
    total = 0
    i = 0
    while i < len(atoms):
        atom = atoms[i]
        if current and total + atom[2] > max_tokens:
            chunk, emitted, leftover = _emit(current, max_tokens, count_tokens)
            chunks.append(chunk)
            # Leftovers (the tokenizer counted the joined chunk higher than its
            # parts) start the next chunk; otherwise the overlap tail does.
            current = leftover or _tail(emitted, overlap, max_tokens - atom[2])
            total = sum(a[2] for a in current)
            continue
        current.append(atom)
        total += atom[2]
        i += 1
    while current:
        chunk, _, current = _emit(current, max_tokens, count_tokens)
        chunks.append(chunk)
    return chunks


def _emit(atoms, max_tokens, count_tokens) -> tuple[str, list, list]:
    """(joined text, atoms used, atoms left over) for the longest prefix of `atoms` that really fits."""
    end = len(atoms)
    while True:
        chunk = _join(atoms[:end])
        if end == 1 or count_tokens(chunk) <= max_tokens:
            return chunk, atoms[:end], atoms[end:]
        end -= 1


def _tail(atoms, overlap: int, room: int) -> list:
    """The last atoms of a chunk totalling at most `overlap` and `room` tokens, never the whole chunk."""
    budget = min(overlap, room)
    taken = 0
    start = len(atoms)
    while start > 1 and taken + atoms[start - 1][2] <= budget:
        start -= 1
        taken += atoms[start][2]
    return atoms[start:]


def _join(atoms) -> str:
    return "".join(sep + text if n else text for n, (sep, text, _) in enumerate(atoms)).strip()


def _atoms(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> list[tuple[str, str, int]]:
    atoms: list[tuple[str, str, int]] = []
    for p_sep, paragraph in _split_keep(text, _PARAGRAPH, ""):
        for l_sep, line in _split_keep(paragraph, _LINE, p_sep):
            for s_sep, sentence in _sentences_keep(line, l_sep):
                n = count_tokens(sentence)
                if n <= max_tokens:
                    atoms.append((s_sep, sentence, n))
                else:
                    atoms.extend(_long_sentence(s_sep, sentence, max_tokens, count_tokens))
    return atoms


def _long_sentence(sep: str, sentence: str, max_tokens: int, count_tokens) -> list[tuple[str, str, int]]:
    """A sentence over the limit: words packed up to the limit; a word over it cut between characters."""
    out: list[tuple[str, str, int]] = []
    for w_sep, word in _split_keep(sentence, _WORD, sep):
        n = count_tokens(word)
        if n <= max_tokens:
            out.append((w_sep, word, n))
            continue
        first = True
        while word:
            cut = _longest_fitting_prefix(word, max_tokens, count_tokens)
            piece, word = word[:cut], word[cut:]
            out.append((w_sep if first else "", piece, count_tokens(piece)))
            first = False
    return out


def _longest_fitting_prefix(text: str, max_tokens: int, count_tokens) -> int:
    lo, hi = 1, len(text)  # text[:lo] is taken even if one character is over the limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _sentences_keep(line: str, first_sep: str) -> list[tuple[str, str]]:
    """(separator before, sentence) for the sentences of one line, cut where transforms/text.py cuts them."""
    out: list[tuple[str, str]] = []
    sep = first_sep
    for piece in sentence_pieces(line):
        core = piece.strip()
        if not core:
            sep += piece
            continue
        lead = piece[: len(piece) - len(piece.lstrip())]
        out.append((sep + lead, core))
        sep = piece[len(piece.rstrip()) :]
    return out


def _split_keep(text: str, pattern: re.Pattern, first_sep: str) -> list[tuple[str, str]]:
    """(separator before, part) for the non-empty parts of `text` split at `pattern`."""
    out: list[tuple[str, str]] = []
    sep, last = first_sep, 0
    for m in pattern.finditer(text):
        if m.end() == 0 or m.start() < last:
            continue
        part = text[last : m.start()]
        if part:
            out.append((sep, part))
            sep = m.group(0)
        else:
            sep += m.group(0)
        last = m.end()
    if text[last:]:
        out.append((sep, text[last:]))
    return out


# --- how many pairs -------------------------------------------------------------


def pairs_to_keep(
    n_tokens: int,
    rng: random.Random,
    available: int | None = None,
    max_pairs: int = MAX_PAIRS_PER_STEP,
    tokens_per_step: int = TOKENS_PER_STEP,
) -> int:
    """Nemotron-CC's count: randint(1, max(1, int(max_pairs · n_tokens / tokens_per_step))), at most `available`.

    n_tokens is the source document's length. NeMo Curator shuffles the
    parsed pairs and slices that many, so a draw above the number of pairs
    the model wrote keeps them all; `available` applies that cap here.
    """
    upper = max(1, int(max_pairs * n_tokens / tokens_per_step))
    k = rng.randint(1, upper)
    return min(k, available) if available is not None else k


# --- parsing --------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_MAX_JSON_STARTS = 20
_QUESTION_KEYS = ("question", "q", "问题", "问")
_ANSWER_KEYS = ("answer", "a", "答案", "回答", "答")
_LIST_KEYS = ("pairs", "qa_pairs", "qa", "questions", "items", "data", "results")

_Q_LINE = re.compile(
    r"^[ \t]*(?:[-*•][ \t]*)?(?:\d+[.)、][ \t]*)?(?:\*\*)?(?:Q|Question|问题|问)[ \t]*\d*[ \t]*(?:\*\*)?[:：](?:\*\*)?[ \t]*",
    re.IGNORECASE,
)
_A_LINE = re.compile(
    r"^[ \t]*(?:[-*•][ \t]*)?(?:\*\*)?(?:A|Answer|答案|回答|答)[ \t]*\d*[ \t]*(?:\*\*)?[:：](?:\*\*)?[ \t]*",
    re.IGNORECASE,
)


def parse_qa_pairs(text: str, truncated: bool = False) -> list[tuple[str, str]]:
    """(question, answer) pairs from a model reply; pairs with an empty part or answer == question are dropped.

    JSON first: a list of {"question", "answer"} objects or an object holding
    one (as `QA_PAIRS_JSON_SCHEMA`), possibly in ```json fences, after a
    preamble or before trailing text; from JSON cut off mid-way, the complete
    objects. Otherwise lines "Q: …" / "Question: …" / "问：…" / "问题：…"
    followed by "A: …" / "Answer: …" / "答：…" / "答案：…" (NeMo's
    "- Question: …\\nAnswer: …" included), answers running over several
    lines. With `truncated` (the generation hit max_tokens) the last
    text-format pair is dropped, as its answer may be cut off.
    """
    pairs = _json_pairs(text)
    if not pairs:
        pairs = _text_pairs(text)
        if truncated and pairs:
            pairs.pop()
    out = []
    for question, answer in pairs:
        question, answer = question.strip(), answer.strip()
        if question and answer and _norm(question) != _norm(answer):
            out.append((question, answer))
    return out


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _json_pairs(text: str) -> list[tuple[str, str]]:
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    decoder = json.JSONDecoder()
    # The first bracket may belong to the preamble ("see [1]"): try each in turn.
    for tries, match in enumerate(re.finditer(r"[\[{]", body)):
        if tries == _MAX_JSON_STARTS:
            break
        start = match.start()
        try:
            value, _ = decoder.raw_decode(body, start)
        except json.JSONDecodeError:
            pairs = _salvage_objects(body, start, decoder)
        else:
            pairs = _pairs_from_value(value)
        if pairs:
            return pairs
    return []


def _pairs_from_value(value) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        pair = _pair_from_object(value)
        if pair:
            return [pair]
        lowered = {str(k).lower(): v for k, v in value.items()}
        lists = [lowered[k] for k in _LIST_KEYS if isinstance(lowered.get(k), list)]
        lists += [v for v in value.values() if isinstance(v, list)]
        value = lists[0] if lists else []
    if not isinstance(value, list):
        return []
    return [pair for item in value if isinstance(item, dict) and (pair := _pair_from_object(item))]


def _pair_from_object(obj: dict) -> tuple[str, str] | None:
    lowered = {str(k).lower(): v for k, v in obj.items()}
    question = next((lowered[k] for k in _QUESTION_KEYS if k in lowered), None)
    answer = next((lowered[k] for k in _ANSWER_KEYS if k in lowered), None)
    if isinstance(question, str) and isinstance(answer, (str, int, float)) and not isinstance(answer, bool):
        return question, str(answer)
    return None


def _salvage_objects(body: str, start: int, decoder: json.JSONDecoder) -> list[tuple[str, str]]:
    """Complete {"question", "answer"} objects from JSON that was cut off (max_tokens)."""
    pairs = []
    pos = body.find("{", start + 1 if body[start] == "{" else start)
    while pos >= 0:
        try:
            obj, end = decoder.raw_decode(body, pos)
        except json.JSONDecodeError:
            pos = body.find("{", pos + 1)
            continue
        if isinstance(obj, dict) and (pair := _pair_from_object(obj)):
            pairs.append(pair)
        pos = body.find("{", end)
    return pairs


def _text_pairs(text: str) -> list[tuple[str, str]]:
    pairs: list[list[list[str]]] = []  # [question lines, answer lines]
    field = -1  # 0 in a question, 1 in an answer, -1 before the first question
    for line in text.replace("\r\n", "\n").split("\n"):
        q = _Q_LINE.match(line)
        if q:
            pairs.append([[line[q.end() :]], []])
            field = 0
            continue
        a = _A_LINE.match(line)
        if a and field == 0:
            pairs[-1][1].append(line[a.end() :])
            field = 1
            continue
        if field >= 0:
            pairs[-1][field].append(line)
    return [(_join_lines(q), _join_lines(a)) for q, a in pairs]


def _join_lines(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip().replace("**", "")
