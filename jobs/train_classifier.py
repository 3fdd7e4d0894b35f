"""`instructmix train-classifier`: mined pairs (positives) vs random passages (negatives).

fastText trains on one machine in seconds to minutes, so this driver runs in
process; the model it writes is then scored inside the Spark miner
(`classifier:` in the mine config).

Inputs and the model go through fsspec like every other stage (the pairs folder,
the negatives and `--output` may be `s3://…` URLs). fastText itself reads and
writes local files only, so the model is trained into a local temporary file and
then written to `--output` in one atomic step. Everything that can be checked is
checked before training: the pairs folder and every negatives pattern exist, and
`--output` is not a folder, not an existing file (unless `--overwrite`), and is
writable.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections import Counter

import fsspec
import pyarrow.dataset as ds

from jobs.errors import UserError
from jobs.workdir import write_atomic
from transforms.io.documents import expand_inputs, iter_documents
from transforms.mine.instruction_classifier import (
    pair_text,
    random_passages,
    train_classifier,
    training_lines,
)

# Share of each class held out to report precision/recall of the trained model.
HOLDOUT_FRACTION = 0.1


def _positive_texts(pairs_dir: str, limit: int, rng: random.Random) -> list[str]:
    fs, path = fsspec.core.url_to_fs(pairs_dir)
    if not fs.exists(path):
        raise UserError(f"--pairs {pairs_dir} does not exist; give the output folder of `instructmix mine`")
    table = ds.dataset(path, format="parquet", filesystem=fs).to_table(columns=["instruction", "input", "output"])
    rows = table.to_pylist()
    rng.shuffle(rows)
    return [pair_text(r["instruction"], r["input"], r["output"]) for r in rows[:limit]]


def _document_texts(files: list[str], limit: int) -> list[str]:
    from transforms.mine.html_blocks import html_to_page
    from transforms.mine.text_blocks import text_to_page

    texts: list[str] = []
    counters: Counter = Counter()
    for path in files:
        for doc in iter_documents(path, counters):
            page = html_to_page(doc.html, doc.url) if doc.html is not None else text_to_page(doc.text or "", doc.url)
            text = page.text()
            if text:
                texts.append(text)
            if len(texts) >= limit:
                return texts
    return texts


def _check_output(output: str, overwrite: bool) -> None:
    """The model path is a file this run may create (or, with --overwrite, replace)."""
    fs, path = fsspec.core.url_to_fs(output)
    if fs.isdir(path):
        raise UserError(f"--output {output} is a folder; give the path of the .bin model file to write")
    if fs.exists(path) and not overwrite:
        raise UserError(f"--output {output} already exists; choose another path, or pass --overwrite to replace it")
    parent = path.rsplit("/", 1)[0] if "/" in path else "."
    marker = f"{parent}/.instructmix-write-check-{os.getpid()}"
    try:
        write_atomic(fs, marker, b"")
        fs.rm(marker)
    except OSError as err:
        raise UserError(f"--output {output}: cannot write there ({type(err).__name__}: {err}); "
                        "choose a path you can write to") from None


def run_train_classifier(
    pairs: str, negatives: list[str], output: str, max_examples: int = 50_000, seed: int = 0, epoch: int = 25,
    overwrite: bool = False,
) -> dict:
    negative_files = expand_inputs(negatives)
    _check_output(output, overwrite)
    rng = random.Random(seed)
    positives = _positive_texts(pairs, max_examples, rng)
    if not positives:
        raise UserError(f"--pairs {pairs}: no mined pairs to use as positives")
    passages = random_passages(_document_texts(negative_files, max_examples), len(positives), seed=seed)
    if not passages:
        raise UserError(f"--negatives {' '.join(negatives)}: no text to cut negative passages from")
    n_pos_test = max(1, int(len(positives) * HOLDOUT_FRACTION))
    n_neg_test = max(1, int(len(passages) * HOLDOUT_FRACTION))
    train = training_lines(positives[n_pos_test:], passages[n_neg_test:])
    rng.shuffle(train)

    from transforms.mine.instruction_classifier import InstructionClassifier

    with tempfile.TemporaryDirectory(prefix="instructmix-clf-") as tmp:
        local = os.path.join(tmp, "model.bin")
        metrics = train_classifier(train, local, epoch=epoch, seed=seed)
        model = InstructionClassifier(local)
        pos_scores = model.score_many(positives[:n_pos_test])
        neg_scores = model.score_many(passages[:n_neg_test])
        fs, path = fsspec.core.url_to_fs(output)
        with open(local, "rb") as f:
            write_atomic(fs, path, f.read())
    tp = sum(s >= 0.5 for s in pos_scores)
    fp = sum(s >= 0.5 for s in neg_scores)
    metrics.update(
        {
            "model": output,
            "model_path": output,
            "positives": len(positives),
            "negatives": len(passages),
            "holdout_precision": round(tp / max(1, tp + fp), 4),
            "holdout_recall": round(tp / len(pos_scores), 4),
        }
    )
    return metrics
