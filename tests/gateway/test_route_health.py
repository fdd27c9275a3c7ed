"""A route failing in a row is tried after its model's other routes for a while (gateway/route_health.py):
a provider that stops answering no longer costs each request of its model the provider's timeout."""

import time

import httpx
import pytest

from catalog.models import Provider
from core.errors import ErrorCode
from gateway import route_health as health
from gateway.route_health import RouteHealth
from gateway.upstreams.base import ProviderInfo, RouteInfo, UpstreamError
from tests.fakes.openai_dialects import openai_fake
from tests.fakes.openai_scenario import Scenario
from tests.gateway.conftest import serve_model_from, settled_generation

TIMEOUT = UpstreamError(ErrorCode.PROVIDER_TIMEOUT, "slow")


def route(slug: str, model: str = "m") -> RouteInfo:
    return RouteInfo(ProviderInfo(slug, "openai_compatible", "http://x", "k", 5.0), model)


@pytest.fixture
def short_cooldown(monkeypatch):
    monkeypatch.setattr(health, "COOLDOWN_SECONDS", 0.2)


def test_a_route_is_tried_last_after_failing_in_a_row_and_first_again_once_it_answers(short_cooldown):
    routes = [route("a"), route("b"), route("c")]
    routes_health = RouteHealth()
    for _ in range(health.FAILURES_TO_COOL - 1):
        routes_health.failed(routes[0], TIMEOUT)
    assert list(routes_health.in_order(routes)) == routes  # not yet
    routes_health.failed(routes[0], TIMEOUT)
    assert list(routes_health.in_order(routes)) == [routes[1], routes[2], routes[0]]
    time.sleep(0.25)  # the cooldown over: this request probes it in its place, the others still try it last
    assert list(routes_health.in_order(routes)) == routes
    assert list(routes_health.in_order(routes)) == [routes[1], routes[2], routes[0]]
    routes_health.answered(routes[0])  # the probe answered
    assert list(routes_health.in_order(routes)) == routes


def test_a_failed_probe_cools_the_route_again_at_once(short_cooldown):
    routes = [route("a"), route("b")]
    routes_health = RouteHealth()
    for _ in range(health.FAILURES_TO_COOL):
        routes_health.failed(routes[0], TIMEOUT)
    time.sleep(0.25)
    assert list(routes_health.in_order(routes)) == routes  # the probe
    routes_health.failed(routes[0], TIMEOUT)
    assert list(routes_health.in_order(routes)) == [routes[1], routes[0]]


def test_an_answer_between_failures_starts_the_count_again():
    routes = [route("a"), route("b")]
    routes_health = RouteHealth()
    for _ in range(health.FAILURES_TO_COOL - 1):
        routes_health.failed(routes[0], TIMEOUT)
    routes_health.answered(routes[0])
    for _ in range(health.FAILURES_TO_COOL - 1):
        routes_health.failed(routes[0], TIMEOUT)
    assert list(routes_health.in_order(routes)) == routes


def test_a_route_is_its_provider_and_upstream_model():
    """One model of a provider overloaded leaves the provider's other models where they were."""
    busy, other = route("a", "big"), route("a", "small")
    routes_health = RouteHealth()
    for _ in range(health.FAILURES_TO_COOL):
        routes_health.failed(busy, TIMEOUT)
    assert list(routes_health.in_order([busy, route("b", "big")])) == [route("b", "big"), busy]
    assert list(routes_health.in_order([other, route("b", "small")])) == [other, route("b", "small")]


@pytest.mark.django_db(transaction=True)
def test_through_the_gateway_a_provider_that_stopped_answering_costs_its_timeout_only_until_it_cools(
    gateway_url, funded_key, sql_meter, short_cooldown
):
    """Two routes, the first a provider that takes requests and never answers (its timeout 1 s): the first
    FAILURES_TO_COOL requests wait it out before the second route answers; the ones after go to the second
    at once; when it answers again, the request that probes it after the cooldown is its own again."""
    _, key = funded_key
    silent = Scenario(failure="slow_first_byte", delay=30, text="from the first")
    with (
        openai_fake("cerebras", silent) as first,
        openai_fake("cerebras", Scenario(text="from the second")) as second,
    ):
        serve_model_from(
            "test/cooling",
            [("openai_compatible", first.url + "/v1"), ("openai_compatible", second.url + "/v1")],
        )
        Provider.objects.filter(slug="test-cooling-0").update(timeout_seconds=1)
        seen: list[tuple[str, float]] = []
        with httpx.Client(base_url=gateway_url, timeout=30) as client:

            def ask() -> None:
                started = time.monotonic()
                answer = client.post(
                    "/api/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "test/cooling", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert answer.status_code == 200, answer.text
                seen.append((answer.json()["choices"][0]["message"]["content"], time.monotonic() - started))
                settled_generation(answer.headers["x-request-id"])

            for _ in range(health.FAILURES_TO_COOL + 3):
                ask()
            first.scenario = Scenario(text="from the first")  # it answers again
            time.sleep(0.25)
            ask()
    waited, cooled, back = seen[: health.FAILURES_TO_COOL], seen[health.FAILURES_TO_COOL : -1], seen[-1]
    assert all(text == "from the second" and took >= 1 for text, took in waited)
    assert all(text == "from the second" and took < 0.5 for text, took in cooled)
    assert back[0] == "from the first"
