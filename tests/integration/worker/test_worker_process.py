"""A real worker process serving DJL-style model.py handlers over HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx

StartWorker = Any  # the start_worker fixture (conftest.py)

ECHO = """
    import json
    from djl_python import Input, Output

    def handle(inputs: Input):
        if inputs.is_empty():
            assert inputs.get_property("model_dir"), "init call without model_dir"
            return None
        body = inputs.get_as_string()
        if body == "none":
            return None
        if body == "raise":
            raise ValueError("the handler refused")
        out = Output()
        out.add_property("Content-Type", "application/json")
        out.add_property("X-Echo-Length", str(len(body)))
        out.add(json.dumps({"body": body, "properties": inputs.get_properties()}))
        return out
"""


def test_echo_handler_round_trip(start_worker: StartWorker) -> None:
    worker = start_worker(ECHO)
    worker.wait_ready()
    response = httpx.post(
        worker.url + "/invocations",
        content=b"hello",
        headers={
            "Content-Type": "text/plain",
            "X-Amzn-SageMaker-Custom-Attributes": "trace=abc; tier = gold",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-echo-length"] == "5"
    answer = response.json()
    assert answer["body"] == "hello"
    props = answer["properties"]
    assert props["trace"] == "abc" and props["tier"] == "gold"
    assert "x-amzn-sagemaker-custom-attributes" not in {k.lower() for k in props}
    assert props["content-type"] == "text/plain"
    assert props["device_id"] == "-1" and props["handler"] == "handle"
    assert props["model_dir"] == worker.spec.model_dir


def test_none_is_204_and_an_exception_is_424(start_worker: StartWorker) -> None:
    worker = start_worker(ECHO)
    worker.wait_ready()
    assert httpx.post(worker.url + "/invocations", content=b"none").status_code == 204
    failed = httpx.post(worker.url + "/invocations", content=b"raise")
    assert failed.status_code == 424
    assert failed.headers["content-type"] == "application/json"
    assert failed.json() == {"code": 424, "message": "invoke handler failure", "error": "the handler refused"}
    assert "the handler refused" in worker.log()  # the traceback is logged for the user


def test_ping_is_503_while_loading(start_worker: StartWorker) -> None:
    worker = start_worker("""
        import time
        from djl_python import Output
        def handle(inputs):
            if inputs.is_empty():
                time.sleep(1.5)
                return None
            return Output().add("ok")
    """)
    deadline = time.monotonic() + 10
    statuses = set()
    while time.monotonic() < deadline:
        try:
            status = httpx.get(worker.url + "/ping").status_code
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        statuses.add(status)
        if status == 200:
            break
        time.sleep(0.05)
    assert statuses == {503, 200}


def test_import_error_is_a_load_failure(start_worker: StartWorker) -> None:
    worker = start_worker("import nonexistent_pkg\ndef handle(inputs):\n    return None\n")
    assert worker.wait_exit() == 1
    failure = worker.failure
    assert failure is not None and failure.phase == "load"
    assert failure.reason == "ModuleNotFoundError: No module named 'nonexistent_pkg'"
    assert "Traceback" in worker.log()


def test_missing_model_py_is_a_load_failure(start_worker: StartWorker) -> None:
    worker = start_worker(None, "engine=Python\n")
    assert worker.wait_exit() == 1
    assert worker.failure is not None
    assert worker.failure.reason.startswith("no model.py in the model data and no option.entryPoint")


def test_init_that_runs_too_long_is_a_load_failure(start_worker: StartWorker) -> None:
    worker = start_worker(
        "import time\ndef handle(inputs):\n    time.sleep(60)\n",
        "option.model_loading_timeout=2\n",
    )
    assert worker.wait_exit() == 1
    assert worker.failure is not None
    assert worker.failure.reason == "model loading did not finish within 2 s (option.model_loading_timeout)"


def test_slow_prediction_is_424(start_worker: StartWorker) -> None:
    worker = start_worker(
        """
        import time
        from djl_python import Output
        def handle(inputs):
            if not inputs.is_empty():
                time.sleep(3)
                return Output().add("late")
        """,
        "option.predict_timeout=1\n",
    )
    worker.wait_ready()
    response = httpx.post(worker.url + "/invocations", content=b"x", timeout=10)
    assert response.status_code == 424
    assert "did not finish within 1 s" in response.json()["error"]


def test_a_handler_stuck_past_predict_timeout_fails_ping_until_it_returns(start_worker: StartWorker) -> None:
    worker = start_worker(
        """
        import time
        from djl_python import Output
        def handle(inputs):
            if inputs.is_empty():
                return None
            body = inputs.get_as_string()
            if body == "slow":
                time.sleep(5)
            return Output().add(body)
        """,
        "option.predict_timeout=1\n",
    )
    worker.wait_ready()
    started = time.monotonic()
    slow = httpx.post(worker.url + "/invocations", content=b"slow", timeout=10)
    assert slow.status_code == 424 and time.monotonic() - started < 3
    queued: dict[str, httpx.Response] = {}
    behind = threading.Thread(
        target=lambda: queued.setdefault("r", httpx.post(worker.url + "/invocations", content=b"next", timeout=10))
    )
    behind.start()
    time.sleep(1.2)  # the call is now 1.2 s past its 1 s deadline, beyond the 1 s grace
    ping = httpx.get(worker.url + "/ping", timeout=2)
    assert ping.status_code == 503
    assert ping.json()["status"] == "unhealthy"
    assert "past its 1 s predict_timeout" in ping.json()["reason"]
    behind.join(timeout=10)
    assert queued["r"].status_code == 200 and queued["r"].text == "next"  # waited for the thread, not a 424
    assert httpx.get(worker.url + "/ping", timeout=2).status_code == 200
    assert "handler busy" in worker.log() and "healthy again" in worker.log()


def test_dynamic_batch_of_four(start_worker: StartWorker) -> None:
    worker = start_worker(
        """
        from djl_python import Output
        SIZES = []
        def handle(inputs):
            if inputs.is_empty():
                return None
            batch = inputs.get_batches()
            SIZES.append(len(batch))
            out = Output()
            for i, item in enumerate(batch):
                out.add_as_json({"echo": item.get_as_string(), "tag": item.get_property("x-tag"),
                                 "sizes": SIZES}, batch_index=i)
            return out
        """,
        "batch_size=4\nmax_batch_delay=200\n",
    )
    worker.wait_ready()

    async def send_four() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=worker.url, timeout=10) as client:
            return await asyncio.gather(
                *(client.post("/invocations", content=f"r{i}".encode(), headers={"X-Tag": f"t{i}"}) for i in range(4))
            )

    responses = asyncio.run(send_four())
    answers = [r.json() for r in responses]
    assert [r.status_code for r in responses] == [200] * 4
    assert [a["echo"] for a in answers] == ["r0", "r1", "r2", "r3"]
    assert [a["tag"] for a in answers] == ["t0", "t1", "t2", "t3"]
    assert all(a["sizes"] == [4] for a in answers)
    # a lone request after the delay is sent as a plain Input, not a batch of one
    alone = httpx.post(worker.url + "/invocations", content=b"solo", headers={"X-Tag": "s"}, timeout=10)
    assert alone.json() == {"echo": "solo", "tag": "s", "sizes": [4, 1]}


def test_batch_output_size_mismatch(start_worker: StartWorker) -> None:
    worker = start_worker(
        """
        from djl_python import Output
        def handle(inputs):
            if not inputs.is_empty():
                return Output().add("just one", batch_index=0)
        """,
        "batch_size=2\nmax_batch_delay=2000\n",
    )
    worker.wait_ready()

    async def send_two() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=worker.url, timeout=10) as client:
            return await asyncio.gather(*(client.post("/invocations", content=b"x") for _ in range(2)))

    for response in asyncio.run(send_two()):
        assert response.status_code == 424
        assert "Batch output size mismatch" in response.json()["error"]


STREAMER = """
    import time
    from djl_python import Output

    def tokens(fail):
        for word in ["Deep", " learning", " rocks"]:
            yield [word]
            time.sleep(0.3)
        if fail:
            raise RuntimeError("generation broke")

    def handle(inputs):
        if inputs.is_empty():
            return None
        out = Output().add_property("Content-Type", "application/jsonlines")
        return out.add_stream_content(tokens(inputs.get_as_string() == "fail"))
