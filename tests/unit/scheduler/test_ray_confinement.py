"""Workers on Ray nodes are not confined: `required` refuses to start, `auto` says so in its note."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.scheduler.launchers.confinement import worker_confinement
from modelhost.scheduler.launchers.sandbox import SandboxUnavailable
from modelhost.settings import ServerSettings


def test_required_with_the_ray_launcher_refuses_to_start(tmp_path: Path) -> None:
    settings = ServerSettings(home=tmp_path, launcher="ray", worker_sandbox="required")
    with pytest.raises(SandboxUnavailable, match="--launcher ray runs workers on the Ray nodes without a sandbox"):
        worker_confinement(settings)


def test_auto_with_the_ray_launcher_says_workers_are_not_sandboxed(tmp_path: Path) -> None:
    confinement = worker_confinement(ServerSettings(home=tmp_path, launcher="ray", worker_sandbox="auto"))
    assert confinement.sandbox is None and confinement.budgets is None
    assert len(confinement.notes) == 1
    assert confinement.notes[0].startswith("Ray workers are not sandboxed")
    assert not any("bubblewrap sandbox (" in note for note in confinement.notes)
