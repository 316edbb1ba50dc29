"""Load a Hugging Face folder or GGUF with transformers and pick its runner: the llama fast path or generic."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelhost.worker.engine.limits import kv_budget_tokens, resolve_limits
from modelhost.worker.engine.runners.base import ModelRunner
from modelhost.worker.engine.runners.fast_llama import FastLlamaRunner, fast_path_blocker
from modelhost.worker.engine.runners.hf_generic import TransformersRunner
from modelhost.worker.engine.tokenizer import HFTokenizer
from modelhost.worker.engine.types import EngineConfig, ModelLimits

logger = logging.getLogger(__name__)

# Decode steps of up to this many sequences read a Q4 GGUF's 4-bit weights: measured on SmolLM2 on 2 cores, one
# sequence 11.7 -> 7.8 ms per step, 4: 13.3 -> 10.8, 8: 15.8 -> 16.1 / 17.4 -> 15.8 (two runs; the crossover).
DEFAULT_INT4_MAX_TOKENS = 8


@dataclass(frozen=True, slots=True)
class LoadedModel:
    runner: ModelRunner
    tokenizer: HFTokenizer
    eos_token_ids: frozenset[int]
    limits: ModelLimits  # max_batch_size = cache slots actually allocated
    kv_budget_tokens: int  # admission budget of the scheduler


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 matmuls natively (oneDNN with AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(name: str) -> torch.dtype:
    """`auto`: bf16 on a CPU with bf16 matmul support, else fp32. fp16 on CPU is refused (slow and lossy)."""
    choices = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if name == "auto":
        return torch.bfloat16 if bf16_supported() else torch.float32
    if name not in choices:
        raise ValueError(f"dtype {name!r} is not one of auto, fp32, bf16, fp16")
    if choices[name] == torch.float16 and not torch.cuda.is_available():
        raise ValueError("dtype fp16 is not supported on CPU; use bf16 or fp32")
    return choices[name]


def model_source(config: EngineConfig) -> tuple[str, str | None]:
    """(folder or model id, GGUF file name inside it or None)."""
    path = Path(config.model_id_or_path)
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if config.gguf_file:
        return str(path), Path(config.gguf_file).name
    return config.model_id_or_path, None


def load_transformers(config: EngineConfig) -> LoadedModel:
    """Load model + tokenizer (blocking, seconds) and build the runner; the fast path when the model allows."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(int(config.extra.get("threads", 0)) or len(os.sched_getaffinity(0)))
    if config.extra.get("malloc_tuning", "1") != "0":
        _keep_freed_memory()
    source, gguf_file = model_source(config)
    dtype = resolve_dtype(config.dtype)
    common: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if gguf_file:
        common["gguf_file"] = gguf_file
    model_config = AutoConfig.from_pretrained(source, **common)
    model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **common)
    model.eval()  # inference only: no dropout
    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(source, **common))
    eos = tokenizer.eos_token_ids(getattr(model, "generation_config", None))
    limits = resolve_limits(config, getattr(model_config, "max_position_embeddings", None))
    blocker = fast_path_blocker(model, limits.max_model_len) if config.extra.get("fast_path", "1") != "0" else "off"
    if blocker is None:
        bytes_per_token = _kv_bytes_per_token(model_config, dtype)
        budget = kv_budget_tokens(config, limits, bytes_per_token)
        # The cache holds whole slots of max_model_len tokens: a smaller budget means fewer slots.
        slots = min(limits.max_batch_size, budget // limits.max_model_len)
        limits = ModelLimits(limits.max_model_len, limits.max_input_tokens, slots)
        small = int4_max_tokens(config)
        fast = FastLlamaRunner(model, max_slots=slots, max_model_len=limits.max_model_len, int4_max_tokens=small)
        runner: ModelRunner = fast
        del model  # the runner holds fused copies of the weights
        _return_freed_memory()
        logger.info("fast llama path: %d slots x %d tokens, %s", slots, limits.max_model_len, dtype)
        if fast.int4_matrices:
            logger.info(
                "%d weight matrices are the GGUF's exact 4-bit ones: decode steps of up to %d sequences read them",
                fast.int4_matrices,
                small,
            )
    else:
        budget = kv_budget_tokens(config, limits, _kv_bytes_per_token(model_config, dtype))
        runner = TransformersRunner(model)
        logger.info("generic transformers path (%s)", blocker)
    return LoadedModel(runner, tokenizer, eos, limits, budget)


def int4_max_tokens(config: EngineConfig) -> int:
    """option.int4_max_tokens: decode steps of at most this many sequences use the exact 4-bit weights (0: never)."""
    raw = config.extra.get("int4_max_tokens", str(DEFAULT_INT4_MAX_TOKENS)).strip()
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"option.int4_max_tokens={raw!r} is not a whole number of tokens (0 turns it off)")
    return value


def _keep_freed_memory() -> None:
    """Stop glibc from returning each step's large temporaries to the OS (mmap/munmap per step costs page
    faults: ~1 ms per step for the logits alone). Process-wide; harmless where glibc is absent."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve allocations up to 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    except (OSError, AttributeError):
        logger.debug("mallopt unavailable; page faults on large temporaries stay")


def _return_freed_memory() -> None:
    """Give the OS back what loading freed (the checkpoint's copies of the weights, conversion temporaries): the
    thresholds above keep freed heap for the steps' temporaries, so without this the worker would hold the load's
    peak for good (SmolLM2 bf16: 1.72 -> 1.50 GiB resident)."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        logger.debug("malloc_trim unavailable")


def _kv_bytes_per_token(model_config: Any, dtype: torch.dtype) -> int:
    text = getattr(model_config, "text_config", None) or model_config
    heads = getattr(text, "num_attention_heads", 1)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or getattr(text, "hidden_size", 64 * heads) // heads
    layers = getattr(text, "num_hidden_layers", 1)
    return 2 * layers * kv_heads * head_dim * torch.finfo(dtype).bits // 8
