"""`~user/...` model data paths: expanded when the user exists, a ValueError (validation) when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.storage.uris import LocalLocation, parse_location, parse_model_data_url


def test_an_unknown_users_home_is_a_validation_error() -> None:
    with pytest.raises(ValueError, match="~nosuchuser-modelhost names no user of this host"):
        parse_model_data_url("~nosuchuser-modelhost/model.tar.gz")


def test_the_callers_home_is_expanded() -> None:
    assert parse_location("~/model") == LocalLocation(Path.home() / "model")
