"""Grammar-constrained generation with llguidance: JSON-schema constraints, per-row token masks, token bytes.

`json_constraint` runs in the HTTP layer (pure, sub-millisecond for ordinary schemas): it compiles a JSON schema
into llguidance's grammar and validates it, so a schema llguidance refuses is a 400 naming the request field
before anything is queued. `GrammarRuntime` lives in the engine thread: it builds llguidance's tokenizer once
(lazily, ~0.3 s for a 49k vocabulary), one `RowMatcher` per constrained request, and the token bytes that
log-probabilities report. A RowMatcher computes the allowed-token mask for its row each step (llguidance drops
the GIL while it does) and consumes each sampled token; EOS is allowed only while the grammar accepts, and the
request ends as soon as the grammar can take no further token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any

import torch

from modelhost.worker.engine.types import Constraint, InvalidParameter

# llguidance's JSON options: compact separators and no free whitespace, so a small model cannot wander into
# endless spaces or newlines between tokens.
_WHITESPACE_FLEXIBLE = False
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


def llguidance_available() -> bool:
    try:
        import llguidance  # noqa: F401
    except ImportError:
        return False
    return True


def json_constraint(schema: dict[str, Any] | None, param: str) -> Constraint:
    """A Constraint that makes the output one JSON value valid against `schema` (None: any JSON object).

    Raises InvalidParameter naming `param` when llguidance refuses the schema or is not installed."""
    try:
        from llguidance import LLMatcher
    except ImportError:
        raise InvalidParameter(
            f"{param}: structured outputs need the llguidance package (pip install 'modelhost[llm]')", param
        ) from None
    target = ANY_JSON_OBJECT if schema is None else schema
    try:
        grammar = LLMatcher.grammar_from_json_schema(
            json.dumps(target), defaults={"whitespace_flexible": _WHITESPACE_FLEXIBLE}
        )
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidParameter(f"{param}: the JSON schema is not usable: {exc}", param) from None
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise InvalidParameter(f"{param}: the JSON schema is not supported: {_first_line(error)}", param)
    if schema is None:
        return Constraint(grammar=grammar, param=param, kind="json_object")
    return Constraint(grammar=grammar, param=param, kind="json_schema", source=json.dumps(schema))


def regex_constraint(pattern: str, param: str) -> Constraint:
    """A Constraint that makes the whole output match the regular expression `pattern` (TGI's regex grammar)."""
    try:
        from llguidance import LLMatcher
    except ImportError:
        raise InvalidParameter(
            f"{param}: grammars need the llguidance package (pip install 'modelhost[llm]')", param
        ) from None
    grammar = LLMatcher.grammar_from_regex(pattern)
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise InvalidParameter(f"{param}: the regular expression is not supported: {_first_line(error)}", param)
    return Constraint(grammar=grammar, param=param, kind="regex", source=pattern)


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return " ".join(lines[:4])[:500] if lines else "refused by llguidance"


class RowMatcher:
    """One constrained request's grammar state (engine thread only)."""

    def __init__(self, matcher: Any, tokenizer_vocab: int) -> None:
        self._matcher = matcher
        self._words = (tokenizer_vocab + 31) // 32
        self._tokenizer_vocab = tokenizer_vocab

    @property
    def stopped(self) -> bool:
        """The grammar is complete and takes no further token (the request ends here)."""
        return bool(self._matcher.is_stopped())

    def allowed(self, vocab_size: int) -> torch.Tensor:
        """A bool mask [vocab_size] of the tokens the grammar allows next (EOS only while it accepts)."""
        if self._matcher.is_error():
            raise RuntimeError(f"grammar error: {self._matcher.get_error()}")
        bitmask = torch.zeros(self._words, dtype=torch.int32)
        self._matcher.unsafe_compute_mask_ptr(bitmask.data_ptr(), bitmask.numel() * bitmask.element_size())
        if self._matcher.is_error():
            raise RuntimeError(f"grammar error: {self._matcher.get_error()}")
        return unpack_bitmask(bitmask, vocab_size)

    def consume(self, token_id: int) -> None:
        if not self._matcher.consume_token(token_id):
            raise RuntimeError(f"grammar error: token {token_id} was refused: {self._matcher.get_error()}")


_SHIFTS = torch.arange(32, dtype=torch.int32)


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """llguidance's int32 bitmask (bit i of word w = token 32w + i) as a bool tensor [vocab_size]; tokens past
    the bitmask (a model vocabulary larger than the tokenizer's) are not allowed."""
    bits = ((bitmask.unsqueeze(-1) >> _SHIFTS) & 1).reshape(-1).bool()
    if bits.shape[0] >= vocab_size:
        return bits[:vocab_size]
    return torch.cat([bits, torch.zeros(vocab_size - bits.shape[0], dtype=torch.bool)])


def grammar_runtime(tokenizer: Any, eos_token_ids: Set[int]) -> GrammarRuntime:
    """The GrammarRuntime of a backend's Tokenizer (HFTokenizer wraps a transformers tokenizer; llguidance
    reads only fast ones)."""
    hf = getattr(tokenizer, "tokenizer", None)
    fast = hf if hf is not None and getattr(hf, "backend_tokenizer", None) is not None else None
    return GrammarRuntime(fast, eos_token_ids, tokenizer.decode)


@dataclass(frozen=True, slots=True)
class _Built:
    tokenizer: Any  # llguidance.LLTokenizer, or None when llguidance is missing or the tokenizer is not a fast one
    error: str | None


class GrammarRuntime:
    """llguidance's tokenizer built once from the model's Hugging Face tokenizer, and what it serves.

    `hf_tokenizer` may be None (no fast tokenizer): constraints then fail their requests with a clear error and
    token bytes fall back to `decode`."""

    def __init__(self, hf_tokenizer: Any, eos_token_ids: Set[int], decode: Callable[[list[int]], str]) -> None:
        self._hf = hf_tokenizer
        self._eos = sorted(eos_token_ids)
        self._decode = decode
        self._lock = threading.Lock()
        self._built: _Built | None = None
        self._bytes_cache: dict[int, bytes] = {}

    def warm(self) -> None:
        """Build the tokenizer now (safe to call twice; a later call waits for the first)."""
        self._get()

    def warm_in_background(self) -> None:
        """Build the tokenizer in a daemon thread, so that neither start-up nor the first request waits for it."""
        if self._hf is not None:
            threading.Thread(target=self.warm, name="modelhost-llguidance", daemon=True).start()

    def _get(self) -> _Built:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def _build(self) -> _Built:
        if self._hf is None:
            return _Built(None, "the model's tokenizer is not a fast (Rust) tokenizer, which llguidance needs")
        try:
            import llguidance.hf
        except ImportError:
            return _Built(None, "the llguidance package is not installed (pip install 'modelhost[llm]')")
        try:
            return _Built(llguidance.hf.from_tokenizer(self._hf, eos_token=self._eos or None), None)
        except Exception as exc:  # a tokenizer llguidance cannot read
            return _Built(None, f"llguidance could not read the model's tokenizer: {exc}")

    def matcher(self, constraint: Constraint) -> RowMatcher:
        """A fresh matcher for one request; raises RuntimeError when the grammar cannot be used."""
        built = self._get()
        if built.tokenizer is None:
            raise RuntimeError(f"{constraint.param} cannot be honoured: {built.error}")
        from llguidance import LLMatcher

        matcher = LLMatcher(built.tokenizer, constraint.grammar, log_level=0)
        if matcher.is_error():
            raise RuntimeError(f"{constraint.param}: {_first_line(matcher.get_error())}")
        return RowMatcher(matcher, int(built.tokenizer.vocab_size))

    def token_bytes(self, token_id: int) -> bytes:
        """The token's own bytes (a UTF-8 character may span tokens), as OpenAI's logprobs report them."""
        cached = self._bytes_cache.get(token_id)
        if cached is not None:
            return cached
        built = self._get()
        if built.tokenizer is not None and 0 <= token_id < int(built.tokenizer.vocab_size):
            value = bytes(built.tokenizer.decode_bytes([token_id]))
        else:
            value = self._decode([token_id]).encode("utf-8")
        if len(self._bytes_cache) < 1 << 17:
            self._bytes_cache[token_id] = value
        return value
