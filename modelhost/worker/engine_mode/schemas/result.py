"""A generation's outcome built up from its TokenEvents (pure): text, tokens, finish reason, counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelhost.worker.engine.types import FinishReason, TokenEvent


def token_text(raw: bytes) -> str:
    """A token's bytes as text; bytes of a character split across tokens show as U+FFFD."""
    return raw.decode("utf-8", errors="replace")


@dataclass(slots=True)
class GenerationResult:
    """Everything the response formatters need; `add` each event in order."""

    prompt: str = ""  # the prompt text (for return_full_text / details.inputs)
    prompt_tokens: int = 0
    tokens: list[TokenEvent] = field(default_factory=list)  # events that carry a token, in order
    text_parts: list[str] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    error: str | None = None
    generated_tokens: int = 0

    def add(self, event: TokenEvent) -> None:
        if event.token_id is not None:
            self.tokens.append(event)
        if event.text:
            self.text_parts.append(event.text)
        self.prompt_tokens = max(self.prompt_tokens, event.prompt_tokens)
        self.generated_tokens = max(self.generated_tokens, event.generated_tokens, len(self.tokens))
        if event.finished:
            self.finish_reason = event.finish_reason or ("error" if event.error else "length")
            self.error = event.error

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def failed(self) -> bool:
        return self.finish_reason == "error" or self.error is not None

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.generated_tokens,
            "total_tokens": self.prompt_tokens + self.generated_tokens,
        }
