"""The docs name every setting, CLI command and implemented SageMaker operation."""

from __future__ import annotations

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
