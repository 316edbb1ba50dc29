"""Driving a started Backend from synchronous tests: chat prompts, collected event streams."""

from __future__ import annotations

import asyncio

from modelhost.worker.engine.types import Backend, GenerationRequest, SamplingParams, TokenEvent


def prompt_ids(backend: Backend, question: str) -> tuple[int, ...]:
    text = backend.apply_chat_template([{"role": "user", "content": question}])
    return tuple(backend.encode(text, add_special_tokens=False))


async def collect(backend: Backend, request: GenerationRequest) -> list[TokenEvent]:
    return [event async for event in backend.generate(request)]


def generate(backend: Backend, request: GenerationRequest) -> list[TokenEvent]:
    return asyncio.run(collect(backend, request))


def greedy(max_new_tokens: int, **kwargs: object) -> SamplingParams:
    return SamplingParams(max_new_tokens=max_new_tokens, **kwargs)  # type: ignore[arg-type]
