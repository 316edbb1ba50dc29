"""The engine loop: a dedicated thread runs schedule → runner step → sample → update and streams TokenEvents.

Requests and aborts cross into the thread through a thread-safe queue; events cross back to each request's
asyncio queue with `loop.call_soon_threadsafe`, one callback per loop per step. The asyncio side never
touches torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Set
from dataclasses import dataclass
from typing import Any

import torch

from modelhost.worker.engine.detokenizer import Decode
from modelhost.worker.engine.grammar import GrammarRuntime, RowMatcher
from modelhost.worker.engine.prefix_cache import PrefixCache
from modelhost.worker.engine.runners.base import ModelRunner, RunnerEntry
from modelhost.worker.engine.sampling import RowSampling, is_greedy, make_generator, sample_rows
from modelhost.worker.engine.scheduler import Scheduler, SchedulerConfig, StepPlan, StepResult
from modelhost.worker.engine.sequence import SequenceOutput
from modelhost.worker.engine.types import (
    GenerationRequest,
    InputTooLong,
    InvalidParameter,
    ModelLimits,
    TokenEvent,
    TokenLogProb,
)

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Active:
    """A request inside the engine thread."""

    output: SequenceOutput
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[TokenEvent]
    generator: torch.Generator | None
    queued_s: float  # perf_counter when submitted; its wait ends when a step first runs its prompt
    matcher: RowMatcher | None = None  # the request's grammar state (structured outputs), made in the engine thread


@dataclass(frozen=True, slots=True)
class _Submit:
    seq_id: int
    active: _Active


@dataclass(frozen=True, slots=True)
class _Abort:
    seq_id: int


_STOP = object()
_Pick = tuple[int, float, list[tuple[int, float]]]  # a sampled token, its log-probability, the top alternatives


class TokenStream:
    """AsyncIterator of one request's TokenEvents; closing it (or dropping it) before the end aborts it."""

    def __init__(self, engine: Engine, seq_id: int, events: asyncio.Queue[TokenEvent]) -> None:
        self._engine = engine
        self._seq_id = seq_id
        self._events = events
        self._done = False

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._events.get()
        except BaseException:  # cancelled: the client is gone
            self._abort()
            raise
        if event.finished:
            self._done = True
        return event

    async def aclose(self) -> None:
        self._abort()

    def _abort(self) -> None:
        if not self._done:
            self._done = True
            self._engine.abort(self._seq_id)

    def __del__(self) -> None:
        self._abort()


