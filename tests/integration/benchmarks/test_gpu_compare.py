"""benchmarks/gpu_compare.py without a GPU: what it deploys and starts, and that it stops at once, saying why,
on a machine that cannot run it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu_compare


def test_the_endpoint_and_vllms_server_get_the_same_model_and_limits(tmp_path: Path) -> None:
    properties = gpu_compare.serving_properties("bench/gpu-model", 64)
    assert "option.model_id=bench/gpu-model\n" in properties and "option.rolling_batch=vllm\n" in properties
    assert "option.max_rolling_batch_size=64\n" in properties and "option.max_model_len=2048\n" in properties
    command, env = gpu_compare.vllm_server_command("/v/bin/python", tmp_path, 64, 4321)
    assert command[:3] == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(command)
    assert f"--model {tmp_path}" in joined and "--max-num-seqs 64" in joined and "--max-model-len 2048" in joined
    assert "--host 127.0.0.1 --port 4321" in joined and "--served-model-name local" in joined
    assert env["HF_HUB_OFFLINE"] == "1" and env["CUDA_VISIBLE_DEVICES"]


def test_without_a_gpu_it_stops_at_once_saying_what_is_missing() -> None:
    reason = gpu_compare.gpu_missing(sys.executable)
    if reason is None:
        pytest.skip("this machine can run the GPU check")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_compare"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and time.monotonic() - started < 30
    assert done.stderr.strip() == f"gpu_compare: cannot run here: {reason}"
    assert done.stdout == ""
