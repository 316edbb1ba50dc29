"""Log files as events: multi-line events, files without timestamps, huge lines, files that grow."""

from __future__ import annotations

import io
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelhost.monitoring.logs import index as index_module
from modelhost.monitoring.logs.events import MAX_EVENT_BYTES, LogEvent, read_events
from modelhost.monitoring.logs.index import FileIndex
from modelhost.monitoring.logs.reading import Budget, Window, read_backward, read_forward

T0 = round(datetime(2026, 12, 2, 0, 50, 28, tzinfo=UTC).timestamp() * 1000)
TRACEBACK = (
    "2026-12-02 00:50:28,100 ERROR [i-c0] modelhost.worker: load failed\n"
    "Traceback (most recent call last):\n"
    '  File "/opt/ml/model/model.py", line 3, in handle\n'
    "    raise ValueError('bad')\n"
    "ValueError: bad\n"
)


def events_of(data: bytes, carry_ms: int = 0) -> list[LogEvent]:
    return list(read_events(io.BytesIO(data), 0, carry_ms, UTC))


def indexed(path: Path) -> tuple[FileIndex, io.BufferedReader]:
    f = open(path, "rb")  # noqa: SIM115 - closed by the test's fixture
    index = FileIndex(UTC)
    index.refresh(f)
    return index, f


def test_a_traceback_is_one_event_and_prints_continue_the_event_before() -> None:
    data = ("2026-12-02 00:50:28,000 INFO [i-c0] modelhost.worker: up\nhello from print()\n" + TRACEBACK).encode()
    events = events_of(data)
    assert [e.message for e in events] == [
        "2026-12-02 00:50:28,000 INFO [i-c0] modelhost.worker: up\nhello from print()",
        TRACEBACK.rstrip("\n"),
    ]
    assert [e.timestamp_ms for e in events] == [T0, T0 + 100]
    assert events[0].end == events[1].offset and events[1].end == len(data)


def test_lines_before_any_timestamp_take_the_files_first_known_time(tmp_path: Path) -> None:
    path = tmp_path / "alltraffic-0.log"
    path.write_bytes(b"[modelhost] budget memory 1.0 GiB: not enforced\n" + TRACEBACK.encode())
    index, f = indexed(path)
    with f:
        events = list(index.events_from(f, 0, 0, 2**63 - 1))
    assert [e.timestamp_ms for e in events] == [T0 + 100, T0 + 100]
    assert events[0].message == "[modelhost] budget memory 1.0 GiB: not enforced"


def test_a_file_without_timestamps_takes_its_mtime(tmp_path: Path) -> None:
    path = tmp_path / "alltraffic-0.log"
    path.write_bytes(b"just prints\nand more\n")
    os.utime(path, (1_700_000_000.25, 1_700_000_000.25))
    index, f = indexed(path)
    with f:
        events = list(index.events_from(f, 0, 0, 2**63 - 1))
    assert [(e.timestamp_ms, e.message) for e in events] == [(1_700_000_000_250, "just prints\nand more")]


def test_a_huge_line_is_cut_into_events_on_character_boundaries() -> None:
    line = ("2026-12-02 00:50:28 " + "é€😀x" * 90_000).encode()  # ~ 900 KiB, characters of 1-4 bytes
    events = events_of(line + b"\nnext\n")
    assert len(events) >= 4
    assert all(len(e.message.encode()) <= MAX_EVENT_BYTES for e in events)
    assert "\ufffd" not in "".join(e.message for e in events)
    assert "".join(e.message for e in events).encode() == line + b"\nnext"  # the rest of the line, then "next"
    assert all(e.timestamp_ms == T0 for e in events)


def test_a_long_run_of_lines_is_cut_before_the_line_that_does_not_fit() -> None:
    line = b"x" * 1000 + b"\n"
    events = events_of(b"2026-12-02 00:50:28 start\n" + line * 600)
    assert len(events) == 3
    assert all(len(e.message.encode()) <= MAX_EVENT_BYTES for e in events)
    assert all(e.message.endswith("x") and not e.message.endswith("\n") for e in events)
    assert {e.timestamp_ms for e in events} == {T0}


def test_a_last_line_without_newline_waits_until_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "a-0.log"
    path.write_bytes(b"2026-12-02 00:50:28 one\n2026-12-02 00:50:29 tw")
    index, f = indexed(path)
    with f:
        assert [e.message for e in index.events_from(f, 0, 0, 2**63 - 1)] == ["2026-12-02 00:50:28 one"]
        assert index.end == len(b"2026-12-02 00:50:28 one\n")
        with open(path, "ab") as w:
            w.write(b"o\n")
        index.refresh(f)
        assert [e.message for e in index.events_from(f, 0, 0, 2**63 - 1)][-1] == "2026-12-02 00:50:29 two"


