"""Generic runner: any causal LM transformers can load, run through its own forward with a cache per slot.

Correctness over speed: each entry runs as its own batch-1 forward (continuous batching still happens at
the scheduler level: sequences join and leave between steps). Works for architectures whose cache layout
the fast path does not know (Falcon, GPT-2, Phi, ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from modelhost.worker.engine.runners.base import RunnerEntry


class TransformersRunner:
    """ModelRunner over a transformers `...ForCausalLM`; see the module docstring."""

    name = "transformers"

    def __init__(self, model: Any) -> None:  # a transformers ...ForCausalLM (see fast_llama.HFModel)
        self.model = model
        self.vocab_size = model.config.vocab_size
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        parameters = inspect.signature(model.forward).parameters
        # transformers 5 renamed the cache argument for some architectures (Falcon: `cache`).
        self._cache_arg = "past_key_values" if "past_key_values" in parameters else "cache"
        self._keeps_logits = "logits_to_keep" in parameters
        self._caches: dict[int, Any] = {}

    @property
    def kv_cache_bytes(self) -> int:
        total = 0
        for cache in self._caches.values():
            for layer in getattr(cache, "layers", ()):
                for name in ("keys", "values"):
                    tensor = getattr(layer, name, None)
                    if isinstance(tensor, torch.Tensor):
                        total += tensor.numel() * tensor.element_size()
        return total

    def release(self, slot: int) -> None:
        self._caches.pop(slot, None)

    @torch.inference_mode()
    def forward(self, entries: Sequence[RunnerEntry]) -> torch.Tensor:
        rows = []
        for entry in entries:
            if entry.start == 0:
                self._caches.pop(entry.slot, None)
            elif entry.slot not in self._caches:
                raise RuntimeError(f"slot {entry.slot} has no cache to continue from position {entry.start}")
            length = len(entry.token_ids)
            kwargs: dict[str, Any] = {
                "input_ids": torch.tensor([entry.token_ids], dtype=torch.long),
                "position_ids": torch.arange(entry.start, entry.start + length).unsqueeze(0),
                "attention_mask": torch.ones(1, entry.start + length, dtype=torch.long),
                "use_cache": True,
                self._cache_arg: self._caches.get(entry.slot),
            }
            if self._keeps_logits:
                kwargs["logits_to_keep"] = 1
            output = self.model(**kwargs)
            self._caches[entry.slot] = output.past_key_values
            if entry.wants_logits:
                rows.append(output.logits[0, -1].float())
        if not rows:
            return torch.empty(0, self.vocab_size)
        return torch.stack(rows)
