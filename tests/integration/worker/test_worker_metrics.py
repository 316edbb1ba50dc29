"""GET /metrics on real `python -m modelhost.worker` processes started with a router token: engine mode over the
FakeBackend (and, slow, the real SmolLM2 GGUF) and handler mode; N requests, some streamed, give exact counts in
the Prometheus text prometheus_client's parser reads; without the token /metrics is 403 and /ping stays open."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelhost.contracts.worker import METRICS_PATH, ROUTER_TOKEN_HEADER, SPEC_ENV, WorkerSpec
from modelhost.testing import free_port
from tests.integration.worker.conftest import REPO_ROOT, RunningWorker

TOKEN = "metrics-test-token"
ROUTER = {ROUTER_TOKEN_HEADER: TOKEN}
FAKE_ENGINE = {"MODELHOST_ENGINE_FACTORY": "tests.fake_backend:create_backend"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class StartGuarded(Protocol):
    def __call__(self, files: dict[str, str | Path], env: dict[str, str] | None = None) -> RunningWorker: ...


@pytest.fixture
def start_guarded(tmp_path: Path) -> Iterator[StartGuarded]:
    """Workers whose WorkerSpec carries a router token, as the launcher starts them."""
    started: list[RunningWorker] = []

    def start(files: dict[str, str | Path], env: dict[str, str] | None = None) -> RunningWorker:
        index = len(started)
        model_dir = tmp_path / f"model{index}"
        model_dir.mkdir()
        for name, content in files.items():
            if isinstance(content, Path):
                (model_dir / name).symlink_to(content)
            else:
                (model_dir / name).write_text(textwrap.dedent(content))
        port = free_port()
        spec = WorkerSpec(
            instance_id=f"metrics-{index}",
            endpoint_name="ep",
            variant_name="AllTraffic",
            model_name="m",
            model_dir=str(model_dir),
            port=port,
            failure_path=str(tmp_path / f"failure{index}.json"),
            router_token=TOKEN,
        )
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTION_", "SERVING_"))}
        child_env.pop("SAGEMAKER_BIND_TO_PORT", None)
        child_env.update(env or {})
        child_env[SPEC_ENV] = spec.to_json()
        child_env["PYTHONPATH"] = str(REPO_ROOT)
        log_path = tmp_path / f"worker{index}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelhost.worker"], env=child_env, stdout=log_file, stderr=subprocess.STDOUT
            )
        worker = RunningWorker(process, f"http://127.0.0.1:{port}", spec, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=10)


def scrape(worker: RunningWorker) -> Samples:
    refused = httpx.get(worker.url + METRICS_PATH, timeout=10)
    assert refused.status_code == 403, refused.text
    response = httpx.get(worker.url + METRICS_PATH, headers=ROUTER, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def llm(found: Samples, name: str, **labels: str) -> float:
    return found[("modelhost:" + name, tuple(sorted({"model_name": "ep", "engine": "0", **labels}.items())))]


def generate(worker: RunningWorker, body: dict[str, object], stream: bool = False) -> list[str]:
    """The answer's lines (one for a plain answer, one per token for a stream)."""
    headers = {**ROUTER, "x-modelhost-stream": "true"} if stream else ROUTER
    with httpx.stream("POST", worker.url + "/invocations", json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        return [line for line in response.iter_lines() if line]


def test_engine_mode_metrics_count_every_request_exactly(start_guarded: StartGuarded) -> None:
    properties = "option.model_id=fake/model\noption.max_rolling_batch_size=4\n"
    worker = start_guarded({"serving.properties": properties}, FAKE_ENGINE)
    worker.wait_ready()
    assert httpx.get(worker.url + "/ping", timeout=5).status_code == 200  # open without the token
    body = {"inputs": "Hello", "parameters": {"max_new_tokens": 4}}
    for _ in range(5):
        assert json.loads(generate(worker, body)[0])["generated_text"] == " Deep learning is a"
    for _ in range(3):
        assert len(generate(worker, body, stream=True)) == 4
    completion = {"prompt": "Hi", "max_tokens": 2}
    answer = httpx.post(worker.url + "/v1/completions", json=completion, headers=ROUTER, timeout=30)
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 2
    too_long = httpx.post(worker.url + "/invocations", json={"inputs": "x" * 5000}, headers=ROUTER, timeout=30)
    assert too_long.status_code == 424  # refused before the engine: not counted
    found = scrape(worker)
    n = 9
    assert llm(found, "request_success_total", finished_reason="length") == n
    assert llm(found, "request_success_total", finished_reason="abort") == 0
    assert llm(found, "generation_tokens_total") == 8 * 4 + 2
    assert llm(found, "prompt_tokens_total") == 8 * len(b"\x00Hello") + len(b"\x00Hi")  # BOS + bytes
    for histogram in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_generation_tokens"):
        assert llm(found, histogram + "_count") == n, histogram
        assert llm(found, histogram + "_bucket", le="+Inf") == n, histogram
    assert llm(found, "inter_token_latency_seconds_count") == 8 * 3 + 1
    assert llm(found, "request_generation_tokens_sum") == 8 * 4 + 2
    assert 0 < llm(found, "time_to_first_token_seconds_sum") <= llm(found, "e2e_request_latency_seconds_sum")
    assert llm(found, "request_queue_time_seconds_count") == 0  # the FakeBackend does not measure it
    assert llm(found, "num_requests_running") == 0 and llm(found, "num_requests_waiting") == 0
    assert found[("process_resident_memory_bytes", ())] > 0
    assert ("modelhost_worker_requests_total", (("status", "200"),)) not in found  # handler mode's


HANDLER = """
    from djl_python import Output

    def handle(inputs):
        if inputs.is_empty():
            return None
        body = inputs.get_as_string()
        if body == "raise":
            raise ValueError("refused")
        if body == "stream":
            out = Output().add_property("Content-Type", "application/jsonlines")
            return out.add_stream_content(iter([["a"], ["b"]]))
        return Output().add(body)
"""


def test_handler_mode_metrics_count_every_request_by_status(start_guarded: StartGuarded) -> None:
    worker = start_guarded({"model.py": HANDLER})
    worker.wait_ready()
    bodies = ["one", "two", "raise", "three", "raise"]
    statuses = [
        httpx.post(worker.url + "/invocations", content=body, headers=ROUTER, timeout=30).status_code for body in bodies
    ]
    with httpx.stream("POST", worker.url + "/invocations", content="stream", headers=ROUTER, timeout=30) as response:
        assert response.status_code == 200 and [json.loads(line) for line in response.iter_lines()] == [
            {"outputs": ["a"]},
            {"outputs": ["b"]},
        ]
    assert statuses == [200, 200, 424, 200, 424]
    assert httpx.post(worker.url + "/invocations", content="x", timeout=30).status_code == 403  # not counted
    found = scrape(worker)
    assert found[("modelhost_worker_requests_total", (("status", "200"),))] == 4
    assert found[("modelhost_worker_requests_total", (("status", "424"),))] == 2
    assert found[("modelhost_worker_request_duration_seconds_count", ())] == 6
    assert found[("modelhost_worker_request_duration_seconds_bucket", (("le", "+Inf"),))] == 6
    assert found[("process_cpu_seconds_total", ())] > 0
    assert not any(name.startswith("modelhost:") for name, _ in found)


def smollm2_files(registry_dir: Path) -> dict[str, str | Path]:
    """SmolLM2-135M-Instruct as a Hugging Face folder (fp32 safetensors) built from the packaged GGUF, as the
    files of a model folder (the worker loads safetensors in seconds; the GGUF itself takes far longer)."""
    from modelhost.registry import ModelRegistry
    from modelhost.testing import bundled_smollm2_gguf

    try:
        gguf = bundled_smollm2_gguf()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    registry = ModelRegistry(registry_dir)
    registry.add("HuggingFaceTB/SmolLM2-135M-Instruct", gguf)
    folder = registry.resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert folder is not None
    return {path.name: path.resolve() for path in folder.iterdir() if path.is_file()}


@pytest.mark.slow
def test_engine_mode_metrics_with_the_real_smollm2(start_guarded: StartGuarded, tmp_path: Path) -> None:
    properties = "option.max_rolling_batch_size=2\noption.max_model_len=256\noption.dtype=fp32\n"
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    files = {**smollm2_files(tmp_path / "registry"), "serving.properties": properties}
    worker = start_guarded(files, offline)
    worker.wait_ready(timeout_s=120)
    body = {"inputs": "The capital of France is", "parameters": {"max_new_tokens": 6, "min_new_tokens": 6}}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # four requests on two slots: two of them wait
        answers = list(pool.map(lambda stream: generate(worker, body, stream), [False, True, False, True]))
    assert [len(lines) for lines in answers] == [1, 6, 1, 6]
    found = scrape(worker)
    assert llm(found, "request_success_total", finished_reason="length") == 4
    assert llm(found, "generation_tokens_total") == 24
    for histogram in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds"):
        assert llm(found, histogram + "_count") == 4, histogram
    assert llm(found, "inter_token_latency_seconds_count") == 4 * 5
    assert 0 < llm(found, "time_to_first_token_seconds_sum") <= llm(found, "e2e_request_latency_seconds_sum")
    # the engine measured the waits: the two that found both slots taken waited for a whole generation
    queue_sum = llm(found, "request_queue_time_seconds_sum")
    assert queue_sum <= llm(found, "time_to_first_token_seconds_sum")
    assert llm(found, "kv_cache_usage_perc") == 0.0 and llm(found, "num_requests_running") == 0
