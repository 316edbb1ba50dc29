"""Prefix caching: a prompt that starts like an earlier one (a system prompt, a chat history) reuses its K/V.

A prompt is cut into blocks of `block_tokens` tokens. Block i's key is chained over blocks 0..i (sha256 of the
previous block's key and this block's token ids), so one key names a whole prefix, not just a block. The
store is an LRU of full blocks' K/V, bounded in bytes:

* `store` copies the K/V of a prompt's full blocks out of its slot once the prompt has been prefilled;
* `restore`, when a sequence is admitted, copies the stored blocks its prompt starts with into its new slot and
  says how many tokens that covers; the scheduler then prefills only the rest. The last prompt token is always
  left to compute: its logits give the first new token.

This is a copy, not shared pages: the runners keep one contiguous cache region per slot, so a hit costs a
memory copy of the cached K/V instead of the forward over those tokens. Eviction takes the least recently used
block; a chain is touched tail first, so within a chain the tail goes before the head (a block is only useful
while every block before it is stored). Only the engine thread calls it; the counters may be read from any.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from modelhost.worker.engine.runners.base import CopiesKV

DEFAULT_BLOCK_TOKENS = 16
_ROOT = b""


@dataclass(frozen=True, slots=True)
class _Block:
    tokens: tuple[int, ...]  # checked on a hit, as well as the key
    kv: torch.Tensor  # what the runner's read_kv returned for the block


class PrefixCache:
    """The LRU of prompt blocks' K/V for one runner (see the module docstring)."""

    def __init__(self, runner: CopiesKV, max_bytes: int, block_tokens: int = DEFAULT_BLOCK_TOKENS) -> None:
        if block_tokens < 1:
            raise ValueError("block_tokens must be at least 1")
        self._runner = runner
        self.block_tokens = block_tokens
        self.block_bytes = runner.kv_bytes_per_token * block_tokens
        self.capacity_blocks = max(0, max_bytes) // max(1, self.block_bytes)
        self._blocks: OrderedDict[bytes, _Block] = OrderedDict()
        self.queries = 0  # prompt tokens looked up
        self.hits = 0  # of those, tokens whose K/V came from the store
        self.evicted_blocks = 0

    @property
    def stored_blocks(self) -> int:
        return len(self._blocks)

    @property
    def stored_bytes(self) -> int:
        return len(self._blocks) * self.block_bytes

    def restore(self, slot: int, token_ids: Sequence[int]) -> int:
        """Copy the stored blocks `token_ids` starts with into positions 0.. of `slot`; returns the tokens
        covered (a multiple of block_tokens, always less than len(token_ids))."""
        self.queries += len(token_ids)
        usable = (len(token_ids) - 1) // self.block_tokens
        matched: list[tuple[bytes, _Block]] = []
        for index, key in enumerate(self._keys(token_ids, usable)):
            block = self._blocks.get(key)
            if block is None or block.tokens != self._block(token_ids, index):
                break
            matched.append((key, block))
        for index, (_, block) in enumerate(matched):
            self._runner.write_kv(slot, index * self.block_tokens, block.kv)
        self._touch([key for key, _ in matched])
        covered = len(matched) * self.block_tokens
        self.hits += covered
        return covered

    def store(self, slot: int, token_ids: Sequence[int]) -> None:
        """Keep the K/V of the full blocks of a prompt whose every token is now in `slot` (the first
        capacity_blocks of them when the store is smaller than the prompt)."""
        count = min(len(token_ids) // self.block_tokens, self.capacity_blocks)
        if count == 0:
            return
        keys = list(self._keys(token_ids, count))
        self._touch([key for key in keys if key in self._blocks])  # the chain's blocks are not evicted for it
        missing = [index for index, key in enumerate(keys) if key not in self._blocks]
        while self._blocks and len(self._blocks) + len(missing) > self.capacity_blocks:
            self._blocks.popitem(last=False)
            self.evicted_blocks += 1
        for index in missing:
            kv = self._runner.read_kv(slot, index * self.block_tokens, self.block_tokens)
            self._blocks[keys[index]] = _Block(self._block(token_ids, index), kv)
        self._touch(keys)

    def clear(self) -> None:
        self._blocks.clear()

    def _touch(self, chain: list[bytes]) -> None:
        """Mark a chain's blocks most recently used, its first block most of all."""
        for key in reversed(chain):
            self._blocks.move_to_end(key)

    def _block(self, token_ids: Sequence[int], index: int) -> tuple[int, ...]:
        return tuple(token_ids[index * self.block_tokens : (index + 1) * self.block_tokens])

    def _keys(self, token_ids: Sequence[int], blocks: int) -> Iterator[bytes]:
        """The chained keys of the first `blocks` blocks, computed as they are consumed."""
        key = _ROOT
        for index in range(blocks):
            key = hashlib.sha256(key + array("q", self._block(token_ids, index)).tobytes()).digest()
            yield key
