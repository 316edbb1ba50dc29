"""Handler mode's /metrics: requests by status and their durations (a streamed answer counts once it has been
sent), plus the process metrics, on the worker's own registry (in process, Starlette's TestClient)."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from modelhost.worker.handler.server import create_app
from modelhost.worker.handler.service import HandlerService
from modelhost.worker.handler.thread import HandlerThread
from modelhost.worker.properties import build_serving_properties

MODEL = """
    import time
    from djl_python import Output

    def words():
        for word in ["a", "b"]:
            time.sleep(0.05)
            yield [word]

    def handle(inputs):
        if inputs.is_empty():
            return None
        body = inputs.get_as_string()
        if body == "raise":
            raise ValueError("refused")
        if body == "none":
            return None
        if body == "stream":
            return Output().add_property("Content-Type", "application/jsonlines").add_stream_content(words())
        return Output().add("ok")
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL))
    props = build_serving_properties("engine=Python\n", {})
    app = create_app(HandlerService(props, tmp_path, device_id="-1", env={}), HandlerThread(), lambda reason: None)
    with TestClient(app) as test_client:
        deadline = time.monotonic() + 10
        while test_client.get("/ping").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.02)
        yield test_client
    sys.modules.pop("model", None)


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_requests_are_counted_by_status_with_their_durations(client: TestClient) -> None:
    for body, status in [("x", 200), ("x", 200), ("raise", 424), ("none", 204), ("x", 200)]:
        assert client.post("/invocations", content=body).status_code == status
    with client.stream("POST", "/invocations", content="stream") as response:
        assert response.status_code == 200 and len(list(response.iter_lines())) == 2
    found = scrape(client)
    assert found[("modelhost_worker_requests_total", (("status", "200"),))] == 4
    assert found[("modelhost_worker_requests_total", (("status", "424"),))] == 1
    assert found[("modelhost_worker_requests_total", (("status", "204"),))] == 1
    assert found[("modelhost_worker_request_duration_seconds_count", ())] == 6
    # the stream slept 2 x 50 ms before its last chunk was sent
    assert found[("modelhost_worker_request_duration_seconds_sum", ())] >= 0.1
    assert found[("modelhost_worker_request_duration_seconds_bucket", (("le", "0.005"),))] <= 5
    assert found[("process_cpu_seconds_total", ())] > 0
    assert ("python_info", ()) not in found  # python_info carries labels
    assert any(name == "python_info" for name, _ in found)


def test_a_request_refused_before_the_handler_is_counted(client: TestClient) -> None:
    bad = client.post("/invocations", content=b"x", headers={"content-type": "multipart/form-data; boundary="})
    assert bad.status_code == 400, bad.text
    found = scrape(client)
    assert found[("modelhost_worker_requests_total", (("status", "400"),))] == 1
    assert found[("modelhost_worker_request_duration_seconds_count", ())] == 1
