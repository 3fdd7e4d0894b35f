"""Prompts as the model sees them, and made to fit its context before they are sent.

A prompt template (transforms/synth/prompts.py) renders the request; a
`PromptEncoder` turns that into what the engine receives: for a model with a
chat template, a system turn and a user turn with the assistant's turn opened
(`chat`); for a base model, the text itself (`completion`). It encodes with the
model's own tokenizer, and the engine is sent those token ids, so the length
measured here is the length the engine checks.

A `PromptFitter` holds the room a prompt has: the context (`max_model_len`) less
the tokens the answer may take (`max_tokens`). What does not fit is made
smaller the way that loses least: a passage keeps its first sentences, a
Self-Instruct prompt shows fewer example tasks. What still cannot fit is
refused (None), and the caller counts it as `drop:prompt_too_long`
(PROMPT_TOO_LONG): one long page never ends a job. No engine import here: the
tokenizer is any object with Hugging Face's `encode` / `apply_chat_template`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from transforms.text import sentence_pieces

PROMPT_FORMATS = ("chat", "completion")
PROMPT_TOO_LONG = "prompt_too_long"
# Below this much room no prompt of ours fits with a useful passage: the
# shortest packaged prompt (classification, with its 12 examples) is ~330 tokens.
MIN_PROMPT_TOKENS = 64


@dataclass(frozen=True)
class EncodedPrompt:
    """What is sent: `text` (the chat template applied, for the record's prompt hash) and its `token_ids`."""

    text: str
    token_ids: list[int]

    def __len__(self) -> int:
        return len(self.token_ids)


def default_prompt_format(tokenizer) -> str:
    """`chat` when the tokenizer carries a chat template, else `completion`."""
    return "chat" if getattr(tokenizer, "chat_template", None) else "completion"


class PromptEncoder:
    """Renders a request through the model's chat template (system + user turns) or as plain text.

    A chat template that refuses a system turn (some do) gets the system text
    at the top of the user turn instead.
    """

    def __init__(self, tokenizer, prompt_format: str, system: str = "") -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
        if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_format chat: the model's tokenizer has no chat template; "
                             "use prompt_format: completion")
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.system = system.strip()

    def text(self, request: str) -> str:
        if self.prompt_format == "completion":
            return request
        turns = [{"role": "user", "content": request}]
        if self.system:
            try:
                return self._chat([{"role": "system", "content": self.system}, *turns])
            except Exception:  # noqa: BLE001 - jinja2's TemplateError from a template that raises on "system"
                turns = [{"role": "user", "content": f"{self.system}\n\n{request}"}]
        return self._chat(turns)

    def _chat(self, turns: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

    def encode(self, request: str) -> EncodedPrompt:
        text = self.text(request)
        # A chat template writes its own special tokens; plain text gets the ones the
        # tokenizer adds (BOS), as the engine would add them to a text prompt.
        ids = self.tokenizer.encode(text, add_special_tokens=self.prompt_format == "completion")
        return EncodedPrompt(text, list(ids))

    def count(self, text: str) -> int:
        """Tokens of a bare piece of text (a passage), without special tokens."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))


class PromptFitter:
    """Fits requests into `max_prompt_tokens` (the context less the answer's `max_tokens`)."""

    def __init__(self, encoder: PromptEncoder, max_model_len: int, max_tokens: int) -> None:
        room = max_model_len - max_tokens
        if room < MIN_PROMPT_TOKENS:
            raise ValueError(
                f"sampling.max_tokens ({max_tokens}) leaves {room} tokens of engine.max_model_len "
                f"({max_model_len}) for the prompt; at least {MIN_PROMPT_TOKENS} are needed: lower "
                "max_tokens or raise max_model_len")
        self.encoder = encoder
        self.max_prompt_tokens = room

    def whole(self, request: str) -> EncodedPrompt | None:
        """The request as it is, or None when it does not fit."""
        prompt = self.encoder.encode(request)
        return prompt if len(prompt) <= self.max_prompt_tokens else None

    def with_passage(self, render: Callable[[str], str], passage: str, lang: str = "") -> tuple[EncodedPrompt, bool] | None:
        """render(passage) with as many of the passage's first sentences as fit; (prompt, cut?).

        None when not even its first sentence fits beside the rest of the prompt.
        """
        pieces = list(sentence_pieces(passage, lang)) or [passage]
        found = self._most_that_fit(lambda k: render("".join(pieces[:k]).strip()), len(pieces), 1)
        if found is None:
            return None
        prompt, kept = found
        return prompt, kept < len(pieces)

    def with_fewer(self, render: Callable[[Sequence], str], items: Sequence, min_items: int = 1) -> tuple[EncodedPrompt, int] | None:
        """render(items[:k]) for the largest k >= min_items that fits; (prompt, k), or None."""
        if len(items) < min_items:
            return None
        return self._most_that_fit(lambda k: render(items[:k]), len(items), min_items)

    def passage_room(self, render: Callable[[str], str], probe: str = "x") -> int:
        """About how many passage tokens fit beside the rest of render(passage): for cutting
        documents into chunks before the exact check (`with_passage`) of each prompt."""
        return self.max_prompt_tokens - len(self.encoder.encode(render(probe))) + self.encoder.count(probe)

    def _most_that_fit(self, build: Callable[[int], str], n: int, low: int) -> tuple[EncodedPrompt, int] | None:
        """The prompt of the largest k in [low, n] that fits (more units never make it shorter)."""
        whole = self.encoder.encode(build(n))
        if len(whole) <= self.max_prompt_tokens:
            return whole, n
        best = None
        hi = n - 1
        while low <= hi:
            mid = (low + hi) // 2
            prompt = self.encoder.encode(build(mid))
            if len(prompt) <= self.max_prompt_tokens:
                best, low = (prompt, mid), mid + 1
            else:
                hi = mid - 1
        return best
