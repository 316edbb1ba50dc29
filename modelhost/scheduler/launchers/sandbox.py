"""The worker sandbox: bubblewrap (`bwrap`) around each worker process, where the host has it.

A worker runs the model's own code, so it sees only what it needs: the system's programs and libraries
(read-only), the Python interpreter and packages that run modelhost (read-only), its model folder and
requirements installs (read-only), the model registry and the user's Hugging Face cache (read-only, so
registered ids resolve), its run folder (its failure record) and a scratch folder of its own mounted at /tmp
(HOME and TMPDIR point there). The data directory and the user's home are covered by empty file systems, so
the store, the keys, other models' data and other workers' logs are out of view; `/etc` holds only the files
programs need to run (users, name resolution, certificates, the loader's cache), not the host's secrets.
The worker gets its own PID, IPC and UTS namespaces, no capabilities, and dies with the server
(`--die-with-parent`). The network is shared: the router reaches the worker on its loopback port.

`MODELHOST_WORKER_SANDBOX`: `auto` (the default) sandboxes where `bwrap` works and runs workers as plain
processes elsewhere (the worker's log says which); `required` refuses to start the server without it; `off`
never sandboxes. The argument list is built by a pure function (`bwrap_arguments`) from a `SandboxLayout`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from modelhost.errors import ModelhostError

MODES = ("auto", "required", "off")
SCRATCH_MOUNT = Path("/tmp")
# System folders bound read-only (or re-created as the symlinks they are, on merged-/usr systems).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What of /etc programs need to run; nothing else of it (no shadow, no ssh keys, no service configuration).
ETC_PATHS = (
    "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/nsswitch.conf",
    "/etc/host.conf", "/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/localtime", "/etc/timezone",
    "/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/pki", "/etc/ld.so.cache",
    "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/mime.types", "/etc/os-release",
    "/etc/debian_version", "/etc/machine-id", "/etc/nvidia",
)  # fmt: skip
# Worker environment variables whose values name files or folders the worker must be able to read.
PATH_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "TORCH_HOME")
PATH_LIST_VARIABLES = ("PYTHONPATH", "LD_LIBRARY_PATH")


class SandboxMode(Enum):
    AUTO = "auto"
    REQUIRED = "required"
    OFF = "off"


class SandboxUnavailable(ModelhostError):
    """MODELHOST_WORKER_SANDBOX=required and bubblewrap cannot run here (or the setting is not a mode)."""


def parse_mode(value: str | None) -> SandboxMode:
    """MODELHOST_WORKER_SANDBOX; unset or empty is auto. SandboxUnavailable names the allowed values."""
    text = (value or "auto").strip().lower()
    if text not in MODES:
        raise SandboxUnavailable(f"MODELHOST_WORKER_SANDBOX must be one of {', '.join(MODES)}, not {value!r}")
    return SandboxMode(text)


@dataclass(frozen=True, slots=True)
class SandboxLayout:
    """What one worker's sandbox shows it; every path is mounted at the same place inside."""

    read_only: tuple[Path, ...]
    writable: tuple[Path, ...]
    hidden: tuple[Path, ...]  # covered by an empty tmpfs (the data directory, the user's home)
    scratch: Path  # mounted read-write at /tmp
    devices: tuple[Path, ...] = ()  # device nodes passed through (GPUs)
    cwd: Path = Path("/")


