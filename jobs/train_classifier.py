"""`instructmix train-classifier`: mined pairs (positives) vs random passages (negatives).

fastText trains on one machine in seconds to minutes, so this driver runs in
process; the model it writes is then scored inside the Spark miner
(`classifier:` in the mine config).
"""

from __future__ import annotations

import random
from collections import Counter

import pyarrow.dataset as ds

from transforms.io.documents import expand_inputs, iter_documents
from transforms.mine.instruction_classifier import pair_text, random_passages, train_classifier, training_lines

# Share of each class held out to report precision/recall of the trained model.
HOLDOUT_FRACTION = 0.1


def _positive_texts(pairs_dir: str, limit: int, rng: random.Random) -> list[str]:
    table = ds.dataset(pairs_dir, format="parquet").to_table(columns=["instruction", "input", "output"])
    rows = table.to_pylist()
    rng.shuffle(rows)
    return [pair_text(r["instruction"], r["input"], r["output"]) for r in rows[:limit]]


def _document_texts(patterns: list[str], limit: int) -> list[str]:
    from transforms.mine.html_blocks import html_to_page
    from transforms.mine.text_blocks import text_to_page

    texts: list[str] = []
    counters: Counter = Counter()
    for path in expand_inputs(patterns):
        for doc in iter_documents(path, counters):
            page = html_to_page(doc.html, doc.url) if doc.html is not None else text_to_page(doc.text or "", doc.url)
            text = page.text()
            if text:
                texts.append(text)
            if len(texts) >= limit:
                return texts
    return texts


def run_train_classifier(
    pairs: str, negatives: list[str], output: str, max_examples: int = 50_000, seed: int = 0, epoch: int = 25
) -> dict:
    rng = random.Random(seed)
    positives = _positive_texts(pairs, max_examples, rng)
    if not positives:
        raise ValueError(f"{pairs}: no mined pairs to use as positives")
    passages = random_passages(_document_texts(negatives, max_examples), len(positives), seed=seed)
    if not passages:
        raise ValueError(f"{negatives}: no text to cut negative passages from")
    n_pos_test = max(1, int(len(positives) * HOLDOUT_FRACTION))
    n_neg_test = max(1, int(len(passages) * HOLDOUT_FRACTION))
    train = training_lines(positives[n_pos_test:], passages[n_neg_test:])
    rng.shuffle(train)
    metrics = train_classifier(train, output, epoch=epoch, seed=seed)

    from transforms.mine.instruction_classifier import InstructionClassifier

    model = InstructionClassifier(output)
    pos_scores = model.score_many(positives[:n_pos_test])
    neg_scores = model.score_many(passages[:n_neg_test])
    tp = sum(s >= 0.5 for s in pos_scores)
    fp = sum(s >= 0.5 for s in neg_scores)
    metrics.update(
        {
            "model": output,
            "positives": len(positives),
            "negatives": len(passages),
            "holdout_precision": round(tp / max(1, tp + fp), 4),
            "holdout_recall": round(tp / len(pos_scores), 4),
        }
    )
    return metrics
