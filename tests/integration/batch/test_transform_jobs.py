"""Batch transform jobs end to end: real server, real workers, boto3, local files (the embedded default).

The model doubles `x` in every JSON line it gets (one line per record; MultiRecord payloads carry several) and
refuses `"x": "boom"`; DELAY_S slows each record down so a job can be stopped or killed half-way.
"""

from __future__ import annotations

import gzip
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.integration.server import ServerProcess, deploy, write_echo_model

DOUBLER = """
import json, os, time
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    delay = float(os.environ.get("DELAY_S", "0"))
    answers = []
    for line in inputs.get_as_string().split("\\n"):
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("x") == "boom":
            raise ValueError("cannot double boom")
        time.sleep(delay)
        answers.append(json.dumps({"y": record["x"] * 2, "batch": os.environ.get("SAGEMAKER_BATCH"),
                                   "strategy": os.environ.get("SAGEMAKER_BATCH_STRATEGY")}))
    out = Output()
    out.add_property("Content-Type", "application/json")
    return out.add("\\n".join(answers))
"""
WAIT = {"Delay": 1, "MaxAttempts": 180}


@pytest.fixture(scope="module")
def batch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("batch-home")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_echo_model(tmp_path_factory.mktemp("doubler") / "model", model_py=DOUBLER)


def create_model(sm: Any, name: str, model_dir: Path, env: dict[str, str] | None = None) -> None:
    container: dict[str, Any] = {"Image": "djl-inference:0.22.1", "ModelDataUrl": str(model_dir)}
    if env:
        container["Environment"] = env
    sm.create_model(ModelName=name, PrimaryContainer=container)


def job_request(name: str, model: str, inputs: Path | str, outputs: Path | str, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(inputs)}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": str(outputs), "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
    return request


def write_inputs(folder: Path, objects: dict[str, list[Any]], gzipped: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in objects.items():
        text = "".join(json.dumps({"x": v}) + "\n" for v in values).encode()
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(gzip.compress(text) if gzipped else text)
    return folder


def outputs_of(folder: Path) -> dict[str, list[Any]]:
    return {
        str(p.relative_to(folder)): [json.loads(line)["y"] for line in p.read_text().splitlines()]
        for p in sorted(folder.rglob("*.out"))
    }


def progress(sm: Any, name: str) -> dict[str, Any]:
    """ModelhostProgress, which boto3's parser drops: read from the raw answer."""
    seen: dict[str, Any] = {}

    def keep(http_response: Any, **_: Any) -> None:
        seen.update(json.loads(http_response.content).get("ModelhostProgress", {}))

    sm.meta.events.register("after-call.sagemaker.DescribeTransformJob", keep)
    try:
        sm.describe_transform_job(TransformJobName=name)
    finally:
        sm.meta.events.unregister("after-call.sagemaker.DescribeTransformJob", keep)
    return seen


def test_line_multirecord_job_matches_invoke_endpoint(batch_server: ServerProcess, model_dir: Path,
                                                      tmp_path: Path) -> None:  # fmt: skip
    sm, runtime = batch_server.clients()
    create_model(sm, "doubler-multi", model_dir)
    values = {"a.jsonl": list(range(25)), "nested/b.jsonl": [100, 200], "c.jsonl": [7]}
    inputs = write_inputs(tmp_path / "in", values)
    out = tmp_path / "out"
    request = job_request("multi-line", "doubler-multi", inputs, out, BatchStrategy="MultiRecord", MaxPayloadInMB=1)
    arn = sm.create_transform_job(**request)["TransformJobArn"]
    assert arn.endswith(":transform-job/multi-line")
    assert sm.describe_transform_job(TransformJobName="multi-line")["TransformJobStatus"] == "InProgress"
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="multi-line", WaiterConfig=WAIT)
    described = sm.describe_transform_job(TransformJobName="multi-line")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert described["BatchStrategy"] == "MultiRecord" and described["TransformEndTime"] >= described["CreationTime"]
    assert outputs_of(out) == {f"{k}.out": [v * 2 for v in vs] for k, vs in values.items()}
    shown = progress(sm, "multi-line")
    assert shown["ObjectsTotal"] == 3 and shown["ObjectsDone"] == 3 and shown["RecordsDone"] == 28

    # the same model behind an endpoint answers each record the same way
    deploy(sm, "doubler-endpoint", str(model_dir))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="doubler-endpoint", WaiterConfig=WAIT)
    for value in (0, 24, 100):
        answer = json.loads(runtime.invoke_endpoint(EndpointName="doubler-endpoint", Body=json.dumps({"x": value}))
                            ["Body"].read())  # fmt: skip
        assert answer["y"] == value * 2 and answer["batch"] is None  # SAGEMAKER_BATCH only in a job's workers
    first = json.loads((out / "a.jsonl.out").read_text().splitlines()[0])
    assert first == {"y": 0, "batch": "true", "strategy": "MULTI_RECORD"}
    names = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert "doubler-endpoint" in names and not any(n.startswith("transform-job") for n in names)
    sm.delete_endpoint(EndpointName="doubler-endpoint")


