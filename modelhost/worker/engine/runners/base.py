"""The ModelRunner protocol: one forward over a step's entries, per-slot KV state, slot release."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True, slots=True)
class RunnerEntry:
    """One sequence's share of a step."""

    slot: int  # cache slot of the sequence (0 <= slot < max_batch_size)
    token_ids: tuple[int, ...]  # tokens fed this step: a prompt chunk, or the last sampled token
    start: int  # position of token_ids[0]; the slot's cache already holds positions [0, start)
    wants_logits: bool  # return the next-token logits after token_ids[-1]


class ModelRunner(Protocol):
    """Executes steps for the engine thread. Only the engine thread calls it, one step at a time."""

    name: str  # "fast-llama", "transformers", "llama.cpp"
    vocab_size: int  # width of the logits rows
    dtype: str  # weights/activations dtype, for stats ("bfloat16", "float32", "q4_1"...)
    @property
    def kv_cache_bytes(self) -> int:
        """Memory the KV cache holds (allocated now)."""

    def forward(self, entries: Sequence[RunnerEntry]) -> torch.Tensor:
        """Run the entries in one step and store their K/V; returns float32 logits [k, vocab] for the k
        entries with wants_logits, in entry order. Raises on failure (the engine fails those requests)."""
        ...

    def release(self, slot: int) -> None:
        """The slot's sequence has left; its cached state may be dropped or overwritten."""
        ...


@runtime_checkable
class CopiesKV(Protocol):
    """A runner whose slots' K/V can be copied out and back in (prefix caching needs it; a runner without these
    members serves without a prefix cache)."""

    kv_bytes_per_token: int  # K and V of one token over all layers, in bytes

    def read_kv(self, slot: int, start: int, length: int) -> torch.Tensor:
        """A copy (sharing no memory with the cache) of the slot's K/V at positions [start, start + length)."""
        ...

    def write_kv(self, slot: int, start: int, kv: torch.Tensor) -> None:
        """Put K/V returned by read_kv at positions [start, start + its length) of the slot."""
        ...
