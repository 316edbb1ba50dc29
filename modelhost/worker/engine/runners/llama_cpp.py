"""llama.cpp runner (llama-cpp-python, optional): multi-sequence batched decode over a GGUF, one seq id per slot.

Uses the low-level API so one `llama_decode` call carries every entry of a step, each token tagged with its
slot's sequence id; `llama_memory_seq_rm` drops a slot's cache when its sequence leaves. Not installed in
this repository's environment: tests skip it (pytest.importorskip("llama_cpp")).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelhost.worker.engine.gguf import gguf_path
from modelhost.worker.engine.limits import resolve_limits
from modelhost.worker.engine.runners.base import RunnerEntry
from modelhost.worker.engine.tokenizer import HFTokenizer
from modelhost.worker.engine.types import EngineConfig, ModelLimits


class LlamaCppRunner:
    """ModelRunner over a llama.cpp context with `max_slots` sequences of up to `max_model_len` tokens."""

    name = "llama.cpp"
    dtype = "gguf"

    def __init__(self, gguf_path: str, *, max_slots: int, max_model_len: int, threads: int, n_batch: int = 512):
        import llama_cpp

        self._lib = llama_cpp
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(gguf_path.encode(), model_params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load {gguf_path}")
        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx = max_slots * max_model_len
        context_params.n_seq_max = max_slots
        context_params.n_batch = max(n_batch, max_slots)
        context_params.n_ubatch = max(n_batch, max_slots)
        context_params.n_threads = threads
        context_params.n_threads_batch = threads
        self._ctx = llama_cpp.llama_init_from_model(self._model, context_params)
        if not self._ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self._model))
        self._n_batch = context_params.n_batch
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        layers = llama_cpp.llama_model_n_layer(self._model)
        embd = llama_cpp.llama_model_n_embd(self._model)
        self.kv_cache_bytes = 2 * layers * embd * 2 * context_params.n_ctx  # f16 K and V, upper bound (no GQA)

    def release(self, slot: int) -> None:
        self._lib.llama_memory_seq_rm(self._memory, slot, -1, -1)

    def forward(self, entries: Sequence[RunnerEntry]) -> torch.Tensor:
        tokens = [(e, i, token) for e in entries for i, token in enumerate(e.token_ids)]
        rows: list[np.ndarray] = []
        for begin in range(0, len(tokens), self._n_batch):
            rows += self._decode(tokens[begin : begin + self._n_batch])
        if not rows:
            return torch.empty(0, self.vocab_size)
        return torch.from_numpy(np.stack(rows))

    def _decode(self, tokens: list[tuple[RunnerEntry, int, int]]) -> list[np.ndarray]:
        batch = self._batch
        wanted = []
        for i, (entry, offset, token) in enumerate(tokens):
            last = offset == len(entry.token_ids) - 1
            if entry.start == 0 and offset == 0:
                self._lib.llama_memory_seq_rm(self._memory, entry.slot, -1, -1)
            batch.token[i] = token
            batch.pos[i] = entry.start + offset
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = entry.slot
            batch.logits[i] = bool(last and entry.wants_logits)
            if last and entry.wants_logits:
                wanted.append(i)
        batch.n_tokens = len(tokens)
        status = self._lib.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        return [
            np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self._ctx, i), shape=(self.vocab_size,)).copy()
            for i in wanted
        ]


@dataclass(frozen=True, slots=True)
class LoadedLlamaCpp:
    runner: LlamaCppRunner
    tokenizer: HFTokenizer
    eos_token_ids: frozenset[int]
    limits: ModelLimits
    kv_budget_tokens: int


def load_llama_cpp(config: EngineConfig) -> Any:
    """Load the config's GGUF with llama.cpp; the tokenizer comes from the same GGUF through transformers."""
    from transformers import AutoTokenizer

    path = gguf_path(config)
    if path is None:
        raise ValueError("backend llama.cpp needs a .gguf model (model path or gguf_file)")
    limits = resolve_limits(config, None)
    threads = int(config.extra.get("threads", 0)) or len(os.sched_getaffinity(0))
    runner = LlamaCppRunner(
        str(path), max_slots=limits.max_batch_size, max_model_len=limits.max_model_len, threads=threads
    )
    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name))
    eos = tokenizer.eos_token_ids(None)
    # The context holds every slot at full length: the budget is the whole cache.
    return LoadedLlamaCpp(runner, tokenizer, eos, limits, limits.max_batch_size * limits.max_model_len)
