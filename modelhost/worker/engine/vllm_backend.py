"""VLLMBackend (optional, GPUs): the `Backend` contract over vLLM's AsyncLLMEngine, streaming deltas as TokenEvents.

Its stats() and events carry what vLLM itself measures (vllm_stats.py): the scheduler's running/waiting/KV-cache
gauges and each request's queue time.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from modelhost.worker.engine.limits import resolve_limits
from modelhost.worker.engine.types import (
    EngineConfig,
    FinishReason,
    GenerationRequest,
    InputTooLong,
    InvalidParameter,
    ModelLimits,
    SamplingParams,
    TokenEvent,
    TokenLogProb,
)
from modelhost.worker.engine.vllm_stats import SchedulerSnapshot, queue_time_s, stat_logger_factory

_DTYPES = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_CONTEXT_TOKENS = 4  # tokens of context split_text decodes before a delta's tokens


def visible_gpu_count(default: int) -> int:
    """GPUs this instance owns, from CUDA_VISIBLE_DEVICES (set by the launcher), else `default`."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return len([d for d in visible.split(",") if d.strip()]) if visible else default


def engine_arguments(config: EngineConfig, limits: ModelLimits) -> dict[str, Any]:
    """AsyncEngineArgs keyword arguments: the model, limits and GPUs, and LMI's vLLM options when given
    (option.gpu_memory_utilization, a share of each GPU's memory; option.enforce_eager, no CUDA graphs).
    Raises ValueError naming a bad option."""
    arguments: dict[str, Any] = {
        "model": config.model_id_or_path,
        "tokenizer": config.model_id_or_path,
        "dtype": _DTYPES.get(config.dtype, "auto"),
        "max_model_len": limits.max_model_len,
        "max_num_seqs": limits.max_batch_size,
        "tensor_parallel_size": visible_gpu_count(config.tensor_parallel_degree),
        "trust_remote_code": config.trust_remote_code,
    }
    share = config.extra.get("gpu_memory_utilization")
    if share is not None:
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not 0 < value <= 1:
            raise ValueError(f"option.gpu_memory_utilization={share!r} must be a number in (0, 1]")
        arguments["gpu_memory_utilization"] = value
    eager = config.extra.get("enforce_eager")
    if eager is not None:
        if eager.strip().lower() not in ("true", "false"):
            raise ValueError(f"option.enforce_eager={eager!r} must be true or false")
        arguments["enforce_eager"] = eager.strip().lower() == "true"
    return arguments


def to_vllm_sampling(params: SamplingParams, eos_ignored: bool) -> dict[str, Any]:
    """vLLM SamplingParams keyword arguments for ours (greedy = temperature 0). `logprobs` is the number of top
    alternatives vLLM returns besides the chosen token (0: the chosen token's log-probability only)."""
    return {
        "max_tokens": params.max_new_tokens,
        "min_tokens": params.min_new_tokens,
        "temperature": params.temperature if params.do_sample else 0.0,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,
        "min_p": params.min_p,
        "logit_bias": dict(params.logit_bias) or None,
        "repetition_penalty": params.repetition_penalty,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
        "seed": params.seed,
        "stop": list(params.stop),
        "ignore_eos": eos_ignored,
        "logprobs": params.logprobs or 0,
        "output_kind_delta": True,
    }


def structured_outputs(params: SamplingParams) -> dict[str, Any] | None:
    """vLLM's structured-outputs keyword arguments (StructuredOutputsParams) for the request's constraint: the
    JSON schema, any JSON object, or the regex it was compiled from (compact JSON is an engine setting: see
    VLLMBackend.start). None without a constraint; InvalidParameter for one vLLM cannot take (tool calls)."""
    constraint = params.constraint
    if constraint is None:
        return None
    if constraint.kind == "json_object":
        return {"json_object": True}
    if constraint.kind == "json_schema" and constraint.source is not None:
        return {"json": json.loads(constraint.source)}
    if constraint.kind == "regex" and constraint.source is not None:
        return {"regex": constraint.source}
    raise InvalidParameter(
        f"{constraint.param} is not supported on the vllm backend in modelhost (a {constraint.kind} grammar runs "
        "on the built-in engine only)",
        constraint.param,
    )


