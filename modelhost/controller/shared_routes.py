"""Routes shared through the store, so every server of a shared (PostgreSQL) store can route to the leader's workers.

The leader's `RoutePublisher` writes each endpoint's route from its routing table (instance URLs, router tokens,
variants, weights; only instances that passed their health checks are in a route) as a record of kind "route",
when it changes, and deletes the records of routes it no longer holds. Its first pass deletes every route it
does not hold, which clears a dead leader's routes; a leader that stops gracefully deletes its records first
(`withdraw`), so followers answer ServiceUnavailable (retryable) rather than send to workers that are gone. A
follower's `RouteFollower` reads those records every `interval_s` and installs what changed into its own table,
so its router sends InvokeEndpoint to the leader's workers; when it stops following (it was elected) it removes
every route it installed from the table, so the new leader's table, which it publishes, holds only its own
workers. A follower cannot check workers' health: the instances its router finds unreachable are only skipped
until the leader publishes the endpoint again.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from dataclasses import dataclass

from modelhost.router.table import EndpointRoute, RoutingTable
from modelhost.store.errors import StoreError
from modelhost.store.records import Records, RecordTable

log = logging.getLogger(__name__)

ROUTE_KIND = "route"
PUBLISH_INTERVAL_S = 0.5
FOLLOW_INTERVAL_S = 1.0
WITHDRAW_DRAIN_S = FOLLOW_INTERVAL_S + 0.5  # after withdrawing, the workers serve on while followers drop the routes
WHERE = "shared routes"


@dataclass(frozen=True, slots=True)
class PublishedRoute:
    leader: str  # the server that published it: "host:port (pid N)"
    route: EndpointRoute


def route_table(records: Records) -> RecordTable[PublishedRoute]:
    return RecordTable(records.store, ROUTE_KIND, PublishedRoute, records.problems)


class _Syncing(abc.ABC):
    """What the publisher and the follower share: a loop that survives store failures and says why it fails."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self.problem: str | None = None
        self._lock = threading.Lock()  # `once` runs in a thread; what ends it waits for its pass to finish

    @abc.abstractmethod
    def once(self) -> None: ...

    async def run(self) -> None:
        try:
            while True:
                try:
                    await asyncio.to_thread(self.once)
                except StoreError as exc:
                    if self.problem is None:
                        log.warning("%s: %s; retrying", WHERE, exc)
                    self.problem = str(exc)
                else:
                    self.problem = None
                await asyncio.sleep(self._interval_s)
        finally:
            self.problem = None  # a follower elected leader no longer follows: its last failure is moot

    def problems(self) -> list[str]:
        return [] if self.problem is None else [f"{WHERE}: {self.problem}"]


class RoutePublisher(_Syncing):
    """The leader's side: its routing table, mirrored into the store."""

    def __init__(
        self, records: Records, table: RoutingTable, leader: str, interval_s: float = PUBLISH_INTERVAL_S
    ) -> None:
        super().__init__(interval_s)
        self._routes = route_table(records)
        self._table = table
        self._leader = leader
        self._published: dict[str, EndpointRoute] | None = None  # None until the first pass has read the store
        self._withdrawn = False

    def once(self) -> None:
        """Writes the routes that changed since the last pass and deletes the ones the table no longer has."""
        with self._lock:
            if self._withdrawn:
                return
            current = self._table.installed_routes()
            if self._published is None:  # what a previous leader published is stale: its workers died with it
                for key in {r.route.name.lower() for r in self._routes.list()} - set(current):
                    self._routes.delete(key)
                self._published = {}
            for key in set(self._published) - set(current):
                self._routes.delete(key)
                del self._published[key]
            for key, route in current.items():
                if self._published.get(key) != route:
                    self._routes.put(key, PublishedRoute(self._leader, route))
                    self._published[key] = route

    def withdraw(self) -> int:
        """A leader stopping gracefully, while it still holds the lock: every route it published deleted, and
        nothing published after (blocking; StoreError when the store cannot be written). Returns how many; the
        caller keeps the workers up `WITHDRAW_DRAIN_S` longer, until every follower has dropped them."""
        with self._lock:
            self._withdrawn = True
            published = self._published or {}
            withdrawn = len(published)
            for key in sorted(published):
                self._routes.delete(key)
                del published[key]
            return withdrawn


class RouteFollower(_Syncing):
    """A follower's side: the leader's published routes, installed into this server's table."""

    def __init__(self, records: Records, table: RoutingTable, interval_s: float = FOLLOW_INTERVAL_S) -> None:
        super().__init__(interval_s)
        self._routes = route_table(records)
        self._table = table
        self._installed: dict[str, EndpointRoute] = {}
        self._following = True

    async def run(self) -> None:
        """Follows until cancelled (this server was elected); then every route it installed is removed from the
        table: they lead to the previous leader's workers, which the new leader must neither route to nor publish."""
        self._following = True
        try:
            await super().run()
        finally:
            self.stop_following()

    def stop_following(self) -> None:
        """Every followed route removed from the table, and none installed after (a pass still running in its
        thread finds `_following` false)."""
        with self._lock:
            self._following = False
            for key in sorted(self._installed):
                self._table.remove(key)
            self._installed.clear()

    def once(self) -> None:
        """Installs the published routes that changed and removes the ones no longer published."""
        stored = {r.route.name.lower(): r.route for r in self._routes.list()}
        with self._lock:
            if not self._following:
                return
            for key in set(self._installed) - set(stored):
                self._table.remove(key)
                del self._installed[key]
            for key, route in stored.items():
                if self._installed.get(key) != route:
                    self._table.install(route)  # a new route clears this server's suspicion of its instances
                    self._installed[key] = route
            self._table.take_unreachable()  # only the leader can ping and replace workers; drop the reports
