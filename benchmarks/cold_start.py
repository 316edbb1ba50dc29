"""Cold starts of SmolLM2-135M-Instruct (engine mode), against the bare model load, in one run:

* bare load: a fresh interpreter loads the registered Hugging Face folder with transformers and makes one
  token (what any serving stack pays at least);
* CreateEndpoint → InService: an engine-mode endpoint on the registered id, through boto3;
* 0 → first token: the same endpoint with a scalable target of MinCapacity 0, scaled to zero instances,
  then one InvokeEndpointWithResponseStream: the time to its first PayloadPart (the instance is started by
  the request itself and the request waits for it).

    python -m benchmarks.cold_start [--rounds 2]

Prints JSON and a line with the ratios to the bare load (issue 10's goal: both at most 2×).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf
from tests.integration.server import ServerProcess

BARE_LOAD = """
import sys, time
start = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
ids = tokenizer("Hello", return_tensors="pt").input_ids
model.generate(ids, max_new_tokens=1, do_sample=False)
print(time.perf_counter() - start)
"""
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.26.0-lmi8.0.0-cu121"


def registered_folder(home: Path) -> Path:
    models = home / "registry" / "models"
    (entry,) = [p for p in models.iterdir()]
    return entry.resolve() / "weights"


def bare_load_s(folder: Path) -> float:
    done = subprocess.run([sys.executable, "-c", BARE_LOAD, str(folder)], capture_output=True, text=True,
                          check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def wait(sm: Any, name: str, count: int) -> None:
    while True:
        desc = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] == "Failed":
            raise SystemExit(f"{name} failed: {desc.get('FailureReason')}")
        variant = (desc.get("ProductionVariants") or [{}])[0]
        if desc["EndpointStatus"] == "InService" and variant.get("CurrentInstanceCount") == count:
            return
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelhost-cold-bench-"))
    server = ServerProcess(work / "home").start()
    try:
        add = [sys.executable, "-m", "modelhost", "models", "add", SMOLLM2_ID, str(bundled_smollm2_gguf())]
        subprocess.run(add, check=True, capture_output=True, env={**os.environ, "MODELHOST_HOME": str(server.home)})
        folder = work / "engine"
        folder.mkdir()
        (folder / "serving.properties").write_text(f"option.model_id={SMOLLM2_ID}\noption.max_model_len=1024\n")
        sm, runtime = server.clients()
        aas = boto3.client(
            "application-autoscaling", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x",
            aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}),
        )
        bare, create, wake = [], [], []
        for round_index in range(args.rounds):
            bare.append(bare_load_s(registered_folder(server.home)))
            name = f"cold-{round_index}"
            sm.create_model(ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(folder)})
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.g5.2xlarge",
                "InitialInstanceCount": 1}])  # fmt: skip
            started = time.perf_counter()
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            wait(sm, name, 1)
            create.append(time.perf_counter() - started)
            aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=f"endpoint/{name}/variant/AllTraffic",
                                         ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=0,
                                         MaxCapacity=1)  # fmt: skip
            sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[
                {"VariantName": "AllTraffic", "DesiredInstanceCount": 0}])  # fmt: skip
            wait(sm, name, 0)
            body = json.dumps({"inputs": "Hello", "parameters": {"max_new_tokens": 8}})
            started = time.perf_counter()
            stream = runtime.invoke_endpoint_with_response_stream(EndpointName=name, Body=body,
                                                                  ContentType="application/json")  # fmt: skip
            for event in stream["Body"]:
                if "PayloadPart" in event:
                    wake.append(time.perf_counter() - started)
                    break
            for _ in stream["Body"]:
                pass
            sm.delete_endpoint(EndpointName=name)
        result = {
            "bare_load_s": [round(v, 2) for v in bare],
            "create_to_in_service_s": [round(v, 2) for v in create],
            "zero_to_first_token_s": [round(v, 2) for v in wake],
        }
        print(json.dumps(result))
        b, c, w = statistics.median(bare), statistics.median(create), statistics.median(wake)
        print(f"bare load {b:.1f} s; CreateEndpoint -> InService {c:.1f} s ({c / b:.2f}x); "
              f"0 -> first token {w:.1f} s ({w / b:.2f}x)", file=sys.stderr)  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
