"""Which routes have been failing, as this process has seen: a route that failed FAILURES_TO_COOL times in a
row before its first event is tried after its model's other routes for COOLDOWN_SECONDS, then given one
request to find out whether it answers again (ADR 0027).

A provider that stops answering (a partition, a stuck server) fails nothing: each request of its model
waited out the provider's timeout (60 s by default) before the next route answered it. A provider that
refuses at once costs a connection attempt a request; one that is overloaded or rate-limited, a round trip.
Cooling moves the route last rather than dropping it: with every route cooling, the model still tries them
all in their order, so a cooldown never refuses a request that a route could have answered.

A route is its provider and upstream model: a provider down takes all its routes, but an overloaded or
rate-limited model takes only its own.
"""

import logging
import time
from collections.abc import Sequence

from gateway import metrics
from gateway.upstreams.base import RouteInfo, UpstreamError

logger = logging.getLogger(__name__)

FAILURES_TO_COOL = 3
COOLDOWN_SECONDS = 30.0

RouteKey = tuple[str, str]


def _key(route: RouteInfo) -> RouteKey:
    return route.provider.slug, route.upstream_model_id


class RouteHealth:
    def __init__(self) -> None:
        self._failures: dict[RouteKey, int] = {}  # failures in a row, of the routes that have any
        self._cooling_until: dict[RouteKey, float] = {}  # monotonic; past it, one request may try the route

    def in_order(self, routes: Sequence[RouteInfo]) -> Sequence[RouteInfo]:
        """The routes to try, in order: those cooling after the others. A route whose cooldown is over
        keeps its place for this request, its probe, and stays last for the others until the probe ends."""
        cooling_until = self._cooling_until
        if not cooling_until or len(routes) < 2:  # nothing cooling, or nothing to try instead
            return routes
        now = time.monotonic()
        ready: list[RouteInfo] = []
        cooling: list[RouteInfo] = []
        for route in routes:
            until = cooling_until.get(_key(route))
            if until is None:
                ready.append(route)
            elif now < until:
                cooling.append(route)
            else:  # this request probes it; the others meanwhile try it last
                cooling_until[_key(route)] = now + COOLDOWN_SECONDS
                ready.append(route)
        return routes if not cooling else ready + cooling

    def failed(self, route: RouteInfo, error: UpstreamError) -> None:
        """The route failed before its first event with a retryable error (the provider's, not the
        request's)."""
        key = _key(route)
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        if failures < FAILURES_TO_COOL:
            return
        if key not in self._cooling_until:
            logger.warning(
                "route %s/%s failed %d times in a row (%s); tried after the others for %g s",
                *key, failures, error.code.value, COOLDOWN_SECONDS,
            )  # fmt: skip
            metrics.route_cooling(*key)
        self._cooling_until[key] = time.monotonic() + COOLDOWN_SECONDS

    def answered(self, route: RouteInfo) -> None:
        if not self._failures:  # the usual case, a dict's truth and nothing more
            return
        key = _key(route)
        if self._failures.pop(key, None) is not None and self._cooling_until.pop(key, None) is not None:
            logger.warning("route %s/%s answers again", *key)

    def forget(self) -> None:
        """As if no route had failed (tests)."""
        self._failures.clear()
        self._cooling_until.clear()


route_health = RouteHealth()
