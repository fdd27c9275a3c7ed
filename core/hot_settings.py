"""Settings read on every request, at the price of a plain attribute.

`django.conf.settings` is a lazy proxy: each read runs its Python `__getattribute__`, which also probes the
value for `_mask_wrapped` (an AttributeError raised and dropped for an int or a string), ~1 µs a read. `hot`
keeps each setting it has been asked for as its own attribute, and forgets it when Django says the setting
changed (`override_settings`, pytest-django's `settings` fixture).
"""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed


class _HotSettings:
    def __getattr__(self, name: str) -> Any:  # the first read of a name only; later ones find it in __dict__
        value = getattr(settings, name)
        setattr(self, name, value)
        return value


hot = _HotSettings()


def _forget(*, setting: str, **_: Any) -> None:
    hot.__dict__.pop(setting, None)


setting_changed.connect(_forget, dispatch_uid="core.hot_settings")
