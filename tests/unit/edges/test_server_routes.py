"""The one port's own routing: X-Amz-Target only at POST /, the logs route inside logs/, health without paths."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.testclient import TestClient

from modelhost.app import ServerRoutes
from modelhost.settings import ServerSettings


async def answer(name: str, request: Request) -> Response:
    return PlainTextResponse(name)


def client_for(home: Path) -> TestClient:
    routes = ServerRoutes(ServerSettings(home=home))
    services: Any = SimpleNamespace(
        control_plane=SimpleNamespace(handle=lambda request: answer("control plane", request)),
        runtime=SimpleNamespace(handle=lambda request: answer("runtime", request)),
        controller=SimpleNamespace(problems=lambda: [], operations=lambda: {}),
        problems=lambda: [],
        leadership=SimpleNamespace(role=SimpleNamespace(value="leader")),
        records=SimpleNamespace(
            problems=SimpleNamespace(lines=lambda: []), endpoints=SimpleNamespace(get=lambda name: None)
        ),
    )
    routes.services = services
    return TestClient(Starlette(routes=routes.routes()))


def test_x_amz_target_is_served_only_at_post_root(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    target = {"X-Amz-Target": "SageMaker.ListModels"}
    assert client.post("/", headers=target).text == "control plane"
    assert client.post("/?x=1", headers=target).text == "control plane"
    for path in ("/v1/anything", "/endpoints/e/invocations", "/a/"):
        response = client.post(path, headers=target)
        assert response.status_code == 404
        assert response.json()["__type"] == "UnknownOperationException"
    assert client.post("/endpoints/e/invocations").text == "runtime"


@pytest.mark.parametrize("name", ["%2e%2e", "..", ".", "%2E%2E", "UP%20", "a_b", "-a"])
def test_the_logs_route_refuses_names_that_are_not_endpoint_names(tmp_path: Path, name: str) -> None:
    (tmp_path / "logs" / "e").mkdir(parents=True)
    (tmp_path / "logs" / "outside.log").write_text("secret\n")
    (tmp_path / "outside.log").write_text("secret\n")
    response = client_for(tmp_path).get(f"/_modelhost/endpoints/{name}/logs")
    # 405: the client folded a literal `..` away and the path left the logs route
    assert response.status_code in (404, 405) and "secret" not in response.text


def test_the_logs_route_serves_the_endpoints_own_logs(tmp_path: Path) -> None:
    folder = tmp_path / "logs" / "my-endpoint"
    folder.mkdir(parents=True)
    (folder / "primary.log").write_text("line one\nline two\n")
    (tmp_path / "logs" / "outside.log").write_text("secret\n")
    (folder / "link.log").symlink_to(tmp_path / "logs" / "outside.log")
    response = client_for(tmp_path).get("/_modelhost/endpoints/My-Endpoint/logs?lines=1")
    assert response.status_code == 200
    assert "line two" in response.text and "line one" not in response.text and "secret" not in response.text


def test_health_names_no_paths(tmp_path: Path) -> None:
    body = client_for(tmp_path).get("/_modelhost/health").json()
    assert body == {"status": "ok", "role": "leader", "problems": [], "operations": {}, "unreadable_records": []}
