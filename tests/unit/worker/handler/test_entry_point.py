"""Which module serves a model folder (DJL's entry point rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.worker.handler.entry_point import NO_ENTRY_POINT, EntryPointError, resolve_entry_point

MODEL_DIR = Path("/models/m")


def files(*paths: str):  # type: ignore[no-untyped-def]
    present = {Path(p) for p in paths}
    return lambda path: path in present


def test_model_py_is_the_default() -> None:
    entry = resolve_entry_point(MODEL_DIR, None, {}, files("/models/m/model.py"))
    assert (entry.module_name, entry.path) == ("model", MODEL_DIR / "model.py")


def test_option_entry_point_file_in_model_dir() -> None:
    entry = resolve_entry_point(MODEL_DIR, "serve.py", {}, files("/models/m/serve.py", "/models/m/model.py"))
    assert (entry.module_name, entry.path, entry.source) == (
        "serve",
        MODEL_DIR / "serve.py",
        "option.entryPoint",
    )


def test_option_entry_point_absolute_path_and_module_name() -> None:
    entry = resolve_entry_point(MODEL_DIR, "/opt/h/handler.py", {}, files("/opt/h/handler.py"))
    assert entry.path == Path("/opt/h/handler.py")
    by_name = resolve_entry_point(MODEL_DIR, "my_pkg.serving", {}, files())
    assert (by_name.module_name, by_name.path) == ("my_pkg.serving", None)


def test_djl_entry_point_env_comes_before_model_py() -> None:
    entry = resolve_entry_point(
        MODEL_DIR, None, {"DJL_ENTRY_POINT": "other.py"}, files("/models/m/other.py", "/models/m/model.py")
    )
    assert entry.module_name == "other"


def test_missing_file_named_by_option_fails() -> None:
    with pytest.raises(EntryPointError, match="not found"):
        resolve_entry_point(MODEL_DIR, "serve.py", {}, files())


def test_no_entry_point_at_all() -> None:
    with pytest.raises(EntryPointError) as caught:
        resolve_entry_point(MODEL_DIR, None, {}, files())
    assert str(caught.value) == NO_ENTRY_POINT
    assert "no model.py in the model data" in NO_ENTRY_POINT
