"""Wires the server: store, controller, routing table and the one HTTP port that serves every API.

`POST /` with an `X-Amz-Target` header is the control plane (that path only); `/endpoints/{name}/...` is the runtime;
`/v1/...` is the OpenAI-compatible API (`model` = an endpoint name);
`/_modelhost/...` are modelhost's own routes (health, logs, quotas) used by the CLI. Once the home has an access
key, the logs and quotas routes need a SigV4 signature and the caller's policy must allow `logs:GetLogEvents` on
the endpoint's log group / `servicequotas:ListServiceQuotas` (security/actions.py); refusals are the control
plane's AWS JSON errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from modelhost import ids
from modelhost.adapters import (
    autoscaling_authorizer,
    cloudwatch_authorizer,
    cold_start_activity,
    endpoint_names,
    endpoint_status,
    job_name,
    logs_authorizer,
    scales_to_zero,
    scaling_settings,
    served_models,
    variant_counts,
)
from modelhost.api.app import ControlPlaneApi, error_response
from modelhost.api.legacy import upgrade_store
from modelhost.api.validation import service_model
from modelhost.async_inference.service import backlog_source, build_async_inference
from modelhost.auth import Caller, authenticate, authenticate_bearer, authorize, wire_request
from modelhost.autoscaling.api import AAS_TARGET_PREFIX, AutoScalingApi
from modelhost.autoscaling.loop import ScalingLoop
from modelhost.batch.instances import hidden_endpoint
from modelhost.batch.runner import RunnerSettings
from modelhost.batch.supervisor import TransformJobs
from modelhost.clock import SystemClock
from modelhost.controller.apply import STOP_GRACE_S, Applier, Timeouts
from modelhost.controller.cold_start import ColdStarts
from modelhost.controller.duties import Duties
from modelhost.controller.instances import InstanceStarter
from modelhost.controller.leadership import Leadership, Role
from modelhost.controller.loop import ControlLoop, LoopSettings
from modelhost.controller.shared_routes import WITHDRAW_DRAIN_S, RouteFollower, RoutePublisher
from modelhost.errors import ApiError, ValidationError
from modelhost.front_door import FrontDoor, doors
from modelhost.http_body import BodyTooLarge, read_limited
from modelhost.launching import Launching, build_launching
from modelhost.monitoring import wire as cloudwatch_wire
from modelhost.monitoring.cloudwatch_api import CloudWatchApi
from modelhost.monitoring.logs.api import LOGS_TARGET_PREFIX, LogsApi
from modelhost.monitoring.service import Monitoring
from modelhost.registry import ModelRegistry
from modelhost.router.admission import Admission
from modelhost.router.app import RuntimeApi
from modelhost.router.cache import ResultCache
from modelhost.router.forward import HttpUpstream, InvocationRouter
from modelhost.router.openai import OpenAiApi
from modelhost.router.table import RoutingTable
from modelhost.scheduler.launchers.confinement import Confinement, worker_confinement
from modelhost.scheduler.placement import parse_quotas
from modelhost.security import actions
from modelhost.security.keys import key_store_for
from modelhost.settings import ServerSettings
from modelhost.storage.objects import objects_for
from modelhost.store.base import Store
from modelhost.store.errors import StoreError, UnreadableRecord
from modelhost.store.opening import leader_lock_for, open_store
from modelhost.store.records import Records

log = logging.getLogger(__name__)

# SageMaker's EndpointName pattern; the logs route serves `logs/<name>/` only for names that match it,
# so `..`, `%2e%2e` and names with separators never leave the logs folder.
ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# modelhost's own GET routes take no body; a signed one may carry a small one (it is part of the signature)
MAX_OWN_ROUTE_BODY_BYTES = 64 * 1024


@dataclass(slots=True)
class Services:
    store: Store
    records: Records
    controller: ControlLoop
    control_plane: ControlPlaneApi
    runtime: RuntimeApi
    openai: OpenAiApi
    client: httpx.AsyncClient
    monitoring: Monitoring
    cloudwatch: CloudWatchApi
    logs: LogsApi
    autoscaling: AutoScalingApi
    leadership: Leadership
    shared_routes: tuple[RoutePublisher, RouteFollower]
    duties: Duties

    def problems(self) -> list[str]:
        """Why the control plane cannot act right now: the control loop's reasons, the shared routes', and a
        leader duty that cannot start or failed (a leader must not sit holding the lock doing nothing)."""
        syncing = [p for sync in self.shared_routes for p in sync.problems()]
        return self.controller.problems() + syncing + self.duties.problems()


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return lines[-count:]


def build_controller(
    settings: ServerSettings,
    records: Records,
    table: RoutingTable,
    admission: Admission,
    launching: Launching,
) -> ControlLoop:
    """The control loop with its applier, on the launcher `launching` holds (local processes or Ray)."""
    clock = SystemClock()
    launcher = launching.launcher
    starter = InstanceStarter(
        launcher,
        launching.instance_inventory,
        launching.ledger,
        launching.worker_environment,
        clock,
        strict=settings.strict_instance_types,
        ping_interval_s=settings.ping_interval_s,
        base_environment=launching.base_environment,
    )
    holder: list[ControlLoop] = []
    applier = Applier(
        records,
        launcher,
        starter,
        launching.preparer,
        table,
        admission,
        clock,
        Timeouts(download_s=settings.default_download_timeout_s, startup_s=settings.default_startup_timeout_s),
        wake=lambda: holder[0].wake(),
    )
    loop_settings = LoopSettings(settings.control_interval_s, settings.health_interval_s, settings.health_failures)
    controller = ControlLoop(records, applier, launcher, table, clock, loop_settings)
    holder.append(controller)
    return controller


@contextlib.asynccontextmanager
async def serving(settings: ServerSettings, confinement: Confinement | None = None) -> AsyncIterator[Services]:
    """Start the store, the controller and the APIs; on exit, drain workers and close everything.
    `confinement` is how workers are confined (decided by `modelhost server` before it listens; else here)."""
    for folder in (settings.home, settings.logs_dir, settings.run_dir, settings.artifacts_dir):
        folder.mkdir(parents=True, exist_ok=True)
    # Downloads, pip installs and worker stops block in threads; the default pool (cores + 4) is too small.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64, thread_name_prefix="io"))
    store = open_store(settings)  # SQLite in the home (with backups), or the shared PostgreSQL database
    service_model("sagemaker")  # load botocore's model once, before the first request
    table = RoutingTable()
    records = Records(store)
    upgrade_store(records)  # rows written before typed records (format 1), converted once
    cold: list[ColdStarts] = []  # built once the controller exists; admission asks it at zero instances
    admission = Admission(
        table, settings.max_concurrency_per_instance, settings.max_queue_per_variant,
        cold_start=lambda endpoint, variant: bool(cold) and cold[0].request(endpoint, variant),
    )  # fmt: skip
    registry = ModelRegistry(settings.registry_dir)
    confinement = confinement or worker_confinement(settings)
    for note in confinement.notes:
        log.info("%s", note)
    launching = build_launching(settings, confinement, registry)  # the host, or a Ray cluster it joins now
    launcher, inventory = launching.launcher, launching.inventory
    controller = build_controller(settings, records, table, admission, launching)
    clock = SystemClock()
    cold.append(ColdStarts(records, functools.partial(scales_to_zero, records), controller.wake, clock,
                           cold_start_activity(records, clock)))  # fmt: skip
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))
    status_of = functools.partial(endpoint_status, records)
    upstream = HttpUpstream(client)
    router = InvocationRouter(table, admission, upstream, status_of, settings.account_id, settings.invocation_timeout_s)
    transform_jobs = TransformJobs(
        records, router,
        objects_for(settings),
        RunnerSettings(settings.transform_staging_dir, max_per_instance=settings.max_concurrency_per_instance),
        hidden_endpoint, controller.wake,
    )  # fmt: skip

    def desired_state_changed() -> None:
        controller.wake()
        transform_jobs.wake()

    monitoring = Monitoring(
        settings.home / "metrics.db",
        settings.home,
        client,
        controller.serving_workers,
        launcher.pid,
        functools.partial(variant_counts, records, table, admission),
        job_names=functools.partial(job_name, records),
    )
    leadership = Leadership(leader_lock_for(store), clock)  # SQLite: always this server; PostgreSQL: one of them
    async_dispatcher, async_intake = build_async_inference(settings, records, router, table, monitoring.invocations,
                                                           leading=lambda: leadership.role is Role.LEADER)  # fmt: skip
    monitoring.add_source(backlog_source(async_dispatcher))
    publisher = RoutePublisher(records, table, f"{settings.host}:{settings.port} (pid {os.getpid()})")
    follower = RouteFollower(records, table)
    services = Services(
        store=store,
        records=records,
        controller=controller,
        control_plane=ControlPlaneApi(records, settings, desired_state_changed, inventory,
                                      parse_quotas(settings.quotas)),  # fmt: skip
        runtime=RuntimeApi(
            settings, router, ResultCache(settings.result_cache_max_bytes, time.monotonic), monitoring.invocations,
            async_intake,
        ),  # fmt: skip
        openai=OpenAiApi(
            settings, router, status_of, functools.partial(served_models, records), monitoring.invocations
        ),
        client=client,
        monitoring=monitoring,
        cloudwatch=CloudWatchApi(
            monitoring.store, settings.account_id, settings.region, authorize=cloudwatch_authorizer(settings)
        ),
        autoscaling=AutoScalingApi(records, settings, authorize=autoscaling_authorizer(settings)),
        logs=LogsApi(
            settings.logs_dir, functools.partial(endpoint_names, records), settings.account_id, settings.region,
            authorize=logs_authorizer(settings), job_names=functools.partial(job_name, records),
        ),
        leadership=leadership,
        shared_routes=(publisher, follower),
        duties=Duties(),
    )
    if settings.store_url:
        log.info("autoscaling: the idle rule (scale to zero after MODELHOST_SCALE_TO_ZERO_IDLE_S) is off with a "
                 "shared store: the leader's metrics do not count the requests its followers answer")  # fmt: skip
    scaling = ScalingLoop(
        records, monitoring.store, scaling_settings(settings), clock, controller.wake,
        lambda: monitoring.flushed_through_s, alarms=monitoring.alarms.alarm_states,
        interval_s=settings.scaling_interval_s,
    )  # fmt: skip
    duties = services.duties

    def lead() -> None:
        """Only the leader reconciles: the control loop, transform jobs, async inference and scaling run here. Each
        is a duty that is started again when it fails (controller/duties.py): never a leader that does nothing."""
        follower.stop_following()  # (already, when its task ended) the previous leader's routes are not ours
        duties.start("control loop", controller.run)
        duties.start("scaling", scaling.run)
        duties.start("transform jobs", transform_jobs.run)
        # what this server held in memory is dropped and every stored InvokeEndpointAsync request queued again
        duties.start("async inference", async_dispatcher.run, prepare=async_dispatcher.reload)
        if settings.store_url:  # followers route with the leader's routes and record async requests for it
            duties.start("shared routes", publisher.run)
            duties.start("async intake", functools.partial(_adopt_async_requests, async_dispatcher.load))

    async def stop_leading(grace_s: float = STOP_GRACE_S) -> None:
        """Every leader duty stopped, then this server's transform runners, async requests in flight and workers
        (SIGKILL after `grace_s`); safe to call again. Jobs stay InProgress and async requests stored: the next
        leader resumes them."""
        duties.cancel_all()  # synchronous: no duty reconciles, scales, dispatches or publishes after this line
        await asyncio.gather(duties.stop(), transform_jobs.shutdown(), async_dispatcher.stop())
        await controller.shutdown(grace_s)

    async def step_down() -> None:
        """The leader lock is lost, so another server may lead already: every leader duty and worker of this one
        stops now, before the server stops (uvicorn's graceful shutdown waits for requests in flight, up to a
        minute); a process supervisor starts it again, as a follower."""
        log.error("this server no longer leads the shared store: stopping its leader duties and workers, which "
                  "must not run beside the new leader's")  # fmt: skip
        try:
            await stop_leading(STEP_DOWN_GRACE_S)
        finally:
            log.error("stopping this server: it no longer leads the shared store")
            _stop_server()

    if leadership.elect_now():
        lead()
    leading_task = asyncio.create_task(leadership.run(lead, step_down, follower.run))
    monitor_task = asyncio.create_task(monitoring.run())
    log.info(
        "modelhost server ready (home %s; %d GPU(s), %d CPU(s), %.0f GiB)",
        settings.home,
        inventory.gpu_count,
        inventory.cpus,
        inventory.memory_bytes / 1024**3,
    )
    try:
        yield services
    finally:
        log.info("stopping: draining workers")
        try:
            await _cancel(leading_task)
            if settings.store_url and leadership.role is Role.LEADER:
                duties.cancel_all()  # the publisher first: nothing is published after the withdrawal
                await _withdraw_routes(publisher)
            await stop_leading()
            await _cancel(monitor_task)
        finally:  # whatever failed above: the workers are stopped and the lock given back
            with contextlib.suppress(Exception):
                await controller.shutdown()
            monitoring.close()  # what is still in memory is written
            upstream.close()
            await launcher.aclose()
            await client.aclose()
            leadership.release()  # after the workers stopped: the next leader starts them again
            store.close()


async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
    """The tasks cancelled and awaited; one that had failed is logged, never raised (shutdown goes on)."""
    for task in tasks:
        if task is not None:
            task.cancel()
    for task in tasks:
        if task is not None:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("a server task had failed")


async def _withdraw_routes(publisher: RoutePublisher) -> None:
    """A leader stopping gracefully: its route records deleted, then its workers kept serving until every
    follower has dropped them, so followers answer ServiceUnavailable (retryable), not ModelError from stopped
    workers."""
    try:
        if await asyncio.to_thread(publisher.withdraw):
            await asyncio.sleep(WITHDRAW_DRAIN_S)
    except StoreError as exc:
        log.warning("shared routes: this leader's routes could not be withdrawn (%s)", exc)


ADOPT_INTERVAL_S = 1.0
STEP_DOWN_GRACE_S = 2.0  # a deposed leader's workers get this long after SIGTERM, then SIGKILL


async def _adopt_async_requests(load: Callable[[], int]) -> None:
    """The leader of a shared store queues the InvokeEndpointAsync requests other servers recorded."""
    while True:
        await asyncio.sleep(ADOPT_INTERVAL_S)
        try:
            load()
        except StoreError as exc:
            log.debug("async inference: stored requests not read this time (%s)", exc)


def _stop_server() -> None:
    """SIGTERM to this process: uvicorn's graceful shutdown, then the lifespan's cleanup."""
    os.kill(os.getpid(), signal.SIGTERM)


def _is_form(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/x-www-form-urlencoded"


class ServerRoutes:
    """The one port's routes: the three APIs (control plane, sagemaker-runtime, OpenAI) and modelhost's own."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self.services: Services | None = None  # set while the server runs

    def _running(self) -> Services:
        if self.services is None:
            raise RuntimeError("the server is not running")
        return self.services

    async def aws(self, request: Request) -> Response:
        """AWS JSON 1.1 requests are `POST /` with X-Amz-Target; any other path carrying the header gets a
        404 (so a proxy that exposes one path exposes only that); everything else posted is the runtime."""
        services = self._running()
        path = request.scope["path"]
        if path.startswith(cloudwatch_wire.CBOR_PATH_PREFIX):  # CloudWatch in smithy-rpc-v2-cbor
            return await services.cloudwatch.handle(request)
        if path == "/" and _is_form(request) and "x-amz-target" not in request.headers:  # the query protocol
            return await services.cloudwatch.handle(request)
        if "x-amz-target" in request.headers:
            target = request.headers["x-amz-target"]
            if target.startswith(cloudwatch_wire.TARGET_PREFIX + ".") and path == "/":
                return await services.cloudwatch.handle(request)
            if target.startswith(LOGS_TARGET_PREFIX) and path == "/":
                return await services.logs.handle(request)
            if target.startswith(AAS_TARGET_PREFIX) and path == "/":
                return await services.autoscaling.handle(request)
            if request.scope["path"] != "/":
                return error_response(
                    ApiError(
                        f"Requests with X-Amz-Target are served only at POST /, not {request.scope['path'][:200]!r}.",
                        code="UnknownOperationException",
                        status=404,
                    ),
                    ids.request_id(),
                )
            return await services.control_plane.handle(request)
        return await services.runtime.handle(request)

    async def health(self, request: Request) -> Response:
        """200 while the control plane can act; 503 naming what stops it (e.g. the store cannot be written).
        Store rows that cannot be read are listed too, but the rest of the control plane works around them.
        The route needs no credentials, so it names no paths of this host (`modelhost doctor` shows the home)."""
        services = self._running()
        problems = services.problems()
        body: dict[str, object] = {"status": "unavailable" if problems else "ok"}
        if not key_store_for(self._settings.home).enabled():  # with access keys, the details stay in the log
            body["role"] = services.leadership.role.value  # leader or follower of the store (docs/fleet.md)
            body["problems"] = problems
            body["operations"] = services.controller.operations()
            body["unreadable_records"] = services.records.problems.lines()
        return JSONResponse(body, status_code=503 if problems else 200)

    async def _caller(self, request: Request) -> Caller:
        """The caller, verified as the control plane verifies (any caller while the home has no keys)."""
        try:
            body = await read_limited(request, MAX_OWN_ROUTE_BODY_BYTES)
        except BodyTooLarge as exc:
            message = f"{exc} of modelhost's own routes; send the GET without a body."
            raise ValidationError(message, status=413) from None
        return authenticate(wire_request(request.method, request.scope, request.headers.raw, body), self._settings)

    def _log_group_name(self, name: str) -> str:
        """The endpoint's name as it was created (log group names keep their case), else as asked."""
        try:
            endpoint = self._running().records.endpoints.get(name)
        except UnreadableRecord:
            return name
        return name if endpoint is None else endpoint.name

    async def _refused(self, request: Request, action: str, resource: Callable[[Caller], str]) -> Response | None:
        """None when the caller may perform `action` on `resource(caller)`; else the control plane's AWS error."""
        try:
            caller = await self._caller(request)
            authorize(caller, action, resource(caller), self._settings)
        except ApiError as exc:
            log.info("%s %s refused: %s: %s", request.method, request.url.path[:200], exc.code, exc.message)
            return error_response(exc, ids.request_id())
        return None

    async def quotas(self, request: Request) -> Response:
        refusal = await self._refused(request, actions.LIST_SERVICE_QUOTAS, lambda caller: "*")
        if refusal is not None:
            return refusal
        return JSONResponse(self._running().control_plane.quota_report())

    async def endpoint_logs(self, request: Request) -> Response:
        name = request.path_params["name"]
        raw = request.query_params.get("lines", "200")
        valid_name = ENDPOINT_NAME.fullmatch(name) is not None
        account = self._settings.account_id

        def log_group(caller: Caller) -> str:
            group = self._log_group_name(name) if valid_name else name[:200]
            return actions.log_group_resource(group, region=caller.region, account_id=account)

        refusal = await self._refused(request, actions.GET_LOG_EVENTS, log_group)
        if refusal is not None:  # before anything about the endpoint's logs is told
            return refusal
        if not raw.isdigit() or not 0 < int(raw) <= 100_000:
            return PlainTextResponse(f"lines must be a whole number from 1 to 100000, not {raw!r}\n", 400)
        folder = self._settings.logs_dir / name.lower()
        if not valid_name or not folder.is_dir() or folder.is_symlink():
            return PlainTextResponse(f"no logs for endpoint {name[:200]!r}\n", status_code=404)
        parts = []
        for path in sorted(p for p in folder.glob("*.log") if p.is_file() and not p.is_symlink()):
            parts.append(f"==> {path.name} <==")
            parts.extend(tail_lines(path, int(raw)))
        return PlainTextResponse("\n".join(parts) + "\n")

    async def metrics(self, request: Request) -> Response:
        """Prometheus text: the server's metrics and every serving worker's (monitoring/exposition.py). Once the
        home has keys it needs `Authorization: Bearer <ApiKey>` (Prometheus' `authorization` setting) or a
        SigV4 signature, and the caller's policy must allow cloudwatch:GetMetricData."""
        if request.headers.get("authorization", "").lower().startswith("bearer "):
            try:
                caller = authenticate_bearer(request.headers, self._settings)
                authorize(caller, actions.GET_METRIC_DATA, "*", self._settings)
            except ApiError as exc:
                return error_response(exc, ids.request_id())
        else:
            refusal = await self._refused(request, actions.GET_METRIC_DATA, lambda caller: "*")
            if refusal is not None:
                return refusal
        text = await self._running().monitoring.metrics_text()
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def probe(self, request: Request) -> Response:
        """GET /health and /ping, as load balancers and benchmark tools probe a server: 200 with the status
        while the control plane can act, 503 otherwise; no details (those are at /_modelhost/health)."""
        problems = self._running().problems()
        return JSONResponse({"status": "unavailable" if problems else "ok"}, status_code=503 if problems else 200)

    async def openai_api(self, request: Request) -> Response:
        return await self._running().openai.handle(request)

    def routes(self) -> list[Route]:
        return [
            Route("/_modelhost/health", self.health, methods=["GET"]),
            Route("/health", self.probe, methods=["GET"]),
            Route("/ping", self.probe, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            # OpenAI-compatible routes come before the catch-all POST (control plane / sagemaker-runtime)
            Route("/v1/models", self.openai_api, methods=["GET"]),
            Route("/v1/models/{model:path}", self.openai_api, methods=["GET"]),
            Route("/v1/chat/completions", self.openai_api, methods=["POST"]),
            Route("/v1/completions", self.openai_api, methods=["POST"]),
            Route("/_modelhost/endpoints/{name}/logs", self.endpoint_logs, methods=["GET"]),
            Route("/_modelhost/quotas", self.quotas, methods=["GET"]),
            Route("/{path:path}", self.aws, methods=["POST"]),
        ]


def build_app(settings: ServerSettings, confinement: Confinement | None = None) -> Starlette:
    server = ServerRoutes(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with serving(settings, confinement) as services:
            server.services = services
            try:
                yield
            finally:
                server.services = None

    app = Starlette(routes=server.routes(), lifespan=lifespan)
    app.add_middleware(
        FrontDoor, allowed=doors(settings.host, settings.allowed_hosts, settings.allowed_origins)
    )
    return app
