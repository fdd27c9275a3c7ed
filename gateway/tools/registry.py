"""The server tools this deployment offers, built from the settings (ADR 0013), and their startup check."""

import functools
import ipaddress
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.checks import CheckMessage, Error

from core.deployment import image_generation_configured
from gateway.tools.base import ServerTool
from gateway.tools.current_time import CurrentTime
from gateway.tools.fetch import IPNetwork, PublicOnlyResolver
from gateway.tools.image import ImageBackend, ImageGeneration, OpenAIImages, SandboxImages
from gateway.tools.search import SearchBackend, search_backend
from gateway.tools.web import WebFetch, WebSearch

# The tools the model calls, run in the loop (gateway/tools/loop.py), `image` when a backend is configured;
# `pdf` is not one of them: it turns a request's PDF parts into text before the model sees them.
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


def available_server_tools() -> frozenset[str]:
    """What a client may switch on here (`plugins`, Responses built-in tools)."""
    return frozenset((*BUILT, "pdf", *(("image",) if image_generation_configured() else ())))


def configured_images() -> ImageBackend:
    backend = settings.IMAGE_GENERATION_BACKEND
    if backend == "sandbox":
        return SandboxImages()
    if backend == "openai":
        if not settings.IMAGE_GENERATION_URL:
            raise ValueError("IMAGE_GENERATION_BACKEND=openai needs IMAGE_GENERATION_URL")
        return OpenAIImages(
            settings.IMAGE_GENERATION_URL, settings.IMAGE_GENERATION_API_KEY, settings.IMAGE_GENERATION_MODEL
        )
    raise ValueError(f"IMAGE_GENERATION_BACKEND: {backend!r} is none of openai, sandbox (or empty)")


def server_tools(names: Iterable[str]) -> dict[str, ServerTool]:
    """The tools asked for, by name; KeyError for one that is not built."""
    makers: dict[str, Callable[[], ServerTool]] = {
        "datetime": CurrentTime,
        "web_search": lambda: WebSearch(configured_search()),
        "web_fetch": WebFetch,
        "image": lambda: ImageGeneration(configured_images()),
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
    if image_generation_configured():
        try:
            configured_images()
        except ValueError as exc:
            problems.append(Error(str(exc), id="gateway.E003"))
    if settings.SERVER_TOOL_MAX_STEPS < 1:
        problems.append(Error("SERVER_TOOL_MAX_STEPS must be at least 1", id="gateway.E002"))
    return problems
