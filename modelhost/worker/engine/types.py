"""The engine's contract with the worker's HTTP layer: requests in, token events out.

Every backend (the built-in continuous-batching engine over transformers or llama.cpp, or vLLM's own
engine on GPUs) implements `Backend`. The HTTP layer (schemas for LMI, TGI and OpenAI) only ever sees
these types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FinishReason = Literal["length", "eos_token", "stop_sequence", "error", "abort"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request generation settings (LMI/TGI `parameters`, OpenAI fields map onto these)."""

    max_new_tokens: int = 30  # tokens to generate at most
    min_new_tokens: int = 0  # EOS is ignored until this many tokens exist (benchmarks use it)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    repetition_penalty: float = 1.0  # 1.0: none
    frequency_penalty: float = 0.0  # OpenAI's: minus this times a token's count among the generated tokens (0: none)
    presence_penalty: float = 0.0  # OpenAI's: minus this once a token is among the generated tokens (0: none)
    typical_p: float = 1.0  # typical decoding's mass (TGI/transformers); 1.0: off; applies to sampled rows only
    min_p: float = 0.0  # drop tokens less likely than min_p x the most likely one (vLLM's); 0: off; sampled rows
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, value added to its logit), OpenAI's logit_bias
    do_sample: bool = False  # False: greedy, whatever temperature says
    seed: int | None = None  # per-request RNG seed; same seed + same prompt = same sample
    stop: tuple[str, ...] = ()  # stop sequences; the text stops before them
    ignore_eos: bool = False
    constraint: Constraint | None = None  # grammar the output must follow (structured outputs; engine/grammar.py)
    logprobs: int | None = None  # None: only the chosen token's log_prob; k >= 0: also its bytes and the k most
    # likely tokens (TokenEvent.token_bytes / top_log_probs)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A grammar for llguidance (its top-level grammar JSON), built and validated by the HTTP layer."""

    grammar: str
    param: str  # the request field it came from ("response_format", "parameters.grammar"), for errors
    kind: str = "json_schema"  # json_schema | json_object | regex | tool_calls
    source: str | None = None  # what the grammar was compiled from: the schema's JSON text, the regex (for
    # backends that compile it themselves, as vLLM does); None for json_object and tool_calls


@dataclass(frozen=True, slots=True)
class TokenLogProb:
    """One candidate token and its log-probability (the model's log-softmax; see sampling.sample)."""

    token_id: int
    token_bytes: bytes
    log_prob: float


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    prompt_token_ids: tuple[int, ...]  # already templated and tokenized by the HTTP layer (Backend.encode)
    params: SamplingParams
    priority: int = 0


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token, or the end of a request (then `finished` is True)."""

    request_id: str
    token_id: int | None  # None on a final event that carries no token (error, abort, stop)
    text: str  # the new text this token adds (may be "" while a multi-byte character is incomplete)
    log_prob: float | None
    finished: bool = False
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    generated_tokens: int = 0  # counted so far, this token included
    error: str | None = None
    queue_time_s: float | None = None  # seconds the request waited before the engine first scheduled it (its
    # prompt's first chunk ran); None while it has not been scheduled, or when the backend does not measure it
    token_bytes: bytes | None = None  # the token's own bytes, when SamplingParams.logprobs is set
    top_log_probs: tuple[TokenLogProb, ...] = ()  # the most likely tokens at this step, best first (logprobs=k)


@dataclass(frozen=True, slots=True)
class ModelLimits:
    max_model_len: int  # prompt + generated tokens per sequence
    max_input_tokens: int  # longest prompt accepted
    max_batch_size: int  # sequences generated together (option.max_rolling_batch_size)


class InvalidParameter(ValueError):
    """A request parameter the backend cannot honour; becomes a 400 naming `param`."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class InputTooLong(ValueError):
    """A prompt (or prompt + max_new_tokens) exceeds the model's limits; becomes a 4xx naming them."""

    def __init__(self, prompt_tokens: int, max_new_tokens: int, limits: ModelLimits) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.limits = limits
        super().__init__(
            f"Input has {prompt_tokens} tokens and asks for {max_new_tokens} new tokens; this model allows at most "
            f"{limits.max_input_tokens} input tokens and {limits.max_model_len} tokens in total "
            "(option.max_model_len / MAX_INPUT_LENGTH / MAX_TOTAL_TOKENS)."
        )


class Backend(Protocol):
    """A generation backend. Methods other than `generate` may block briefly (tokenizer work)."""

    name: str  # "transformers", "llama.cpp", "vllm"
    limits: ModelLimits
    eos_token_ids: frozenset[int]

    async def start(self) -> None:
        """Load the model and start the engine loop."""

    async def shutdown(self) -> None: ...

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, token_ids: list[int]) -> str: ...

    def apply_chat_template(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for a chat, using the model's own chat template."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        """Stream the request's tokens as they are made. Closing the iterator early (client gone) aborts the
        request and frees its slot. Raises InputTooLong before the first event when the prompt does not fit."""

    def stats(self) -> dict[str, Any]:
        """Counters and gauges for /_modelhost/stats, /metrics and logs. Safe to call from any thread. Keys the
        LLM metrics read when present: "running" and "waiting" (requests), "kv_cache_usage" (0..1)."""


@dataclass(slots=True)
class EngineConfig:
    """Settings of engine mode, from serving.properties / the TGI environment."""

    model_id_or_path: str  # a local folder, a GGUF file, or a model id resolved by the registry
    backend: str = "auto"  # auto | transformers | llama.cpp | vllm, or an alias of one (engine/backends.py)
    dtype: str = "auto"  # auto | fp32 | bf16 | fp16
    max_batch_size: int = 16  # option.max_rolling_batch_size
    max_model_len: int = 2048  # option.max_model_len / MAX_TOTAL_TOKENS
    max_input_tokens: int | None = None  # MAX_INPUT_LENGTH; default max_model_len - 1
    kv_cache_budget_bytes: int | None = None  # KV cache memory budget; None: sized from the limits
    tensor_parallel_degree: int = 1
    trust_remote_code: bool = False
    gguf_file: str | None = None  # the GGUF to load when the model is a GGUF (llama.cpp, or transformers)
    extra: dict[str, str] = field(default_factory=dict)  # other options, passed through
