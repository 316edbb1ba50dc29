"""CreateModel refuses Environment names that change how the interpreter, the loader or modelhost behave, and
local model data outside MODELHOST_LOCAL_DATA_ROOTS."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from modelhost.api.context import ApiContext
from modelhost.api.handlers.models import create_model
from modelhost.errors import ValidationError
from modelhost.settings import ServerSettings


def body(environment: dict[str, str]) -> dict[str, Any]:
    return {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "/models/m", "Environment": environment}}


@pytest.mark.parametrize("name", ["PYTHONPATH", "PYTHONWARNINGS", "LD_PRELOAD", "BROWSER", "MODELHOST_ENGINE_FACTORY"])
def test_refused_before_anything_is_stored(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        create_model(cast(ApiContext, None), body({name: "x", "HF_MODEL_ID": "org/m"}))  # no store is touched
    assert caught.value.message.startswith(f"Environment: {name} cannot be set for a model")
    assert "HF_MODEL_ID" not in caught.value.message


@pytest.mark.parametrize("url", ["/etc", "file:///etc/passwd", "/data/models/../../etc", "/nowhere/model.tar.gz"])
def test_local_model_data_outside_the_roots_is_refused(url: str) -> None:
    ctx = cast(ApiContext, SimpleNamespace(settings=ServerSettings(local_data_roots="/data/models")))
    request = {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": url}}
    with pytest.raises(ValidationError) as caught:
        create_model(ctx, request)
    assert "is outside the folders model data may be read from (MODELHOST_LOCAL_DATA_ROOTS=/data/models)" in (
        caught.value.message
    )


@pytest.mark.parametrize("name", ["HF_MODEL_ID", "OPTION_MODEL_ID", "OPTION_S3URL"])
def test_a_local_model_id_outside_the_roots_is_refused(name: str) -> None:
    ctx = cast(ApiContext, SimpleNamespace(settings=ServerSettings(local_data_roots="/data/models")))
    request = {"ModelName": "m", "PrimaryContainer": {"Environment": {name: "/etc"}}}
    with pytest.raises(ValidationError) as caught:
        create_model(ctx, request)
    assert caught.value.message.startswith(
        f"PrimaryContainer.Environment: {name}=/etc: /etc is outside the folders model data may be read from"
    )
