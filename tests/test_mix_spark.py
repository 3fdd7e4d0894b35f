"""`instructmix mix` end to end in local[2]: ratios per shard, real readers, determinism, resume, errors."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard
from resiliparse.extract.html2text import extract_plain_text

from jobs.config import ConfigError, MixConfig, validate_config
from jobs.errors import MixError
from jobs.mine import run_mine
from jobs.mix import MANIFEST_FILE, WORK_DIR, run_mix
from jobs.workdir import STATS_FILE
from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.spark
TOKENIZER = str(SAMPLES / "tokenizer.json")
COPIES = 16
ALPACA = str(SAMPLES / "alpaca-sample.json")
# Every format a trainer reads, with the prompts of injected instructions loss-masked; MDS when
# MosaicML streaming is installed (the `mds` extra; `make test` installs it).
HAVE_STREAMING = importlib.util.find_spec("streaming") is not None
ALL_FORMATS = ["jsonl.zst", "parquet", "megatron", "datatrove", "olmo", *(["mds"] * HAVE_STREAMING)]


def _page_texts() -> list[str]:
    texts = []
    for page in sorted((SAMPLES / "pages").glob("*.html")):
        text = extract_plain_text(page.read_text(encoding="utf-8"), main_content=True)
        if text.strip():
            texts.append(text)
    return texts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Pretraining shards made of the sample pages' text, plus a row of each kind of bad input."""
    root = tmp_path_factory.mktemp("corpus")
    # The sample pages 16 times over (~300k tokens): shards of 60k tokens then hold ~150 instruction
    # documents each, so one document's rounding stays well inside +-0.5 points.
    texts = _page_texts() * COPIES
    cctx = zstandard.ZstdCompressor(level=3)
    for n in range(3):
        lines = [json.dumps({"url": f"https://pre{n}.example/{i}", "text": t}, ensure_ascii=False)
                 for i, t in enumerate(texts[n:] + texts[:n])]
        if n == 1:
            lines[3:3] = ["{broken json", json.dumps({"url": "x", "text": None}), json.dumps({"body": "no text"})]
        (root / f"web-{n}.jsonl.zst").write_bytes(cctx.compress(("\n".join(lines) + "\n").encode()))
    return root


