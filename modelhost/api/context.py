"""What every API handler gets: the records, the settings and the caller's region."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelhost import ids
from modelhost.scheduler.inventory import Inventory
from modelhost.settings import ServerSettings
from modelhost.store.records import Records


@dataclass(frozen=True, slots=True)
class ApiContext:
    records: Records
    settings: ServerSettings
    region: str  # from the request's SigV4 scope, else the configured region
    now: Callable[[], float]  # epoch seconds
    wake_controller: Callable[[], None]  # desired state changed: reconcile soon
    inventory: Inventory  # this host's GPUs, CPUs and memory
    quotas: Mapping[str, int]  # configured instance limits per type (MODELHOST_QUOTAS)

    def arn(self, kind: str, name: str) -> str:
        return ids.arn(kind, name, region=self.region, account_id=self.settings.account_id)
