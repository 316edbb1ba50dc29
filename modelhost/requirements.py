"""Installs what a model folder's requirements.txt adds to the running environment, into a site dir."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelhost.contracts.worker import PHASE_REQUIREMENTS
from modelhost.errors import DeploymentError

COMPLETE_MARKER = ".modelhost-complete"  # written last, so a dir holding it is a finished install
PIP_FLAGS = ["--disable-pip-version-check", "--no-input"]
# pip options that say where to look; they go to both the resolution and the install
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--pre")


@dataclass(frozen=True, slots=True)
class RequirementLine:
    """One meaningful line of requirements.txt."""

    text: str  # the line as written (comment stripped)
    requirement: Requirement | None  # None: not PEP 508 (a URL, -r, an option), handed to pip as it is


@dataclass(frozen=True, slots=True)
class Classification:
    """requirements.txt lines sorted against the running interpreter's installed distributions."""

    satisfied: list[str] = field(default_factory=list)  # already installed at an allowed version
    conflicting: list[str] = field(default_factory=list)  # installed, but the pin rules that version out
    not_applicable: list[str] = field(default_factory=list)  # environment marker is false here
    missing: list[RequirementLine] = field(default_factory=list)  # to install


@dataclass(frozen=True, slots=True)
class RequirementsResult:
    """What prepare_requirements did; the controller passes packages_dir on in the WorkerSpec."""

    packages_dir: Path | None  # the site dir to put first on sys.path; None when nothing was installed
    skipped: list[str] = field(default_factory=list)  # requirement names already satisfied
    conflicting: list[str] = field(default_factory=list)  # requirement names whose pin conflicts (not installed)
    installed: list[str] = field(default_factory=list)  # "name==version" installed into packages_dir


def parse_requirements(text: str) -> list[RequirementLine]:
    """Meaningful lines (blanks and comments skipped); PEP 508 ones parsed, others kept verbatim for pip."""
    lines: list[RequirementLine] = []
    for raw in text.splitlines():
        line = raw.strip()
        if " #" in line:
            line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement: Requirement | None = Requirement(line)
        except InvalidRequirement:
            requirement = None
        if requirement is not None and requirement.url:
            requirement = None  # `name @ url`: pip fetches it
        lines.append(RequirementLine(text=line, requirement=requirement))
    return lines


def classify(lines: Iterable[RequirementLine], installed: Mapping[str, str]) -> Classification:
    """Sort lines by whether `installed` (canonical name -> version) already provides them."""
    result = Classification()
    for line in lines:
        req = line.requirement
        if req is None:
            result.missing.append(line)
            continue
        if req.marker is not None and not req.marker.evaluate():
            result.not_applicable.append(req.name)
            continue
        version = installed.get(canonicalize_name(req.name))
        if version is None:
            result.missing.append(line)
        elif not req.specifier or req.specifier.contains(version, prereleases=True):
            result.satisfied.append(req.name)
        else:
            result.conflicting.append(req.name)
    return result


def installed_distributions() -> dict[str, str]:
    """Canonical name -> version of every distribution the running interpreter can import."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and dist.version:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def _normalized(line: RequirementLine) -> str:
    if line.requirement is None:
        return line.text
    req = Requirement(str(line.requirement))
    req.name = canonicalize_name(req.name)
    return str(req)


def packages_dir_name(missing: Sequence[RequirementLine]) -> str:
    """The site dir's name: a hash of the normalized missing set and the interpreter it is built for."""
    key = "\n".join(sorted(_normalized(line) for line in missing))
    key += f"\npython{sys.version_info.major}.{sys.version_info.minor}-{sys.platform}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def pip_error_line(output: str) -> str:
    """The line that says what went wrong: pip's first `ERROR:` line, else its last non-empty line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR:"):
            return line[len("ERROR:") :].strip()
    return lines[-1] if lines else "pip failed without output"


def _pip_args(missing: Sequence[RequirementLine]) -> tuple[list[str], list[str]]:
    """(index options, requirement arguments) for pip; verbatim lines are split like a shell would."""
    options: list[str] = []
    requirements: list[str] = []
    for line in missing:
        if line.requirement is not None:
            requirements.append(str(line.requirement))
            continue
        tokens = shlex.split(line.text)
        (options if tokens and tokens[0].split("=")[0] in _INDEX_OPTIONS else requirements).extend(tokens)
    return options, requirements


def _run_pip(args: list[str], cwd: Path, timeout_s: float, log: Callable[[str], None]) -> str:
    command = [sys.executable, "-m", "pip", *args]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DeploymentError(PHASE_REQUIREMENTS, f"pip did not finish within {timeout_s:g} s") from None
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        for line in output.splitlines()[-20:]:
            log(f"pip: {line}")
        raise DeploymentError(PHASE_REQUIREMENTS, pip_error_line(output))
    return output


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _install_plan(report: dict[str, Any]) -> list[str]:
    """pip's --report -> the exact distributions to install (direct URLs as pip reported them)."""
    targets: list[str] = []
    for item in report.get("install", []):
        meta, info = item["metadata"], item.get("download_info", {})
        if item.get("is_direct") and info.get("url"):
            vcs = info.get("vcs_info")
            targets.append(f"{vcs['vcs']}+{info['url']}@{vcs['commit_id']}" if vcs else info["url"])
        else:
            targets.append(f"{meta['name']}=={meta['version']}")
    return targets