def _covers(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def _mounts(layout: SandboxLayout) -> list[tuple[Path, str]]:
    """(path, kind) in mount order: a folder before anything inside it, a tmpfs before binds at or under it."""
    order = {"tmpfs": 0, "ro": 1, "rw": 2, "dev": 3}
    entries: dict[tuple[Path, str], None] = {}
    for kind, paths in (("tmpfs", layout.hidden), ("ro", layout.read_only), ("rw", layout.writable)):
        for path in paths:
            entries[(path, kind)] = None
    for path in layout.devices:
        entries[(path, "dev")] = None
    # a read-only bind of a path also bound writable is dropped (the writable one is what the worker needs)
    writable = set(layout.writable)
    kept = [(p, k) for p, k in entries if not (k == "ro" and p in writable)]
    # a hidden folder matters only where something bound read-only or writable lies around it
    bound = [p for p, k in kept if k in ("ro", "rw")]
    kept = [(p, k) for p, k in kept if k != "tmpfs" or any(_covers(b, p) and b != p for b in bound)]
    return sorted(kept, key=lambda e: (len(e[0].parts), order[e[1]], str(e[0])))


def bwrap_arguments(bwrap: str, layout: SandboxLayout, command: list[str], *, privileged: bool) -> list[str]:
    """The bwrap command line that runs `command` in `layout`. Pure: nothing is checked on disk."""
    args = [bwrap]
    for name in SYSTEM_PATHS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for name in ETC_PATHS:
        args += ["--ro-bind-try", name, name]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--ro-bind-try", "/sys", "/sys"]
    args += ["--bind", str(layout.scratch), str(SCRATCH_MOUNT)]
    flags = {"tmpfs": "--tmpfs", "ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind"}
    for path, kind in _mounts(layout):
        if kind == "tmpfs":
            args += ["--tmpfs", str(path)]
        else:
            args += [flags[kind], str(path), str(path)]
    args += ["--chdir", str(layout.cwd)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent"]
    if privileged:
        args += ["--cap-drop", "ALL"]
    return [*args, "--", *command]


def interpreter_paths() -> list[Path]:
    """What the server's interpreter needs to run `python -m modelhost.worker`: its prefixes (the venv and the
    base installation with the standard library) and the modelhost package itself (an editable install's
    source folder)."""
    import modelhost

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)}
    paths.add(Path(os.path.realpath(sys.executable)).parent)
    paths.add(Path(modelhost.__file__).resolve().parent)
    return sorted(p for p in paths if p.is_dir())


def environment_paths(env: Mapping[str, str]) -> list[Path]:
    """Absolute paths named by the worker environment's path variables (certificates, PYTHONPATH entries)."""
    found: list[Path] = []
    for name in PATH_VARIABLES:
        if env.get(name, "").startswith("/"):
            found.append(Path(env[name]))
    for name in PATH_LIST_VARIABLES:
        found.extend(Path(part) for part in env.get(name, "").split(os.pathsep) if part.startswith("/"))
    return [p for p in found if p.exists()]


def outside_links(root: Path, limit: int = 10_000) -> list[Path]:
    """The real paths of symlinks under `root` that point outside it (registered-by-link model files)."""
    targets: set[Path] = set()
    if not root.is_dir():
        return []
    resolved_root = root.resolve()
    seen = 0
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            seen += 1
            if seen > limit:
                return sorted(targets)
            path = Path(folder, name)
            if path.is_symlink():
                real = path.resolve()
                if real.exists() and not real.is_relative_to(resolved_root):
                    targets.add(real)
    return sorted(targets)


def gpu_devices() -> list[Path]:
    """NVIDIA device nodes (CUDA_VISIBLE_DEVICES picks the worker's GPUs among them)."""
    dev = Path("/dev")
    return sorted(p for p in dev.glob("nvidia*") if not p.is_dir()) if dev.is_dir() else []


def _dedupe(paths: Iterable[Path], hidden: Iterable[Path] = ()) -> tuple[Path, ...]:
    """Absolute, normalised, without paths already inside another one of the list, unless a hidden path
    lies between the two (then the inner one must be bound again over the tmpfs)."""
    unique = sorted({Path(os.path.normpath(p.absolute())) for p in paths})
    covers = tuple(hidden)
    kept: list[Path] = []
    for path in unique:
        inside = [k for k in kept if _covers(k, path)]
        if not any(not any(_covers(k, h) and _covers(h, path) for h in covers) for k in inside):
            kept.append(path)
    return tuple(kept)


