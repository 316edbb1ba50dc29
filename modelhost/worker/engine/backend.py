"""BuiltinBackend: the `Backend` contract over the built-in engine (transformers or llama.cpp runners)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from modelhost.concurrency import run_blocking
from modelhost.worker.engine.engine import Engine
from modelhost.worker.engine.grammar import grammar_runtime
from modelhost.worker.engine.limits import resolve_limits
from modelhost.worker.engine.prefix_cache import PrefixCache
from modelhost.worker.engine.runners.base import CopiesKV, ModelRunner
from modelhost.worker.engine.scheduler import SchedulerConfig
from modelhost.worker.engine.tokenizer import Tokenizer
from modelhost.worker.engine.types import EngineConfig, GenerationRequest, ModelLimits, TokenEvent


class Loaded(Protocol):
    """What a loader returns: runner, tokenizer, EOS ids, final limits and KV budget (tokens)."""

    @property
    def runner(self) -> ModelRunner: ...
    @property
    def tokenizer(self) -> Tokenizer: ...
    @property
    def eos_token_ids(self) -> frozenset[int]: ...
    @property
    def limits(self) -> ModelLimits: ...
    @property
    def kv_budget_tokens(self) -> int: ...


Loader = Callable[[EngineConfig], Loaded]


class BuiltinBackend:
    """Backend over `Engine`; `start()` loads the model in a worker thread, then starts the engine thread.

    `limits` is provisional (from the config) until `start()` returns; then it holds what was allocated.
    """

    def __init__(self, config: EngineConfig, loader: Loader, name: str) -> None:
        self.config = config
        self.name = name
        self._loader = loader
        self.limits = resolve_limits(config, None)
        self.eos_token_ids: frozenset[int] = frozenset()
        self._engine: Engine | None = None
        self._tokenizer: Tokenizer | None = None

    async def start(self) -> None:
        if self._engine is not None:
            return
        prefix_cache_bytes = prefix_cache_size(self.config.extra)  # a bad option fails before the model loads
        loaded = await in_own_thread(self._loader, self.config)
        self.limits = loaded.limits
        self.eos_token_ids = loaded.eos_token_ids
        self._tokenizer = loaded.tokenizer
        max_step_tokens = prefill_tokens_per_step(self.config.extra)
        grammar = grammar_runtime(loaded.tokenizer, loaded.eos_token_ids)
        engine = Engine(
            loaded.runner,
            limits=loaded.limits,
            scheduler_config=SchedulerConfig(loaded.limits.max_batch_size, loaded.kv_budget_tokens, max_step_tokens),
            eos_token_ids=loaded.eos_token_ids,
            decode=loaded.tokenizer.decode,
            grammar=grammar,
            prefix_cache=PrefixCache(loaded.runner, prefix_cache_bytes)
            if prefix_cache_bytes and isinstance(loaded.runner, CopiesKV)
            else None,
        )
        engine.start()
        grammar.warm_in_background()  # llguidance's tokenizer (~0.3 s) is ready before the first constrained request
        self._engine = engine

    async def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.stop)

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self._require_tokenizer().encode(text, add_special_tokens=add_special_tokens)

    def decode(self, token_ids: list[int]) -> str:
        return self._require_tokenizer().decode(token_ids)

    def apply_chat_template(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        return self._require_tokenizer().apply_chat_template(messages, add_generation_prompt=add_generation_prompt)

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        """Must be called on the event loop; raises InputTooLong (or ValueError) here, before any event."""
        return self._require_engine().submit(request)

    def stats(self) -> dict[str, Any]:
        if self._engine is None:
            return {"backend": self.name, "started": False}
        return {"backend": self.name, "started": True, **self._engine.stats()}

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the backend is not started (await backend.start() first)")
        return self._engine

    def _require_tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise RuntimeError("the backend is not started (await backend.start() first)")
        return self._tokenizer


async def in_own_thread(fn: Callable[[EngineConfig], Loaded], config: EngineConfig) -> Loaded:
    """fn(config) in a thread of its own that ends with it, not in the event loop's executor.

    torch's CPU kernels run on GNU OpenMP, which keeps a team of threads for every thread that has run a parallel
    region, for as long as that thread lives. Loading in an executor thread (which stays) left its team behind, and
    with more OpenMP threads than cores libgomp stops spinning between regions: the engine thread's ~600 parallel
    regions per step then each wake a sleeping thread, and a SmolLM2 decode step took 15 ms instead of 7.7."""
    return await run_blocking(lambda: fn(config), timeout_s=None, name="modelhost-engine-load")


# Prompt tokens fed per engine step. Smaller chunks spread the prefill of a burst over several steps, so the
# first requests get their first token sooner and running streams keep their cadence (measured on SmolLM2,
# 2 CPU cores, 16 x 40-token prompts: TTFT p50 0.47 s at 2048 vs 0.39 s at 192, for ~3% less throughput).
DEFAULT_PREFILL_TOKENS_PER_STEP = 256
PREFILL_TOKEN_OPTIONS = ("max_rolling_batch_prefill_tokens", "max_batch_prefill_tokens", "max_step_tokens")


def prefill_tokens_per_step(extra: dict[str, str]) -> int:
    """LMI's option.max_rolling_batch_prefill_tokens, TGI's MAX_BATCH_PREFILL_TOKENS, or the default."""
    for key in PREFILL_TOKEN_OPTIONS:
        if extra.get(key):
            return int(extra[key])
    return DEFAULT_PREFILL_TOKENS_PER_STEP


# Prefix caching (option.enable_prefix_caching, on by default) keeps up to option.prefix_cache_mb MiB of prompt
# blocks' K/V, allocated as blocks are stored (SmolLM2-135M: 23 KB per token in bf16, so ~5,800 tokens).
DEFAULT_PREFIX_CACHE_MB = 128
_FALSE = frozenset({"false", "0", "no", "off"})
_TRUE = frozenset({"true", "1", "yes", "on"})


def prefix_cache_size(extra: dict[str, str]) -> int:
    """Bytes the prefix cache may hold: 0 when option.enable_prefix_caching is false (or option.prefix_cache_mb
    is 0). Raises ValueError naming a bad option."""
    enabled = extra.get("enable_prefix_caching", "true").strip().lower()
    if enabled not in _TRUE | _FALSE:
        raise ValueError(f"option.enable_prefix_caching={enabled!r} is not true or false")
    if enabled in _FALSE:
        return 0
    raw = extra.get("prefix_cache_mb", str(DEFAULT_PREFIX_CACHE_MB)).strip()
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = -1.0
    if not megabytes >= 0:
        raise ValueError(f"option.prefix_cache_mb={raw!r} is not a number of MiB (0 or more)")
    return int(megabytes * 1024 * 1024)
