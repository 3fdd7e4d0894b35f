"""Mixer throughput and memory benchmark (not a test): MB of input JSONL per second.

Side by side in one run, over the same pretraining JSONL.zst, on as many cores
as the Spark master has (`--master local[N]`, default local[1]):
  * the tokenizing floor: N processes that each read + decompress + parse their
    share of the files and `Tokenizer.encode_batch` every text in the mixer's
    batches, one core each (`mixer_vs_tokenize_floor`); the same with
    `encode_batch_fast`, which transforms.tokenizer actually calls, is the
    stricter `..._fast` figure;
  * `zstd -3` (zstandard level 3) compressing the same JSONL bytes, one core;
  * the mixer end to end (`run_mix`, all three output formats) on that master,
    after one small warm-up mix, in a child process whose whole tree (driver,
    JVM, Python workers) is sampled for memory every 0.1 s (PSS once a second).
The floor is measured again after the mixes (the host's speed drifts), and the
mixer is compared with the mean of the two. Targets: mixer >= 0.9x the tokenizing floor; peak memory at 4x the input
(4x as many files of the same size, same `shard_tokens`) within 10 % of 1x.

Inputs are built in a temporary folder from the real text in ../shared/webdata
(never copied into the project): the main-content text of its HTML pages plus
the CCNet documents, replicated to the requested size. The instruction sources
are the Alpaca and BELLE Self-Instruct seed tasks, replicated into files that
grow with the input (a copy number in each id), so that every source is read
in parallel chunks and one pass covers the ratio, as a large mined source
would. The tokenizer is a byte-level BPE (vocab 32000) trained on that text at
the start of the run.
Run: `.venv/bin/python bench/bench_mix.py [--mb 40] [--master local[2]] [--skip-memory] [--keep]`
(issue 11's figure: `--mb 512 --master local[2]`, whose 4x run mixes 2 GB).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import yaml
import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WEBDATA = Path(os.environ.get("INSTRUCTMIX_WEBDATA") or next(
    (p for p in (REPO.parent / "shared" / "webdata", Path("/work/shared/webdata")) if p.is_dir()),
    REPO.parent / "shared" / "webdata"))
ALPACA_SEEDS = WEBDATA / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl"
BELLE_SEEDS = WEBDATA / "instructions" / "belle-zh" / "zh_seed_tasks.json"

# One core for tokenization everywhere: tokenizers' Rayon pool reads this when it
# first starts, and the Spark JVM and its Python workers inherit this environment,
# so it must be set before tokenizers is imported or Spark is started (both happen
# inside functions below). TOKENIZERS_PARALLELISM=true keeps encode_batch on its
# batch path (one thread) instead of the fork-safety fallback.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "true"
# Spark's Python workers and the CLI subprocess import the checkout this file is in,
# not whichever one the virtual environment's editable install points at.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

VOCAB_SIZE = 32_000
FILES_PER_1X = 8  # pretraining shards at 1x; 4x keeps their size and has 4x as many
RATIO = 0.05
SHARD_TOKENS = 2_000_000
MAX_REPEAT = 4  # the replicated sources cover the ratio in one pass; a few more in case
INSTRUCTION_FILE_BYTES = 8_000_000  # one chunk (one materialize task) per file
INSTRUCTION_MARGIN = 1.5  # source bytes per byte of instruction text the ratio needs
FORMATS = ["jsonl.zst", "parquet", "megatron"]
SAMPLE_SECONDS = 0.1
# PSS (shared pages split between the forked Python workers) costs the kernel a page-table
# walk of the JVM's large address space: about 10 % of a core at every sample, so once a second.
PSS_EVERY = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- inputs ----------------------------------------------------------------------------


def real_documents() -> list[tuple[str, str]]:
    """(url, text) of every page's main content and every CCNet document, in file-name order."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    docs = []
    pages = (sorted(WEBDATA.glob("html/*/*/source.html.gz")) + sorted(WEBDATA.glob("recipes/*.testhtml.gz"))
             + sorted(WEBDATA.glob("zh/*.html.gz")))
    for path in pages:
        raw = gzip.decompress(path.read_bytes())
        text = extract_plain_text(bytes_to_str(raw, detect_encoding(raw)), main_content=True)
        if text.strip():
            docs.append((f"https://bench.example/{path.parent.name}/{path.name}", text))
    for path in sorted(WEBDATA.glob("text/dolma-ccnet-cc_en_head/*.jsonl.gz")):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            obj = json.loads(line)
            if obj.get("text", "").strip():
                docs.append((obj.get("metadata", {}).get("url") or obj["id"], obj["text"]))
    return docs


