"""One backend alias table for option.rolling_batch and EngineConfig.backend; the GGUF a config names."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.worker.engine.backends import BACKEND_ALIASES, BACKENDS, canonical_backend
from modelhost.worker.engine.factory import choose_backend
from modelhost.worker.engine.gguf import gguf_path
from modelhost.worker.engine.types import EngineConfig
from modelhost.worker.engine_mode.serving_mode import build_engine_config
from modelhost.worker.properties import build_serving_properties


def test_every_alias_names_a_backend() -> None:
    assert set(BACKEND_ALIASES.values()) <= set(BACKENDS)
    assert all(canonical_backend(name) == name for name in BACKENDS)


@pytest.mark.parametrize(
    ("alias", "backend"),
    [("lmi-dist", "auto"), ("scheduler", "auto"), ("trtllm", "auto"), ("VLLM", "vllm"), (" llamacpp ", "llama.cpp")],
)
def test_lmi_engines_become_the_builtin_choice(alias: str, backend: str) -> None:
    assert canonical_backend(alias) == backend


def test_unknown_names_are_none() -> None:
    assert canonical_backend("magic") is None


@pytest.mark.parametrize("alias", sorted(BACKEND_ALIASES))
def test_serving_properties_and_the_factory_agree(alias: str) -> None:
    properties = build_serving_properties(f"option.model_id=a/b\noption.rolling_batch={alias}\n", {})
    from_properties = build_engine_config(properties, {}, Path("/m"), []).backend
    direct = EngineConfig("a/b", backend=alias)
    on_cpu = {"cuda_available": False, "have_vllm": False, "have_llama_cpp": False}
    assert from_properties == BACKEND_ALIASES[alias]
    assert choose_backend(EngineConfig("a/b", backend=from_properties), **on_cpu) == choose_backend(direct, **on_cpu)


def test_the_factory_names_the_backends_for_an_unknown_one() -> None:
    on_cpu = {"cuda_available": False, "have_vllm": False, "have_llama_cpp": False}
    with pytest.raises(ValueError, match="not one of auto, transformers, llama.cpp, vllm"):
        choose_backend(EngineConfig("a/b", backend="magic"), **on_cpu)


def test_gguf_path() -> None:
    assert gguf_path(EngineConfig("/m/model-q8_0.gguf")) == Path("/m/model-q8_0.gguf")
    assert gguf_path(EngineConfig("/m", gguf_file="w.gguf")) == Path("/m/w.gguf")
    assert gguf_path(EngineConfig("/m", gguf_file="/elsewhere/w.gguf")) == Path("/elsewhere/w.gguf")
    assert gguf_path(EngineConfig("/m")) is None
