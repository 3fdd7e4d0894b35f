"""Decontamination in the jobs: the benchmark index built once on the driver, opened once per worker.

The driver reads every benchmark file before any task starts (a missing file, a bad
format or a `fields:` entry no record holds stops the run with one line naming the
file), builds the index (transforms/decontaminate.py) and writes it into the run's
work dir (`_work/<fingerprint>/decontaminate/`). Each executor or Ray worker process
opens it once, memory-mapped (`worker_index`): an index on an object store is copied
to a local temporary folder first, once per process. The fingerprint of every stage
includes `fingerprint_part` (the settings and each file's sha256), so a changed
benchmark file or setting never reuses work judged against the old one.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import fsspec

from jobs.config import ConfigError, DecontaminationSettings
from transforms.decontaminate import BenchmarkIndex, benchmark_texts
from transforms.io.benchmarks import BenchmarkFileError, read_benchmark_file

INDEX_DIR = "decontaminate"  # in a stage's work dir
_INDEX_FILES = (BenchmarkIndex.HASHES_FILE, BenchmarkIndex.IDS_FILE, BenchmarkIndex.BITMAP_FILE,
                BenchmarkIndex.META_FILE)


@dataclass
class Benchmarks:
    """What the driver read: the index and the sha256 of each benchmark file."""

    index: BenchmarkIndex
    settings: DecontaminationSettings
    file_digests: list[str]

    def fingerprint_part(self) -> dict:
        """What a stage's fingerprint keeps of decontamination: the settings and each file's content."""
        return {"settings": self.settings.model_dump(mode="json"), "files": self.file_digests}

    def details(self) -> dict:
        """For `_stats.json` details and the report: each benchmark's path and distinct grams."""
        sizes = self.index.sizes()
        return {"ngram": self.settings.ngram, "min_ngram": self.settings.min_ngram,
                "benchmarks": [{"name": name, "path": b.path, "grams": sizes[name]}
                               for name, b in zip(self.index.names, self.settings.benchmarks)]}

    def publish(self, work_dir: str, storage_options: dict) -> str:
        """Write the index into `work_dir` (a local folder or URL); returns the folder's URL."""
        url = f"{work_dir.rstrip('/')}/{INDEX_DIR}"
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        with tempfile.TemporaryDirectory(prefix="instructmix-index-") as local:
            self.index.save(local)
            fs.makedirs(path, exist_ok=True)
            for name in _INDEX_FILES:
                fs.put_file(str(Path(local) / name), f"{path}/{name}")
        return url


def load_benchmarks(settings: DecontaminationSettings | None, storage_options: dict,
                    source: str = "decontaminate") -> Benchmarks | None:
    """Read every benchmark file and build the index, on the driver, before any task starts."""
    if settings is None:
        return None
    texts: list[tuple[str, list[str]]] = []
    digests = []
    for i, (name, bench) in enumerate(zip(settings.names(), settings.benchmarks)):
        where = f"{source}.benchmarks[{i}]"
        try:
            read = read_benchmark_file(bench.path, storage_options)
        except BenchmarkFileError as err:
            raise ConfigError(f"{where}: {err}") from None
        fields = bench.fields if bench.fields is not None else settings.fields
        items = [t for record in read.records for t in benchmark_texts(record, fields or None)]
        if not any(t.strip() for t in items):
            first = read.records[0]
            has = sorted(map(str, first)) if isinstance(first, dict) else type(first).__name__
            wanted = f"fields {fields}" if fields else "any string"
            raise ConfigError(f"{where}: benchmark {bench.path}: no record holds {wanted}; its first record has "
                              f"{has}; fix `fields:` or the file")
        texts.append((name, items))
        digests.append(read.sha256)
    index = BenchmarkIndex.build(texts, settings.ngram, settings.min_ngram)
    empty = [name for name, n in index.sizes().items() if n == 0]
    if empty:
        raise ConfigError(f"{source}.benchmarks: {empty[0]} has no item of at least min_ngram="
                          f"{settings.min_ngram} tokens, so it could never match; lower min_ngram or remove it")
    return Benchmarks(index, settings, digests)


_OPENED: dict[str, BenchmarkIndex] = {}
_LOCAL_COPIES: list[tempfile.TemporaryDirectory] = []


def worker_index(url: str, storage_options: dict | None = None) -> BenchmarkIndex:
    """The index at `url`, opened once per process (memory-mapped) and reused by every task after."""
    index = _OPENED.get(url)
    if index is None:
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        if fsspec.utils.get_protocol(url) in ("file", "local"):
            index = BenchmarkIndex.open(path)
        else:
            copy = tempfile.TemporaryDirectory(prefix="instructmix-index-")
            _LOCAL_COPIES.append(copy)  # lives as long as the process
            for name in _INDEX_FILES:
                fs.get_file(f"{path}/{name}", str(Path(copy.name) / name))
            index = BenchmarkIndex.open(copy.name)
        _OPENED[url] = index
    return index


def file_digests(section: dict) -> list[str]:
    """The sha256 of each benchmark file a stage section's `decontaminate:` names (for `instructmix
    run`'s stage fingerprints, which see only the section); a file that cannot be read gives ""
    here and stops the stage itself with its error."""
    settings = DecontaminationSettings.model_validate(section["decontaminate"])
    options = section.get("storage_options") or {}
    out = []
    for bench in settings.benchmarks:
        try:
            fs, path = fsspec.core.url_to_fs(bench.path, **options)
            with fs.open(path, "rb") as f:
                out.append(hashlib.file_digest(f, "sha256").hexdigest())
        except (OSError, ValueError):
            out.append("")
    return out


def digest_of(benchmarks: Benchmarks | None) -> str:
    """One string for fingerprints that take upstream strings (empty without decontamination)."""
    if benchmarks is None:
        return ""
    return hashlib.sha256(json.dumps(benchmarks.fingerprint_part(), sort_keys=True).encode()).hexdigest()
