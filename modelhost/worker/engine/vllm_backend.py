"""VLLMBackend (optional, GPUs): the `Backend` contract over vLLM's AsyncLLMEngine, streaming deltas as TokenEvents.

Its stats() and events carry what vLLM itself measures (vllm_stats.py): the scheduler's running/waiting/KV-cache
gauges and each request's queue time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from modelhost.worker.engine.limits import resolve_limits
from modelhost.worker.engine.types import (
    EngineConfig,
    FinishReason,
    GenerationRequest,
    InputTooLong,
    InvalidParameter,
    SamplingParams,
    TokenEvent,
)
from modelhost.worker.engine.vllm_stats import SchedulerSnapshot, queue_time_s, stat_logger_factory

_DTYPES = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def visible_gpu_count(default: int) -> int:
    """GPUs this instance owns, from CUDA_VISIBLE_DEVICES (set by the launcher), else `default`."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return len([d for d in visible.split(",") if d.strip()]) if visible else default


def to_vllm_sampling(params: SamplingParams, eos_ignored: bool) -> dict[str, Any]:
    """vLLM SamplingParams keyword arguments for ours (greedy = temperature 0)."""
    return {
        "max_tokens": params.max_new_tokens,
        "min_tokens": params.min_new_tokens,
        "temperature": params.temperature if params.do_sample else 0.0,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,
        "repetition_penalty": params.repetition_penalty,
        "seed": params.seed,
        "stop": list(params.stop),
        "ignore_eos": eos_ignored,
        "logprobs": 0,
        "output_kind_delta": True,
    }


def refuse_unsupported(params: SamplingParams) -> None:
    """What this adapter does not pass to vLLM yet is refused (a 400 naming it), never silently dropped."""
    if params.constraint is not None:
        raise InvalidParameter(
            f"{params.constraint.param} is not supported on the vllm backend in modelhost yet "
            "(structured outputs run on the built-in engine)",
            params.constraint.param,
        )
    if params.logprobs:
        raise InvalidParameter("top log-probabilities are not supported on the vllm backend yet", "top_logprobs")


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

        args = AsyncEngineArgs(
            model=self.config.model_id_or_path,
            tokenizer=self.config.model_id_or_path,
            dtype=_DTYPES.get(self.config.dtype, "auto"),
            max_model_len=self.limits.max_model_len,
            max_num_seqs=self.limits.max_batch_size,
            tensor_parallel_size=visible_gpu_count(self.config.tensor_parallel_degree),
            trust_remote_code=self.config.trust_remote_code,
        )
        self._engine = self._create_engine(AsyncLLMEngine, args)
        tokenizer = await self._engine.get_tokenizer()
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

        kwargs = to_vllm_sampling(request.params, request.params.ignore_eos)
        kwargs.pop("output_kind_delta")
        sampling = VSamplingParams(**kwargs, output_kind=RequestOutputKind.DELTA)
        inputs = {"prompt_token_ids": list(request.prompt_token_ids)}
        generated = 0
        finished = False
        queued_s: float | None = None
        try:
            async for output in self._engine.generate(inputs, sampling, request.request_id):
                if queued_s is None:
                    queued_s = queue_time_s(getattr(output, "metrics", None))
                completion = output.outputs[0]
                ids = list(completion.token_ids)
                for i, token in enumerate(ids):
                    generated += 1
                    last = output.finished and i == len(ids) - 1
                    log_prob = None
                    if completion.logprobs and i < len(completion.logprobs):
                        log_prob = completion.logprobs[i][token].logprob
                    yield TokenEvent(
                        request_id=request.request_id,
                        token_id=token,
                        text=completion.text if i == len(ids) - 1 else "",
                        log_prob=log_prob,
                        finished=last,
                        finish_reason=_reason(completion.finish_reason, completion.stop_reason) if last else None,
                        prompt_tokens=len(request.prompt_token_ids),
                        generated_tokens=generated,
                        queue_time_s=queued_s,
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
        finally:
            if not finished:
                await self._engine.abort(request.request_id)

    def stats(self) -> dict[str, Any]:
        return {"backend": self.name, "started": self._engine is not None, **self._scheduler.as_stats()}


def _reason(finish_reason: str | None, stop_reason: object) -> FinishReason:
    if finish_reason == "length":
        return "length"
    if finish_reason == "abort":
        return "abort"
    if finish_reason == "stop":
        return "stop_sequence" if isinstance(stop_reason, str) else "eos_token"
    return "error"
