"""The model page's code samples work as printed: fetched from the page served by the real ASGI app
(uvicorn, as in production), then run with a funded key against the gateway of that same site."""

import html
import json
import os
import re
import shutil
import subprocess
import sys

import httpx
import pytest

from console.services.keys import api_key_create
from gateway.auth import key_cache
from gateway.catalog_cache import catalog_cache
from tests.factories import make_user, make_workspace
from tests.gateway.conftest import ServerThread

MODEL = "hyperinfer/sandbox"  # the offline mock: no upstream account needed


@pytest.fixture
def site(transactional_db, shipped_catalog, settings):
    settings.EMBEDDED_BEAT = False
    catalog_cache.invalidate()
    key_cache._entries.clear()
    with ServerThread() as url:
        yield url
    catalog_cache.invalidate()


@pytest.fixture
def api_key(transactional_db) -> str:
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    return api_key_create(workspace=workspace, name="snippets", created_by=owner).secret


def snippets_from_the_page(site: str, model: str = MODEL) -> dict[str, str]:
    page = httpx.get(f"{site}/models/{model}/", timeout=10)
    assert page.status_code == 200
    return {
        key: html.unescape(code)
        for key, code in re.findall(
            r'<code id="code-(\w+)" class="language-\w+">(.*?)</code>', page.text, re.S
        )
    }


def run(command: list[str], api_key: str) -> str:
    env = {**os.environ, "HYPERINFER_API_KEY": api_key}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_python_sdk_snippets_run_against_the_site(site, api_key):
    snippets = snippets_from_the_page(site)
    assert set(snippets) == {"curl", "openai", "anthropic"}
    assert f'base_url="{site}/api/v1"' in snippets["openai"]

    openai_lines = run([sys.executable, "-c", snippets["openai"]], api_key).strip().splitlines()
    assert len(openai_lines) >= 2 and all(line.strip() for line in openai_lines)  # two answers printed
    anthropic_out = run([sys.executable, "-c", snippets["anthropic"]], api_key)
    assert anthropic_out.strip()


def test_the_curl_snippet_runs_against_the_site(site, api_key):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    answer = json.loads(run(["bash", "-c", snippets_from_the_page(site)["curl"]], api_key))
    assert answer["object"] == "chat.completion" and answer["model"] == MODEL
    assert answer["choices"][0]["message"]["content"]


def test_an_embedding_models_snippets_run_against_the_site(site, api_key):
    snippets = snippets_from_the_page(site, "hyperinfer/sandbox-embed")
    assert set(snippets) == {"curl", "openai"}  # Anthropic's API has no embeddings
    printed = run([sys.executable, "-c", snippets["openai"]], api_key)
    assert printed.startswith("256 numbers each; cosine similarity 0.")
    if shutil.which("curl") is not None:
        answer = json.loads(run(["bash", "-c", snippets["curl"]], api_key))
        assert [item["index"] for item in answer["data"]] == [0, 1]
        assert answer["model"] == "hyperinfer/sandbox-embed" and answer["usage"]["prompt_tokens"] == 12
