"""Frequency/presence penalties, typical_p and top tokens on SmolLM2 through the built-in engine."""

from __future__ import annotations

from collections import Counter

import pytest
from engine_calls import generate, prompt_ids

from modelhost.worker.engine.types import Backend, GenerationRequest, SamplingParams

pytestmark = pytest.mark.slow  # loads SmolLM2 (session fixture, ~25 s once)


def _tokens(backend: Backend, request_id: str, question: str, params: SamplingParams) -> list[int]:
    events = generate(backend, GenerationRequest(request_id, prompt_ids(backend, question), params))
    return [e.token_id for e in events if e.token_id is not None]


def test_frequency_and_presence_penalties_stop_greedy_repetition(fp32_backend: Backend) -> None:
    question = "Repeat the word dog twenty times, separated by spaces."
    plain = _tokens(fp32_backend, "plain", question, SamplingParams(max_new_tokens=24, ignore_eos=True))
    penalized = _tokens(
        fp32_backend,
        "penalized",
        question,
        SamplingParams(max_new_tokens=24, ignore_eos=True, frequency_penalty=2.0, presence_penalty=2.0),
    )
    assert penalized[0] == plain[0]  # nothing generated yet: the first step is not penalized
    assert penalized != plain
    most_repeated = Counter(plain).most_common(1)[0][1]
    assert most_repeated >= 3  # the greedy answer does repeat itself
    assert Counter(penalized).most_common(1)[0][1] < most_repeated


def test_a_tiny_typical_mass_leaves_one_candidate_whatever_the_seed(fp32_backend: Backend) -> None:
    question = "Suggest a name for a pet turtle."

    def draw(seed: int, typical_p: float) -> list[int]:
        params = SamplingParams(max_new_tokens=12, do_sample=True, seed=seed, typical_p=typical_p, ignore_eos=True)
        return _tokens(fp32_backend, f"typical{seed}-{typical_p}", question, params)

    assert draw(1, 1.0) != draw(2, 1.0)  # plain sampling: the seeds differ
    assert draw(1, 1e-6) == draw(2, 1e-6)  # only the token closest to the entropy is left at each step


def test_top_alternatives_are_ranked_and_greedy_picks_the_first(fp32_backend: Backend) -> None:
    ids = prompt_ids(fp32_backend, "What is the capital of France?")
    events = generate(fp32_backend, GenerationRequest("top", ids, SamplingParams(max_new_tokens=6, logprobs=3)))
    for event in events:
        if event.token_id is None:
            continue
        top = event.top_log_probs
        assert len(top) == 3 and top[0].token_id == event.token_id
        assert top[0].log_prob == pytest.approx(event.log_prob, abs=1e-6)
        assert top[0].log_prob >= top[1].log_prob >= top[2].log_prob
