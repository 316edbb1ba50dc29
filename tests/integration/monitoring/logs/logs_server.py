"""A real HTTP server (uvicorn on 127.0.0.1, in a thread) serving only LogsApi, for boto3 to talk to, and a
log folder written as the controller (EndpointLog) and the launcher (its notes, then the worker process's
stdout and stderr with the worker's own logging setup) write one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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

from modelhost.auth import wire_request
from modelhost.controller.endpoint_log import EndpointLog
from modelhost.errors import AccessDenied
from modelhost.monitoring.logs import LOGS_TARGET_PREFIX, EndpointNames, LogsApi, LogsCall
from tests.integration.server import free_port

ACCOUNT = "123456789012"
ENDPOINT = "Falcon-Logs"
GROUP = f"/aws/sagemaker/Endpoints/{ENDPOINT}"

# what the worker's model prints and logs: records through modelhost.worker.main.configure_logging, a print(),
# a logged exception, and an uncaught one (written by the interpreter, no timestamp of its own)
WORKER_SCRIPT = textwrap.dedent(
    """
    import logging, sys, types
    from modelhost.worker.main import configure_logging
    configure_logging(types.SimpleNamespace(instance_id=sys.argv[1]))
    log = logging.getLogger("modelhost.worker")
    log.info("worker %s starting", sys.argv[1])
    print("hello from model.py")
    try:
        raise ValueError("the model could not load its weights")
    except ValueError:
        log.exception("load failed")
    log.warning("retrying with defaults")
    raise RuntimeError("giving up")
    """
)


class LogsServer:
    def __init__(self, logs_dir: Path, deny: frozenset[str] = frozenset()) -> None:
        self.logs_dir = logs_dir
        self.deny = deny  # IAM actions the authorize hook refuses
        self.calls: list[LogsCall] = []
        names = {ENDPOINT.lower(): EndpointNames(ENDPOINT, ("AllTraffic",))}
        self.api = LogsApi(logs_dir, names.get, ACCOUNT, "us-east-1", authorize=self._authorize)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/{path:path}", self._route, methods=["GET", "POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def _authorize(self, call: LogsCall) -> str | None:
        self.calls.append(call)
        # what the server's check reads: the request as sent, with boto3's SigV4 Authorization header
        headers = dict(wire_request(call.method, call.scope, call.raw_headers, call.body).headers)
        signed = "Credential=" in headers.get("authorization", "")
        region = headers["authorization"].split("Credential=")[1].split("/")[2] if signed else "us-east-1"
        if call.action in self.deny:
            arn = call.resource_arn(region, ACCOUNT)
            raise AccessDenied(f"User: anonymous is not authorized to perform: {call.action} on resource: {arn}")
        return region

    async def _route(self, request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        if request.url.path != "/" or not target.startswith(LOGS_TARGET_PREFIX):
            return Response("not a CloudWatch Logs request", status_code=404)
        return await self.api.handle(request)

    def start(self) -> LogsServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the logs server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def client(self) -> Any:
        session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1")
        config = Config(retries={"max_attempts": 1, "mode": "standard"})
        return session.client("logs", endpoint_url=self.url, config=config)


def write_endpoint_logs(logs_dir: Path) -> Path:
    """logs/<endpoint>/ as a deployment that failed writes it: the controller's events and one instance's
    output (launcher notes, then the worker process itself)."""
    folder = logs_dir / ENDPOINT.lower()
    events = EndpointLog(folder / "endpoint.log")
    events.write(f"deploying endpoint {ENDPOINT} (status Creating)")
    instance = folder / "alltraffic-0.log"
    folder.mkdir(parents=True, exist_ok=True)
    with open(instance, "ab") as out:
        out.write(b"[modelhost] budget memory 1.0 GiB, 1 CPU(s): not enforced on this host\n")
        out.flush()
        subprocess.run(
            [sys.executable, "-c", WORKER_SCRIPT, f"{ENDPOINT.lower()}-alltraffic-0-f887b428-c0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[4])},
            check=False,
            timeout=60,
        )
    time.sleep(1.1)  # the controller's next event is in a later second (endpoint.log keeps whole seconds)
    events.write(f"endpoint {ENDPOINT} failed: load failed: the model could not load its weights")
    return folder
