"""The sandbox's command line as a pure function of its layout, and the mode setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.scheduler.launchers.sandbox import (
    SandboxLayout,
    SandboxMode,
    SandboxUnavailable,
    _dedupe,
    bwrap_arguments,
    parse_mode,
)


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def test_modes() -> None:
    assert parse_mode(None) is SandboxMode.AUTO
    assert parse_mode(" Required ") is SandboxMode.REQUIRED
    assert parse_mode("off") is SandboxMode.OFF
    with pytest.raises(SandboxUnavailable, match="one of auto, required, off, not 'yes'"):
        parse_mode("yes")


def test_the_data_directory_is_hidden_and_the_model_folder_bound_again_over_it() -> None:
    home = Path("/srv/app/home")
    layout = SandboxLayout(
        read_only=(Path("/srv/app"), home / "artifacts/abc/model"),  # e.g. PYTHONPATH=/srv/app, home inside it
        writable=(home / "run/w1",),
        hidden=(home,),
        scratch=home / "run/w1/tmp",
        cwd=home / "artifacts/abc/model",
    )
    args = bwrap_arguments("/usr/bin/bwrap", layout, ["python", "-m", "modelhost.worker"], privileged=True)
    positions = {
        "app": args.index("/srv/app"),
        "hidden": args.index(str(home)),
        "model": args.index(str(home / "artifacts/abc/model")),
        "run": args.index(str(home / "run/w1")),
    }
    assert args[positions["hidden"] - 1] == "--tmpfs"
    assert positions["app"] < positions["hidden"] < min(positions["model"], positions["run"])
    first_bind = args.index("--bind")
    assert args[first_bind + 1 : first_bind + 3] == [str(home / "run/w1/tmp"), "/tmp"]
    assert args[args.index("--chdir") + 1] == str(home / "artifacts/abc/model")
    assert {"--unshare-pid", "--unshare-ipc", "--die-with-parent"} <= set(args)
    assert args[args.index("--cap-drop") + 1] == "ALL"
    assert args[-4:] == ["--", "python", "-m", "modelhost.worker"]
    assert "/etc/shadow" not in args and "/etc" not in _pairs(args, "--ro-bind")


def test_a_hidden_folder_nothing_is_bound_around_is_left_alone() -> None:
    layout = SandboxLayout(read_only=(Path("/opt/venv"),), writable=(), hidden=(Path("/root"),), scratch=Path("/s"))
    args = bwrap_arguments("bwrap", layout, ["true"], privileged=False)
    assert "/root" not in args  # never mounted: it does not exist inside
    assert "--cap-drop" not in args  # an unprivileged bwrap runs in a user namespace with no capabilities


def test_dedupe_keeps_paths_under_a_hidden_folder() -> None:
    hidden = (Path("/work/home"),)
    paths = [Path("/work"), Path("/work/lib"), Path("/work/home/model")]
    assert _dedupe(paths, hidden) == (Path("/work"), Path("/work/home/model"))
    assert _dedupe(paths) == (Path("/work"),)


def test_devices_are_bound_with_device_access() -> None:
    layout = SandboxLayout(read_only=(), writable=(), hidden=(), scratch=Path("/s"), devices=(Path("/dev/nvidia0"),))
    args = bwrap_arguments("bwrap", layout, ["true"], privileged=True)
    assert _pairs(args, "--dev-bind") == ["/dev/nvidia0"]
