"""What every CloudWatch operation gets: the metric store, the account, the region and the request's time."""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.monitoring.metric_store import SqliteMetricStore


@dataclass(frozen=True, slots=True)
class CloudWatchContext:
    store: SqliteMetricStore
    account_id: str  # what ListMetrics' OwningAccounts shows
    region: str  # the caller's region (SigV4 scope), else the server's
    now_s: float  # epoch seconds when the request arrived: retention, timestamp windows, RecentlyActive
