"""The local model registry: model ids (`tiiuae/falcon-40b`) bound to weights on this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelhost.registry.model_id import is_model_id, referenced_model_ids, validate_model_id

if TYPE_CHECKING:
    from modelhost.registry.store import ModelKind, ModelRegistry, RegisteredModel

_LAZY = ("ModelKind", "ModelRegistry", "RegisteredModel")  # imported on first use: a worker needs only model_id


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from modelhost.registry import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ModelKind",
    "ModelRegistry",
    "RegisteredModel",
    "is_model_id",
    "referenced_model_ids",
    "validate_model_id",
]
