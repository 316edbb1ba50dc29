"""Transform job records, their status machine, the store's per-job object rows and the staging files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelhost.batch.runner import ByteBudget
from modelhost.batch.staging import StagedOutput, StagingLost, remove_job_folder, staged_path
from modelhost.resources.model import Container, Model
from modelhost.resources.transform_job import (
    DONE,
    IllegalJobTransition,
    TransformInputSpec,
    TransformJob,
    TransformJobStatus,
    TransformObject,
    TransformOutputSpec,
    hidden_endpoint_name,
    job_of_hidden_endpoint,
)
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore

J = TransformJobStatus


def job(status: TransformJobStatus = J.IN_PROGRESS) -> TransformJob:
    model = Model("m", "arn:aws:sagemaker:us-east-1:123456789012:model/m", 0.0, Container(model_data_url="/m"))
    return TransformJob(
        name="Nightly-Run", arn="arn:aws:sagemaker:us-east-1:123456789012:transform-job/nightly-run", status=status,
        created=1.0, modified=1.0, region="us-east-1", model_name="m", model=model, instance_type="ml.m5.large",
        instance_count=1, input=TransformInputSpec("S3Prefix", "s3://b/in/"), output=TransformOutputSpec("s3://b/out"),
    )  # fmt: skip


def test_status_machine() -> None:
    stopping = job().request_stop(5.0)
    assert stopping.status == J.STOPPING and stopping.modified == 5.0
    stopped = stopping.finish(J.STOPPED, 6.0)
    assert stopped.ended == 6.0 and stopped.failure_reason is None
    with pytest.raises(IllegalJobTransition):
        stopped.request_stop(7.0)
    with pytest.raises(IllegalJobTransition):
        job(J.COMPLETED).finish(J.FAILED, 7.0, "late")
    failed = job().finish(J.FAILED, 8.0, "x" * 5000)
    assert len(failed.failure_reason or "") == 1024  # FailureReason's limit
    with pytest.raises(IllegalJobTransition):
        job(J.STOPPING).finish(J.COMPLETED, 9.0)  # the supervisor turns that into Stopped


def test_hidden_endpoint_names_cannot_be_a_users_endpoint() -> None:
    name = hidden_endpoint_name("Nightly-Run")
    assert name == "transform-job.nightly-run" == job().endpoint_name
    assert job_of_hidden_endpoint(name) == "nightly-run"
    assert job_of_hidden_endpoint("transform-job-nightly-run") is None  # a legal EndpointName stays the user's
    assert job_of_hidden_endpoint("nightly-run") is None


def test_object_rows_by_job_prefix(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "modelhost.db")
    store.open()
    try:
        records = Records(store)
        table = records.transform_objects
        rows = [TransformObject("job-a", i, f"s3://b/{i}", i, f"{i}") for i in range(12)]
        table.put_many([(r.row_name, r) for r in rows])
        table.put_many([(TransformObject("job-ab", 0, "s3://b/x", 1, "x").row_name,
                         TransformObject("job-ab", 0, "s3://b/x", 1, "x"))])  # fmt: skip
        found = table.list_under("job-a/")
        assert [r.index for r in found] == list(range(12))  # in input order, and not job-ab's
        table.put(rows[3].row_name, TransformObject("job-a", 3, "s3://b/3", 3, "3", state=DONE, records_done=9))
        assert table.list_under("job-a/")[3].records_done == 9
        assert table.delete_under("job-a/") == 12
        assert table.list_under("job-a/") == [] and len(table.list_under("job-ab/")) == 1
        records.transform_jobs.insert("Nightly-Run", job())
        assert records.transform_jobs.get("nightly-run") == job()
    finally:
        store.close()


def test_put_many_is_all_or_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "modelhost.db")
    store.open()
    try:
        with pytest.raises(TypeError):
            store.put_many("transform_object", [("a/1", {"ok": 1}), ("a/2", {"bad": object()})])
        assert store.items_under("transform_object", "a/") == []
    finally:
        store.close()


def test_staging_cuts_back_to_the_recorded_length(tmp_path: Path) -> None:
    path = staged_path(tmp_path, "job", 3)
    first = StagedOutput(path, 0)
    first.append(b"one\n")
    first.sync()
    first.append(b"half-written")  # after the last durable record: must not survive a resume
    first.close()
    again = StagedOutput(path, 4)
    again.append(b"two\n")
    again.sync()
    again.close()
    assert path.read_bytes() == b"one\ntwo\n"
    with pytest.raises(StagingLost):
        StagedOutput(path, 100)  # the store says more was durable than the file holds
    remove_job_folder(tmp_path, "job")
    assert not path.parent.exists()


def test_byte_budget_lets_a_large_object_run_alone() -> None:
    async def scenario() -> list[str]:
        budget = ByteBudget(100)
        order: list[str] = []
        small = await budget.acquire(60)
        big_task = asyncio.create_task(budget.acquire(1000))  # capped at the whole budget: waits for `small`
        await asyncio.sleep(0)
        order.append("big waiting" if not big_task.done() else "big ran")
        await budget.release(small)
        held = await big_task
        order.append(f"big holds {held}")
        await budget.release(held)
        return order

    assert asyncio.run(scenario()) == ["big waiting", "big holds 100"]


def test_a_job_that_keeps_taking_the_server_down_is_not_resumed_again(tmp_path: Path) -> None:
    from dataclasses import replace

    from modelhost.batch.runner import RunnerSettings
    from modelhost.batch.supervisor import MAX_STALLED_RESUMES, TransformJobs
    from modelhost.resources.transform_job import JobProgress
    from modelhost.storage.limits import DataLimits
    from modelhost.storage.objects import Objects

    store = SqliteStore(tmp_path / "modelhost.db")
    store.open()
    try:
        records = Records(store)
        stuck = JobProgress(objects_total=2, records_done=5, resumed=4, stalled_resumes=MAX_STALLED_RESUMES - 1,
                            records_at_resume=5)  # fmt: skip
        records.transform_jobs.insert("Nightly-Run", replace(job(), started=2.0, progress=stuck))
        woken: list[bool] = []
        supervisor = TransformJobs(records, None, Objects(DataLimits()), RunnerSettings(tmp_path / "staging"),  # type: ignore[arg-type]
                                   lambda j, now: None, lambda: woken.append(True), now=lambda: 9.0)  # type: ignore[arg-type,return-value]  # fmt: skip
        supervisor.tick()
        ended = records.transform_jobs.get("nightly-run")
        assert ended is not None and ended.status == J.FAILED and ended.ended == 9.0
        assert "stopped 3 times in a row" in (ended.failure_reason or "") and woken
    finally:
        store.close()
