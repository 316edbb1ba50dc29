"""Deployments that fail say why, in FailureReason, and leave nothing running."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import WaiterError

from tests.integration.server import deploy, wait_status, write_echo_model


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_handler_that_fails_to_import(sm: Any, tmp_path: Path) -> None:
    folder = write_echo_model(
        tmp_path / "bad", model_py="import nonexistent_pkg_xyz\n\ndef handle(i):\n    return None\n"
    )
    name = unique("badimport")
    deploy(sm, name, str(folder))
    with pytest.raises(WaiterError) as exc:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert "Failed" in str(exc.value)
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith("load failed:")
    assert "ModuleNotFoundError: No module named 'nonexistent_pkg_xyz'" in desc["FailureReason"]
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 0
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_missing_model_data(sm: Any, tmp_path: Path) -> None:
    name = unique("nodata")
    deploy(sm, name, str(tmp_path / "does-not-exist.tar.gz"))
    desc = wait_status(sm, name)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith("download failed:")
    assert "does-not-exist.tar.gz" in desc["FailureReason"]


def _tar_with(members: list[tuple[tarfile.TarInfo, bytes | None]], path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.mark.parametrize(
    "member",
    ["../escape.txt", "/abs/evil.txt", "link-out"],
)
def test_unsafe_archives_are_refused(sm: Any, tmp_path: Path, member: str) -> None:
    handler = b"def handle(i):\n    return None\n"
    good = tarfile.TarInfo("model.py")
    good.size = len(handler)
    if member == "link-out":
        bad = tarfile.TarInfo("link-out")
        bad.type = tarfile.SYMTYPE
        bad.linkname = "../../../etc/passwd"
        members = [(good, handler), (bad, None)]
    else:
        bad = tarfile.TarInfo(member)
        bad.size = 3
        members = [(good, handler), (bad, b"bad")]
    archive = _tar_with(members, tmp_path / "evil.tar.gz")
    name = unique("evil")
    deploy(sm, name, archive.as_uri())
    desc = wait_status(sm, name)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith("extract failed:")
    assert not (tmp_path.parent / "escape.txt").exists()


@pytest.mark.slow
def test_health_check_timeout(sm: Any, tmp_path: Path) -> None:
    folder = write_echo_model(
        tmp_path / "hang",
        properties="engine=Python\noption.model_loading_timeout=3600\n",
        model_py="import time\n\ndef handle(i):\n    print('loading forever', flush=True)\n    time.sleep(3600)\n",
    )
    name = unique("hang")
    deploy(sm, name, str(folder), startup_timeout=60)
    desc = wait_status(sm, name, timeout_s=120)
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("health check failed:")
    assert "did not pass the ping health check within 60 s" in reason
