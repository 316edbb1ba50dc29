"""The local model registry: model ids (`tiiuae/falcon-40b`) bound to weights on this machine."""

from __future__ import annotations

from modelhost.registry.model_id import is_model_id, referenced_model_ids, validate_model_id
from modelhost.registry.store import ModelKind, ModelRegistry, RegisteredModel

__all__ = [
    "ModelKind",
    "ModelRegistry",
    "RegisteredModel",
    "is_model_id",
    "referenced_model_ids",
    "validate_model_id",
]
