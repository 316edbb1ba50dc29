"""TGI's `/invocations` (compat generate) schema: a one-element list when not streaming, SSE
`data:{json}\\n\\n` events when streaming, `{"error", "error_type"}` errors (PROTOCOL §7.1).

Requests have the LMI shape and are parsed by `lmi.parse_generate(..., "tgi")`.
"""

from __future__ import annotations

import json
from typing import Any

from modelhost.worker.engine.types import InputTooLong, TokenEvent, TokenLogProb
from modelhost.worker.engine_mode.schemas.lmi import generated_text, top_n_tokens
from modelhost.worker.engine_mode.schemas.request import RequestError, TextRequest
from modelhost.worker.engine_mode.schemas.result import GenerationResult, token_text

EVENT_STREAM = "text/event-stream"
VALIDATION_STATUS = 422
GENERATION_STATUS = 424


def error_body(message: str, error_type: str, status: int) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, "error_type": error_type}


def request_error(exc: RequestError | InputTooLong) -> tuple[int, dict[str, Any]]:
    return error_body(str(exc), "validation", VALIDATION_STATUS)


def _token(event: TokenEvent, special_ids: frozenset[int]) -> dict[str, Any]:
    return {
        "id": event.token_id,
        "text": event.text,
        "logprob": event.log_prob,
        "special": event.token_id in special_ids,
    }


def _alternative(candidate: TokenLogProb, special_ids: frozenset[int]) -> dict[str, Any]:
    return {
        "id": candidate.token_id,
        "text": token_text(candidate.token_bytes),
        "logprob": candidate.log_prob,
        "special": candidate.token_id in special_ids,
    }


def response(
    result: GenerationResult, request: TextRequest, special_ids: frozenset[int] = frozenset()
) -> tuple[int, list[dict[str, Any]] | dict[str, Any]]:
    """A one-element list, as TGI's compat route answers (`details` only when asked)."""
    if result.failed:
        return error_body(f"generation failed: {result.error or 'unknown error'}", "generation", GENERATION_STATUS)
    item: dict[str, Any] = {"generated_text": generated_text(result, request)}
    if request.details:
        item["details"] = {
            "finish_reason": result.finish_reason,
            "generated_tokens": result.generated_tokens,
            "seed": request.params.seed,
            "prefill": [],
            "tokens": [_token(t, special_ids) for t in result.tokens],
        }
        if top_n_tokens(request):  # TGI: one list per generated token, the top_n_tokens most likely first
            item["details"]["top_tokens"] = [
                [_alternative(c, special_ids) for c in t.top_log_probs] for t in result.tokens
            ]
    return 200, [item]


class TgiStream:
    """SSE events `{"index", "token", "top_tokens", "generated_text": null, "details": null}`; the last one
    carries generated_text and details {finish_reason, generated_tokens, seed, input_length}. `top_tokens` is the
    list of the step's most likely tokens with `parameters.top_n_tokens`, else null."""

    media_type = EVENT_STREAM

    def __init__(self, request: TextRequest, result: GenerationResult, special_ids: frozenset[int] = frozenset()):
        self.request = request
        self.result = result
        self.special_ids = special_ids
        self.index = 0

    def start(self) -> bytes:
        return b""

    def event(self, event: TokenEvent) -> bytes:
        self.result.add(event)
        if self.result.failed:
            return _sse(
                {"error": f"generation failed: {self.result.error or 'unknown error'}", "error_type": "generation"}
            )
        if not event.finished and event.token_id is None:
            return b""
        top: list[dict[str, Any]] | None = None
        if event.token_id is not None:
            token = _token(event, self.special_ids)
            if top_n_tokens(self.request):
                top = [_alternative(c, self.special_ids) for c in event.top_log_probs]
        else:
            token = {"id": -1, "text": "", "logprob": None, "special": True}
        self.index += 1
        data: dict[str, Any] = {
            "index": self.index,
            "token": token,
            "top_tokens": top,
            "generated_text": None,
            "details": None,
        }
        if event.finished:
            data["generated_text"] = generated_text(self.result, self.request)
            data["details"] = {
                "finish_reason": self.result.finish_reason,
                "generated_tokens": self.result.generated_tokens,
                "seed": self.request.params.seed,
                "input_length": self.result.prompt_tokens,
            }
        return _sse(data)

    def end(self) -> bytes:
        if self.result.finished:
            return b""
        return _sse({"error": "the generation ended without a final token", "error_type": "generation"})


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data:" + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"