def test_a_file_growing_while_read(tmp_path: Path) -> None:
    path = tmp_path / "a-0.log"
    path.write_bytes(
        b"2026-12-02 00:50:28 one\n2026-12-02 00:50:28,100 ERROR boom\nTraceback (most recent call last):\n"
    )
    index, f = indexed(path)
    with f:
        first = list(index.events_from(f, 0, 0, 2**63 - 1))
        position = first[-1].end
        with open(path, "ab") as w:  # the rest of the traceback, then a new record
            w.write(b"ValueError: bad\n2026-12-02 00:50:30 three\n")
        index.refresh(f)
        rest = list(index.events_from(f, position, 0, 2**63 - 1))
        whole = list(index.events_from(f, 0, 0, 2**63 - 1))
    assert [(e.timestamp_ms, e.message) for e in rest] == [
        (T0 + 100, "ValueError: bad"),  # the continuation keeps the time of the event it continues
        (T0 + 2000, "2026-12-02 00:50:30 three"),
    ]
    assert whole[1].message == "2026-12-02 00:50:28,100 ERROR boom\nTraceback (most recent call last):\nValueError: bad"


def test_a_replaced_or_truncated_file_is_indexed_again(tmp_path: Path) -> None:
    path = tmp_path / "a-0.log"
    path.write_bytes(b"2026-12-02 00:50:28 one\n" * 100)
    index, f = indexed(path)
    f.close()
    path.write_bytes(b"2026-12-02 00:50:29 new\n")
    with open(path, "rb") as g:
        index.refresh(g)
        assert [e.message for e in index.events_from(g, 0, 0, 2**63 - 1)] == ["2026-12-02 00:50:29 new"]


def _random_log(rng: random.Random) -> bytes:
    lines = []
    for i in range(3000):
        kind = rng.random()
        if kind < 0.5:
            lines.append(f"2026-12-02 00:{i // 60 % 60:02d}:{i % 60:02d},{i % 1000:03d} INFO [w] m: record {i}\n")
        elif kind < 0.9:
            lines.append(f"  continuation {i} {'y' * rng.randrange(200)}\n")
        elif kind < 0.99:
            lines.append("\n")
        else:
            lines.append("z" * rng.randrange(MAX_EVENT_BYTES // 2, MAX_EVENT_BYTES * 2) + "\n")
    return ("untimed head\n" + "".join(lines)).encode()


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "SEGMENT_BYTES", 4096)


@pytest.mark.usefixtures("small_segments")
def test_reading_from_any_event_start_or_backward_gives_the_same_events(tmp_path: Path) -> None:
    path = tmp_path / "a-0.log"
    path.write_bytes(_random_log(random.Random(7)))
    index, f = indexed(path)
    with f:
        everything = list(index.events_from(f, 0, 0, 2**63 - 1))
        assert len(index.segments) > 50
        assert everything == list(read_events(f, 0, index.first_ms, UTC))
        for i in range(0, len(everything), 97):
            assert list(index.events_from(f, everything[i].offset, 0, 2**63 - 1)) == everything[i:]
        backward = [e for _, batch in index.events_before(f, index.end, 0, 2**63 - 1) for e in reversed(batch)]
        assert backward[::-1] == everything
        middle = everything[len(everything) // 2].offset
        before = [e for _, batch in index.events_before(f, middle, 0, 2**63 - 1) for e in reversed(batch)]
        assert before[::-1] == everything[: len(everything) // 2]


@pytest.mark.usefixtures("small_segments")
def test_a_time_window_skips_whole_segments_but_keeps_every_event_inside_it(tmp_path: Path) -> None:
    path = tmp_path / "a-0.log"
    path.write_bytes(_random_log(random.Random(11)))
    index, f = indexed(path)
    with f:
        everything = list(index.events_from(f, 0, 0, 2**63 - 1))
        start, end = everything[1000].timestamp_ms, everything[1200].timestamp_ms
        inside = [e for e in everything if start <= e.timestamp_ms < end]
        read = list(index.events_from(f, 0, start, end))
        assert [e for e in read if start <= e.timestamp_ms < end] == inside
        assert len(read) < len(everything) / 2


@pytest.mark.usefixtures("small_segments")
def test_a_read_stops_at_its_scan_budget_and_says_where_to_go_on(tmp_path: Path) -> None:
    path = tmp_path / "a-0.log"
    path.write_bytes(_random_log(random.Random(3)))
    index, f = indexed(path)
    with f:
        everything = list(index.events_from(f, 0, 0, 2**63 - 1))
        seen, position, calls = [], 0, 0
        while True:
            page = read_forward(f, index, position, Window(), Budget(10_000, scan_bytes=64 * 1024))
            seen += page.events
            calls += 1
            if page.position == position:
                break
            position = page.position
        assert seen == everything and calls > 10
        newest = read_backward(f, index, index.end, Window(), Budget(5))
        assert newest.events == everything[-5:] and not newest.reached_start
        assert newest.position == everything[-5].offset
