"""requirements.txt parsing and classification against installed distributions (no pip is run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost import requirements
from modelhost.requirements import (
    classify,
    packages_dir_name,
    parse_requirements,
    pip_error_line,
    prepare_requirements,
)

TEXT = """
# comment
torch==1.13.1
transformers>=4.0  # inline comment
Some_Package[extra]~=1.2
-r other.txt
git+https://github.com/org/repo.git@main#egg=repo
--extra-index-url https://example.com/simple
win-only ; sys_platform == "win32"
"""

INSTALLED = {"torch": "2.13.0+cpu", "transformers": "4.57.1"}


def test_parse_keeps_pep508_and_verbatim_lines() -> None:
    lines = parse_requirements(TEXT)
    assert [line.text for line in lines] == [
        "torch==1.13.1",
        "transformers>=4.0",
        "Some_Package[extra]~=1.2",
        "-r other.txt",
        "git+https://github.com/org/repo.git@main#egg=repo",
        "--extra-index-url https://example.com/simple",
        'win-only ; sys_platform == "win32"',
    ]
    parsed = [line.requirement is not None for line in lines]
    assert parsed == [True, True, True, False, False, False, True]


def test_classify_satisfied_conflicting_missing() -> None:
    result = classify(parse_requirements(TEXT), INSTALLED)
    assert result.satisfied == ["transformers"]
    assert result.conflicting == ["torch"]
    assert result.not_applicable == ["win-only"]
    assert [line.text for line in result.missing] == [
        "Some_Package[extra]~=1.2",
        "-r other.txt",
        "git+https://github.com/org/repo.git@main#egg=repo",
        "--extra-index-url https://example.com/simple",
    ]


def test_names_are_compared_canonically() -> None:
    result = classify(parse_requirements("Some_Package==1.0\nunpinned\n"), {"some-package": "1.0", "unpinned": "0.1"})
    assert result.satisfied == ["Some_Package", "unpinned"]
    assert result.missing == []


def test_packages_dir_name_depends_on_the_normalized_set_only() -> None:
    a = packages_dir_name(parse_requirements("Foo_Bar==1\nbaz\n"))
    b = packages_dir_name(parse_requirements("baz\nfoo-bar==1\n"))
    c = packages_dir_name(parse_requirements("baz\nfoo-bar==2\n"))
    assert a == b != c
    assert len(a) == 16


def test_pip_error_line_picks_the_error() -> None:
    output = (
        "Looking in indexes: https://pypi.org/simple\n"
        "ERROR: Could not find a version that satisfies the requirement nope-xyz (from versions: none)\n"
        "ERROR: No matching distribution found for nope-xyz\n"
    )
    assert (
        pip_error_line(output)
        == "Could not find a version that satisfies the requirement nope-xyz (from versions: none)"
    )
    assert pip_error_line("just this\n\n") == "just this"


def test_nothing_to_install_runs_no_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "requirements.txt").write_text("torch==1.13.1\npackaging\n")
    monkeypatch.setattr(requirements, "_run_pip", lambda *a, **k: pytest.fail("pip must not run"))
    logged: list[str] = []
    result = prepare_requirements(tmp_path, tmp_path / "pkgs", logged.append)
    assert result.packages_dir is None
    assert result.conflicting == ["torch"] and result.skipped == ["packaging"] and result.installed == []
    assert any("torch" in line and "conflicts" in line for line in logged)


def test_no_requirements_file(tmp_path: Path) -> None:
    assert prepare_requirements(tmp_path, tmp_path / "pkgs", print).packages_dir is None


def test_a_completed_dir_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "requirements.txt").write_text("surely-not-installed-pkg==1.0\n")
    target = tmp_path / "pkgs" / packages_dir_name(parse_requirements("surely-not-installed-pkg==1.0"))
    target.mkdir(parents=True)
    (target / requirements.COMPLETE_MARKER).write_text('{"installed": ["surely-not-installed-pkg==1.0"]}')
    monkeypatch.setattr(requirements, "_run_pip", lambda *a, **k: pytest.fail("pip must not run"))
    result = prepare_requirements(tmp_path, tmp_path / "pkgs", print)
    assert result.packages_dir == target
    assert result.installed == ["surely-not-installed-pkg==1.0"]