def jsonl_line(url: str, text: str, copy: int) -> bytes:
    sep = "&" if "?" in url else "?"
    return json.dumps({"url": f"{url}{sep}copy={copy}", "text": text}, ensure_ascii=False).encode() + b"\n"


def write_pretrain(folder: Path, docs: list[tuple[str, str]], total_bytes: int, file_bytes: int) -> tuple[list[Path], int]:
    """JSONL.zst shards of about `file_bytes` (uncompressed) each, the documents repeated
    (copy number in the url) until `total_bytes`; returns the files and their uncompressed size."""
    folder.mkdir(parents=True)
    files: list[Path] = []
    written = 0
    copy = 0
    lines: list[bytes] = []
    size = 0

    def flush() -> None:
        path = folder / f"web-{len(files):05d}.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(b"".join(lines)))
        files.append(path)

    while written < total_bytes:
        for url, text in docs:
            line = jsonl_line(url, text, copy)
            lines.append(line)
            size += len(line)
            written += len(line)
            if size >= file_bytes or written >= total_bytes:
                flush()
                lines, size = [], 0
                if written >= total_bytes:
                    break
        copy += 1
    return files, written


def write_instruction_source(folder: Path, seeds: Path, need_bytes: float, min_files: int) -> tuple[Path, int]:
    """`seeds` (JSON Lines) repeated, a copy number in every id, into files of about
    INSTRUCTION_FILE_BYTES holding INSTRUCTION_MARGIN x `need_bytes` in all (at least one full
    copy, at least `min_files` files); returns the folder and the number of copies."""
    lines = [json.loads(line) for line in seeds.read_text(encoding="utf-8").splitlines() if line.strip()]
    copy_bytes = len(seeds.read_bytes())
    copies = max(1, int(-(-INSTRUCTION_MARGIN * need_bytes // copy_bytes)))
    files = max(min_files, int(-(-copies * copy_bytes // INSTRUCTION_FILE_BYTES)))
    folder.mkdir(parents=True)
    per_file = -(-copies // files)
    for f, first in enumerate(range(0, copies, per_file)):
        with open(folder / f"part-{f:05d}.jsonl", "w", encoding="utf-8") as out:
            for copy in range(first, min(copies, first + per_file)):
                out.writelines(json.dumps({**record, "id": f"{record['id']}-copy{copy}"}, ensure_ascii=False) + "\n"
                               for record in lines)
    return folder, copies


def train_tokenizer(texts: list[str], path: Path) -> dict:
    """A byte-level BPE (GPT-2 style) trained on `texts`; deterministic for the same texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    t0 = time.perf_counter()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.save(str(path), pretty=False)
    return {"tokenizer": (f"byte-level BPE, vocab {tokenizer.get_vocab_size()} (asked {VOCAB_SIZE}), trained on "
                          "the unique benchmark text; a realistic vocabulary size, but fitted to this very text"),
            "tokenizer_vocab": tokenizer.get_vocab_size(),
            "tokenizer_train_seconds": round(time.perf_counter() - t0, 1)}


def mix_config(pretrain: Path, tokenizer: Path, out: Path, sources: dict[str, Path] | None = None) -> dict:
    """The benchmark's mix; `sources` (name -> path) default to the seed files themselves."""
    sources = sources or {"alpaca-seed": ALPACA_SEEDS, "belle-seed": BELLE_SEEDS}
    return {
        "seed": 1234,
        "ratio": RATIO,
        "tokenizer": str(tokenizer),
        "pretrain": [{"path": str(pretrain), "name": "web"}],
        "instructions": [{"path": str(path), "weight": 1 / len(sources), "name": name}
                         for name, path in sources.items()],
        "max_repeat": MAX_REPEAT,
        "output": {"path": str(out), "formats": FORMATS, "shard_tokens": SHARD_TOKENS},
    }


# --- throughput ------------------------------------------------------------------------


def iter_texts(path: Path):
    with open(path, "rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
        for line in io.BufferedReader(reader, 1 << 20):
            yield json.loads(line)["text"]


_FLOOR_TOKENIZER = None


def _load_floor_tokenizer(path: str) -> None:
    global _FLOOR_TOKENIZER
    from tokenizers import Tokenizer

    _FLOOR_TOKENIZER = Tokenizer.from_file(path)
    _FLOOR_TOKENIZER.encode_batch(["warm-up"], add_special_tokens=False)


def tokenize_files(paths: list[str], method: str) -> dict:
    """Read, decompress, parse and tokenize every text of `paths`, in the mixer's batches, on
    one core: one worker's share of the floor."""
    from jobs.mix import TOKENIZE_BATCH_DOCS

    encode = getattr(_FLOOR_TOKENIZER, method)
    tokens = 0
    encode_s = 0.0
    cpu0 = time.process_time()
    for path in paths:
        batch: list[str] = []
        for text in iter_texts(Path(path)):
            batch.append(text)
            if len(batch) >= TOKENIZE_BATCH_DOCS:
                e0 = time.perf_counter()
                tokens += sum(len(enc.ids) for enc in encode(batch, add_special_tokens=False))
                encode_s += time.perf_counter() - e0
                batch = []
        if batch:
            e0 = time.perf_counter()
            tokens += sum(len(enc.ids) for enc in encode(batch, add_special_tokens=False))
            encode_s += time.perf_counter() - e0
    return {"tokens": tokens, "encode_seconds": encode_s, "cpu_seconds": time.process_time() - cpu0}


def bench_tokenize(files: list[Path], tokenizer_path: Path, raw_mb: float, method: str, cores: int = 1) -> dict:
    """The floor on `cores` cores: `cores` processes (started and warmed up before the clock)
    tokenize their share of the files (every `cores`-th one, all of the same size) at once."""
    import multiprocessing

    shares = [[str(p) for p in files[i::cores]] for i in range(cores)]
    if cores == 1:
        _load_floor_tokenizer(str(tokenizer_path))
        t0 = time.perf_counter()
        parts = [tokenize_files(shares[0], method)]
        secs = time.perf_counter() - t0
    else:
        with multiprocessing.get_context("spawn").Pool(cores, _load_floor_tokenizer, (str(tokenizer_path),)) as pool:
            pool.starmap(tokenize_files, [([], method)] * cores)  # every worker started and warmed up
            t0 = time.perf_counter()
            parts = pool.starmap(tokenize_files, [(share, method) for share in shares])
            secs = time.perf_counter() - t0
    encode_s = max(p["encode_seconds"] for p in parts)
    return {"seconds": secs, "MBps": raw_mb / secs, "encode_only_MBps": raw_mb / encode_s,
            "tokens": sum(p["tokens"] for p in parts), "cores_used": sum(p["cpu_seconds"] for p in parts) / secs}


def bench_zstd(files: list[Path], unique_jsonl: bytes) -> dict:
    """zstd -3 over the same JSONL bytes (decompressed before the clock starts), one core."""
    raw = []
    for path in files:
        with open(path, "rb") as fh:
            raw.append(zstandard.ZstdDecompressor().stream_reader(fh).read())
    size = sum(len(r) for r in raw)
    compressor = zstandard.ZstdCompressor(level=3)
    t0 = time.perf_counter()
    compressed = sum(len(compressor.compress(r)) for r in raw)
    secs = time.perf_counter() - t0
    # The replicated input repeats every document every ~1 MB, inside zstd's window:
    # one copy of the text alone shows what compression costs without those repeats.
    reps = max(1, (8 << 20) // max(1, len(unique_jsonl)))
    t0 = time.perf_counter()
    for _ in range(reps):
        unique_compressed = len(compressor.compress(unique_jsonl))
    unique_secs = (time.perf_counter() - t0) / reps
    return {
        "zstd3_MBps": round(size / 1e6 / secs, 2),
        "zstd3_ratio": round(size / compressed, 2),
        "zstd3_unique_text_MBps": round(len(unique_jsonl) / 1e6 / unique_secs, 2),
        "zstd3_unique_text_ratio": round(len(unique_jsonl) / unique_compressed, 2),
    }


def tree_cpu_seconds(root: int) -> dict[int, tuple[str, float]]:
    return {pid: (process_name(pid, root), cpu_seconds(pid)) for pid in process_tree(root)}


@contextmanager
def phase_timer(timings: dict):
    """Wall time of each Spark phase of run_mix, by wrapping the one function they all go through."""
    import jobs.engines.spark_tasks

    original = jobs.engines.spark_tasks.run_tasks

    def timed(spark, fn, payloads):
        t0 = time.perf_counter()
        try:
            return original(spark, fn, payloads)
        finally:
            timings[fn.__name__] = timings.get(fn.__name__, 0.0) + time.perf_counter() - t0

    jobs.engines.spark_tasks.run_tasks = timed
    try:
        yield timings
    finally:
        jobs.engines.spark_tasks.run_tasks = original


def child_mix(config_path: Path, warm_path: Path, master: str) -> None:
    """The measured mix, run in a child process (`--child`) so that its whole process tree can be
    sampled: a warm-up mix starts the Python workers and loads the tokenizer and lang-id model
    there, then `run_mix` on the benchmark input, timed by phase; prints its figures as JSON."""
    from jobs.config import MixConfig
    from jobs.engines.spark import spark_session
    from jobs.mix import run_mix

    def config(path: Path) -> MixConfig:
        return MixConfig.model_validate(yaml.safe_load(path.read_text()))

    spark = spark_session(master, "bench-mix")
    try:
        run_mix(config(warm_path), spark=spark)
        before = tree_cpu_seconds(os.getpid())
        timings: dict[str, float] = {}
        with phase_timer(timings):
            t0 = time.perf_counter()
            manifest = run_mix(config(config_path), spark=spark)
            secs = time.perf_counter() - t0
        after = tree_cpu_seconds(os.getpid())
    finally:
        spark.stop()
    cpu: dict[str, float] = defaultdict(float)
    for pid, (name, seconds) in after.items():
        cpu[name] += seconds - (before[pid][1] if pid in before and before[pid][0] == name else 0.0)
    phases = {name: round(s, 2) for name, s in timings.items()}
    phases["driver_rest"] = round(secs - sum(timings.values()), 2)
    print(json.dumps({
        "seconds": secs,
        "phase_seconds": phases,
        "cpu_seconds_by_process": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "cores_used": sum(cpu.values()) / secs,
        "pretrain_tokens": manifest["pretrain"]["tokens"],
        "pretrain_docs": manifest["pretrain"]["docs"],
        "realized_ratio": round(manifest["realized_ratio"], 6),
        "target_ratio": manifest["target_ratio"],
        "shards": len(manifest["shards"]),
        "output_tokens": manifest["tokens"],
        "instruction_repeats": {s["name"]: s["repeats"] for s in manifest["instructions"]},
    }))


# --- memory ----------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children[ppid].append(int(entry))
    tree = [root]
    for pid in tree:
        tree.extend(children.get(pid, ()))
    return tree


def _status_kb(pid: int, file: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{file}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def process_name(pid: int, root: int) -> str:
    if pid == root:
        return "driver"
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return "gone"
    return "jvm" if comm == "java" else "python_workers" if comm.startswith("python") else comm


def measure_mix(config_path: Path, warm_path: Path, master: str, log_path: Path) -> dict:
    """Run `child_mix` in a subprocess and sample the RSS of its process tree every 0.1 s (PSS
    every 1 s) until it exits; its own figures and the peaks."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(config_path), "--warm", str(warm_path),
           "--master", master]
    peak_tree = peak_pss = 0
    peak_single = (0, "")
    peak_by_kind: dict[str, int] = defaultdict(int)
    samples = 0
    cpu0 = time.process_time()
    figures = log_path.with_suffix(".json")
    with open(log_path, "wb") as log, open(figures, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ.copy(), stdout=out, stderr=log)
        while proc.poll() is None:
            tree = process_tree(proc.pid)
            total = pss = 0
            by_kind: dict[str, int] = defaultdict(int)
            for pid in tree:
                rss = _status_kb(pid, "status", "VmRSS:")
                total += rss
                if samples % PSS_EVERY == 0:
                    pss += _status_kb(pid, "smaps_rollup", "Pss:")
                kind = process_name(pid, proc.pid)
                if kind == "gone":  # exited between the listing and the read
                    continue
                by_kind[kind] += rss
                if rss > peak_single[0]:
                    peak_single = (rss, kind)
            peak_tree, peak_pss = max(peak_tree, total), max(peak_pss, pss)
            for kind, rss in by_kind.items():
                peak_by_kind[kind] = max(peak_by_kind[kind], rss)
            samples += 1
            time.sleep(SAMPLE_SECONDS)
    sampler_cpu = time.process_time() - cpu0
    if proc.returncode:
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        sys.exit(f"`{' '.join(cmd)}` failed with exit status {proc.returncode}")
    result = json.loads(figures.read_text().strip().splitlines()[-1])
    result.update({
        "peak_tree_rss_MB": round(peak_tree / 1024, 1),
        "peak_tree_pss_MB": round(peak_pss / 1024, 1),
        "peak_single_process_rss_MB": round(peak_single[0] / 1024, 1),
        "peak_single_process": peak_single[1],
        "peak_rss_MB_by_kind": {k: round(v / 1024, 1) for k, v in sorted(peak_by_kind.items())},
        "samples": samples,
        "sampler_cpu_seconds": round(sampler_cpu, 1),
    })
    return result


def master_cores(master: str) -> int:
    """Cores a local master runs tasks on: local -> 1, local[N] -> N, local[*] -> all."""
    import re

    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if not match:
        raise ValueError(f"--master {master!r}: the benchmark runs embedded; give local, local[N] or local[*]")
    return (os.cpu_count() or 1) if match.group(1) == "*" else int(match.group(1) or 1)


# --- main ------------------------------------------------------------------------------


def checkout() -> dict:
    """The commit measured, and whether the mixer's code differs from it (several people edit this tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout

    try:
        changed = git("status", "--porcelain", "--", "jobs", "transforms", "templates").splitlines()
        return {"commit": git("rev-parse", "--short", "HEAD").strip(),
                "uncommitted_changes": sorted(line[3:] for line in changed)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown (not a git checkout)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=40.0, help="1x input size: MB of uncompressed JSONL")
    parser.add_argument("--master", default="local[1]", help="embedded Spark master: local[N] (default local[1])")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 4x run (1x is measured anyway)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # the measured mix, in measure_mix's child
    parser.add_argument("--warm", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cores = master_cores(args.master)
    if args.child:
        child_mix(args.child, args.warm, args.master)
        return
    missing = [p for p in (WEBDATA, ALPACA_SEEDS, BELLE_SEEDS) if not p.exists()]
    if missing:
        sys.exit(f"benchmark needs the real text at {WEBDATA} (set INSTRUCTMIX_WEBDATA); missing: {missing[0]}")

    tmp = Path(tempfile.mkdtemp(prefix="instructmix-bench-mix-"))
    try:
        docs = real_documents()
        unique = b"".join(jsonl_line(u, t, 0) for u, t in docs)
        total = int(args.mb * 1e6)
        file_bytes = max(1, total // FILES_PER_1X)
        files, raw = write_pretrain(tmp / "pretrain-1x", docs, total, file_bytes)
        write_pretrain(tmp / "warm", docs[:40], 200_000, 200_000)
        scales = {1: (tmp / "pretrain-1x", raw)}
        if not args.skip_memory:
            _, raw4 = write_pretrain(tmp / "pretrain-4x", docs, 4 * total, file_bytes)
            scales[4] = (tmp / "pretrain-4x", raw4)
        raw_mb = raw / 1e6
        result: dict = {
            "cpu_count": os.cpu_count(),
            "master": args.master,
            "code": checkout(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "unique_documents": len(docs),
            "unique_text_MB": round(len(unique) / 1e6, 2),
            "input_files": len(files),
            "input_MB_uncompressed_jsonl": round(raw_mb, 1),
            "input_MB_compressed": round(sum(p.stat().st_size for p in files) / 1e6, 1),
        }
        tokenizer_path = tmp / "tokenizer.json"
        result.update(train_tokenizer([t for _, t in docs], tokenizer_path))

        floor = bench_tokenize(files, tokenizer_path, raw_mb, "encode_batch", cores)
        fast = bench_tokenize(files, tokenizer_path, raw_mb, "encode_batch_fast", cores)
        result.update({
            "tokenize_floor_MBps": round(floor["MBps"], 2),
            "tokenize_floor_encode_only_MBps": round(floor["encode_only_MBps"], 2),
            "tokenize_floor_cores_used": round(floor["cores_used"], 2),
            "tokenize_floor_fast_MBps": round(fast["MBps"], 2),
            "tokens": floor["tokens"],
            "bytes_per_token": round(raw / floor["tokens"], 2),
        })
        result.update(bench_zstd(files, unique))
        both = 1 / (1 / result["tokenize_floor_MBps"] + 1 / result["zstd3_MBps"])
        result["tokenize_plus_zstd3_MBps"] = round(both, 2)

        warm = tmp / "mix-warm.yaml"
        warm.write_text(yaml.safe_dump(mix_config(tmp / "warm", tokenizer_path, tmp / "out-warm")))
        for scale, (folder, size) in scales.items():
            # Instruction text the ratio asks for, per source: its sources grow with the input.
            need = size * RATIO / (1 - RATIO) / 2
            sources = {name: write_instruction_source(tmp / f"instructions-{scale}x" / name, seeds, need, cores)[0]
                       for name, seeds in (("alpaca-seed", ALPACA_SEEDS), ("belle-seed", BELLE_SEEDS))}
            config = tmp / f"mix-{scale}x.yaml"
            config.write_text(yaml.safe_dump(mix_config(folder, tokenizer_path, tmp / f"out-{scale}x", sources)))
            run = measure_mix(config, warm, args.master, tmp / f"mix-{scale}x.log")
            run["input_MB"] = round(size / 1e6, 1)
            run["MBps"] = round(size / 1e6 / run["seconds"], 2)
            run["seconds"] = round(run["seconds"], 2)
            run["cores_used"] = round(run["cores_used"], 2)
            result[f"mix_{scale}x"] = run
            shutil.rmtree(tmp / f"out-{scale}x", ignore_errors=True)
        # The host's speed drifts over a long run: the floor again, after the mixes, and the
        # ratios against the mean of the two measurements.
        after = bench_tokenize(files, tokenizer_path, raw_mb, "encode_batch", cores)
        fast_after = bench_tokenize(files, tokenizer_path, raw_mb, "encode_batch_fast", cores)
        result["tokenize_floor_after_MBps"] = round(after["MBps"], 2)
        result["tokenize_floor_fast_after_MBps"] = round(fast_after["MBps"], 2)
        floor = {**floor, "MBps": (floor["MBps"] + after["MBps"]) / 2}
        fast = {**fast, "MBps": (fast["MBps"] + fast_after["MBps"]) / 2}
        result["tokenize_floor_mean_MBps"] = round(floor["MBps"], 2)
        result["tokenize_floor_fast_mean_MBps"] = round(fast["MBps"], 2)
        one = result["mix_1x"]
        if one["pretrain_tokens"] != floor["tokens"]:
            result["warning"] = f"mixer counted {one['pretrain_tokens']} tokens, the floor {floor['tokens']}"
        result["mixer_MBps"] = one["MBps"]
        result["mixer_vs_tokenize_floor"] = round(one["MBps"] / floor["MBps"], 3)
        result["mixer_vs_tokenize_floor_fast"] = round(one["MBps"] / fast["MBps"], 3)
        result["mixer_target_met"] = one["MBps"] / floor["MBps"] >= 0.9
        if 4 in scales:
            four = result["mix_4x"]
            result["mixer_4x_vs_tokenize_floor"] = round(four["MBps"] / floor["MBps"], 3)
            result["mixer_4x_vs_tokenize_floor_fast"] = round(four["MBps"] / fast["MBps"], 3)
            result["peak_4x_over_1x"] = round(four["peak_tree_rss_MB"] / one["peak_tree_rss_MB"], 3)
            result["peak_single_process_4x_over_1x"] = round(
                four["peak_single_process_rss_MB"] / one["peak_single_process_rss_MB"], 3)
            result["peak_pss_4x_over_1x"] = round(four["peak_tree_pss_MB"] / one["peak_tree_pss_MB"], 3)
            result["memory_target_met"] = result["peak_4x_over_1x"] <= 1.1
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if args.keep:
            result["kept"] = str(tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
