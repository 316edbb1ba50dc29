"""InvokeEndpointWithResponseStream and the OpenAI-compatible API through a real server, driven by boto3
and the openai client: handler-mode streaming model.py, and engine mode over the FakeBackend."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from botocore.exceptions import ClientError, EventStreamError

from tests.integration.server import ServerProcess, deploy

ROOT = Path(__file__).resolve().parents[3]
TGI_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
    "2.1.1-tgi2.0.0-gpu-py310-cu121-ubuntu22.04"
)
# The fake engine is a server setting (a model's Environment cannot name MODELHOST_* or PYTHONPATH); workers
# inherit both through the environment allow-list. It only affects engine-mode endpoints.
FAKE_ENGINE = {"MODELHOST_ENGINE_FACTORY": "tests.fake_backend:create_backend", "PYTHONPATH": str(ROOT)}

STREAMER = """
    import os, time
    from djl_python import Output

    def tokens(mode):
        for word in ["Deep", " learning", " rocks"]:
            yield [word]
            time.sleep(0.2)
        if mode == "die":
            os._exit(3)  # the worker dies mid-stream

    def handle(inputs):
        if inputs.is_empty():
            return None
        mode = inputs.get_as_string()
        if mode == "refuse":
            raise ValueError("refused before streaming")
        out = Output().add_property("Content-Type", "application/jsonlines")
        out.add_property("X-Amzn-SageMaker-Custom-Attributes", "streamed=yes")
        return out.add_stream_content(tokens(mode))
"""


def wait_in_service(sm: Any, name: str) -> None:
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def stream_events(runtime: Any, name: str, body: Any, **kwargs: Any) -> tuple[dict[str, Any], list[bytes]]:
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=name, Body=body if isinstance(body, (str, bytes)) else json.dumps(body), **kwargs
    )
    return response, [event["PayloadPart"]["Bytes"] for event in response["Body"]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """This module's own server, started with the fake engine."""
    proc = ServerProcess(tmp_path_factory.mktemp("stream-home"), env=FAKE_ENGINE).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def streamer(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("streamer")
    (folder / "model.py").write_text(textwrap.dedent(STREAMER))
    (folder / "serving.properties").write_text("engine=Python\n")
    sm, _ = server.clients()
    deploy(sm, "streamer", str(folder))
    deploy(sm, "streamer-dies", str(folder))
    wait_in_service(sm, "streamer")
    wait_in_service(sm, "streamer-dies")
    return "streamer"


def test_handler_stream_arrives_as_payload_parts(server: ServerProcess, streamer: str) -> None:
    _, runtime = server.clients()
    started = time.monotonic()
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=streamer,
        Body=b"go",
        ContentType="text/plain",
        Accept="application/jsonlines",
        CustomAttributes="trace=1",
    )
    assert response["ContentType"] == "application/jsonlines"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "streamed=yes"
    arrivals = []
    parts = []
    for event in response["Body"]:
        parts.append(event["PayloadPart"]["Bytes"])
        arrivals.append(time.monotonic() - started)
    assert [json.loads(p) for p in parts] == [
        {"outputs": ["Deep"]},
        {"outputs": [" learning"]},
        {"outputs": [" rocks"]},
    ]
    assert arrivals[-1] - arrivals[0] > 0.3  # relayed as produced, not buffered


def test_handler_error_before_the_stream_is_a_model_error(server: ServerProcess, streamer: str) -> None:
    _, runtime = server.clients()
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_with_response_stream(EndpointName=streamer, Body=b"refuse")
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["OriginalStatusCode"] == 424
    assert "refused before streaming" in caught.value.response["OriginalMessage"]


def test_worker_death_mid_stream_is_a_model_stream_error(server: ServerProcess, streamer: str) -> None:
    _, runtime = server.clients()
    response = runtime.invoke_endpoint_with_response_stream(EndpointName="streamer-dies", Body=b"die")
    received = []
    with pytest.raises(EventStreamError) as caught:
        for event in response["Body"]:
            received.append(event["PayloadPart"]["Bytes"])
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"
    assert "broke before it was complete" in caught.value.response["Error"]["Message"]
    assert len(received) == 3


def test_unknown_endpoint_is_a_validation_error(server: ServerProcess) -> None:
    _, runtime = server.clients()
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_with_response_stream(EndpointName="nobody-home", Body=b"{}")
    assert caught.value.response["Error"]["Code"] == "ValidationError"


def test_openai_routes_refuse_handler_endpoints(server: ServerProcess, streamer: str) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="anything", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=streamer, messages=[{"role": "user", "content": "hi"}])
    assert "custom handler" in str(caught.value)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-endpoint", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"