"""


def _read_chunks(url: str, body: bytes) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    chunks = []
    with httpx.stream("POST", url + "/invocations", content=body, timeout=10) as response:
        for chunk in response.iter_raw():
            chunks.append((time.monotonic(), chunk))
    return response, chunks


def test_streamed_output_arrives_chunk_by_chunk(start_worker: StartWorker) -> None:
    worker = start_worker(STREAMER)
    worker.wait_ready()
    response, chunks = _read_chunks(worker.url, b"go")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jsonlines"
    assert response.headers.get("transfer-encoding") == "chunked"
    assert [json.loads(c) for _, c in chunks] == [
        {"outputs": ["Deep"]},
        {"outputs": [" learning"]},
        {"outputs": [" rocks"]},
    ]
    gaps = [b[0] - a[0] for a, b in zip(chunks, chunks[1:], strict=False)]
    assert all(gap > 0.2 for gap in gaps), gaps


def test_stream_error_is_the_last_chunk(start_worker: StartWorker) -> None:
    worker = start_worker(STREAMER)
    worker.wait_ready()
    response, chunks = _read_chunks(worker.url, b"fail")
    assert response.status_code == 200
    assert chunks[-1][1] == b"generation broke"
    assert len(chunks) == 4
    # the worker serves the next request after a broken stream
    assert httpx.post(worker.url + "/invocations", content=b"go", timeout=10).status_code == 200


def test_sigterm_finishes_the_request_in_flight(start_worker: StartWorker) -> None:
    worker = start_worker("""
        import time
        from djl_python import Output
        def handle(inputs):
            if not inputs.is_empty():
                time.sleep(1)
                return Output().add("finished")
    """)
    worker.wait_ready()
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("r", httpx.post(worker.url + "/invocations", content=b"x", timeout=10))
    )
    thread.start()
    time.sleep(0.3)
    worker.process.send_signal(signal.SIGTERM)
    thread.join(timeout=10)
    assert result["r"].status_code == 200 and result["r"].text == "finished"
    worker.wait_exit(10)


def test_worker_exits_when_its_parent_is_gone(start_worker: StartWorker) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    worker = start_worker(ECHO, parent_pid=parent.pid)
    worker.wait_ready()
    # not reaped: the exited parent stays a zombie, which must count as gone
    worker.wait_exit(timeout_s=10)
    assert "parent process" in worker.log()
    parent.wait()


def test_sagemaker_bind_to_port_overrides_the_spec(start_worker: StartWorker) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker = start_worker(ECHO, env={"SAGEMAKER_BIND_TO_PORT": str(port)})
    worker.url = f"http://127.0.0.1:{port}"
    worker.wait_ready()
    assert httpx.post(worker.url + "/invocations", content=b"none").status_code == 204
