"""Two `modelhost server` processes on one PostgreSQL store: either answers the API, one leads; kill -9 of the
leader hands the endpoint to the other within seconds, and it serves again through the survivor."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.fleet.postgres import PostgresCluster
from tests.integration.server import ServerProcess, deploy, wait_status, worker_pids, write_echo_model

ROLE_TIMEOUT_S = 10.0

SLOW_MODEL_PY = """
import time
from djl_python import Input, Output

def handle(inputs: Input):
    if inputs.is_empty():
        return None
    body = inputs.get_as_string()
    if body == "slow":
        time.sleep(45)
    return Output().add_as_json({"echo": body})
"""

END_LOCK_SESSION = (
    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def role(server: ServerProcess) -> str:
    return str(httpx.get(f"{server.url}/_modelhost/health", timeout=5).json()["role"])


def invoke(runtime: Any, name: str) -> dict[str, Any]:
    body = runtime.invoke_endpoint(EndpointName=name, Body=b'{"x": 1}', ContentType="application/json")["Body"]
    return dict(json.loads(body.read()))


def invoke_within(runtime: Any, name: str, timeout_s: float) -> dict[str, Any]:
    """The first answer within `timeout_s` (a follower learns a route within ~1 s of the leader's publishing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return invoke(runtime, name)
        except ClientError as exc:
            if time.monotonic() > deadline:
                raise
            assert exc.response["Error"]["Code"] in ("ServiceUnavailable", "ModelError"), exc
            time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def servers(postgres_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Server A, then server B, each with its own home, on one PostgreSQL database."""
    env = {"MODELHOST_STORE_URL": postgres_url, "MODELHOST_HEALTH_INTERVAL_S": "1"}
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            started.append(ServerProcess(tmp_path / name, env=env).start())
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.mark.slow
def test_either_server_answers_and_the_survivor_takes_over_after_kill_9(
    servers: list[ServerProcess], postgres: PostgresCluster, postgres_url: str, echo_model: Path, tmp_path: Path
) -> None:
    a, b = servers
    assert (role(a), role(b)) == ("leader", "follower")
    sm_a, runtime_a = a.clients()
    sm_b, runtime_b = b.clients()
    deploy(sm_a, "shared-echo", str(echo_model))
    assert wait_status(sm_b, "shared-echo")["EndpointStatus"] == "InService"  # B reads A's writes
    assert [e["EndpointName"] for e in sm_b.list_endpoints()["Endpoints"]] == ["shared-echo"]
    through_b = invoke_within(runtime_b, "shared-echo", 10)  # B routes to the worker A started
    assert json.loads(through_b["echo"]) == {"x": 1}
    assert invoke(runtime_a, "shared-echo")["worker"] == through_b["worker"]
    with pytest.raises(ClientError, match="already existing endpoint"):
        sm_b.create_endpoint(EndpointName="SHARED-ECHO", EndpointConfigName="shared-echo")  # one name space
    old_workers = worker_pids(a.home)
    assert old_workers

    a.stop(signal.SIGKILL)
    killed = time.monotonic()
    statuses: list[str] = []
    takeover_s = None
    while True:  # DescribeEndpoint answers through B the whole time
        statuses.append(sm_b.describe_endpoint(EndpointName="shared-echo")["EndpointStatus"])
        if takeover_s is None and role(b) == "leader":
            takeover_s = time.monotonic() - killed
        if takeover_s is not None:
            try:
                answer = invoke(runtime_b, "shared-echo")
                break
            except ClientError as exc:
                assert exc.response["Error"]["Code"] in ("ServiceUnavailable", "ModelError"), exc
        assert time.monotonic() - killed < 90, f"not serving again; statuses {sorted(set(statuses))}"
        time.sleep(0.2)
    serving_again_s = time.monotonic() - killed
    assert takeover_s is not None and takeover_s < 5
    assert answer["worker"] != through_b["worker"]  # a new worker, started by the new leader
    assert wait_status(sm_b, "shared-echo")["EndpointStatus"] == "InService"
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in old_workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in old_workers)  # the dead leader's workers died with it
    print(f"\nleader takeover {takeover_s:.2f} s after kill -9; serving again through the survivor "
          f"{serving_again_s:.2f} s after it; statuses seen: {sorted(set(statuses))}")  # fmt: skip

    # A comes back, as a follower, and routes to the new leader's worker
    a2 = ServerProcess(tmp_path / "a", env=a.env).start()
    servers.append(a2)
    assert role(a2) == "follower"
    assert invoke_within(a2.clients()[1], "shared-echo", 10)["worker"] == answer["worker"]
    log_a = a.log_text() + a2.log_text() + b.log_text()
    assert postgres.password not in log_a  # the URL's password is never logged


@pytest.mark.slow
def test_a_follower_answers_service_unavailable_while_the_database_is_away_and_the_leader_steps_down(
    echo_model: Path, tmp_path: Path
) -> None:
    from tests.integration.fleet.conftest import start_cluster

    cluster = start_cluster()  # its own: this test stops it
    env = {"MODELHOST_STORE_URL": cluster.url()}
    leader = ServerProcess(tmp_path / "a", env=env).start()
    follower = ServerProcess(tmp_path / "b", env=env)
    try:
        follower.start()
        sm, _ = follower.clients()
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "x", "ModelDataUrl": str(echo_model)})
        cluster.stop()
        stopped = time.monotonic()
        with pytest.raises(ClientError) as caught:
            sm.describe_model(ModelName="m")
        answered_s = time.monotonic() - stopped
        assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert cluster.password not in str(caught.value)
        # clients learn nothing of the database (user, host, port, name, driver text); the log has it, redacted
        assert caught.value.response["Error"]["Message"] == "The control-plane store is unavailable; retry shortly."
        assert leader.process is not None
        leader.process.wait(timeout=60)  # it lost its lock: it must not lead beside a new leader
        exited_s = time.monotonic() - stopped
        assert "no longer leads the shared store" in leader.log_text()
        logged = f"the store postgresql://modelhost:***@127.0.0.1:{cluster.port}/postgres: "
        assert "store: cannot" in follower.log_text() and logged in follower.log_text()
        cluster.start()
        back = time.monotonic()
        deadline = back + 20
        while role(follower) != "leader":  # the follower takes over once the database is back
            assert time.monotonic() < deadline
            time.sleep(0.2)
        takeover_s = time.monotonic() - back
        assert sm.describe_model(ModelName="m")["ModelName"] == "m"
        print(f"\ndatabase stopped: the follower answered 503 in {answered_s:.2f} s, the leader exited after "
              f"{exited_s:.2f} s; database back: the follower leads {takeover_s:.2f} s later")  # fmt: skip
    finally:
        leader.stop()
        follower.stop()
        cluster.remove()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://app:s3cret-pw@127.0.0.1:{port}/nowhere", "cannot open the store postgresql://app:***@127.0.0.1"),
        ("mysql://app:s3cret-pw@127.0.0.1/x", "is not a PostgreSQL URL"),
    ],
)
def test_a_bad_or_unreachable_store_stops_the_server_with_one_line(tmp_path: Path, url: str, says: str) -> None:
    from modelhost.testing import free_port

    done = subprocess.run(
        [sys.executable, "-m", "modelhost", "server", "--home", str(tmp_path), "--port", str(free_port()),
         "--store-url", url.format(port=free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr


@pytest.mark.slow
def test_writes_through_a_follower_reach_the_leader(servers: list[ServerProcess], tmp_path: Path) -> None:
    from tests.integration.async_inference.test_async_inference import async_endpoint
    from tests.integration.server import write_echo_model

    a, b = servers
    sm_a, runtime_a = a.clients()
    sm_b, runtime_b = b.clients()
    started = time.monotonic()
    async_endpoint(sm_b, "via-follower", write_echo_model(tmp_path / "echo"), str(tmp_path / "out"))
    assert wait_status(sm_b, "via-follower")["EndpointStatus"] == "InService"  # the leader deployed it
    deployed_s = time.monotonic() - started
    assert worker_pids(a.home) and not worker_pids(b.home)  # only the leader runs workers
    answer = runtime_b.invoke_endpoint_async(EndpointName="via-follower", Body=b"queued on the follower")
    output = Path(answer["OutputLocation"])
    deadline = time.monotonic() + 30
    while not output.exists():  # the leader adopts the request the follower's intake stored, and runs it
        assert time.monotonic() < deadline, "the async request recorded by the follower never ran"
        time.sleep(0.2)
    assert b"queued on the follower" in output.read_bytes()
    sm_b.delete_endpoint(EndpointName="via-follower")
    deadline = time.monotonic() + 30
    while sm_a.list_endpoints()["Endpoints"]:
        assert time.monotonic() < deadline, "the delete recorded by the follower was not carried out"
        time.sleep(0.2)
    with pytest.raises(ClientError, match="not found|Could not find"):
        runtime_a.invoke_endpoint(EndpointName="via-follower", Body=b"x")
    print(f"\nendpoint created through the follower InService after {deployed_s:.2f} s")


@pytest.mark.slow
def test_a_deposed_leader_stops_its_workers_at_once_with_a_request_in_flight(
    servers: list[ServerProcess], postgres: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    """The leader's lock session ends (what a cut network comes to) while a slow request is in flight on it: its
    workers stop within seconds, not when uvicorn's graceful shutdown has waited for that request (up to a
    minute, beside the new leader's workers; fails without stopping the duties and workers before the signal)."""
    a, b = servers
    assert (role(a), role(b)) == ("leader", "follower")
    sm_a, runtime_a = a.clients()
    deploy(sm_a, "slow-echo", str(write_echo_model(tmp_path / "slow", model_py=SLOW_MODEL_PY)))
    assert wait_status(sm_a, "slow-echo")["EndpointStatus"] == "InService"
    workers = worker_pids(a.home)
    assert workers and invoke_within(runtime_a, "slow-echo", 10)["echo"] == '{"x": 1}'

    def slow_request() -> None:
        with contextlib.suppress(Exception):  # its worker is stopped under it: the answer is an error
            runtime_a.invoke_endpoint(EndpointName="slow-echo", Body=b"slow")

    in_flight = threading.Thread(target=slow_request, daemon=True)
    in_flight.start()
    time.sleep(1.0)  # the request is at the worker, sleeping
    postgres.execute(postgres_url, END_LOCK_SESSION)
    cut = time.monotonic()
    while any(alive(pid) for pid in workers):
        assert time.monotonic() - cut < 12, "the deposed leader's workers still run beside the new leader's"
        time.sleep(0.1)
    stopped_s = time.monotonic() - cut
    assert time.monotonic() - cut < 40  # long before the in-flight request would have ended by itself
    assert a.process is not None
    a.process.wait(timeout=60)
    log_a = a.log_text()
    assert "no longer leads the shared store" in log_a and "stopping its leader duties and workers" in log_a
    deadline = time.monotonic() + ROLE_TIMEOUT_S
    while role(b) != "leader":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    print(f"\nlock session ended: the deposed leader's workers stopped {stopped_s:.2f} s later")


@pytest.mark.slow
def test_a_leader_stopping_gracefully_sends_followers_no_model_errors(
    servers: list[ServerProcess], echo_model: Path
) -> None:
    """SIGTERM to the leader while requests go through the follower: the leader withdraws its routes and keeps
    its workers up until the follower dropped them, so the follower answers the retryable ServiceUnavailable,
    never a ModelError from a stopped worker, until it leads and serves again (fails without the withdrawal)."""
    a, b = servers
    sm_a, _ = a.clients()
    _, runtime_b = b.clients()
    deploy(sm_a, "graceful-echo", str(echo_model), count=2)  # one dead worker alone is a ServiceUnavailable
    assert wait_status(sm_a, "graceful-echo")["EndpointStatus"] == "InService"
    old_workers = {invoke_within(runtime_b, "graceful-echo", 10)["worker"]}
    assert a.process is not None
    a.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    codes: list[str] = []
    while True:
        try:
            answer = invoke(runtime_b, "graceful-echo")
            if time.monotonic() - stopped < 0.2:
                old_workers.add(answer["worker"])
            elif answer["worker"] not in old_workers:
                break  # the new leader's worker
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
        assert time.monotonic() - stopped < 90, f"not serving again; errors {sorted(set(codes))}"
        time.sleep(0.05)
    a.process.wait(timeout=30)  # (uvicorn re-raises SIGTERM once it has shut down: -15)
    assert "ModelError" not in codes, codes
    print(f"\nleader stopped gracefully: {len(codes)} ServiceUnavailable answers, serving again after "
          f"{time.monotonic() - stopped:.2f} s")  # fmt: skip
