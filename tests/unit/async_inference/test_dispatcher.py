"""The dispatcher over a real store with a router that cannot take requests yet: a request waits (its row as it
was), then expires when its TTL runs out (error document, error notification, row gone); a request whose
endpoint was deleted fails with that reason."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from modelhost.async_inference.dispatcher import AsyncDispatcher
from modelhost.async_inference.records import AsyncRequest, AsyncState, request_key
from modelhost.errors import ServiceUnavailable
from modelhost.resources.async_inference import AsyncInferenceConfig
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.status import EndpointStatus
from modelhost.router.table import RoutingTable
from modelhost.storage.limits import DataLimits
from modelhost.storage.objects import Objects
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore

TOPIC = "arn:aws:sns:us-east-1:123456789012:errors"


class NotYet:
    def select(self, name: str, target: str | None) -> Any:
        raise ServiceUnavailable("no instance yet")


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, message: dict[str, Any]) -> bool:
        self.messages.append((topic, message))
        return True


def setup(tmp_path: Path) -> tuple[Records, AsyncDispatcher, Published, list[float], AsyncInferenceConfig]:
    store = SqliteStore(tmp_path / "store.db")
    store.open()
    records = Records(store)
    config = AsyncInferenceConfig(str(tmp_path / "out"), str(tmp_path / "fail"), error_topic=TOPIC)
    records.endpoints.insert(
        "ep",
        Endpoint(
            "ep", "arn:ep", "ep", EndpointStatus.IN_SERVICE, 0.0, 0.0, "us-east-1", (), (), async_inference=config
        ),
    )
    clock = [1000.0]
    published = Published()
    dispatcher = AsyncDispatcher(
        records,
        NotYet(),  # type: ignore[arg-type]
        RoutingTable(),
        Objects(DataLimits()),
        published,  # type: ignore[arg-type]
        None,
        max_input_bytes=1024,
        now=lambda: clock[0],
    )
    return records, dispatcher, published, clock, config


def queued(records: Records, config: AsyncInferenceConfig, tmp_path: Path, ttl: float = 60.0) -> AsyncRequest:
    request = AsyncRequest(
        key=request_key(1000.0),
        endpoint="ep",
        inference_id="one",
        region="us-east-1",
        output_location=str(tmp_path / "out" / "one.out"),
        failure_location=str(tmp_path / "fail" / "one-error.out"),
        received=1000.0,
        expires=1000.0 + ttl,
        invocation_timeout_s=5.0,
        inline_body="aGk=",
        config=config,
    )
    records.async_requests.insert(request.key, request)
    return request


def test_a_request_waits_for_capacity_then_expires_with_its_ttl(tmp_path: Path) -> None:
    async def scenario() -> None:
        records, dispatcher, published, clock, config = setup(tmp_path)
        request = queued(records, config, tmp_path)
        dispatcher.submit(request)
        clock[0] = 1010.0
        dispatcher.dispatch_once()
        await dispatcher.settled()
        row = records.async_requests.get(request.key)
        assert row is not None and row.state is AsyncState.QUEUED and row.attempts == 0  # waited, not started
        assert published.messages == []
        assert [b.size for b in dispatcher.backlogs()] == [1]
        clock[0] = 1061.0
        dispatcher.dispatch_once()
        await dispatcher.settled()
        assert "RequestTTLSeconds (60 s)" in (tmp_path / "fail" / "one-error.out").read_text()
        ((topic, message),) = published.messages
        assert (
            topic == TOPIC and message["invocationStatus"] == "Failed" and "RequestExpired" in message["failureReason"]
        )
        assert records.async_requests.get(request.key) is None and dispatcher.failed == 1
        assert [b.size for b in dispatcher.backlogs()] == [0]  # an asynchronous endpoint, its queue empty

    asyncio.run(scenario())


def test_a_deleted_endpoints_requests_fail_with_that_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        records, dispatcher, published, clock, config = setup(tmp_path)
        request = queued(records, config, tmp_path)
        assert dispatcher.load() == 1
        records.endpoints.delete("ep")
        dispatcher.dispatch_once()
        await dispatcher.settled()
        assert "was deleted" in (tmp_path / "fail" / "one-error.out").read_text()
        assert "was deleted" in published.messages[0][1]["failureReason"]
        assert records.async_requests.get(request.key) is None

    asyncio.run(scenario())
