"""fastText classifier of instruction-likeness: mined pairs vs. plain page text.

Positives are pair texts (`pair_text`), negatives are windows of ordinary
document text of similar length (`random_passages`). Both go through the
same `classifier_text` normalisation, and `pair_text` joins the fields with
nothing but a line break, so the model cannot learn "has a separator" and
must learn what questions, steps and answers look like.

Normalisation puts each Han or kana character and each punctuation mark in
its own token: fastText splits on whitespace only, so without it a Chinese
sentence would be a single unseen token, and "?" / "？" (strong cues) would be
glued to words. Korean is written with spaces, so Hangul words stay whole
(rule 3 of transforms/text.py).

Training is deterministic for a given input: one thread, a fixed seed, a
training order fixed by `training_lines(..., seed)`, and a fresh process
(see `train_classifier`).
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import fasttext

from transforms.text import SPACELESS

LABEL_INSTRUCTION = "__label__instruction"
LABEL_OTHER = "__label__other"

# Tokens: one Han/kana character, a run of other word characters, or one
# punctuation/symbol character. One findall is 4x faster than spacing the
# text out with re.sub and collapsing whitespace.
_TOKEN = re.compile(f"[{SPACELESS}]|[^\\W{SPACELESS}]+|[^\\w\\s]")
# Long texts add little evidence and cost predict time; fastText averages
# token vectors, so the first thousand tokens decide anyway. Truncating by
# tokens (not characters) keeps classifier_text idempotent, so a pair text
# normalised twice (pair_text, then training_lines or score) is unchanged.
MAX_TOKENS = 1000
_MAX_RAW_CHARS = 20_000  # cheap pre-cut before normalising huge inputs


def classifier_text(text: str) -> str:
    """Single-line, lower-cased, NFKC text with Han/kana characters and punctuation as tokens (idempotent)."""
    tokens = _TOKEN.findall(unicodedata.normalize("NFKC", text[:_MAX_RAW_CHARS]).lower())
    return " ".join(tokens[:MAX_TOKENS])


def pair_text(instruction: str, input_: str = "", output: str = "") -> str:
    """How a pair is shown to the classifier: its non-empty fields, one per line, normalised."""
    return classifier_text("\n".join(part for part in (instruction, input_, output) if part))


def training_lines(positives: Iterable[str], negatives: Iterable[str], *, seed: int = 0) -> list[str]:
    """fastText training lines (`__label__instruction` / `__label__other` + text), shuffled with `seed`.

    fastText reads its file in order, so the lines are shuffled here; blank
    texts are skipped.
    """
    lines = [f"{LABEL_INSTRUCTION} {t}" for t in map(classifier_text, positives) if t]
    lines += [f"{LABEL_OTHER} {t}" for t in map(classifier_text, negatives) if t]
    random.Random(seed).shuffle(lines)
    return lines


def _write_lines(lines: Iterable[str], path: str) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line.replace("\n", " ") + "\n")
            n += 1
    return n


# Training runs in a fresh interpreter. With fasttext-numpy2 0.10, a model
# loaded and freed earlier in the same process changes what the next
# train_supervised call learns (and can make it diverge to "Encountered NaN"),
# so in-process training is not reproducible once langid or a classifier has
# been loaded. The child imports only fasttext, so no caller code re-runs.
_TRAIN_SCRIPT = """
import json, sys
import fasttext

