"""OpenAI structured outputs, log-probabilities and honest refusals; LMI/TGI `parameters.grammar` (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.worker.engine.types import TokenEvent, TokenLogProb
from modelhost.worker.engine_mode.schemas import lmi, openai
from modelhost.worker.engine_mode.schemas.request import RequestError
from modelhost.worker.engine_mode.schemas.result import GenerationResult

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def test_response_format_json_schema_and_json_object() -> None:
    body = {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}}
    constraint = openai.parse_chat(body).params.constraint
    assert constraint is not None and constraint.kind == "json_schema" and constraint.param == "response_format"
    constraint = openai.parse_chat({**CHAT, "response_format": {"type": "json_object"}}).params.constraint
    assert constraint is not None and constraint.kind == "json_object"
    assert openai.parse_chat({**CHAT, "response_format": {"type": "text"}}).params.constraint is None
    completion = openai.parse_completion({"prompt": "x", "response_format": {"type": "json_object"}})
    assert completion.params.constraint is not None


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nope"}}},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": []}},
        {"type": "yaml"},
        "json",
    ],
)
def test_a_response_format_that_cannot_be_honoured_is_a_400_naming_it(response_format: Any) -> None:
    with pytest.raises(RequestError) as caught:
        openai.parse_chat({**CHAT, "response_format": response_format})
    status, body = openai.request_error(caught.value)
    assert status == 400
    assert body["error"]["param"] == "response_format" and body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "strin"}}}]},
            "tools[0].function.parameters",
        ),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"logit_bias": {"42": 101}}, "logit_bias"),
        ({"logit_bias": {"the": 5}}, "logit_bias"),
        ({"logit_bias": {"42": "up"}}, "logit_bias"),
        ({"logit_bias": [42]}, "logit_bias"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": -2.01}, "frequency_penalty"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"n": 2}, "n"),
    ],
)
def test_chat_parameters_the_engine_cannot_honour_are_400s(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        openai.parse_chat({**CHAT, **extra})
    assert caught.value.param == param


def test_harmless_and_no_op_fields_stay_accepted() -> None:
    body = {
        **CHAT,
        "user": "u",
        "metadata": {"k": "v"},
        "store": False,
        "service_tier": "auto",
        "presence_penalty": 0,
        "frequency_penalty": 0.0,
        "logit_bias": {},
        "tools": [],
        "tool_choice": "none",
        "parallel_tool_calls": True,
    }
    assert openai.parse_chat(body).params.constraint is None


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"suffix": "end"}, "suffix"), ({"echo": True, "logprobs": 2}, "echo"), ({"best_of": 3}, "best_of")],
)
def test_completion_parameters_the_engine_cannot_honour_are_400s(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        openai.parse_completion({"prompt": "x", **extra})
    assert caught.value.param == param


def test_frequency_and_presence_penalties_reach_the_engine() -> None:
    for parse, body in ((openai.parse_chat, CHAT), (openai.parse_completion, {"prompt": "x"})):
        params = parse({**body, "frequency_penalty": 0.5, "presence_penalty": -1.5, "min_p": 0.05})
        assert (params.params.frequency_penalty, params.params.presence_penalty) == (0.5, -1.5)
        assert params.params.min_p == 0.05
        assert parse(body).params.frequency_penalty == parse(body).params.presence_penalty == 0.0


def test_logit_bias_reaches_the_engine() -> None:
    params = openai.parse_chat({**CHAT, "logit_bias": {"42": 5, "7": -100, " 3": 0.5}}).params
    assert params.logit_bias == ((3, 0.5), (7, -100.0), (42, 5.0))
    assert openai.parse_completion({"prompt": "x", "logit_bias": {}}).params.logit_bias == ()


def test_logprobs_parameters_reach_the_engine() -> None:
    assert openai.parse_chat(CHAT).params.logprobs is None
    assert openai.parse_chat({**CHAT, "logprobs": True}).params.logprobs == 0
    assert openai.parse_chat({**CHAT, "logprobs": True, "top_logprobs": 20}).params.logprobs == 20
    with pytest.raises(RequestError):
        openai.parse_chat({**CHAT, "logprobs": True, "top_logprobs": 21})
    assert openai.parse_completion({"prompt": "x", "logprobs": 5}).params.logprobs == 5
    assert openai.parse_completion({"prompt": "x", "logprobs": 0}).logprobs
    with pytest.raises(RequestError):
        openai.parse_completion({"prompt": "x", "logprobs": 6})


def _events() -> GenerationResult:
    result = GenerationResult(prompt="Hi", prompt_tokens=3)
    top = (TokenLogProb(7, b" Paris", -0.1), TokenLogProb(8, b" Lyon", -2.5))
    result.add(TokenEvent("r", 7, " Paris", -0.1, token_bytes=b" Paris", top_log_probs=top, generated_tokens=1))
    split = (TokenLogProb(9, b"\xe2\x82", -0.3),)
    result.add(TokenEvent("r", 9, "", -0.3, True, "length", 3, 2, token_bytes=b"\xe2\x82", top_log_probs=split))
    return result


def test_chat_logprobs_shape() -> None:
    request = openai.parse_chat({**CHAT, "logprobs": True, "top_logprobs": 2})
    _, body = openai.response(_events(), request, "m")
    content = body["choices"][0]["logprobs"]["content"]
    assert content[0] == {
        "token": " Paris",
        "logprob": -0.1,
        "bytes": list(b" Paris"),
        "top_logprobs": [
            {"token": " Paris", "logprob": -0.1, "bytes": list(b" Paris")},
            {"token": " Lyon", "logprob": -2.5, "bytes": list(b" Lyon")},
        ],
    }
    assert content[1]["bytes"] == [0xE2, 0x82]  # half a character: the bytes are exact, the token string is not


def test_completion_logprobs_shape() -> None:
    request = openai.parse_completion({"prompt": "Hi", "logprobs": 2})
    _, body = openai.response(_events(), request, "m")
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["tokens"][0] == " Paris" and logprobs["token_logprobs"] == [-0.1, -0.3]
    assert logprobs["top_logprobs"][0] == {" Paris": -0.1, " Lyon": -2.5}
    assert logprobs["text_offset"] == [0, 6]


def test_streamed_chat_chunks_carry_top_logprobs() -> None:
    request = openai.parse_chat({**CHAT, "stream": True, "logprobs": True, "top_logprobs": 2})
    stream = openai.OpenAiStream(request, GenerationResult(prompt="Hi"), "m")
    top = (TokenLogProb(7, b" Paris", -0.1),)
    chunk = stream.event(TokenEvent("r", 7, " Paris", -0.1, token_bytes=b" Paris", top_log_probs=top))
    assert b'"top_logprobs": [{"token": " Paris", "logprob": -0.1' in chunk


def test_lmi_and_tgi_grammar() -> None:
    for api in ("lmi", "tgi"):
        request = lmi.parse_generate({"inputs": "x", "parameters": {"grammar": {"type": "json", "value": SCHEMA}}}, api)  # type: ignore[arg-type]
        assert request.params.constraint is not None and request.params.constraint.param == "parameters.grammar"
    as_text = lmi.parse_generate(
        {"inputs": "x", "parameters": {"grammar": {"type": "json", "value": '{"type": "object"}'}}}, "tgi"
    )
    assert as_text.params.constraint is not None
    regex = lmi.parse_generate({"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "[a-z]+"}}}, "tgi")
    assert regex.params.constraint is not None and regex.params.constraint.kind == "regex"
    for bad in ({"type": "json", "value": {"type": "strin"}}, {"type": "ebnf", "value": "x"}, "json"):
        with pytest.raises(RequestError) as caught:
            lmi.parse_generate({"inputs": "x", "parameters": {"grammar": bad}}, "tgi")
        assert caught.value.param == "parameters.grammar"
