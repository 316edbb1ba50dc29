"""The engine-mode worker app over the FakeBackend, in process (Starlette's TestClient: no sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from modelhost.worker.engine.types import Backend, EngineConfig
from modelhost.worker.engine_mode.server import EngineEndpoints, create_engine_app
from tests.fake_backend import FakeBackend


def make_client(schema: str = "lmi", **extra: str) -> tuple[TestClient, FakeBackend, list[str]]:
    backend = FakeBackend(EngineConfig("fake/model", max_model_len=64, max_batch_size=2, extra=dict(extra)))
    failures: list[str] = []

    async def load() -> Backend:
        await backend.start()
        return backend

    app = create_engine_app(EngineEndpoints(load, schema, "my-endpoint", failures.append))  # type: ignore[arg-type]
    return TestClient(app), backend, failures


@pytest.fixture
def lmi_client() -> Iterator[tuple[TestClient, FakeBackend]]:
    client, backend, _ = make_client()
    with client:
        yield client, backend


def test_ping_and_lmi_generate(lmi_client: tuple[TestClient, FakeBackend]) -> None:
    client, backend = lmi_client
    assert client.get("/ping").status_code == 200
    answer = client.post("/invocations", json={"inputs": "Hi", "parameters": {"max_new_tokens": 3, "details": True}})
    assert answer.status_code == 200
    body = answer.json()
    assert body["generated_text"] == " Deep learning is"
    assert body["details"]["finish_reason"] == "length" and body["details"]["generated_tokens"] == 3
    assert backend.stats()["running"] == 0


def test_stream_header_makes_a_jsonlines_stream(lmi_client: tuple[TestClient, FakeBackend]) -> None:
    client, _ = lmi_client
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 3}}
    with client.stream("POST", "/invocations", json=body, headers={"X-Modelhost-Stream": "true"}) as response:
        assert response.headers["content-type"].startswith("application/jsonlines")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [line["token"]["text"] for line in lines] == [" Deep", " learning", " is"]
    assert lines[-1]["generated_text"] == " Deep learning is"
    plain = client.post("/invocations", json=body).json()
    assert plain["generated_text"] == lines[-1]["generated_text"]


def test_stop_sequences_and_eos(lmi_client: tuple[TestClient, FakeBackend]) -> None:
    client, _ = lmi_client
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 10, "stop_sequences": [" is"], "details": True}}
    answer = client.post("/invocations", json=body).json()
    assert answer["generated_text"] == " Deep learning"
    assert answer["details"]["finish_reason"] == "stop_sequence"


def test_input_too_long_and_bad_json(lmi_client: tuple[TestClient, FakeBackend]) -> None:
    client, _ = lmi_client
    too_long = client.post("/invocations", json={"inputs": "x" * 100})
    assert too_long.status_code == 424 and "at most 63 input tokens" in too_long.json()["error"]
    bad = client.post("/invocations", content=b"{not json")
    assert bad.status_code == 424 and "not valid JSON" in bad.json()["error"]
    wrong = client.post("/invocations", json={"inputs": "x", "parameters": {"max_new_tokens": "many"}})
    assert wrong.status_code == 424 and "parameters.max_new_tokens must be an integer" in wrong.json()["error"]


def test_tgi_schema() -> None:
    client, _, _ = make_client("tgi")
    with client:
        answer = client.post("/invocations", json={"inputs": "Hi", "parameters": {"max_new_tokens": 2}})
        assert answer.json() == [{"generated_text": " Deep learning"}]
        with client.stream(
            "POST", "/invocations", json={"inputs": "Hi", "stream": True, "parameters": {"max_new_tokens": 2}}
        ) as response:
            text = response.read().decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(e[len("data:") :]) for e in text.split("\n\n") if e]
        assert events[-1]["generated_text"] == " Deep learning" and events[0]["generated_text"] is None
        too_long = client.post("/invocations", json={"inputs": "x" * 100})
        assert too_long.status_code == 422 and too_long.json()["error_type"] == "validation"


def test_chat_on_invocations_and_openai_routes(lmi_client: tuple[TestClient, FakeBackend]) -> None:
    client, _ = lmi_client
    messages = [{"role": "user", "content": "Hi"}]
    chat = client.post("/invocations", json={"messages": messages, "max_tokens": 2, "temperature": 0}).json()
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["content"] == " Deep learning"
    prompt_tokens = len("<|user|>Hi\n<|assistant|>")
    assert chat["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 2, "total_tokens": prompt_tokens + 2}
    assert chat["model"] == "my-endpoint"
    completion = client.post(
        "/v1/completions", json={"model": "m", "prompt": "Hi", "max_tokens": 1, "temperature": 0}
    ).json()
    assert completion["choices"][0]["text"] == " Deep" and completion["model"] == "m"
    # no max_tokens: up to the model's length limit (64 tokens)
    filled = client.post("/v1/chat/completions", json={"messages": messages, "temperature": 0}).json()
    assert filled["usage"]["total_tokens"] == 64 and filled["choices"][0]["finish_reason"] == "length"
    two = client.post("/v1/chat/completions", json={"messages": messages, "n": 2})
    assert two.status_code == 400 and two.json()["error"]["param"] == "n"
    assert client.get("/v1/models").json()["data"][0]["id"] == "my-endpoint"


def test_generation_error_midway(lmi_client: tuple[TestClient, FakeBackend]) -> None:
    client, _ = lmi_client
    failed = client.post("/invocations", json={"inputs": "FAIL_MIDWAY"})
    assert failed.status_code == 424 and "failed on purpose" in failed.json()["error"]
    with client.stream("POST", "/invocations", json={"inputs": "FAIL_MIDWAY", "stream": True}) as response:
        lines: list[Any] = [json.loads(line) for line in response.iter_lines() if line]
    assert response.status_code == 200 and lines[-1]["details"]["finish_reason"] == "error"


def test_load_failure_is_reported() -> None:
    client, _, failures = make_client(fake_fail_load="no weights here")
    with client:
        ping = client.get("/ping")
        assert ping.status_code == 503 and "no weights here" in ping.json()["message"]
    assert failures == ["RuntimeError: no weights here"]


def test_deeply_nested_json_is_a_client_error_not_a_500(lmi_client: tuple[TestClient, FakeBackend]) -> None:
    client, _ = lmi_client
    deep = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for path in ("/invocations", "/v1/chat/completions"):
        answer = client.post(path, content=deep, headers={"content-type": "application/json"})
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
