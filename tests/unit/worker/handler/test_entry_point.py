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


def test_option_entry_point_module_name() -> None:
    by_name = resolve_entry_point(MODEL_DIR, "my_pkg.serving", {}, files())
    assert (by_name.module_name, by_name.path) == ("my_pkg.serving", None)
    nested = resolve_entry_point(MODEL_DIR, "code/serve.py", {}, files("/models/m/code/serve.py"))
    assert nested.path == MODEL_DIR / "code" / "serve.py"


@pytest.mark.parametrize("value", ["/opt/h/handler.py", "/models/m/model.py"])
def test_absolute_entry_points_are_refused(value: str) -> None:
    with pytest.raises(EntryPointError, match="absolute paths are refused"):
        resolve_entry_point(MODEL_DIR, value, {}, files(value))


@pytest.mark.parametrize("value", ["../other/model.py", "code/../../x.py", "../../etc/evil.py"])
def test_entry_points_leading_out_of_the_model_folder_are_refused(value: str) -> None:
    with pytest.raises(EntryPointError, match="leads out of it"):
        resolve_entry_point(MODEL_DIR, value, {}, lambda path: True)
    with pytest.raises(EntryPointError, match="leads out of it"):
        resolve_entry_point(MODEL_DIR, None, {"DJL_ENTRY_POINT": value}, lambda path: True)


def test_a_symlink_out_of_the_model_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("def handle(inputs): pass\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "serve.py").symlink_to(outside)
    with pytest.raises(EntryPointError, match="leads out of it"):
        resolve_entry_point(model_dir, "serve.py", {})


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
