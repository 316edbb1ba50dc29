"""Deadline and throttled progress of one model-data transfer (ModelDataDownloadTimeoutInSeconds); no I/O."""

from __future__ import annotations

from collections.abc import Callable

from modelhost.contracts.worker import PHASE_DOWNLOAD
from modelhost.errors import DeploymentError

# Receives one human-readable line, e.g. "downloading s3://b/k: 12.0 MiB of 240.0 MiB (5%)".
Progress = Callable[[str], None]
Clock = Callable[[], float]  # monotonic seconds

REPORT_EVERY_PERCENT = 5
REPORT_EVERY_S = 1.0


class Transfer:
    """Counts the bytes of one prepare() against its deadline and reports progress every 5% or 1 s."""

    def __init__(self, uri: str, timeout_s: float, clock: Clock, progress: Progress | None = None) -> None:
        self.uri = uri
        self.timeout_s = timeout_s
        self._clock = clock
        self._progress = progress
        self._started_s = clock()
        self.total_bytes: int | None = None
        self.done_bytes = 0
        self._reported_s = self._started_s
        self._reported_percent = 0

    def elapsed_s(self) -> float:
        return self._clock() - self._started_s

    def remaining_s(self) -> float:
        return self.timeout_s - self.elapsed_s()

    def expired(self) -> bool:
        return self.remaining_s() <= 0

    def check_deadline(self) -> None:
        """Raise DeploymentError("download") once the timeout has passed."""
        if self.expired():
            raise self.timeout_error()

    def timeout_error(self) -> DeploymentError:
        total = f" of {_size(self.total_bytes)}" if self.total_bytes is not None else ""
        return DeploymentError(
            PHASE_DOWNLOAD,
            f"model data did not download within {self.timeout_s:g} s (ModelDataDownloadTimeoutInSeconds); "
            f"only {_size(self.done_bytes)}{total} had arrived from {self.uri}. Raise "
            "ModelDataDownloadTimeoutInSeconds or move the data closer",
        )

    def start(self, total_bytes: int | None) -> None:
        """Begin counting (again) toward `total_bytes` (None when unknown)."""
        self.total_bytes = total_bytes
        self.done_bytes = 0
        self.report(f"downloading {self.uri}" + (f" ({_size(total_bytes)})" if total_bytes is not None else ""))

    def advance(self, n_bytes: int) -> None:
        """Count `n_bytes` more; raise past the deadline; report when 5% more or 1 s has passed."""
        self.done_bytes += n_bytes
        self.check_deadline()
        now_s = self._clock()
        percent = self._percent()
        if percent is not None and percent >= self._reported_percent + REPORT_EVERY_PERCENT:
            self._reported_percent = percent - percent % REPORT_EVERY_PERCENT
        elif now_s - self._reported_s < REPORT_EVERY_S:
            return
        self._reported_s = now_s
        shown = _size(self.done_bytes)
        if percent is not None:
            shown += f" of {_size(self.total_bytes)} ({percent}%)"
        self.report(f"downloading {self.uri}: {shown}")

    def finish(self) -> None:
        self.report(f"downloaded {self.uri}: {_size(self.done_bytes)} in {self.elapsed_s():.1f} s")

    def report(self, line: str) -> None:
        if self._progress is not None:
            self._progress(line)

    def _percent(self) -> int | None:
        if not self.total_bytes:
            return None
        return min(100, self.done_bytes * 100 // self.total_bytes)


def _size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "? bytes"
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    value = n_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
