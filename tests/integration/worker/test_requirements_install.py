"""prepare_requirements against the real interpreter and pip."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from modelhost.errors import DeploymentError
from modelhost.requirements import COMPLETE_MARKER, prepare_requirements


def test_installs_a_missing_package_into_a_packages_dir(tmp_path: Path) -> None:
    assert importlib.util.find_spec("tabulate") is None, "the test needs a venv without tabulate"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "requirements.txt").write_text("# needs a table\ntabulate\npackaging\n")
    logged: list[str] = []
    result = prepare_requirements(model_dir, tmp_path / "packages", logged.append)
    assert result.packages_dir is not None and result.packages_dir.parent == tmp_path / "packages"
    assert (result.packages_dir / COMPLETE_MARKER).is_file()
    assert [name.split("==")[0] for name in result.installed] == ["tabulate"]
    assert result.skipped == ["packaging"]
    assert [p.name for p in (tmp_path / "packages").iterdir()] == [result.packages_dir.name]  # no temp dirs left
    check = subprocess.run(
        [sys.executable, "-c", "import tabulate; print(tabulate.tabulate([[1, 2]]))"],
        env={"PYTHONPATH": str(result.packages_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    again = prepare_requirements(model_dir, tmp_path / "packages", logged.append)
    assert again.packages_dir == result.packages_dir and again.installed == result.installed
    assert any("reusing" in line for line in logged)


def test_conflicting_pin_is_reported_and_not_installed(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==1.13.1\n")
    logged: list[str] = []
    result = prepare_requirements(tmp_path, tmp_path / "packages", logged.append)
    assert result.conflicting == ["torch"]
    assert result.packages_dir is None and result.installed == []
    assert not (tmp_path / "packages").exists()
    assert any("torch" in line and "conflicts" in line for line in logged)


def test_an_unknown_package_fails_with_pips_reason(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("modelhost-surely-no-such-package-xyz==0.0.1\n")
    with pytest.raises(DeploymentError) as caught:
        prepare_requirements(tmp_path, tmp_path / "packages", lambda line: None)
    assert caught.value.phase == "requirements"
    assert "modelhost-surely-no-such-package-xyz" in caught.value.reason
    assert not any((tmp_path / "packages").glob("*"))
