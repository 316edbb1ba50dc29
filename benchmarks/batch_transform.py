"""A transform job over N prompts against a loop of invoke_endpoint calls, on the same engine-mode model
(SmolLM2-135M-Instruct on this machine's CPU), in one run.

* job: CreateTransformJob over N JSON Lines records (the 16 prompts of prompts.json, numbered), SplitType Line,
  SingleRecord, one instance; MaxConcurrentTransforms left unset (modelhost keeps 16 records in flight per
  instance, the engine's batch) — the time from CreateTransformJob to Completed, and from the first record
  sent (TransformStartTime) to the end;
* loop: an endpoint of the same model, then `invoke_endpoint` for each of the first --loop records, one after
  another, as a script that does not know about batch transform would.

Every record asks for --tokens new tokens with `details` on, so tokens are counted from the answers.

    python -m benchmarks.batch_transform [--records 1000] [--loop 100] [--tokens 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf
from tests.integration.server import ServerProcess

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.26.0-lmi8.0.0-cu121"
PROMPTS = json.loads((Path(__file__).parent / "prompts.json").read_text())["prompts"]


def records(count: int, tokens: int) -> list[dict[str, Any]]:
    return [
        {"inputs": f"{PROMPTS[i % len(PROMPTS)]} (question {i})",
         "parameters": {"max_new_tokens": tokens, "details": True}}
        for i in range(count)
    ]  # fmt: skip


def generated_tokens(answer: Any) -> int:
    item = answer[0] if isinstance(answer, list) else answer
    return int(item.get("details", {}).get("generated_tokens", 0))


def wait_endpoint(sm: Any, name: str) -> None:
    while (status := sm.describe_endpoint(EndpointName=name)["EndpointStatus"]) != "InService":
        if status == "Failed":
            raise SystemExit(sm.describe_endpoint(EndpointName=name).get("FailureReason"))
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--loop", type=int, default=100, help="records sent one by one with invoke_endpoint")
    parser.add_argument("--tokens", type=int, default=16, help="max_new_tokens of every record")
    parser.add_argument("--concurrency", type=int, default=0, help="MaxConcurrentTransforms (0: unset)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelhost-batch-bench-"))
    server = ServerProcess(work / "home").start()
    try:
        add = [sys.executable, "-m", "modelhost", "models", "add", SMOLLM2_ID, str(bundled_smollm2_gguf())]
        subprocess.run(add, check=True, capture_output=True, env={**os.environ, "MODELHOST_HOME": str(server.home)})
        folder = work / "engine"
        folder.mkdir()
        (folder / "serving.properties").write_text(f"option.model_id={SMOLLM2_ID}\noption.max_model_len=1024\n")
        sm, runtime = server.clients()
        sm.create_model(ModelName="bench", PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(folder)})
        prompts = records(args.records, args.tokens)
        inputs = work / "in"
        inputs.mkdir()
        (inputs / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prompts))

        created = time.time()
        sm.create_transform_job(
            TransformJobName="bench", ModelName="bench", BatchStrategy="SingleRecord",
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(inputs)}},
                            "ContentType": "application/json", "SplitType": "Line"},
            TransformOutput={"S3OutputPath": str(work / "out"), "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1},
            **({"MaxConcurrentTransforms": args.concurrency} if args.concurrency else {}),
        )  # fmt: skip
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="bench", WaiterConfig={"Delay": 1, "MaxAttempts": 3600}
        )
        job = sm.describe_transform_job(TransformJobName="bench")
        if job["TransformJobStatus"] != "Completed":
            raise SystemExit(f"the job ended {job['TransformJobStatus']}: {job.get('FailureReason')}")
        ended = job["TransformEndTime"].timestamp()
        sending_s = ended - job["TransformStartTime"].timestamp()
        answers = [json.loads(line) for line in (work / "out" / "prompts.jsonl.out").read_text().splitlines()]
        job_tokens = sum(generated_tokens(a) for a in answers)

        sm.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "bench", "InstanceType": "ml.g5.2xlarge",
            "InitialInstanceCount": 1}])  # fmt: skip
        sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
        wait_endpoint(sm, "bench")
        loop_tokens = 0
        started = time.perf_counter()
        for record in prompts[: args.loop]:
            answer = runtime.invoke_endpoint(EndpointName="bench", Body=json.dumps(record),
                                             ContentType="application/json")  # fmt: skip
            loop_tokens += generated_tokens(json.loads(answer["Body"].read()))
        loop_s = time.perf_counter() - started
        result = {
            "records": args.records,
            "max_new_tokens": args.tokens,
            "job_total_s": round(ended - created, 1),
            "job_sending_s": round(sending_s, 1),
            "job_records_per_s": round(args.records / sending_s, 2),
            "job_tokens_per_s": round(job_tokens / sending_s, 1),
            "loop_records": args.loop,
            "loop_s": round(loop_s, 1),
            "loop_records_per_s": round(args.loop / loop_s, 2),
            "loop_tokens_per_s": round(loop_tokens / loop_s, 1),
        }
        print(json.dumps(result))
        print(f"job: {result['job_records_per_s']} records/s, {result['job_tokens_per_s']} tok/s; invoke_endpoint "
              f"loop: {result['loop_records_per_s']} records/s, {result['loop_tokens_per_s']} tok/s "
              f"({result['job_records_per_s'] / result['loop_records_per_s']:.1f}x)", file=sys.stderr)  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
