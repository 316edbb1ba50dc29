"""Continuous-batching scheduler: which sequences prefill or decode each step, bounded by slots and KV budget.

Pure bookkeeping over token counts; it never sees token ids or tensors. Each step:

* running sequences that have finished their prompt decode one token each;
* waiting sequences are admitted in FIFO order while a cache slot is free AND their reservation
  (prompt + max_new_tokens tokens) fits in the KV budget; the first one that does not fit blocks the ones
  behind it (FIFO fairness), so a request never fails for lack of room, it waits;
* prompts are fed in chunks of at most `max_step_tokens` prompt tokens per step, so a long prompt does not
  stall the decodes of the others for long; a prompt whose first tokens are already in its slot at admission
  (prefix caching, `on_admit`) is fed from the first token that is not.

`update(StepResult)` advances every planned sequence and removes finished ones at once, freeing their slot
and reservation for the next `schedule()`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    max_batch_size: int  # cache slots: sequences in the running set at most
    kv_budget_tokens: int  # KV-cache tokens that reservations may take in total
    max_step_tokens: int = 1024  # prompt tokens fed per step at most (decodes always run)


@dataclass(frozen=True, slots=True)
class PrefillChunk:
    seq_id: int
    slot: int  # cache slot the sequence owns
    start: int  # index of the first prompt token fed (= prompt tokens already in the cache)
    length: int  # prompt tokens fed this step
    last: bool  # this chunk ends the prompt: the step samples the first new token


@dataclass(frozen=True, slots=True)
class DecodeEntry:
    seq_id: int
    slot: int
    position: int  # position of the token fed (= tokens already in the cache)


@dataclass(frozen=True, slots=True)
class StepPlan:
    prefills: tuple[PrefillChunk, ...] = ()  # prompt chunks to run, in admission order
    decodes: tuple[DecodeEntry, ...] = ()  # running sequences that feed their last sampled token

    @property
    def empty(self) -> bool:
        return not self.prefills and not self.decodes


@dataclass(frozen=True, slots=True)
class StepResult:
    finished: frozenset[int] = frozenset()  # sequences that stopped (any reason) during the step


@dataclass(slots=True)
class _Sequence:
    seq_id: int
    prompt_tokens: int
    reserved_tokens: int  # prompt + max_new_tokens
    slot: int = -1
    cached_tokens: int = 0  # tokens whose K/V are in the cache


@dataclass(slots=True)
class Scheduler:
    """The waiting queue and running set of one engine (see the module docstring)."""

    config: SchedulerConfig
    # Called with (seq_id, slot) when a sequence is admitted; returns how many of its first prompt tokens the slot
    # already holds (a prefix-cache hit), which are then not prefilled. At most prompt_tokens - 1 count.
    on_admit: Callable[[int, int], int] | None = None
    _waiting: deque[_Sequence] = field(default_factory=deque)
    _running: dict[int, _Sequence] = field(default_factory=dict)  # insertion order = admission order
    _free_slots: list[int] = field(default_factory=list)
    _reserved_tokens: int = 0

    def __post_init__(self) -> None:
        if self.config.max_batch_size < 1 or self.config.max_step_tokens < 1:
            raise ValueError("max_batch_size and max_step_tokens must be at least 1")
        self._free_slots = list(range(self.config.max_batch_size - 1, -1, -1))  # pop() gives the lowest

    def add(self, seq_id: int, prompt_tokens: int, max_new_tokens: int) -> None:
        """Queue a sequence; it is considered from the next `schedule()` on.

        Raises ValueError when its reservation can never fit the budget (the engine checks limits first).
        """
        if prompt_tokens < 1:
            raise ValueError("a sequence needs at least one prompt token")
        reserved = prompt_tokens + max_new_tokens
        if reserved > self.config.kv_budget_tokens:
            raise ValueError(f"sequence needs {reserved} KV tokens; the budget is {self.config.kv_budget_tokens}")
        self._waiting.append(_Sequence(seq_id, prompt_tokens, reserved))

    def abort(self, seq_id: int) -> int | None:
        """Drop a waiting or running sequence; returns the slot it freed (None if it had none or was unknown)."""
        seq = self._running.pop(seq_id, None)
        if seq is not None:
            return self._release(seq)
        for waiting in self._waiting:
            if waiting.seq_id == seq_id:
                self._waiting.remove(waiting)
                break
        return None

    def schedule(self) -> StepPlan:
        """Decide the next step (see the module docstring). Calling it twice without `update` plans the same."""
        self._admit()
        prefills: list[PrefillChunk] = []
        decodes: list[DecodeEntry] = []
        step_tokens = self.config.max_step_tokens
        for seq in self._running.values():
            if seq.cached_tokens >= seq.prompt_tokens:
                decodes.append(DecodeEntry(seq.seq_id, seq.slot, seq.cached_tokens))
            elif step_tokens > 0:
                length = min(seq.prompt_tokens - seq.cached_tokens, step_tokens)
                step_tokens -= length
                last = seq.cached_tokens + length == seq.prompt_tokens
                prefills.append(PrefillChunk(seq.seq_id, seq.slot, seq.cached_tokens, length, last))
        return StepPlan(tuple(prefills), tuple(decodes))

    def update(self, plan: StepPlan, result: StepResult) -> list[int]:
        """Apply a finished step: advance planned sequences, remove finished ones; returns the freed slots."""
        for chunk in plan.prefills:
            if chunk.seq_id in self._running:
                self._running[chunk.seq_id].cached_tokens += chunk.length
        for entry in plan.decodes:
            if entry.seq_id in self._running:
                self._running[entry.seq_id].cached_tokens += 1
        freed = []
        for seq_id in result.finished:
            seq = self._running.pop(seq_id, None)
            if seq is not None:
                freed.append(self._release(seq))
        return freed

    def _admit(self) -> None:
        while self._waiting and self._free_slots:
            head = self._waiting[0]
            if self._reserved_tokens + head.reserved_tokens > self.config.kv_budget_tokens:
                return
            self._waiting.popleft()
            head.slot = self._free_slots.pop()
            if self.on_admit is not None:
                head.cached_tokens = max(0, min(self.on_admit(head.seq_id, head.slot), head.prompt_tokens - 1))
            self._reserved_tokens += head.reserved_tokens
            self._running[head.seq_id] = head

    def _release(self, seq: _Sequence) -> int:
        self._reserved_tokens -= seq.reserved_tokens
        self._free_slots.append(seq.slot)
        self._free_slots.sort(reverse=True)
        return seq.slot

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def reserved_tokens(self) -> int:
        return self._reserved_tokens

    @property
    def cached_tokens(self) -> int:
        return sum(seq.cached_tokens for seq in self._running.values())

    @property
    def has_work(self) -> bool:
        return bool(self._waiting or self._running)
