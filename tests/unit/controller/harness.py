"""A whole control plane on fakes: records in a temporary SQLite file, FakeLauncher, FakePreparer, FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from modelhost.controller.apply import Applier, Timeouts
from modelhost.controller.instances import InstanceStarter
from modelhost.controller.loop import ControlLoop, LoopSettings
from modelhost.resources.endpoint import Endpoint
from modelhost.router.admission import Admission
from modelhost.router.table import RoutingTable
from modelhost.scheduler.inventory import GIB, GpuLedger, Inventory
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore
from tests.fakes.clock import FakeClock
from tests.fakes.launcher import FakeLauncher
from tests.fakes.preparer import FakePreparer


class Harness:
    def __init__(self, tmp_path: Path, store: SqliteStore | None = None) -> None:
        self.clock = FakeClock()
        if store is None:
            store = SqliteStore(tmp_path / "store.db")
            store.open()
        self.store = store
        self.records = Records(store)
        self.launcher = FakeLauncher(tmp_path / "logs")
        self.preparer = FakePreparer(tmp_path / "models")
        self.table = RoutingTable()
        self.admission = Admission(self.table, 4, 8)
        self.ledger = GpuLedger()
        starter = InstanceStarter(
            self.launcher,
            Inventory(gpus=(), cpus=2, memory_bytes=8 * GIB),
            self.ledger,
            lambda env, model_ids: dict(env),
            self.clock,
            ping_interval_s=0.5,
            base_environment={},
        )
        self.applier = Applier(
            self.records,
            self.launcher,
            starter,
            self.preparer,
            self.table,
            self.admission,
            self.clock,
            Timeouts(download_s=30.0, startup_s=30.0),
            wake=lambda: None,
        )
        self.loop = ControlLoop(
            self.records, self.applier, self.launcher, self.table, self.clock, LoopSettings(0.5, 5.0, 3)
        )

    def put(self, endpoint: Endpoint) -> None:
        self.records.endpoints.put(endpoint.name, endpoint)

    def get(self, name: str = "ep") -> Endpoint:
        endpoint = self.records.endpoints.get(name)
        assert endpoint is not None
        return endpoint

    def change(self, name: str, change: Callable[[Endpoint], Endpoint]) -> None:
        self.records.endpoints.update(name, change)

    async def settle(self, max_passes: int = 300) -> None:
        """Tick until three passes in a row find no operation running (time moves by the control interval)."""
        quiet = 0
        for _ in range(max_passes):
            self.loop.tick()
            for _ in range(20):
                await asyncio.sleep(0.001)
                if not self.loop.operations():
                    break
            quiet = 0 if self.loop.operations() else quiet + 1
            if quiet == 3:
                return
            self.clock.advance(0.5)
        raise AssertionError(f"the control loop did not settle: {self.loop.operations()}")

    def run(self, scenario: Callable[[], object]) -> None:
        asyncio.run(scenario())  # type: ignore[arg-type]