def _resolve(
    model_dir: Path,
    missing: Sequence[RequirementLine],
    installed: Mapping[str, str],
    work: Path,
    timeout_s: float,
    log: Callable[[str], None],
) -> tuple[list[str], list[str]]:
    """Resolve against the running environment, with every installed distribution pinned, so the install
    never replaces (or shadows) torch, transformers, ... with another version."""
    constraints = work / "installed-constraints.txt"
    pins = [f"{name}=={version}\n" for name, version in sorted(installed.items()) if _is_version(version)]
    constraints.write_text("".join(pins))
    report = work / "report.json"
    options, requirements = _pip_args(missing)
    _run_pip(
        [
            "install",
            "--dry-run",
            "--quiet",
            "--report",
            str(report),
            "-c",
            str(constraints),
            *PIP_FLAGS,
            *options,
            *requirements,
        ],
        model_dir,
        timeout_s,
        log,
    )
    return options, _install_plan(json.loads(report.read_text()))


def _install(
    model_dir: Path,
    target: Path,
    missing: Sequence[RequirementLine],
    installed: Mapping[str, str],
    timeout_s: float,
    log: Callable[[str], None],
) -> list[str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with tempfile.TemporaryDirectory(prefix="modelhost-pip-") as work:
            options, plan = _resolve(model_dir, missing, installed, Path(work), timeout_s, log)
            log(f"requirements: installing {', '.join(plan) or 'nothing new'} into {target}")
            if plan:
                _run_pip(
                    ["install", "--target", str(staging), "--no-deps", *PIP_FLAGS, *options, *plan],
                    model_dir,
                    timeout_s,
                    log,
                )
        staging.mkdir(parents=True, exist_ok=True)
        (staging / COMPLETE_MARKER).write_text(json.dumps({"installed": plan}))
        try:
            staging.rename(target)
        except OSError:
            if not (target / COMPLETE_MARKER).is_file():  # a leftover without the marker: replace it
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
        return plan
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare_requirements(
    model_dir: Path,
    packages_root: Path,
    log: Callable[[str], None],
    timeout_s: float = 1200.0,
) -> RequirementsResult:
    """Install what `model_dir/requirements.txt` needs beyond the running environment.

    Satisfied requirements are skipped and conflicting pins are reported, never installed; the rest go to
    `packages_root/<hash>` (reused when complete). Raises DeploymentError("requirements", reason).
    """
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return RequirementsResult(packages_dir=None)
    installed = installed_distributions()
    lines = parse_requirements(path.read_text())
    written = {line.requirement.name: line.text for line in lines if line.requirement is not None}
    found = classify(lines, installed)
    for name in found.satisfied:
        log(f"requirements: {name} is already installed ({installed[canonicalize_name(name)]}); skipped")
    for name in found.not_applicable:
        log(f"requirements: {name} does not apply to this environment (marker); skipped")
    for name in found.conflicting:
        log(
            f"requirements: {written.get(name, name)} conflicts with the installed {name} "
            f"{installed[canonicalize_name(name)]}; keeping the installed version (not installed)"
        )
    result = RequirementsResult(packages_dir=None, skipped=found.satisfied, conflicting=found.conflicting)
    if not found.missing:
        return result
    target = packages_root / packages_dir_name(found.missing)
    marker = target / COMPLETE_MARKER
    if marker.is_file():
        plan = list(json.loads(marker.read_text()).get("installed", []))
        log(f"requirements: reusing {target} ({', '.join(plan) or 'nothing'})")
    else:
        plan = _install(model_dir, target, found.missing, installed, timeout_s, log)
    return RequirementsResult(
        packages_dir=target, skipped=found.satisfied, conflicting=found.conflicting, installed=plan
    )
