"""OpenAI's chat completions and completions: requests, responses, SSE chunks and error objects.

Also serves a body with `messages` posted to `/invocations` (either image schema): the answer is then
chat-completion shaped. `ignore_eos` and `min_tokens` (vLLM's extensions) are accepted so benchmarks can
force fixed lengths.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from modelhost.worker.engine.grammar import json_constraint
from modelhost.worker.engine.types import (
    Constraint,
    FinishReason,
    InputTooLong,
    SamplingParams,
    TokenEvent,
    TokenLogProb,
)
from modelhost.worker.engine_mode.schemas.request import (
    MAX_PENALTY,
    MAX_REPETITION_PENALTY,
    MAX_SEED,
    MAX_TOKEN_ID,
    MIN_SEED,
    RequestError,
    TextRequest,
    checked_text,
    note_unknown,
    read,
    read_stop,
)
from modelhost.worker.engine_mode.schemas.result import GenerationResult, token_text
from modelhost.worker.engine_mode.schemas.tools import ToolCall, ToolStream, parse_output, parse_tools, render
from modelhost.worker.engine_mode.schemas.tools import constraint as tool_constraint

EVENT_STREAM = "text/event-stream"
DONE = b"data: [DONE]\n\n"
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's legacy completions default

_COMMON = {
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "logprobs",
    "top_logprobs",
    "ignore_eos",
    "min_tokens",
    "top_k",
    "min_p",
    "repetition_penalty",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "metadata",
    "store",
    "service_tier",
}
CHAT_FIELDS = _COMMON | {"messages", "parallel_tool_calls", "response_format", "tools", "tool_choice"}
COMPLETION_FIELDS = _COMMON | {"prompt", "echo", "best_of", "suffix", "response_format"}
MAX_CHAT_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def error_object(
    message: str,
    status: int = 400,
    param: str | None = None,
    code: str | None = None,
    error_type: str | None = None,
) -> tuple[int, dict[str, Any]]:
    kind = error_type or ("invalid_request_error" if status < 500 else "server_error")
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


def request_error(exc: RequestError | InputTooLong) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, InputTooLong):
        return error_object(str(exc), 400, "messages", "context_length_exceeded")
    return error_object(exc.message, 400, exc.param, exc.code)


def _content_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return checked_text(content, f"messages[{index}].content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(f"messages[{index}].content: only text parts are supported", f"messages[{index}]")
            parts.append(checked_text(part["text"], f"messages[{index}].content"))
        return "".join(parts)
    if content is None:
        return ""
    raise RequestError(f"messages[{index}].content must be a string or a list of text parts", f"messages[{index}]")


def parse_messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise RequestError("messages must be a non-empty list", "messages")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise RequestError(
                f"messages[{i}] must be an object with a role ({', '.join(sorted(_ROLES))})", f"messages[{i}]"
            )
        messages.append({"role": message["role"], "content": _content_text(message.get("content"), i)})
    return messages


def _refuse_unknown(api: str, body: dict[str, Any], known: set[str]) -> None:
    """A field this API does not know is a 400 naming it, as OpenAI answers; nothing is silently dropped."""
    unknown = sorted(set(body) - known)
    if unknown:
        note_unknown(api, unknown)
        raise RequestError(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0], "unsupported_parameter")


def _unsupported(name: str, why: str) -> RequestError:
    return RequestError(f"{name} is not supported by this engine: {why}", name, "unsupported_parameter")


MAX_LOGIT_BIAS = 100.0  # OpenAI's range for a logit_bias value: -100 (never) ... 100 (always)
MAX_LOGIT_BIAS_TOKENS = 300  # OpenAI's limit on the entries of one logit_bias


def logit_bias(body: dict[str, Any]) -> tuple[tuple[int, float], ...]:
    """OpenAI's `logit_bias`: {"<token id>": bias from -100 to 100}, added to those tokens' logits. The ids are
    checked against the model's vocabulary by the engine (a 400 naming logit_bias)."""
    raw = body.get("logit_bias")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise RequestError("logit_bias must be an object mapping token ids to biases", "logit_bias")
    if len(raw) > MAX_LOGIT_BIAS_TOKENS:
        raise RequestError(f"logit_bias may hold at most {MAX_LOGIT_BIAS_TOKENS} tokens, got {len(raw)}", "logit_bias")
    entries = []
    for key in raw:
        text = str(key).strip()
        if not text.isdigit() or int(text) > MAX_TOKEN_ID:
            raise RequestError(
                f"logit_bias keys must be token ids (0 to {MAX_TOKEN_ID}), got {key!r:.40}", "logit_bias"
            )
        try:
            bias = read(raw, key, float, minimum=-MAX_LOGIT_BIAS, maximum=MAX_LOGIT_BIAS, where="logit_bias.")
        except RequestError as exc:
            raise RequestError(exc.message, "logit_bias") from None
        if bias is None:
            raise RequestError(f"logit_bias.{text} must be a number from -100 to 100", "logit_bias")
        entries.append((int(text), float(bias)))
    return tuple(sorted(entries))


