from __future__ import annotations

import json

import pytest

from modelhost.router.cache import CachedResponse, RequestKey, ResultCache, cache_mode, is_deterministic


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(body: bytes = b"{}", endpoint: str = "ep", generation: int = 0, **kw: str) -> RequestKey:
    fields = {"content_type": "application/json", "accept": "", "custom_attributes": "", "target_variant": ""}
    fields.update(kw)
    return RequestKey(endpoint, generation, body, **fields)


def answer(clock: Clock, size: int = 10) -> CachedResponse:
    return CachedResponse(200, b"x" * size, (("content-type", "application/json"),), "AllTraffic", clock())


def test_hit_miss_and_exact_match_on_every_field() -> None:
    clock = Clock()
    cache = ResultCache(10_000, clock)
    assert cache.get(key()) is None
    assert cache.put(key(), answer(clock), ttl_s=60)
    assert cache.get(key()) is not None
    for other in (
        key(b"{ }"),
        key(accept="text/plain"),
        key(custom_attributes="a=b"),
        key(target_variant="B"),
        key(content_type="text/plain"),
        key(endpoint="other"),
    ):
        assert cache.get(other) is None
    assert (cache.hits, cache.misses) == (1, 7)


def test_ttl_expiry() -> None:
    clock = Clock()
    cache = ResultCache(10_000, clock)
    cache.put(key(), answer(clock), ttl_s=5)
    clock.now += 4.9
    assert cache.get(key()) is not None
    clock.now += 0.2
    assert cache.get(key()) is None
    assert len(cache) == 0 and cache.size_bytes == 0


def test_bounded_by_bytes_evicting_least_recently_used() -> None:
    clock = Clock()
    one = answer(clock, 100).size_bytes
    cache = ResultCache(one * 2, clock)
    cache.put(key(b"1"), answer(clock, 100), 60)
    cache.put(key(b"2"), answer(clock, 100), 60)
    cache.get(key(b"1"))  # 1 is now the most recent
    cache.put(key(b"3"), answer(clock, 100), 60)
    assert cache.get(key(b"2")) is None
    assert cache.get(key(b"1")) is not None and cache.get(key(b"3")) is not None
    assert cache.size_bytes <= one * 2
    assert not cache.put(key(b"big"), answer(clock, one * 3), 60)


def test_invalidation_by_generation() -> None:
    clock = Clock()
    cache = ResultCache(10_000, clock)
    cache.put(key(generation=cache.generation("ep")), answer(clock), 60)
    cache.invalidate("EP")
    assert cache.get(key(generation=cache.generation("ep"))) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"inputs": "hi", "parameters": {"max_new_tokens": 5}}, True),
        ({"inputs": "hi", "parameters": {"do_sample": True}}, False),
        ({"inputs": "hi", "parameters": {"do_sample": True, "seed": 3}}, True),
        ({"inputs": "hi"}, True),
        ({"messages": [], "temperature": 0}, True),
        ({"messages": []}, False),
        ({"prompt": "x", "seed": 1}, True),
        ({"text": "custom handler format"}, False),
    ],
)
def test_deterministic_requests(body: dict, expected: bool) -> None:
    assert is_deterministic(json.dumps(body).encode()) is expected
    assert not is_deterministic(b"not json")


def test_cache_mode_parsing() -> None:
    assert cache_mode(None) == "off"
    assert cache_mode("true") == "deterministic"
    assert cache_mode("ALL") == "all"
    with pytest.raises(ValueError):
        cache_mode("sometimes")
