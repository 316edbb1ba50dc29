"""The parent watchdog: a daemon thread that ends the worker once the process that started it is gone."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def is_process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an exited parent nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): existence is all we can tell
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state not in (["Z"], ["X"])


def _exit_now() -> None:
    logging.shutdown()
    os._exit(0)


def start_parent_watchdog(
    parent_pid: int, interval_s: float = 1.0, on_gone: Callable[[], None] = _exit_now
) -> threading.Thread:
    """Check every `interval_s` that `parent_pid` is alive (and still our parent if it was at start)."""
    was_parent = os.getppid() == parent_pid

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if not is_process_alive(parent_pid) or (was_parent and os.getppid() != parent_pid):
                log.warning("parent process %d is gone; worker exiting", parent_pid)
                on_gone()
                return

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread
