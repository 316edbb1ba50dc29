"""A killed server loses no InvokeEndpointAsync request: several are queued against a slow model, the server is
killed with SIGKILL mid-queue (one request running), and the server started again on the same home writes
every request's own result (the one that was running is run again: at-least-once)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.integration.async_inference.test_async_inference import FAST, SLOW_MODEL, async_endpoint, local_file
from tests.integration.server import ServerProcess, write_echo_model

COUNT = 6


def test_queued_requests_survive_kill_9(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    first = ServerProcess(home).start()
    try:
        sm, runtime = first.clients()
        async_endpoint(sm, "async-durable", write_echo_model(tmp_path / "slow", model_py=SLOW_MODEL), str(out),
                       str(tmp_path / "failed"), concurrency=1)  # fmt: skip
        sm.get_waiter("endpoint_in_service").wait(EndpointName="async-durable", WaiterConfig=FAST)
        answers = [
            runtime.invoke_endpoint_async(
                EndpointName="async-durable",
                Body=f"request {i}".encode(),
                CustomAttributes="sleep=1",
                InferenceId=f"req-{i}",
            )  # fmt: skip
            for i in range(COUNT)
        ]
        local_file(Path(answers[0]["OutputLocation"]))
        done_before = sum(Path(a["OutputLocation"]).exists() for a in answers)
        assert done_before < COUNT, "the queue finished before the kill; slow the model down"
    finally:
        first.stop(sig=signal.SIGKILL)

    second = ServerProcess(home).start()
    try:
        for i, answer in enumerate(answers):
            assert answer["OutputLocation"] == str(out / f"req-{i}.out")
            assert local_file(Path(answer["OutputLocation"]), timeout_s=60) == f"slept:request {i}".encode()
        assert not (tmp_path / "failed").exists()
        deadline = time.monotonic() + 10
        while (rows := json.loads(_rows(second))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rows == 0, "the queue's rows stay after every result was written"
        assert "was running when the server stopped; running it again" in second.log_text()
    finally:
        second.stop()


def _rows(server: ServerProcess) -> str:
    import sqlite3

    with sqlite3.connect(server.home / "modelhost.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM resources WHERE kind = 'async_request'").fetchone()
    return json.dumps(count)
