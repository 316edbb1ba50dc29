"""Sampling on a batch of logits rows: greedy, temperature, top-k, top-p, repetition penalty, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from modelhost.worker.engine.sampling import RowSampling, make_generator, sample, sample_rows, typical_filter
from modelhost.worker.engine.types import SamplingParams

GREEDY = SamplingParams()


def row(params: SamplingParams, seed: int | None = 0, **kwargs: object) -> RowSampling:
    return RowSampling(params, make_generator(seed), **kwargs)  # type: ignore[arg-type]


def test_greedy_rows_take_argmax_with_log_prob() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    tokens, log_probs = sample(logits, [RowSampling(GREEDY, None), RowSampling(GREEDY, None)])
    assert tokens == [1, 0]
    assert math.isclose(log_probs[0], torch.log_softmax(logits[0], -1)[1].item(), rel_tol=1e-6)


def test_each_row_uses_its_own_params() -> None:
    logits = torch.tensor([[0.0, 5.0, 4.9, 0.0]] * 2)
    top_k1 = SamplingParams(do_sample=True, top_k=1)
    tokens, _ = sample(logits, [row(top_k1), RowSampling(GREEDY, None)])
    assert tokens == [1, 1]


def test_top_k_never_picks_outside_the_k_best() -> None:
    logits = torch.tensor([[1.0, 0.9, 0.8, 5.0, 4.0]])
    params = SamplingParams(do_sample=True, top_k=2, temperature=5.0)
    generator = make_generator(1)
    picks = {sample(logits, [RowSampling(params, generator)])[0][0] for _ in range(200)}
    assert picks == {3, 4}


def test_top_p_keeps_smallest_set_reaching_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    params = SamplingParams(do_sample=True, top_p=0.7)
    generator = make_generator(2)
    picks = {sample(logits, [RowSampling(params, generator)])[0][0] for _ in range(300)}
    assert picks == {0, 1}


def test_low_temperature_is_nearly_greedy_high_temperature_spreads() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    cold = SamplingParams(do_sample=True, temperature=0.01)
    hot = SamplingParams(do_sample=True, temperature=100.0)
    g = make_generator(3)
    assert {sample(logits, [RowSampling(cold, g)])[0][0] for _ in range(100)} == {0}
    assert len({sample(logits, [RowSampling(hot, g)])[0][0] for _ in range(100)}) == 3


def test_same_seed_reproduces_the_sample() -> None:
    logits = torch.randn(1, 1000, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(do_sample=True, temperature=1.0, seed=42)

    def draw(seed: int) -> list[int]:
        generator = make_generator(seed)
        return [sample(logits, [RowSampling(params, generator)])[0][0] for _ in range(20)]

    assert draw(42) == draw(42)
    assert draw(42) != draw(43)


def test_repetition_penalty_lowers_seen_tokens() -> None:
    logits = torch.tensor([[2.0, 1.9, -1.0]])
    params = SamplingParams(repetition_penalty=2.0)
    tokens, _ = sample(logits, [RowSampling(params, None, seen_token_ids=[0])])
    assert tokens == [1]
    negative = torch.tensor([[-1.0, -1.5]])
    tokens, _ = sample(negative, [RowSampling(params, None, seen_token_ids=[0])])
    assert tokens == [1]  # -1.0 * 2 = -2.0 < -1.5


def test_suppressed_tokens_are_never_chosen() -> None:
    logits = torch.tensor([[5.0, 1.0]])
    tokens, _ = sample(logits, [RowSampling(GREEDY, None, suppressed_token_ids=(0,))])
    assert tokens == [1]


def test_frequency_and_presence_penalties_count_generated_tokens_only() -> None:
    logits = torch.zeros(1, 4)
    params = SamplingParams(frequency_penalty=0.5, presence_penalty=0.25)
    # token 1 generated twice, token 2 once; token 3 is only in the prompt (seen) and stays untouched
    rows = [RowSampling(params, None, seen_token_ids=(3, 1, 1, 2), generated_token_ids=(1, 1, 2))]
    picked = sample_rows(logits, rows)
    assert picked.tokens == [0]
    expected = torch.log_softmax(torch.tensor([0.0, -1.25, -0.75, 0.0]), -1)
    assert math.isclose(picked.log_probs[0], expected[0].item(), rel_tol=1e-6)
    negative = SamplingParams(frequency_penalty=-1.0)
    assert sample_rows(logits, [RowSampling(negative, None, generated_token_ids=(2,))]).tokens == [2]


def test_penalties_without_generated_tokens_change_nothing() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    params = SamplingParams(frequency_penalty=2.0, presence_penalty=2.0)
    picked = sample_rows(logits, [RowSampling(params, None)])
    assert picked.tokens == [1]
    assert math.isclose(picked.log_probs[0], torch.log_softmax(logits[0], -1)[1].item(), rel_tol=1e-6)


def test_typical_filter_keeps_tokens_closest_to_the_entropy() -> None:
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    scores = torch.log(probs)
    entropy = -(probs * probs.log()).sum()
    closeness = (-probs.log() - entropy).abs()  # the ranking by hand: 0.3 (1), 0.2 (2), 0.4 (0), 0.1 (3)
    assert torch.argsort(closeness).tolist() == [1, 2, 0, 3]
    kept = torch.isfinite(typical_filter(scores, 0.45))
    assert kept.tolist() == [False, True, True, False]  # 0.3 alone < 0.45; 0.3 + 0.2 reaches it
    assert torch.isfinite(typical_filter(scores, 0.95)).tolist() == [True, True, True, True]
    assert torch.isfinite(typical_filter(scores, 0.1)).tolist() == [False, True, False, False]
    masked = scores.clone()
    masked[1] = float("-inf")  # ruled out before (top-k, grammar): stays out
    assert not torch.isfinite(typical_filter(masked, 0.95))[1]


def test_typical_p_restricts_sampling_and_leaves_greedy_alone() -> None:
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    params = SamplingParams(do_sample=True, typical_p=0.45)
    generator = make_generator(5)
    picks = {sample(logits, [RowSampling(params, generator)])[0][0] for _ in range(300)}
    assert picks == {1, 2}
    assert sample(logits, [RowSampling(SamplingParams(typical_p=0.45), None)])[0] == [0]


def test_min_p_drops_tokens_far_below_the_most_likely() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    params = SamplingParams(do_sample=True, min_p=0.5)  # keep p >= 0.25: tokens 0 and 1
    generator = make_generator(4)
    assert {sample(logits, [RowSampling(params, generator)])[0][0] for _ in range(300)} == {0, 1}
    loose = SamplingParams(do_sample=True, min_p=0.05)  # keep p >= 0.025: all four
    assert {sample(logits, [RowSampling(loose, generator)])[0][0] for _ in range(600)} == {0, 1, 2, 3}


def test_logit_bias_moves_the_choice_and_the_log_probabilities() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    banned = SamplingParams(logit_bias=((1, -100.0),))
    picked = sample_rows(logits, [RowSampling(banned, None)])
    assert picked.tokens == [2]
    expected = torch.log_softmax(torch.tensor([0.0, -97.0, 1.0]), -1)[2].item()
    assert math.isclose(picked.log_probs[0], expected, rel_tol=1e-6)
    favoured = SamplingParams(logit_bias=((0, 5.0),))
    assert sample_rows(logits, [RowSampling(favoured, None)]).tokens == [0]
    with pytest.raises(ValueError, match="outside the vocabulary of 3 tokens"):
        sample_rows(logits, [RowSampling(SamplingParams(logit_bias=((3, 1.0),)), None)])
