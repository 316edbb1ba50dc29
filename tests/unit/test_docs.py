"""The docs name every setting, CLI command and implemented SageMaker operation."""

from __future__ import annotations

import json
import re
from pathlib import Path

from modelhost.api.app import OPERATIONS
from modelhost.cli.main import cli
from modelhost.settings import ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_environment_variable_is_documented() -> None:
    missing = [name for name in ENVIRONMENT_VARIABLES if f"`{name}`" not in README]
    assert missing == []


def test_every_cli_command_is_documented() -> None:
    commands = [f"modelhost {name}" for name in cli.commands]
    missing = [command for command in commands if f"`{command}" not in README]
    assert missing == []


def test_every_implemented_operation_is_in_the_compatibility_list() -> None:
    missing = [op for op in OPERATIONS if f"`{op}`" not in README]
    assert missing == []


OBSERVABILITY = (ROOT / "docs" / "observability.md").read_text()
METRIC_NAME = re.compile(r"modelhost(?::|_)[a-z0-9_:]+")
SUFFIXES = ("_bucket", "_sum", "_count")


def _source() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "modelhost").rglob("*.py"))


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_documented_metric_is_emitted_by_the_code() -> None:
    source = _source()
    documented = {_base(n) for n in METRIC_NAME.findall(OBSERVABILITY)}
    # the code names counters without `_total` (prometheus_client adds it) and LLM metrics without the prefix
    missing = [
        n for n in sorted(documented)
        if n.removesuffix("_total") not in source and n.removeprefix("modelhost:").removesuffix("_total") not in source
    ]  # fmt: skip
    assert missing == []


def test_every_metric_the_dashboard_queries_is_documented() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana" / "modelhost-dashboard.json").read_text())
    queried = {
        _base(n)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for n in METRIC_NAME.findall(target["expr"])
    }
    assert queried and sorted(n for n in queried if n not in OBSERVABILITY) == []
