"""One request's generated tokens turned into TokenEvents: detokenization, stop conditions, finish reasons."""

from __future__ import annotations

import dataclasses
from collections.abc import Set

from modelhost.worker.engine.detokenizer import Decode, IncrementalDetokenizer
from modelhost.worker.engine.stop import StopMatcher
from modelhost.worker.engine.types import FinishReason, GenerationRequest, TokenEvent, TokenLogProb


class SequenceOutput:
    """Decides, token by token, what text a request emits and when it finishes.

    Finish order for one token: EOS (unless ignore_eos, or fewer than min_new_tokens exist), then a stop
    sequence in the text, then max_new_tokens. The final event carries any text held back.
    """

    def __init__(self, request: GenerationRequest, eos_token_ids: Set[int], decode: Decode) -> None:
        self.request = request
        self._eos = eos_token_ids
        self._detokenizer = IncrementalDetokenizer(decode, request.prompt_token_ids)
        self._stop = StopMatcher(request.params.stop)
        self.token_ids: list[int] = []
        self.finished = False
        self.queue_time_s: float | None = None  # set by the engine when it first schedules the request

    @property
    def generated_tokens(self) -> int:
        return len(self.token_ids)

    def suppress_eos(self) -> bool:
        """Whether EOS must not be sampled yet (min_new_tokens not reached)."""
        return len(self.token_ids) < self.request.params.min_new_tokens

    def add_token(
        self,
        token_id: int,
        log_prob: float | None,
        *,
        token_bytes: bytes | None = None,
        top_log_probs: tuple[TokenLogProb, ...] = (),
        grammar_done: bool = False,
    ) -> TokenEvent:
        """Record a sampled token; returns its event (finished=True when the request ends with it).

        `grammar_done`: the request's grammar is complete with this token, which ends the request as EOS would
        (finish reason eos_token) unless a stop sequence or EOS itself ended it first."""
        params = self.request.params
        self.token_ids.append(token_id)
        reason: FinishReason | None = None
        eos_ends = grammar_done or (not params.ignore_eos and len(self.token_ids) > params.min_new_tokens)
        if token_id in self._eos and eos_ends:
            reason = "eos_token"
            text = self._detokenizer.flush()
            text, _ = self._stop.push(text)
            text += self._stop.flush()
        else:
            text, stopped = self._stop.push(self._detokenizer.push(token_id))
            if stopped:
                reason = "stop_sequence"
            elif grammar_done or len(self.token_ids) >= params.max_new_tokens:
                reason = "eos_token" if grammar_done else "length"
                tail, stopped = self._stop.push(self._detokenizer.flush())
                text += tail
                if stopped:
                    reason = "stop_sequence"
                else:
                    text += self._stop.flush()
        self.finished = reason is not None
        event = self._event(token_id, text, log_prob, reason)
        if token_bytes is None and not top_log_probs:
            return event
        return dataclasses.replace(event, token_bytes=token_bytes, top_log_probs=top_log_probs)

    def end(self, reason: FinishReason, error: str | None = None) -> TokenEvent:
        """The final event of a request ended from outside (abort, error): no token, no further text."""
        self.finished = True
        return TokenEvent(
            request_id=self.request.request_id,
            token_id=None,
            text="",
            log_prob=None,
            finished=True,
            finish_reason=reason,
            prompt_tokens=len(self.request.prompt_token_ids),
            generated_tokens=len(self.token_ids),
            error=error,
            queue_time_s=self.queue_time_s,
        )

    def _event(self, token_id: int, text: str, log_prob: float | None, reason: FinishReason | None) -> TokenEvent:
        return TokenEvent(
            request_id=self.request.request_id,
            token_id=token_id,
            text=text,
            log_prob=log_prob,
            finished=reason is not None,
            finish_reason=reason,
            prompt_tokens=len(self.request.prompt_token_ids),
            generated_tokens=len(self.token_ids),
            queue_time_s=self.queue_time_s,
        )
