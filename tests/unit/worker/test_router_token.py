"""Workers answer only the router: the token guard, and the router putting each worker's token on its requests."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from modelhost.contracts.worker import ROUTER_TOKEN_HEADER, WorkerSpec
from modelhost.router.forward import UpstreamRequest, for_instance
from modelhost.router.table import InstanceRoute
from modelhost.worker.router_token import guarded, token_accepted


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def app(token: str) -> TestClient:
    routes = [Route("/ping", ok), Route("/invocations", ok, methods=["POST"]),
              Route("/v1/chat/completions", ok, methods=["POST"])]  # fmt: skip
    return TestClient(guarded(Starlette(routes=routes), token))


def test_invocations_and_openai_routes_need_the_token() -> None:
    client = app("s3cret")
    for path in ("/invocations", "/v1/chat/completions"):
        refused = client.post(path, content=b"x")
        assert refused.status_code == 403
        assert "only modelhost's router" in refused.json()["message"]
        assert client.post(path, headers={ROUTER_TOKEN_HEADER: "wrong"}).status_code == 403
        assert client.post(path, headers={ROUTER_TOKEN_HEADER: "s3cret"}).text == "ok"
    assert client.post("/nowhere").status_code == 403  # no route is probed without the token


def test_ping_stays_open() -> None:
    assert app("s3cret").get("/ping").status_code == 200


def test_no_token_no_guard() -> None:
    assert app("").post("/invocations").text == "ok"
    assert token_accepted("", None)
    assert not token_accepted("t", None) and not token_accepted("t", "") and token_accepted("t", "t")
    assert not token_accepted("t", "\udcff")  # odd header bytes are just a wrong token


def test_the_router_sends_each_instance_its_own_token() -> None:
    request = UpstreamRequest("/invocations", {"content-type": "text/plain", ROUTER_TOKEN_HEADER: "forged"}, b"", 1.0)
    sent = for_instance(request, InstanceRoute("i1", "http://127.0.0.1:1", "tok-1"))
    assert sent.headers[ROUTER_TOKEN_HEADER] == "tok-1" and sent.headers["content-type"] == "text/plain"
    assert for_instance(request, InstanceRoute("i2", "http://127.0.0.1:2")) is request


def test_the_spec_carries_the_token() -> None:
    spec = WorkerSpec("i", "ep", "v", "m", "/m", 1, router_token="abc")
    assert WorkerSpec.from_json(spec.to_json()).router_token == "abc"
    legacy = spec.to_json().replace(', "router_token": "abc"', "")
    assert WorkerSpec.from_json(legacy).router_token == ""
