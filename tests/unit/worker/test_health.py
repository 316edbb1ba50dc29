"""/ping's health verdict: the pure deciders, and the handler- and engine-mode /ping that use them."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from modelhost.worker.engine.types import Backend, EngineConfig
from modelhost.worker.engine_mode.server import EngineEndpoints, create_engine_app
from modelhost.worker.handler.server import create_app
from modelhost.worker.handler.service import HandlerService
from modelhost.worker.handler.thread import HandlerThread
from modelhost.worker.health import HEALTHY, Health, engine_health, handler_health
from modelhost.worker.properties import build_serving_properties
from tests.fake_backend import FakeBackend


# the pure deciders ---------------------------------------------------------------------------
def test_an_idle_handler_or_a_call_without_deadline_is_healthy() -> None:
    assert handler_health(None, None, 100.0) == HEALTHY
    assert handler_health(None, 5.0, 100.0) == HEALTHY
    assert handler_health(0.0, None, 1e6) == HEALTHY  # e.g. closing a stream's iterator


def test_a_call_within_its_deadline_and_grace_is_healthy() -> None:
    assert handler_health(10.0, 5.0, 14.9).healthy
    assert handler_health(10.0, 5.0, 15.5, grace_s=1.0).healthy  # overran by 0.5 s: within the grace
    assert handler_health(10.0, 5.0, 16.0, grace_s=1.0).healthy  # exactly at the grace


def test_a_call_past_deadline_and_grace_is_unhealthy_with_its_overrun() -> None:
    health = handler_health(10.0, 5.0, 27.3, grace_s=1.0)
    assert not health.healthy
    assert health.reason is not None
    assert health.reason.startswith("handler busy 12.3 s past its 5 s predict_timeout")
    assert health.body() == {"status": "unhealthy", "reason": health.reason}


def test_engine_step_bound() -> None:
    assert engine_health(None) == HEALTHY
    assert engine_health(0.0, bound_s=1.0) == HEALTHY
    assert engine_health(59.0, bound_s=60.0) == HEALTHY  # a long prefill on a slow CPU is not a hang
    stuck = engine_health(75.25, bound_s=60.0)
    assert not stuck.healthy
    assert stuck.reason == "engine step running for 75.2 s (more than 60 s): the engine is stuck"


def test_healthy_body() -> None:
    assert Health(True).body() == {"status": "healthy"}


# handler mode /ping ----------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def handler_app(tmp_path: Path) -> Iterator[tuple[TestClient, HandlerThread, FakeClock]]:
    (tmp_path / "model.py").write_text(
        textwrap.dedent(
            """
            from djl_python import Output
            def handle(inputs):
                return None if inputs.is_empty() else Output().add("ok")
            """
        )
    )
    props = build_serving_properties("engine=Python\noption.predict_timeout=5\n", {})
    clock = FakeClock()
    thread = HandlerThread(clock=clock)
    app = create_app(HandlerService(props, tmp_path, device_id="-1", env={}), thread, lambda reason: None)
    with TestClient(app) as client:
        yield client, thread, clock
    sys.modules.pop("model", None)


def _wait_busy(thread: HandlerThread) -> None:
    deadline = time.monotonic() + 5
    while thread.busy() is None:
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.01)


def test_handler_ping_is_503_while_a_call_is_stuck_past_its_deadline(
    handler_app: tuple[TestClient, HandlerThread, FakeClock],
) -> None:
    client, thread, clock = handler_app
    deadline = time.monotonic() + 10
    while client.get("/ping").status_code != 200:  # the model loads in the background
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.get("/ping").json() == {"status": "healthy"}
    release = threading.Event()
    thread.submit(release.wait, timeout_s=5.0)  # a call allowed 5 s that does not return
    _wait_busy(thread)
    clock.now_s += 5.5
    assert client.get("/ping").status_code == 200  # past the deadline, within the grace
    clock.now_s += 6.8
    ping = client.get("/ping")
    assert ping.status_code == 503
    assert ping.json()["status"] == "unhealthy"
    assert ping.json()["reason"].startswith("handler busy 7.3 s past its 5 s predict_timeout")
    release.set()  # the call returns: healthy again
    deadline = time.monotonic() + 5
    while thread.busy() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.get("/ping").status_code == 200


# engine mode /ping -----------------------------------------------------------------------------
def test_engine_ping_is_503_while_one_step_runs_past_the_bound() -> None:
    backend = FakeBackend(EngineConfig("fake/model", max_model_len=64, max_batch_size=2))
    step_s = {"now": 0.0}
    backend.stats = lambda: {"current_step_s": step_s["now"]}  # type: ignore[method-assign]

    async def load() -> Backend:
        await backend.start()
        return backend

    endpoints = EngineEndpoints(load, "lmi", "ep", lambda reason: None, step_bound_s=30.0)
    with TestClient(create_engine_app(endpoints)) as client:
        deadline = time.monotonic() + 10
        while client.get("/ping").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        step_s["now"] = 29.0
        assert client.get("/ping").status_code == 200
        step_s["now"] = 31.0
        ping = client.get("/ping")
        assert ping.status_code == 503
        assert ping.json() == {"status": "unhealthy", "reason": endpoints.health().reason}
        assert "engine step running for 31.0 s" in ping.json()["reason"]
        step_s["now"] = 0.0
        assert client.get("/ping").status_code == 200
