"""Server tools end to end (issue 15, ADR 0013): every tool in every format, streamed and not, against an
OpenAI-family fake (Cerebras), the Anthropic fake and the offline sandbox model, through the whole gateway.

The model's call is run by the gateway, the answer uses its result (the fakes answer "From the tool: " and the
start of the result they were sent; the sandbox quotes it), the native shapes are read with the official SDKs'
own types, tool events come only when asked, and the generation's tool_costs_micro_usd and the balance drop
match the catalog's prices.
"""

from contextlib import ExitStack, contextmanager
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from billing.models import CreditAccount
from catalog.models import ToolPrice
from gateway.catalog_cache import catalog_cache
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.server import FakeServer
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.server_tools_client import ask, body_for

KEY = "test-key"
MODEL = "test/tool-user"
FORMATS = ["chat", "responses", "messages"]
UPSTREAMS = ["cerebras", "anthropic", "sandbox"]
PAGE_TITLE = "HyperInfer test article"
PAGE = f"""<html><head><title>{PAGE_TITLE}</title></head><body><article><h1>{PAGE_TITLE}</h1>
<p>The gateway reads this page through its guarded fetcher, which only loopback tests may reach.</p>
<p>It turns the article into text for the model and cites the page for the client.</p>
</article></body></html>"""
RESULT_PRICE = Decimal("0.0007")  # per web_search result, so the test sees results billed one by one


def paris_year() -> str:
    return datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y")


# tool -> (the fakes' call arguments, the sandbox prompt that makes it call the tool)
def calls(page_url: str) -> dict[str, tuple[str, str]]:
    return {
        "web_search": ('{"query": "HyperInfer gateway"}', "Search the web: what is the HyperInfer gateway?"),
        "web_fetch": (f'{{"url": "{page_url}"}}', f"Please read {page_url} for me"),
        "datetime": ('{"timezone": "Europe/Paris"}', "What time is it now in Europe/Paris?"),
        "image": ('{"prompt": "a red square"}', "Draw an image of a red square"),
    }


# tool -> what the answer must contain of the tool's result (the fakes quote its first 80 characters)
def used_result(tool: str) -> str:
    return {
        "web_search": "Results for",
        "web_fetch": PAGE_TITLE,
        "datetime": paris_year(),
        "image": "image",
    }[tool]


# tool -> the native shapes, per format (chat has none: annotations and images only)
SHAPES = {
    "web_search": {
        "responses": ["web_search_call"],
        "messages": ["server_tool_use", "web_search_tool_result"],
    },
    "web_fetch": {"responses": ["web_search_call"], "messages": ["server_tool_use", "web_fetch_tool_result"]},
    "datetime": {"responses": [], "messages": ["server_tool_use", "hi_tool_result"]},
    "image": {"responses": ["image_generation_call"], "messages": ["server_tool_use", "hi_tool_result"]},
}


@pytest.fixture
def tools_on(settings):
    settings.GATEWAY_METER = "sql"  # the balance is final when the response is
    settings.WEB_SEARCH_BACKEND = "sandbox"
    settings.IMAGE_GENERATION_BACKEND = "sandbox"
    settings.WEB_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]  # the test page is on loopback
    ToolPrice.objects.filter(tool="web_search", unit="result").update(price_usd=RESULT_PRICE)
    catalog_cache.invalidate()


@contextmanager
def page_server():
    async def article(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/article", article)
    with FakeServer(app) as server:
        yield f"{server.url.replace('127.0.0.1', 'localhost')}/article"  # by name, as a model would


@contextmanager
def upstream(kind: str, tool: str, arguments: str):
    """A model that calls `tool` with `arguments` and then answers from its result."""
    with ExitStack() as stack:
        if kind == "sandbox":
            serve_model_from(MODEL, [("mock", "")], features=("tools",), options={"first_token_ms": 0})
        elif kind == "anthropic":
            scenario = AnthropicScenario(tool_call=(tool, arguments), api_key=KEY)
            fake = stack.enter_context(anthropic_fake(scenario))
            serve_model_from(MODEL, [("anthropic", fake.url + "/v1")], features=("tools",))
        else:
            fake = stack.enter_context(openai_fake(kind, Scenario(tool_call=(tool, arguments)), api_key=KEY))
            serve_model_from(MODEL, [(kind, fake.base_url)], features=("tools",))
        yield


def expected_tool_costs(tool: str, results: int) -> dict[str, int]:
    units = (
        {"call": 1, "result": results} if tool == "web_search" else {"image": 1} if tool == "image" else {}
    )
    units = units or {"call": 1}
    prices = {p.unit: p.price_usd for p in ToolPrice.objects.filter(tool=tool)}
    cost = sum(prices.get(unit, Decimal(0)) * count * 1_000_000 for unit, count in units.items())
    micro = int(Decimal(cost).to_integral_value(rounding=ROUND_CEILING))
    return {tool: micro} if micro else {}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tool", ["web_search", "web_fetch", "datetime", "image"])
@pytest.mark.parametrize("kind", UPSTREAMS)
def test_a_server_tool_runs_and_is_shown_and_billed(
    gateway_url, funded_key, tools_on, monkeypatch, kind, tool, fmt, stream
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    workspace, key = funded_key
    with page_server() as page_url:
        arguments, prompt = calls(page_url)[tool]
        with upstream(kind, tool, arguments):
            body = body_for(fmt, MODEL, prompt, [tool], stream=stream, events=False)
            answer = ask(fmt, gateway_url, key, body)

    assert used_result(tool).lower() in answer.text.lower(), answer.text
    if kind != "sandbox":
        assert "From the tool: " in answer.text  # the fake's second step: it read the result
    assert answer.tool_events == []  # not asked for
    if fmt != "chat":
        assert answer.shapes == SHAPES[tool][fmt]
    if tool == "web_search":
        sandboxed = all(url.startswith("https://sandbox.hyperinfer.invalid/") for url in answer.citations)
        assert answer.citations and sandboxed
    if tool == "web_fetch" and fmt != "messages":
        assert answer.citations == [page_url]
    assert answer.images == (1 if tool == "image" else 0)

    generation = settled_generation(answer.request_id)
    results = len(set(answer.citations)) if tool == "web_search" else 0
    costs = expected_tool_costs(tool, results)
    assert {name: int(cost) for name, cost in generation.tool_costs_micro_usd.items()} == costs
    tokens = generation.tokens_prompt * 1 + generation.tokens_completion * 2  # $1 and $2 per million
    assert generation.cost_micro_usd == tokens + sum(costs.values())
    account = CreditAccount.objects.get(workspace=workspace)
    drop = 5_000_000 - account.balance_micro_usd
    assert (drop, account.reserved_micro_usd) == (generation.cost_micro_usd, 0)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("asked", [True, False], ids=["asked", "not-asked"])
def test_tool_events_come_only_when_asked(gateway_url, funded_key, tools_on, monkeypatch, fmt, asked):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with upstream("cerebras", "web_search", '{"query": "HyperInfer gateway"}'):
        body = body_for(fmt, MODEL, "search", ["web_search"], stream=True, events=asked)
        answer = ask(fmt, gateway_url, key, body)
    assert "From the tool: Results for" in answer.text
    if not asked:
        assert answer.tool_events == []
        return
    started = {"chat": "tool.started", "responses": "response.hi_tool.started", "messages": "hi_tool_started"}
    completed = started[fmt].replace("started", "completed")
    assert answer.tool_events[0] == started[fmt] and completed in answer.tool_events
    if fmt == "responses":  # and OpenAI's own progress events of the web_search_call item
        assert "response.web_search_call.completed" in answer.tool_events
