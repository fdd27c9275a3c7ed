"""The server tools this deployment offers, built from the settings (ADR 0013), and their startup check."""

import functools
import ipaddress
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.checks import CheckMessage, Error

from gateway.tools.base import ServerTool
from gateway.tools.current_time import CurrentTime
from gateway.tools.fetch import IPNetwork, PublicOnlyResolver
from gateway.tools.search import SearchBackend, search_backend
from gateway.tools.web import WebFetch, WebSearch

# What the spec names and this deployment runs; `pdf` and `image` are named and not built yet.
BUILT = ("datetime", "web_search", "web_fetch")


@functools.cache
def configured_search() -> SearchBackend:
    return search_backend(
        settings.WEB_SEARCH_BACKEND, url=settings.WEB_SEARCH_URL, api_key=settings.WEB_SEARCH_API_KEY
    )


def allowed_networks() -> tuple[IPNetwork, ...]:
    """WEB_FETCH_ALLOWED_NETWORKS as networks; ValueError naming the entry that is none."""
    networks = []
    for entry in settings.WEB_FETCH_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"WEB_FETCH_ALLOWED_NETWORKS: {entry!r} is not a network (e.g. 10.0.0.0/8)"
            ) from exc
    return tuple(networks)


def fetch_resolver() -> PublicOnlyResolver:
    return PublicOnlyResolver(allowed_networks())


def server_tools(names: Iterable[str]) -> dict[str, ServerTool]:
    """The tools asked for, by name; KeyError for one that is not built."""
    makers: dict[str, Callable[[], ServerTool]] = {
        "datetime": CurrentTime,
        "web_search": lambda: WebSearch(configured_search()),
        "web_fetch": WebFetch,
    }
    return {name: makers[name]() for name in names}


def check_server_tools(**_: object) -> list[CheckMessage]:
    """`manage.py check` (and runserver, migrate): the tools' settings hold together."""
    problems: list[CheckMessage] = []
    for check in (configured_search, allowed_networks):
        try:
            check()
        except ValueError as exc:
            problems.append(Error(str(exc), id="gateway.E001"))
    if settings.SERVER_TOOL_MAX_STEPS < 1:
        problems.append(Error("SERVER_TOOL_MAX_STEPS must be at least 1", id="gateway.E002"))
    return problems
