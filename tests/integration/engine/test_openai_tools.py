"""OpenAI tool calling through a real modelhost server with the official openai client (SmolLM2, engine mode):
forced calls validate against the function's schema (plain and streaming), auto answers content or calls, a
tool conversation's round trip is accepted, mistakes are 400s in OpenAI's shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.integration.server import ServerProcess, deploy

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
NAME = "smol-tools"
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_PARAMETERS = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "maxLength": 32}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Current time in a timezone", "parameters": TIME_PARAMETERS},
    },
]
SCHEMAS = {"get_weather": WEATHER_PARAMETERS, "get_time": TIME_PARAMETERS}
QUESTION: Any = [{"role": "user", "content": "What is the weather in Paris?"}]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: ServerProcess, smollm2_registered: str, tmp_path_factory: pytest.TempPathFactory) -> openai.OpenAI:
    sm, _ = server.clients()
    folder = tmp_path_factory.mktemp("smol-tools")
    (folder / "serving.properties").write_text(f"option.model_id={MODEL_ID}\noption.max_rolling_batch_size=8\n")
    deploy(sm, NAME, str(folder))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 600})
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def _valid(name: str, arguments: str) -> dict[str, Any]:
    value = json.loads(arguments)
    jsonschema.validate(value, SCHEMAS[name])
    assert isinstance(value, dict)
    return value


def test_required_calls_validate_plain_and_streaming(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=NAME, messages=QUESTION, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert calls
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        _valid(call.function.name, call.function.arguments)
    stream = client.chat.completions.create(
        model=NAME, messages=QUESTION, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120, stream=True
    )
    streamed: dict[int, dict[str, str]] = {}
    reasons = []
    for chunk in stream:
        if not chunk.choices:
            continue
        reasons.append(chunk.choices[0].finish_reason)
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = streamed.setdefault(delta.index, {"name": "", "arguments": ""})
            if delta.function is not None:
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
    assert reasons[-1] == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed.values()] == [
        (c.function.name, json.loads(c.function.arguments)) for c in calls
    ]  # greedy: the same calls


def test_named_function_with_the_stream_helper(client: openai.OpenAI) -> None:
    named: Any = {"type": "function", "function": {"name": "get_time"}}
    answer = client.chat.completions.create(
        model=NAME, messages=QUESTION, tools=TOOLS, tool_choice=named, temperature=0, max_tokens=80
    )
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.function.name == "get_time"
    _valid("get_time", call.function.arguments)
    with client.chat.completions.stream(
        model=NAME, messages=QUESTION, tools=TOOLS, tool_choice=named, temperature=0, max_tokens=80
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    (streamed,) = final.choices[0].message.tool_calls or []
    assert streamed.function.name == "get_time" and streamed.function.arguments == call.function.arguments
    assert final.choices[0].finish_reason == "tool_calls"


def test_auto_answers_content_or_valid_calls(client: openai.OpenAI) -> None:
    for messages in (QUESTION, [{"role": "user", "content": "Say hello."}]):
        answer = client.chat.completions.create(
            model=NAME, messages=messages, tools=TOOLS, temperature=0, max_tokens=60
        )
        message = answer.choices[0].message
        if message.tool_calls:
            assert answer.choices[0].finish_reason == "tool_calls"
            for call in message.tool_calls:
                assert call.function.name in SCHEMAS and isinstance(json.loads(call.function.arguments), dict)
        else:
            assert isinstance(message.content, str) and answer.choices[0].finish_reason in ("stop", "length")


def test_a_tool_conversation_round_trip(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model=NAME, messages=QUESTION, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120
    )
    message = first.choices[0].message
    history: Any = [
        *QUESTION,
        message.model_dump(exclude_none=True),
        *[
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21, "sky": "sunny"})}
            for call in message.tool_calls or []
        ],
    ]
    final = client.chat.completions.create(model=NAME, messages=history, tools=TOOLS, temperature=0, max_tokens=40)
    assert final.choices[0].finish_reason in ("stop", "length", "tool_calls")
    none = client.chat.completions.create(
        model=NAME, messages=history, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=40
    )
    assert isinstance(none.choices[0].message.content, str) and not none.choices[0].message.tool_calls


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "strin"}}}]},
            "tools[0].function.parameters",
        ),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
)
def test_tool_mistakes_are_400s_in_openai_shape(
    server: ServerProcess, client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=NAME, messages=QUESTION, max_tokens=4, extra_body=extra)
    body = httpx.post(
        f"{server.url}/v1/chat/completions", json={"model": NAME, "messages": QUESTION, **extra}, timeout=30
    )
    error = body.json()["error"]
    assert body.status_code == 400 and error["param"] == param and error["type"] == "invalid_request_error"
