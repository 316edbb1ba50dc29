"""SmolLM2 (registered once per run from the packaged GGUF), started fp32 backends, a tiny random Falcon."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.testing import bundled_smollm2_gguf
from modelhost.worker.engine.types import Backend, EngineConfig

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="session", autouse=True)
def _offline() -> Iterator[None]:
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if previous is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = previous


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct (fp32 safetensors), built once per run (~20 s)."""
    from modelhost.registry import ModelRegistry

    gguf = bundled_smollm2_gguf()
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    registry.add(SMOLLM2_ID, gguf)
    folder = registry.resolve(SMOLLM2_ID)
    assert folder is not None
    return folder


@pytest.fixture(scope="session")
def fp32_backend(smollm2_dir: Path) -> Iterator[Backend]:
    """The built-in backend on SmolLM2 in fp32 (fast llama path), started once for the session."""
    from modelhost.worker.engine.factory import create_backend

    backend = create_backend(EngineConfig(str(smollm2_dir), dtype="fp32", max_batch_size=4, max_model_len=512))
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.shutdown())


@pytest.fixture(scope="session")
def falcon_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> Path:
    """A tiny random Falcon with the SmolLM2 tokenizer beside it (vocab sizes match)."""
    import torch
    from transformers import AutoTokenizer, FalconConfig, FalconForCausalLM

    folder = tmp_path_factory.mktemp("falcon")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = FalconConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        new_decoder_architecture=False,
        multi_query=True,
        parallel_attn=True,
        bias=False,
        alibi=False,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    FalconForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
