"""LMI, TGI and OpenAI request parsing and response formatting (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelhost.worker.engine.types import InputTooLong, ModelLimits, TokenEvent
from modelhost.worker.engine_mode.schemas import lmi, openai, tgi
from modelhost.worker.engine_mode.schemas.request import RequestError
from modelhost.worker.engine_mode.schemas.result import GenerationResult


def events(*texts: str, reason: str = "length", prompt_tokens: int = 4) -> list[TokenEvent]:
    out = []
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        out.append(TokenEvent("r", 100 + i, text, -0.25, last, reason if last else None, prompt_tokens, i + 1))  # type: ignore[arg-type]
    return out


def collect(*texts: str, reason: str = "length", prompt: str = "Hi") -> GenerationResult:
    result = GenerationResult(prompt=prompt, prompt_tokens=4)
    for event in events(*texts, reason=reason):
        result.add(event)
    return result


# LMI -----------------------------------------------------------------------------------------
def test_lmi_defaults_and_parameters() -> None:
    request = lmi.parse_generate({"inputs": "Hi"}, "lmi")
    assert request.params.max_new_tokens == 30 and not request.params.do_sample and not request.stream
    request = lmi.parse_generate(
        {
            "inputs": "Hi",
            "stream": True,
            "parameters": {
                "max_new_tokens": 5,
                "temperature": 0.7,
                "top_p": 0.9,
                "top_k": 40,
                "seed": 3,
                "repetition_penalty": 1.1,
                "stop_sequences": ["\n\n"],
                "stop": "END",
                "return_full_text": True,
                "details": True,
                "min_new_tokens": 2,
                "some_future_knob": 1,
            },
        },
        "lmi",
    )
    p = request.params
    assert (p.max_new_tokens, p.temperature, p.top_p, p.top_k, p.seed, p.min_new_tokens) == (5, 0.7, 0.9, 40, 3, 2)
    assert p.do_sample and p.stop == ("\n\n", "END") and request.stream and request.details
    assert request.return_full_text


def test_do_sample_false_wins_and_temperature_zero_is_greedy() -> None:
    assert not lmi.parse_generate(
        {"inputs": "x", "parameters": {"temperature": 0.5, "do_sample": False}}, "lmi"
    ).params.do_sample
    assert not lmi.parse_generate({"inputs": "x", "parameters": {"temperature": 0}}, "lmi").params.do_sample


def test_the_stream_header_forces_a_stream() -> None:
    assert lmi.parse_generate({"inputs": "x"}, "lmi", stream_header=True).stream


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"parameters": {}}, "inputs is required"),
        ({"inputs": ["a", "b"]}, "inputs must be one string"),
        ({"inputs": "x", "parameters": {"max_new_tokens": "ten"}}, "parameters.max_new_tokens must be an integer"),
        ({"inputs": "x", "parameters": {"max_new_tokens": 0}}, "parameters.max_new_tokens must be at least 1"),
        ({"inputs": "x", "parameters": {"temperature": True}}, "parameters.temperature must be a number"),
        ({"inputs": "x", "parameters": {"top_p": 1.5}}, "parameters.top_p must be at most 1"),
        ({"inputs": "x", "parameters": {"stop_sequences": [1]}}, "stop_sequences must be a string or a list"),
        ({"inputs": "x", "parameters": "fast"}, "parameters must be an object"),
        ({"inputs": "x", "stream": "yes"}, "stream must be a boolean"),
    ],
)
def test_lmi_bad_requests(body: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        lmi.parse_generate(body, "lmi")


def test_lmi_response_is_an_object_with_details_on_request() -> None:
    request = lmi.parse_generate({"inputs": "Hi"}, "lmi")
    assert lmi.response(collect(" a", " b"), request) == (200, {"generated_text": " a b"})
    request = lmi.parse_generate({"inputs": "Hi", "parameters": {"details": True, "return_full_text": True}}, "lmi")
    status, body = lmi.response(collect(" a", " b", reason="eos_token"), request)
    assert status == 200 and body["generated_text"] == "Hi a b"
    assert body["details"] == {
        "finish_reason": "eos_token",
        "generated_tokens": 2,
        "inputs": "Hi",
        "tokens": [{"id": 100, "text": " a", "log_prob": -0.25}, {"id": 101, "text": " b", "log_prob": -0.25}],
    }


def test_lmi_stream_is_jsonlines_with_generated_text_last() -> None:
    request = lmi.parse_generate({"inputs": "Hi", "stream": True}, "lmi")
    fmt = lmi.LmiStream(request, GenerationResult(prompt="Hi"))
    data = fmt.start() + b"".join(fmt.event(e) for e in events(" a", " b", " c")) + fmt.end()
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert fmt.media_type == "application/jsonlines"
    assert lines[0] == {"token": {"id": 100, "text": " a", "log_prob": -0.25}}
    assert lines[-1] == {"token": {"id": 102, "text": " c", "log_prob": -0.25}, "generated_text": " a b c"}
    assert len(lines) == 3


def test_lmi_errors_are_424() -> None:
    limits = ModelLimits(max_model_len=64, max_input_tokens=32, max_batch_size=4)
    status, body = lmi.request_error(InputTooLong(40, 30, limits))
    assert status == 424 and body["code"] == 424 and "at most 32 input tokens" in body["error"]


# TGI -----------------------------------------------------------------------------------------
def test_tgi_response_is_a_one_element_list() -> None:
    request = lmi.parse_generate({"inputs": "Hi", "parameters": {"details": True}}, "tgi")
    assert request.params.max_new_tokens == 100
    status, body = tgi.response(collect(" a", "", reason="eos_token"), request, frozenset({101}))
    assert status == 200 and isinstance(body, list) and len(body) == 1
    assert body[0]["generated_text"] == " a"
    assert body[0]["details"]["finish_reason"] == "eos_token"
    assert body[0]["details"]["tokens"][1] == {"id": 101, "text": "", "logprob": -0.25, "special": True}


def test_tgi_stream_is_sse_with_details_last() -> None:
    request = lmi.parse_generate({"inputs": "Hi", "stream": True, "parameters": {"seed": 7}}, "tgi")
    fmt = tgi.TgiStream(request, GenerationResult(prompt="Hi"))
    data = b"".join(fmt.event(e) for e in events(" a", " b")) + fmt.end()
    assert data.startswith(b"data:{") and data.endswith(b"}\n\n")
    items = [json.loads(part[len("data:") :]) for part in data.decode().split("\n\n") if part]
    assert items[0] == {
        "index": 1,
        "token": {"id": 100, "text": " a", "logprob": -0.25, "special": False},
        "top_tokens": None,
        "generated_text": None,
        "details": None,
    }
    assert items[1]["generated_text"] == " a b"
    assert items[1]["details"] == {"finish_reason": "length", "generated_tokens": 2, "seed": 7, "input_length": 4}


def test_tgi_validation_errors_are_422() -> None:
    status, body = tgi.request_error(RequestError("inputs is required"))
    assert (status, body) == (422, {"error": "inputs is required", "error_type": "validation"})


# OpenAI --------------------------------------------------------------------------------------
def test_chat_request() -> None:
    request = openai.parse_chat(
        {
            "model": "ep",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
            "temperature": 0,
            "max_tokens": 8,
            "stop": "\n",
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,
            "min_tokens": 8,
            "seed": 1,
        }
    )
    assert request.messages == [{"role": "user", "content": "Hello"}]
    p = request.params
    assert (p.max_new_tokens, p.do_sample, p.stop, p.ignore_eos, p.min_new_tokens) == (8, False, ("\n",), True, 8)
    assert request.stream and request.include_usage and not request.fill_to_limit
    assert openai.parse_chat({"messages": [{"role": "user", "content": "x"}]}).fill_to_limit
    assert (
        openai.parse_chat(
            {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 3}
        ).params.max_new_tokens
        == 3
    )


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n", "n must be 1"),
        ({"messages": []}, "messages", "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0]", "must be an object with a role"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens", "at least 1"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature", "at most 2"),
        (
            {"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
            "stream_options",
            "only allowed when stream",
        ),
    ],
)
def test_chat_bad_requests_are_openai_errors(body: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(RequestError, match=message) as caught:
        openai.parse_chat(body)
    status, error = openai.request_error(caught.value)
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["param"] == param


def test_completion_request() -> None:
    request = openai.parse_completion({"model": "ep", "prompt": ["Once"], "echo": True})
    assert request.prompt == "Once" and request.params.max_new_tokens == 16 and request.return_full_text
    assert openai.parse_completion({"prompt": [1, 2, 3]}).prompt_token_ids == (1, 2, 3)
    with pytest.raises(RequestError, match="one request per prompt"):
        openai.parse_completion({"prompt": ["a", "b"]})


def fixed_ids() -> openai.Ids:
    return openai.Ids(new_id=lambda: "x1", now=lambda: 1700000000.0)


def test_chat_response_shape_and_usage() -> None:
    request = openai.parse_chat({"messages": [{"role": "user", "content": "x"}]})
    status, body = openai.response(collect(" a", " b", reason="eos_token"), request, "ep", fixed_ids())
    assert status == 200
    assert body == {
        "id": "chatcmpl-x1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "ep",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": " a b", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
        "system_fingerprint": None,
    }


def sse(data: bytes) -> list[Any]:
    parts = [p for p in data.decode().split("\n\n") if p]
    assert all(p.startswith("data: ") for p in parts)
    return [p[len("data: ") :] if p == "data: [DONE]" else json.loads(p[len("data: ") :]) for p in parts]


def test_chat_stream_chunks_usage_and_done() -> None:
    request = openai.parse_chat(
        {"messages": [{"role": "user", "content": "x"}], "stream": True, "stream_options": {"include_usage": True}}
    )
    fmt = openai.OpenAiStream(request, GenerationResult(prompt_tokens=4), "ep", fixed_ids())
    data = fmt.start() + b"".join(fmt.event(e) for e in events(" a", " b")) + fmt.end()
    chunks = sse(data)
    assert chunks[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["object"] == "chat.completion.chunk" and chunks[0]["usage"] is None
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == [" a", " b"]
    assert chunks[3]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert chunks[4]["choices"] == [] and chunks[4]["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 2,
        "total_tokens": 6,
    }
    assert len({c["id"] for c in chunks[:-1]}) == 1


def test_completion_stream_chunks() -> None:
    request = openai.parse_completion({"prompt": "x", "stream": True})
    fmt = openai.OpenAiStream(request, GenerationResult(), "ep", fixed_ids())
    chunks = sse(fmt.start() + b"".join(fmt.event(e) for e in events(" a", " b", reason="stop_sequence")) + fmt.end())
    assert chunks[0]["object"] == "text_completion" and chunks[0]["choices"][0]["text"] == " a"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[0]
    assert chunks[-1] == "[DONE]"


def test_input_too_long_is_context_length_exceeded() -> None:
    limits = ModelLimits(max_model_len=64, max_input_tokens=32, max_batch_size=4)
    status, body = openai.request_error(InputTooLong(40, 30, limits))
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert "64 tokens in total" in body["error"]["message"]
