"""A real HTTP server (uvicorn on 127.0.0.1, in a thread) serving AutoScalingApi and the SageMaker control plane
over one SqliteStore, for boto3's `application-autoscaling` and `sagemaker` clients to talk to.

The main server is not wired to the Application Auto Scaling API yet, so these tests mount it in a small
Starlette app of their own; the control plane is there for DeleteEndpoint. `reopen()` closes the store and opens
it again behind the same port, as a restarted server would.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3
import uvicorn
from botocore.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.app import ControlPlaneApi
from modelhost.autoscaling.api import AAS_TARGET_PREFIX, AutoScalingApi, AutoScalingCall
from modelhost.errors import AccessDenied
from modelhost.resources.status import EndpointStatus
from modelhost.scheduler.inventory import Inventory
from modelhost.settings import ServerSettings
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore
from modelhost.testing import free_port
from tests.fakes.records import endpoint, variant_spec


class ScalingServer:
    def __init__(self, home: Path, deny: frozenset[str] = frozenset()) -> None:
        self.settings = ServerSettings(home=home, region="us-west-2")
        self.deny = deny  # actions the authorize hook refuses with AccessDeniedException
        self.calls: list[AutoScalingCall] = []
        self._open()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/", self._route, methods=["POST", "GET"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def _open(self) -> None:
        self.store = SqliteStore(self.settings.db_path)
        self.store.open()
        self.records = Records(self.store)
        self.api = AutoScalingApi(self.records, self.settings, authorize=self._authorize)
        inventory = Inventory(gpus=(), cpus=4, memory_bytes=8 * 1024**3)
        self.control_plane = ControlPlaneApi(self.records, self.settings, lambda: None, inventory, {})

    def _authorize(self, call: AutoScalingCall) -> str | None:
        self.calls.append(call)
        if call.action in self.deny:
            raise AccessDenied(f"User: anonymous is not authorized to perform: {call.action} on resource: *")
        return None

    async def _route(self, request: Request) -> Response:
        if request.headers.get("x-amz-target", "").startswith(AAS_TARGET_PREFIX):
            return await self.api.handle(request)
        return await self.control_plane.handle(request)

    def add_endpoint(self, name: str, *variants: str, status: EndpointStatus = EndpointStatus.IN_SERVICE) -> None:
        """An endpoint record as CreateEndpoint leaves it, through the records API."""
        specs = tuple(variant_spec(v) for v in variants or ("AllTraffic",))
        self.records.endpoints.insert(name, endpoint(name, status=status, variants=specs))

    def reopen(self) -> None:
        self.store.close()
        self._open()

    def start(self) -> ScalingServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the scaling test server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self.store.close()

    def client(self, service: str = "application-autoscaling") -> Any:
        return boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-west-2").client(
            service, endpoint_url=self.url, config=Config(retries={"max_attempts": 0})
        )
