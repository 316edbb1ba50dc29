"""One transform job, run to its end: list the inputs, wait for the job's instances, send every record, write
every object's output exactly once, in input order. Resumable: everything it has done is in the store.

    list inputs once ──► a TransformObject row per object (store), in input order
    wait for the hidden endpoint to be InService (the controller deploys it; quotas, sandbox, budgets apply)
    objects, several open at once ──► records (split, InputFilter) ──► payloads (SingleRecord | MultiRecord)
        payloads in flight share one window: MaxConcurrentTransforms × instances, so an engine-mode model's
        batch stays full; answers are taken back in order, joined and filtered, and appended to the object's
        staging file (batch/staging.py), which is fsynced before its row records how far it reaches
    an object whose records are all staged ──► its output written in one piece ──► its row marked done

A server killed at any point resumes from the rows: a done object is skipped, a partial one continues after
its last durable record (the staging file cut back to the recorded length), so every record's output is in
the output file once. A record the model refuses (after InvocationsMaxRetries retries of transient errors)
fails the job with a reason naming the object and the record; outputs of finished objects stay.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from modelhost.batch import staging
from modelhost.batch.filters import DataProcessing, filter_input, join_and_filter, needs_per_record_outputs
from modelhost.batch.records import Payload, RecordError, assemble, decompress, pack, split, split_response
from modelhost.concurrency import Abandoned, run_blocking
from modelhost.contracts.worker import INVOCATIONS_PATH
from modelhost.errors import RuntimeValidationError, ServiceUnavailable, Throttled
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.status import EndpointStatus
from modelhost.resources.transform_job import DONE, JobProgress, TransformJob, TransformObject
from modelhost.router.forward import InvocationRouter, UpstreamError, UpstreamRequest
from modelhost.storage.objects import ObjectError, Objects, output_uri
from modelhost.store.errors import StoreError
from modelhost.store.records import Records

log = logging.getLogger(__name__)

MiB = 1024 * 1024
RECORD_OVERHEAD_BYTES = 64  # what one record costs in memory beside its bytes (a bytes object, list slots)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    staging_dir: Path  # HOME/transform-jobs
    concurrency_per_instance: int = 32  # when MaxConcurrentTransforms is not given: twice the engine's batch of 16
    max_per_instance: int = 64  # the router's limit per instance (MODELHOST_MAX_CONCURRENCY_PER_INSTANCE)
    max_object_bytes: int = 1024 * MiB  # one input object, decompressed
    max_open_bytes: int = 256 * MiB  # input objects held in memory at once
    commit_interval_s: float = 0.5  # how often progress is made durable while an object runs
    io_timeout_s: float = 600.0  # one read or write of an object
    unavailable_wait_s: float = 600.0  # how long a record waits for an instance to come back


class JobFailed(Exception):
    """The job cannot finish; the message is its FailureReason."""


class ByteBudget:
    """Bytes of input objects in memory; an object larger than the whole budget waits until it is alone."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = min(n, self._limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self._used + n <= self._limit)
            self._used += n
        return n

    async def release(self, n: int) -> None:
        async with self._changed:
            self._used -= n
            self._changed.notify_all()


