"""Memory and CPU budgets of workers, enforced with Linux control groups where the server may create them.

Placement gives each model copy a memory budget (its instance type's memory, never more than the host has,
shared among the instance's copies) and CPU threads. Each worker gets a control group of its own under the
server's: `memory` limited to the budget (the kernel's OOM killer stops a worker that goes past it, and the
launcher reports that as the reason it exited), `cpu` limited to its threads' worth of CPU time per period,
and `pids` bounded (a fork bomb in model.py stays inside its worker). Both cgroup layouts are handled: v2
(one unified hierarchy; needs the controllers delegated to the server's group) and v1 (one hierarchy per
controller). Where neither can be written (no cgroup file system, no permission) budgets are advisory and the
worker's log says so.

A worker joins its group before it runs anything: its command line starts with a tiny interpreter call that
writes its own pid into the group and then executes the real command (no race with the worker's threads or
children, no preexec_fn in a threaded server).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP_FOLDER = "modelhost-workers"  # under the server's own group
CPU_PERIOD_US = 100_000
PIDS_MAX = 8192
_JOIN = (
    "import os,sys\n"
    "a=sys.argv[1:];i=a.index('--')\n"
    "try:\n"
    " for p in a[:i]:\n"
    "  with open(p,'w') as f: f.write(str(os.getpid()))\n"
    "except OSError as e:\n"
    " print('[modelhost] could not join the worker\\'s control group: %s' % e, flush=True); sys.exit(70)\n"
    "os.execvp(a[i+1],a[i+1:])\n"
)


@dataclass(frozen=True, slots=True)
class Budget:
    memory_bytes: int  # 0: no memory limit
    cpus: int  # whole CPUs' worth of time; 0: no CPU limit


@dataclass(frozen=True, slots=True)
class WorkerGroup:
    """One worker's control group(s): one folder on v2, one per controller on v1."""

    name: str
    folders: tuple[Path, ...]
    procs_files: tuple[Path, ...]
    memory_folder: Path | None  # where the OOM-kill count is read
    version: int


def own_group(controller: str | None, proc_cgroup: str) -> str | None:
    """The server's group path in `/proc/self/cgroup` text for a v1 controller (or v2 when None)."""
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if controller is None and number == "0" and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def limit_files(version: int, budget: Budget) -> dict[str, dict[str, str]]:
    """controller -> {file: value} to write for `budget` ("" controller: the v2 unified folder). Pure."""
    if version == 2:
        files = {"pids.max": str(PIDS_MAX)}
        if budget.memory_bytes:
            files["memory.max"] = str(budget.memory_bytes)
            files["memory.swap.max"] = "0"
            files["memory.oom.group"] = "1"
        if budget.cpus:
            files["cpu.max"] = f"{budget.cpus * CPU_PERIOD_US} {CPU_PERIOD_US}"
        return {"": files}
    limits: dict[str, dict[str, str]] = {"pids": {"pids.max": str(PIDS_MAX)}}
    if budget.memory_bytes:
        # memsw (memory + swap) after the memory limit: it must never be below it
        limits["memory"] = {"memory.limit_in_bytes": str(budget.memory_bytes),
                            "memory.memsw.limit_in_bytes": str(budget.memory_bytes)}  # fmt: skip
    if budget.cpus:
        limits["cpu"] = {"cpu.cfs_period_us": str(CPU_PERIOD_US), "cpu.cfs_quota_us": str(budget.cpus * CPU_PERIOD_US)}
    return limits