def test_single_record_gzip_with_filters_and_join(batch_server: ServerProcess, model_dir: Path,
                                                  tmp_path: Path) -> None:  # fmt: skip
    sm, _ = batch_server.clients()
    create_model(sm, "doubler-single", model_dir)
    inputs = tmp_path / "in"
    inputs.mkdir()
    rows = [{"id": i, "features": {"x": i}} for i in range(6)]
    (inputs / "rows.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    out = tmp_path / "out"
    request = job_request(
        "single-join", "doubler-single", inputs, out,
        TransformInput={"CompressionType": "Gzip"},
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=4,
        DataProcessing={"InputFilter": "$.features", "JoinSource": "Input",
                        "OutputFilter": "$['id','SageMakerOutput']"},
    )  # fmt: skip
    sm.create_transform_job(**request)
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="single-join", WaiterConfig=WAIT)
    described = sm.describe_transform_job(TransformJobName="single-join")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    lines = [json.loads(line) for line in (out / "rows.jsonl.gz.out").read_text().splitlines()]
    assert [sorted(line) for line in lines] == [["SageMakerOutput", "id"]] * 6  # OutputFilter kept only these
    assert [line["id"] for line in lines] == list(range(6))
    assert [line["SageMakerOutput"]["y"] for line in lines] == [2 * i for i in range(6)]  # the model saw `features`
    assert all(line["SageMakerOutput"]["strategy"] == "SINGLE_RECORD" for line in lines)


def test_failing_record_fails_the_job_naming_it(batch_server: ServerProcess, model_dir: Path, tmp_path: Path) -> None:
    sm, _ = batch_server.clients()
    create_model(sm, "doubler-fails", model_dir)
    inputs = write_inputs(tmp_path / "in", {"1-good.jsonl": [1, 2], "2-bad.jsonl": [3, 4, "boom", 5]})
    out = tmp_path / "out"
    sm.create_transform_job(**job_request("fails", "doubler-fails", inputs, out, BatchStrategy="SingleRecord",
                                          MaxConcurrentTransforms=1,
                                          ModelClientConfig={"InvocationsMaxRetries": 0}))  # fmt: skip
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="fails", WaiterConfig=WAIT)
    described = sm.describe_transform_job(TransformJobName="fails")
    assert described["TransformJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert "2-bad.jsonl, record 3" in reason and "cannot double boom" in reason, reason
    assert outputs_of(out) == {"1-good.jsonl.out": [2, 4]}  # the finished object stays, the failed one has none
    summaries = sm.list_transform_jobs(StatusEquals="Failed")["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in summaries] == ["fails"] and "record 3" in summaries[0]["FailureReason"]


def test_a_jobs_instances_serve_only_the_job(batch_server: ServerProcess, model_dir: Path, tmp_path: Path) -> None:
    sm, runtime = batch_server.clients()
    create_model(sm, "doubler-private", model_dir, env={"DELAY_S": "0.2"})
    inputs = write_inputs(tmp_path / "in", {"a.jsonl": list(range(100))})
    sm.create_transform_job(**job_request("private", "doubler-private", inputs, tmp_path / "out",
                                          BatchStrategy="SingleRecord", MaxConcurrentTransforms=1))  # fmt: skip
    deadline = time.monotonic() + 60
    while progress(sm, "private").get("RecordsDone", 0) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for name in ("transform-job.private", "transform-job.PRIVATE"):
        with pytest.raises(ClientError) as caught:
            runtime.invoke_endpoint(EndpointName=name, Body=b'{"x": 1}')
        assert caught.value.response["Error"]["Code"] == "ValidationError"
        assert "not found" in caught.value.response["Error"]["Message"]
    listed = httpx.get(f"{batch_server.url}/v1/models", timeout=10).json()["data"]
    assert not any(m["id"].startswith("transform-job") for m in listed)
    sm.stop_transform_job(TransformJobName="private")
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="private", WaiterConfig=WAIT)


def test_stop_keeps_finished_objects_only(batch_server: ServerProcess, model_dir: Path, tmp_path: Path) -> None:
    sm, _ = batch_server.clients()
    create_model(sm, "doubler-slow", model_dir, env={"DELAY_S": "0.2"})
    inputs = write_inputs(tmp_path / "in", {"1.jsonl": [1], "2.jsonl": list(range(200))})
    out = tmp_path / "out"
    sm.create_transform_job(**job_request("stopped", "doubler-slow", inputs, out, BatchStrategy="SingleRecord",
                                          MaxConcurrentTransforms=1))  # fmt: skip
    deadline = time.monotonic() + 90
    while not (out / "1.jsonl.out").exists():
        assert time.monotonic() < deadline, "the first object never finished"
        time.sleep(0.2)
    sm.stop_transform_job(TransformJobName="stopped")
    assert sm.describe_transform_job(TransformJobName="stopped")["TransformJobStatus"] in ("Stopping", "Stopped")
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="stopped", WaiterConfig=WAIT)
    assert sm.describe_transform_job(TransformJobName="stopped")["TransformJobStatus"] == "Stopped"
    assert outputs_of(out) == {"1.jsonl.out": [2]}
    with pytest.raises(ClientError) as refused:
        sm.stop_transform_job(TransformJobName="stopped")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert not (batch_server.home / "transform-jobs" / "stopped").exists()


