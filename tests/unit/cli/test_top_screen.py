"""`modelhost top` on a terminal: each refresh redraws in place, a failed scrape is shown and retried, Ctrl-C
restores the screen; `--once` takes two scrapes an interval apart."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from modelhost.cli import top as top_module
from modelhost.cli.scrape import Scrape, parse_scrape

ROW = 'modelhost_invocations_total{{endpoint="chat",variant="AllTraffic"}} {}\n'


def fake_scrapes(monkeypatch: pytest.MonkeyPatch, results: list[Scrape | Exception], sleeps: int) -> list[float]:
    """`scrape` answers `results` in turn; the `sleeps`-th sleep is a Ctrl-C. Returns the sleeps asked for."""
    answers: Iterator[Scrape | Exception] = iter(results)
    slept: list[float] = []

    def scrape(base: str) -> Scrape:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) >= sleeps:
            raise KeyboardInterrupt

    monkeypatch.setattr(top_module, "scrape", scrape)
    monkeypatch.setattr(top_module.time, "sleep", sleep)
    return slept


def test_live_redraws_in_place_keeps_the_table_through_a_failure_and_restores_on_ctrl_c(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results: list[Scrape | Exception] = [
        parse_scrape(ROW.format(10), 0.0),
        parse_scrape(ROW.format(14), 2.0),
        top_module.ScrapeFailed("cannot reach the modelhost server at http://x"),
    ]
    slept = fake_scrapes(monkeypatch, results, sleeps=3)
    out = io.StringIO()
    top_module.run_live("http://x", 2.0, False, out)
    text = out.getvalue()
    assert text.startswith(top_module.ENTER_SCREEN) and text.endswith(top_module.LEAVE_SCREEN)
    frames = text.split(top_module.HOME)[1:]
    assert len(frames) == 3 and slept == [2.0, 2.0, 2.0]
    assert "waiting for a second scrape" in frames[0]
    assert "chat" in frames[1] and " 2.0 " in frames[1]  # 4 requests over 2 s
    assert "chat" in frames[2] and "error: cannot reach the modelhost server at http://x (retrying)" in frames[2]
    assert all(frame.endswith(top_module.CLEAR_BELOW) or top_module.LEAVE_SCREEN in frame for frame in frames)


def test_live_json_prints_one_object_per_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    results: list[Scrape | Exception] = [parse_scrape(ROW.format(n), t) for n, t in ((0, 0.0), (5, 1.0), (8, 2.0))]
    fake_scrapes(monkeypatch, results, sleeps=3)
    out = io.StringIO()
    top_module.run_live("http://x", 1.0, True, out)
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["variants"][0]["requests_per_s"] for d in documents] == [5.0, 3.0]
    assert "\x1b" not in out.getvalue()


def test_frame_cuts_lines_to_the_terminal_width() -> None:
    text = top_module.frame(None, "http://127.0.0.1:8080", 1.0, "", width=20)
    lines = text.removeprefix(top_module.HOME).split("\n")
    assert all(len(line.replace(top_module.CLEAR_LINE, "")) <= 20 for line in lines)


def test_once_takes_two_scrapes_an_interval_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    results: list[Scrape | Exception] = [parse_scrape(ROW.format(1), 0.0), parse_scrape(ROW.format(7), 3.0)]
    slept = fake_scrapes(monkeypatch, results, sleeps=99)
    out = io.StringIO()
    top_module.run_once("http://x", 3.0, True, out)
    assert slept == [3.0]
    document = json.loads(out.getvalue())
    assert document["interval_s"] == 3.0 and document["variants"][0]["requests_per_s"] == 2.0


def test_once_fails_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_scrapes(monkeypatch, [top_module.ScrapeFailed("AccessDeniedException: no")], sleeps=99)
    with pytest.raises(SystemExit) as exited:
        top_module.run_once("http://x", 1.0, False, io.StringIO())
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: AccessDeniedException: no\n"