def oom_kills(text: str) -> int:
    """The `oom_kill N` count in memory.oom_control (v1) or memory.events (v2) text."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def join_command(procs_files: tuple[Path, ...], command: list[str]) -> list[str]:
    """`command`, first joining the groups whose cgroup.procs files are given."""
    if not procs_files:
        return command
    return [sys.executable, "-I", "-S", "-c", _JOIN, *(str(p) for p in procs_files), "--", *command]


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


class Budgets:
    """Creates and removes workers' control groups under one parent per controller."""

    def __init__(self, version: int, parents: dict[str, Path], write: Callable[[Path, str], None] = _write) -> None:
        self.version = version
        self._parents = parents  # controller ("" on v2) -> the folder workers' groups are made in
        self._write = write

    def describe(self) -> str:
        controllers = "memory, cpu, pids" if self.version == 2 else ", ".join(sorted(self._parents))
        return f"cgroup v{self.version} ({controllers})"

    def create(self, name: str, budget: Budget) -> WorkerGroup:
        """A group for worker `name` with `budget`'s limits. OSError when the file system refuses."""
        folders: list[Path] = []
        try:
            for controller, files in limit_files(self.version, budget).items():
                parent = self._parents.get(controller)
                if parent is None:
                    continue
                folder = parent / name
                folder.mkdir(exist_ok=True)
                folders.append(folder)
                for file, value in files.items():
                    if (folder / file).exists():  # memsw and swap files exist only with swap accounting
                        self._write(folder / file, value)
        except OSError:
            for folder in folders:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        memory = next((f for f in folders if self.version == 2 or f.parent == self._parents.get("memory")), None)
        return WorkerGroup(name, tuple(folders), tuple(f / "cgroup.procs" for f in folders), memory, self.version)

    def oom_killed(self, group: WorkerGroup) -> bool:
        if group.memory_folder is None:
            return False
        name = "memory.events" if group.version == 2 else "memory.oom_control"
        try:
            return oom_kills((group.memory_folder / name).read_text()) > 0
        except OSError:
            return False

    def remove(self, group: WorkerGroup) -> None:
        """Remove the (now empty) group; a group still holding processes stays (the kernel refuses)."""
        for folder in group.folders:
            with contextlib.suppress(OSError):
                folder.rmdir()

    def remove_stale(self, keep: set[str]) -> None:
        """Remove empty groups of workers that are not running (left by a server that died)."""
        for parent in self._parents.values():
            with contextlib.suppress(OSError):
                for folder in parent.iterdir():
                    if folder.is_dir() and folder.name not in keep:
                        with contextlib.suppress(OSError):
                            folder.rmdir()


def _v2_parent(root: Path, proc_cgroup: str) -> Path | None:
    path = own_group(None, proc_cgroup)
    if path is None or not (root / "cgroup.controllers").exists():
        return None
    mine = root / path.lstrip("/")
    parent = mine / GROUP_FOLDER
    try:
        parent.mkdir(exist_ok=True)
        available = (parent / "cgroup.controllers").read_text().split()
        if not {"memory", "cpu", "pids"} <= set(available):
            return None
        _write(parent / "cgroup.subtree_control", "+memory +cpu +pids")
    except OSError:
        return None
    return parent


def _v1_parents(root: Path, proc_cgroup: str) -> dict[str, Path]:
    parents: dict[str, Path] = {}
    for controller in ("memory", "cpu", "pids"):
        hierarchy = root / controller
        path = own_group(controller, proc_cgroup)
        if path is None or not (hierarchy / "cgroup.procs").exists():
            continue
        parent = hierarchy / path.lstrip("/") / GROUP_FOLDER
        try:
            parent.mkdir(exist_ok=True)
        except OSError:
            continue
        if os.access(parent, os.W_OK):
            parents[controller] = parent
    return parents


def detect_budgets(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> tuple[Budgets | None, str]:
    """The budgets this host can enforce and a line saying so (or why not)."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None, "memory and CPU budgets are not enforced: no /proc/self/cgroup (not Linux?)"
    v2 = _v2_parent(root, proc_cgroup)
    if v2 is not None:
        return Budgets(2, {"": v2}), "memory and CPU budgets enforced with cgroup v2"
    v1 = _v1_parents(root, proc_cgroup)
    if "memory" in v1:
        budgets = Budgets(1, v1)
        return budgets, f"memory and CPU budgets enforced with {budgets.describe()}"
    return None, (
        "memory and CPU budgets are not enforced: the server cannot create control groups here "
        "(run it as root, or delegate a cgroup v2 subtree to its user)"
    )
