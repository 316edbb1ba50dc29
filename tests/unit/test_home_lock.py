"""One process per home: an exclusive flock on HOME/server.lock recording the holder's pid and port."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelhost.home import HomeBusy, HomeLock, HomeUnusable, current_holder, read_holder


def test_the_holder_is_recorded_and_a_second_lock_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = HomeLock(home)
    first.acquire(host="127.0.0.1", port=8080)
    try:
        recorded = json.loads((home / "server.lock").read_text())
        assert (recorded["pid"], recorded["port"], recorded["role"]) == (os.getpid(), 8080, "server")
        holder = current_holder(home)
        assert holder is not None and (holder.pid, holder.port) == (os.getpid(), 8080)

        with pytest.raises(HomeBusy) as caught:
            HomeLock(home).acquire(port=9090)  # another open file description: flock refuses it
        assert str(caught.value) == (
            f"another modelhost server (pid {os.getpid()}, port 8080) is using {home}; "
            "stop it or start this one with --home DIR"
        )
    finally:
        first.release()
    assert current_holder(home) is None


def test_a_lock_file_left_by_a_dead_server_does_not_block(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "server.lock").write_text(json.dumps({"pid": 999999, "port": 8080, "role": "server"}))
    assert current_holder(home) is None
    with HomeLock(home) as lock:
        assert lock.held
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_release_lets_the_next_one_in(tmp_path: Path) -> None:
    lock = HomeLock(tmp_path)
    lock.acquire(role="doctor")
    lock.release()
    again = HomeLock(tmp_path)
    again.acquire()
    again.release()
    assert (tmp_path / "server.lock").exists()  # the file stays; only the lock goes


def test_an_unreadable_record_still_names_the_home(tmp_path: Path) -> None:
    holder = read_holder("garbage")
    assert holder.pid is None
    assert str(HomeBusy(tmp_path, holder)).startswith("another modelhost server (pid unknown) is using")


def test_a_home_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(HomeUnusable, match=f"cannot use the data directory {blocker / 'home'}"):
        HomeLock(blocker / "home").acquire()
