"""Stop sequences: cut before the match, hold back possible starts, flush when generation ends otherwise."""

from __future__ import annotations

from modelhost.worker.engine.stop import StopMatcher


def feed(matcher: StopMatcher, pieces: list[str]) -> tuple[list[str], bool]:
    out = []
    for piece in pieces:
        text, stopped = matcher.push(piece)
        out.append(text)
        if stopped:
            return out, True
    return out, False


def test_no_stops_passes_text_through() -> None:
    assert feed(StopMatcher(()), ["a", "b"]) == (["a", "b"], False)


def test_stop_inside_one_delta_cuts_before_it() -> None:
    assert feed(StopMatcher(["END"]), ["hello END world"]) == (["hello "], True)


def test_stop_split_across_deltas_never_emits_partial_stop() -> None:
    out, stopped = feed(StopMatcher(["\n\nUser:"]), ["Hi", " there\n", "\nUs", "er:", " more"])
    assert stopped
    assert out == ["Hi", " there", "", ""]


def test_held_back_prefix_is_released_when_ruled_out() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.push("abc ST") == ("abc ", False)
    assert matcher.push("ART") == ("START", False)


def test_flush_returns_held_text() -> None:
    matcher = StopMatcher(["###"])
    assert matcher.push("x #") == ("x ", False)
    assert matcher.flush() == "#"
    assert matcher.flush() == ""


def test_earliest_of_several_stops_wins() -> None:
    assert feed(StopMatcher(["world", "lo"]), ["hello world"]) == (["hel"], True)


def test_stop_completed_by_later_piece_cuts_held_text() -> None:
    matcher = StopMatcher(["abc"])
    assert matcher.push("xa") == ("x", False)
    assert matcher.push("b") == ("", False)
    assert matcher.push("cz") == ("", True)