def test_kill_9_mid_job_resumes_exactly_once(model_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    values = {f"{i}.jsonl": list(range(i * 100, i * 100 + 40)) for i in range(3)}
    inputs = write_inputs(tmp_path / "in", values)
    out = tmp_path / "out"
    first = ServerProcess(home).start()
    try:
        sm, _ = first.clients()
        create_model(sm, "doubler-killed", model_dir, env={"DELAY_S": "0.03"})
        sm.create_transform_job(**job_request("killed", "doubler-killed", inputs, out, BatchStrategy="SingleRecord",
                                              MaxConcurrentTransforms=2))  # fmt: skip
        deadline = time.monotonic() + 90
        while progress(sm, "killed").get("RecordsDone", 0) < 50:
            assert time.monotonic() < deadline, progress(sm, "killed")
            time.sleep(0.1)
    finally:
        first.stop(sig=signal.SIGKILL)
    second = ServerProcess(home).start()
    try:
        sm, _ = second.clients()
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="killed", WaiterConfig=WAIT)
        described = sm.describe_transform_job(TransformJobName="killed")
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        assert outputs_of(out) == {f"{k}.out": [v * 2 for v in vs] for k, vs in values.items()}
        shown = progress(sm, "killed")
        assert shown["Resumed"] == 1 and shown["RecordsDone"] == 120
    finally:
        second.stop()


