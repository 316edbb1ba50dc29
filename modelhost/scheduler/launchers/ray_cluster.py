"""RayClusterLauncher: every worker runs on a node of a Ray cluster, in a process owned by a Ray actor.

The only module of the package that imports ray (app.py imports it only for `--launcher ray`).

- Placement: each SageMaker instance is a placement group (STRICT_PACK: an instance is one machine, as on
  SageMaker) with one bundle per model copy (its GPUs, CPUs and memory; ray_placement.bundle); each copy's
  actor runs in its bundle, so Ray gives it its GPUs (CUDA_VISIBLE_DEVICES). A group the cluster cannot place
  within `placement_timeout_s` fails the start with InsufficientCapacity (the "placement" phase).
- The actor (`_InstanceActor`, a threaded actor around ray_node.NodeInstance) fetches the model data into the
  node's own cache, installs its requirements, and starts `python -m modelhost.worker`, which serves at the
  node's address (`node_address`, or the address Ray knows the node by) on a port picked there.
- Logs: a thread pulls every worker's new log bytes each `LOG_PULL_INTERVAL_S` into the instance's log under
  the server's logs folder (and once more before a failure is read or a worker is stopped), so `modelhost logs`
  and the CloudWatch Logs API read them as on the local launcher.
- Failures: `poll` waits on the actor's `wait()`; an actor or node that died reads as exit status -9, and the
  controller replaces the instance with its usual backoff. The actors are owned by the server's driver, so a
  server that dies takes them with it; `recover_stale` kills any actor left in this home's namespace.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import ray
from ray.exceptions import GetTimeoutError, RayError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from modelhost.contracts.worker import PHASE_LOAD, PING_PATH, FailureRecord
from modelhost.scheduler.inventory import Inventory
from modelhost.scheduler.launchers.base import LaunchRequest, Worker
from modelhost.scheduler.launchers.ray_node import NodeInstance, NodeLaunch, Placed
from modelhost.scheduler.launchers.ray_placement import (
    NODE_LOST_EXIT,
    bundle,
    cluster_inventory,
    describe,
    largest_node,
    live_nodes,
)
from modelhost.scheduler.placement import InsufficientCapacity

log = logging.getLogger(__name__)

LOG_PULL_INTERVAL_S = 0.5
CALL_TIMEOUT_S = 30.0  # a call to a live actor that takes longer than this is treated as lost
QUICK_CALL_TIMEOUT_S = 3.0  # for calls made on the event loop (reading a failure record)


@dataclass(frozen=True, slots=True)
class RaySettings:
    address: str | None  # the cluster (RAY_ADDRESS / --ray-address); None: "auto", a cluster on this machine
    namespace: str  # this home's namespace (ray_placement.namespace_for)
    node_address: str  # the address workers listen on and are reached at; "": each node's own Ray address
    node_dir: str  # each node's modelhost folder (content cache, packages, logs), on the node
    placement_timeout_s: float  # how long an instance may wait for the cluster to have room for it
    max_extract_bytes: int  # MODELHOST_MAX_EXTRACT_BYTES, applied on the nodes
    local_roots: tuple[str, ...] | None  # MODELHOST_LOCAL_DATA_ROOTS in force, applied on the nodes
    allow_private_http: bool  # MODELHOST_ALLOW_PRIVATE_MODEL_DATA, applied on the nodes


class _InstanceActor:
    """One worker's owner on its node (all Ray calls on the node side are here; the work is NodeInstance's)."""

    def __init__(self, launch: NodeLaunch) -> None:
        gpu_ids = tuple(int(g) for g in ray.get_gpu_ids())
        address = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self._node = NodeInstance(launch, address, gpu_ids, ray.get_runtime_context().get_node_id())

    def begin(self) -> Placed:
        return self._node.begin()

    def wait(self) -> int:
        return self._node.wait()

    def failure(self) -> tuple[str, str] | None:
        return self._node.failure()

    def read_log(self, offset: int) -> tuple[bytes, int]:
        return self._node.read_log(offset)

    def stop(self, grace_s: float) -> int | None:
        return self._node.stop(grace_s)

    def kill(self) -> None:
        self._node.kill()

    def discard(self) -> None:
        self._node.discard()


_RemoteActor: Any = ray.remote(_InstanceActor)
ACTOR_CALLS_AT_ONCE = 8  # wait() holds one of the actor's threads for the worker's life; the rest answer


@dataclass(slots=True)
class _Running:
    actor: Any  # the ActorHandle
    done: Any  # ObjectRef of actor.wait(): ready once the worker exited
    group_id: str
    log_path: Path
    node_address: str
    node_id: str = ""  # the node's Ray id: a lost node's instances count once toward the crash loop
    offset: int = 0  # bytes of the node's log already copied to log_path
    exit_code: int | None = None
    lost: str = ""  # why the actor is gone, when it died with its node
    killed: bool = False  # `kill` was called: nothing more is asked of it but to go
    log_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(slots=True)
class _Group:
    placement: PlacementGroup
    members: set[str]  # instance ids of its started copies


class RayClusterLauncher:
    def __init__(self, settings: RaySettings, logs_dir: Path) -> None:
        self._settings = settings
        self._logs_dir = logs_dir
        self._running: dict[str, _Running] = {}
        self._groups: dict[str, _Group] = {}
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._stop_pulling = threading.Event()
        self._puller: threading.Thread | None = None

    # the cluster -----------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster as a driver in this home's namespace and start pulling logs. Raises ConnectionError."""
        if self._settings.address:
            _check_reachable(self._settings.address)
        previous = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(
                address=self._settings.address or "auto",
                namespace=self._settings.namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConnectionError(f"cannot join the Ray cluster at {self._settings.address or 'auto'}: {exc}") from exc
        finally:  # ray.init makes SIGTERM exit at once; the server's own handler drains the workers first
            if previous is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
        self._puller = threading.Thread(target=self._pull_logs, name="ray log puller", daemon=True)
        self._puller.start()

    def inventories(self) -> tuple[Inventory, Inventory]:
        """(the whole cluster, its largest node) from the live nodes now; raises ValueError when none can run."""
        nodes = live_nodes(ray.nodes())  # type: ignore[no-untyped-call]
        return cluster_inventory(nodes), largest_node(nodes)

    def log_dir(self, endpoint_name: str) -> Path:
        return self._logs_dir / endpoint_name.lower()

    # starting --------------------------------------------------------------------------------
    def start(self, request: LaunchRequest) -> Worker:
        """Place the worker and start its actor; blocks until the actor runs on its node (call it from a thread).
        Raises InsufficientCapacity when the cluster has no room in time, OSError when the actor fails."""
        log_path = self.log_dir(request.endpoint_name) / request.log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(log_path, "ab") as f:
            for note in (*request.notes, f"asking the Ray cluster for {describe(bundle(request))}"):
                f.write(f"{stamp} [modelhost] {note}\n".encode())
        group = self._placement(request)
        token = secrets.token_urlsafe(32)
        launch = NodeLaunch(
            request=request,
            host=self._settings.node_address,
            node_dir=self._settings.node_dir,
            max_extract_bytes=self._settings.max_extract_bytes,
            local_roots=self._settings.local_roots,
            allow_private_http=self._settings.allow_private_http,
            router_token=token,
        )
        wanted = bundle(request)
        actor = _RemoteActor.options(
            name=request.instance_id,
            max_restarts=0,
            max_concurrency=ACTOR_CALLS_AT_ONCE,
            num_cpus=wanted["CPU"],
            num_gpus=wanted.get("GPU", 0),
            memory=wanted.get("memory"),
            scheduling_strategy=PlacementGroupSchedulingStrategy(group.placement, request.copy_index),
        ).remote(launch)
        try:
            placed: Placed = ray.get(actor.begin.remote(), timeout=CALL_TIMEOUT_S)
        except (RayError, GetTimeoutError) as exc:
            ray.kill(actor, no_restart=True)
            self._leave_group(request.group_id, request.instance_id)
            raise OSError(f"the worker's actor could not start on the Ray cluster: {_first_line(exc)}") from exc
        running = _Running(
            actor, actor.wait.remote(), request.group_id, log_path, placed.node_address, node_id=placed.node_id
        )
        with self._lock:
            self._running[request.instance_id] = running
        log.info("started worker %s on Ray node %s at %s", request.instance_id, placed.node_address, placed.url)
        return Worker(
            instance_id=request.instance_id,
            group_id=request.group_id,
            endpoint_name=request.endpoint_name,
            variant_name=request.variant_name,
            url=placed.url,
            log_path=log_path,
            router_token=token,
            memory_bytes=request.memory_bytes,
            gpu_ids=(),  # its GPUs (placed.gpu_ids, in its log) are the node's: this host's GPU metrics are not its
        )

    def _placement(self, request: LaunchRequest) -> _Group:
        """The instance's placement group: made (and waited for) with its first copy, shared by the others."""
        with self._lock:
            group = self._groups.get(request.group_id)
            if group is not None:
                group.members.add(request.instance_id)
                return group
        wanted = bundle(request)
        placement = placement_group([wanted] * request.copies, strategy="STRICT_PACK")
        try:
            ray.get(placement.ready(), timeout=self._settings.placement_timeout_s)
        except GetTimeoutError:
            remove_placement_group(placement)
            available = ray.available_resources()  # type: ignore[no-untyped-call]
            free = {k: v for k, v in available.items() if k in ("CPU", "GPU", "memory")}
            raise InsufficientCapacity(
                f"{request.instance_type} asks the Ray cluster for {request.copies} x ({describe(wanted)}) "
                "on one node; "
                f"no node had that free within {self._settings.placement_timeout_s:g} s "
                f"(free in the cluster: {describe_free(free)})"
            ) from None
        group = _Group(placement, {request.instance_id})
        with self._lock:
            self._groups[request.group_id] = group
        return group

    def _leave_group(self, group_id: str, instance_id: str) -> None:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return
            group.members.discard(instance_id)
            if group.members:
                return
            del self._groups[group_id]
        with contextlib.suppress(RayError):
            remove_placement_group(group.placement)

    # watching --------------------------------------------------------------------------------
    def poll(self, worker: Worker) -> int | None:
        running = self._running.get(worker.instance_id)
        if running is None:
            return -1
        if running.exit_code is not None:
            return running.exit_code
        ready, _ = ray.wait([running.done], timeout=0)
        if not ready:
            return None
        try:
            running.exit_code = int(ray.get(running.done))
        except RayError as exc:
            running.lost = _first_line(exc)
            running.exit_code = NODE_LOST_EXIT
            log.warning("worker %s on Ray node %s is gone: %s", worker.instance_id, running.node_address, running.lost)
        return running.exit_code

    async def ping(self, worker: Worker, timeout_s: float) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False)
        try:
            response = await self._client.get(f"{worker.url}{PING_PATH}", timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def failure(self, worker: Worker) -> FailureRecord | None:
        """Why the worker stopped: its node or actor died, or the record the node kept (blocking, briefly)."""
        running = self._running.get(worker.instance_id)
        if running is None or running.killed:
            return None
        if running.lost:
            return FailureRecord(
                PHASE_LOAD,
                f"the Ray node {running.node_address} running the instance was lost ({running.lost})",
                lost_node=running.node_id or running.node_address,
            )
        self._pull(running, QUICK_CALL_TIMEOUT_S)
        try:
            record = ray.get(running.actor.failure.remote(), timeout=QUICK_CALL_TIMEOUT_S)
        except (RayError, GetTimeoutError):
            return None
        return None if record is None else FailureRecord(*record)

    def pid(self, worker: Worker) -> int | None:
        """None: the worker's process is on its node, not on this host."""
        return None

    # logs ------------------------------------------------------------------------------------
    def _pull_logs(self) -> None:
        while not self._stop_pulling.wait(LOG_PULL_INTERVAL_S):
            with self._lock:
                running = [r for r in self._running.values() if not r.lost and not r.killed]
            for item in running:
                try:
                    self._pull(item)
                except Exception:  # the loop must go on: one unreadable log is not the others' problem
                    log.exception("pulling a worker log from node %s failed", item.node_address)

    def _pull(self, running: _Running, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Copy the node's new log bytes into the server's instance log."""
        if not running.log_lock.acquire(timeout=timeout_s):
            return
        try:
            while True:
                try:
                    chunk, offset = ray.get(running.actor.read_log.remote(running.offset), timeout=timeout_s)
                except (RayError, GetTimeoutError):
                    return
                if not chunk:
                    return
                with open(running.log_path, "ab") as f:
                    f.write(chunk)
                running.offset = offset
        finally:
            running.log_lock.release()

    # stopping --------------------------------------------------------------------------------
    def stop(self, worker: Worker, grace_s: float) -> None:
        """SIGTERM-then-SIGKILL on its node, the rest of its log copied, then the actor and its bundle freed."""
        running = self._running.get(worker.instance_id)
        if running is None:
            return
        if not running.lost:
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(running.actor.stop.remote(grace_s), timeout=grace_s + CALL_TIMEOUT_S)
            self._pull(running)
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(running.actor.discard.remote(), timeout=CALL_TIMEOUT_S)
        with contextlib.suppress(RayError, ValueError):
            ray.kill(running.actor, no_restart=True)
        with self._lock:
            self._running.pop(worker.instance_id, None)
        self._leave_group(running.group_id, worker.instance_id)
        log.info("stopped worker %s on Ray node %s", worker.instance_id, running.node_address)

    def kill(self, worker: Worker) -> None:
        """SIGKILL the worker on its node (without waiting); it then reads as exited, and `stop` frees the rest."""
        running = self._running.get(worker.instance_id)
        if running is None:
            return
        with contextlib.suppress(RayError):
            running.actor.kill.remote()
        running.killed = True
        if running.exit_code is None:
            running.exit_code = NODE_LOST_EXIT

    def recover_stale(self) -> list[str]:
        """Kill the actors in this home's namespace that this server did not start (a previous server's)."""
        stopped = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            name, namespace = _named(entry)
            if namespace != self._settings.namespace or name in self._running:
                continue
            with contextlib.suppress(RayError, ValueError):
                ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
                stopped.append(name)
                log.info("stopped worker %s left on the Ray cluster by a previous server", name)
        return stopped

    async def aclose(self) -> None:
        """Stop pulling logs and leave the cluster (actors still running die with this driver)."""
        self._stop_pulling.set()
        if self._puller is not None:
            self._puller.join(timeout=5)
        if self._client is not None:
            await self._client.aclose()
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT cluster address must answer a TCP connect: ray.init retries an absent GCS for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", ray:// and the like: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(
            f"cannot join the Ray cluster at {address}: nothing answers there ({exc.strerror or exc}); "
            "start it with `ray start --head --port PORT` or give --ray-address / RAY_ADDRESS of its head"
        ) from exc


def _named(entry: Any) -> tuple[str, str]:
    if isinstance(entry, dict):
        return str(entry.get("name", "")), str(entry.get("namespace", ""))
    return str(entry), ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def describe_free(free: dict[str, float]) -> str:
    parts = [f"{free.get('CPU', 0):g} CPU", f"{free.get('GPU', 0):g} GPU"]
    parts.append(f"{free.get('memory', 0) / 1024**3:.1f} GiB memory")
    return ", ".join(parts)
