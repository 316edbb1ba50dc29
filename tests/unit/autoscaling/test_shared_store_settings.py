"""With a shared store the idle rule is off: the leader's metrics do not count what its followers answer, so a
MinCapacity 0 endpoint busy through them would be scaled to zero (fails without the fix)."""

from __future__ import annotations

from pathlib import Path

from modelhost.adapters import scaling_settings
from modelhost.settings import ServerSettings


def test_the_idle_rule_is_off_with_a_shared_store_and_on_with_sqlite(tmp_path: Path) -> None:
    assert scaling_settings(ServerSettings(home=tmp_path)).scale_to_zero is True
    shared = ServerSettings(home=tmp_path, store_url="postgresql://app@db/mh")
    assert scaling_settings(shared).scale_to_zero is False
