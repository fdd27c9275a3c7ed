"""The adapter registry is the one list of upstream dialects: every module of gateway/upstreams/ is imported
at startup, and the catalog learns the kinds (and what each needs) from it, with no list of its own."""

import pkgutil
from pathlib import Path

import yaml
from django.conf import settings

import gateway.upstreams
from catalog.dialects import Dialect, dialect_get, dialect_kinds
from gateway.upstreams.base import UpstreamAdapter
from gateway.upstreams.registry import adapter_for, adapter_kinds, adapters_load

# Modules of gateway/upstreams/ that are not dialects.
HELPERS = {
    "anthropic_request",
    "base",
    "extras",
    "http1",
    "http1_connection",
    "openai_embeddings",
    "openai_errors",
    "openai_events",
    "openai_request",
    "registry",
    "sse",
}


def test_every_shipped_kind_has_an_adapter_and_is_known_to_the_catalog():
    shipped = yaml.safe_load(Path(settings.CATALOG_PATH).read_text(encoding="utf-8"))
    kinds = {provider["kind"] for provider in shipped["providers"]}
    assert kinds <= set(adapter_kinds())
    assert adapter_kinds() == [
        "anthropic", "baseten", "cerebras", "fireworks", "llamacpp", "mock", "openai_compatible",
    ]  # fmt: skip
    assert dialect_kinds() == adapter_kinds()
    for kind in adapter_kinds():
        assert isinstance(adapter_for(kind), UpstreamAdapter) and adapter_for(kind).kind == kind


def test_the_registered_kinds_are_the_adapter_modules_present():
    modules = {info.name for info in pkgutil.iter_modules(gateway.upstreams.__path__)}
    by_module = {
        type(adapter).__module__.rsplit(".", 1)[1]: kind for kind, adapter in adapters_load().items()
    }
    assert set(by_module) == modules - HELPERS
    assert all(module == kind for module, kind in by_module.items())  # gateway/upstreams/<kind>.py


def test_the_catalog_learns_what_each_kind_needs_from_its_adapter():
    assert dialect_get("mock") == Dialect("mock", "Mock (offline sandbox)", False, False)
    assert dialect_get("llamacpp") == Dialect("llamacpp", "llama.cpp / Jan", True, False)
    assert dialect_get("cerebras") == Dialect("cerebras", "Cerebras", True, True)
    assert dialect_get("openai") is None
