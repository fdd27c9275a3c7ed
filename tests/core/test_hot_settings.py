"""core/hot_settings.py: a setting read through `hot` is Django's, also after a test changes it."""

import pytest
from django.conf import LazySettings, settings
from django.test import override_settings

from core.hot_settings import hot


def test_hot_reads_what_django_has() -> None:
    assert hot.GATEWAY_MAX_BODY_BYTES == settings.GATEWAY_MAX_BODY_BYTES
    assert "GATEWAY_MAX_BODY_BYTES" in vars(hot)  # kept: the next read is a plain attribute


def test_an_overridden_setting_is_read_anew_and_restored() -> None:
    before = hot.RESERVATION_TTL_SECONDS
    with override_settings(RESERVATION_TTL_SECONDS=before + 17):
        overridden = hot.RESERVATION_TTL_SECONDS
    restored = hot.RESERVATION_TTL_SECONDS
    assert (overridden, restored) == (before + 17, before)


def test_the_settings_fixture_is_seen(settings: LazySettings) -> None:
    hot.METER_REDIS_SHARDS  # noqa: B018 - kept before the change
    settings.METER_REDIS_SHARDS = 7
    shards = hot.METER_REDIS_SHARDS
    assert shards == 7


def test_an_unknown_setting_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        hot.NO_SUCH_SETTING  # noqa: B018
