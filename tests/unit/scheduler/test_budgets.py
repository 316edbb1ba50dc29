"""Control-group budgets: which files get which values, how the server finds its groups, the OOM count, and
the join wrapper (run for real: it must leave the pid unchanged across exec)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelhost.scheduler.launchers.budgets import (
    GROUP_FOLDER,
    Budget,
    Budgets,
    detect_budgets,
    join_command,
    limit_files,
    oom_kills,
    own_group,
)

V1_PROC = "12:pids:/\n4:memory:/job/42\n2:cpu,cpuacct:/job\n0::/\n"
GIB = 1024**3


def test_limit_files_v1_and_v2() -> None:
    v1 = limit_files(1, Budget(memory_bytes=4 * GIB, cpus=2))
    assert v1["memory"] == {"memory.limit_in_bytes": str(4 * GIB), "memory.memsw.limit_in_bytes": str(4 * GIB)}
    assert v1["cpu"] == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "200000"}
    assert v1["pids"] == {"pids.max": "8192"}
    v2 = limit_files(2, Budget(memory_bytes=GIB, cpus=1))[""]
    assert v2["memory.max"] == str(GIB) and v2["cpu.max"] == "100000 100000" and v2["memory.oom.group"] == "1"
    assert "memory.max" not in limit_files(2, Budget(0, 0))[""]


def test_own_group() -> None:
    assert own_group("memory", V1_PROC) == "/job/42"
    assert own_group("cpu", V1_PROC) == "/job"
    assert own_group(None, V1_PROC) == "/"
    assert own_group("blkio", V1_PROC) is None


def test_oom_kills() -> None:
    assert oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == 2
    assert oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n") == 1
    assert oom_kills("oom_kill_disable 0\n") == 0


def _v1_tree(root: Path) -> None:
    for controller, path in (("memory", "job/42"), ("cpu", "job"), ("pids", "")):
        folder = root / controller / path
        folder.mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("")


def test_detect_and_create_on_a_v1_tree(tmp_path: Path) -> None:
    _v1_tree(tmp_path)
    budgets, line = detect_budgets(tmp_path, V1_PROC)
    assert budgets is not None and "cgroup v1 (cpu, memory, pids)" in line
    assert (tmp_path / "memory/job/42" / GROUP_FOLDER).is_dir()
    # the kernel makes a group's files; a fake tree gets the ones a real one has
    for controller, path, files in (
        ("memory", "job/42", ("memory.limit_in_bytes", "memory.oom_control")),
        ("cpu", "job", ("cpu.cfs_period_us", "cpu.cfs_quota_us")),
        ("pids", "", ("pids.max",)),
    ):
        folder = tmp_path / controller / path / GROUP_FOLDER / "w1"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("")
    group = budgets.create("w1", Budget(memory_bytes=2 * GIB, cpus=1))
    memory = tmp_path / "memory/job/42" / GROUP_FOLDER / "w1"
    assert (memory / "memory.limit_in_bytes").read_text() == str(2 * GIB)
    assert not (memory / "memory.memsw.limit_in_bytes").exists()  # no swap accounting: not written
    assert (tmp_path / "cpu/job" / GROUP_FOLDER / "w1/cpu.cfs_quota_us").read_text() == "100000"
    assert memory / "cgroup.procs" in group.procs_files and len(group.procs_files) == 3
    assert not budgets.oom_killed(group)
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert budgets.oom_killed(group)


def test_no_cgroup_file_system_means_advisory_budgets(tmp_path: Path) -> None:
    budgets, line = detect_budgets(tmp_path, V1_PROC)
    assert budgets is None and "not enforced" in line


def test_a_v2_tree_needs_the_controllers_delegated(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    mine = tmp_path / "user.slice"
    mine.mkdir()
    budgets, line = detect_budgets(tmp_path, "0::/user.slice\n")
    assert budgets is None and "not enforced" in line  # the new folder lists no controllers: not delegated
    (mine / GROUP_FOLDER / "cgroup.controllers").write_text("cpu memory pids\n")
    budgets, line = detect_budgets(tmp_path, "0::/user.slice\n")
    assert budgets is not None and budgets.version == 2 and "cgroup v2" in line
    assert (mine / GROUP_FOLDER / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"


def test_remove_stale_keeps_running_workers(tmp_path: Path) -> None:
    parent = tmp_path / "memory"
    (parent / "old").mkdir(parents=True)
    (parent / "live").mkdir()
    Budgets(1, {"memory": parent}).remove_stale(keep={"live"})
    assert sorted(p.name for p in parent.iterdir()) == ["live"]


def test_the_join_wrapper_writes_its_pid_then_becomes_the_command(tmp_path: Path) -> None:
    procs = (tmp_path / "a.procs", tmp_path / "b.procs")
    command = join_command(procs, [sys.executable, "-c", "import os; print(os.getpid())"])
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    pid = done.stdout.strip()
    assert procs[0].read_text() == pid and procs[1].read_text() == pid
    assert join_command((), ["true"]) == ["true"]


def test_the_join_wrapper_fails_with_one_line_when_it_cannot_join(tmp_path: Path) -> None:
    command = join_command((tmp_path / "missing" / "cgroup.procs",), ["true"])
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 70
    assert "could not join the worker's control group" in done.stdout and "Traceback" not in done.stderr
