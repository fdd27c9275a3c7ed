"""The server tools built from the settings, and the check that refuses settings that do not hold together."""

import ipaddress

import pytest

from gateway.tools import registry
from gateway.tools.current_time import CurrentTime
from gateway.tools.search import BraveBackend, SandboxBackend, SearxngBackend
from gateway.tools.web import WebFetch, WebSearch


@pytest.fixture(autouse=True)
def fresh_backend():
    registry.configured_search.cache_clear()
    yield
    registry.configured_search.cache_clear()


def test_by_default_the_tools_run_offline_on_the_sandbox_and_fetch_only_the_public_internet(settings):
    tools = registry.server_tools(registry.BUILT)
    assert (type(tools["datetime"]), type(tools["web_search"]), type(tools["web_fetch"])) == (
        CurrentTime,
        WebSearch,
        WebFetch,
    )
    assert isinstance(tools["web_search"].backend, SandboxBackend)
    assert registry.fetch_resolver().allowed == () and registry.check_server_tools() == []
    with pytest.raises(KeyError):
        registry.server_tools(["pdf"])  # a transform of the request, not a tool the model calls


def test_settings_choose_the_search_service_and_open_networks(settings):
    settings.WEB_SEARCH_BACKEND, settings.WEB_SEARCH_URL = "searxng", "http://searx.internal:8888"
    settings.WEB_FETCH_ALLOWED_NETWORKS = ["10.20.0.0/16", "fd00::/8"]
    assert isinstance(registry.configured_search(), SearxngBackend)
    assert registry.fetch_resolver().allowed == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00::/8"),
    )
    registry.configured_search.cache_clear()
    settings.WEB_SEARCH_BACKEND, settings.WEB_SEARCH_API_KEY = "brave", "key"
    assert isinstance(registry.configured_search(), BraveBackend)


def test_settings_that_do_not_hold_together_fail_the_check_naming_them(settings):
    settings.WEB_SEARCH_BACKEND = "searxng"  # without WEB_SEARCH_URL
    settings.WEB_FETCH_ALLOWED_NETWORKS = ["the office"]
    settings.SERVER_TOOL_MAX_STEPS = 0
    messages = [message.msg for message in registry.check_server_tools()]
    assert messages == [
        "WEB_SEARCH_URL must point at the SearXNG instance",
        "WEB_FETCH_ALLOWED_NETWORKS: 'the office' is not a network (e.g. 10.0.0.0/8)",
        "SERVER_TOOL_MAX_STEPS must be at least 1",
    ]