def refuse_unsupported(params: SamplingParams) -> None:
    """What this adapter cannot pass to vLLM is refused (a 400 naming it), never silently dropped."""
    structured_outputs(params)
    if params.typical_p != 1.0:
        raise InvalidParameter(
            "typical_p is not supported on the vllm backend (vLLM has no typical decoding)", "typical_p"
        )


def step_log_probs(
    entry: Mapping[int, Any], token: int, top: int
) -> tuple[float | None, bytes, tuple[TokenLogProb, ...]]:
    """One position of vLLM's logprobs (token id -> Logprob with logprob, rank, decoded_token): the chosen token's
    log-probability and bytes, and the `top` most likely tokens best first (vLLM adds the chosen token to its
    top-k when it is not among them; it is left out of the alternatives then, as the built-in engine does)."""
    chosen = entry.get(token)
    ranked = sorted(
        ((token_id, item) for token_id, item in entry.items() if item.rank is not None and item.rank <= top),
        key=lambda pair: pair[1].rank,
    )
    alternatives = tuple(TokenLogProb(token_id, _bytes(item), float(item.logprob)) for token_id, item in ranked)
    if chosen is None:
        return None, b"", alternatives[:top]
    return float(chosen.logprob), _bytes(chosen), alternatives[:top]


def _bytes(item: Any) -> bytes:
    """A token's text as vLLM decoded it (a byte of a character split across tokens comes back as U+FFFD)."""
    text = item.decoded_token
    return text.encode("utf-8") if isinstance(text, str) else b""


