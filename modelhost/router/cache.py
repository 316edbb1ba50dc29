"""Result cache for invocations: exact match on the request, bounded by bytes, with a TTL (pure).

An endpoint opts in through its model's environment (`MODELHOST_RESULT_CACHE=deterministic` caches only
requests whose output cannot vary; `all` caches every successful answer). The key covers the endpoint's
generation (bumped whenever the endpoint changes), the body, content type, accept, custom attributes and
target variant. Hits never reach a worker.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

CacheMode = Literal["off", "deterministic", "all"]
CACHE_ENV = "MODELHOST_RESULT_CACHE"  # model Environment: off | deterministic | all
CACHE_TTL_ENV = "MODELHOST_RESULT_CACHE_TTL_S"  # model Environment: seconds an entry lives
DEFAULT_CACHE_TTL_S = 300.0


def check_cache_environment(environment: dict[str, str]) -> None:
    """Raise ValueError naming the variable when a model's cache settings are malformed."""
    cache_mode(environment.get(CACHE_ENV))
    ttl = environment.get(CACHE_TTL_ENV)
    if ttl is not None:
        try:
            if float(ttl) <= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"{CACHE_TTL_ENV} must be a positive number of seconds, not {ttl!r}") from None


def cache_mode(value: str | None) -> CacheMode:
    text = (value or "off").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return "deterministic"
    if text in ("off", "deterministic", "all"):
        return text  # type: ignore[return-value]
    raise ValueError(f"{CACHE_ENV} must be off, deterministic or all, not {value!r}")


@dataclass(frozen=True, slots=True)
class RequestKey:
    endpoint: str
    generation: int  # the endpoint's version in the cache; bumped on every change of the endpoint
    body: bytes
    content_type: str
    accept: str
    custom_attributes: str
    target_variant: str

    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (
            self.endpoint.lower(),
            str(self.generation),
            self.content_type,
            self.accept,
            self.custom_attributes,
            self.target_variant,
        ):
            h.update(part.encode())
            h.update(b"\0")
        h.update(self.body)
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]  # the worker's headers that the runtime returns
    variant: str  # the variant that produced it
    stored_at: float  # clock seconds

    @property
    def size_bytes(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 64


def is_deterministic(body: bytes) -> bool:
    """Whether a request's answer cannot vary: greedy decoding, or sampling with a fixed seed.

    Understood shapes: LMI/TGI `{"inputs", "parameters"}` and OpenAI-style bodies. Anything else (a
    custom handler's own format) is unknown and treated as not deterministic.
    """
    try:
        data: Any = json.loads(body)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    params = data.get("parameters") if isinstance(data.get("parameters"), dict) else None
    if params is not None or "inputs" in data:
        params = params or {}
        return params.get("do_sample") is not True or params.get("seed") is not None
    if "messages" in data or "prompt" in data:
        temperature = data.get("temperature", 1.0)
        return temperature == 0 or data.get("seed") is not None
    return False


class ResultCache:
    """LRU by bytes with a TTL; `invalidate(endpoint)` drops an endpoint's entries by bumping its generation."""

    def __init__(self, max_bytes: int, clock: Callable[[], float]) -> None:
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._ttl: dict[str, float] = {}
        self._bytes = 0
        self._generations: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def generation(self, endpoint: str) -> int:
        return self._generations.get(endpoint.lower(), 0)

    def invalidate(self, endpoint: str) -> None:
        key = endpoint.lower()
        self._generations[key] = self._generations.get(key, 0) + 1

    def get(self, key: RequestKey) -> CachedResponse | None:
        digest = key.digest()
        entry = self._entries.get(digest)
        if entry is None or self._clock() - entry.stored_at > self._ttl.get(digest, 0.0):
            if entry is not None:
                self._drop(digest)
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return entry

    def put(self, key: RequestKey, response: CachedResponse, ttl_s: float) -> bool:
        """Store an answer; False when it is larger than the whole cache."""
        if response.size_bytes > self._max_bytes or ttl_s <= 0:
            return False
        digest = key.digest()
        if digest in self._entries:
            self._drop(digest)
        self._entries[digest] = response
        self._ttl[digest] = ttl_s
        self._bytes += response.size_bytes
        while self._bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return True

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest)
        self._ttl.pop(digest, None)
        self._bytes -= entry.size_bytes
