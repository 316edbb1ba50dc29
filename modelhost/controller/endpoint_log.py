"""The endpoint's own log (what the controller did and why), beside its instances' logs."""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def utc_stamp() -> str:
    """The time a log line starts with: UTC, with its zone (the CloudWatch Logs API reads it)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class EndpointLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: str) -> None:
        """Append one line; a log that cannot be written (full disk) never stops the controller."""
        stamp = utc_stamp()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{stamp} [modelhost] {message}\n")
        except OSError as exc:
            log.warning("cannot write %s (%s): %s", self.path, exc, message)


def last_log_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log, for a FailureReason."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""
