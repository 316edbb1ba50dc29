"""The SageMaker Python SDK (v2) against modelhost: Model.deploy → predict → update → delete.

Checked with sagemaker 2.257.7 (`pip install 'sagemaker>=2.250,<3'`, in its own environment). Start a
server first (`modelhost server --port 8080`), then:

    python examples/sagemaker_sdk/deploy.py http://127.0.0.1:8080 path/to/model.tar.gz

The model data is any DJL-style folder or tar.gz (a local path or file:// URL works; s3:// too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import boto3
import sagemaker
from sagemaker.deserializers import JSONDeserializer
from sagemaker.serializers import JSONSerializer


def main(url: str, model_data: str) -> None:
    boto_session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=boto_session.client("sagemaker", endpoint_url=url),
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=url),
        default_bucket="unused",  # modelhost reads local model data; the SDK needs a name only
    )
    model = sagemaker.model.Model(
        image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118",
        model_data=Path(model_data).resolve().as_uri() if "://" not in model_data else model_data,
        role="arn:aws:iam::123456789012:role/SageMakerRole",
        sagemaker_session=session,
        predictor_cls=sagemaker.Predictor,
    )
    predictor = model.deploy(
        initial_instance_count=1,
        instance_type="ml.g5.2xlarge",
        endpoint_name="sdk-demo",
        serializer=JSONSerializer(),
        deserializer=JSONDeserializer(),
    )  # the SDK waits 30 s before its first status check
    print(predictor.predict({"inputs": "How do I write a professional email?"}))
    predictor.update_endpoint(initial_instance_count=2)  # blue/green on modelhost
    print(predictor.predict({"inputs": "again"}))
    predictor.delete_model()
    predictor.delete_endpoint()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
