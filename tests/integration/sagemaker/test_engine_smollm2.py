"""Engine mode with the real SmolLM2-135M-Instruct: a model folder holding only serving.properties,
driven by boto3 (InvokeEndpoint, InvokeEndpointWithResponseStream) and the openai client."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TGI_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
    "2.1.1-tgi2.0.0-gpu-py310-cu121-ubuntu22.04"
)
PROMPT = "What is the capital of France?"  # for chats
TEXT = "Paris is the capital of France. It is famous for"  # a raw prompt the model continues

pytestmark = pytest.mark.slow


def wait_in_service(sm: Any, name: str) -> None:
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 600})


@pytest.fixture(scope="module")
def endpoints(
    server: ServerProcess, smollm2_registered: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    sm, _ = server.clients()
    folder = tmp_path_factory.mktemp("smol-engine")
    (folder / "serving.properties").write_text(f"option.model_id={MODEL_ID}\noption.max_rolling_batch_size=8\n")
    one_slot = tmp_path_factory.mktemp("smol-one-slot")
    (one_slot / "serving.properties").write_text(
        f"option.model_id={MODEL_ID}\noption.max_rolling_batch_size=1\noption.max_model_len=2048\n"
    )
    names = {"lmi": "smol-engine", "tgi": "smol-engine-tgi", "slot": "smol-one-slot"}
    deploy(sm, names["lmi"], str(folder))
    deploy(sm, names["tgi"], str(folder), image=TGI_IMAGE)
    deploy(sm, names["slot"], str(one_slot))
    for name in names.values():
        wait_in_service(sm, name)
    return names


def invoke(runtime: Any, name: str, body: dict[str, Any]) -> Any:
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=json.dumps(body))
    return json.loads(answer["Body"].read())


def test_lmi_generate(server: ServerProcess, endpoints: dict[str, str]) -> None:
    _, runtime = server.clients()
    body = invoke(runtime, endpoints["lmi"], {"inputs": TEXT, "parameters": {"max_new_tokens": 12, "details": True}})
    assert isinstance(body, dict) and isinstance(body["generated_text"], str) and body["generated_text"].strip()
    details = body["details"]
    assert details["generated_tokens"] <= 12 and details["finish_reason"] in ("length", "eos_token")
    assert len(details["tokens"]) == details["generated_tokens"]


def test_boto3_stream_matches_the_greedy_answer(server: ServerProcess, endpoints: dict[str, str]) -> None:
    _, runtime = server.clients()
    body = {"inputs": TEXT, "parameters": {"max_new_tokens": 20, "min_new_tokens": 10}}
    plain = invoke(runtime, endpoints["lmi"], body)["generated_text"]
    response = runtime.invoke_endpoint_with_response_stream(EndpointName=endpoints["lmi"], Body=json.dumps(body))
    assert response["ContentType"] == "application/jsonlines"
    parts = [e["PayloadPart"]["Bytes"] for e in response["Body"]]
    lines = [json.loads(line) for line in b"".join(parts).splitlines()]
    assert len(parts) > 1
    assert "".join(line["token"]["text"] for line in lines) == plain == lines[-1]["generated_text"]


def test_stop_sequences_and_max_new_tokens(server: ServerProcess, endpoints: dict[str, str]) -> None:
    _, runtime = server.clients()
    full = invoke(
        runtime, endpoints["lmi"], {"inputs": TEXT, "parameters": {"max_new_tokens": 20, "min_new_tokens": 20}}
    )
    text = full["generated_text"]
    words = text.split()
    assert len(words) >= 3, text
    stop = words[2]
    stopped = invoke(
        runtime,
        endpoints["lmi"],
        {
            "inputs": TEXT,
            "parameters": {"max_new_tokens": 20, "min_new_tokens": 20, "stop_sequences": [stop], "details": True},
        },
    )
    assert stopped["details"]["finish_reason"] == "stop_sequence"
    assert stopped["generated_text"] == text[: text.index(stop)]
    short = invoke(
        runtime,
        endpoints["lmi"],
        {"inputs": TEXT, "parameters": {"max_new_tokens": 3, "details": True, "ignore_eos": True}},
    )
    assert short["details"]["generated_tokens"] == 3 and short["details"]["finish_reason"] == "length"


def test_tgi_image_shape(server: ServerProcess, endpoints: dict[str, str]) -> None:
    _, runtime = server.clients()
    body = invoke(runtime, endpoints["tgi"], {"inputs": TEXT, "parameters": {"max_new_tokens": 8}})
    assert isinstance(body, list) and len(body) == 1 and isinstance(body[0]["generated_text"], str)


def test_input_too_long_is_a_clear_4xx(server: ServerProcess, endpoints: dict[str, str]) -> None:
    _, runtime = server.clients()
    with pytest.raises(ClientError) as caught:
        invoke(runtime, endpoints["lmi"], {"inputs": "hello " * 5000})
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["OriginalStatusCode"] == 424
    assert "input tokens" in caught.value.response["OriginalMessage"]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=endpoints["lmi"], messages=[{"role": "user", "content": "hi " * 5000}])
    assert too_long.value.code == "context_length_exceeded"


def test_openai_chat_stream_and_plain_agree(server: ServerProcess, endpoints: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="anything", max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]
    chat = client.chat.completions.create(model=endpoints["lmi"], messages=messages, max_tokens=24, temperature=0)
    text = chat.choices[0].message.content
    assert text and chat.usage is not None
    assert chat.usage.completion_tokens <= 24
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    assert chat.usage.prompt_tokens > len(PROMPT.split())  # the chat template adds tokens
    stream = client.chat.completions.create(
        model=endpoints["lmi"],
        messages=messages,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    fixed = client.completions.create(
        model=endpoints["lmi"], prompt="Once upon a time", max_tokens=16, temperature=0, extra_body={"ignore_eos": True}
    )
    assert fixed.usage is not None and fixed.usage.completion_tokens == 16


def test_a_client_that_leaves_mid_stream_frees_its_slot(server: ServerProcess, endpoints: dict[str, str]) -> None:
    _, runtime = server.clients()
    name = endpoints["slot"]
    body = {"inputs": "Write a very long story.", "parameters": {"max_new_tokens": 1500, "ignore_eos": True}}
    response = runtime.invoke_endpoint_with_response_stream(EndpointName=name, Body=json.dumps(body))
    events = iter(response["Body"])
    for _ in range(3):
        next(events)
    response["Body"].close()
    started = time.monotonic()
    answer = invoke(runtime, name, {"inputs": PROMPT, "parameters": {"max_new_tokens": 4}})
    assert isinstance(answer["generated_text"], str)
    assert time.monotonic() - started < 15  # 1500 tokens would take far longer on one slot
    with httpx.stream(
        "POST",
        f"{server.url}/v1/completions",
        timeout=60,
        json={"model": name, "prompt": "Tell a story", "max_tokens": 1500, "stream": True, "ignore_eos": True},
    ) as stream:
        assert next(stream.iter_lines()).startswith("data: ")
    started = time.monotonic()
    quick = httpx.post(
        f"{server.url}/v1/completions", json={"model": name, "prompt": "Hi", "max_tokens": 4}, timeout=60
    )
    assert quick.status_code == 200 and time.monotonic() - started < 15
