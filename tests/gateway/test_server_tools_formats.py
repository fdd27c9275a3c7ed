"""Server tools beyond the tool-calling loop: the pdf tool in every format, and a model that cannot call
tools, which gets web_search and datetime run once, before it answers, with the results in its context."""

import base64

import httpx
import pytest

from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.server_tools_client import ask, body_for
from tests.gateway.test_server_tools_billing import KEY, MODEL, drop, price
from tests.gateway.test_tools_fetch import minimal_pdf

PDF = base64.b64encode(minimal_pdf("Quarterly revenue grew 12 percent")).decode()
DATA_URL = f"data:application/pdf;base64,{PDF}"
PARTS = {
    "chat": {"type": "file", "file": {"filename": "q3.pdf", "file_data": DATA_URL}},
    "responses": {"type": "input_file", "filename": "q3.pdf", "file_data": DATA_URL},
    "messages": {
        "type": "document",
        "title": "q3.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    },
}
TEXT = {"chat": "text", "responses": "input_text", "messages": "text"}


def pdf_body(fmt: str, stream: bool) -> dict:
    content = [{"type": TEXT[fmt], "text": "Summarise the report"}, PARTS[fmt]]
    body: dict = {"model": MODEL, "stream": stream}
    if fmt == "responses":
        return {**body, "input": [{"role": "user", "content": content}], "tools": [{"type": "pdf"}]}
    body |= {"messages": [{"role": "user", "content": content}], "plugins": [{"id": "pdf"}]}
    return {**body, "max_tokens": 100} if fmt == "messages" else body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", ["chat", "responses", "messages"])
def test_the_pdf_tool_reads_the_file_in_every_format(gateway_url, funded_key, sql_meter, fmt, stream):
    workspace, key = funded_key
    with openai_fake("cerebras", Scenario(text="Revenue grew 12%."), api_key=KEY) as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)])
        answer = ask(fmt, gateway_url, key, pdf_body(fmt, stream))
        sent = fake.chat_requests[-1].body["messages"][-1]["content"]
    assert answer.text == "Revenue grew 12%."
    assert {
        "type": "text",
        "text": '<file name="q3.pdf" pages="1">\nQuarterly revenue grew 12 percent\n</file>',
    } in sent
    generation = settled_generation(answer.request_id)
    assert generation.tool_costs_micro_usd == {"pdf": price("pdf", "page")}
    assert drop(workspace) == (generation.cost_micro_usd, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_model_without_tool_calling_gets_the_search_run_first(gateway_url, funded_key, sql_meter, stream):
    workspace, key = funded_key
    with openai_fake("cerebras", Scenario(text="The gateway routes requests [1]."), api_key=KEY) as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)])  # no "tools" feature
        prompt = "Search the web: what does the HyperInfer gateway do?"
        body = body_for("chat", MODEL, prompt, ["web_search", "datetime"], stream=stream, events=False)
        answer = ask("chat", gateway_url, key, body)
        [sent] = fake.chat_requests
    assert "tools" not in sent.body  # the model is offered nothing to call
    context, asked = sent.body["messages"][-2:]
    assert context["role"] == "system" and "[web_search]\nResults for" in context["content"]
    assert "[datetime]\n" in context["content"] and asked == {"role": "user", "content": prompt}
    assert answer.text == "The gateway routes requests [1]."
    assert answer.citations == ["https://sandbox.hyperinfer.invalid/ai-gateway"]
    generation = settled_generation(answer.request_id)
    assert generation.tool_costs_micro_usd == {"web_search": price("web_search", "call")}
    assert drop(workspace) == (generation.cost_micro_usd, 0)


def test_a_model_without_tool_calling_is_refused_a_tool_it_would_have_to_call(
    gateway_url, funded_key, sql_meter
):
    workspace, key = funded_key
    serve_model_from(MODEL, [("cerebras", "http://127.0.0.1:9/v1")])
    body = body_for("chat", MODEL, "read https://example.com", ["web_fetch"], stream=False, events=False)
    response = httpx.post(
        f"{gateway_url}/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (
        error["param"] == "plugins"
        and "cannot call tools" in error["message"]
        and "'web_fetch'" in error["message"]
    )
    assert drop(workspace) == (0, 0)
