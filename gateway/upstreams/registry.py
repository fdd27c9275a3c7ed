"""Adapters by `kind` (providers.yaml): the module gateway/upstreams/<kind>.py registers its class."""

import importlib

from gateway.upstreams.base import UpstreamAdapter

_ADAPTERS: dict[str, UpstreamAdapter] = {}


def register(cls: type[UpstreamAdapter]) -> type[UpstreamAdapter]:
    _ADAPTERS[cls.kind] = cls()
    return cls


def adapter_for(kind: str) -> UpstreamAdapter:
    if kind not in _ADAPTERS:
        importlib.import_module(f"gateway.upstreams.{kind}")  # runs the module's @register
    return _ADAPTERS[kind]
