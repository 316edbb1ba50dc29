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


def test_a_request_whose_row_is_gone_is_neither_run_nor_written_back(tmp_path: Path) -> None:
    """Another leader ran it (or its endpoint was deleted) meanwhile: a queued copy in memory must not re-create
    the row, run the model again or notify twice (fails without the conditional update)."""

    async def scenario() -> None:
        records, dispatcher, published, clock, config = setup(tmp_path)
        selected: list[str] = []

        class Counting(NotYet):
            def select(self, name: str, target: str | None) -> Any:
                selected.append(name)
                return super().select(name, target)

        dispatcher._router = Counting()  # type: ignore[assignment]
        request = queued(records, config, tmp_path)
        dispatcher.submit(request)
        records.async_requests.delete(request.key)
        dispatcher.dispatch_once()
        await dispatcher.settled()
        assert records.async_requests.get(request.key) is None and selected == []
        assert dispatcher.queued("ep") == 0  # dropped, not waiting to be tried again
        clock[0] = 1061.0  # past its TTL: an expiry of a copy whose row is gone publishes nothing either
        dispatcher.submit(request)
        dispatcher.dispatch_once()
        await dispatcher.settled()
        assert published.messages == [] and not (tmp_path / "fail" / "one-error.out").exists()
        assert records.async_requests.get(request.key) is None

    asyncio.run(scenario())


def test_an_elected_dispatcher_drops_what_it_held_and_queues_what_is_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        records, dispatcher, _, _, config = setup(tmp_path)
        held = queued(records, config, tmp_path)
        dispatcher.submit(held)  # held in memory, e.g. while following
        records.async_requests.delete(held.key)  # ...and run by the leader of the time
        stored = queued(records, config, tmp_path)
        assert dispatcher.reload() == 1
        assert dispatcher.queued("ep") == 1 and dispatcher._waiting["ep"] == [stored]

    asyncio.run(scenario())


def test_a_followers_intake_records_the_request_and_queues_nothing_in_memory(tmp_path: Path) -> None:
    """The leader adopts the row; a follower's in-memory copy would run twice after a takeover and grow without
    end (fails without the fix)."""
    from modelhost.async_inference.intake import AsyncIntake, AsyncInvocation

    async def scenario() -> None:
        records, dispatcher, _, _, _ = setup(tmp_path)
        leading = [False]
        intake = AsyncIntake(records, Objects(DataLimits()), dispatcher.submit, "123456789012", lambda: 1000.0,
                             dispatcher.queued, lambda: leading[0])  # fmt: skip
        invocation = AsyncInvocation(None, b"hi", None, None, None, None, None, None, 60, 5)
        first = await intake.accept("ep", invocation, "us-east-1")
        assert records.async_requests.get(first.key) is not None and dispatcher.queued("ep") == 0
        leading[0] = True
        second = await intake.accept("ep", invocation, "us-east-1")
        assert dispatcher.queued("ep") == 1 and dispatcher._waiting["ep"] == [second]

    asyncio.run(scenario())
