"""LMI/TGI generation parameters: each one honoured (typical_p, penalties, top_n_tokens) or refused naming
itself (watermark, decoder_input_details, n > 1), never dropped (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

from modelhost.worker.engine.types import TokenEvent, TokenLogProb
from modelhost.worker.engine_mode.schemas import lmi, tgi
from modelhost.worker.engine_mode.schemas.request import RequestError
from modelhost.worker.engine_mode.schemas.result import GenerationResult

APIS: tuple[Literal["lmi", "tgi"], ...] = ("lmi", "tgi")
EOS = 9


def parse(api: Literal["lmi", "tgi"], stream: bool = False, **parameters: Any) -> Any:
    return lmi.parse_generate({"inputs": "Hi", "stream": stream, "parameters": parameters}, api)


def _token_events() -> list[TokenEvent]:
    paris = (TokenLogProb(7, b" Paris", -0.1), TokenLogProb(8, b" Lyon", -2.5))
    eos = (TokenLogProb(EOS, b"", -0.05), TokenLogProb(7, b" Paris", -3.0))
    return [
        TokenEvent("r", 7, " Paris", -0.1, token_bytes=b" Paris", top_log_probs=paris, prompt_tokens=2,
                   generated_tokens=1),
        TokenEvent("r", EOS, "", -0.05, True, "eos_token", 2, 2, token_bytes=b"", top_log_probs=eos),
    ]  # fmt: skip


def _result() -> GenerationResult:
    result = GenerationResult(prompt="Hi", prompt_tokens=2)
    for event in _token_events():
        result.add(event)
    return result


@pytest.mark.parametrize("api", APIS)
def test_sampling_parameters_reach_the_engine(api: Literal["lmi", "tgi"]) -> None:
    params = parse(api, typical_p=0.9, frequency_penalty=0.5, presence_penalty=-0.25).params
    assert (params.typical_p, params.frequency_penalty, params.presence_penalty) == (0.9, 0.5, -0.25)
    assert params.do_sample  # typical_p < 1 asks for sampling, as TGI's
    assert not parse(api, typical_p=0.9, do_sample=False).params.do_sample
    defaults = parse(api).params
    assert (defaults.typical_p, defaults.frequency_penalty, defaults.presence_penalty, defaults.logprobs) == (
        1.0,
        0.0,
        0.0,
        None,
    )
    assert parse(api, top_n_tokens=3).params.logprobs == 3
    assert parse(api, top_n_tokens=0).params.logprobs is None


@pytest.mark.parametrize(
    ("parameters", "param", "message"),
    [
        ({"watermark": True}, "parameters.watermark", "parameters.watermark=true is not supported"),
        ({"decoder_input_details": True}, "parameters.decoder_input_details", "not supported"),
        ({"n": 2}, "parameters.n", "must be 1"),
        ({"best_of": 2}, "parameters.best_of", "must be 1"),
        ({"num_beams": 4}, "parameters.num_beams", "must be 1"),
        ({"typical_p": 0}, "parameters.typical_p", "greater than 0"),
        ({"typical_p": 1.5}, "parameters.typical_p", "at most 1"),
        ({"frequency_penalty": 2.5}, "parameters.frequency_penalty", "at most 2"),
        ({"presence_penalty": -3}, "parameters.presence_penalty", "at least -2"),
        ({"top_n_tokens": 6}, "parameters.top_n_tokens", "at most 5"),
        ({"top_n_tokens": -1}, "parameters.top_n_tokens", "at least 0"),
        ({"watermark": "yes"}, "parameters.watermark", "must be a boolean"),
        ({"min_p": 1.5}, "parameters.min_p", "at most 1"),
        ({"stop_token_ids": [2]}, "parameters.stop_token_ids", "use stop_sequences"),
        ({"include_stop_str_in_output": True}, "parameters.include_stop_str_in_output", "not supported"),
        ({"skip_special_tokens": False}, "parameters.skip_special_tokens", "left out of the text"),
        ({"logprobs": 2}, "parameters.logprobs", "top_n_tokens"),
        ({"prompt_logprobs": 1}, "parameters.prompt_logprobs", "not computed"),
        ({"adapter_id": "my-lora"}, "parameters.adapter_id", "LoRA"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_it(parameters: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(RequestError, match=message) as caught:
        parse("tgi", **parameters)
    assert caught.value.param == param
    assert param in str(caught.value)
    status, body = tgi.request_error(caught.value)
    assert status == 422 and body["error_type"] == "validation" and param in body["error"]
    status, body = lmi.request_error(caught.value)
    assert status == 424 and body["code"] == 424 and param in body["error"]


def test_false_flags_and_single_sequences_stay_accepted() -> None:
    request = parse("tgi", watermark=False, decoder_input_details=False, n=1, best_of=1, num_beams=1)
    assert request.params.max_new_tokens == 100
    no_ops = parse(
        "lmi",
        stop_token_ids=[],
        include_stop_str_in_output=False,
        skip_special_tokens=True,
        logprobs=None,
        prompt_logprobs=0,
        adapter_id=None,
        length_penalty=1.5,  # beam search only: nothing to change for one sequence
        early_stopping=True,
    )
    assert no_ops.params.max_new_tokens == 30


def test_min_p_and_lmis_ignore_eos_token_reach_the_engine() -> None:
    for api in APIS:
        assert parse(api, min_p=0.1, do_sample=True).params.min_p == 0.1
        assert parse(api, ignore_eos_token=True).params.ignore_eos
        assert not parse(api, ignore_eos=False, ignore_eos_token=True).params.ignore_eos  # the standard name wins


def test_tgi_details_carry_top_tokens_per_generated_token() -> None:
    status, body = tgi.response(_result(), parse("tgi", details=True, top_n_tokens=2), frozenset({EOS}))
    assert status == 200 and isinstance(body, list)
    details = body[0]["details"]
    assert details["top_tokens"] == [
        [
            {"id": 7, "text": " Paris", "logprob": -0.1, "special": False},
            {"id": 8, "text": " Lyon", "logprob": -2.5, "special": False},
        ],
        [
            {"id": EOS, "text": "", "logprob": -0.05, "special": True},
            {"id": 7, "text": " Paris", "logprob": -3.0, "special": False},
        ],
    ]
    _, plain = tgi.response(_result(), parse("tgi", details=True), frozenset({EOS}))
    assert isinstance(plain, list) and "top_tokens" not in plain[0]["details"]  # TGI leaves an empty list out


def test_tgi_stream_events_carry_the_steps_top_tokens() -> None:
    fmt = tgi.TgiStream(parse("tgi", stream=True, top_n_tokens=2), GenerationResult(prompt="Hi"), frozenset({EOS}))
    data = b"".join(fmt.event(e) for e in _token_events()) + fmt.end()
    items = [json.loads(part[len("data:") :]) for part in data.decode().split("\n\n") if part]
    assert [len(item["top_tokens"]) for item in items] == [2, 2]
    assert items[0]["top_tokens"][1] == {"id": 8, "text": " Lyon", "logprob": -2.5, "special": False}
    assert items[1]["details"]["finish_reason"] == "eos_token"
    plain = tgi.TgiStream(parse("tgi", stream=True), GenerationResult(prompt="Hi"))
    first = json.loads(plain.event(_token_events()[0])[len("data:") :])
    assert first["top_tokens"] is None


def test_lmi_details_and_stream_lines_carry_top_tokens() -> None:
    _, body = lmi.response(_result(), parse("lmi", details=True, top_n_tokens=2))
    assert body["details"]["top_tokens"][0] == [
        {"id": 7, "text": " Paris", "log_prob": -0.1},
        {"id": 8, "text": " Lyon", "log_prob": -2.5},
    ]
    fmt = lmi.LmiStream(parse("lmi", stream=True, top_n_tokens=2), GenerationResult(prompt="Hi"))
    lines = [json.loads(line) for line in b"".join(fmt.event(e) for e in _token_events()).decode().splitlines()]
    assert lines[0]["top_tokens"][1] == {"id": 8, "text": " Lyon", "log_prob": -2.5}
    assert lines[1]["top_tokens"][0]["id"] == EOS and lines[1]["generated_text"] == " Paris"
    plain = lmi.LmiStream(parse("lmi", stream=True), GenerationResult(prompt="Hi"))
    assert "top_tokens" not in json.loads(plain.event(_token_events()[0]))


def test_every_parameter_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[4] / "docs" / "openai.md").read_text()
    section = docs[docs.index("## LMI and TGI `parameters`") :]
    missing = [name for name in sorted(lmi.KNOWN_PARAMETERS) if f"`{name}`" not in section]
    assert missing == []