class VLLMBackend:
    """Backend over vLLM (tensor_parallel_size = the instance's GPUs)."""

    name = "vllm"

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.limits = resolve_limits(config, None)
        self.eos_token_ids: frozenset[int] = frozenset()
        self._engine: Any = None
        self._tokenizer: Any = None
        self._scheduler = SchedulerSnapshot()

    async def start(self) -> None:
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        arguments = engine_arguments(self.config, self.limits)
        if "structured_outputs_config" in getattr(AsyncEngineArgs, "__dataclass_fields__", {}):
            from vllm.config import StructuredOutputsConfig

            # llguidance (as the built-in engine) with compact JSON; vLLM >= 0.11 sets whitespace per engine
            arguments["structured_outputs_config"] = StructuredOutputsConfig(
                backend="guidance", disable_any_whitespace=True
            )
        args = AsyncEngineArgs(**arguments)
        self._engine = self._create_engine(AsyncLLMEngine, args)
        tokenizer = self._engine.get_tokenizer()
        if inspect.isawaitable(tokenizer):  # a coroutine before vLLM 0.11 or so, a plain call since
            tokenizer = await tokenizer
        self._tokenizer = tokenizer
        if tokenizer.eos_token_id is not None:
            self.eos_token_ids = frozenset({int(tokenizer.eos_token_id)})

    def _create_engine(self, engine_class: Any, args: Any) -> Any:
        """The engine, with a stat logger that keeps the scheduler snapshot when this vLLM (v1) takes one."""
        tap = stat_logger_factory(self._scheduler, engine_class)
        if tap is None:
            return engine_class.from_engine_args(args)
        return engine_class.from_engine_args(args, stat_loggers=[tap])

    async def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None and hasattr(engine, "shutdown"):
            engine.shutdown()

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))

    def decode(self, token_ids: list[int]) -> str:
        return str(self._tokenizer.decode(token_ids, skip_special_tokens=True))

    def apply_chat_template(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        template = self._tokenizer.apply_chat_template
        text = template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        return str(text)

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        refuse_unsupported(request.params)
        prompt, new = len(request.prompt_token_ids), request.params.max_new_tokens
        if prompt > self.limits.max_input_tokens or prompt + new > self.limits.max_model_len:
            raise InputTooLong(prompt, new, self.limits)
        return self._stream(request)

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = request.params
        kwargs = to_vllm_sampling(params, params.ignore_eos)
        kwargs.pop("output_kind_delta")
        constraint = structured_outputs(params)
        if constraint is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(**constraint)
        try:
            sampling = VSamplingParams(**kwargs, output_kind=RequestOutputKind.DELTA)
        except Exception as exc:
            raise _refused(exc) from exc
        inputs = {"prompt_token_ids": list(request.prompt_token_ids)}
        generated = 0
        finished = False
        started = False  # vLLM validates the request when it is added, before its first output
        recent: list[int] = []  # the last generated tokens, context for split_text
        queued_s: float | None = None
        try:
            async for output in self._engine.generate(inputs, sampling, request.request_id):
                started = True
                if queued_s is None:
                    queued_s = queue_time_s(getattr(output, "metrics", None))
                completion = output.outputs[0]
                ids = list(completion.token_ids)
                texts = split_text(completion.text, ids, self.decode, recent)
                recent = (recent + ids)[-_CONTEXT_TOKENS:]
                for i, token in enumerate(ids):
                    generated += 1
                    last = output.finished and i == len(ids) - 1
                    log_prob, token_bytes = None, None
                    top: tuple[TokenLogProb, ...] = ()
                    if completion.logprobs and i < len(completion.logprobs):
                        log_prob, raw, top = step_log_probs(completion.logprobs[i], token, params.logprobs or 0)
                        token_bytes = raw if params.logprobs is not None else None
                    yield TokenEvent(
                        request_id=request.request_id,
                        token_id=token,
                        text=texts[i],
                        log_prob=log_prob,
                        finished=last,
                        finish_reason=_reason(completion.finish_reason, completion.stop_reason) if last else None,
                        prompt_tokens=len(request.prompt_token_ids),
                        generated_tokens=generated,
                        queue_time_s=queued_s,
                        token_bytes=token_bytes,
                        top_log_probs=top,
                    )
                if output.finished:
                    finished = True
                    if not ids:
                        yield TokenEvent(
                            request.request_id,
                            None,
                            completion.text,
                            None,
                            True,
                            _reason(completion.finish_reason, completion.stop_reason),
                            len(request.prompt_token_ids),
                            generated,
                            queue_time_s=queued_s,
                        )
                    return
        except Exception as exc:
            if started:
                raise
            raise _refused(exc) from exc
        finally:
            if not finished:
                await self._engine.abort(request.request_id)

    def stats(self) -> dict[str, Any]:
        return {"backend": self.name, "started": self._engine is not None, **self._scheduler.as_stats()}


def split_text(
    text: str, token_ids: Sequence[int], decode: Callable[[list[int]], str], context: Sequence[int]
) -> list[str]:
    """The text vLLM gave for several tokens at once (its delta output), cut at each token's boundary by decoding
    the tokens one more at a time after `context` (the tokens just before them, for the spacing of tokenizers
    that decode a leading space only after a previous token). Where the pieces do not add up to `text` (a stop
    string cut it, detokenization differs) all of it goes to the last token, as vLLM delivered it."""
    if len(token_ids) < 2:
        return [text]
    base = list(context)
    before = decode(base)
    pieces = []
    for i in range(len(token_ids)):
        now = decode([*base, *token_ids[: i + 1]])
        if not now.startswith(before):
            break
        pieces.append(now[len(before) :])
        before = now
    if len(pieces) == len(token_ids) and "".join(pieces) == text:
        return pieces
    return [""] * (len(token_ids) - 1) + [text]


def refusal(exc: BaseException) -> InvalidParameter | None:
    """vLLM's refusal of a request (a parameter out of its range, a token id outside the vocabulary, a schema its
    structured outputs reject) as InvalidParameter, a 4xx naming vLLM's parameter; None for any other error.
    Current vLLM raises VLLMValidationError, a VLLMClientError and not a ValueError; older ones ValueError."""
    if isinstance(exc, InvalidParameter):
        return exc
    client = any(cls.__name__ == "VLLMClientError" for cls in type(exc).__mro__)
    if not client and not isinstance(exc, ValueError):
        return None
    param = getattr(exc, "parameter", None)
    return InvalidParameter(f"vLLM refused the request: {exc}", str(param) if param else "request")


def _refused(exc: Exception) -> Exception:
    """`exc` as a refusal when it is one, else itself (re-raised as it came)."""
    refused = refusal(exc)
    return refused if refused is not None else exc


def _reason(finish_reason: str | None, stop_reason: object) -> FinishReason:
    if finish_reason == "length":
        return "length"
    if finish_reason == "abort":
        return "abort"
    if finish_reason == "stop":
        return "stop_sequence" if isinstance(stop_reason, str) else "eos_token"
    return "error"
