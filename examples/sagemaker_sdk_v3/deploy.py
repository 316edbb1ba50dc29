"""The SageMaker Python SDK v3 against modelhost: ModelBuilder.build() → deploy() → invoke → delete.

Checked with sagemaker 3.27.0 in its own environment (`examples/sagemaker_sdk_v3/setup.sh` makes
/tmp/sdk3-venv). v3 builds its boto3 clients itself (sagemaker_core's client cache, `boto_session.client("logs")`
for the deploy waiter), so the clients find modelhost through botocore's per-service endpoint variables,
which this script sets: AWS_ENDPOINT_URL_SAGEMAKER, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME and
AWS_ENDPOINT_URL_CLOUDWATCH_LOGS → modelhost, AWS_ENDPOINT_URL_S3 → the S3 store that holds the model data
(the modelhost server must read the same store: start it with AWS_ENDPOINT_URL_S3 set too). Every other
AWS service is pointed at a closed loopback port, so a call the SDK makes beyond these fails at once instead
of leaving the machine. Start a server first, then:

    /tmp/sdk3-venv/bin/python examples/sagemaker_sdk_v3/deploy.py http://127.0.0.1:8080 http://127.0.0.1:5000

The model is examples/sagemaker_sdk_v3/model/ (a DJL `model.py` echo handler; `--model-folder` names another
folder). It is packed as model.tar.gz and uploaded to S3 with the SDK's Session.upload_data. The SDK checks the
endpoint every 30 s and, on each check, shows the endpoint's new log lines (FilterLogEvents, resumed from the
last nextToken); `--load-seconds 45` makes the echo model take that long to load, so the deploy spans several
checks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"
INSTANCE_TYPE = "ml.m5.large"
MODEL_FOLDER = Path(__file__).resolve().parent / "model"
CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens there, so an unexpected AWS call fails fast
# the SDK's own settings (its "intelligent defaults" config): no telemetry requests to AWS
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def point_clients_at(url: str, s3_url: str) -> None:
    """botocore's service-specific endpoint variables: every client the SDK creates by itself uses them."""
    os.environ.update({
        "AWS_ENDPOINT_URL": CLOSED_PORT,
        "AWS_ENDPOINT_URL_SAGEMAKER": url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": url,
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "x"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "x"),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # the role is given; v3 would otherwise check it with iam:SimulatePrincipalPolicy, outside SageMaker's API
        "SAGEMAKER_VALIDATE_ROLE": "false",
    })  # fmt: skip


def pack(folder: Path, into: Path) -> Path:
    archive = into / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            if not path.name.startswith((".", "__pycache__")):
                tar.add(path, arcname=path.name)
    return archive


def main(url: str, s3_url: str, model_folder: Path = MODEL_FOLDER, load_seconds: int = 0) -> None:
    point_clients_at(url, s3_url)
    import boto3  # after the environment is set: botocore reads it when a client is made
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.resources import EndpointConfig
    from sagemaker.serve.model_builder import ModelBuilder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    boto_session = boto3.Session(region_name=REGION)
    bucket = f"modelhost-sdk-v3-{uuid.uuid4().hex[:8]}"
    boto_session.client("s3").create_bucket(Bucket=bucket)
    session = Session(boto_session=boto_session, default_bucket=bucket, sagemaker_config=SDK_CONFIG)

    with tempfile.TemporaryDirectory() as tmp:
        model_data = session.upload_data(str(pack(model_folder, Path(tmp))), bucket=bucket, key_prefix="echo")
    print(f"uploaded {model_data}", flush=True)

    name = f"sdk-v3-{uuid.uuid4().hex[:8]}"
    builder = ModelBuilder(
        s3_model_data_url=model_data,
        image_uri=IMAGE,
        role_arn=ROLE,
        instance_type=INSTANCE_TYPE,
        env_vars={"ECHO_LOAD_SECONDS": str(load_seconds)},
        sagemaker_session=session,
        log_level=logging.INFO,
    )
    model = builder.build(model_name=name)
    print(f"built model {model.model_name}", flush=True)
    started = time.monotonic()
    endpoint = builder.deploy(endpoint_name=name, initial_instance_count=1, instance_type=INSTANCE_TYPE)
    print(f"endpoint {endpoint.endpoint_name} is {endpoint.endpoint_status} after {time.monotonic() - started:.0f} s")
    try:
        answer = endpoint.invoke(
            body=json.dumps({"inputs": "How do I write a professional email?"}),
            content_type="application/json",
            accept="application/json",
        )
        print("answer:", json.loads(answer.body.read()), flush=True)
    finally:
        config_name = endpoint.endpoint_config_name
        endpoint.delete()
        endpoint.wait_for_delete()
        EndpointConfig.get(endpoint_config_name=config_name, session=boto_session, region=REGION).delete()
        model.delete()
        print(f"deleted endpoint, endpoint config {config_name} and model {model.model_name}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="the modelhost server, e.g. http://127.0.0.1:8080")
    parser.add_argument("s3_url", help="the S3 endpoint the server reads model data from (moto, MinIO)")
    parser.add_argument("--model-folder", type=Path, default=MODEL_FOLDER)
    parser.add_argument("--load-seconds", type=int, default=0, help="how long the echo model takes to load")
    args = parser.parse_args()
    main(args.url, args.s3_url, args.model_folder, args.load_seconds)
