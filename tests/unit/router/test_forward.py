"""Forwarding with fake upstreams: one retry elsewhere on UpstreamGone, reports instead of route edits, leases
released once, and each edge's one mapping of the three upstream errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from starlette.testclient import TestClient

from modelhost.errors import RuntimeValidationError, ServiceUnavailable
from modelhost.router.forward import UpstreamBroken, UpstreamError, UpstreamGone, UpstreamRequest, UpstreamTimeout
from tests.unit.router.fakes import FakeStream, Rig, ok, rig

REQUEST = UpstreamRequest("/invocations", {"content-type": "application/json"}, b"{}", 5.0)
GONE = UpstreamGone("ConnectError('connection refused')")


def send(r: Rig, request: UpstreamRequest = REQUEST) -> Any:
    async def go() -> Any:
        installed, variant = r.router.select("ep", None)
        return await r.router.send(installed.route, variant, request)

    return asyncio.run(go())


def assert_all_released(r: Rig) -> None:
    assert all(r.admission.in_flight(i) == 0 for i in r.upstream.outcomes)


# the shared InvocationRouter -------------------------------------------------------------------
def test_gone_is_retried_once_elsewhere_and_reported_not_removed() -> None:
    r = rig({"i1": [GONE], "i2": [ok({"from": "i2"})]})

    async def busy_i2() -> Any:
        return await r.admission.acquire("ep", "A", {"i1"}, 1.0)

    held = asyncio.run(busy_i2())  # so that the first request picks i1 (fewest in flight)
    assert json.loads(send(r).content) == {"from": "i2"}
    assert r.upstream.instances_called() == ["i1", "i2"]
    held.release()
    answers = {json.loads(send(r).content)["from"] for _ in range(6)}
    assert answers == {"i2"}
    assert r.table.take_unreachable() == [("Ep", "i1")]
    installed = r.table.get("ep")
    assert installed is not None and [i.instance_id for i in installed.route.variants[0].instances] == ["i1", "i2"]
    assert r.table.suspects("ep") == {"i1"}
    assert_all_released(r)
    # the suspect is avoided from then on: at most the first request tried it
    assert r.upstream.instances_called().count("i1") == 1


def test_gone_on_both_instances_raises_gone_and_reports_both() -> None:
    r = rig({"i1": [GONE], "i2": [GONE]})
    with pytest.raises(UpstreamGone):
        send(r)
    assert sorted(r.upstream.instances_called()) == ["i1", "i2"]
    assert r.table.take_unreachable() == [("Ep", "i1"), ("Ep", "i2")]
    assert_all_released(r)


def test_a_lone_instance_that_is_gone_stays_in_the_route() -> None:
    r = rig({"i1": [GONE, ok({"from": "i1"})]})
    with pytest.raises(ServiceUnavailable, match="Variant A of endpoint Ep has no instance ready; retry shortly."):
        send(r)
    assert r.table.suspects("ep") == {"i1"}
    assert json.loads(send(r).content) == {"from": "i1"}  # a suspect is still used when it is the only one
    assert_all_released(r)


@pytest.mark.parametrize("error", [UpstreamBroken("cut"), UpstreamTimeout("slow")])
def test_broken_and_timeout_are_not_retried_nor_reported(error: UpstreamError) -> None:
    r = rig({"i1": [error], "i2": [error]})
    with pytest.raises(type(error)):
        send(r)
    assert len(r.upstream.calls) == 1
    assert r.table.take_unreachable() == []
    assert_all_released(r)


def test_a_stream_holds_its_slot_until_closed_once() -> None:
    stream = FakeStream(parts=[b"a", b"b"])
    r = rig({"i1": [stream]})

    async def go() -> None:
        installed, variant = r.router.select("ep", None)
        answer = await r.router.open_stream(installed.route, variant, REQUEST)
        assert r.admission.in_flight("i1") == 1
        assert [c async for c in answer.answer.chunks()] == [b"a", b"b"]
        await answer.aclose()
        await answer.aclose()
        assert r.admission.in_flight("i1") == 0 and stream.closed == 1

    asyncio.run(go())


def test_resolve_speaks_sagemaker() -> None:
    statuses = {"ep": "InService", "starting": "InService", "creating": "Creating"}
    r = rig({"i1": [ok({})]}, status=lambda name: statuses.get(name.lower()))
    with pytest.raises(RuntimeValidationError, match="Endpoint nope of account 123456789012 not found."):
        r.router.resolve("nope")
    with pytest.raises(ServiceUnavailable, match="Endpoint starting has no instance ready yet; retry shortly."):
        r.router.resolve("starting")
    with pytest.raises(RuntimeValidationError, match=r"is not in service \(status: Creating\)"):
        r.router.resolve("creating")
    with pytest.raises(
        RuntimeValidationError, match="The TargetVariant 'B' does not exist on endpoint ep; variants: A."
    ):
        r.router.select("ep", "B")


# the sagemaker-runtime edge --------------------------------------------------------------------
def invoke(r: Rig, path: str = "/endpoints/ep/invocations", body: bytes = b"{}") -> Any:
    with TestClient(r.app) as client:
        return client.post(path, content=body, headers={"content-type": "application/json"})


def test_runtime_edge_maps_gone_broken_and_timeout_to_model_error() -> None:
    gone = invoke(rig({"i1": [GONE], "i2": [GONE]}))
    assert gone.status_code == 424 and gone.headers["x-amzn-errortype"] == "ModelError"
    body = gone.json()
    assert body["message"] == (
        'Received server error (0) from primary with message "the instance went away: '
        "ConnectError('connection refused')\". See the endpoint's log (modelhost logs Ep) for more information."
    )
    assert body["OriginalStatusCode"] == 0
    assert body["OriginalMessage"] == "ConnectError('connection refused')"
    assert body["LogStreamArn"] == "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/Ep"

    broken = invoke(rig({"i1": [UpstreamBroken("UpstreamBroken('connection closed by the worker')")]}))
    assert broken.status_code == 424 and "the instance went away: UpstreamBroken(" in broken.json()["message"]

    slow = invoke(rig({"i1": [UpstreamTimeout("no answer within 5 s")]}))
    assert slow.status_code == 424
    assert slow.json()["message"].startswith(
        'Received server error (0) from primary with message "Your invocation timed out while waiting for a response'
    )
    assert slow.json()["OriginalMessage"] == "invocation timed out"


def test_runtime_edge_maps_a_worker_error_status_to_model_error() -> None:
    answer = invoke(rig({"i1": [ok({"error": "bad input"}, status=400)]}))
    assert answer.status_code == 424
    assert answer.json()["message"].startswith('Received client error (400) from primary with message "{"error"')
    assert answer.json()["OriginalStatusCode"] == 400


def test_runtime_edge_lone_instance_gone_is_service_unavailable_and_throttling_is_429() -> None:
    lone = invoke(rig({"i1": [GONE]}))
    assert lone.status_code == 503 and lone.headers["x-amzn-errortype"] == "ServiceUnavailable"
    r = rig({"i1": [ok({})]}, limit=1, queue=0)

    async def hold() -> None:
        assert await r.admission.acquire("ep", "A", set(), 1.0) is not None

    asyncio.run(hold())
    busy = invoke(r)
    assert busy.status_code == 429 and busy.headers["x-amzn-errortype"] == "ThrottlingException"


def events(data: bytes) -> list[tuple[str, bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(str(m.headers.get(":event-type") or m.headers[":exception-type"]), m.payload) for m in buffer]


def test_runtime_stream_edge_maps_errors_before_and_after_the_first_byte() -> None:
    before = invoke(rig({"i1": [GONE], "i2": [GONE]}), "/endpoints/ep/invocations-response-stream")
    assert before.status_code == 424 and "the instance went away" in before.json()["message"]

    error_status = FakeStream(status_code=500, parts=[b"boom"])
    r = rig({"i1": [error_status]})
    failed = invoke(r, "/endpoints/ep/invocations-response-stream")
    assert (
        failed.status_code == 424
        and 'Received server error (500) from primary with message "boom"' in (failed.json()["message"])
    )
    assert error_status.closed == 1 and r.admission.in_flight("i1") == 0

    cut = FakeStream(parts=[b"first", UpstreamBroken("peer closed connection")])
    r = rig({"i1": [cut]})
    answer = invoke(r, "/endpoints/ep/invocations-response-stream")
    assert answer.status_code == 200
    kinds = events(answer.content)
    assert kinds[0][0] == "PayloadPart"
    assert kinds[-1][0] == "ModelStreamError"
    assert b"broke before it was complete (peer closed connection)" in kinds[-1][1]
    assert cut.closed == 1 and r.admission.in_flight("i1") == 0
    request = r.upstream.calls[0][1]
    assert request.headers["x-modelhost-stream"] == "true"

    stalled = FakeStream(parts=[UpstreamTimeout("read timeout")])
    answer = invoke(rig({"i1": [stalled]}), "/endpoints/ep/invocations-response-stream")
    assert events(answer.content)[-1][0] == "ModelStreamError"
    assert b"no data for 5 s" in events(answer.content)[-1][1]


# the OpenAI edge ---------------------------------------------------------------------------------
def chat(r: Rig, model: str = "ep") -> Any:
    with TestClient(r.app) as client:
        return client.post("/v1/chat/completions", json={"model": model, "messages": []})


def test_openai_edge_maps_errors_to_openai_objects() -> None:
    gone = chat(rig({"i1": [GONE], "i2": [GONE]}))
    assert gone.status_code == 502 and gone.json()["error"]["code"] == "upstream_error"
    assert "the instance went away" in gone.json()["error"]["message"]
    assert gone.json()["error"]["type"] == "server_error"

    slow = chat(rig({"i1": [UpstreamTimeout("read timeout")]}))
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "upstream_error"

    lone = chat(rig({"i1": [GONE]}))
    assert lone.status_code == 503 and lone.json()["error"]["code"] == "service_unavailable"

    creating = chat(rig({"i1": [ok({})]}, status=lambda name: "Creating"), model="other")
    assert creating.status_code == 400 and creating.json()["error"]["code"] == "ValidationError"
    assert "is not in service (status: Creating)" in creating.json()["error"]["message"]

    r = rig({"i1": [ok({})]}, limit=1, queue=0)

    async def hold() -> None:
        assert await r.admission.acquire("ep", "A", set(), 1.0) is not None

    asyncio.run(hold())
    busy = chat(r)
    assert busy.status_code == 429 and busy.json()["error"]["code"] == "rate_limit_exceeded"


def test_openai_edge_relays_the_workers_own_answers_and_errors() -> None:
    refused = FakeStream(status_code=400, parts=[b'{"error": {"message": "custom handler"}}'])
    r = rig({"i1": [refused]})
    answer = chat(r)
    assert answer.status_code == 400 and answer.json() == {"error": {"message": "custom handler"}}
    assert r.upstream.calls[0][1].path == "/v1/chat/completions"
    assert refused.closed == 1 and r.admission.in_flight("i1") == 0

    sse = FakeStream(headers={"content-type": "text/event-stream"}, parts=[b"data: 1\n\n", UpstreamBroken("cut")])
    answer = chat(rig({"i1": [sse]}))
    assert answer.status_code == 200
    assert answer.content.startswith(b"data: 1\n\n") and b'"code": "stream_broken"' in answer.content
