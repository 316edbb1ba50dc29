"""The endpoint lifecycle through the real loop, applier and planner, on fakes (no processes, no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from modelhost.resources.endpoint import Endpoint, PendingUpdate, initial_state
from modelhost.resources.status import EndpointStatus as S
from modelhost.store.errors import StoreUnavailable
from tests.fakes.launcher import StartFailure
from tests.fakes.records import NOW, endpoint, variant_spec
from tests.unit.controller.harness import Harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def route_instances(h: Harness, name: str = "ep") -> list[str]:
    installed = h.table.get(name)
    assert installed is not None
    return [i.instance_id for v in installed.route.variants for i in v.instances]


def test_create_goes_in_service_and_installs_a_route(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        ep = h.get()
        assert ep.status == S.IN_SERVICE
        assert (ep.states[0].current_count, ep.states[0].status) == (1, None)
        assert ep.states[0].deployed_image == "djl-inference"
        assert route_instances(h) == [w.worker.instance_id for w in h.launcher.running("ep")]

    h.run(scenario)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda h: h.preparer.failing.update({"file:///models/m": "no such file"}), "download failed: no such file"),
        (lambda h: h.launcher.start_failures.update({"m": StartFailure("load", "no model.py")}),
         "load failed: no model.py"),
        (lambda h: h.launcher.unhealthy_models.add("m"), "health check failed: The primary container for production "
         "variant AllTraffic did not pass the ping health check within 30 s"),
    ],
    ids=["download", "load", "health check"],
)  # fmt: skip
def test_a_failed_phase_fails_the_endpoint_with_its_reason(h: Harness, setup: object, reason: str) -> None:
    async def scenario() -> None:
        setup(h)  # type: ignore[operator]
        h.put(endpoint())
        await h.settle()
        ep = h.get()
        assert ep.status == S.FAILED
        assert ep.failure_reason is not None and ep.failure_reason.startswith(reason)
        assert h.launcher.running() == []  # nothing is left running
        assert h.table.get("ep") is None

    h.run(scenario)


def begin_update(h: Harness, model_name: str) -> None:
    spec = variant_spec(model_name=model_name)
    pending = PendingUpdate("cfg2", (spec,), (initial_state(spec.variant, NOW),), NOW)
    h.change("ep", lambda e: e.begin_update(pending, NOW))


def test_update_moves_traffic_to_the_new_fleet_and_stops_the_old(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        old = route_instances(h)
        begin_update(h, "m2")
        await h.settle()
        ep = h.get()
        assert (ep.status, ep.config_name, ep.pending) == (S.IN_SERVICE, "cfg2", None)
        assert ep.variants[0].model.name == "m2"
        new = route_instances(h)
        assert new and set(new).isdisjoint(old)
        assert [w.worker.instance_id for w in h.launcher.running()] == new

    h.run(scenario)


def test_a_failed_update_rolls_back_and_keeps_serving(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        old = route_instances(h)
        h.launcher.start_failures["bad"] = StartFailure("load", "ImportError: no module named vllm")
        begin_update(h, "bad")
        seen = []
        real_update = h.records.endpoints.update

        def spy(name: str, change: Callable[[Endpoint], Endpoint | None]) -> Endpoint | None:
            result = real_update(name, change)
            if result is not None and (not seen or seen[-1] != result.status):
                seen.append(result.status)
            return result

        h.records.endpoints.update = spy  # type: ignore[method-assign]
        await h.settle()
        ep = h.get()
        assert seen[-2:] == [S.ROLLING_BACK, S.IN_SERVICE]
        assert (ep.status, ep.config_name) == (S.IN_SERVICE, "cfg")
        assert ep.failure_reason == "Update rolled back: load failed: ImportError: no module named vllm"
        assert route_instances(h) == old
        assert [w.worker.instance_id for w in h.launcher.running()] == old

    h.run(scenario)


def test_scale_out_and_in(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        h.change("ep", lambda e: e.with_desired({"AllTraffic": (None, 3)}, NOW))
        await h.settle()
        assert (h.get().status, h.get().states[0].current_count, len(route_instances(h))) == (S.IN_SERVICE, 3, 3)
        first = route_instances(h)[0]
        h.change("ep", lambda e: e.with_desired({"AllTraffic": (0.5, 1)}, NOW))
        await h.settle()
        ep = h.get()
        assert (ep.status, ep.states[0].current_count, ep.states[0].current_weight) == (S.IN_SERVICE, 1, 0.5)
        assert route_instances(h) == [first]  # the newest go first
        assert len(h.launcher.running()) == 1

    h.run(scenario)


def test_a_dead_instance_is_replaced_and_a_crash_loop_is_reported(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        first = route_instances(h)[0]
        h.launcher.crash(first)
        await h.settle()
        replacement = route_instances(h)
        assert replacement and replacement != [first]
        assert h.get().states[0].current_count == 1
        h.launcher.start_failures["m"] = StartFailure("load", "CUDA error: out of memory")
        h.launcher.crash(route_instances(h)[0])
        for _ in range(4):
            await h.settle()
            h.clock.advance(120)  # past the growing backoff
        ep = h.get()
        assert ep.status == S.IN_SERVICE and ep.states[0].current_count == 0
        assert (ep.states[0].status_message or "").startswith("crash loop: ")
        assert "CUDA error: out of memory" in (ep.states[0].status_message or "")

    h.run(scenario)


def test_delete_stops_everything_and_removes_the_record(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        h.change("ep", lambda e: e.mark_deleting(NOW))
        await h.settle()
        assert h.records.endpoints.get("ep") is None
        assert h.launcher.running() == [] and h.table.get("ep") is None

    h.run(scenario)


def test_a_server_restart_brings_endpoints_back_as_they_were(tmp_path: Path) -> None:
    first = Harness(tmp_path)

    async def before() -> None:
        first.put(endpoint())
        await first.settle()
        first.change("ep", lambda e: e.with_desired({"AllTraffic": (None, 2)}, NOW))
        await first.settle()

    first.run(before)
    second = Harness(tmp_path, store=first.store)
    second.launcher.stale = ["left-over"]

    async def after() -> None:
        assert second.table.get("ep") is None
        await second.settle()
        ep = second.get()
        assert (ep.status, ep.states[0].current_count) == (S.IN_SERVICE, 2)
        assert len(route_instances(second)) == 2
        assert second.launcher.stale == []  # stale recovery ran

    second.run(after)


def test_an_unwritable_store_is_reported_retried_with_backoff_and_recovered(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = []
    real_update = h.records.endpoints.update

    def failing_update(name: str, change: object) -> object:
        attempts.append(h.clock.monotonic())
        raise StoreUnavailable(Path("store.db"), "write", "database or disk is full")

    async def scenario() -> None:
        h.put(endpoint())
        monkeypatch.setattr(h.records.endpoints, "update", failing_update)
        for _ in range(40):  # 20 s of control-loop passes
            h.loop.tick()
            await asyncio.sleep(0.002)
            h.clock.advance(0.5)
        assert h.loop.problems() and "disk is full" in h.loop.problems()[0]
        assert h.get().status == S.CREATING  # nothing was claimed that did not happen
        assert h.launcher.running() == []  # a failed attempt leaves nothing running
        assert len(attempts) < 20  # backoff, not a retry every pass
        monkeypatch.setattr(h.records.endpoints, "update", real_update)
        h.clock.advance(120)
        await h.settle()
        assert h.get().status == S.IN_SERVICE and h.loop.problems() == []

    h.run(scenario)


def test_the_loop_survives_a_failing_start_up_cleanup(h: Harness) -> None:
    async def scenario() -> None:
        h.launcher.recover_error = OSError(28, "No space left on device")
        h.put(endpoint())
        h.loop.tick()
        assert h.loop.problems() == ["control loop: OSError(28, 'No space left on device')"]
        h.launcher.recover_error = None
        await h.settle()
        assert h.loop.problems() == [] and h.get().status == S.IN_SERVICE

    h.run(scenario)


def test_an_unreachable_report_readmits_a_healthy_instance_and_replaces_a_dead_one(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        instance = route_instances(h)[0]
        h.table.report_unreachable("ep", instance)
        assert h.table.suspects("ep") == {instance}
        await h.settle()
        assert route_instances(h) == [instance] and h.table.suspects("ep") == frozenset()
        h.launcher.workers[instance].healthy = False
        h.table.report_unreachable("ep", instance)
        await h.settle()
        await h.settle()
        assert route_instances(h) != [instance] and len(route_instances(h)) == 1
        assert h.get().states[0].current_count == 1

    h.run(scenario)


def test_a_record_that_cannot_be_read_is_skipped_and_the_rest_keep_working(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint("good"))
        h.store.put("endpoint", "bad", {"format": 2, "record": {"name": "bad"}})
        await h.settle()
        assert h.get("good").status == S.IN_SERVICE
        assert any("'bad'" in line for line in h.records.problems.lines())

    h.run(scenario)


def slow_to_start(h: Harness) -> None:
    """Workers of model m never pass their health check, within a startup window that never ends."""
    h.launcher.unhealthy_models.add("m")
    spec = variant_spec()
    patient = replace(spec, variant=replace(spec.variant, startup_timeout_s=1e9))
    h.put(endpoint(variants=(patient,)))


def test_delete_cancels_a_running_deploy_and_leaves_nothing_running(h: Harness) -> None:
    async def scenario() -> None:
        slow_to_start(h)
        for _ in range(5):
            h.loop.tick()
            await asyncio.sleep(0.001)
        assert h.loop.operations() == {"ep": "deploy"} and len(h.launcher.running()) == 1
        h.change("ep", lambda e: replace(e, status=S.DELETING))  # as DeleteEndpoint would, had it been allowed
        await h.settle()
        assert h.records.endpoints.get("ep") is None
        assert h.launcher.running() == [] and h.ledger.in_use() == [] and h.applier.fleets == {}

    h.run(scenario)


def test_a_failing_delete_backs_off(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = []

    def failing_delete(name: str) -> bool:
        attempts.append(name)
        raise StoreUnavailable(Path("store.db"), "write", "database or disk is full")

    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        h.change("ep", lambda e: e.mark_deleting(NOW))
        monkeypatch.setattr(h.records.endpoints, "delete", failing_delete)
        for _ in range(200):  # 200 passes, 20 s of loop time
            h.loop.tick()
            await asyncio.sleep(0.001)
            h.clock.advance(0.1)
        assert 0 < len(attempts) < 15

    h.run(scenario)


def test_a_worker_that_cannot_be_started_fails_the_endpoint_and_frees_its_placement(h: Harness) -> None:
    async def scenario() -> None:
        h.launcher.start_errors["m"] = ValueError("embedded null byte")
        h.put(endpoint())
        await h.settle()
        ep = h.get()
        assert ep.status == S.FAILED
        assert ep.failure_reason == "load failed: the worker could not be started: embedded null byte"
        assert h.ledger.in_use() == [] and h.launcher.running() == []

    h.run(scenario)


def test_a_capacity_update_that_cannot_be_met_ends_in_service_with_the_reason(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        h.launcher.start_failures["m"] = StartFailure("load", "CUDA error: out of memory")
        h.change("ep", lambda e: e.with_desired({"AllTraffic": (None, 2)}, NOW))
        for _ in range(6):
            await h.settle()
            h.clock.advance(120)
        ep = h.get()
        assert (ep.status, ep.states[0].current_count, ep.states[0].desired_count) == (S.IN_SERVICE, 1, 2)
        assert "crash loop" in (ep.states[0].status_message or "")

    h.run(scenario)


def test_a_lost_ray_node_counts_once_toward_the_crash_loop(h: Harness) -> None:
    async def scenario() -> None:
        h.put(endpoint())
        await h.settle()
        h.change("ep", lambda e: e.with_desired({"AllTraffic": (None, 4)}, NOW))
        await h.settle()
        lost = route_instances(h)
        assert len(lost) == 4
        h.launcher.lose_node(lost, "node-a")  # all four ran on one node, which died
        await h.settle()  # no clock advance: one failure's backoff is none, four would be a crash loop
        ep = h.get()
        assert (ep.states[0].status_message or "") == ""
        assert ep.states[0].current_count == 4 and not set(route_instances(h)) & set(lost)
        assert h.applier.fleets["ep"]["AllTraffic"].lost_nodes == {"node-a"}

    h.run(scenario)
