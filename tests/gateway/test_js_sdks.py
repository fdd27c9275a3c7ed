"""The official JavaScript SDKs, `openai` and `@anthropic-ai/sdk` from npm (pinned in tests/js/package.json),
run with Node against the gateway: the checks the Python SDKs pass, in tests/js/*.test.mjs.

Here the gateway is served for real on loopback, in front of a real-HTTP fake upstream (the Cerebras dialect)
whose answers are fixed: a text, a tool call when a tool is offered, and the answer from the tool's result
once it is sent back, always with the same token counts. The JS tests get those figures in the environment
and assert them exactly as each SDK parses them; this side then checks what they cannot see: what reached
the upstream, and that the workspace paid exactly the recorded cost of each generation.
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from billing.selectors import account_for
from catalog.models import Model
from gateway.models import Generation
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE_MAJOR = 20  # the oldest Node both pinned SDKs support
KEY = "test-key"
MODEL = "js/weather"  # served by the fake, at 1 $/M prompt and 2 $/M completion tokens
SANDBOX = {"slug": "hyperinfer/sandbox-pro", "name": "HyperInfer Sandbox Pro", "owned_by": "hyperinfer"}
ANSWER = "It is sunny in Paris today."
PROMPT_TOKENS, COMPLETION_TOKENS = 21, 9
COST_MICRO_USD = PROMPT_TOKENS * 1 + COMPLETION_TOKENS * 2
TOOL_NAME, CALL_ID = "get_weather", "call_fake_get_weather"  # the fake names its call after the tool
TOOL_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CALL_ARGUMENTS = {"city": "Paris"}
FORCED = {"type": "function", "function": {"name": TOOL_NAME}}  # each format's forced choice, upstream
TOOL_RESULT = "sunny, 24 C"
NODE_TIMEOUT_S = 300


@pytest.fixture
def node() -> str:
    """The node binary, with the SDKs installed; missing, the test fails in CI and is skipped elsewhere."""
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = f"Node.js {NODE_MAJOR}+ is not installed: the JS SDK tests need it"
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        major = re.match(r"v(\d+)\.", version)
        if major is None or int(major.group(1)) < NODE_MAJOR:
            problem = f"Node.js {NODE_MAJOR}+ is needed, found {version or 'an unknown version'}"
        elif not (JS_DIR / "node_modules" / ".package-lock.json").exists():
            problem = "the JS SDKs are not installed: `make install` (npm ci in tests/js)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    assert node is not None
    return node


def run_node_tests(node: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    files = sorted(str(path) for path in JS_DIR.glob("*.test.mjs"))
    assert len(files) >= 6, f"the JS test files are missing from {JS_DIR}"
    return subprocess.run(
        [node, "--test", "--test-reporter=spec", *files],
        cwd=JS_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
    )


def recorded_generations(workspace, count: int, timeout: float = 10.0) -> list[Generation]:
    """The workspace's completed generations, once `count` of them are written (just after each last byte)."""
    deadline = time.monotonic() + timeout
    while True:
        done = list(Generation.objects.filter(workspace=workspace, status="completed"))
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.05)


def test_the_javascript_sdks_pass_the_checks_the_python_sdks_pass(node, gateway_url, funded_key, monkeypatch):
    workspace, key = funded_key
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    scenario = Scenario(
        text=ANSWER,
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=COMPLETION_TOKENS,
        tool_call=(TOOL_NAME, json.dumps(CALL_ARGUMENTS)),
    )
    with openai_fake("cerebras", scenario, api_key=KEY) as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)], features=("tools", "streaming"))
        before = account_for(workspace_id=workspace.pk).balance_micro_usd
        slugs = list(Model.objects.filter(is_active=True).values_list("slug", flat=True))
        tool = {
            "name": TOOL_NAME,
            "parameters": TOOL_PARAMETERS,
            "call_id": CALL_ID,
            "arguments": CALL_ARGUMENTS,
            "result": TOOL_RESULT,
            "answer": "From the tool: " + TOOL_RESULT,
        }
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "cost_usd": COST_MICRO_USD / 1_000_000,
        }
        started = time.monotonic()
        run = run_node_tests(
            node,
            {
                "GATEWAY_BASE_URL": gateway_url,
                "GATEWAY_API_KEY": key,
                "GATEWAY_MODEL": MODEL,
                "CATALOG_SLUGS": json.dumps(slugs),
                "SANDBOX_MODEL": json.dumps(SANDBOX),
                "FAKE_ANSWER": ANSWER,
                "FAKE_TOOL": json.dumps(tool),
                "FAKE_USAGE": json.dumps(usage),
            },
        )
        took = time.monotonic() - started
        upstream = [request.body for request in fake.chat_requests]
        completions = [request.body for request in fake.completion_requests]
    print(f"node --test took {took:.1f}s\n{run.stdout}")
    assert run.returncode == 0, f"the JS SDK tests failed:\n{run.stdout}\n{run.stderr}"
    summary = dict(re.findall(r"^\S (tests|pass|fail|cancelled|skipped|todo) (\d+)$", run.stdout, re.M))
    assert summary["pass"] == summary["tests"] != "0", summary  # none skipped, cancelled or left to do

    # What the SDKs sent, as the upstream received it: each format's forced tool choice, translated; each
    # format's tool result sent back (chat, responses, messages), paired with the call it answers.
    forced = [body["tool_choice"] for body in upstream if "tool_choice" in body]
    assert len(forced) >= 6 and all(choice == FORCED for choice in forced)
    results = [m for body in upstream for m in body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in results] == [CALL_ID] * 3
    assert all(TOOL_RESULT in json.dumps(m["content"]) for m in results)

    # Every upstream answer is one completed generation, charged exactly its fake token counts, and the
    # workspace's balance fell by exactly the sum: no request went unbilled or was billed twice.
    assert [body["prompt"] for body in completions] == ["The weather in Paris is"] * 2
    generations = recorded_generations(workspace, len(upstream) + len(completions) + 2)  # + 2 embeddings
    embedded = [g for g in generations if g.ingress_format == "embeddings"]
    assert len(embedded) == 2 and {g.tokens_prompt for g in embedded} == {15}  # the sandbox's vectors
    generations = [g for g in generations if g.model == MODEL]
    assert len(generations) == len(upstream) + len(completions) >= 18
    assert {(g.model, g.tokens_prompt, g.tokens_completion, g.cost_micro_usd) for g in generations} == {
        (MODEL, PROMPT_TOKENS, COMPLETION_TOKENS, COST_MICRO_USD)
    }
    assert {(g.ingress_format, g.streamed) for g in generations} == {
        (fmt, streamed)
        for fmt in ("chat_completions", "responses", "anthropic_messages", "completions")
        for streamed in (True, False)
    }
    spent = before - account_for(workspace_id=workspace.pk).balance_micro_usd
    total = sum(g.cost_micro_usd for g in [*generations, *embedded])
    assert spent == total == COST_MICRO_USD * len(generations) + sum(g.cost_micro_usd for g in embedded)
