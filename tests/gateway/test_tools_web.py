"""The web_search and web_fetch server tools: what the model reads, the citations, the billable units, and
failures as error results that cost nothing."""

import asyncio

import aiohttp

from gateway.tools.base import ToolContext
from gateway.tools.fetch import fetch_session
from gateway.tools.search import SandboxBackend, SearxngBackend
from gateway.tools.web import MAX_TOOL_TEXT, WebFetch, WebSearch
from tests.fakes.server import FakeServer
from tests.gateway.test_tools_fetch import StubResolver, site_app


def search(arguments, backend=None, **options):
    async def go():
        async with aiohttp.ClientSession() as session:
            context = ToolContext(session=session, options=options)
            return await WebSearch(backend or SandboxBackend()).run(arguments, context)

    return asyncio.run(go())


def fetch(url: str, resolver):
    async def go():
        async with aiohttp.ClientSession() as session, fetch_session(resolver) as guarded:
            return await WebFetch().run({"url": url}, ToolContext(session=session, fetch_session=guarded))

    return asyncio.run(go())


def test_search_results_are_numbered_for_the_model_cited_for_the_client_and_billed_per_result():
    outcome = search({"query": "how do tides work, and photosynthesis"}, max_results=2)
    assert outcome.text.startswith(
        "Results for 'how do tides work, and photosynthesis' (from sandbox):\n\n[1] [sandbox] How tides"
    )
    assert "[2] " in outcome.text and "[3] " not in outcome.text
    assert outcome.citations[0].url == "https://sandbox.hyperinfer.invalid/tides"
    assert outcome.units == {"call": 1, "result": 2} and not outcome.error


def test_no_results_is_one_call_and_a_failing_service_or_bad_query_costs_nothing():
    assert search({"query": "zzzz qqqq"}).units == {"call": 1}
    with FakeServer(aiohttp.web.Application()) as server:  # no /search route: a 404
        failed = search({"query": "tides"}, SearxngBackend(server.url))
    assert failed.error and failed.units == {} and failed.text.startswith("Error: ")
    assert search({"query": ""}).error and search({}).error


def test_fetch_reads_the_page_cites_it_and_bills_one_call():
    with FakeServer(site_app()) as server:
        port = server.url.rsplit(":", 1)[1]
        resolver = StubResolver({"docs.example.test": ["127.0.0.1"]}, allowed=("127.0.0.1/32",))
        outcome = fetch(f"http://docs.example.test:{port}/article", resolver)
        refused = fetch(f"http://docs.example.test:{port}/to-metadata", resolver)
    assert outcome.text.startswith("The tides\nhttp://docs.example.test:") and "gravitational" in outcome.text
    assert outcome.citations[0].title == "The tides" and outcome.units == {"call": 1}
    assert refused.error and refused.units == {} and "169.254.169.254" in refused.text


def test_what_the_model_reads_of_a_long_page_is_cut_and_says_so():
    with FakeServer(site_app()) as server:
        port = server.url.rsplit(":", 1)[1]
        resolver = StubResolver({"docs.example.test": ["127.0.0.1"]}, allowed=("127.0.0.1/32",))
        outcome = fetch(f"http://docs.example.test:{port}/big.txt", resolver)  # 50,000 characters
    body = outcome.text.split("\n\n", 1)[1]  # after the URL
    assert body == "x" * MAX_TOOL_TEXT + "\n[…cut]"
