"""The async bridge from a parsed TextRequest to the engine's Backend: template, tokenize, limit, stream.

Every event iterator handed out here is closed (`aclose`) by its consumer, which aborts the request in
the backend and frees its slot when the client goes away. With LlmMetrics, each generation's events pass through
its RequestRecorder as they are received (metrics.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from modelhost.worker.engine.types import Backend, GenerationRequest, SamplingParams, TokenEvent
from modelhost.worker.engine_mode.metrics import LlmMetrics, RequestRecorder
from modelhost.worker.engine_mode.schemas.request import TextRequest


@dataclass(slots=True)
class OpenGeneration:
    """A started generation: its prompt and its events, the first already received (so InputTooLong
    surfaced before any response byte was sent)."""

    prompt: str  # the prompt text (templated for chats)
    prompt_tokens: int
    events: AsyncIterator[TokenEvent]  # the backend's iterator; close it when done
    first: TokenEvent | None  # None when the backend produced no event at all
    recorder: RequestRecorder | None = None  # the request's metrics (already shown `first`)

    async def all_events(self) -> AsyncIterator[TokenEvent]:
        if self.first is not None:
            yield self.first
            if self.first.finished:
                return
        recorder = self.recorder
        async for event in self.events:
            if recorder is not None:
                recorder.observe(event)
            yield event
            if event.finished:
                return
        if recorder is not None:
            recorder.end("error")  # the backend's stream ended without a final event

    async def close(self) -> None:
        if self.recorder is not None:
            self.recorder.end("abort")  # no-op after the final event; otherwise the client went away
        close = getattr(self.events, "aclose", None)
        if close is not None:
            await close()


class TextGenerator:
    """Turns TextRequests into backend GenerationRequests."""

    def __init__(self, backend: Backend, metrics: LlmMetrics | None = None) -> None:
        self.backend = backend
        self.metrics = metrics

    async def prompt(self, request: TextRequest) -> tuple[str, list[int]]:
        """The prompt text and its token ids (chat: the model's chat template, no extra special tokens)."""
        backend = self.backend
        if request.messages is not None:
            text = await asyncio.to_thread(backend.apply_chat_template, request.messages)
            return text, await asyncio.to_thread(backend.encode, text, add_special_tokens=False)
        if request.prompt_token_ids is not None:
            ids = list(request.prompt_token_ids)
            return await asyncio.to_thread(backend.decode, ids), ids
        text = request.prompt or ""
        ids = await asyncio.to_thread(backend.encode, text)
        if request.truncate is not None and len(ids) > request.truncate:
            ids = ids[-request.truncate :]
        return text, ids

    def sampling(self, request: TextRequest, prompt_tokens: int) -> SamplingParams:
        """The request's params; with no max tokens given, as many as the model's length limit leaves."""
        if not request.fill_to_limit:
            return request.params
        room = self.backend.limits.max_model_len - prompt_tokens
        return dataclasses.replace(request.params, max_new_tokens=max(room, 1))

    async def open(self, request: TextRequest) -> OpenGeneration:
        """Start generating; raises InputTooLong (from the backend) before returning. A request refused here is
        not recorded in the metrics: it never reached the engine."""
        recorder = self.metrics.request() if self.metrics is not None else None
        text, ids = await self.prompt(request)
        if recorder is not None:
            recorder.prompt_tokens = len(ids)
        generation = GenerationRequest(
            request_id=uuid.uuid4().hex, prompt_token_ids=tuple(ids), params=self.sampling(request, len(ids))
        )
        events = self.backend.generate(generation)
        try:
            first = await anext(events, None)
        except BaseException as exc:
            if recorder is not None and not isinstance(exc, ValueError):  # refusals (InputTooLong) never started
                recorder.end("abort" if isinstance(exc, asyncio.CancelledError) else "error")
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
            raise
        if recorder is not None and first is not None:
            recorder.observe(first)
        return OpenGeneration(prompt=text, prompt_tokens=len(ids), events=events, first=first, recorder=recorder)
