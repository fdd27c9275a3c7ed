"""Adapters by `kind` (providers.yaml): every module of gateway/upstreams/ is imported once, at startup,
and each adapter class it `@register`s serves its `kind`. A new dialect is a new module (docs/new-dialect.md).
"""

import importlib
import pkgutil

from gateway.upstreams.base import UpstreamAdapter

_ADAPTERS: dict[str, UpstreamAdapter] = {}
_loaded = False


def register(cls: type[UpstreamAdapter]) -> type[UpstreamAdapter]:
    """Class decorator: serve `cls.kind` with an instance of `cls`."""
    existing = _ADAPTERS.get(cls.kind)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ValueError(f"kind {cls.kind!r} is already served by {type(existing).__name__}")
    _ADAPTERS[cls.kind] = cls()
    return cls


def unregister(kind: str) -> None:
    _ADAPTERS.pop(kind, None)


def adapters_load() -> dict[str, UpstreamAdapter]:
    """Import every module of this package, which registers its adapters; return them by kind.

    Startup runs it (gateway/apps.py). A module imported already is not run again, so a second call only
    picks up modules added since.
    """
    global _loaded
    package = importlib.import_module("gateway.upstreams")
    for module in pkgutil.iter_modules(package.__path__, prefix="gateway.upstreams."):
        importlib.import_module(module.name)
    _loaded = True
    return dict(_ADAPTERS)


def adapter_for(kind: str) -> UpstreamAdapter:
    """The adapter serving `kind`; the catalog refuses kinds that have none (catalog.dialects)."""
    if not _loaded:
        adapters_load()
    return _ADAPTERS[kind]


def adapter_kinds() -> list[str]:
    if not _loaded:
        adapters_load()
    return sorted(_ADAPTERS)


def adapter_reads_documents(kind: str) -> bool:
    """Whether an upstream of this kind reads PDF file parts itself (an unknown kind: no)."""
    if not _loaded:
        adapters_load()
    adapter = _ADAPTERS.get(kind)
    return adapter is not None and adapter.reads_documents


def adapter_completes_text(kind: str) -> bool:
    """Whether an upstream of this kind serves legacy text completions (an unknown kind: no)."""
    if not _loaded:
        adapters_load()
    adapter = _ADAPTERS.get(kind)
    return adapter is not None and adapter.completes_text
