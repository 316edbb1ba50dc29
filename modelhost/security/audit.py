"""The audit log: HOME/logs/audit.log, one JSON object a line for every mutating control-plane call.

Each line: `time` (ISO 8601 UTC), `identity` (the user ARN, or "anonymous" while no keys exist),
`access_key_id`, `operation`, `resource`, `decision` (allowed | denied). Values are JSON-encoded, so a
name with a newline cannot forge a line.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

AUDIT_FILE = "audit.log"


class AuditLog:
    def __init__(self, logs_dir: Path) -> None:
        self.path = logs_dir / AUDIT_FILE
        self._lock = threading.Lock()

    def record(self, *, identity: str, access_key_id: str | None, operation: str, resource: str, allowed: bool) -> None:
        line = json.dumps(
            {
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "identity": identity,
                "access_key_id": access_key_id,
                "operation": operation,
                "resource": resource,
                "decision": "allowed" if allowed else "denied",
            },
            ensure_ascii=True,
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(line + "\n")


_LOGS: dict[Path, AuditLog] = {}
_LOGS_LOCK = threading.Lock()


def audit_log_for(logs_dir: Path) -> AuditLog:
    with _LOGS_LOCK:
        log = _LOGS.get(logs_dir)
        if log is None:
            log = _LOGS[logs_dir] = AuditLog(logs_dir)
        return log
