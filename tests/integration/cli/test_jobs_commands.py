"""`modelhost jobs ls | describe | logs [-f]` as a subprocess against a real server that ran a small transform
job: the table and JSON views, ModelhostProgress, the workers' lines from CloudWatch Logs, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.batch.test_transform_jobs import DOUBLER, WAIT, create_model, job_request, write_inputs
from tests.integration.server import ServerProcess, write_echo_model

JOB = "Cli-Job"  # mixed case: the commands show it as created
MODEL_PY = DOUBLER.replace('    answers = []\n', '    answers = []\n    print("doubling a batch", flush=True)\n')


def run(server: ServerProcess, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELHOST_URL": server.url, "MODELHOST_HOME": str(server.home), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "modelhost", "jobs", *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s)  # fmt: skip


@pytest.fixture(scope="module")
def ran(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Any]]:
    """JOB, run to completion over 2 objects of 5 records."""
    sm, _ = server.clients()
    model = write_echo_model(tmp_path_factory.mktemp("cli-doubler") / "model", model_py=MODEL_PY)
    create_model(sm, "cli-doubler", model)
    inputs = write_inputs(tmp_path_factory.mktemp("cli-in"), {"a.jsonl": [1, 2, 3], "b.jsonl": [4, 5]})
    sm.create_transform_job(**job_request(JOB, "cli-doubler", inputs, tmp_path_factory.mktemp("cli-out")))
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=JOB, WaiterConfig=WAIT)
    yield server, sm


def test_ls_shows_the_job_with_its_progress(ran: tuple[ServerProcess, Any]) -> None:
    server, _ = ran
    shown = run(server, "ls")
    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "CREATED", "OBJECTS", "RECORDS", "REC/S"]
    row = next(r.split() for r in rows if r.startswith(f"{JOB} "))
    assert row[1] == "Completed" and row[4:6] == ["2/2", "5"], row
    document = json.loads(run(server, "ls", "--json").stdout)
    mine = next(j for j in document["jobs"] if j["name"] == JOB)
    assert (mine["status"], mine["objects_done"], mine["objects_total"], mine["records_done"]) == ("Completed", 2, 2, 5)
    assert mine["created"] and isinstance(mine["records_per_s"], float | int)


def test_describe_shows_fields_and_progress_and_json_the_raw_answer(ran: tuple[ServerProcess, Any]) -> None:
    server, _ = ran
    shown = run(server, "describe", JOB.lower())  # the API finds it whatever the case; it is shown as created
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    assert fields["Name"].strip() == JOB and fields["Status"].strip() == "Completed"
    assert fields["Objects"].strip() == "2/2 done" and fields["Records"].strip().startswith("5 done")
    assert "cli-in" in fields["Input"] and "cli-out" in fields["Output"]
    assert fields["Resumed"].strip().startswith("0 time")
    raw = json.loads(run(server, "describe", JOB, "--json").stdout)
    assert raw["TransformJobName"] == JOB and raw["ModelhostProgress"]["RecordsDone"] == 5
    assert raw["TransformOutput"]["AssembleWith"] == "Line"


def test_unknown_job_is_one_line_and_exit_1(ran: tuple[ServerProcess, Any]) -> None:
    server, _ = ran
    for command in (("describe", "no-such-job"), ("logs", "no-such-job")):
        shown = run(server, *command)
        assert shown.returncode == 1, shown
        assert shown.stderr.startswith("error: ValidationException: ") and len(shown.stderr.splitlines()) == 1
        assert "Traceback" not in shown.stderr


def test_logs_prints_the_workers_lines_and_follow_ends_with_the_job(ran: tuple[ServerProcess, Any]) -> None:
    server, _ = ran
    shown = run(server, "logs", JOB)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.startswith(f"[{JOB}/alltraffic-0] ") and "doubling a batch" in line for line in lines), lines
    assert all(line.startswith(f"[{JOB}/") for line in lines)
    assert len(run(server, "logs", JOB, "-n", "1").stdout.splitlines()) == 1
    followed = run(server, "logs", JOB, "-f", "--since", "1h", timeout_s=60)  # the job has ended: it returns
    assert followed.returncode == 0, followed.stderr
    assert "doubling a batch" in followed.stdout and f"transform job {JOB} is Completed" in followed.stderr


def test_follow_prints_a_running_job_until_it_ends(ran: tuple[ServerProcess, Any],
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    server, sm = ran
    inputs = write_inputs(tmp_path_factory.mktemp("cli-slow-in"), {"slow.jsonl": list(range(8))})
    request = job_request("Cli-Slow", "cli-doubler", inputs, tmp_path_factory.mktemp("cli-slow-out"),
                          BatchStrategy="SingleRecord", MaxConcurrentTransforms=1,
                          Environment={"DELAY_S": "0.5"})  # fmt: skip
    sm.create_transform_job(**request)
    followed = run(server, "logs", "Cli-Slow", "-f", timeout_s=90)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.count("doubling a batch") == 8, followed.stdout
    assert "transform job Cli-Slow is Completed" in followed.stderr
