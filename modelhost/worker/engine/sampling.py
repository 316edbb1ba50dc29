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
    allowed: torch.Tensor | None = None  # bool [vocab]: the only tokens a grammar allows this step (None: all)
    top_logprobs: int = 0  # how many of the most likely tokens to report with the chosen one
    generated_token_ids: Sequence[int] = ()  # this request's tokens so far (not the prompt's); only read with a
    # frequency or presence penalty


@dataclass(frozen=True, slots=True)
class Sampled:
    """What `sample_rows` picked: per row the token, its log-probability and the top alternatives."""

    tokens: list[int]
    log_probs: list[float]
    top: list[list[tuple[int, float]]]  # per row, (token id, log-probability) best first; [] unless asked


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
    """Pick one token per row of `logits` [n, vocab]; returns the token ids and their log-probabilities."""
    picked = sample_rows(logits, rows)
    return picked.tokens, picked.log_probs


def sample_rows(logits: torch.Tensor, rows: Sequence[RowSampling]) -> Sampled:
    """Pick one token per row of `logits` [n, vocab], with its log-probability and the top alternatives.

    Log-probabilities are the model's log-softmax over the whole vocabulary after the penalties asked for
    (repetition, then frequency and presence) and logit_bias, before EOS suppression, a grammar's mask,
    temperature, min-p, top-k, top-p and typical-p: what the model thinks of each token, as OpenAI and TGI report
    it, the same whether the row is greedy, sampled or constrained. Greedy rows take the argmax of what is allowed.
    """
    if logits.shape[0] != len(rows):
        raise ValueError(f"{logits.shape[0]} logits rows for {len(rows)} sampling rows")
    logits = logits.float()
    penalized = [i for i, row in enumerate(rows) if _has_penalty(row.params)]
    if penalized:
        logits = logits.clone()
        for i in penalized:
            _apply_penalties(logits[i], rows[i])
    all_log_probs = torch.log_softmax(logits, dim=-1)
    restricted = [i for i, row in enumerate(rows) if row.suppressed_token_ids or row.allowed is not None]
    if restricted:
        logits = logits.clone() if not penalized else logits
        for i in restricted:
            _restrict(logits[i], rows[i])
    tokens = torch.argmax(logits, dim=-1)
    sampled = [i for i, row in enumerate(rows) if not is_greedy(row.params)]
    if sampled:
        tokens = tokens.clone()
        for i in sampled:
            tokens[i] = _sample_row(logits[i], rows[i])
    log_probs = all_log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1)
    top: list[list[tuple[int, float]]] = [[] for _ in rows]
    for i, row in enumerate(rows):
        if row.top_logprobs > 0:
            values, ids = torch.topk(all_log_probs[i], min(row.top_logprobs, all_log_probs.shape[1]))
            top[i] = list(zip(ids.tolist(), values.tolist(), strict=True))
    return Sampled(tokens.tolist(), log_probs.tolist(), top)


def _restrict(row: torch.Tensor, sampling: RowSampling) -> None:
    """Rule out suppressed tokens and, with a grammar, every token it does not allow (in place)."""
    if sampling.allowed is not None:
        allowed = sampling.allowed
        if allowed.shape[0] != row.shape[0]:
            raise ValueError(f"a grammar mask of {allowed.shape[0]} tokens for {row.shape[0]} logits")
        if not bool(allowed.any()):
            raise ValueError("the grammar allows no token here")
        row.masked_fill_(~allowed, float("-inf"))
    if sampling.suppressed_token_ids:
        row[list(sampling.suppressed_token_ids)] = float("-inf")


def _has_penalty(params: SamplingParams) -> bool:
    return (
        params.repetition_penalty != 1.0
        or params.frequency_penalty != 0.0
        or params.presence_penalty != 0.0
        or bool(params.logit_bias)
    )


def _apply_penalties(row: torch.Tensor, sampling: RowSampling) -> None:
    params = sampling.params
    if params.repetition_penalty != 1.0:
        _apply_repetition_penalty(row, sampling.seen_token_ids, params.repetition_penalty)
    if params.frequency_penalty != 0.0 or params.presence_penalty != 0.0:
        apply_frequency_presence(row, sampling.generated_token_ids, params.frequency_penalty, params.presence_penalty)
    if params.logit_bias:
        ids = torch.tensor([token for token, _ in params.logit_bias], dtype=torch.long)
        if int(ids.max()) >= row.shape[0] or int(ids.min()) < 0:
            raise ValueError(f"logit_bias names a token outside the vocabulary of {row.shape[0]} tokens")
        row.index_add_(0, ids, torch.tensor([bias for _, bias in params.logit_bias], dtype=row.dtype))


def apply_frequency_presence(row: torch.Tensor, generated: Sequence[int], frequency: float, presence: float) -> None:
    """OpenAI's penalties (in place): each token already generated loses `frequency` times its count, plus
    `presence` once. Only generated tokens count, not the prompt's (as OpenAI and vLLM); negative values favour
    repeating."""
    if not generated:
        return
    counts = torch.bincount(torch.tensor(list(generated), dtype=torch.long), minlength=row.shape[0]).to(row.dtype)
    row -= counts * frequency + (counts > 0).to(row.dtype) * presence


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
    if params.min_p > 0.0:  # relative to the most likely token, after temperature (as vLLM and transformers)
        probs = torch.softmax(scores, dim=-1)
        scores = scores.masked_fill(probs < params.min_p * probs.max(), float("-inf"))
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
    if params.typical_p < 1.0:
        scores = typical_filter(scores, params.typical_p)
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=sampling.generator).item())


def typical_filter(scores: torch.Tensor, mass: float) -> torch.Tensor:
    """Typical decoding (Meister et al. 2022, as TGI and transformers' `typical_p`): rank the tokens by how far
    their information (-log p) is from the distribution's entropy, closest first, and keep the smallest prefix of
    that ranking whose probability reaches `mass`; every other token's score becomes -inf. Tokens already at
    -inf (top-k, top-p, a grammar) stay out."""
    log_probs = torch.log_softmax(scores, dim=-1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).nansum()  # 0 * -inf is NaN for tokens already ruled out: they add nothing
    order = torch.argsort((-log_probs - entropy).abs())
    ranked = probs[order]
    # as for top-p: drop a token when the mass ranked before it already reaches `mass`; the first always stays
    drop = (ranked.cumsum(dim=-1) - ranked) >= mass
    drop[0] = False
    return scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
