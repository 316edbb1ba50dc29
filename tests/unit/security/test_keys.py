"""The key store: HOME/keys.json, mode 0600, atomic writes, re-read when it changes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from modelhost.security.keys import KeyStore, KeyStoreError, read_keys


def test_create_list_delete(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    assert store.list() == [] and not store.enabled()
    key = store.create("alice", {"Version": "2012-10-17", "Statement": []})
    assert key.access_key_id.startswith("AKIA") and len(key.access_key_id) == 20
    assert len(key.secret_access_key) == 40
    assert key.api_key.startswith("mh-")
    assert [k.access_key_id for k in store.list()] == [key.access_key_id]
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert store.delete(key.access_key_id)
    assert not store.delete(key.access_key_id)
    assert store.list() == []


def test_a_running_reader_sees_changes(tmp_path: Path) -> None:
    clock = [0.0]
    reader = KeyStore(tmp_path, monotonic=lambda: clock[0])
    assert not reader.enabled()
    key = KeyStore(tmp_path).create("bob")
    clock[0] += 1.0
    assert reader.enabled()
    assert reader.get(key.access_key_id) == key
    assert reader.by_api_key(key.api_key) == key
    KeyStore(tmp_path).delete(key.access_key_id)
    clock[0] += 1.0
    assert reader.get(key.access_key_id) is None and not reader.enabled()


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    for name in ("a", "b", "c"):
        store.create(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keys.lock", "keys.json"]
    assert len(json.loads((tmp_path / "keys.json").read_text())["keys"]) == 3


def test_a_damaged_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{not json")
    with pytest.raises(KeyStoreError, match="keys.json"):
        read_keys(tmp_path / "keys.json")
