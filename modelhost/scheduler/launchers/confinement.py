"""How this host confines workers: the sandbox (sandbox.py) and the resource budgets (budgets.py), decided
once when the server starts and passed to the launcher. `modelhost server` decides it before it listens, so
MODELHOST_WORKER_SANDBOX=required on a host without bubblewrap stops it with one line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelhost.registry.hub_cache import user_hub_cache
from modelhost.scheduler.launchers.budgets import Budgets, detect_budgets
from modelhost.scheduler.launchers.sandbox import Sandbox, SandboxMode, SandboxUnavailable, build_sandbox, parse_mode
from modelhost.settings import ServerSettings


@dataclass(frozen=True, slots=True)
class Confinement:
    sandbox: Sandbox | None
    budgets: Budgets | None
    notes: tuple[str, ...]  # how workers run here, for the server's log and the top of every worker's log


def worker_confinement(settings: ServerSettings) -> Confinement:
    """The sandbox and budgets for `settings`; SandboxUnavailable when the sandbox is required and cannot run.
    With `--launcher ray` workers run on the cluster's nodes, where neither is applied: `required` refuses to
    start and the note says so (docs/fleet.md, "Trust boundary")."""
    mode = parse_mode(settings.worker_sandbox)
    if settings.launcher == "ray":
        if mode is SandboxMode.REQUIRED:
            raise SandboxUnavailable(
                "MODELHOST_WORKER_SANDBOX=required, but --launcher ray runs workers on the Ray nodes without a "
                "sandbox or resource budgets (use --launcher local, or MODELHOST_WORKER_SANDBOX=auto to accept it)"
            )
        return Confinement(None, None, (RAY_UNCONFINED,))
    sandbox, sandbox_note = build_sandbox(
        mode,
        hidden=(settings.home, Path.home()),
        shared_read_only=(settings.registry_dir, user_hub_cache(os.environ)),
    )
    budgets, budget_note = detect_budgets()
    return Confinement(sandbox, budgets, (sandbox_note, budget_note))


UNCONFINED = Confinement(None, None, ())
RAY_UNCONFINED = (
    "Ray workers are not sandboxed: they run on the cluster's nodes without bubblewrap or resource budgets, "
    "each able to read the others' environment (MODELHOST_WORKER_SANDBOX applies to local workers only)"
)
