"""LMI's text-generation schema (rolling batch ≥ 0.26): `{"inputs", "parameters", "stream"}` in,
`{"generated_text", "details"}` out, jsonlines `{"token": ...}` when streaming (PROTOCOL §6.7).

The request parser is shared with TGI, whose `/invocations` body has the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from modelhost.worker.engine.grammar import json_constraint, regex_constraint
from modelhost.worker.engine.types import (
    Constraint,
    InputTooLong,
    InvalidParameter,
    SamplingParams,
    TokenEvent,
    TokenLogProb,
)
from modelhost.worker.engine_mode.schemas.request import (
    MAX_PENALTY,
    MAX_REPETITION_PENALTY,
    MAX_SEED,
    MAX_TEMPERATURE,
    RequestError,
    TextRequest,
    checked_text,
    note_unknown,
    read,
    read_stop,
    sampling_choice,
)
from modelhost.worker.engine_mode.schemas.result import GenerationResult, token_text

JSONLINES = "application/jsonlines"
LMI_DEFAULT_MAX_NEW_TOKENS = 30
TGI_DEFAULT_MAX_NEW_TOKENS = 100
LMI_ERROR_STATUS = 424  # LMI answers every validation failure with 424 {"error", "code": 424}
MAX_TOP_N_TOKENS = 5  # TGI's default MAX_TOP_N_TOKENS: the most alternatives `top_n_tokens` may ask for

KNOWN_PARAMETERS = {
    "max_new_tokens",
    "min_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "do_sample",
    "repetition_penalty",
    "seed",
    "stop_sequences",
    "stop",
    "return_full_text",
    "details",
    "ignore_eos",
    "truncate",
    "grammar",
    "typical_p",
    "min_p",
    "ignore_eos_token",  # LMI's vLLM name for ignore_eos
    "frequency_penalty",
    "presence_penalty",
    "top_n_tokens",  # details.top_tokens (and top_tokens on each streamed token)
    # accepted only when they ask for nothing more than one sequence (1) or nothing at all (false)
    "best_of",
    "n",
    "num_beams",
    "decoder_input_details",
    "watermark",
    # LMI's vLLM parameters and TGI's adapter_id: accepted only at the value that changes nothing (NO_OP_VALUES)
    "stop_token_ids",
    "include_stop_str_in_output",
    "skip_special_tokens",
    "logprobs",
    "prompt_logprobs",
    "adapter_id",
    # beam-search settings: with one sequence (num_beams 1) they change nothing, in vLLM and transformers too
    "length_penalty",
    "early_stopping",
}
# parameter -> why it is refused when true
UNSUPPORTED_FLAGS = {
    "watermark": "watermarking (Kirchenbauer et al.) is not implemented by this engine",
    "decoder_input_details": "the prompt tokens' log-probabilities (details.prefill) are not computed by this engine",
}
# parameter -> (the values that change nothing, why any other is refused)
NO_OP_VALUES: dict[str, tuple[tuple[Any, ...], str]] = {
    "stop_token_ids": ((None, []), "stopping on token ids is not implemented; use stop_sequences"),
    "include_stop_str_in_output": ((None, False), "a stop sequence is always cut from the text"),
    "skip_special_tokens": ((None, True), "special tokens are always left out of the text"),
    "logprobs": ((None, 0), "use details (each token's log_prob) and top_n_tokens (the most likely tokens)"),
    "prompt_logprobs": ((None, 0), "the prompt tokens' log-probabilities are not computed by this engine"),
    "adapter_id": ((None, ""), "LoRA adapters are not supported; deploy the merged model"),
}


def _parameters(body: Mapping[str, Any], api: Literal["lmi", "tgi"]) -> dict[str, Any]:
    parameters = body.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise RequestError("parameters must be an object", "parameters")
    unknown = sorted(set(parameters) - KNOWN_PARAMETERS)
    note_unknown(api, unknown)
    for name in ("n", "best_of", "num_beams"):
        if read(parameters, name, int, 1, where="parameters.") != 1:
            raise RequestError(
                f"parameters.{name} must be 1: the engine returns one sequence per request", f"parameters.{name}"
            )
    for name, why in UNSUPPORTED_FLAGS.items():
        if read(parameters, name, bool, False, where="parameters."):
            raise RequestError(f"parameters.{name}=true is not supported: {why}", f"parameters.{name}")
    for name, (no_ops, why) in NO_OP_VALUES.items():
        value = parameters.get(name)
        if not any(value == ok and type(value) is type(ok) for ok in no_ops):
            shown = json.dumps(value)[:60]
            raise RequestError(f"parameters.{name}={shown} is not supported: {why}", f"parameters.{name}")
    return parameters


def _prompt(body: Mapping[str, Any]) -> str:
    inputs = body.get("inputs")
    if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], str):
        return checked_text(inputs[0], "inputs")
    if isinstance(inputs, list):
        raise RequestError(
            "inputs must be one string; send one request per prompt (they are batched together)", "inputs"
        )
    if not isinstance(inputs, str):
        raise RequestError("inputs is required and must be a string", "inputs")
    return checked_text(inputs, "inputs")


def parse_generate(body: Any, api: Literal["lmi", "tgi"], stream_header: bool = False) -> TextRequest:
    """An `{"inputs", "parameters", "stream"}` body → TextRequest. `stream_header`: the router asked for a
    stream (InvokeEndpointWithResponseStream) whatever the body says."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object with inputs and parameters")
    prompt = _prompt(body)
    p = _parameters(body, api)
    where = "parameters."
    default_max = LMI_DEFAULT_MAX_NEW_TOKENS if api == "lmi" else TGI_DEFAULT_MAX_NEW_TOKENS
    temperature = read(p, "temperature", float, where=where, minimum=0, maximum=MAX_TEMPERATURE)
    top_p = read(p, "top_p", float, where=where, minimum=0, maximum=1, exclusive_minimum=True)
    top_k = read(p, "top_k", int, where=where, minimum=0)
    typical_p = read(p, "typical_p", float, where=where, minimum=0, maximum=1, exclusive_minimum=True)
    ignore_eos = read(p, "ignore_eos", bool, where=where)
    if ignore_eos is None:
        ignore_eos = read(p, "ignore_eos_token", bool, False, where=where)
    do_sample = read(p, "do_sample", bool, where=where)
    top_n = read(p, "top_n_tokens", int, 0, where=where, minimum=0, maximum=MAX_TOP_N_TOKENS)
    stop = read_stop(p, "stop_sequences", where=where) + read_stop(p, "stop", where=where)
    params = SamplingParams(
        max_new_tokens=read(p, "max_new_tokens", int, default_max, where=where, minimum=1),
        min_new_tokens=read(p, "min_new_tokens", int, 0, where=where, minimum=0),
        temperature=temperature if temperature else 1.0,
        top_p=top_p if top_p is not None else 1.0,
        top_k=top_k or 0,
        repetition_penalty=read(
            p,
            "repetition_penalty",
            float,
            1.0,
            where=where,
            minimum=0,
            maximum=MAX_REPETITION_PENALTY,
            exclusive_minimum=True,
        ),
        frequency_penalty=_penalty(p, "frequency_penalty"),
        presence_penalty=_penalty(p, "presence_penalty"),
        typical_p=typical_p if typical_p is not None else 1.0,
        min_p=read(p, "min_p", float, 0.0, where=where, minimum=0, maximum=1),
        do_sample=sampling_choice(do_sample, temperature, top_p, top_k, typical_p),
        seed=read(p, "seed", int, where=where, minimum=0, maximum=MAX_SEED),
        stop=stop,
        ignore_eos=ignore_eos,
        constraint=grammar(p.get("grammar")),
        logprobs=top_n or None,  # the engine reports the top_n most likely tokens at each step
    )
    return TextRequest(
        api=api,
        params=params,
        prompt=prompt,
        stream=bool(read(body, "stream", bool, False)) or stream_header,
        details=read(p, "details", bool, False, where=where),
        return_full_text=read(p, "return_full_text", bool, False, where=where),
        truncate=read(p, "truncate", int, where=where, minimum=1),
    )


