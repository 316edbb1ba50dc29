"""TransformJobs: the server's one owner of running transform jobs.

Every second (or when woken) it reads the jobs in the store: an InProgress job with no runner gets one (so a
restarted server resumes every job it had), a Stopping job's runner is cancelled and the job ends Stopped,
and a job that has ended has its hidden endpoint marked for deletion (the controller stops its instances)
and its staging folder removed. A runner that fails unexpectedly is retried with a growing delay; after
MAX_CRASHES in a row the job fails with the error, so a bug never leaves a job InProgress forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from modelhost.batch import staging
from modelhost.batch.runner import JobFailed, JobRun, RunnerSettings
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.status import EndpointStatus
from modelhost.resources.transform_job import ENDED, TransformJob, TransformJobStatus
from modelhost.router.forward import InvocationRouter
from modelhost.storage.objects import Objects
from modelhost.store.records import Records

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_CRASHES = 5
MAX_STALLED_RESUMES = 3


@dataclass(slots=True)
class Running:
    task: asyncio.Task[None]
    stop_requested: bool = False


class TransformJobs:
    def __init__(
        self,
        records: Records,
        router: InvocationRouter,
        objects: Objects,
        settings: RunnerSettings,
        hidden_endpoint: Callable[[TransformJob, float], Endpoint],
        wake_controller: Callable[[], None],
        now: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._router = router
        self._objects = objects
        self._settings = settings
        self._hidden_endpoint = hidden_endpoint
        self._wake_controller = wake_controller
        self._now = now
        self._running: dict[str, Running] = {}
        self._crashes: dict[str, tuple[int, float]] = {}  # job key -> (failures in a row, retry after: monotonic)
        self._cleaned: set[str] = set()
        self._wake = asyncio.Event()
        self._closing = False

    def wake(self) -> None:
        """Thread-safe enough for the event loop's own thread (the API handlers run there)."""
        self._wake.set()

    def running(self) -> list[str]:
        return sorted(self._running)

    async def run(self) -> None:
        while not self._closing:
            try:
                self.tick()
            except Exception:
                log.exception("transform jobs: the supervisor could not run; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=TICK_S)

    async def shutdown(self) -> None:
        """Cancel the runners without ending their jobs: the next server start resumes them."""
        self._closing = True
        tasks = [r.task for r in self._running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def tick(self) -> None:
        for job in self._records.transform_jobs.list():
            try:
                self._look_at(job)
            except Exception:  # one job the store cannot serve must not hold up the others
                log.exception("transform job %s: could not act on it; retrying", job.name)

    def _look_at(self, job: TransformJob) -> None:
        running = self._running.get(job.key)
        if job.status == TransformJobStatus.IN_PROGRESS and running is None:
            self._start(job)
        elif job.status == TransformJobStatus.STOPPING:
            if running is None:
                self._end(job.name, TransformJobStatus.STOPPED)
            elif not running.stop_requested:
                running.stop_requested = True
                running.task.cancel()
        elif job.status in ENDED and job.key not in self._cleaned and running is None:
            self._clean_up(job)

    # starting and ending ----------------------------------------------------------------------------
    def _start(self, job: TransformJob) -> None:
        failures, retry_after = self._crashes.get(job.key, (0, 0.0))
        if time.monotonic() < retry_after:
            return
        if job.started is not None or job.progress.objects_total:
            progress = job.progress
            stalled = progress.stalled_resumes + 1 if progress.records_done == progress.records_at_resume else 0
            if stalled >= MAX_STALLED_RESUMES:  # the job itself may be what takes the server down
                self._end(job.name, TransformJobStatus.FAILED,
                          f"the server stopped {stalled} times in a row while running this job without a record "
                          "getting done (see the server log); it is not resumed again")  # fmt: skip
                return
            resumed = replace(progress, resumed=progress.resumed + 1, stalled_resumes=stalled,
                              records_at_resume=progress.records_done)  # fmt: skip
            self._records.transform_jobs.update(job.name, lambda j: j.with_progress(resumed, self._now()))
            log.info("transform job %s: resuming where it stopped", job.name)
        task = asyncio.get_running_loop().create_task(self._run_job(job.name), name=f"transform job {job.key}")
        self._running[job.key] = Running(task)
        task.add_done_callback(lambda t, key=job.key: self._finished(key, t))  # type: ignore[misc]

    async def _run_job(self, name: str) -> None:
        run = JobRun(name, self._records, self._router, self._objects, self._settings, self._ensure_endpoint,
                     self._now)  # fmt: skip
        try:
            await run.run()
        except JobFailed as exc:
            log.info("transform job %s failed: %s", name, exc)
            self._end(name, TransformJobStatus.FAILED, str(exc))
            return
        self._end(name, TransformJobStatus.COMPLETED)

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        running = self._running.pop(key, None)
        if task.cancelled():
            if running is not None and running.stop_requested and not self._closing:
                job = self._records.transform_jobs.get(key)
                if job is not None:
                    self._end(job.name, TransformJobStatus.STOPPED)
            return
        exc = task.exception()
        if exc is None:
            self._crashes.pop(key, None)
            return
        failures = self._crashes.get(key, (0, 0.0))[0] + 1
        job = self._records.transform_jobs.get(key)
        if failures >= MAX_CRASHES and job is not None:
            log.error("transform job %s failed %d times in a row; failing it", key, failures, exc_info=exc)
            self._end(job.name, TransformJobStatus.FAILED, f"modelhost could not run the job: {exc!r}")
            return
        delay = min(60.0, 2.0**failures)
        self._crashes[key] = (failures, time.monotonic() + delay)
        log.error("transform job %s: the runner failed; retrying in %.0f s", key, delay, exc_info=exc)
        self.wake()

    def _end(self, name: str, status: TransformJobStatus, reason: str | None = None) -> None:
        def change(job: TransformJob) -> TransformJob | None:
            if job.status in ENDED:
                return None
            if status == TransformJobStatus.COMPLETED and job.status == TransformJobStatus.STOPPING:
                return job.finish(TransformJobStatus.STOPPED, self._now())  # it finished as it was being stopped
            return job.finish(status, self._now(), reason)

        ended = self._records.transform_jobs.update(name, change)
        if ended is not None:
            self._clean_up(ended)

    def _clean_up(self, job: TransformJob) -> None:
        """An ended job keeps no instances and no staging files."""
        now = self._now()

        def delete(endpoint: Endpoint) -> Endpoint | None:
            return None if endpoint.status == EndpointStatus.DELETING else endpoint.mark_deleting(now)

        self._records.endpoints.update(job.endpoint_name, delete)
        staging.remove_job_folder(self._settings.staging_dir, job.key)
        self._records.transform_objects.delete_under(job.key + "/")  # the job record keeps the totals
        self._cleaned.add(job.key)
        self._wake_controller()

    def _ensure_endpoint(self, job: TransformJob) -> None:
        """The hidden endpoint is recorded by CreateTransformJob; a crash between the two writes is mended here."""
        if self._records.endpoints.get(job.endpoint_name) is None:
            self._records.endpoints.put(job.endpoint_name, self._hidden_endpoint(job, self._now()))
            self._wake_controller()
