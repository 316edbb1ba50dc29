"""FakeBackend: a deterministic engine Backend for tests (no model). Importable by worker processes as
MODELHOST_ENGINE_FACTORY=tests.fake_backend:create_backend.

Tokens are bytes (ids 0-255; 256 = BOS, 257 = EOS). Generation emits the words of SCRIPT in turn (ids
1000 + index), honouring max_new_tokens, min_new_tokens, ignore_eos, stop sequences and the limits.
EngineConfig.extra (serving.properties `option.*`) steers it: `fake_eos_after` (emit EOS after N tokens),
`fake_token_delay_ms`; a prompt containing FAIL_MIDWAY fails after two tokens.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

from modelhost.worker.engine.types import (
    Backend,
    EngineConfig,
    GenerationRequest,
    InputTooLong,
    ModelLimits,
    TokenEvent,
)

SCRIPT = tuple(
    ["Deep", "learning", "is", "a", "subset", "of", "machine", "learning"]
    + ["that", "uses", "neural", "networks", "with", "many", "layers"]
)
BOS, EOS = 256, 257


class FakeBackend:
    name = "fake"

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.limits = ModelLimits(
            max_model_len=config.max_model_len,
            max_input_tokens=config.max_input_tokens or config.max_model_len - 1,
            max_batch_size=config.max_batch_size,
        )
        self.eos_token_ids = frozenset({EOS})
        self.eos_after = int(config.extra.get("fake_eos_after", "0") or 0)
        self.delay_s = float(config.extra.get("fake_token_delay_ms", "0") or 0) / 1000
        self.running = 0
        self.waiting = 0
        self.finished = 0
        self.aborted = 0
        self.started = False
        self._slots: asyncio.Semaphore | None = None

    async def start(self) -> None:
        if self.config.extra.get("fake_fail_load"):
            raise RuntimeError(self.config.extra["fake_fail_load"])
        await asyncio.sleep(float(self.config.extra.get("fake_load_s", "0") or 0))
        self._slots = asyncio.Semaphore(self.limits.max_batch_size)
        self.started = True

    async def shutdown(self) -> None:
        self.started = False

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return ([BOS] if add_special_tokens else []) + list(text.encode("utf-8"))

    def decode(self, token_ids: list[int]) -> str:
        return bytes(t for t in token_ids if t < 256).decode("utf-8", "replace")

    def apply_chat_template(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        text = "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages)
        return text + ("<|assistant|>" if add_generation_prompt else "")

    def stats(self) -> dict[str, Any]:
        return {"running": self.running, "waiting": self.waiting, "finished": self.finished, "aborted": self.aborted}

    def _check(self, request: GenerationRequest) -> None:
        n, new = len(request.prompt_token_ids), request.params.max_new_tokens
        if n > self.limits.max_input_tokens or n + new > self.limits.max_model_len:
            raise InputTooLong(n, new, self.limits)

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        self._check(request)  # raised when the iterator is first awaited? no: here, at call time
        return self._generate(request)

    async def _generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        assert self._slots is not None, "start() first"
        params = request.params
        prompt_text = self.decode(list(request.prompt_token_ids))
        n_prompt = len(request.prompt_token_ids)
        rng = random.Random(params.seed)
        self.waiting += 1
        await self._slots.acquire()
        self.waiting -= 1
        self.running += 1
        done = False
        text = ""
        try:
            for i in range(params.max_new_tokens):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                else:
                    await asyncio.sleep(0)
                count = i + 1
                if "FAIL_MIDWAY" in prompt_text and i == 2:
                    done = True
                    yield TokenEvent(
                        request.request_id,
                        None,
                        "",
                        None,
                        True,
                        "error",
                        n_prompt,
                        i,
                        error="the fake engine failed on purpose",
                    )
                    return
                eos_due = self.eos_after and i >= self.eos_after and i >= params.min_new_tokens
                if eos_due and not params.ignore_eos:
                    done = True
                    yield TokenEvent(request.request_id, EOS, "", -0.01, True, "eos_token", n_prompt, count)
                    return
                index = rng.randrange(len(SCRIPT)) if params.do_sample else i % len(SCRIPT)
                piece = " " + SCRIPT[index]
                before = len(text)
                text += piece
                stop_at = min(
                    (
                        text.find(s, max(0, before - len(s)))
                        for s in params.stop
                        if text.find(s, max(0, before - len(s))) >= 0
                    ),
                    default=-1,
                )
                if stop_at >= 0:
                    done = True
                    yield TokenEvent(
                        request.request_id,
                        1000 + index,
                        text[before:stop_at] if stop_at > before else "",
                        -0.5,
                        True,
                        "stop_sequence",
                        n_prompt,
                        count,
                    )
                    return
                last = count == params.max_new_tokens
                done = last
                yield TokenEvent(
                    request.request_id, 1000 + index, piece, -0.5, last, "length" if last else None, n_prompt, count
                )
        finally:
            self.running -= 1
            self._slots.release()
            if done:
                self.finished += 1
            else:
                self.aborted += 1


def create_backend(config: EngineConfig) -> Backend:
    return FakeBackend(config)
