"""`modelhost top`, `modelhost metrics` and `modelhost logs -f` against a real server with a deployed endpoint:
the counts and rates top shows, the invocations CloudWatch recorded, the lines the model logs while followed."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server import ServerProcess, deploy, write_echo_model

MODEL_PY = """
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    text = inputs.get_as_string()
    print(f"handled {text}", flush=True)
    if text == "bad":
        return Output().set_code(400).set_message("bad input").add_as_json({"error": "bad input"})
    return Output().add_as_json({"echo": text})
"""
NAME = "observed"
GOOD, BAD = 6, 2


def cli_env(server: ServerProcess) -> dict[str, str]:
    return {**os.environ, "MODELHOST_URL": server.url, "MODELHOST_HOME": str(server.home)}


def run(server: ServerProcess, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelhost", *args], env=cli_env(server), capture_output=True,
                          text=True, timeout=timeout_s)  # fmt: skip


def invoke(runtime: Any, body: bytes) -> None:
    with contextlib.suppress(runtime.exceptions.ModelError):
        runtime.invoke_endpoint(EndpointName=NAME, Body=body)


@pytest.fixture(scope="module")
def observed(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The endpoint NAME, invoked GOOD times and answered 400 by the model BAD times."""
    sm, runtime = server.clients()
    folder = write_echo_model(tmp_path_factory.mktemp("observed") / "model", model_py=MODEL_PY)
    deploy(sm, NAME, str(folder))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for body, times in ((b"hello", GOOD), (b"bad", BAD)):
        for _ in range(times):
            invoke(runtime, body)
    yield server
    sm.delete_endpoint(EndpointName=NAME)


def top_once(server: ServerProcess, interval_s: float) -> dict[str, Any]:
    shown = run(server, "top", "--once", "--json", "--interval", str(interval_s))
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    rows = [row for row in document["variants"] if row["endpoint"] == NAME]
    assert len(rows) == 1, document
    return {"interval_s": document["interval_s"], **rows[0]}


def test_top_once_shows_the_counts_and_no_rate_while_idle(observed: ServerProcess) -> None:
    row = top_once(observed, 1.0)
    assert row["variant"] == "AllTraffic"
    assert (row["current_instances"], row["desired_instances"]) == (1, 1)
    assert row["invocations_total"] == GOOD + BAD and row["errors_total"] == BAD
    assert row["requests_per_s"] == 0.0 and row["errors_per_s"] == 0.0 and row["invocations_in_interval"] == 0
    assert row["model_latency_p50_s"] is None and row["tokens_per_s"] is None  # nothing in the interval; no engine
    assert row["memory_bytes"] > 10 * 1024 * 1024 and row["interval_s"] >= 1.0
    table = run(observed, "top", "--interval", "0.2")  # not a terminal: one snapshot, as a table
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["ENDPOINT", "VARIANT", "INST", "REQ/S"]
    assert any(line.split()[:4] == [NAME, "AllTraffic", "1/1", "0.0"] for line in table.stdout.splitlines())


def test_top_once_rates_match_the_requests_sent_between_its_scrapes(observed: ServerProcess) -> None:
    _, runtime = observed.clients()
    sent = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal sent
        while not stop.is_set():
            invoke(runtime, b"bad" if sent % 4 == 3 else b"hello")  # every fourth answered 400
            sent += 1

    before = top_once(observed, 0.5)["invocations_total"]
    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        time.sleep(0.5)
        row = top_once(observed, 3.0)
    finally:
        stop.set()
        loader.join(timeout=30)
    after = top_once(observed, 0.5)["invocations_total"]
    assert after == before + sent  # every request counted once
    window = row["invocations_in_interval"]
    assert 0 < window <= sent and before + window <= row["invocations_total"] <= after
    assert row["requests_per_s"] == pytest.approx(window / row["interval_s"], rel=0.01)
    assert 0 < row["errors_per_s"] < row["requests_per_s"]
    assert 0 < row["model_latency_p50_s"] <= row["model_latency_p99_s"] < 5


