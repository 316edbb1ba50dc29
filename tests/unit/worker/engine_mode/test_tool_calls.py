"""OpenAI tool calling (pure): tools/tool_choice parsing, prompt rendering, output parsing, responses and streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelhost.worker.engine.types import TokenEvent
from modelhost.worker.engine_mode.schemas import openai
from modelhost.worker.engine_mode.schemas.request import RequestError
from modelhost.worker.engine_mode.schemas.result import GenerationResult
from modelhost.worker.engine_mode.schemas.tools import ToolSpec, ToolStream, parse_output, parse_tools

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}
CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "Weather in Paris?"}]}


def _spec(**extra: Any) -> ToolSpec:
    spec = parse_tools({"tools": [WEATHER, TIME], **extra})
    assert spec is not None
    return spec


def test_tool_choice_forms() -> None:
    assert _spec().choice == "auto" and not _spec().forced
    assert _spec(tool_choice="required").forced
    named = _spec(tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert named.choice == "get_time" and named.forced
    assert parse_tools({"tools": [WEATHER], "tool_choice": "none"}) is None
    assert parse_tools({}) is None
    assert _spec(parallel_tool_calls=False).parallel is False
    assert _spec().tools[1].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": {"a": 1}}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        (
            {"tools": [WEATHER, {"type": "function", "function": {"name": "f", "parameters": {"type": "strin"}}}]},
            "tools[1].function.parameters",
        ),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        (
            {"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}},
            "response_format",
        ),
        (
            {
                "messages": [{"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]}],
            },
            "messages[0].tool_calls[0]",
        ),
    ],
)
def test_bad_tool_requests_are_400s_naming_the_field(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        openai.parse_chat({**CHAT, **extra})
    assert caught.value.param == param
    status, body = openai.request_error(caught.value)
    assert status == 400 and body["error"]["param"] == param


def test_tools_render_into_the_system_message_and_history_as_text() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
    ]
    request = openai.parse_chat({**CHAT, "messages": messages, "tools": [WEATHER]})
    rendered = request.messages
    assert rendered is not None and [m["role"] for m in rendered] == ["system", "user", "assistant", "user"]
    assert (
        rendered[0]["content"].startswith("Be brief.\n\n# Tools") and '"name": "get_weather"' in rendered[0]["content"]
    )
    assert (
        rendered[2]["content"] == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    )
    assert rendered[3]["content"] == (
        "<tool_response>\nsunny, 21 C\n</tool_response>\n<tool_response>\n12:00\n</tool_response>"
    )
    assert request.tools is not None and request.params.constraint is None  # auto: unconstrained
    no_tools = openai.parse_chat({**CHAT, "messages": messages, "tools": [WEATHER], "tool_choice": "none"})
    assert no_tools.tools is None and no_tools.messages is not None
    assert "<tools>" not in no_tools.messages[0]["content"]
    assert no_tools.messages[2]["content"].startswith("<tool_call>")
    plain = openai.parse_chat({**CHAT, "tools": [WEATHER]}).messages
    assert plain is not None and plain[0]["role"] == "system" and plain[1]["content"] == "Weather in Paris?"


def test_required_and_named_constrain_with_a_tool_call_grammar() -> None:
    required = openai.parse_chat({**CHAT, "tools": [WEATHER, TIME], "tool_choice": "required"})
    constraint = required.params.constraint
    assert constraint is not None and constraint.kind == "tool_calls" and constraint.param == "tool_choice"
    assert "get_weather" in constraint.grammar and "get_time" in constraint.grammar
    named = openai.parse_chat(
        {**CHAT, "tools": [WEATHER, TIME], "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    )
    assert named.params.constraint is not None
    assert "get_time" in named.params.constraint.grammar and "get_weather" not in named.params.constraint.grammar


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', None, 1),
        ('<tool_call>\n{"name":"get_time","arguments":{}}\n</tool_call>\n<tool_call>\n{"name":"get_time"}', None, 2),
        (
            'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}',
            "Let me check.",
            1,
        ),
        ('{"name": "get_weather", "arguments": {"city": "Oslo"}}', None, 1),
        ("It is sunny.", "It is sunny.", 0),
        ('<tool_call>\n{"name": "delete_all", "arguments": {}}\n</tool_call>', "<same>", 0),
        ("<tool_call>\n{not json</tool_call>", "<same>", 0),
        ('<tool_call>{"name":"get_time","arguments":{}}</tool_call> and more text', "<same>", 0),
        ('{"city": "Paris"}', "<same>", 0),
    ],
)
def test_output_parsing(text: str, content: str | None, calls: int) -> None:
    got_content, got_calls = parse_output(text, _spec())
    assert got_content == (text if content == "<same>" else content)
    assert len(got_calls) == calls
    for call in got_calls:
        assert isinstance(json.loads(call.arguments), dict) and call.id.startswith("call_")


def _event(text: str, finished: bool = False) -> TokenEvent:
    return TokenEvent("r", 1, text, None, finished=finished, finish_reason="eos_token" if finished else None)


def test_response_carries_tool_calls() -> None:
    request = openai.parse_chat({**CHAT, "tools": [WEATHER]})
    result = GenerationResult(prompt="p", prompt_tokens=3)
    result.add(_event('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', True))
    status, body = openai.response(result, request, "m")
    choice = body["choices"][0]
    assert status == 200 and choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def _chunks(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.decode().split("\n\n"):
        if line.startswith("data: {"):
            out.append(json.loads(line[len("data: ") :]))
    return out


def test_stream_sends_content_then_calls_in_openai_shape() -> None:
    request = openai.parse_chat({**CHAT, "tools": [WEATHER, TIME], "stream": True})
    stream = openai.OpenAiStream(request, GenerationResult(prompt="p", prompt_tokens=3), "m")
    pieces = ["Sure.", "\n<tool", '_call>\n{"name": "get_', 'time", "arguments": {}}\n</tool_', "call>\n<tool_call>"]
    raw = stream.start() + b"".join(stream.event(_event(p)) for p in pieces)
    raw += stream.event(_event('\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', True))
    raw += stream.end()
    chunks = _chunks(raw)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == "Sure.\n"
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [d["index"] for d in deltas] == [0, 0, 1, 1]
    assert deltas[0]["function"]["name"] == "get_time" and deltas[0]["id"].startswith("call_")
    assert deltas[2]["function"]["name"] == "get_weather"
    assert json.loads(deltas[3]["function"]["arguments"]) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_of_plain_text_and_of_a_malformed_call_is_content() -> None:
    for text in ["It is <sunny> today.", "<tool_call>\n{broken\n</tool_call>", '{"a": 1}']:
        stream = ToolStream(_spec())
        sent = "".join(stream.feed(ch)[0] for ch in text)
        rest, calls = stream.finish()
        assert sent + rest == text and calls == []
    stream = ToolStream(_spec())
    assert stream.feed('{"name": "get_time", ')[0] == ""  # held: it may be a bare call
    assert stream.feed('"arguments": {}}') == ("", [])
    rest, calls = stream.finish()
    assert rest == "" and [c.name for c in calls] == ["get_time"]
