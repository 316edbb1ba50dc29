"""What the GPU tier compares the vLLM backend with: the built-in engine's greedy answers on the CPU (fp32) to
the CPU engine tests' prompts, and the rule for when two greedy answers agree. Imports torch and transformers
only inside its functions, so that conftest.py can import it on any machine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from modelhost.worker.engine.types import Backend, EngineConfig, GenerationRequest, SamplingParams

# the questions tests/integration/engine asks SmolLM2
PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Tell me a long story about a dragon.",
    "Name three primary colors.",
    "Suggest a name for a pet turtle.",
)
MAX_NEW_TOKENS = 12
TOP = 5  # alternatives kept per step, to judge a divergence
# How much less likely (nats, under the reference) vLLM's greedy token may be where the answers first part:
# vLLM computes in bf16/fp16, the reference in fp32, so near-ties may fall either way.
TIE_TOLERANCE = 0.5


@dataclass(frozen=True)
class Reference:
    """The built-in engine's greedy answer to one prompt."""

    prompt: str  # the chat-templated prompt text, as sent in LMI's `inputs`
    token_ids: tuple[int, ...]  # MAX_NEW_TOKENS greedy tokens (EOS ignored)
    log_probs: tuple[float, ...]  # each token's log-probability
    top: tuple[dict[int, float], ...]  # per step: the TOP most likely tokens -> log-probability


def build_tiny_llama(folder: Path, registry_dir: Path) -> Path:
    """A 2-layer random llama (hidden 256, head size 64, GQA) with SmolLM2's tokenizer and chat template, saved
    to `folder`. initializer_range 0.2 makes its next-token distributions peaked, so greedy choices are rarely
    near-ties that bf16 could flip."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from modelhost.registry import ModelRegistry
    from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf

    registry = ModelRegistry(registry_dir)
    registry.add(SMOLLM2_ID, bundled_smollm2_gguf())
    smollm2 = registry.resolve(SMOLLM2_ID)
    assert smollm2 is not None
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference_answers(model_dir: Path) -> dict[str, Reference]:
    """The built-in engine (transformers backend, fp32, CPU) answering every prompt greedily."""
    from modelhost.worker.engine.factory import create_backend

    backend = create_backend(
        EngineConfig(str(model_dir), backend="transformers", dtype="fp32", max_batch_size=4, max_model_len=1024)
    )
    asyncio.run(backend.start())
    try:
        return {question: _answer(backend, question, i) for i, question in enumerate(PROMPTS)}
    finally:
        asyncio.run(backend.shutdown())


def _answer(backend: Backend, question: str, index: int) -> Reference:
    prompt = backend.apply_chat_template([{"role": "user", "content": question}])
    ids = tuple(backend.encode(prompt))  # with special tokens, as the LMI route encodes `inputs`
    params = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, ignore_eos=True, logprobs=TOP)

    async def collect() -> list[tuple[int, float, dict[int, float]]]:
        steps = []
        async for event in backend.generate(GenerationRequest(f"ref{index}", ids, params)):
            if event.token_id is not None:
                top = {c.token_id: c.log_prob for c in event.top_log_probs}
                steps.append((event.token_id, event.log_prob or 0.0, top))
        return steps

    steps = asyncio.run(collect())
    return Reference(
        prompt=prompt,
        token_ids=tuple(s[0] for s in steps),
        log_probs=tuple(s[1] for s in steps),
        top=tuple(s[2] for s in steps),
    )


def disagreement(reference: Reference, token_ids: list[int]) -> str | None:
    """Why `token_ids` (another engine's greedy answer to the same prompt) does not agree with the reference,
    or None when it does: equal up to the first difference, and there vLLM's token is among the reference's
    top alternatives and at most TIE_TOLERANCE less likely than the reference's own (a near-tie). After the
    first difference the answers continue from different text and are not compared."""
    if len(token_ids) != len(reference.token_ids):
        return f"{len(token_ids)} tokens, the reference has {len(reference.token_ids)}"
    for step, (ours, theirs) in enumerate(zip(reference.token_ids, token_ids, strict=True)):
        if ours == theirs:
            continue
        alternatives = reference.top[step]
        if theirs not in alternatives:
            return f"step {step}: token {theirs} is not among the reference's top {len(alternatives)} ({ours} is)"
        gap = reference.log_probs[step] - alternatives[theirs]
        if gap > TIE_TOLERANCE:
            return f"step {step}: token {theirs} is {gap:.3f} nats less likely than the reference's {ours}"
        return None
    return None