def response_format(body: dict[str, Any]) -> Constraint | None:
    """OpenAI's `response_format`: text (no constraint), json_object (any JSON object) or json_schema (the
    schema, strict or not: the output is always constrained to it). A schema llguidance refuses is a 400."""
    raw = body.get("response_format")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestError("response_format must be an object with a type", "response_format")
    kind = raw.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return _constraint(None)
    if kind != "json_schema":
        raise RequestError(
            f"response_format.type must be text, json_object or json_schema, got {kind!r:.60}", "response_format"
        )
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise RequestError("response_format.json_schema must be an object with a schema", "response_format")
    read(spec, "name", str, where="response_format.json_schema.")
    read(spec, "strict", bool, where="response_format.json_schema.")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, (dict, bool)):
        raise RequestError("response_format.json_schema.schema must be a JSON schema object", "response_format")
    if schema is True or schema is None:
        schema = {}
    if schema is False:
        raise RequestError("response_format.json_schema.schema is false: no value can match it", "response_format")
    return _constraint(schema)


def _constraint(schema: dict[str, Any] | None) -> Constraint:
    try:
        return json_constraint(schema, "response_format")
    except ValueError as exc:
        raise RequestError(str(exc), "response_format", "invalid_response_format") from None


def _sampling(body: dict[str, Any], max_tokens: int | None, default_max: int | None) -> tuple[SamplingParams, bool]:
    """SamplingParams and whether max tokens is left to the model's limit."""
    if read(body, "n", int, 1, minimum=1) != 1:
        raise RequestError("n must be 1: modelhost returns one choice per request", "n")
    temperature = read(body, "temperature", float, 1.0, minimum=0, maximum=2)
    top_p = read(body, "top_p", float, 1.0, minimum=0, maximum=1, exclusive_minimum=True)
    fill = max_tokens is None and default_max is None
    params = SamplingParams(
        max_new_tokens=max_tokens or default_max or 1,
        min_new_tokens=read(body, "min_tokens", int, 0, minimum=0),
        temperature=temperature if temperature > 0 else 1.0,
        top_p=top_p,
        top_k=read(body, "top_k", int, 0, minimum=-1) if body.get("top_k") != -1 else 0,
        min_p=read(body, "min_p", float, 0.0, minimum=0, maximum=1),
        repetition_penalty=read(
            body, "repetition_penalty", float, 1.0, minimum=0, maximum=MAX_REPETITION_PENALTY, exclusive_minimum=True
        ),
        frequency_penalty=read(body, "frequency_penalty", float, 0.0, minimum=-MAX_PENALTY, maximum=MAX_PENALTY),
        presence_penalty=read(body, "presence_penalty", float, 0.0, minimum=-MAX_PENALTY, maximum=MAX_PENALTY),
        logit_bias=logit_bias(body),
        do_sample=temperature > 0,
        seed=read(body, "seed", int, minimum=MIN_SEED, maximum=MAX_SEED),
        stop=read_stop(body, "stop", limit=16),
        ignore_eos=read(body, "ignore_eos", bool, False),
        constraint=response_format(body),
    )
    return params, fill


