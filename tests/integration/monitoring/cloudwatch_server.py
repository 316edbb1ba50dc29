"""A real HTTP server (uvicorn on 127.0.0.1, in a thread) serving only CloudWatchApi, for boto3 to talk to.

The main server is not wired to the CloudWatch API yet, so these tests mount it in a tiny Starlette app of
their own. The app records which protocol each request spoke (`kinds`), so tests can check that a client
forced to a protocol really sent it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import uvicorn
from botocore.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.errors import AccessDenied
from modelhost.monitoring.cloudwatch_api import CloudWatchApi, IncomingCall, cloudwatch_request_kind
from modelhost.monitoring.metric_store import SqliteMetricStore
from modelhost.testing import free_port

ACCOUNT = "123456789012"


class CloudWatchServer:
    def __init__(self, db_path: Path, now: Any = time.time, deny: frozenset[str] = frozenset()) -> None:
        self.db_path = db_path
        self.deny = deny  # actions the authorize hook refuses with AccessDeniedException
        self.kinds: list[str | None] = []
        self.calls: list[IncomingCall] = []
        self.store = SqliteMetricStore(db_path)
        self.api = CloudWatchApi(self.store, ACCOUNT, "us-east-1", authorize=self._authorize, now=now)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/{path:path}", self._route, methods=["GET", "POST", "PUT"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def _authorize(self, call: IncomingCall) -> str | None:
        self.calls.append(call)
        if call.action in self.deny:
            raise AccessDenied(f"User: anonymous is not authorized to perform: {call.action}")
        return None

    async def _route(self, request: Request) -> Response:
        body = await request.body()
        kind = cloudwatch_request_kind(request.method, request.url.path, request.headers, body[:2048])
        self.kinds.append(kind)
        if kind is None:
            return Response("not a CloudWatch request", status_code=404)
        return await self.api.handle(request, body)

    def start(self) -> CloudWatchServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the CloudWatch test server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self.store.close()


def cloudwatch_client(url: str, models_dir: Path, protocol: str | None = None, *, validate: bool = True) -> Any:
    """A real boto3 `cloudwatch` client; `protocol` forces one of the model's protocols by an sdk-extras file
    (botocore's supported way to amend a service model from a data path), else botocore's own choice."""
    session = botocore.session.Session()
    if protocol is not None:
        root = models_dir / protocol
        folder = root / "cloudwatch" / "2010-08-01"
        folder.mkdir(parents=True, exist_ok=True)
        extras = {"version": 1.0, "merge": {"metadata": {"protocols": [protocol]}}}
        (folder / "service-2.sdk-extras.json").write_text(json.dumps(extras))
        session.get_component("data_loader").search_paths.insert(0, str(root))
    client = boto3.Session(
        botocore_session=session, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).client("cloudwatch", endpoint_url=url, config=Config(retries={"max_attempts": 1}, parameter_validation=validate))
    if protocol is not None:
        assert client.meta.service_model.resolved_protocol == protocol
    return client