def _penalty(p: Mapping[str, Any], name: str) -> float:
    value: float = read(p, name, float, 0.0, where="parameters.", minimum=-MAX_PENALTY, maximum=MAX_PENALTY)
    return value


def top_n_tokens(request: TextRequest) -> int:
    """How many alternatives `parameters.top_n_tokens` asked for (0: none)."""
    return request.params.logprobs or 0


def grammar(raw: Any) -> Constraint | None:
    """`parameters.grammar` as TGI takes it (LMI accepts the same shape here): {"type": "json", "value": a JSON
    schema, as an object or its JSON text} or {"type": "regex", "value": a pattern}; null means none."""
    param = "parameters.grammar"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestError(f"{param} must be an object with a type and a value", param)
    kind, value = raw.get("type"), raw.get("value")
    try:
        if kind in ("json", "json_object", "json_schema"):
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise RequestError(f"{param}.value is not valid JSON: {exc}", param) from None
            if value is not None and not isinstance(value, dict):
                raise RequestError(f"{param}.value must be a JSON schema object", param)
            return json_constraint(value, param)
        if kind == "regex":
            if not isinstance(value, str):
                raise RequestError(f"{param}.value must be a regular expression (a string)", param)
            return regex_constraint(value, param)
    except InvalidParameter as exc:
        raise RequestError(str(exc), param) from None
    raise RequestError(f"{param}.type must be json or regex, got {kind!r:.60}", param)