# engine mode over the FakeBackend ------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_engine(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    sm, _ = server.clients()
    names = {"lmi": "fake-lmi", "tgi": "fake-tgi", "slot": "fake-one-slot"}
    folder = tmp_path_factory.mktemp("fake-engine")
    (folder / "serving.properties").write_text("option.model_id=fake/model\noption.max_rolling_batch_size=4\n")
    deploy(sm, names["lmi"], str(folder))
    deploy(sm, names["tgi"], str(folder), image=TGI_IMAGE)
    slow = tmp_path_factory.mktemp("fake-engine-slow")
    (slow / "serving.properties").write_text(
        "option.model_id=fake/model\noption.max_rolling_batch_size=1\noption.fake_token_delay_ms=50\n"
    )
    deploy(sm, names["slot"], str(slow))
    for name in names.values():
        wait_in_service(sm, name)
    return names


def test_engine_stream_without_stream_in_the_body(server: ServerProcess, fake_engine: dict[str, str]) -> None:
    _, runtime = server.clients()
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 4}}
    response, parts = stream_events(runtime, fake_engine["lmi"], body, ContentType="application/json")
    assert response["ContentType"] == "application/jsonlines"
    lines = [json.loads(line) for line in b"".join(parts).splitlines()]
    assert [line["token"]["text"] for line in lines] == [" Deep", " learning", " is", " a"]
    plain = json.loads(runtime.invoke_endpoint(EndpointName=fake_engine["lmi"], Body=json.dumps(body))["Body"].read())
    assert plain == {"generated_text": lines[-1]["generated_text"]} == {"generated_text": " Deep learning is a"}


def test_engine_tgi_schema(server: ServerProcess, fake_engine: dict[str, str]) -> None:
    _, runtime = server.clients()
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 2}}
    plain = json.loads(runtime.invoke_endpoint(EndpointName=fake_engine["tgi"], Body=json.dumps(body))["Body"].read())
    assert plain == [{"generated_text": " Deep learning"}]
    response, parts = stream_events(runtime, fake_engine["tgi"], {**body, "stream": True})
    assert response["ContentType"].startswith("text/event-stream")
    events = [json.loads(e[len(b"data:") :]) for e in b"".join(parts).split(b"\n\n") if e]
    assert events[-1]["generated_text"] == " Deep learning" and events[-1]["details"]["finish_reason"] == "length"
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=fake_engine["tgi"], Body=json.dumps({"inputs": "x" * 5000}))
    assert caught.value.response["OriginalStatusCode"] == 422
    assert "input tokens" in caught.value.response["OriginalMessage"]


def test_openai_client_against_the_fake_engine(server: ServerProcess, fake_engine: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-anything", max_retries=0)
    assert fake_engine["lmi"] in {m.id for m in client.models.list()}
    messages = [{"role": "user", "content": "Hello"}]
    chat = client.chat.completions.create(model=fake_engine["lmi"], messages=messages, max_tokens=3, temperature=0)
    assert chat.choices[0].message.content == " Deep learning is"
    assert chat.usage is not None and chat.usage.completion_tokens == 3
    stream = client.chat.completions.create(
        model=fake_engine["lmi"],
        messages=messages,
        max_tokens=3,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " Deep learning is"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == chat.usage.total_tokens
    completion = client.completions.create(model=fake_engine["lmi"], prompt="Once", max_tokens=2, temperature=0)
    assert completion.choices[0].text == " Deep learning"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=fake_engine["lmi"], messages=messages, n=2)
    assert caught.value.param == "n"


def test_a_client_that_leaves_mid_stream_frees_its_slot(server: ServerProcess, fake_engine: dict[str, str]) -> None:
    """One slot, 50 ms a token: a 2000-token stream abandoned after three parts must not hold the slot."""
    _, runtime = server.clients()
    name = fake_engine["slot"]
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=name, Body=json.dumps({"inputs": "Hi", "parameters": {"max_new_tokens": 2000}})
    )
    events = iter(response["Body"])
    for _ in range(3):
        next(events)
    response["Body"].close()
    started = time.monotonic()
    answer = runtime.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"inputs": "Hi", "parameters": {"max_new_tokens": 3}})
    )
    assert json.loads(answer["Body"].read())["generated_text"] == " Deep learning is"
    assert time.monotonic() - started < 10
    # the same through the OpenAI route, closing the HTTP stream ourselves
    body = {"model": name, "prompt": "Hi", "max_tokens": 2000, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=30) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("data: ")
    started = time.monotonic()
    quick = httpx.post(
        f"{server.url}/v1/completions", json={"model": name, "prompt": "Hi", "max_tokens": 2}, timeout=30
    )
    assert quick.status_code == 200 and time.monotonic() - started < 10


def test_a_client_that_leaves_a_plain_invocation_frees_its_slot(
    server: ServerProcess, fake_engine: dict[str, str]
) -> None:
    """InvokeEndpoint (not streaming) abandoned by its client: the generation stops and the slot frees."""
    name = fake_engine["slot"]
    url = f"{server.url}/endpoints/{name}/invocations"
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 2000}}  # 100 s at 50 ms a token
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body, timeout=1.0)
    _, runtime = server.clients()
    started = time.monotonic()
    answer = runtime.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"inputs": "Hi", "parameters": {"max_new_tokens": 3}})
    )
    assert json.loads(answer["Body"].read())["generated_text"] == " Deep learning is"
    assert time.monotonic() - started < 10
