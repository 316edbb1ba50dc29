"""HandlerService: the init call's properties, a refused init, and per-request engine properties."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from modelhost.worker.handler.djl import Input
from modelhost.worker.handler.service import HandlerService, LoadRefused
from modelhost.worker.properties import build_serving_properties

MODEL_PY = """
    from djl_python import Output
    SEEN = []
    def handle(inputs):
        SEEN.append((inputs.is_empty(), dict(inputs.get_properties())))
        if inputs.is_empty() and inputs.get_property("refuse"):
            return Output().error("weights missing", code=500)
        return None if inputs.is_empty() else Output().add("ok")
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL_PY))
    yield tmp_path
    sys.modules.pop("model", None)


def test_init_call_gets_options_model_properties_and_engine_values(model_dir: Path) -> None:
    props = build_serving_properties("engine=Python\noption.model_id=m\noption.entryPoint=model.py\n", {})
    service = HandlerService(props, model_dir, device_id="-1", env={})
    service.load()
    seen = sys.modules["model"].SEEN
    assert seen == [
        (
            True,
            {
                "model_id": "m",
                "entryPoint": "model.py",
                "engine": "Python",
                "handler": "handle",
                "device_id": "-1",
                "model_dir": str(model_dir),
            },
        )
    ]
    request = Input()
    request.content.add("data", bytearray(b"x"))
    request.properties["handler"] = "spoofed"
    output = service.invoke(request)
    assert output is not None and output.content.get("data") == b"ok"
    assert seen[-1][1] == {"handler": "handle", "device_id": "-1", "model_dir": str(model_dir)}


def test_init_answering_an_error_refuses_the_load(model_dir: Path) -> None:
    props = build_serving_properties("option.refuse=yes\n", {})
    with pytest.raises(LoadRefused, match="the init call returned 500.*weights missing"):
        HandlerService(props, model_dir, device_id="0", env={}).load()
