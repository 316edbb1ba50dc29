"""Grammar-constrained generation and log-probabilities in the engine, on SmolLM2 (fp32).

Constrained rows share batches with unconstrained ones (their mask applies to their row only); every constrained
answer parses and validates against its schema; log-probabilities equal a transformers forward pass."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from engine_calls import collect, greedy, prompt_ids

from modelhost.worker.engine.grammar import json_constraint, regex_constraint
from modelhost.worker.engine.types import Backend, GenerationRequest, SamplingParams, TokenEvent

pytestmark = pytest.mark.slow  # loads SmolLM2 (session fixture, ~25 s once)

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
ITEMS = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3}},
    "required": ["items"],
    "additionalProperties": False,
}


def _text(events: list[TokenEvent]) -> str:
    return "".join(e.text for e in events)


def test_constrained_answers_validate_in_a_mixed_batch(fp32_backend: Backend) -> None:
    person = json_constraint(PERSON, "response_format")
    items = json_constraint(ITEMS, "response_format")
    any_object = json_constraint(None, "response_format")
    free_ids = prompt_ids(fp32_backend, "Write a haiku about the sea.")
    solo_free = asyncio.run(collect(fp32_backend, GenerationRequest("f0", free_ids, greedy(24, ignore_eos=True))))
    cases: list[tuple[str, Any, dict[str, Any] | None]] = [
        ("Describe a person who lives in Tokyo as JSON.", person, PERSON),
        ("List three fruits as JSON.", items, ITEMS),
        ('Answer with a JSON object whose only key is "color": what colour is the sky?', any_object, None),
    ]

    async def mixed() -> list[list[TokenEvent]]:
        requests = [
            GenerationRequest(f"c{i}", prompt_ids(fp32_backend, q), greedy(120, constraint=c))
            for i, (q, c, _) in enumerate(cases)
        ]
        requests.append(GenerationRequest("free", free_ids, greedy(24, ignore_eos=True)))
        return await asyncio.gather(*(collect(fp32_backend, r) for r in requests))

    results = asyncio.run(mixed())
    for (_, _, schema), events in zip(cases, results[:3], strict=True):
        value = json.loads(_text(events))
        assert isinstance(value, dict)
        if schema is not None:
            jsonschema.validate(value, schema)
        assert events[-1].finish_reason == "eos_token"  # the grammar ended it, not max_new_tokens
    # the unconstrained row of the same batches is unchanged by its neighbours' masks
    assert [e.token_id for e in results[3]] == [e.token_id for e in solo_free]
    stats = fp32_backend.stats()
    assert stats["constrained_tokens"] > 0 and stats["grammar_mask_ms_total"] > 0


def test_sampled_constrained_answers_validate(fp32_backend: Backend) -> None:
    person = json_constraint(PERSON, "response_format")
    ids = prompt_ids(fp32_backend, "Invent a person as JSON.")

    async def draws() -> list[list[TokenEvent]]:
        params = [
            SamplingParams(max_new_tokens=120, do_sample=True, temperature=1.2, seed=s, constraint=person)
            for s in range(4)
        ]
        return await asyncio.gather(
            *(collect(fp32_backend, GenerationRequest(f"s{i}", ids, p)) for i, p in enumerate(params))
        )

    for events in asyncio.run(draws()):
        jsonschema.validate(json.loads(_text(events)), PERSON)


def test_regex_grammar(fp32_backend: Backend) -> None:
    ids = prompt_ids(fp32_backend, "What is 17 times 23?")
    constraint = regex_constraint(r"[0-9]{1,4}", "parameters.grammar")
    events = asyncio.run(collect(fp32_backend, GenerationRequest("re", ids, greedy(10, constraint=constraint))))
    text = _text(events)
    assert text.isdigit() and 1 <= len(text) <= 4


@pytest.fixture(scope="module")
def hf_model(smollm2_dir: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()


def test_logprobs_match_a_reference_forward_pass(fp32_backend: Backend, hf_model: torch.nn.Module) -> None:
    ids = prompt_ids(fp32_backend, "What is the capital of France?")
    params = greedy(12, ignore_eos=True, logprobs=5)
    events = asyncio.run(collect(fp32_backend, GenerationRequest("lp", ids, params)))
    tokens = [e.token_id for e in events]
    assert all(t is not None for t in tokens)
    with torch.inference_mode():
        logits = hf_model(torch.tensor([[*ids, *tokens]])).logits[0].float()
    reference = torch.log_softmax(logits[len(ids) - 1 : -1], dim=-1)
    for step, event in enumerate(events):
        assert event.token_id is not None and event.log_prob is not None
        assert event.log_prob == pytest.approx(reference[step, event.token_id].item(), abs=2e-3)
        assert len(event.top_log_probs) == 5
        values, top_ids = torch.topk(reference[step], 5)
        assert [c.token_id for c in event.top_log_probs][:2] == top_ids.tolist()[:2]
        for candidate in event.top_log_probs:
            assert candidate.log_prob == pytest.approx(reference[step, candidate.token_id].item(), abs=2e-3)
        assert event.top_log_probs[0].token_id == event.token_id  # greedy: the chosen token is the most likely
        assert event.token_bytes is not None
    first_eos = next(i for i, e in enumerate(events) if e.token_id in fp32_backend.eos_token_ids)
    spoken = events[:first_eos]  # special tokens have bytes ("<|im_end|>") but add no text
    assert b"".join(e.token_bytes or b"" for e in spoken).decode("utf-8") == _text(spoken)
