"""Server tools and money (ADR 0013): the pdf tool's pages, a failed call that costs nothing, a failure in a
later step that costs nothing at all, a client that leaves mid-loop paying for what ran, and a reservation
that holds the step limit's worst case before the first step."""

import asyncio
import base64
import json
from contextlib import ExitStack

import httpx
import pytest
from aiohttp import web

from billing.models import CreditAccount
from catalog.models import ToolPrice
from console.services.keys import api_key_create
from gateway.catalog_cache import catalog_cache
from tests.factories import make_workspace
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.server import FakeServer
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.server_tools_client import ask, body_for
from tests.gateway.test_disconnect import stream_then_leave
from tests.gateway.test_tools_fetch import minimal_pdf

KEY = "test-key"
MODEL = "test/tool-user"
PDF = base64.b64encode(minimal_pdf("Quarterly revenue grew 12 percent")).decode()


def price(tool: str, unit: str) -> int:
    """A unit's price in micro-USD (the shipped prices are whole micro-dollars)."""
    return int(ToolPrice.objects.get(tool=tool, unit=unit).price_usd * 1_000_000)


def drop(workspace, before: int = 5_000_000) -> tuple[int, int]:
    account = CreditAccount.objects.get(workspace=workspace)
    return before - account.balance_micro_usd, account.reserved_micro_usd


def pdf_chat(stream: bool) -> dict:
    part = {"type": "file", "file": {"filename": "q3.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}}
    content = [{"type": "text", "text": "Summarise the report"}, part]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "plugins": [{"id": "pdf"}]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_pdf_tool_sends_the_text_and_bills_its_pages(gateway_url, funded_key, sql_meter, stream):
    workspace, key = funded_key
    with openai_fake("cerebras", Scenario(text="Revenue grew 12%."), api_key=KEY) as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)])
        answer = ask("chat", gateway_url, key, {**pdf_chat(stream), "stream": stream})
        sent = fake.chat_requests[-1].body["messages"][0]["content"]
    assert answer.text == "Revenue grew 12%."
    assert sent[1] == {
        "type": "text",
        "text": '<file name="q3.pdf" pages="1">\nQuarterly revenue grew 12 percent\n</file>',
    }
    generation = settled_generation(answer.request_id)
    assert generation.tool_costs_micro_usd == {"pdf": price("pdf", "page")}
    tokens = generation.tokens_prompt + 2 * generation.tokens_completion
    assert generation.cost_micro_usd == tokens + price("pdf", "page")
    assert drop(workspace) == (generation.cost_micro_usd, 0)


def test_an_upstream_that_reads_documents_gets_the_pdf_itself_and_no_page_is_billed(
    gateway_url, funded_key, sql_meter
):
    _, key = funded_key
    with anthropic_fake(AnthropicScenario(text="Revenue grew.", api_key=KEY)) as fake:
        serve_model_from(MODEL, [("anthropic", fake.url + "/v1")])
        answer = ask("chat", gateway_url, key, {**pdf_chat(False), "stream": False})
        sent = fake.requests[-1].body["messages"][0]["content"]
    assert [block["type"] for block in sent] == ["text", "document"]
    assert sent[1]["source"] == {"type": "base64", "media_type": "application/pdf", "data": PDF}
    assert settled_generation(answer.request_id).tool_costs_micro_usd == {}


def test_a_pdf_that_cannot_be_read_is_refused_before_anything_is_reserved(gateway_url, funded_key, sql_meter):
    workspace, key = funded_key
    serve_model_from(MODEL, [("cerebras", "http://127.0.0.1:9/v1")])
    body = pdf_chat(False)
    body["messages"][0]["content"][1]["file"]["file_data"] = base64.b64encode(b"%PDF-1.4 broken").decode()
    response = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=body, headers=auth(key))
    assert response.status_code == 400
    assert "messages[0].content[1]: q3.pdf: not a readable PDF" in response.json()["error"]["message"]
    assert drop(workspace) == (0, 0)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_failed_call_costs_nothing_and_the_model_reads_why(gateway_url, funded_key, sql_meter):
    workspace, key = funded_key
    refused_url = '{"url": "http://169.254.169.254/latest/meta-data/"}'  # cloud metadata: never fetched
    with openai_fake("cerebras", Scenario(tool_call=("web_fetch", refused_url)), api_key=KEY) as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)], features=("tools",))
        body = body_for("chat", MODEL, "read it", ["web_fetch"], stream=False, events=False)
        answer = ask("chat", gateway_url, key, body)
    assert answer.text.startswith("From the tool: Error: ") and "169.254.169.254" in answer.text
    generation = settled_generation(answer.request_id)
    assert generation.status == "completed" and generation.tool_costs_micro_usd == {}
    assert drop(workspace) == (generation.tokens_prompt + 2 * generation.tokens_completion, 0)


