"""web_search's backends: SearXNG's JSON API and the Brave Search API, each against a real HTTP fake that
answers in its documented shape (failures included), and the offline sandbox corpus."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

from gateway.tools.search import (
    BraveBackend,
    SandboxBackend,
    SearchFailed,
    SearxngBackend,
    search_backend,
)
from tests.fakes.server import FakeServer

BRAVE_KEY = "brave-test-key"


def searxng_app(status: int = 200) -> web.Application:
    """SearXNG's /search?format=json: {query, results: [{url, title, content, engine, publishedDate?}]}."""

    async def search(request: web.Request) -> web.Response:
        if request.query.get("format") != "json":
            return web.Response(status=403, text="format not allowed")
        if status != 200:
            return web.Response(status=status, text="upstream trouble")
        query = request.query["q"]
        results = [
            {
                "url": f"https://example.org/{i}",
                "title": f"{query} #{i}",
                "content": f"about {query}",
                "engine": "x",
            }
            for i in range(8)
        ]
        results.insert(1, {"title": "no url"})  # a malformed entry is skipped, not fatal
        results[0]["publishedDate"] = "2026-11-30T10:00:00"
        return web.json_response({"query": query, "number_of_results": len(results), "results": results})

    app = web.Application()
    app.router.add_get("/search", search)
    return app


def brave_app(delay: float = 0.0) -> web.Application:
    """Brave's /res/v1/web/search: {type: search, web: {results: [{title, url, description, page_age?}]}}."""

    async def search(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        if request.headers.get("X-Subscription-Token") != BRAVE_KEY:
            return web.json_response(
                {"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}}, status=401
            )
        count = int(request.query.get("count", "20"))
        results = [
            {
                "title": f"Result {i}",
                "url": f"https://brave.example/{i}",
                "description": f"<strong>{i}</strong>",
            }
            for i in range(count)
        ]
        return web.json_response(
            {"type": "search", "query": {"original": request.query["q"]}, "web": {"results": results}}
        )

    app = web.Application()
    app.router.add_get("/res/v1/web/search", search)
    return app


def run(backend, query: str = "tides", limit: int = 5):
    async def go():
        async with aiohttp.ClientSession() as session:
            return await backend.search(query, limit, session)

    return asyncio.run(go())


def test_searxng_results_become_search_results_up_to_the_limit():
    with FakeServer(searxng_app()) as server:
        results = run(SearxngBackend(server.url), "moon tides", limit=3)
    assert [r.url for r in results] == [
        "https://example.org/0",
        "https://example.org/1",
        "https://example.org/2",
    ]
    assert results[0].title == "moon tides #0" and results[0].snippet == "about moon tides"
    assert results[0].published == "2026-11-30T10:00:00"


def test_brave_sends_its_key_and_count_and_reads_web_results():
    with FakeServer(brave_app()) as server:
        results = run(BraveBackend(BRAVE_KEY, server.url), limit=4)
    assert [r.title for r in results] == ["Result 0", "Result 1", "Result 2", "Result 3"]
    assert results[2].url == "https://brave.example/2"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda url: SearxngBackend(url), "HTTP 502"),
        (lambda url: BraveBackend("wrong-key", url), "HTTP 401"),
    ],
)
def test_a_failing_service_is_a_search_failure_without_its_body(make, message):
    app = searxng_app(status=502) if "502" in message else brave_app()
    with FakeServer(app) as server, pytest.raises(SearchFailed) as failed:
        run(make(server.url))
    assert message in str(failed.value) and "upstream trouble" not in str(failed.value)
    assert "wrong-key" not in str(failed.value)


def test_a_slow_service_times_out():
    with FakeServer(brave_app(delay=3)) as server, pytest.raises(SearchFailed, match="TimeoutError"):
        run(BraveBackend(BRAVE_KEY, server.url, timeout_seconds=0.3))


def test_the_sandbox_ranks_its_corpus_offline_and_says_so():
    results = run(SandboxBackend(), "why is mars red", limit=3)
    assert results[0].url == "https://sandbox.hyperinfer.invalid/mars"
    assert all(r.title.startswith("[sandbox] ") for r in results)
    assert run(SandboxBackend(), "zzzz qqqq") == []


def test_settings_choose_the_backend_and_refuse_an_incomplete_one():
    assert isinstance(search_backend("sandbox"), SandboxBackend)
    assert isinstance(search_backend("searxng", url="http://searx.local"), SearxngBackend)
    assert isinstance(search_backend("brave", api_key="k"), BraveBackend)
    for kind, kwargs in [("searxng", {}), ("brave", {}), ("bing", {})]:
        with pytest.raises(ValueError):
            search_backend(kind, **kwargs)


def test_the_sandbox_matches_what_is_searched_for_not_the_words_asking_for_a_search():
    results = run(SandboxBackend(), "Please search the web for the latest news on the HyperInfer gateway")
    assert [r.url for r in results] == ["https://sandbox.hyperinfer.invalid/ai-gateway"]