from transforms.text import SPACELESS
job = json.loads(sys.argv[1])
model = fasttext.train_supervised(input=job["train_file"], **job["params"])
n, precision, recall = model.test(job["eval_file"])
model.save_model(job["output_path"])
print(json.dumps([n, precision, recall]))
"""


def train_classifier(
    lines: Sequence[str],
    output_path: str | os.PathLike,
    *,
    valid_lines: Sequence[str] | None = None,
    epoch: int = 25,
    lr: float = 0.5,
    wordNgrams: int = 2,
    dim: int = 32,
    minCount: int = 1,
    bucket: int = 200_000,
    seed: int = 0,
    thread: int = 1,
) -> dict:
    """Train with `fasttext.train_supervised` on a temp file, save to `output_path`, report metrics.

    Defaults suit a binary task with thousands to millions of lines: dim 32
    and 200k n-gram buckets keep the saved model near 27 MB; `thread=1` with
    a fixed `seed`, in a fresh process, makes the model reproducible (more
    threads train faster but race on the shared weights).

    Returns a JSON-ready dict: `n_train`, `n_eval`, `precision` and `recall`
    (fastText's at-1 figures on `valid_lines`, or on the training lines if
    none), `evaluated_on` ("validation" / "training") and `model_path`.
    """
    if not lines:
        raise ValueError("train_classifier: no training lines (see training_lines)")
    unlabeled = next((line for line in lines if not line.startswith("__label__")), None)
    if unlabeled is not None:
        raise ValueError(
            f"train_classifier: line without a __label__ prefix: {unlabeled[:80]!r} (see training_lines)"
        )
    labels = {line.split(" ", 1)[0] for line in lines}
    if not {LABEL_INSTRUCTION, LABEL_OTHER} <= labels:
        raise ValueError(
            f"train_classifier: need both {LABEL_INSTRUCTION} and {LABEL_OTHER} lines, got {sorted(labels)}"
        )
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "epoch": epoch, "lr": lr, "wordNgrams": wordNgrams, "dim": dim, "minCount": minCount,
        "bucket": bucket, "seed": seed, "thread": thread, "loss": "softmax", "verbose": 0,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="instructmix-ft-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        n_train = _write_lines(lines, train_file)
        if valid_lines:
            eval_file, evaluated_on = os.path.join(tmp, "valid.txt"), "validation"
            _write_lines(valid_lines, eval_file)
        else:
            eval_file, evaluated_on = train_file, "training"
        job = {
            "train_file": train_file,
            "eval_file": eval_file,
            "output_path": str(output_path),
            "params": params,
        }
        proc = subprocess.run(
            [sys.executable, "-c", _TRAIN_SCRIPT, json.dumps(job)],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"train_classifier: fastText training failed (exit {proc.returncode}) with {params}: "
            f"{proc.stderr.strip()[-2000:]}"
        )
    n_eval, precision, recall = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "n_train": n_train,
        "n_eval": int(n_eval),
        "precision": float(precision),
        "recall": float(recall),
        "evaluated_on": evaluated_on,
        "model_path": str(output_path),
    }


class InstructionClassifier:
    """A trained model; `score` is the probability that a text is instruction-like."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"instruction classifier model not found at {self.path}; train one with "
                "transforms.mine.instruction_classifier.train_classifier"
            )
        self._model = fasttext.load_model(str(self.path))
        labels = self._model.get_labels()
        if LABEL_INSTRUCTION not in labels:
            raise ValueError(f"{self.path}: model has no {LABEL_INSTRUCTION} label (labels: {labels})")
        self._k = len(labels)

    def __reduce__(self):
        # fastText models do not pickle; rebuild from the per-process cache.
        return (get_instruction_classifier, (str(self.path),))

    def score(self, text: str) -> float:
        return self.score_many([text])[0]

    def score_many(self, texts: Iterable[str]) -> list[float]:
        """Scores for a batch, in one fastText call; blank texts score 0.0."""
        lines = [classifier_text(t) for t in texts]
        todo = [i for i, line in enumerate(lines) if line]
        scores = [0.0] * len(lines)
        if not todo:
            return scores
        batch = [lines[i] for i in todo]
        try:
            all_labels, all_probs = self._model.predict(batch, k=self._k)
        except UnicodeError:
            batch = [line.encode("utf-8", "replace").decode("utf-8") for line in batch]
            all_labels, all_probs = self._model.predict(batch, k=self._k)
        for i, labels, probs in zip(todo, all_labels, all_probs):
            for label, prob in zip(labels, probs):
                if label == LABEL_INSTRUCTION:
                    scores[i] = min(float(prob), 1.0)
                    break
        return scores


@functools.lru_cache(maxsize=4)
def get_instruction_classifier(path: str) -> InstructionClassifier:
    """The process-wide classifier for `path`, loaded once per worker."""
    return InstructionClassifier(path)


# Where a passage may start or end: after whitespace or sentence punctuation.
_BOUNDARY = re.compile(r"[\s。！？；，、.!?;]")


def _snap(text: str, pos: int, direction: int, slack: int = 40) -> int:
    """Move `pos` to the nearest boundary within `slack` chars in `direction` (or leave it)."""
    if direction > 0:
        m = _BOUNDARY.search(text, pos, min(len(text), pos + slack))
        return m.end() if m else pos
    lo = max(0, pos - slack)
    ends = [m.end() for m in _BOUNDARY.finditer(text, lo, pos)]
    return ends[-1] if ends else pos


def random_passages(
    page_texts: Sequence[str],
    n: int,
    seed: int = 0,
    *,
    lengths: Sequence[int] | None = None,
    min_chars: int = 80,
    max_chars: int = 800,
) -> list[str]:
    """`n` random windows of plain page text, as negatives for the classifier.

    Window lengths are drawn from `lengths` (pass the lengths of the positive
    pair texts, so length is no cue) or uniformly from [min_chars, max_chars];
    starts and ends snap to a nearby space or sentence mark so windows rarely
    cut words. Pages are picked in proportion to their length; pages shorter
    than `min_chars` are skipped. Deterministic for a given `seed`.
    """
    pages = [p for p in page_texts if len(p.strip()) >= min_chars]
    if not pages or n <= 0:
        return []
    rng = random.Random(seed)
    weights = [len(p) for p in pages]
    out: list[str] = []
    attempts = 0
    while len(out) < n and attempts < n * 20:
        attempts += 1
        page = rng.choices(pages, weights=weights)[0]
        want = rng.choice(lengths) if lengths else rng.randint(min_chars, max_chars)
        want = max(min_chars, min(want, len(page)))
        start = rng.randint(0, len(page) - want)
        start = _snap(page, start, +1) if start else 0
        end = min(len(page), start + want)
        end = _snap(page, end, -1) if end < len(page) else end
        passage = page[start:end].strip()
        if len(passage) >= min_chars // 2:
            out.append(passage)
    return out
