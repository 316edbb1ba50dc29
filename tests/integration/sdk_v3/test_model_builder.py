"""The SageMaker Python SDK v3 runs to the end against modelhost alone: examples/sagemaker_sdk_v3/deploy.py
(ModelBuilder.build() → deploy() → Endpoint.invoke() → delete), run with the SDK's own Python against a server
and moto's S3 started here on loopback.

The SDK lives in an environment of its own (about 1 GB: examples/sagemaker_sdk_v3/setup.sh makes it); the
test is skipped when MODELHOST_SDK_V3_PYTHON (default /tmp/sdk3-venv/bin/python) does not exist.

The echo model takes LOAD_SECONDS to load, so deploy() waits through more than one of its 30 s checks: on
every check the SDK follows the endpoint's log with FilterLogEvents, resuming from the nextToken of the check
before (a botocore paginator's StartingToken), and stops on any error but ResourceNotFoundException.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "sagemaker_sdk_v3" / "deploy.py"
SDK_PYTHON = Path(os.environ.get("MODELHOST_SDK_V3_PYTHON", "/tmp/sdk3-venv/bin/python"))
LOAD_SECONDS = 40  # longer than the SDK's first wait (30 s): its second check resumes from a nextToken
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SDK_PYTHON.exists(),
        reason=f"no SageMaker SDK v3 environment at {SDK_PYTHON} (examples/sagemaker_sdk_v3/setup.sh makes one, "
        "~1 GB; or set MODELHOST_SDK_V3_PYTHON)",
    ),
]


@pytest.fixture(scope="module")
def sdk_server(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[ServerProcess]:
    """A modelhost server that reads model data from moto's S3, as the SDK uploads it there."""
    proc = ServerProcess(tmp_path_factory.mktemp("sdk-v3-home"), env={**S3_ENV, "AWS_ENDPOINT_URL_S3": moto_endpoint})
    proc.start()
    yield proc
    proc.stop()


def sdk_environment() -> dict[str, str]:
    """The test's environment without AWS settings: the example sets every one it needs itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_", "PYTHON"))}
    return {**env, "HOME": os.environ.get("HOME", "/tmp"), "COLUMNS": "200"}


def test_model_builder_deploys_invokes_and_deletes(sdk_server: ServerProcess, moto_endpoint: str) -> None:
    version = subprocess.run(
        [str(SDK_PYTHON), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
        capture_output=True, text=True, env=sdk_environment(), timeout=120,
    )  # fmt: skip
    assert version.returncode == 0, f"{SDK_PYTHON} has no SageMaker SDK v3:\n{version.stderr[-2000:]}"
    assert version.stdout.startswith("3."), f"{SDK_PYTHON} has sagemaker {version.stdout.strip()}, not 3.x"

    run = subprocess.run(
        [str(SDK_PYTHON), str(EXAMPLE), sdk_server.url, moto_endpoint, "--load-seconds", str(LOAD_SECONDS)],
        capture_output=True, text=True, env=sdk_environment(), timeout=420, cwd=ROOT,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, (
        f"the SDK v3 example failed:\n{output[-6000:]}\n--- server log:\n{sdk_server.log_text()[-3000:]}"
    )

    name = re.search(r"^built model (\S+)$", run.stdout, re.M)
    assert name is not None, run.stdout[-3000:]
    endpoint = name.group(1)
    waited = re.search(rf"endpoint {endpoint} is InService after (\d+) s$", run.stdout, re.M)
    assert waited is not None, run.stdout[-3000:]
    assert int(waited.group(1)) > 30, "deploy() finished at its first check: the resumed log poll was not exercised"
    # the answer came from the model through the SDK's Endpoint.invoke
    assert (
        "answer: {'echo': {'inputs': 'How do I write a professional email?'}, 'content_type': 'application/json'}"
        in run.stdout
    )
    # deploy() showed the endpoint's log lines it read with FilterLogEvents (its Rich panel prints them)
    assert "echo model: loading step 1/" in output, output[-4000:]

    # and the example deleted everything it made
    sm, _ = sdk_server.clients()
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName=endpoint)
    assert endpoint not in [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    assert endpoint not in [m["ModelName"] for m in sm.list_models()["Models"]]
