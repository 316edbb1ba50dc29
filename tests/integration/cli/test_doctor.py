"""`modelhost doctor` and the server's refusal to start on a damaged store, on real files and real servers."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from modelhost.store.sqlite import SqliteStore
from modelhost.testing import free_port
from tests.integration.server import ServerProcess, write_echo_model


def modelhost(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelhost", *args],
        env={**os.environ, "MODELHOST_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_server(home: Path) -> subprocess.CompletedProcess[str]:
    """A server that is expected to refuse to start (it would otherwise run until the timeout)."""
    return modelhost(home, "server", "--port", str(free_port()), "--home", str(home))


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "is empty (0 bytes)"), (b"\x13\x37 not sqlite at all " * 100, "is not a SQLite database")],
    ids=["zero-length", "garbage"],
)
def test_the_server_refuses_a_damaged_store_with_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "modelhost.db"
    db.write_bytes(content)

    refused = start_server(home)

    assert refused.returncode != 0
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: the store {db} {problem}")
    assert f"modelhost doctor --home {home} --restore" in line
    assert db.read_bytes() == content
    assert not (home / "backups").exists()


def test_doctor_lists_a_bad_endpoint_row_and_counts_the_others(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = SqliteStore(home / "modelhost.db")
    store.open()
    for name in ("first", "broken", "third"):
        store.put("endpoint", name, {"EndpointName": name})
    store.put("model", "m", {"ModelName": "m"})
    store.close()
    with sqlite3.connect(home / "modelhost.db") as conn:
        conn.execute("UPDATE resources SET data = '{\"EndpointName\": ' WHERE key = 'broken'")

    report = modelhost(home, "doctor")

    assert report.returncode == 1
    assert "server   none (no modelhost server holds this home)" in report.stdout
    assert "ok (1 models, 0 endpoint configs, 2 endpoints, 0 instances)" in report.stdout
    assert 'unreadable endpoint "broken": bad JSON' in report.stdout
    assert "verdict  needs repair, and there is no backup to restore" in report.stdout


def test_doctor_on_a_fresh_home_is_healthy(tmp_path: Path) -> None:
    report = modelhost(tmp_path / "fresh", "doctor")
    assert report.returncode == 0, report.stdout
    assert "none yet (a fresh home" in report.stdout
    assert "verdict  healthy" in report.stdout


def test_restore_brings_the_resources_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / "modelhost.db"
    first = ServerProcess(home).start()
    try:
        sm = first.clients()[0]
        sm.create_model(
            ModelName="kept",
            PrimaryContainer={"Image": "djl-inference", "ModelDataUrl": str(write_echo_model(tmp_path / "m"))},
        )
    finally:
        first.stop()
    second = ServerProcess(home).start()  # its start-up backup holds the model
    try:
        assert second.process is not None
        running = modelhost(home, "doctor")
        assert f"held by modelhost server (pid {second.process.pid}, port {second.port})" in running.stdout
        refused = modelhost(home, "doctor", "--restore")
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"error: cannot restore while modelhost server (pid {second.process.pid}")
    finally:
        second.stop()

    db.write_bytes(b"\x00" * 8192)
    db.with_name("modelhost.db-wal").unlink(missing_ok=True)
    assert start_server(home).returncode != 0
    damaged = modelhost(home, "doctor")
    assert damaged.returncode == 1
    assert "store    DAMAGED: the store" in damaged.stdout
    assert "store-" in damaged.stdout and "(newest first)" in damaged.stdout

    restored = modelhost(home, "doctor", "--restore")
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith(f"restored {home / 'backups'}/store-")
    [aside] = home.glob("modelhost.db.corrupt-*")
    assert aside.read_bytes() == b"\x00" * 8192

    third = ServerProcess(home).start()
    try:
        names = [m["ModelName"] for m in third.clients()[0].list_models()["Models"]]
        assert names == ["kept"]
    finally:
        third.stop()
    assert modelhost(home, "doctor").returncode == 0
