"""Registering the SmolLM2 GGUF materialises a Hugging Face folder that loads by id, with no gguf_file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from registry_test_models import run_worker_script

from modelhost.registry import ModelRegistry
from modelhost.testing import bundled_smollm2_gguf

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

CHAT = """
    import json
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
    model = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    print(json.dumps({"answer": answer, "class": type(model).__name__}))
"""


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    path = bundled_smollm2_gguf()
    assert path.name == GGUF_NAME
    return path


def test_gguf_registers_once_and_chats_by_id_offline(
    tmp_path: Path, smollm2_gguf: Path, base_env: dict[str, str]
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    phases: list[str] = []
    started = time.monotonic()

    record = registry.add(MODEL_ID, smollm2_gguf, progress=phases.append)

    elapsed_s = time.monotonic() - started
    print(f"materialised in {elapsed_s:.1f} s, {record.size_bytes / 1e6:.0f} MB; phases {phases}")
    assert record.kind == "gguf"
    assert record.gguf_path is not None and record.gguf_path.read_bytes()[:4] == b"GGUF"
    assert (record.path / "config.json").is_file() and (record.path / "model.safetensors").is_file()
    assert (record.path / "tokenizer.json").is_file()
    assert any("dequantising" in phase for phase in phases)
    assert registry.resolve(MODEL_ID) == record.path

    result = run_worker_script(CHAT, {**registry.worker_environment(base_env), "MODEL_ID": MODEL_ID})

    print(f"answer: {result['answer']!r}")
    assert result["class"] == "LlamaForCausalLM"
    assert "Paris" in str(result["answer"])
