"""Structured outputs, log-probabilities and refusals through a real modelhost server, with the official openai
client (SmolLM2 in engine mode)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.integration.server import ServerProcess, deploy

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
NAME = "smol-structured"
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
RESPONSE_FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: ServerProcess, smollm2_registered: str, tmp_path_factory: pytest.TempPathFactory) -> openai.OpenAI:
    sm, _ = server.clients()
    folder = tmp_path_factory.mktemp("smol-structured")
    (folder / "serving.properties").write_text(f"option.model_id={MODEL_ID}\noption.max_rolling_batch_size=8\n")
    deploy(sm, NAME, str(folder))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 600})
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def _ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def test_json_schema_answer_validates_plain_and_streaming(client: openai.OpenAI) -> None:
    messages = _ask("Tell me about Paris as JSON.")
    answer = client.chat.completions.create(
        model=NAME, messages=messages, response_format=RESPONSE_FORMAT, temperature=0, max_tokens=100
    )
    text = answer.choices[0].message.content or ""
    jsonschema.validate(json.loads(text), CITY)
    assert answer.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(
        model=NAME,
        messages=messages,
        response_format=RESPONSE_FORMAT,
        temperature=0,
        max_tokens=100,
        stream=True,
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == text  # greedy: the same answer


def test_json_object_on_completions(client: openai.OpenAI) -> None:
    answer = client.completions.create(
        model=NAME,
        prompt="A JSON object describing a cat: ",
        max_tokens=80,
        extra_body={"response_format": {"type": "json_object"}},
    )
    if answer.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(answer.choices[0].text), dict)
    else:  # ran out of tokens inside the object: still a prefix of one
        assert answer.choices[0].text.startswith("{")


def test_chat_logprobs_plain_and_streaming(client: openai.OpenAI) -> None:
    messages = _ask("What is the capital of France?")
    answer = client.chat.completions.create(
        model=NAME, messages=messages, max_tokens=8, logprobs=True, top_logprobs=3, temperature=0
    )
    assert answer.choices[0].logprobs is not None
    content = answer.choices[0].logprobs.content or []
    assert answer.usage is not None and len(content) == answer.usage.completion_tokens
    for item in content:
        assert item.logprob <= 0 and len(item.top_logprobs) == 3
        assert item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob >= item.top_logprobs[2].logprob
        assert item.top_logprobs[0].token == item.token  # greedy picks the most likely token
        assert bytes(item.bytes or []).decode("utf-8", "replace") == item.token
    stream = client.chat.completions.create(
        model=NAME, messages=messages, max_tokens=8, logprobs=True, top_logprobs=3, temperature=0, stream=True
    )
    streamed = [
        item
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs
        for item in chunk.choices[0].logprobs.content or []
    ]
    assert [(i.token, round(i.logprob, 4)) for i in streamed] == [(i.token, round(i.logprob, 4)) for i in content]


def test_completion_logprobs(client: openai.OpenAI) -> None:
    answer = client.completions.create(model=NAME, prompt="The capital of France is", max_tokens=5, logprobs=2)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.top_logprobs is not None and logprobs.token_logprobs is not None
    assert len(logprobs.top_logprobs) == len(logprobs.token_logprobs) == 5
    assert all(len(top) == 2 for top in logprobs.top_logprobs)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}}},
            "response_format",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "strin"}}}]},
            "tools[0].function.parameters",
        ),
        ({"logit_bias": {"999999": 3}}, "logit_bias"),  # outside SmolLM2's vocabulary: the engine refuses it
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"not_a_field": 1}, "not_a_field"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_in_openai_shape(
    server: ServerProcess, client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=NAME, messages=_ask("hi"), max_tokens=4, extra_body=extra)
    assert caught.value.status_code == 400
    body = httpx.post(
        f"{server.url}/v1/chat/completions", json={"model": NAME, "messages": _ask("hi"), **extra}, timeout=30
    )
    error = body.json()["error"]
    assert body.status_code == 400 and error["param"] == param and error["type"] == "invalid_request_error"
    assert set(error) >= {"message", "type", "param", "code"}


def test_tgi_grammar_through_invocations(server: ServerProcess, client: openai.OpenAI) -> None:
    _, runtime = server.clients()
    body = {
        "inputs": "<|im_start|>user\nTell me about Tokyo as JSON.<|im_end|>\n<|im_start|>assistant\n",
        "parameters": {"max_new_tokens": 100, "grammar": {"type": "json", "value": CITY}},
    }
    answer = runtime.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=json.dumps(body))
    jsonschema.validate(json.loads(json.loads(answer["Body"].read())["generated_text"]), CITY)


def test_penalties_are_honoured_on_the_openai_routes(client: openai.OpenAI) -> None:
    messages = _ask("Repeat the word dog twenty times, separated by spaces.")
    kwargs: Any = {"model": NAME, "messages": messages, "max_tokens": 24, "temperature": 0, "logprobs": True}
    kwargs["extra_body"] = {"ignore_eos": True}  # long enough to repeat itself

    def tokens(answer: Any) -> list[str]:
        return [item.token for item in answer.choices[0].logprobs.content]

    plain = tokens(client.chat.completions.create(**kwargs))
    penalized = tokens(client.chat.completions.create(**kwargs, frequency_penalty=2.0, presence_penalty=2.0))
    assert penalized[0] == plain[0]  # nothing generated yet: the first step is not penalized
    assert penalized != plain
    assert len(set(penalized)) > len(set(plain))  # fewer repeats


def test_lmi_top_n_tokens_and_refused_parameters(server: ServerProcess, client: openai.OpenAI) -> None:
    _, runtime = server.clients()
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 6, "details": True, "top_n_tokens": 3}}
    answer = runtime.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=json.dumps(body))
    details = json.loads(answer["Body"].read())["details"]
    assert len(details["top_tokens"]) == len(details["tokens"]) == details["generated_tokens"]
    for token, top in zip(details["tokens"], details["top_tokens"], strict=True):
        assert len(top) == 3 and token["id"] in [t["id"] for t in top]  # greedy: the chosen token is a most likely
        assert top[0]["log_prob"] == pytest.approx(token["log_prob"], abs=1e-5)  # one (exact ties in either order)
    for name in ("watermark", "decoder_input_details"):
        refused = {"inputs": prompt, "parameters": {name: True}}
        with pytest.raises(runtime.exceptions.ModelError) as caught:
            runtime.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=json.dumps(refused))
        error = caught.value.response
        assert (
            error["OriginalStatusCode"] == 424
            and f"parameters.{name}=true is not supported" in error["Error"]["Message"]
        )


def test_logit_bias_bans_and_forces_tokens(server: ServerProcess, client: openai.OpenAI) -> None:
    _, runtime = server.clients()
    prompt = "The capital of France is"
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 1, "details": True}}
    answer = runtime.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=json.dumps(body))
    first = json.loads(answer["Body"].read())["details"]["tokens"][0]

    def one(bias: dict[str, float]) -> tuple[str, float]:
        completion = client.completions.create(
            model=NAME, prompt=prompt, max_tokens=1, temperature=0, logprobs=1, logit_bias=bias
        )
        logprobs = completion.choices[0].logprobs
        assert logprobs is not None and logprobs.token_logprobs is not None
        return completion.choices[0].text, logprobs.token_logprobs[0]

    assert one({})[0] == first["text"]
    assert one({str(first["id"]): -100})[0] != first["text"]  # banned: the greedy choice is another token
    forced_text, forced_logprob = one({"1000": 100})
    assert forced_text != first["text"] and forced_logprob > -0.01  # +100 makes token 1000 all but certain
