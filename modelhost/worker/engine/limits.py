"""ModelLimits and the KV budget in tokens, from the EngineConfig and what the model itself allows."""

from __future__ import annotations

from modelhost.worker.engine.types import EngineConfig, ModelLimits


def resolve_limits(config: EngineConfig, model_max_len: int | None, max_batch_size: int | None = None) -> ModelLimits:
    """max_model_len is the configured one, capped by the model's own context (max_position_embeddings)."""
    max_model_len = config.max_model_len if not model_max_len else min(config.max_model_len, model_max_len)
    if max_model_len < 2:
        raise ValueError(f"max_model_len {max_model_len} leaves no room to generate")
    max_input = config.max_input_tokens if config.max_input_tokens is not None else max_model_len - 1
    return ModelLimits(
        max_model_len=max_model_len,
        max_input_tokens=min(max_input, max_model_len - 1),
        max_batch_size=max_batch_size or config.max_batch_size,
    )


def kv_budget_tokens(config: EngineConfig, limits: ModelLimits, kv_bytes_per_token: int) -> int:
    """Tokens the KV cache may hold: the byte budget when one is set, else every slot at full length.

    Raises ValueError when the budget cannot hold even one sequence of max_model_len tokens.
    """
    full = limits.max_batch_size * limits.max_model_len
    if config.kv_cache_budget_bytes is None:
        return full
    tokens = config.kv_cache_budget_bytes // max(1, kv_bytes_per_token)
    if tokens < limits.max_model_len:
        raise ValueError(
            f"kv_cache_budget_bytes {config.kv_cache_budget_bytes} holds {tokens} tokens, fewer than one sequence of "
            f"max_model_len {limits.max_model_len} ({kv_bytes_per_token} bytes per token)"
        )
    return min(tokens, full)
