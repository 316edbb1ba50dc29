"""Token choice from a batch of logits rows, each row with its own SamplingParams and seeded generator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from modelhost.worker.engine.types import SamplingParams


@dataclass(frozen=True, slots=True)
class RowSampling:
    """How to pick the next token for one logits row."""

    params: SamplingParams
    generator: torch.Generator | None  # the request's own RNG; None only for greedy rows
    seen_token_ids: Sequence[int] = ()  # prompt + generated so far; only read when repetition_penalty != 1
    suppressed_token_ids: tuple[int, ...] = ()  # never chosen this step (EOS before min_new_tokens)


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with `seed`, or from OS entropy when None (a fresh, unrepeatable sample)."""
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


# Below this temperature sampling is argmax in all but name, and dividing logits by it overflows float32
# (1e-300 turns every logit into ±inf and the probabilities into NaN): such rows are decoded greedily.
MIN_SAMPLING_TEMPERATURE = 1e-4


def is_greedy(params: SamplingParams) -> bool:
    return not params.do_sample or params.temperature < MIN_SAMPLING_TEMPERATURE or params.top_k == 1


def sample(logits: torch.Tensor, rows: Sequence[RowSampling]) -> tuple[list[int], list[float]]:
    """Pick one token per row of `logits` [n, vocab]; returns the token ids and their log-probabilities.

    The log-probability is that of the chosen token under the model's distribution after the repetition
    penalty (before temperature/top-k/top-p), as TGI reports it. Greedy rows take the argmax.
    """
    if logits.shape[0] != len(rows):
        raise ValueError(f"{logits.shape[0]} logits rows for {len(rows)} sampling rows")
    logits = logits.float()
    penalized = [i for i, row in enumerate(rows) if row.params.repetition_penalty != 1.0]
    suppressed = [i for i, row in enumerate(rows) if row.suppressed_token_ids]
    if penalized or suppressed:
        logits = logits.clone()
        for i in penalized:
            _apply_repetition_penalty(logits[i], rows[i].seen_token_ids, rows[i].params.repetition_penalty)
        for i in suppressed:
            logits[i, list(rows[i].suppressed_token_ids)] = float("-inf")
    tokens = torch.argmax(logits, dim=-1)
    sampled = [i for i, row in enumerate(rows) if not is_greedy(row.params)]
    if sampled:
        tokens = tokens.clone()
        for i in sampled:
            tokens[i] = _sample_row(logits[i], rows[i])
    log_probs = torch.log_softmax(logits, dim=-1).gather(1, tokens.unsqueeze(1)).squeeze(1)
    return tokens.tolist(), log_probs.tolist()


def _apply_repetition_penalty(row: torch.Tensor, seen: Sequence[int], penalty: float) -> None:
    """CTRL-style penalty (as transformers applies it): positive logits divided, negative multiplied."""
    if not seen:
        return
    index = torch.tensor(sorted(set(seen)), dtype=torch.long)
    values = row.index_select(0, index)
    row.index_copy_(0, index, torch.where(values > 0, values / penalty, values * penalty))


def _sample_row(row: torch.Tensor, sampling: RowSampling) -> int:
    params = sampling.params
    scores = row / params.temperature
    if params.top_k > 0 and params.top_k < scores.shape[0]:
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
        # Keep the smallest prefix whose mass reaches top_p: drop a token when the mass before it already does.
        drop = (cumulative - torch.softmax(sorted_scores, dim=-1)) >= params.top_p
        drop[0] = False
        scores = scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=sampling.generator).item())
