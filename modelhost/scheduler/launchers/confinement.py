"""How this host confines workers: the sandbox (sandbox.py) and the resource budgets (budgets.py), decided
once when the server starts and passed to the launcher. `modelhost server` decides it before it listens, so
MODELHOST_WORKER_SANDBOX=required on a host without bubblewrap stops it with one line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelhost.registry.hub_cache import user_hub_cache
from modelhost.scheduler.launchers.budgets import Budgets, detect_budgets
from modelhost.scheduler.launchers.sandbox import Sandbox, build_sandbox, parse_mode
from modelhost.settings import ServerSettings


@dataclass(frozen=True, slots=True)
class Confinement:
    sandbox: Sandbox | None
    budgets: Budgets | None
    notes: tuple[str, ...]  # how workers run here, for the server's log and the top of every worker's log


def worker_confinement(settings: ServerSettings) -> Confinement:
    """The sandbox and budgets for `settings`; SandboxUnavailable when the sandbox is required and cannot run."""
    mode = parse_mode(settings.worker_sandbox)
    sandbox, sandbox_note = build_sandbox(
        mode,
        hidden=(settings.home, Path.home()),
        shared_read_only=(settings.registry_dir, user_hub_cache(os.environ)),
    )
    budgets, budget_note = detect_budgets()
    return Confinement(sandbox, budgets, (sandbox_note, budget_note))


UNCONFINED = Confinement(None, None, ())