def test_requests_refused_with_what_to_fix(batch_server: ServerProcess, model_dir: Path, tmp_path: Path) -> None:
    sm, _ = batch_server.clients()
    create_model(sm, "doubler-refusals", model_dir)
    inputs = write_inputs(tmp_path / "in", {"a.jsonl": [1]})

    def refused(request: dict[str, Any]) -> tuple[str, str]:
        with pytest.raises(ClientError) as caught:
            sm.create_transform_job(**request)
        return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]

    base = job_request("refused", "doubler-refusals", inputs, tmp_path / "out")
    code, message = refused({**base, "TransformInput": {**base["TransformInput"], "SplitType": "RecordIO"}})
    assert code == "ValidationException" and "RecordIO" in message and "Line" in message
    code, message = refused({**base, "ModelName": "no-such-model"})
    assert code == "ValidationException" and "Could not find model" in message
    code, message = refused({**base, "DataCaptureConfig": {"DestinationS3Uri": "s3://b/capture"}})
    assert code == "ValidationException" and "DataCaptureConfig" in message
    code, message = refused({**base, "DataProcessing": {"InputFilter": "$..deep"}})
    assert code == "ValidationException" and "InputFilter" in message
    code, message = refused({**base, "TransformInput": {**base["TransformInput"],
                                                       "ContentType": "text/csv\r\nX-Evil: 1"}})  # fmt: skip
    assert code == "ValidationException" and "printable ASCII" in message
    code, message = refused({**base, "TransformOutput": {"S3OutputPath": "file:///tmp/%00x"}})
    assert code == "ValidationException" and "NUL" in message
    code, message = refused({**base, "TransformOutput": {"S3OutputPath": str(batch_server.home / "stolen")}})
    assert code == "ValidationException" and "S3OutputPath" in message
    sm.create_transform_job(**base, Tags=[{"Key": "team", "Value": "nlp"}])
    code, message = refused(base)
    assert code == "ResourceInUse" and "already exists" in message
    arn = sm.describe_transform_job(TransformJobName="refused")["TransformJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "nlp"}]
    with pytest.raises(ClientError) as missing:
        sm.describe_transform_job(TransformJobName="never-created")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="refused", WaiterConfig=WAIT)


def test_list_filters_and_pages(batch_server: ServerProcess, model_dir: Path, tmp_path: Path) -> None:
    sm, _ = batch_server.clients()
    create_model(sm, "doubler-listed", model_dir)
    inputs = write_inputs(tmp_path / "in", {"a.jsonl": [1]})
    for i in range(3):
        sm.create_transform_job(**job_request(f"listed-{i}", "doubler-listed", inputs, tmp_path / f"out{i}"))
    names = [
        s["TransformJobName"]
        for page in sm.get_paginator("list_transform_jobs").paginate(NameContains="listed-", SortBy="Name",
                                                                      SortOrder="Ascending", MaxResults=1)  # fmt: skip
        for s in page["TransformJobSummaries"]
    ]
    assert names == ["listed-0", "listed-1", "listed-2"]
    for i in range(3):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=f"listed-{i}", WaiterConfig=WAIT)
    done = sm.list_transform_jobs(NameContains="listed-", StatusEquals="Completed")["TransformJobSummaries"]
    assert len(done) == 3


def test_model_that_cannot_start_fails_the_job(batch_server: ServerProcess, tmp_path: Path) -> None:
    sm, _ = batch_server.clients()
    broken = write_echo_model(tmp_path / "broken", model_py="raise RuntimeError('weights are missing')\n")
    create_model(sm, "doubler-broken", broken)
    inputs = write_inputs(tmp_path / "in", {"a.jsonl": [1]})
    sm.create_transform_job(**job_request("broken", "doubler-broken", inputs, tmp_path / "out"))
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="broken", WaiterConfig=WAIT)
    reason = sm.describe_transform_job(TransformJobName="broken")["FailureReason"]
    assert reason.startswith("the job's instances could not start: ") and "weights are missing" in reason, reason
    assert not (tmp_path / "out").exists()


def test_payload_limit_checked(batch_server: ServerProcess, model_dir: Path, tmp_path: Path) -> None:
    sm, _ = batch_server.clients()
    create_model(sm, "doubler-payload", model_dir)
    inputs = write_inputs(tmp_path / "in", {"a.jsonl": [1]})
    with pytest.raises(ClientError) as caught:
        sm.create_transform_job(**job_request("too-big", "doubler-payload", inputs, tmp_path / "out",
                                              MaxPayloadInMB=101))  # fmt: skip
    assert "MaxPayloadInMB must be at most 100" in caught.value.response["Error"]["Message"]
    big = tmp_path / "big"
    big.mkdir()
    (big / "one.jsonl").write_text(json.dumps({"x": 1, "pad": "p" * (1024 * 1024 + 10)}) + "\n")
    sm.create_transform_job(**job_request("record-too-big", "doubler-payload", big, tmp_path / "out2",
                                          MaxPayloadInMB=1))  # fmt: skip
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="record-too-big", WaiterConfig=WAIT)
    reason = sm.describe_transform_job(TransformJobName="record-too-big")["FailureReason"]
    assert "one.jsonl: Record 1 is" in reason and "MaxPayloadInMB" in reason, reason