class JobRun:
    def __init__(
        self,
        job_name: str,
        records: Records,
        router: InvocationRouter,
        objects: Objects,
        settings: RunnerSettings,
        ensure_endpoint: Callable[[TransformJob], None],
        now: Callable[[], float] = time.time,
    ) -> None:
        self._name = job_name
        self._records = records
        self._router = router
        self._objects = objects
        self._settings = settings
        self._ensure_endpoint = ensure_endpoint
        self._now = now
        self._job = self._load()
        self._processing = DataProcessing(
            self._job.processing.input_filter, self._job.processing.output_filter, self._job.processing.join_source
        )
        self._records_done = 0
        self._objects_done = 0
        self._bytes_read = 0
        self._run_started = 0.0  # monotonic, when the first record of this run was sent
        self._records_at_start = 0

    def _load(self) -> TransformJob:
        job = self._records.transform_jobs.get(self._name)
        if job is None:
            raise JobFailed(f"the transform job {self._name} is gone from the store")
        return job

    # the whole job ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Returns when every object's output is written; raises JobFailed; cancel it to stop."""
        rows = await self._object_rows()
        pending = [row for row in rows if row.state != DONE]
        self._records_done = sum(row.records_done for row in rows)
        self._objects_done = len(rows) - len(pending)
        self._records_at_start = self._records_done
        self._report(objects_total=len(rows))
        if not pending:
            return
        await self._wait_in_service()
        in_flight = asyncio.Semaphore(self._concurrency())
        budget = ByteBudget(self._settings.max_open_bytes)
        open_objects = asyncio.Semaphore(self._concurrency())
        try:
            async with asyncio.TaskGroup() as group:
                for row in pending:
                    await open_objects.acquire()
                    # a compressed object's size says little about what it inflates to: reserve the most it may
                    gzip = self._job.input.compression == "Gzip"
                    held = await budget.acquire(self._settings.max_object_bytes if gzip else max(1, row.size))
                    group.create_task(self._object_task(row, in_flight, budget, held, open_objects))
        except* JobFailed as failures:
            raise _first(failures) from None
        self._report()

    def _concurrency(self) -> int:
        per_instance = min(self._job.max_concurrent or self._settings.concurrency_per_instance,
                           self._settings.max_per_instance)  # fmt: skip
        return max(1, per_instance * self._job.instance_count)

    async def _object_rows(self) -> list[TransformObject]:
        table = self._records.transform_objects
        prefix = self._job.key + "/"
        rows = table.list_under(prefix)
        damaged = sorted(n for n in self._records.problems.names(table.kind) if n.startswith(prefix))
        if damaged:  # skipping the row would drop its object's output without a word
            raise JobFailed(f"the store's progress row {damaged[0]} of this job cannot be read; run `modelhost doctor`")
        if rows:
            return rows
        spec = self._job.input
        try:
            refs = await self._blocking(lambda: self._objects.list_inputs(spec.uri, spec.data_type),
                                        f"list the inputs under {spec.uri}")  # fmt: skip
        except ObjectError as exc:
            raise JobFailed(f"could not list the job's input {spec.uri}: {exc}") from None
        rows = [TransformObject(self._job.key, i, ref.uri, ref.size, ref.relative) for i, ref in enumerate(refs)]
        await self._blocking(lambda: table.put_many([(row.row_name, row) for row in rows]), "record the inputs")
        return rows

    async def _wait_in_service(self) -> None:
        """Until the job's instances serve: the endpoint InService and its route installed (after a restart the
        record says InService while the controller is still bringing the instances back)."""
        while True:
            endpoint = self._records.endpoints.get(self._job.endpoint_name)
            if endpoint is None or endpoint.status == EndpointStatus.DELETING:
                if endpoint is None:
                    self._ensure_endpoint(self._job)
            elif endpoint.status == EndpointStatus.FAILED:
                raise JobFailed(f"the job's instances could not start: {_reason(endpoint)}")
            elif endpoint.status == EndpointStatus.IN_SERVICE and self._routed():
                return
            await asyncio.sleep(0.25)

    def _routed(self) -> bool:
        try:
            self._router.resolve(self._job.endpoint_name, internal=True)
        except (ServiceUnavailable, RuntimeValidationError):
            return False
        return True

    async def _blocking(self, work: Callable[[], T], what: str) -> T:
        """`work` off the event loop; a store or disk failure, or a hang, fails the job saying what it was doing."""
        try:
            return await run_blocking(work, timeout_s=self._settings.io_timeout_s, name=what)
        except Abandoned:
            raise JobFailed(f"could not {what} within {self._settings.io_timeout_s:g} s") from None
        except (OSError, StoreError) as exc:
            raise JobFailed(f"could not {what}: {exc}") from None

    # one object -------------------------------------------------------------------------------------
    async def _object_task(self, row: TransformObject, in_flight: asyncio.Semaphore, budget: ByteBudget,
                           held: int, open_objects: asyncio.Semaphore) -> None:  # fmt: skip
        try:
            await self._process_object(row, in_flight)
        finally:
            await budget.release(held)
            open_objects.release()

    def _read(self, row: TransformObject) -> tuple[list[bytes], list[bytes], int]:
        """The object's records as read and as sent (InputFilter applied), and its size (blocking)."""
        limit, spec = self._settings.max_object_bytes, self._job.input
        try:
            data = self._objects.read(row.uri, limit)
        except ObjectError as exc:
            raise JobFailed(f"could not read the input {row.uri}: {exc}") from None
        try:
            raw = split(decompress(data, spec.compression, limit), spec.split_type)
        except RecordError as exc:
            raise JobFailed(f"{row.uri}: {exc}") from None
        if len(data) + RECORD_OVERHEAD_BYTES * len(raw) > limit:  # a billion one-byte lines is no 1 GiB
            raise JobFailed(f"{row.uri} holds {len(raw):,} records, too many to hold at once "
                            f"({RECORD_OVERHEAD_BYTES} bytes each on top of the data, {limit / MiB:g} MiB in "
                            "all); split it into several objects")  # fmt: skip
        return raw, [self._filtered(row, i, record) for i, record in enumerate(raw)], len(data)

    async def _process_object(self, row: TransformObject, in_flight: asyncio.Semaphore) -> None:
        raw, sent, size = await self._blocking(lambda: self._read(row), f"read the input {row.uri}")
        self._bytes_read += size
        if row.records_total != len(raw):
            row = self._save(replace(row, records_total=len(raw)))
        path = staging.staged_path(self._settings.staging_dir, self._job.key, row.index)
        try:
            staged = staging.StagedOutput(path, row.staged_bytes)
        except staging.StagingLost as exc:
            log.warning("transform job %s: %s; the object starts again", self._name, exc)
            path.unlink(missing_ok=True)
            self._records_done -= row.records_done
            row = self._save(replace(row, records_done=0, staged_bytes=0))
            staged = await self._blocking(lambda: staging.StagedOutput(path, 0), "open a staging file")
        except OSError as exc:
            raise JobFailed(f"could not open the staging file {path}: {exc}") from None
        try:
            row = await self._send_all(row, raw, sent, staged, in_flight)
            await self._write_output(row, staged)
        except OSError as exc:  # the staging file could not be written (a full disk)
            raise JobFailed(f"could not stage the outputs of {row.uri} in {path.parent}: {exc}") from None
        finally:
            staged.close()
        staged.remove()

    def _filtered(self, row: TransformObject, index: int, record: bytes) -> bytes:
        try:
            return filter_input(record, self._processing, self._job.input.content_type)
        except RecordError as exc:
            raise JobFailed(f"{row.uri}, record {index + 1}: {exc}") from None

    def _payloads(self, row: TransformObject, sent: list[bytes]) -> collections.abc.Iterator[Payload]:
        job = self._job
        limit = job.max_payload_mb * MiB
        try:
            yield from pack(sent, row.records_done, job.batch_strategy, limit, job.input.split_type)
        except RecordError as exc:  # its message names the record
            raise JobFailed(f"{row.uri}: {exc}") from None

    async def _send_all(self, row: TransformObject, raw: list[bytes], sent: list[bytes], staged: staging.StagedOutput,
                        in_flight: asyncio.Semaphore) -> TransformObject:  # fmt: skip
        window: collections.deque[tuple[Payload, asyncio.Task[bytes]]] = collections.deque()
        last_commit = time.monotonic()
        limit = 4 * self._concurrency()
        async with asyncio.TaskGroup() as group:
            for payload in self._payloads(row, sent):
                await in_flight.acquire()
                if not self._run_started:
                    self._run_started = time.monotonic()
                    self._mark_started()
                window.append((payload, group.create_task(self._answer(row, payload, raw, in_flight))))
                while window and (window[0][1].done() or len(window) > limit):
                    row, last_commit = await self._take(row, window, staged, last_commit)
            while window:
                row, last_commit = await self._take(row, window, staged, last_commit)
        await self._blocking(staged.sync, "sync a staging file")
        return self._save(replace(row, staged_bytes=staged.size))

    async def _take(self, row: TransformObject, window: collections.deque[tuple[Payload, asyncio.Task[bytes]]],
                    staged: staging.StagedOutput, last_commit: float) -> tuple[TransformObject, float]:  # fmt: skip
        """The oldest payload's output appended; progress made durable every commit_interval_s."""
        payload, task = window.popleft()
        staged.append(await task)
        row = replace(row, records_done=payload.first + payload.count)
        self._records_done += payload.count
        if time.monotonic() - last_commit >= self._settings.commit_interval_s:
            staged.sync()
            row = self._save(replace(row, staged_bytes=staged.size))
            self._report()
            last_commit = time.monotonic()
        return row, last_commit

    async def _answer(self, row: TransformObject, payload: Payload, raw: list[bytes],
                      in_flight: asyncio.Semaphore) -> bytes:  # fmt: skip
        try:
            body = await self._invoke(row, payload)
        finally:
            in_flight.release()
        processing, job = self._processing, self._job
        try:
            if not needs_per_record_outputs(processing):
                return assemble([body], job.output.assemble_with)
            try:
                outputs = split_response(body, payload.count, payload.first)
            except RecordError as exc:  # its message names the records
                raise JobFailed(f"{row.uri}: {exc}") from None
            joined = [
                join_and_filter(raw[payload.first + i], out, processing, job.input.content_type, job.output.accept)
                for i, out in enumerate(outputs)
            ]
            return assemble(joined, job.output.assemble_with)
        except RecordError as exc:
            raise JobFailed(f"{row.uri}, {_records(payload)}: {exc}") from None

    async def _invoke(self, row: TransformObject, payload: Payload) -> bytes:
        """The model's answer to one payload; transient failures retried InvocationsMaxRetries times."""
        job = self._job
        headers = {"content-type": job.input.content_type or "application/octet-stream"}
        if job.output.accept:
            headers["accept"] = job.output.accept
        request = UpstreamRequest(INVOCATIONS_PATH, headers, payload.body, float(job.invocation_timeout_s))
        attempts, last = 0, ""
        unavailable_since: float | None = None
        while True:
            try:
                installed, variant = self._router.select(job.endpoint_name, None, internal=True)
                answer = await self._router.send(installed.route, variant, request)
            except (ServiceUnavailable, Throttled) as exc:  # no instance right now (one is being replaced)
                unavailable_since = unavailable_since or time.monotonic()
                waited = time.monotonic() - unavailable_since
                if waited >= self._settings.unavailable_wait_s:
                    raise JobFailed(f"{row.uri}, {_records(payload)}: no instance could take it for "
                                    f"{waited:.0f} s ({exc.message})") from None  # fmt: skip
                await asyncio.sleep(1.0)
                continue
            except RuntimeValidationError as exc:  # the job's endpoint is gone
                raise JobFailed(
                    f"{row.uri}, {_records(payload)}: the job's instances are gone ({exc.message})"
                ) from None
            except UpstreamError as exc:
                last = f"the instance did not answer ({type(exc).__name__}: {exc})"
            else:
                if answer.status_code < 300:
                    return answer.content
                last = f"the model answered {answer.status_code}: {answer.text[:500]}"
                if answer.status_code < 500:
                    break  # the model refuses this input: another try would get the same answer
            attempts += 1
            if attempts > job.max_retries:
                break
            await asyncio.sleep(min(8.0, 0.5 * 2**attempts))
        tries = f" (after {attempts} tries)" if attempts > 1 else ""
        raise JobFailed(f"{row.uri}, {_records(payload)}: {last}{tries}")

    async def _write_output(self, row: TransformObject, staged: staging.StagedOutput) -> None:
        try:
            target = output_uri(self._job.output.output_path, row.relative)
        except ValueError as exc:
            raise JobFailed(f"no output location for {row.uri}: {exc}") from None
        try:
            await self._blocking(lambda: self._objects.write_file(target, staged.path), f"write {target}")
        except ObjectError as exc:
            raise JobFailed(f"could not write the output of {row.uri} to {target}: {exc}") from None
        self._save(replace(row, state=DONE))
        self._objects_done += 1
        self._report()

    # the store --------------------------------------------------------------------------------------
    def _save(self, row: TransformObject) -> TransformObject:
        self._records.transform_objects.put(row.row_name, row)
        return row

    def _mark_started(self) -> None:
        now = self._now()
        self._records.transform_jobs.update(self._name, lambda j: j.with_progress(j.progress, now, started=now))

    def _report(self, objects_total: int | None = None) -> None:
        elapsed = time.monotonic() - self._run_started if self._run_started else 0.0
        rate = (self._records_done - self._records_at_start) / elapsed if elapsed > 0 else 0.0

        def change(job: TransformJob) -> TransformJob:
            progress = JobProgress(
                objects_total=job.progress.objects_total if objects_total is None else objects_total,
                objects_done=self._objects_done,
                records_done=self._records_done,
                bytes_read=self._bytes_read,
                records_per_s=rate,
                resumed=job.progress.resumed,
            )
            return job.with_progress(progress, self._now())

        updated = self._records.transform_jobs.update(self._name, change)
        if updated is not None:
            self._job = updated


def _first(group: BaseExceptionGroup[JobFailed]) -> JobFailed:
    """The first JobFailed in a (nested) exception group."""
    found = group.exceptions[0]
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


def _records(payload: Payload) -> str:
    if payload.count == 1:
        return f"record {payload.first + 1}"
    return f"records {payload.first + 1}-{payload.first + payload.count}"


def _reason(endpoint: Endpoint) -> str:
    return endpoint.failure_reason or "see `modelhost jobs logs`"