def test_a_failure_in_a_later_step_costs_nothing_at_all(gateway_url, funded_key, sql_meter):
    workspace, key = funded_key
    calls = AnthropicScenario(tool_call=("web_search", '{"query": "HyperInfer"}'), api_key=KEY)
    broken = AnthropicScenario(failure="server_error", api_key=KEY)
    with anthropic_fake(calls, broken) as fake:
        serve_model_from(MODEL, [("anthropic", fake.url + "/v1")], features=("tools",))
        body = body_for("messages", MODEL, "search", ["web_search"], stream=False, events=False)
        response = httpx.post(
            f"{gateway_url}/api/v1/messages", json=body, headers={"x-api-key": key}, timeout=20
        )
    assert response.status_code == 502 and response.json()["error"]["code"] == "provider_unavailable"
    generation = settled_generation(response.headers["x-request-id"])
    assert (generation.status, generation.cost_micro_usd, generation.tool_costs_micro_usd) == (
        "failed",
        0,
        {},
    )
    assert drop(workspace) == (0, 0)


def test_a_client_that_leaves_mid_loop_pays_for_the_steps_and_the_calls_that_ran(
    gateway_url, funded_key, sql_meter
):
    workspace, key = funded_key
    search = ("web_search", '{"query": "HyperInfer gateway"}')
    slow_second_step = AnthropicScenario(tool_call=search, api_key=KEY, first_byte_delay=5)
    with anthropic_fake(AnthropicScenario(tool_call=search, api_key=KEY), slow_second_step) as fake:
        serve_model_from(MODEL, [("anthropic", fake.url + "/v1")], features=("tools",))
        body = {**body_for("chat", MODEL, "search", ["web_search"], stream=True, events=True)}
        request_id = stream_then_leave(gateway_url, key, body, until=lambda got: b"tool.completed" in got)
        generation = settled_generation(request_id, timeout=10)
    assert generation.status == "cancelled"
    search_cost = price("web_search", "call")  # results are free at the shipped prices
    assert generation.tool_costs_micro_usd == {"web_search": search_cost}
    # The first step as the upstream counted it (12 in, 7 out), the second as estimated, nothing produced.
    assert generation.tokens_completion == 7 and generation.tokens_prompt > 12
    tokens = generation.tokens_prompt + 2 * generation.tokens_completion
    assert generation.cost_micro_usd == tokens + search_cost
    assert drop(workspace) == (generation.cost_micro_usd, 0)


def test_the_reservation_holds_the_step_limits_worst_case(gateway_url, sql_meter, settings):
    settings.SERVER_TOOL_MAX_STEPS = 3
    workspace = make_workspace(credits_micro_usd=50_000)  # $0.05
    key = api_key_create(workspace=workspace, name="small", created_by=None).secret
    with ExitStack() as stack:
        fake = stack.enter_context(openai_fake("cerebras", Scenario(text="Hi"), api_key=KEY))
        serve_model_from(MODEL, [("cerebras", fake.base_url)], features=("tools",))
        catalog_cache.invalidate()
        plain = body_for("chat", MODEL, "hi", [], stream=False, events=False)
        answered = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=plain, headers=auth(key))
        assert answered.status_code == 200
        # Two more steps of up to 32,000 prompt tokens at $1/M and four searches each: more than $0.05.
        searching = body_for("chat", MODEL, "hi", ["web_search"], stream=False, events=False)
        refused = httpx.post(f"{gateway_url}/api/v1/chat/completions", json=searching, headers=auth(key))
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_credits"
    assert len(fake.chat_requests) == 1  # the refused request never went upstream


def test_a_client_that_leaves_while_a_tool_runs_pays_the_finished_step_and_no_unfinished_call(
    gateway_url, funded_key, sql_meter, settings
):
    async def slow_page(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="<html><title>late</title></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/slow", slow_page)
    settings.WEB_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    workspace, key = funded_key
    with FakeServer(app) as site:
        url = site.url.replace("127.0.0.1", "localhost") + "/slow"
        scenario = Scenario(tool_call=("web_fetch", json.dumps({"url": url})))
        with openai_fake("cerebras", scenario, api_key=KEY) as fake:
            serve_model_from(MODEL, [("cerebras", fake.base_url)], features=("tools",))
            body = body_for("chat", MODEL, "read it", ["web_fetch"], stream=True, events=True)
            request_id = stream_then_leave(gateway_url, key, body, until=lambda got: b"tool.started" in got)
            generation = settled_generation(request_id, timeout=10)
    assert generation.status == "cancelled" and generation.tool_costs_micro_usd == {}
    # The first step exactly as the upstream counted it (the fake's 12 in, 7 out); no step was under way.
    assert (generation.tokens_prompt, generation.tokens_completion) == (12, 7)
    assert generation.cost_micro_usd == 12 + 2 * 7 and drop(workspace) == (26, 0)