def error_body(message: str) -> tuple[int, dict[str, Any]]:
    return LMI_ERROR_STATUS, {"error": message, "code": LMI_ERROR_STATUS}


def request_error(exc: RequestError | InputTooLong) -> tuple[int, dict[str, Any]]:
    return error_body(str(exc))


def _token(event: TokenEvent) -> dict[str, Any]:
    return {"id": event.token_id, "text": event.text, "log_prob": event.log_prob}


def _alternative(candidate: TokenLogProb) -> dict[str, Any]:
    return {"id": candidate.token_id, "text": token_text(candidate.token_bytes), "log_prob": candidate.log_prob}


def _details(result: GenerationResult, request: TextRequest, *, tokens: bool) -> dict[str, Any]:
    details: dict[str, Any] = {
        "finish_reason": result.finish_reason or "error",
        "generated_tokens": result.generated_tokens,
        "inputs": result.prompt,
    }
    if tokens:
        details["tokens"] = [_token(t) for t in result.tokens]
        if top_n_tokens(request):  # one list per generated token, the most likely first (as TGI's top_tokens)
            details["top_tokens"] = [[_alternative(c) for c in t.top_log_probs] for t in result.tokens]
    if result.error:
        details["error"] = result.error
    return details


def generated_text(result: GenerationResult, request: TextRequest) -> str:
    return (result.prompt + result.text) if request.return_full_text else result.text


def response(result: GenerationResult, request: TextRequest) -> tuple[int, dict[str, Any]]:
    """The non-streaming answer: status and JSON object."""
    if result.failed:
        return error_body(f"generation failed: {result.error or 'unknown error'}")
    body: dict[str, Any] = {"generated_text": generated_text(result, request)}
    if request.details:
        body["details"] = _details(result, request, tokens=True)
    return 200, body


class LmiStream:
    """jsonlines: `{"token": {...}}` per token; the last line adds `generated_text` (and `details`)."""

    media_type = JSONLINES

    def __init__(self, request: TextRequest, result: GenerationResult) -> None:
        self.request = request
        self.result = result

    def start(self) -> bytes:
        return b""

    def event(self, event: TokenEvent) -> bytes:
        self.result.add(event)
        if not event.finished:
            return _line(self._token_line(event)) if event.token_id is not None else b""
        return self._last(event)

    def _token_line(self, event: TokenEvent) -> dict[str, Any]:
        line: dict[str, Any] = {"token": _token(event)}
        if top_n_tokens(self.request):
            line["top_tokens"] = [_alternative(c) for c in event.top_log_probs]
        return line

    def _last(self, event: TokenEvent | None) -> bytes:
        if event is not None and event.token_id is not None:
            line = self._token_line(event)
        else:
            line = {"token": {"id": -1, "text": "", "log_prob": None}}
        line["generated_text"] = generated_text(self.result, self.request)
        if self.request.details or self.result.failed:
            line["details"] = _details(self.result, self.request, tokens=False)
        return _line(line)

    def end(self) -> bytes:
        if self.result.finished:
            return b""
        self.result.finish_reason, self.result.error = "error", "the generation ended without a final token"
        return self._last(None)


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"
