"""A worker's /metrics answer is bounded: too big or malformed, it is left out of the page and counted."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CollectorRegistry

from modelhost.monitoring.exposition import MAX_WORKER_TEXT, Exposition, ScrapeTarget
from modelhost.monitoring.instances import WatchedWorker


def scrape(body: bytes) -> tuple[bytes, float]:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    registry = CollectorRegistry()

    async def go() -> bytes:
        async with httpx.AsyncClient(transport=transport) as client:
            target = ScrapeTarget(WatchedWorker("w1", "ep", "A", None, 0), "http://worker", "token")
            return await Exposition(registry, client).render([target])

    page = asyncio.run(go())
    errors = registry.get_sample_value("modelhost_worker_scrape_errors_total", {"endpoint": "ep", "variant": "A"})
    return page, errors or 0.0


def test_a_good_answer_is_relabelled() -> None:
    page, errors = scrape(b"# TYPE up gauge\nup 1\n")
    assert b'up{endpoint="ep",instance="w1",variant="A"} 1.0' in page and errors == 0


def test_too_big_or_malformed_answers_are_left_out() -> None:
    for body in (b"x" * (MAX_WORKER_TEXT + 1), b"# TYPE up gauge\nup{ 1\n"):
        page, errors = scrape(body)
        assert b'instance="w1"' not in page and errors == 1