class Engine:
    """Continuous batching over a ModelRunner in its own thread (see the module docstring)."""

    def __init__(
        self,
        runner: ModelRunner,
        *,
        limits: ModelLimits,
        scheduler_config: SchedulerConfig,
        eos_token_ids: Set[int],
        decode: Decode,
        prefix_cache: PrefixCache | None = None,
        grammar: GrammarRuntime | None = None,
    ) -> None:
        self.runner = runner
        self._grammar = grammar or GrammarRuntime(None, eos_token_ids, lambda ids: decode(ids))
        self.limits = limits
        self.scheduler_config = scheduler_config
        self._prefix_cache = prefix_cache
        self._scheduler = Scheduler(scheduler_config, on_admit=None if prefix_cache is None else self._restore_prefix)
        self._eos = frozenset(eos_token_ids)
        self._decode = decode
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._active: dict[int, _Active] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._counters = {"steps": 0, "tokens_generated": 0, "prompt_tokens": 0, "requests_finished": 0}
        self._constrained_tokens = 0  # tokens sampled under a grammar's mask
        self._grammar_mask_s = 0.0  # seconds spent computing those masks (engine thread)
        self._last_step_s = 0.0
        self._step_started_s: float | None = None  # perf_counter at the start of the step running now
        self._gauges: dict[str, int] = {}
        self._publish()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelhost-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """End the loop; requests still in flight get a final `abort` event."""
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout_s)
            self._thread = None

    def submit(self, request: GenerationRequest) -> TokenStream:
        """Queue a request from a running event loop; raises InputTooLong / ValueError before any event."""
        self.check(request)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[TokenEvent] = asyncio.Queue()
        generator = None if is_greedy(request.params) else make_generator(request.params.seed)
        active = _Active(SequenceOutput(request, self._eos, self._decode), loop, events, generator, time.perf_counter())
        seq_id = next(self._ids)
        self._inbox.put(_Submit(seq_id, active))
        return TokenStream(self, seq_id, events)

    def check(self, request: GenerationRequest) -> None:
        prompt, params = len(request.prompt_token_ids), request.params
        if prompt == 0:
            raise ValueError("the prompt is empty")
        if params.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        vocab = self.runner.vocab_size
        if not all(0 <= token < vocab for token in request.prompt_token_ids):
            # refused here, before it joins a batch: an id outside the embedding fails the whole step
            raise ValueError(f"prompt token ids must be from 0 to {vocab - 1} (the model's vocabulary)")
        if not all(0 <= token < vocab for token, _ in params.logit_bias):
            raise InvalidParameter(
                f"logit_bias token ids must be from 0 to {vocab - 1} (the model's vocabulary)", "logit_bias"
            )
        limits = self.limits
        if prompt > limits.max_input_tokens or prompt + params.max_new_tokens > limits.max_model_len:
            raise InputTooLong(prompt, params.max_new_tokens, limits)

    def abort(self, seq_id: int) -> None:
        """Thread-safe; the sequence leaves at the next step and its slot is freed."""
        self._inbox.put(_Abort(seq_id))

    def stats(self) -> dict[str, Any]:
        """A snapshot published by the engine thread after each change (safe to call from any thread)."""
        return {
            **self._gauges,
            "max_batch_size": self.scheduler_config.max_batch_size,
            "kv_budget_tokens": self.scheduler_config.kv_budget_tokens,
            "runner": self.runner.name,
            "dtype": self.runner.dtype,
            "last_step_ms": round(self._last_step_s * 1000, 3),
            "current_step_s": self.current_step_s(),
            "kv_cache_usage": self._kv_cache_usage(),
            **self._prefix_stats(),
            **self._counters,
            "constrained_tokens": self._constrained_tokens,
            "grammar_mask_ms_total": round(self._grammar_mask_s * 1000, 3),
        }

    def _kv_cache_usage(self) -> float:
        """The share of the KV budget that running sequences hold (reservations are what admission is bounded by:
        a request waits when its reservation does not fit)."""
        budget = self.scheduler_config.kv_budget_tokens
        return self._gauges.get("kv_reserved_tokens", 0) / budget if budget > 0 else 0.0

    def current_step_s(self) -> float:
        """How long the step running now has been running; 0.0 between steps (safe from any thread)."""
        started = self._step_started_s
        return 0.0 if started is None else round(time.perf_counter() - started, 3)

    def _publish(self) -> None:
        scheduler = self._scheduler
        self._gauges = {
            "running": scheduler.num_running,
            "waiting": scheduler.num_waiting,
            "kv_reserved_tokens": scheduler.reserved_tokens,
            "kv_cached_tokens": scheduler.cached_tokens,
            "kv_cache_bytes": self.runner.kv_cache_bytes,
        }

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            block = not self._scheduler.has_work
            try:
                while True:
                    message = self._inbox.get(block=block)
                    block = False
                    if message is _STOP:
                        self._shutdown()
                        return
                    self._receive(message)
            except queue.Empty:
                pass
            self._publish()
            plan = self._scheduler.schedule()
            if not plan.empty:
                self._step_started_s = time.perf_counter()
                try:
                    self._step(plan)
                except Exception:  # the loop must survive anything a step does
                    logger.exception("engine step failed outside the model forward")
                finally:
                    self._step_started_s = None

    def _receive(self, message: object) -> None:
        if isinstance(message, _Submit):
            request = message.active.output.request
            if request.params.constraint is not None and not self._attach_matcher(message.active):
                return
            self._active[message.seq_id] = message.active
            self._scheduler.add(message.seq_id, len(request.prompt_token_ids), request.params.max_new_tokens)
            self._counters["prompt_tokens"] += len(request.prompt_token_ids)
        elif isinstance(message, _Abort) and message.seq_id in self._active:
            slot = self._scheduler.abort(message.seq_id)
            if slot is not None:
                self.runner.release(slot)
            active = self._active.pop(message.seq_id)
            _deliver({active.loop: [(active.events, active.output.end("abort"))]})

    def _attach_matcher(self, active: _Active) -> bool:
        """Give a constrained request its grammar matcher; on failure it ends with an error event at once."""
        constraint = active.output.request.params.constraint
        assert constraint is not None
        try:
            active.matcher = self._grammar.matcher(constraint)
        except Exception as exc:
            logger.warning("grammar refused in the engine: %s", exc)
            _deliver({active.loop: [(active.events, active.output.end("error", str(exc)))]})
            return False
        return True

    def _step(self, plan: StepPlan) -> None:
        started = time.perf_counter()
        self._mark_scheduled(plan, started)
        entries, sampled = self._entries(plan)
        outbox: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[TokenEvent], TokenEvent]]] = {}
        finished: set[int] = set()
        try:
            logits = self.runner.forward(entries)
        except Exception as exc:
            logger.exception("engine step failed; failing its %d requests", len(entries))
            for seq_id in [c.seq_id for c in plan.prefills] + [d.seq_id for d in plan.decodes]:
                active = self._active[seq_id]
                outbox.setdefault(active.loop, []).append((active.events, active.output.end("error", str(exc))))
                finished.add(seq_id)
        else:
            self._store_prefixes(plan)
            for seq_id, picked in zip(sampled, self._sample(logits, sampled), strict=True):
                active = self._active[seq_id]
                try:
                    if isinstance(picked, Exception):
                        raise picked
                    event = self._emit(active, picked)
                except Exception as exc:
                    logger.exception("request output failed")
                    event = active.output.end("error", str(exc))
                else:
                    self._counters["tokens_generated"] += 1
                outbox.setdefault(active.loop, []).append((active.events, event))
                if event.finished:
                    finished.add(seq_id)
        for slot in self._scheduler.update(plan, StepResult(frozenset(finished))):
            self.runner.release(slot)
        for seq_id in finished:
            del self._active[seq_id]
        self._counters["requests_finished"] += len(finished)
        self._counters["steps"] += 1
        _deliver(outbox)
        self._last_step_s = time.perf_counter() - started
        self._publish()

    def _mark_scheduled(self, plan: StepPlan, started_s: float) -> None:
        """A request's time in the queue ends when the first step that runs its prompt starts."""
        for chunk in plan.prefills:
            active = self._active[chunk.seq_id]
            if active.output.queue_time_s is None:  # its first chunk (which a prefix-cache hit may not start at 0)
                active.output.queue_time_s = started_s - active.queued_s

    def _restore_prefix(self, seq_id: int, slot: int) -> int:
        """At admission: copy the cached blocks the prompt starts with into its slot (Scheduler.on_admit)."""
        if self._prefix_cache is None:
            return 0
        try:
            return self._prefix_cache.restore(slot, self._active[seq_id].output.request.prompt_token_ids)
        except Exception:  # the prompt is prefilled whole instead
            logger.exception("prefix cache: restoring a prompt's blocks failed")
            return 0

    def _store_prefixes(self, plan: StepPlan) -> None:
        """After a step that completed prompts: keep their full blocks' K/V."""
        if self._prefix_cache is None:
            return
        for chunk in plan.prefills:
            if chunk.last:
                try:
                    self._prefix_cache.store(chunk.slot, self._active[chunk.seq_id].output.request.prompt_token_ids)
                except Exception:  # serving goes on; only the cache misses this prompt
                    logger.exception("prefix cache: storing a prompt's blocks failed")

    def _prefix_stats(self) -> dict[str, Any]:
        """Prefix-cache counters (tokens queried at admission and found cached); zeros when it is off."""
        cache = self._prefix_cache
        if cache is None:
            return {
                "prefix_caching": False,
                "prefix_cache_queries": 0,
                "prefix_cache_hits": 0,
                "prefix_cache_hit_rate": 0.0,
            }
        queries, hits = cache.queries, cache.hits
        return {
            "prefix_caching": True,
            "prefix_cache_queries": queries,
            "prefix_cache_hits": hits,
            "prefix_cache_hit_rate": round(hits / queries, 4) if queries else 0.0,
            "prefix_cache_blocks": cache.stored_blocks,
            "prefix_cache_bytes": cache.stored_bytes,
            "prefix_cache_capacity_bytes": cache.capacity_blocks * cache.block_bytes,
        }

    def _entries(self, plan: StepPlan) -> tuple[list[RunnerEntry], list[int]]:
        entries: list[RunnerEntry] = []
        sampled: list[int] = []
        for chunk in plan.prefills:
            prompt = self._active[chunk.seq_id].output.request.prompt_token_ids
            tokens = prompt[chunk.start : chunk.start + chunk.length]
            entries.append(RunnerEntry(chunk.slot, tokens, chunk.start, chunk.last))
            if chunk.last:
                sampled.append(chunk.seq_id)
        for decode in plan.decodes:
            last_token = self._active[decode.seq_id].output.token_ids[-1]
            entries.append(RunnerEntry(decode.slot, (last_token,), decode.position, True))
            sampled.append(decode.seq_id)
        return entries, sampled

    def _sample(self, logits: torch.Tensor, sampled: list[int]) -> list[_Pick | Exception]:
        """(token, log-probability, top alternatives) per sampled row; when sampling the batch fails, each row is
        sampled alone so that one request's failure (its parameters, NaN logits, its grammar) ends that request
        only. Grammar masks are computed once per row, here in the engine thread."""
        rows: list[RowSampling | Exception] = []
        for seq_id in sampled:
            try:
                rows.append(self._row(seq_id, logits.shape[-1]))
            except Exception as exc:
                rows.append(RuntimeError(f"sampling failed: {exc}"))
        good = [row for row in rows if isinstance(row, RowSampling)]
        if len(good) == len(rows):
            try:
                batch = sample_rows(logits, good)
                return list(zip(batch.tokens, batch.log_probs, batch.top, strict=True))
            except Exception:
                logger.warning("sampling the batch of %d failed; sampling its rows one by one", len(sampled))
        picked: list[_Pick | Exception] = []
        for index, row in enumerate(rows):
            if isinstance(row, Exception):
                picked.append(row)
                continue
            try:
                one = sample_rows(logits[index : index + 1], [row])
                picked.append((one.tokens[0], one.log_probs[0], one.top[0]))
            except Exception as exc:
                picked.append(RuntimeError(f"sampling failed: {exc}"))
        return picked

    def _row(self, seq_id: int, vocab_size: int) -> RowSampling:
        active = self._active[seq_id]
        output, params = active.output, active.output.request.params
        seen: tuple[int, ...] | list[int] = ()
        if params.repetition_penalty != 1.0:
            seen = [*output.request.prompt_token_ids, *output.token_ids]
        allowed: torch.Tensor | None = None
        if active.matcher is not None:  # the grammar alone decides when EOS may come
            started = time.perf_counter()
            allowed = active.matcher.allowed(vocab_size)
            self._grammar_mask_s += time.perf_counter() - started
            self._constrained_tokens += 1
            suppressed: tuple[int, ...] = ()
        else:
            suppressed = tuple(self._eos) if output.suppress_eos() and not params.ignore_eos else ()
        logprobs = params.logprobs or 0
        return RowSampling(params, active.generator, seen, suppressed, allowed, logprobs, output.token_ids)

    def _emit(self, active: _Active, picked: _Pick) -> TokenEvent:
        """The event of a sampled token: the grammar consumes it first (and may end the request with it)."""
        token, log_prob, top = picked
        matcher = active.matcher
        if matcher is not None:
            matcher.consume(token)
        if active.output.request.params.logprobs is None:
            return active.output.add_token(token, log_prob, grammar_done=matcher is not None and matcher.stopped)
        alternatives = tuple(TokenLogProb(i, self._grammar.token_bytes(i), lp) for i, lp in top)
        return active.output.add_token(
            token,
            log_prob,
            token_bytes=self._grammar.token_bytes(token),
            top_log_probs=alternatives,
            grammar_done=matcher is not None and matcher.stopped,
        )

    def _shutdown(self) -> None:
        outbox: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[TokenEvent], TokenEvent]]] = {}
        for seq_id, active in list(self._active.items()):
            self._scheduler.abort(seq_id)
            outbox.setdefault(active.loop, []).append((active.events, active.output.end("abort", "engine stopped")))
        self._active.clear()
        _deliver(outbox)


def _deliver(outbox: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[TokenEvent], TokenEvent]]]) -> None:
    for loop, items in outbox.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[tuple[asyncio.Queue[TokenEvent], TokenEvent]]) -> None:
    for events, event in items:
        events.put_nowait(event)