class Sandbox:
    """Builds each worker's bwrap command line; one per launcher, probed once at start-up."""

    def __init__(self, bwrap: str, *, hidden: Iterable[Path], shared_read_only: Iterable[Path]) -> None:
        self.bwrap = bwrap
        self._hidden = _dedupe(hidden)
        self._shared = tuple(shared_read_only)
        self._privileged = os.geteuid() == 0

    def layout(
        self, *, model_dir: Path, packages_dir: Path | None, run_dir: Path, scratch: Path, env: Mapping[str, str],
        gpus: bool,
    ) -> SandboxLayout:  # fmt: skip
        shared = [p for p in self._shared if p.exists()]
        links = [target for root in shared for target in outside_links(root)]
        read_only = [*interpreter_paths(), *environment_paths(env), *shared, *links, model_dir]
        if packages_dir is not None:
            read_only.append(packages_dir)
        return SandboxLayout(
            read_only=_dedupe(read_only, self._hidden),
            writable=(run_dir,),
            hidden=self._hidden,
            scratch=scratch,
            devices=tuple(gpu_devices()) if gpus else (),
            cwd=model_dir,
        )

    def command(self, layout: SandboxLayout, command: list[str]) -> list[str]:
        return bwrap_arguments(self.bwrap, layout, command, privileged=self._privileged)

    def probe(self) -> str | None:
        """None when a sandboxed interpreter starts here; else why not (one line)."""
        with tempfile.TemporaryDirectory(prefix="modelhost-sandbox-probe-") as scratch:
            layout = SandboxLayout(read_only=_dedupe(interpreter_paths()), writable=(), hidden=self._hidden,
                                   scratch=Path(scratch))  # fmt: skip
            argv = self.command(layout, [sys.executable, "-I", "-c", "import sys; sys.exit(0)"])
            try:
                done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"bwrap could not run: {exc}"
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            return f"bwrap could not start a sandbox here: {detail[0]}"
        return None


def build_sandbox(
    mode: SandboxMode, *, hidden: Iterable[Path], shared_read_only: Iterable[Path]
) -> tuple[Sandbox | None, str]:
    """The launcher's sandbox for `mode` and a line saying how workers run. SandboxUnavailable when `required`
    cannot be met."""
    if mode is SandboxMode.OFF:
        return None, "worker sandbox off (MODELHOST_WORKER_SANDBOX=off)"
    bwrap = shutil.which("bwrap")
    why = "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)" if bwrap is None else None
    sandbox = None
    if bwrap is not None:
        sandbox = Sandbox(bwrap, hidden=hidden, shared_read_only=shared_read_only)
        why = sandbox.probe()
    if why is None and sandbox is not None:
        return sandbox, f"workers run in a bubblewrap sandbox ({sandbox.bwrap})"
    if mode is SandboxMode.REQUIRED:
        raise SandboxUnavailable(f"MODELHOST_WORKER_SANDBOX=required, but {why}")
    return None, f"workers run without a sandbox: {why} (MODELHOST_WORKER_SANDBOX=required refuses to start)"


def sandboxed_child(pid: int) -> int | None:
    """The first process under bwrap `pid` that is not bwrap itself (the worker), or None (not started yet)."""
    frontier = [pid]
    for _ in range(4):  # bwrap -> bwrap (the namespace's init) -> the worker
        children: list[int] = []
        for parent in frontier:
            try:
                tasks = list(Path(f"/proc/{parent}/task").iterdir())
            except OSError:
                continue
            for task in tasks:
                try:
                    children.extend(int(c) for c in (task / "children").read_text().split())
                except (OSError, ValueError):
                    continue
        for child in children:
            try:
                name = Path(f"/proc/{child}/comm").read_text().strip()
            except OSError:
                continue
            if name != "bwrap":
                return child
        frontier = children
    return None