def _stream_options(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise RequestError("stream_options must be an object", "stream_options")
    if not stream:
        raise RequestError("stream_options is only allowed when stream is true", "stream_options")
    return bool(read(options, "include_usage", bool, False, where="stream_options."))


def parse_chat(body: Any, stream_header: bool = False) -> TextRequest:
    """A chat-completions body → TextRequest (max tokens default: up to the model's length limit)."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    _refuse_unknown("chat", body, CHAT_FIELDS)
    messages = parse_messages(body.get("messages"))
    tools = parse_tools(body)
    messages = render(messages, body["messages"], tools)
    max_tokens = read(body, "max_completion_tokens", int, minimum=1)
    if max_tokens is None:
        max_tokens = read(body, "max_tokens", int, minimum=1)
    params, fill = _sampling(body, max_tokens, None)
    calls = tool_constraint(tools) if tools is not None else None
    if calls is not None:
        if params.constraint is not None:
            raise RequestError(
                "response_format cannot be combined with a tool_choice that forces a call", "response_format"
            )
        params = dataclasses.replace(params, constraint=calls)
    stream = bool(read(body, "stream", bool, False)) or stream_header
    top_logprobs = read(body, "top_logprobs", int, None, minimum=0, maximum=MAX_CHAT_TOP_LOGPROBS)
    logprobs = bool(read(body, "logprobs", bool, False)) or bool(top_logprobs)
    if logprobs:
        params = dataclasses.replace(params, logprobs=top_logprobs or 0)
    return TextRequest(
        api="chat",
        params=params,
        messages=messages,
        stream=stream,
        fill_to_limit=fill,
        logprobs=logprobs,
        include_usage=_stream_options(body, stream),
        model=read(body, "model", str, ""),
        tools=tools,
    )


def _completion_prompt(raw: Any) -> tuple[str | None, tuple[int, ...] | None]:
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if isinstance(raw, str):
        return checked_text(raw, "prompt"), None
    if isinstance(raw, list) and raw and all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
        if not all(0 <= t <= MAX_TOKEN_ID for t in raw):
            raise RequestError(f"prompt token ids must be from 0 to {MAX_TOKEN_ID}", "prompt")
        return None, tuple(raw)
    if isinstance(raw, list):
        raise RequestError("prompt must be one string or one list of token ids; send one request per prompt", "prompt")
    raise RequestError("prompt is required and must be a string", "prompt")


def parse_completion(body: Any, stream_header: bool = False) -> TextRequest:
    """A (legacy) completions body → TextRequest (max_tokens default 16, as OpenAI's)."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    _refuse_unknown("completions", body, COMPLETION_FIELDS)
    prompt, token_ids = _completion_prompt(body.get("prompt"))
    if read(body, "best_of", int, 1, minimum=1) != 1:
        raise RequestError("best_of must be 1", "best_of")
    if read(body, "suffix", str):
        raise _unsupported("suffix", "insertion (text after the completion) is not implemented")
    max_tokens = read(body, "max_tokens", int, minimum=1)
    params, fill = _sampling(body, max_tokens, COMPLETIONS_DEFAULT_MAX_TOKENS)
    stream = bool(read(body, "stream", bool, False)) or stream_header
    logprobs = read(body, "logprobs", int, None, minimum=0, maximum=MAX_COMPLETION_LOGPROBS)
    echo = read(body, "echo", bool, False)
    if logprobs is not None:
        if echo:
            raise _unsupported("echo", "the prompt's log-probabilities are not computed (drop echo or logprobs)")
        params = dataclasses.replace(params, logprobs=logprobs)
    return TextRequest(
        api="completions",
        params=params,
        prompt=prompt,
        prompt_token_ids=token_ids,
        stream=stream,
        fill_to_limit=fill,
        return_full_text=echo,
        logprobs=logprobs is not None,
        include_usage=_stream_options(body, stream),
        model=read(body, "model", str, ""),
    )


def finish_reason(reason: FinishReason | None) -> str | None:
    """The engine's finish reason in OpenAI's words."""
    if reason is None:
        return None
    return {"length": "length", "eos_token": "stop", "stop_sequence": "stop", "abort": "abort"}.get(reason, "stop")


def tool_finish_reason(reason: FinishReason | None) -> str | None:
    """With tool calls in the answer: "tool_calls", unless max_tokens cut it."""
    return "length" if reason == "length" else "tool_calls"


def _token_bytes(t: TokenEvent) -> bytes:
    """The token's own bytes (what the engine reports), else the text it added."""
    return t.token_bytes if t.token_bytes is not None else t.text.encode("utf-8")


def _token_string(raw: bytes) -> str:
    """A token as text (the `bytes` list beside it is exact)."""
    return token_text(raw)


def _alternative(candidate: TokenLogProb) -> dict[str, Any]:
    return {
        "token": _token_string(candidate.token_bytes),
        "logprob": candidate.log_prob,
        "bytes": list(candidate.token_bytes),
    }


def _chat_logprobs(tokens: list[TokenEvent]) -> dict[str, Any]:
    content = []
    for t in tokens:
        raw = _token_bytes(t)
        content.append(
            {
                "token": _token_string(raw),
                "logprob": t.log_prob if t.log_prob is not None else 0.0,
                "bytes": list(raw),
                "top_logprobs": [_alternative(c) for c in t.top_log_probs],
            }
        )
    return {"content": content, "refusal": None}


def _completion_logprobs(tokens: list[TokenEvent], offset: int) -> dict[str, Any]:
    offsets, position = [], offset
    for t in tokens:
        offsets.append(position)
        position += len(t.text)
    return {
        "tokens": [_token_string(_token_bytes(t)) for t in tokens],
        "token_logprobs": [t.log_prob for t in tokens],
        "top_logprobs": [{_token_string(c.token_bytes): c.log_prob for c in t.top_log_probs} for t in tokens],
        "text_offset": offsets,
    }


class Ids:
    """Response ids and timestamps; injectable so tests are deterministic."""

    def __init__(self, new_id: Callable[[], str] | None = None, now: Callable[[], float] = time.time) -> None:
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self.now = now


def response(
    result: GenerationResult, request: TextRequest, model: str, ids: Ids | None = None
) -> tuple[int, dict[str, Any]]:
    """The non-streaming chat.completion or text_completion object, with usage."""
    ids = ids or Ids()
    if result.failed:
        return error_object(f"generation failed: {result.error or 'unknown error'}", 500)
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason(result.finish_reason)}
    if request.api == "chat":
        choice["message"] = {"role": "assistant", "content": result.text, "refusal": None}
        if request.tools is not None:
            content, calls = parse_output(result.text, request.tools)
            if calls:
                choice["message"] = {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "tool_calls": [c.as_dict() for c in calls],
                }
                choice["finish_reason"] = tool_finish_reason(result.finish_reason)
        choice["logprobs"] = _chat_logprobs(result.tokens) if request.logprobs else None
        kind, prefix = "chat.completion", "chatcmpl-"
    else:
        text = (result.prompt + result.text) if request.return_full_text else result.text
        offset = len(result.prompt) if request.return_full_text else 0
        choice["text"] = text
        choice["logprobs"] = _completion_logprobs(result.tokens, offset) if request.logprobs else None
        kind, prefix = "text_completion", "cmpl-"
    body = {
        "id": prefix + ids.new_id(),
        "object": kind,
        "created": int(ids.now()),
        "model": model,
        "choices": [choice],
        "usage": result.usage(),
        "system_fingerprint": None,
    }
    return 200, body


class OpenAiStream:
    """`data: {chunk}\\n\\n` events in OpenAI's shapes, then (with include_usage) a usage chunk whose
    `choices` is empty, then `data: [DONE]`."""

    media_type = EVENT_STREAM

    def __init__(self, request: TextRequest, result: GenerationResult, model: str, ids: Ids | None = None):
        ids = ids or Ids()
        self.request = request
        self.result = result
        self.chat = request.api == "chat"
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + ids.new_id()
        self.created = int(ids.now())
        self.model = model
        self.offset = 0
        self.tool_stream = ToolStream(request.tools) if self.chat and request.tools is not None else None
        self.call_index = 0

    def _chunk(self, choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [choice] if choice is not None else [],
        }
        if self.request.include_usage:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode("utf-8") + b"\n\n"

    def _choice(self, text: str, tokens: list[TokenEvent], reason: str | None, first: bool = False) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if first else {"content": text}
            choice["delta"] = delta if (text or first) else {}
            choice["logprobs"] = _chat_logprobs(tokens) if self.request.logprobs and tokens else None
        else:
            choice["text"] = text
            choice["logprobs"] = _completion_logprobs(tokens, self.offset) if self.request.logprobs and tokens else None
            self.offset += len(text)
        choice["finish_reason"] = reason
        return choice

    def _calls(self, calls: list[ToolCall]) -> bytes:
        """Each call as OpenAI streams one: its index, id, type and name (arguments ""), then its arguments."""
        out = b""
        for call in calls:
            function = {"name": call.name, "arguments": ""}
            head = {"index": self.call_index, "id": call.id, "type": "function", "function": function}
            pieces = [head, {"index": self.call_index, "function": {"arguments": call.arguments}}]
            for piece in pieces:
                out += self._chunk(
                    {"index": 0, "delta": {"tool_calls": [piece]}, "logprobs": None, "finish_reason": None}
                )
            self.call_index += 1
        return out

    def _tool_event(self, event: TokenEvent, tokens: list[TokenEvent]) -> bytes:
        assert self.tool_stream is not None
        text, calls = self.tool_stream.feed(event.text)
        out = b""
        if event.finished:
            more, last = self.tool_stream.finish()
            text, calls = text + more, calls + last
        if text or (tokens and self.request.logprobs):
            out += self._chunk(self._choice(text, tokens, None))
        out += self._calls(calls)
        if event.finished:
            reason = finish_reason(self.result.finish_reason)
            if self.call_index:
                reason = tool_finish_reason(self.result.finish_reason)
            out += self._chunk(self._choice("", [], reason))
        return out

    def start(self) -> bytes:
        if self.chat:
            return self._chunk(self._choice("", [], None, first=True))
        if self.request.return_full_text and self.result.prompt:
            return self._chunk(self._choice(self.result.prompt, [], None))
        return b""

    def event(self, event: TokenEvent) -> bytes:
        self.result.add(event)
        if self.result.failed:
            _, body = error_object(f"generation failed: {self.result.error or 'unknown error'}", 500)
            return b"data: " + json.dumps(body).encode("utf-8") + b"\n\n"
        tokens = [event] if event.token_id is not None else []
        if self.tool_stream is not None:
            return self._tool_event(event, tokens)
        out = b""
        if event.text or (tokens and self.request.logprobs):
            out += self._chunk(self._choice(event.text, tokens, None))
        if event.finished:
            out += self._chunk(self._choice("", [], finish_reason(self.result.finish_reason)))
        return out

    def end(self) -> bytes:
        out = b""
        if not self.result.finished:
            self.result.finish_reason = "length"
            if self.tool_stream is not None:
                text, calls = self.tool_stream.finish()
                if text:
                    out += self._chunk(self._choice(text, [], None))
                out += self._calls(calls)
            out += self._chunk(self._choice("", [], "length"))
        if self.request.include_usage:
            out += self._chunk(None, self.result.usage())
        return out + DONE


def models_list(model: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": created, "owned_by": "modelhost"}]}


Api = Literal["chat", "completions"]
