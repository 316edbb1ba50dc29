"""Overload is answered with a throttling error that AWS SDKs retry, never a hang; the endpoint recovers."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, write_echo_model

SLOW_MODEL = """
import time
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    time.sleep(1.0)
    return Output().add("done")
"""


def test_throttling_beyond_the_queue_and_recovery(tmp_path: Path) -> None:
    env = {"MODELHOST_MAX_CONCURRENCY_PER_INSTANCE": "1", "MODELHOST_MAX_QUEUE_PER_VARIANT": "2"}
    server = ServerProcess(tmp_path / "home", env=env).start()
    try:
        sm, runtime = server.clients()  # no client retries: every answer is seen as it is
        deploy(sm, "busy", str(write_echo_model(tmp_path / "slow", model_py=SLOW_MODEL)))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="busy", WaiterConfig={"Delay": 1, "MaxAttempts": 60})

        def call() -> str:
            try:
                return runtime.invoke_endpoint(EndpointName="busy", Body=b"x")["Body"].read().decode()
            except ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
                return exc.response["Error"]["Code"]

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: call(), range(8)))
        assert time.monotonic() - start < 15  # refused at once, not hung
        # one running + two queued get served; the rest are refused (arrivals spread a little, so at least)
        assert results.count("done") >= 3
        assert results.count("ThrottlingException") >= 3
        assert results.count("done") + results.count("ThrottlingException") == 8
        assert call() == "done"  # the load fell: served again
    finally:
        server.stop()