@pytest.fixture(scope="module")
def mined(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined") / "mined"
    run_mine([str(SAMPLES / "web-*")], str(out), spark=spark)
    return out


def _config(corpus: Path, mined: Path, out: Path, **overrides) -> MixConfig:
    data = {
        "seed": 1234, "ratio": 0.05, "tokenizer": TOKENIZER,
        "pretrain": [{"path": str(corpus / "*.jsonl.zst"), "text_field": "text", "name": "web"}],
        "instructions": [{"path": str(mined), "weight": 0.7, "name": "mined"},
                         {"path": ALPACA, "weight": 0.3, "name": "alpaca"}],
        "max_repeat": 20,
        "output": {"path": str(out), "formats": ALL_FORMATS, "shard_tokens": 60_000,
                   "loss_mask": "instruction_prompt"},
    }
    data.update(overrides)
    return validate_config(data, MixConfig, "mix.yaml")


@pytest.fixture(scope="module")
def mixed(spark, corpus, mined, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed") / "out"
    manifest = run_mix(_config(corpus, mined, out), spark=spark)
    return out, manifest


def _sha256s(manifest: dict) -> list[tuple[str, str]]:
    return [(f["path"], f["sha256"]) for s in manifest["shards"] for f in s["files"]]


def _jsonl_rows(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8").read()
    return [json.loads(line) for line in text.splitlines()]


def test_every_shard_and_the_whole_output_meet_the_token_ratio(mixed):
    out, manifest = mixed
    assert len(manifest["shards"]) >= 3
    for shard in manifest["shards"]:
        assert abs(shard["ratio"] - 0.05) <= 0.005, shard
        assert shard["ratio"] == pytest.approx(shard["instruction_tokens"] / shard["tokens"])
    assert abs(manifest["realized_ratio"] - 0.05) <= 0.001
    assert json.loads((out / MANIFEST_FILE).read_text()) == manifest
    assert not (out / WORK_DIR).exists() and not (out / "_lock.json").exists()


def test_manifest_reports_sources_repeats_and_files(mixed):
    out, manifest = mixed
    assert manifest["seed"] == 1234 and manifest["target_ratio"] == 0.05 and len(manifest["fingerprint"]) == 64
    by_name = {s["name"]: s for s in manifest["instructions"]}
    used = by_name["mined"]["tokens_used"] + by_name["alpaca"]["tokens_used"]
    assert used == sum(s["instruction_tokens"] for s in manifest["shards"])
    assert abs(by_name["mined"]["tokens_used"] / used - 0.7) < 0.05
    assert 1 <= by_name["alpaca"]["repeats"] <= 3
    for shard in manifest["shards"]:
        for f in shard["files"]:
            data = (out / f["path"]).read_bytes()
            assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"]


def test_stats_hold_the_counters_and_every_file_the_run_published(mixed):
    from transforms.stats import group

    out, manifest = mixed
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["stage"] == "mix" and stats["fingerprint"] == manifest["fingerprint"]
    counters = stats["counters"]
    # One broken JSON line and two rows without a usable `text` in web-1 (the corpus fixture).
    assert group(counters, "mix.pretrain.skip") == {"bad_json": 1, "missing_field": 2}
    assert counters["mix.pretrain.files"] == 3 and counters["mix.pretrain.tokens"] == manifest["pretrain"]["tokens"]
    assert counters["mix.output.tokens"] == manifest["tokens"] and counters["mix.output.documents"] == manifest["docs"]
    assert counters["mix.output.instruction_tokens"] == sum(s["instruction_tokens"] for s in manifest["shards"])
    for source in manifest["instructions"]:
        assert counters[f"mix.instructions.{source['name']}.tokens_used"] == source["tokens_used"]
    published = {f["path"] for s in manifest["shards"] for f in s["files"]} | {"parquet/README.md", MANIFEST_FILE}
    published |= {"mds/index.json"} if HAVE_STREAMING else set()
    assert set(stats["outputs"]) == published
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == published | {STATS_FILE}


def test_jsonl_parquet_and_megatron_hold_the_same_documents(mixed):
    from datasets import load_dataset
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from transforms.tokenizer import load_tokenizer

    out, manifest = mixed
    tok = load_tokenizer(TOKENIZER)
    rows = [r for s in range(len(manifest["shards"])) for r in _jsonl_rows(out / "jsonl.zst" / f"part-{s:05d}.jsonl.zst")]
    assert len(rows) == manifest["docs"]
    assert {r["metadata"]["source"] for r in rows} == {"pretrain:web", "instructions:mined", "instructions:alpaca"}
    assert all(set(r["metadata"]) >= {"source", "is_instruction", "provenance"} for r in rows)
    assert all(r["metadata"]["provenance"]["source_file"] for r in rows)

    ds = load_dataset("parquet", data_dir=str(out / "parquet"), split="train",
                      cache_dir=str(out.parent / "hf-cache"))
    assert ds.num_rows == len(rows)
    assert [r["id"] for r in ds] == [r["id"] for r in rows]
    assert [r["is_instruction"] for r in ds] == [r["metadata"]["is_instruction"] for r in rows]

    k = 0
    for s, shard in enumerate(manifest["shards"]):
        idx = IndexedDataset(str(out / "megatron" / f"part-{s:05d}"))
        assert len(idx) == shard["docs"]
        assert int(np.sum(idx.sequence_lengths)) == shard["tokens"]
        for i in range(len(idx)):
            assert tok.decode(idx[i].tolist()) == tok.decode(tok.encode(rows[k]["text"], add_special_tokens=False).ids)
            k += 1


def _datatrove_docs(out: Path, shard: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(token ids, loss mask) of each document of a datatrove shard, cut at its .index's ends."""
    stem = out / "datatrove" / f"part-{shard:05d}.ds"
    ids = np.fromfile(stem, dtype="<u2")
    mask = np.fromfile(f"{stem}.loss", dtype=np.uint8)
    ends = np.fromfile(f"{stem}.index", dtype="<u8").astype(np.int64)
    return list(zip(np.split(ids, ends[:-1]), np.split(mask, ends[:-1])))


def _rows_and_docs(out: Path, manifest: dict) -> tuple[list[dict], list[tuple[np.ndarray, np.ndarray]]]:
    rows = [r for s in range(len(manifest["shards"])) for r in _jsonl_rows(out / "jsonl.zst" / f"part-{s:05d}.jsonl.zst")]
    docs = [d for s in range(len(manifest["shards"])) for d in _datatrove_docs(out, s)]
    assert len(docs) == len(rows) == manifest["docs"]
    return rows, docs


def test_datatrove_holds_the_documents_and_masks_only_prompts(mixed):
    from datatrove.utils.dataset import DatatroveFolderDataset

    from transforms.tokenizer import load_tokenizer

    out, manifest = mixed
    tok = load_tokenizer(TOKENIZER)
    assert manifest["loss_mask"] == {"kind": "instruction_prompt", "formats": ["datatrove", "olmo"]}
    assert manifest["token_files"]["datatrove"] == {"token_size": 2}
    rows, docs = _rows_and_docs(out, manifest)

    # datatrove: nanotron's reader sees exactly the manifest's tokens; prompts of instructions are 0.
    folder = DatatroveFolderDataset(str(out / "datatrove"), seq_len=255, token_size=2, filename_pattern="*.ds")
    assert [f.fsize // 2 for f in folder.files] == [s["tokens"] for s in manifest["shards"]]
    masked_docs = 0
    for row, (ids, mask) in zip(rows, docs):
        assert tok.decode(ids.tolist()) == row["text"]
        if not row["metadata"]["is_instruction"]:
            assert mask.all()  # pages (no pairs attached in this mix) keep every token's loss
            continue
        prompt = int((mask == 0).sum())
        assert mask[:prompt].sum() == 0 and mask[prompt:].all() and prompt < len(ids)
        masked_docs += prompt > 0
        assert row["text"].startswith(tok.decode(ids[:prompt].tolist()))
    assert masked_docs >= 0.9 * sum(r["metadata"]["is_instruction"] for r in rows)
    assert sum(s["instruction_tokens"] for s in manifest["shards"]) > sum(int((m == 0).sum()) for _, m in docs) > 0


def test_olmo_holds_the_same_tokens_ended_by_eos_and_the_same_masks(mixed, tmp_path):
    """OLMo-core's NumpyFSLDataset over the token and label-mask arrays (make test installs it)."""
    numpy_dataset = pytest.importorskip("olmo_core.data.numpy_dataset")
    from transforms.tokenizer import load_tokenizer

    out, manifest = mixed
    tok = load_tokenizer(TOKENIZER)
    eos = tok.token_to_id("<|endoftext|>")
    assert manifest["token_files"]["olmo"] == {"dtype": "uint16", "eos_token": "<|endoftext|>", "eos_token_id": eos}
    _, docs = _rows_and_docs(out, manifest)
    paths = [str(out / f"olmo/token_ids/part-{s:05d}.npy") for s in range(len(manifest["shards"]))]
    masks = [p.replace("token_ids", "label_mask") for p in paths]
    olmo = numpy_dataset.NumpyFSLDataset(*paths, sequence_length=128, pad_token_id=eos, eos_token_id=eos,
                                         vocab_size=tok.get_vocab_size(), dtype=np.uint16, label_mask_paths=masks)
    olmo.work_dir = tmp_path
    olmo.prepare()
    ids = np.concatenate([np.append(i, eos) for i, _ in docs])
    labels = np.concatenate([np.append(m, 1) for _, m in docs]).astype(bool)
    assert sum(os.path.getsize(p) // 2 for p in paths) == manifest["tokens"] + manifest["docs"]
    for k in (0, len(olmo) // 2, len(olmo) - 1):
        # Instances run on across files, so find instance k from each file's own instances.
        item, start = olmo[k], 0
        for path in paths:
            n = os.path.getsize(path) // 2 // 128
            if k < n:
                break
            k -= n
            start += os.path.getsize(path) // 2
        window = slice(start + 128 * k, start + 128 * (k + 1))
        np.testing.assert_array_equal(item["input_ids"].numpy(), ids[window])
        np.testing.assert_array_equal(item["label_mask"].numpy(), labels[window])


def test_mds_holds_every_document_in_order(mixed):
    """llm-foundry's reader (MosaicML streaming) over the merged mds/index.json."""
    if not HAVE_STREAMING:
        pytest.skip("mosaicml-streaming is not installed (pip install 'instructmix[mds]')")
    from transforms.io.shard_writers import import_streaming

    out, manifest = mixed
    assert manifest["mds_index"]["sha256"] == hashlib.sha256((out / "mds/index.json").read_bytes()).hexdigest()
    rows, docs = _rows_and_docs(out, manifest)
    streaming = import_streaming()
    mds = streaming.StreamingDataset(local=str(out / "mds"), batch_size=1)
    assert len(mds) == manifest["docs"]
    for k in (0, 1, len(mds) // 2, len(mds) - 1):
        assert mds[k]["id"] == rows[k]["id"] and mds[k]["text"] == rows[k]["text"]
        assert mds[k]["is_instruction"] == int(rows[k]["metadata"]["is_instruction"])
        np.testing.assert_array_equal(mds[k]["tokens"], docs[k][0])


def test_chinese_instructions_get_chinese_or_neutral_formats(mixed):
    out, manifest = mixed
    rows = [r for s in range(len(manifest["shards"])) for r in _jsonl_rows(out / "jsonl.zst" / f"part-{s:05d}.jsonl.zst")]
    han = re.compile(r"[\u4e00-\u9fff]")
    zh = [r["text"] for r in rows if r["metadata"]["is_instruction"] and len(han.findall(r["text"])) > 20]
    assert zh
    assert not any(t.startswith(("Question:", "### Instruction", "Task:", "Instruction:")) for t in zh)


def test_same_config_gives_byte_identical_output_whatever_the_parallelism(mixed, corpus, mined, tmp_path):
    _, manifest = mixed
    cfg = _config(corpus, mined, tmp_path / "again")
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "mix", "--config", str(path), "--master", "local[1]"],
                          check=False, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((tmp_path / "again" / MANIFEST_FILE).read_text())
    assert _sha256s(again) == _sha256s(manifest)


def test_a_rerun_after_a_kill_skips_finished_shards_and_gives_the_same_bytes(spark, corpus, mined, mixed, tmp_path):
    _, reference = mixed
    cfg = _config(corpus, mined, tmp_path / "out")
    first = run_mix(cfg, spark=spark, keep_work=True)
    # Simulate a kill while shard 1 was being written: its files and its done-record are gone.
    out = tmp_path / "out"
    (done,) = (out / WORK_DIR).glob("*/shards/00001.json")
    done.unlink()
    for f in first["shards"][1]["files"]:
        (out / f["path"]).unlink()
    untouched = out / first["shards"][0]["files"][0]["path"]
    before = untouched.stat().st_mtime_ns
    second = run_mix(cfg, spark=spark)
    assert _sha256s(second) == _sha256s(first) == _sha256s(reference)
    assert untouched.stat().st_mtime_ns == before


def test_not_enough_instruction_data_stops_before_writing_and_names_the_missing_tokens(spark, corpus, mined, tmp_path):
    cfg = _config(corpus, mined, tmp_path / "out", ratio=0.4, max_repeat=1)
    with pytest.raises(MixError) as err:
        run_mix(cfg, spark=spark)
    message = str(err.value)
    assert "mined" in message and "alpaca" in message and "missing" in message
    assert not any((tmp_path / "out" / fmt).exists() for fmt in ("jsonl.zst", "parquet", "megatron"))


def test_config_errors_name_the_key(tmp_path):
    bad = {"seed": 1, "ratio": 0.7, "tokenizer": TOKENIZER, "pretrain": [{"path": "x", "txt_field": "t"}],
           "instructions": [{"path": "y", "weight": -1}], "output": {"path": "o", "formats": ["csv"]}}
    with pytest.raises(ConfigError) as err:
        validate_config(bad, MixConfig, "mix.yaml")
    text = str(err.value)
    assert "mix.yaml: ratio: must be in (0, 0.5], got 0.7" in text
    assert "mix.yaml: pretrain.0.txt_field: unknown key" in text
    assert "mix.yaml: instructions.0.weight: Input should be greater than 0" in text
    assert "mix.yaml: output.formats: unknown format(s) ['csv']" in text
    bad["output"] = {"path": "o", "formats": ["olmo", "nanotron"], "loss_mask": "prompts"}
    with pytest.raises(ConfigError) as err:
        validate_config(bad, MixConfig, "mix.yaml")
    assert "mix.yaml: output.formats: unknown format(s) ['nanotron']; choose from" in str(err.value)
    assert "mix.yaml: output.loss_mask: unknown loss mask(s) ['prompts']; choose from ['none', 'instruction_prompt']" \
        in str(err.value)


def test_an_eos_token_the_tokenizer_lacks_stops_the_olmo_format_before_spark(corpus, tmp_path):
    cfg = _config(corpus, Path(ALPACA), tmp_path / "out", instructions=[{"path": ALPACA, "weight": 1.0}],
                  output={"path": str(tmp_path / "out"), "formats": ["olmo"], "eos_token": "</s>"})
    with pytest.raises(MixError, match=r"output.eos_token: '</s>' is not a token of .*tokenizer.json; set output.eos_token"):
        run_mix(cfg)
    assert not (tmp_path / "out").exists()


def test_ratio_outside_the_usual_band_warns():
    cfg = MixConfig.model_validate({"ratio": 0.2, "tokenizer": "t", "pretrain": [{"path": "p"}],
                                    "instructions": [{"path": "i", "weight": 1}], "output": {"path": "o"}})
    assert "outside the usual [0.01, 0.1]" in cfg.ratio_warning()
    assert os.path.basename(TOKENIZER) == "tokenizer.json"


def test_pairs_can_be_appended_to_the_page_they_were_mined_from(spark, corpus, mined, tmp_path):
    """placement: source_document, with the sample pages themselves in the stream under their own URLs."""
    manifest_of_pages = json.loads((SAMPLES / "pages" / "manifest.json").read_text())
    lines = []
    for entries in (v for k, v in manifest_of_pages.items() if isinstance(v, list)):
        for entry in entries:
            page = SAMPLES / "pages" / entry["page"]
            text = extract_plain_text(page.read_text(encoding="utf-8"), main_content=True) if page.suffix == ".html" else page.read_text(encoding="utf-8")
            if text.strip():
                lines.append(json.dumps({"url": entry["url"], "text": text}, ensure_ascii=False))
    (tmp_path / "pages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _config(corpus, mined, tmp_path / "out", placement="source_document", pretrain=[
        {"path": str(corpus / "*.jsonl.zst"), "name": "web"}, {"path": str(tmp_path / "pages.jsonl"), "name": "pages"}],
        output={"path": str(tmp_path / "out"), "formats": ["jsonl.zst", "datatrove"], "shard_tokens": 60_000,
                "loss_mask": "instruction_prompt"})
    manifest = run_mix(cfg, spark=spark)
    by_name = {s["name"]: s for s in manifest["instructions"]}
    assert by_name["mined"]["attached_pairs"] > 0
    assert by_name["alpaca"]["attached_pairs"] == 0  # Alpaca records have no source page
    for shard in manifest["shards"]:
        assert abs(shard["ratio"] - 0.05) <= 0.005, shard
    rows = [r for s in range(len(manifest["shards"]))
            for r in _jsonl_rows(tmp_path / "out" / "jsonl.zst" / f"part-{s:05d}.jsonl.zst")]
    with_pairs = [r for r in rows if r["metadata"].get("attached_instructions")]
    assert with_pairs and all(r["metadata"]["source"] == "pretrain:pages" for r in with_pairs)
    assert sum(len(r["metadata"]["attached_instructions"]) for r in with_pairs) == by_name["mined"]["attached_pairs"]
    assert sum(s["attached_instruction_tokens"] for s in manifest["shards"]) == by_name["mined"]["attached_tokens"]
    # Loss masks: the page keeps its loss; each appended pair's prompt is 0 and its answer ends in 1s.
    docs = [d for s in range(len(manifest["shards"])) for d in _datatrove_docs(tmp_path / "out", s)]
    assert len(docs) == len(rows)
    for row, (ids, mask) in zip(rows, docs):
        if row["metadata"]["is_instruction"]:
            continue
        pairs = row["metadata"].get("attached_instructions") or []
        page = len(ids) - sum(p["tokens"] for p in pairs)
        assert mask[:page].all()
        for p in pairs:
            pair = mask[page: page + p["tokens"]]
            assert pair[0] == 0 and pair[-1] == 1, row["id"]
            page += p["tokens"]


def test_several_pairs_can_be_packed_into_one_document(spark, corpus, mined, tmp_path):
    from transforms.tokenizer import count_tokens, load_tokenizer

    cfg = _config(corpus, mined, tmp_path / "out", pack=3,
                  output={"path": str(tmp_path / "out"), "formats": ["jsonl.zst"], "shard_tokens": 20000})
    manifest = run_mix(cfg, spark=spark)
    rows = [r for s in range(len(manifest["shards"]))
            for r in _jsonl_rows(tmp_path / "out" / "jsonl.zst" / f"part-{s:05d}.jsonl.zst")]
    packed = [r for r in rows if r["metadata"]["is_instruction"]]
    assert packed and all(len(r["metadata"]["provenance"]["packed"]) in (1, 2, 3) for r in packed)
    # Records are packed within one instruction file: only each file's last document per epoch may be short.
    files = len(list(mined.glob("*.parquet"))) + 1
    assert sum(len(r["metadata"]["provenance"]["packed"]) < 3 for r in packed) <= files * 3
    # A packed document is ~300 tokens of a ~20k-token corpus: the ratio can only be met to
    # within one such document (the +-0.5 point promise needs shards >> documents, as at 50M).
    longest = max(count_tokens(load_tokenizer(TOKENIZER), [r["text"] for r in packed]))
    assert abs(manifest["realized_ratio"] - 0.05) <= 0.95 * longest / manifest["tokens"]
    assert not (tmp_path / "out" / "parquet").exists() and not (tmp_path / "out" / "megatron").exists()


def test_long_real_pages_meet_the_ratio_per_shard_and_overall(spark, webdata, mined, tmp_path):
    """The promise on real data: long web pages and CCNet text, 0.3/0.7 sources, many shards."""
    import gzip

    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    texts = []
    pages = [p for pattern in ("html/*/*/source.html.gz", "qa-dev/**/*.html.gz", "recipes/*.testhtml.gz")
             for p in sorted(webdata.glob(pattern))]
    for path in pages:
        raw = gzip.decompress(path.read_bytes())
        text = extract_plain_text(bytes_to_str(raw, detect_encoding(raw)), main_content=True)
        if text.strip():
            texts.append(text)
    for path in sorted(webdata.glob("text/dolma-ccnet-cc_en_head/*.jsonl.gz")):
        texts += [json.loads(line)["text"] for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert len(texts) > 100
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in range(4):  # four files, each the texts in another order
        order = np.random.default_rng(n).permutation(len(texts))
        lines = [json.dumps({"url": f"https://long{n}.example/{i}", "text": texts[i]}) for i in order]
        (corpus / f"long-{n}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _config(corpus, mined, tmp_path / "out", max_repeat=200,
                  pretrain=[{"path": str(corpus / "*.jsonl"), "name": "long"}],
                  instructions=[{"path": str(mined), "weight": 0.3, "name": "mined"},
                                {"path": ALPACA, "weight": 0.7, "name": "alpaca"}],
                  output={"path": str(tmp_path / "out"), "formats": ["megatron"], "shard_tokens": 300_000})
    manifest = run_mix(cfg, spark=spark)
    assert len(manifest["shards"]) >= 8 and manifest["tokens"] > 2_500_000
    for shard in manifest["shards"]:
        assert abs(shard["ratio"] - 0.05) <= 0.005, shard
    assert abs(manifest["realized_ratio"] - 0.05) <= 0.001
    low = sum(s["ratio"] < 0.05 for s in manifest["shards"])
    assert 0 < low < len(manifest["shards"])  # errors of both signs: the cut does not always land short


def test_a_ratio_schedule_gives_each_shard_its_target_and_the_report_draws_both(spark, corpus, mined, tmp_path):
    from jobs.report.numbers import mixing_summary
    from jobs.report.plots import draw_plots

    schedule = {"schedule": [{"until": 0.4, "ratio": 0.02}, {"until": 1.0, "ratio": 0.08, "ramp": True}]}
    cfg = _config(corpus, mined, tmp_path / "out", ratio=schedule,
                  output={"path": str(tmp_path / "out"), "formats": ["parquet"], "shard_tokens": 40_000})
    manifest = run_mix(cfg, spark=spark)
    assert manifest["ratio_schedule"] == {"schedule": [{"until": 0.4, "ratio": 0.02, "ramp": False},
                                                       {"until": 1.0, "ratio": 0.08, "ramp": True}]}
    shards = manifest["shards"]
    targets = [s["target_ratio"] for s in shards]
    assert len(shards) >= 6 and targets == sorted(targets)
    assert targets[0] == pytest.approx(0.02) and 0.06 < targets[-1] <= 0.08
    for shard in shards:
        assert abs(shard["ratio"] - shard["target_ratio"]) <= 0.005, shard
    # Overall: the schedule's token-weighted mean (0.4 * 0.02 + 0.6 * 0.05 = 0.038).
    assert manifest["target_ratio"] == pytest.approx(0.038, abs=0.002)
    assert abs(manifest["realized_ratio"] - manifest["target_ratio"]) <= 0.001
    stats = json.loads((tmp_path / "out" / STATS_FILE).read_text())
    summary = mixing_summary(stats["counters"], manifest)
    assert [s["target_ratio"] for s in summary["shards"]] == targets
    assert all(abs(s["deviation"]) <= 0.005 for s in summary["shards"])
    assert summary["ratio_schedule"] == manifest["ratio_schedule"]
    assert draw_plots({"mixing": summary})["mixing"][:8] == b"\x89PNG\r\n\x1a\n"


def test_a_large_instruction_file_is_materialized_in_chunks_of_row_groups(spark, corpus, mined, tmp_path, monkeypatch):
    """One Parquet file of 40 row groups, cut into 8 chunks (one task each, per epoch): no task holds
    the whole file, and an epoch still uses every record once before any repeats."""
    from transforms.mix import plan

    rows = [{"instruction": f"Name {i} things that are blue.", "input": "", "output": f"Here are {i}: sky, sea."}
            for i in range(400)]
    big = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist(rows), big, row_group_size=10)
    monkeypatch.setattr(plan, "RECORDS_PER_CHUNK", 50)
    cfg = _config(corpus, mined, tmp_path / "out", instructions=[{"path": str(big), "weight": 1.0, "name": "big"}],
                  output={"path": str(tmp_path / "out"), "formats": ["jsonl.zst"], "shard_tokens": 60_000})
    manifest = run_mix(cfg, spark=spark)
    (source,) = manifest["instructions"]
    assert source["chunks"] == 8 and source["records"] == 400
    for shard in manifest["shards"]:
        assert abs(shard["ratio"] - shard["target_ratio"]) <= 0.005
    docs = [r for s in range(len(manifest["shards"]))
            for r in _jsonl_rows(tmp_path / "out" / "jsonl.zst" / f"part-{s:05d}.jsonl.zst")]
    used = [r["metadata"]["provenance"]["source_record"] for r in docs if r["metadata"]["is_instruction"]]
    # Epoch by epoch every record once: the first 400 instruction documents are 400 different rows.
    assert len(set(used[:400])) == min(400, len(used))
    assert len(used) == source["documents_used"]