def test_top_without_a_server_is_one_line(tmp_path: Path) -> None:
    shown = subprocess.run([sys.executable, "-m", "modelhost", "top", "--url", "http://127.0.0.1:9"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 2
    assert shown.stderr.startswith("error: cannot reach the modelhost server at http://127.0.0.1:9")
    assert len(shown.stderr.splitlines()) == 1


def test_metrics_shows_the_invocations_once_their_window_is_written(observed: ServerProcess) -> None:
    deadline = time.monotonic() + 45  # 10 s windows, written every 10 s
    while True:
        shown = run(observed, "metrics", NAME, "--json", "--since", "30m", "--period", "60")
        document = json.loads(shown.stdout) if shown.returncode == 0 else None
        total = sum(p.get("invocations", 0) for v in document["variants"] for p in v["periods"]) if document else 0
        if total >= GOOD + BAD or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert shown.returncode == 0, shown.stderr
    assert document is not None and document["endpoint"] == NAME and document["period_s"] == 60
    [variant] = document["variants"]
    overall = variant["overall"]
    assert variant["variant"] == "AllTraffic"
    assert overall["invocations"] >= GOOD + BAD  # later tests of this module may have added more
    assert overall["errors_4xx"] >= BAD and overall["model_errors"] >= BAD and overall["errors_5xx"] == 0
    assert 0 < overall["model_latency_avg_ms"] <= overall["model_latency_max_ms"] < 5000
    table = run(observed, "metrics", NAME, "--since", "1h")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"{NAME}: CloudWatch metrics from ") and "variant AllTraffic" in lines
    header = lines[lines.index("variant AllTraffic") + 1].split()
    assert header[:5] == ["TIME", "INVOC", "4XX", "5XX", "MODEL_ERR"]
    assert lines[-1].split()[0] == "overall" and int(lines[-1].split()[1]) >= GOOD + BAD


def test_metrics_of_an_endpoint_without_data_is_one_line(observed: ServerProcess) -> None:
    shown = run(observed, "metrics", "never-deployed")
    assert shown.returncode == 1
    assert shown.stderr.startswith("error: no CloudWatch data for endpoint never-deployed in the last 1h")
    assert len(shown.stderr.splitlines()) == 1
    bad = run(observed, "metrics", NAME, "--since", "soon")
    assert bad.returncode == 2 and "is not a duration" in bad.stderr and "Traceback" not in bad.stderr
    unreachable = subprocess.run([sys.executable, "-m", "modelhost", "metrics", NAME, "--url", "http://127.0.0.1:9"],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("error: cannot reach the modelhost server")


class LineReader:
    """The lines of a text pipe, read by one thread, so a silent process cannot block the test."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def until(self, wanted: str, deadline_s: float) -> list[str]:
        """Lines up to the first that contains `wanted`, or all that came before the deadline."""
        got: list[str] = []
        deadline = time.monotonic() + deadline_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.lines.get(timeout=left))
            except queue.Empty:
                break
            if wanted in got[-1]:
                break
        return got


def test_logs_follow_prints_what_the_model_logs_after_it_started(observed: ServerProcess) -> None:
    _, runtime = observed.clients()
    follower = subprocess.Popen([sys.executable, "-m", "modelhost", "logs", NAME, "-f", "-n", "5"],
                                env=cli_env(observed), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
    try:
        reader = LineReader(follower.stdout)
        backlog = reader.until("handled", 60)  # the backlog: the fixture's invocations
        assert backlog and all(line.startswith("[") for line in backlog), backlog
        marker = f"followed-{time.time_ns()}"
        invoke(runtime, marker.encode())
        shown = reader.until(marker, 30)
        # a printed line is an event of its own: `[stream] <time> stdout: <text>`
        printed = f" stdout: handled {marker}"
        assert any(line.startswith("[AllTraffic/alltraffic-0] ") and line.endswith(printed) for line in shown), shown
        assert follower.poll() is None  # still following
    finally:
        follower.send_signal(2)  # Ctrl-C
        try:
            _, err = follower.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            follower.kill()
            raise
    assert follower.returncode == 0 and "Traceback" not in err, err


def test_logs_without_follow_still_prints_each_log(observed: ServerProcess) -> None:
    shown = run(observed, "logs", NAME, "-n", "50")
    assert shown.returncode == 0, shown.stderr
    assert "==> alltraffic-0.log <==" in shown.stdout and "handled hello" in shown.stdout
    missing = run(observed, "logs", "never-deployed", "-f")
    assert missing.returncode == 1 and missing.stderr.startswith("error: ResourceNotFoundException: ")
