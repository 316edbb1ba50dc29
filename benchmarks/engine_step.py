"""Micro-benchmark of the built-in engine in-process: 16 chat prompts x 128 new tokens, greedy, EOS ignored.

    HF_HUB_OFFLINE=1 python benchmarks/engine_step.py MODEL_DIR [--dtype auto] [--reps 3] [--concurrency 16]

Prints one JSON line per run: output tok/s (all tokens / wall time), TTFT p50/max, resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time

from modelhost.worker.engine.factory import create_backend
from modelhost.worker.engine.types import Backend, EngineConfig, GenerationRequest, SamplingParams

QUESTIONS = [
    "What is the capital of France?",
    "Explain photosynthesis in one paragraph.",
    "Write a haiku about the sea.",
    "What is 17 times 23?",
    "Name three primary colors.",
    "How do airplanes fly?",
    "What is a black hole?",
    "Give me a tip for learning Python.",
    "Why is the sky blue?",
    "What does DNA stand for?",
    "Describe a cat to someone who has never seen one.",
    "What is the boiling point of water?",
    "Who wrote Romeo and Juliet?",
    "What is machine learning?",
    "Suggest a name for a pet turtle.",
    "How many continents are there?",
]


async def run_once(backend: Backend, prompts: list[list[int]], new_tokens: int) -> dict[str, float]:
    params = SamplingParams(max_new_tokens=new_tokens, ignore_eos=True)
    started = time.perf_counter()
    ttfts: list[float] = []

    async def one(i: int, ids: list[int]) -> int:
        count = 0
        async for event in backend.generate(GenerationRequest(f"r{i}", tuple(ids), params)):
            if event.token_id is not None:
                if count == 0:
                    ttfts.append(time.perf_counter() - started)
                count += 1
        return count

    counts = await asyncio.gather(*(one(i, ids) for i, ids in enumerate(prompts)))
    wall = time.perf_counter() - started
    assert sum(counts) == len(prompts) * new_tokens, counts
    return {
        "output_tok_s": round(sum(counts) / wall, 1),
        "wall_s": round(wall, 3),
        "ttft_p50_s": round(statistics.median(ttfts), 3),
        "ttft_max_s": round(max(ttfts), 3),
        "rss_mib": round(_rss_bytes() / 2**20, 1),
        "rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--extra", action="append", default=[], help="EngineConfig.extra KEY=VALUE")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.extra)
    config = EngineConfig(
        args.model, dtype=args.dtype, max_batch_size=args.concurrency, max_model_len=args.max_model_len, extra=extra
    )
    backend = create_backend(config)
    started = time.perf_counter()
    await backend.start()
    print(json.dumps({"load_s": round(time.perf_counter() - started, 2), **backend.stats()}))
    prompts = [
        backend.encode(backend.apply_chat_template([{"role": "user", "content": q}]), add_special_tokens=False)
        for q in (QUESTIONS * 4)[: args.concurrency]
    ]
    await run_once(backend, prompts[:2], 8)  # warm-up
    for _ in range(args.reps):
        print(json.dumps(await run_once(backend, prompts, args.new_tokens)))
    await backend.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
