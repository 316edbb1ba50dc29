"""Which Python module serves a model folder (DJL's entry point rules), and importing its handler function."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

NO_ENTRY_POINT = (
    "no model.py in the model data and no option.entryPoint in serving.properties; a model folder for "
    "modelhost's built-in engine (option.model_id without model.py) is served by the engine"
)


class EntryPointError(Exception):
    """The entry point cannot be found or does not define the handler; str() is the one-line reason."""


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """A module to import for the handler: from a file, or by name from sys.path."""

    module_name: str  # the name it is imported as ("model" for model.py)
    path: Path | None  # the file to load; None means import `module_name` from sys.path
    source: str  # where the choice came from, for the log: "option.entryPoint", "DJL_ENTRY_POINT", "model.py"


def _from_value(value: str, model_dir: Path, source: str, is_file: Callable[[Path], bool]) -> EntryPoint:
    value = value.strip()
    if value.startswith(("http://", "https://")):
        raise EntryPointError(f"{source}={value}: an entry point URL is not supported; put the file in the model data")
    if value.endswith(".py") or "/" in value:
        path = _inside_model_dir(value, model_dir, source)
        if not is_file(path):
            raise EntryPointError(f"{source}={value}: file {path} not found")
        return EntryPoint(module_name=path.stem, path=path, source=source)
    return EntryPoint(module_name=value, path=None, source=source)


def _inside_model_dir(value: str, model_dir: Path, source: str) -> Path:
    """The file `value` names in the model folder; EntryPointError when it is absolute or leads out of it
    (`..`, or a symlink pointing elsewhere): a model's entry point is its own code, never another file."""
    if Path(value).is_absolute():
        raise EntryPointError(
            f"{source}={value}: an entry point must be a file inside the model folder (a relative path such as "
            "serve.py) or a module name; absolute paths are refused"
        )
    path = model_dir / value
    root = model_dir.resolve()
    resolved = path.resolve()
    if ".." in Path(value).parts or (resolved != root and root not in resolved.parents):
        raise EntryPointError(
            f"{source}={value}: an entry point must be a file inside the model folder; this path leads out of it"
        )
    return path


def resolve_entry_point(
    model_dir: Path,
    option_entry_point: str | None,
    env: Mapping[str, str],
    is_file: Callable[[Path], bool] = Path.is_file,
) -> EntryPoint:
    """option.entryPoint (a file in the model dir or a module name), else env
    DJL_ENTRY_POINT, else <model_dir>/model.py; EntryPointError when there is none."""
    if option_entry_point:
        return _from_value(option_entry_point, model_dir, "option.entryPoint", is_file)
    if env.get("DJL_ENTRY_POINT"):
        return _from_value(env["DJL_ENTRY_POINT"], model_dir, "DJL_ENTRY_POINT", is_file)
    model_py = model_dir / "model.py"
    if is_file(model_py):
        return EntryPoint(module_name="model", path=model_py, source="model.py")
    raise EntryPointError(NO_ENTRY_POINT)


def import_entry_point(entry: EntryPoint) -> ModuleType:
    """Import the module; its own exceptions (ImportError, SyntaxError, ...) propagate unchanged."""
    if entry.path is None:
        if entry.module_name.startswith("djl_python.") and importlib.util.find_spec(entry.module_name) is None:
            raise EntryPointError(
                f"{entry.source}={entry.module_name} is a DJL built-in handler, which modelhost's "
                "worker does not include; remove option.entryPoint to have modelhost's built-in engine "
                "serve option.model_id"
            )
        return importlib.import_module(entry.module_name)
    spec = importlib.util.spec_from_file_location(entry.module_name, entry.path)
    if spec is None or spec.loader is None:
        raise EntryPointError(f"cannot import {entry.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[entry.module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(entry.module_name, None)
        raise
    return module


def find_handler(module: ModuleType, name: str) -> Callable[[Any], Any]:
    function = getattr(module, name, None)
    if not callable(function):
        where = getattr(module, "__file__", None) or module.__name__
        raise EntryPointError(f"{where} defines no function {name!r} (option.handler)")
    return function  # type: ignore[no-any-return]
