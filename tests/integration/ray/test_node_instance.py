"""What a Ray node runs for one worker (ray_node.NodeInstance), without Ray: the model data prepared in the
node's own folder, the real worker started with the launcher's contract, its log read in chunks, its stop;
and a setup failure as a failure record and an exit status."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import httpx

from modelhost.contracts.worker import ROUTER_TOKEN_HEADER
from modelhost.scheduler.launchers.base import LaunchRequest, NodeModelData
from modelhost.scheduler.launchers.ray_node import SETUP_FAILED, NodeInstance, NodeLaunch
from modelhost.storage.uris import parse_model_data_url
from tests.integration.server import write_echo_model


def _launch(tmp_path: Path, model_data: str) -> NodeLaunch:
    request = LaunchRequest(
        instance_id="ep-v-0-abc-c0", group_id="ep-v-0-abc", endpoint_name="ep", variant_name="v", model_name="m",
        instance_type="ml.m5.large", image="", model_dir=Path("/unused"), packages_dir=None,
        environment={"ECHO_ENV": "from-the-model"},
        node_data=NodeModelData(parse_model_data_url(model_data), download_timeout_s=60, install_timeout_s=60),
    )  # fmt: skip
    return NodeLaunch(request=request, host="127.0.0.1", node_dir=str(tmp_path / "node"), max_extract_bytes=1 << 30,
                      local_roots=None, allow_private_http=False, router_token="secret")  # fmt: skip


def _read_all(node: NodeInstance) -> str:
    text, offset = b"", 0
    while True:
        chunk, offset = node.read_log(offset)
        if not chunk:
            return text.decode()
        text += chunk


def test_a_worker_runs_from_the_nodes_own_cache_and_stops(tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "echo")
    archive = tmp_path / "echo.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in folder.iterdir():
            tar.add(path, arcname=path.name)
    node = NodeInstance(_launch(tmp_path, str(archive)), "127.0.0.1", (), node_id="n1")
    placed = node.begin()
    assert placed.url.startswith("http://127.0.0.1:") and placed.node_id == "n1"
    deadline = time.monotonic() + 60
    while True:
        assert node.exit_code() is None, _read_all(node)
        try:
            if httpx.get(f"{placed.url}/ping", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, _read_all(node)
        time.sleep(0.2)
    answer = httpx.post(f"{placed.url}/invocations", content=b"hi", headers={ROUTER_TOKEN_HEADER: "secret"}).json()
    assert answer["echo"] == "hi" and answer["env"] == "from-the-model"
    assert httpx.post(f"{placed.url}/invocations", content=b"hi").status_code == 403  # the router's token only
    assert list((tmp_path / "node" / "artifacts" / "models").iterdir())  # extracted into the node's cache
    log = _read_all(node)
    assert "on Ray node n1 (127.0.0.1)" in log and "started worker pid" in log
    assert node.stop(grace_s=10) is not None
    assert node.wait() == node.exit_code()
    node.discard()
    assert not (tmp_path / "node" / "logs" / "ep-v-0-abc-c0.log").exists()


def test_local_model_data_missing_on_the_node_is_a_download_failure(tmp_path: Path) -> None:
    node = NodeInstance(_launch(tmp_path, str(tmp_path / "nowhere.tar.gz")), "10.0.0.7", ())
    node.begin()
    assert node.wait() == SETUP_FAILED
    failure = node.failure()
    assert failure is not None
    phase, reason = failure
    assert phase == "download"
    assert "on Ray node 10.0.0.7" in reason and "use s3:// or https://" in reason
    assert "download failed" in _read_all(node)
